"""The workflow's start (ntkpipe.start): reading the sweep, the memory check, whether a command
writes (and so locks and removes), and the stale config files and stores it finds from their
own records. Unit tests on tmp folders; tests/test_workflow.py runs the same through Snakemake."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from ntkpipe import start
from ntkpipe.errors import ConfigError
from ntkpipe.io import stores
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep.layout import Layout
from tests.workflow_helpers import CONFIGS

TINY = CONFIGS / "tiny.yaml"


@pytest.mark.parametrize(
    ("argv", "writes"),
    [
        (["snakemake", "--cores", "2"], True),
        (["snakemake", "-c2", "--forcerun", "train"], True),
        (["snakemake", "-n"], False),
        (["snakemake", "-np"], False),
        (["snakemake", "--touch"], False),
        (["snakemake", "--lint"], False),
        (["snakemake", "--dag"], False),
        (["snakemake", "--unlock"], False),
        (["snakemake", "--list-changes=params"], False),
        (["snakemake", "--report=r.html"], False),
    ],
)
def test_only_a_command_that_runs_jobs_writes(argv, writes):
    assert start.command_writes(argv, dry_run=False, main_process=True) is writes


def test_a_dry_run_or_a_jobs_own_snakemake_never_writes():
    argv = ["snakemake", "--cores", "2"]
    assert not start.command_writes(argv, dry_run=True, main_process=True)
    assert not start.command_writes(argv, dry_run=False, main_process=False)


def test_jobs_run_elsewhere_under_a_profile_or_an_executor():
    assert start.jobs_run_elsewhere(["snakemake", "--profile", "slurm"], {})
    assert start.jobs_run_elsewhere(["snakemake", "--executor=slurm"], {})
    assert start.jobs_run_elsewhere(["snakemake"], {"SNAKEMAKE_PROFILE": "site"})
    assert not start.jobs_run_elsewhere(["snakemake", "--cores", "2"], {})


def test_read_sweep_expands_the_runs_and_plans_every_job():
    sweep, settings, runs, plan, notes = start.read_sweep([TINY], {}, None)
    assert sweep["name"] == "tiny" and settings["jobs"] == "stages" and notes == []
    assert list(runs) == [run.run_id for run in ntk_runs.expand_runs(sweep)] and len(runs) == 4
    assert {job.rule for job in plan} >= {"init", "train", "linear", "compare", "report"}
    assert start.read_sweep([TINY], {}, None, with_plan=False).plan == []


def test_read_sweep_refuses_a_bad_config_naming_the_field():
    with pytest.raises(ConfigError, match="model.activation"):
        start.read_sweep([TINY], {"model": {"activation": "softplus"}}, None)


def test_memory_problems_stop_a_run_and_warn_a_dry_run_here():
    _, settings, runs, _, _ = start.read_sweep([TINY], {}, None, with_plan=False)
    kwargs = dict(argv=["snakemake"], environ={})
    notes, problems = start.memory_check(
        runs.values(), settings, mem_cap=1, dry_run=False, **kwargs
    )
    assert notes == [] and problems and "--resources mem_mb" in problems[0]
    assert start.memory_check(runs.values(), settings, mem_cap=None, dry_run=False, **kwargs) == (
        [],
        [],
    )


def _store(path, config, inputs=None, config_file=None):
    ds = xr.Dataset({"loss_train": (("seed", "step"), np.zeros((1, 2)))})
    return stores.write_store(
        ds, path, config=config, stage="train", inputs=inputs, overwrite=True,
        config_file=config_file,
    )  # fmt: skip


def test_stale_stores_read_the_config_file_a_store_records(tmp_path):
    """The per-stage layout's freshness (the one-job-per-run layout's: tests/jobs/test_run.py):
    a store recording another stage's config file is stale; one recording none (written before
    stores recorded it) is judged by its config alone."""
    _, _, runs, _, _ = start.read_sweep([TINY], {}, None, with_plan=False)
    layout = Layout(tmp_path / "results" / "tiny")
    run = next(iter(runs.values()))
    init = layout.store("init", run.run_id)
    config = ntk_runs.stage_config(run.config, "init")
    _store(init, config, config_file="model.json")
    assert start.stale_stores(layout, runs) == {}
    _store(init, config)  # an old store: no config_file
    assert start.stale_stores(layout, runs) == {}
    _store(init, config, config_file="run.json")
    assert start.stale_stores(layout, runs) == {
        init: "computed from another config file (run.json, not model.json)"
    }


def test_stale_stores_and_config_files_are_found_from_their_records(tmp_path):
    sweep, _, runs, _, _ = start.read_sweep([TINY], {}, None, with_plan=False)
    layout = Layout(tmp_path / "results" / "tiny")
    run = next(iter(runs.values()))
    init = layout.store("init", run.run_id)
    _store(init, ntk_runs.stage_config(run.config, "init"))
    assert start.stale_stores(layout, runs) == {}
    other = {**run.config, "model": {**run.config["model"], "width": 999}}
    _store(init, ntk_runs.stage_config(other, "init"))  # a store of another config at its path
    assert start.stale_stores(layout, runs) == {init: "computed from another config"}
    model_json = layout.config_file("init", run.run_id)
    model_json.write_text("{}")  # hand-edited
    stale = start.stale_config_files(layout, sweep, runs, {})
    assert json.loads(stale[model_json]) == ntk_runs.stage_config(run.config, "init")


def test_refresh_removes_only_when_the_command_writes(tmp_path):
    sweep, _, runs, _, _ = start.read_sweep([TINY], {}, None, with_plan=False)
    layout = Layout(tmp_path / "results" / "tiny")
    run = next(iter(runs.values()))
    init = layout.store("init", run.run_id)
    other = {**run.config, "model": {**run.config["model"], "width": 999}}
    _store(init, ntk_runs.stage_config(other, "init"))
    said = start.refresh(layout, sweep, runs, {}, [], writes=False)
    assert said == [f"ntkpipe: {init}: computed from another config; it will be computed again"]
    assert init.exists()
    report = layout.report
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("<html>the other sweep's report</html>")
    said = start.refresh(layout, sweep, runs, {}, [], writes=True)
    assert said[0] == (
        f"ntkpipe: {init}: computed from another config; moved aside, it is computed again"
    )
    assert not init.exists() and not report.exists()
    # Nothing is deleted: the other config's store and report are kept, in the same layout.
    (aside,) = layout.replaced.iterdir()
    kept = aside / init.relative_to(layout.root)
    assert kept.is_dir() and (kept / "zarr.json").is_file()
    assert (aside / "report.html").read_text() == "<html>the other sweep's report</html>"
    assert said[-1].startswith(f"ntkpipe: what was replaced is kept in {aside}")
    assert f"rm -r {layout.replaced}" in said[-1]
