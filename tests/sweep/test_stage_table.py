"""The stage table against the workflow: every job of a dry run of the real Snakefile reads and
writes what the table says, and runs the table's command with the table's flags.

The paths are derived here from the table's scopes, store names and conditions (not with the
workflow's own input functions), in both job layouts and with the kernels and ensemble switches
on and off.
"""

from __future__ import annotations

import re

import pytest
import yaml

from ntkpipe.sweep import ensemble as ensemble_plan
from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import stage_table, validate
from tests.workflow_helpers import CONFIGS, snakemake, write_config

TINY = CONFIGS / "tiny.yaml"
CONFIG_RULES = {"model_config", "run_config", "analytic_config", "ensemble_config", "sweep_config"}
VARIANTS = {
    "all switches on": {},
    "no final or analytic kernels, an ensemble": {
        "kernels__final": False,
        "kernels__analytic": False,
        "ensemble__members": 2,
    },
}


def _dry_run_jobs(tmp_path, config_path) -> list[dict]:
    """Every job of a forced dry run: {rule, input: [...], output, wildcards: {}, shell}."""
    out = snakemake(tmp_path, config_path, "-n", "-p", "--forceall").stdout
    jobs = []
    for block in re.split(r"\n(?=rule \w+:\n)", out)[1:]:
        job = {"rule": block.split(":", 1)[0].removeprefix("rule "), "input": [], "shell": ""}
        job["wildcards"] = {}
        for line in block.splitlines()[1:]:
            key, _, value = line.strip().partition(": ")
            if key == "input":
                job["input"] = value.split(", ")
            elif key == "output":
                job["output"] = value
            elif key == "wildcards":
                job["wildcards"] = dict(part.split("=", 1) for part in value.split(", "))
            elif key == "Shell command":
                job["shell"] = value
        jobs.append(job)
    return jobs


def _expected(row, wildcards, sweep, runs, points) -> tuple[set[str], str, list[str]]:
    """The inputs, output and input flags (``--flag path``, per-run jobs) of a job of ``row``,
    from the table alone."""
    base = f"results/{sweep['name']}"
    folders = {
        "run": lambda: f"{base}/runs/{wildcards['run']}",
        "analytic": lambda: f"{base}/analytic/{wildcards['akey']}",
        "point": lambda: f"{base}/ensembles/{wildcards['point']}",
        "sweep": lambda: base,
    }
    folder = folders[row.scope]()
    inputs = {f"{folder}/{row.config_file}"} if row.config_file else set()
    config = runs[wildcards["run"]].config if row.scope == "run" else sweep
    flags = []
    for one in stage_table.reads(row.rule, config):
        producer = stage_table.BY_RULE[one.stage]
        if producer.scope == "run" and row.scope == "sweep":
            inputs |= {f"{base}/runs/{run_id}/{producer.store}" for run_id in runs}
        elif producer.scope == "point":
            inputs |= {f"{base}/ensembles/{point}/{producer.store}" for point in points}
        elif producer.scope == "analytic":
            akey = ntk_config.analytic_id(runs[wildcards["run"]])
            inputs.add(f"{base}/analytic/{akey}/{producer.store}")
            flags.append(f"{one.flag} {base}/analytic/{akey}/{producer.store}")
        elif producer.scope == "sweep":
            inputs.add(f"{base}/{producer.store}")
        else:
            inputs.add(f"{folder}/{producer.store}")
            flags.append(f"{one.flag} {folder}/{producer.store}")
    outputs = [f"{folder}/{name}" for name in (row.store, *row.also_writes)]
    return inputs, ", ".join(outputs), flags


@pytest.mark.parametrize("layout", ["stages", "runs"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_rule_reads_and_writes_what_the_table_says(tmp_path, layout, variant):
    config_path = write_config(
        tmp_path / "config.yaml", TINY, resources__jobs=layout, **VARIANTS[variant]
    )
    raw = yaml.safe_load(config_path.read_text())
    raw.pop("resources")
    sweep = validate.load_config(raw)
    runs = {run.run_id: run for run in ntk_config.expand_runs(sweep)}
    points = (
        {ensemble_plan.point_id(run_id) for run_id in runs}
        if sweep["ensemble"]["members"]
        else set()
    )
    jobs = _dry_run_jobs(tmp_path, config_path)
    seen = set()
    for job in jobs:
        if job["rule"] in CONFIG_RULES | {"all"}:
            continue
        row = stage_table.stage(job["rule"])
        assert row.layout in (None, layout), job["rule"]
        inputs, output, flags = _expected(row, job["wildcards"], sweep, runs, points)
        assert set(job["input"]) == inputs, job["rule"]
        assert job["output"] == output, job["rule"]
        assert job["shell"].startswith(f"ntkpipe {row.command} "), job["rule"]
        for flag in flags:
            assert f" {flag} " in job["shell"], (job["rule"], flag)
        seen.add(job["rule"])
    switches = {
        "kernel_final": sweep["kernels"]["final"],
        "ensemble": bool(points),
        "analytic": sweep["kernels"]["analytic"],
    }
    expected_rules = {
        row.rule
        for row in stage_table.STAGES
        if row.layout in (None, layout) and switches.get(row.rule, True)
    }
    if layout == "runs":
        expected_rules -= {"kernel_final"}  # inside the run job
    assert seen == expected_rules


def test_the_table_is_consistent():
    """Every input names a stage of the table, every run stage's inputs come before it, and the
    derived constants are the ones the cost model and the stage configs use."""
    for row in stage_table.STAGES:
        for one in row.inputs:
            assert one.stage in stage_table.BY_RULE, (row.rule, one.stage)
    order = [row.rule for row in stage_table.RUN_STAGES]
    assert order == ["init", "kernel_init", "train", "kernel_final", "linear", "compare"]
    for i, row in enumerate(stage_table.RUN_STAGES):
        for one in row.inputs:
            assert one.stage == "analytic" or order.index(one.stage) < i, (row.rule, one.stage)
    assert set(ntk_config.STAGES) == {
        row.rule for row in stage_table.STAGES if row.config_file in stage_table.CONFIG_FILES
    }
    assert stage_table.RULE_COST_STAGES["kernel_final"] == "kernels"
    assert "run" in stage_table.GPU_RULES and "compare" not in stage_table.GPU_RULES
    with pytest.raises(ValueError, match="rule: 'kernels' is not one of init, kernel_init"):
        stage_table.stage("kernels")


def test_the_switches_leave_out_the_stages_nothing_reads():
    on = {"kernels": {"initial": True, "final": True, "analytic": True}}
    off = {"kernels": {"initial": False, "final": False, "analytic": False}}
    assert [row.rule for row in stage_table.wanted(on)] == [
        row.rule for row in stage_table.RUN_STAGES
    ]
    assert [row.rule for row in stage_table.wanted(off)] == ["init", "train", "linear", "compare"]
    assert [one.name for one in stage_table.reads("compare", off)] == ["train", "linear"]
    assert [one.name for one in stage_table.reads("linear", on)] == ["init", "kernel", "analytic"]


def test_train_reads_kernel_init_exactly_when_lr_factor_sets_eta():
    """training.lr_factor: η = factor × η_crit of Θ̂₀, so train (and linear, which needs
    kernels.initial) read kernel_init.zarr; without it (null or absent) train does not."""
    factor = {"training": {"lr_factor": 1.5}, "kernels": {"initial": True}}
    assert [one.name for one in stage_table.reads("train", factor)] == ["init", "kernel_init"]
    assert "kernel" in [one.name for one in stage_table.reads("linear", factor)]
    for plain in ({"training": {"lr_factor": None}}, {"training": {}}, {}):
        assert [one.name for one in stage_table.reads("train", plain)] == ["init"]
