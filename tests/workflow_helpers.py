"""Running the real `snakemake` command on a config in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from ntkpipe.sweep import stage_table

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parent / "configs"


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True, cores: int = 2):
    """Run snakemake on the repository's Snakefile with `workdir` as working directory."""
    command, env = snakemake_command(workdir, config, *args, cores=cores)
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


def snakemake_command(workdir: Path, config: Path, *args: str, cores: int = 2):
    """The snakemake command line (with --rerun-incomplete) and its environment (this
    interpreter's scripts, e.g. `ntkpipe`, first on PATH)."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        str(cores),
        "--rerun-incomplete",
        *args,
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return command, env


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake (dry) run: {rule: count}."""
    counts = {}
    table = output.split("Job stats:", 1)
    if len(table) < 2:
        return counts
    for line in table[1].splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)\s*$", line)
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def write_config(path: Path, base: Path, **changes) -> Path:
    """A copy of config `base` with dotted-path `changes` applied (e.g. training__steps=8)."""
    config = yaml.safe_load(base.read_text())
    for dotted, value in changes.items():
        keys = dotted.split("__")
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def stage_commands(model, run, stores: dict, analytic=None) -> list[list[str]]:
    """The per-run `ntkpipe` commands in workflow order, with the arguments the per-stage rules
    give them (:data:`ntkpipe.sweep.stage_table.RUN_STAGES`): init and kernel_init read `model`
    (model.json), the rest `run` (run.json).

    `stores` maps init, train, linear and optionally kernel_init, kernel_final, metrics (the store
    names without .zarr) to their paths; a stage whose store is not named is not run and its store
    is passed to no command (as the rules do with kernels.initial / kernels.final false).
    `analytic`: analytic.zarr or None.
    """
    f = {name: str(path) for name, path in stores.items()}
    if analytic:
        f["analytic"] = str(analytic)
    configs = {"model.json": str(model), "run.json": str(run)}
    run_config = json.loads(Path(run).read_text()) if Path(run).is_file() else {}
    commands = []
    for row in stage_table.RUN_STAGES:
        if _key(row.rule) not in f:
            continue
        # as the rules: the inputs a switch of the run config turns off are not given
        wanted = [one for one in row.inputs if stage_table.switch_on(run_config, one.when)]
        inputs = [[one.flag, f[_key(one.stage)]] for one in wanted if _key(one.stage) in f]
        if len(stage_table.COMMAND_RULES[row.command]) > 1:  # kernels: which stage
            inputs.insert(0, ["--rule", row.rule])
        commands.append(
            [row.command, "--run", configs[row.config_file], *sum(inputs, []), "--out"]
            + [f[_key(row.rule)]]
        )
    return commands


def _key(rule: str) -> str:
    """The key of a stage's store in `stage_commands`' `stores` (its file name without .zarr)."""
    return stage_table.BY_RULE[rule].store.removesuffix(".zarr")
