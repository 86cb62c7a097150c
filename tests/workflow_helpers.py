"""Running the real `snakemake` command on a config in a temporary directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

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
    give them: init and kernels at θ₀ read `model` (model.json), the rest `run` (run.json).

    `stores` maps init, train, linear and optionally kernel_init, kernel_final, metrics to their
    paths; a stage whose store is not named is not run and its store is passed to no command (as
    the rules do with kernels.initial / kernels.final false). `analytic`: analytic.zarr or None.
    """
    f = {name: str(path) for name, path in stores.items()}
    model, run = str(model), str(run)
    with_analytic = ["--analytic", str(analytic)] if analytic else []
    commands = [["init", "--run", model, "--out", f["init"]]]
    if "kernel_init" in f:
        commands.append(
            ["kernels", "--run", model, "--params", f["init"], "--out", f["kernel_init"]]
        )
    commands.append(["train", "--run", run, "--init", f["init"], "--out", f["train"]])
    if "kernel_final" in f:
        commands.append(
            ["kernels", "--run", run, "--params", f["train"], "--out", f["kernel_final"]]
        )
    kernel = ["--kernel", f["kernel_init"]] if "kernel_init" in f else []
    commands.append(
        ["linear", "--run", run, "--init", f["init"], *kernel, *with_analytic, "--out", f["linear"]]
    )
    if "metrics" in f:
        kernels = [
            *(["--kernel-init", f["kernel_init"]] if "kernel_init" in f else []),
            *(["--kernel-final", f["kernel_final"]] if "kernel_final" in f else []),
        ]
        compare = ["compare", "--run", run, "--train", f["train"], "--linear", f["linear"]]
        commands.append([*compare, *kernels, *with_analytic, "--out", f["metrics"]])
    return commands
