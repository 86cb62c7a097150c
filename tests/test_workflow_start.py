"""The workflow's start as one call (ntkpipe.workflow_start): what config.smk and stale.smk run at
parse time, with a stand-in for Snakemake's ``workflow`` object. Unit tests on tmp folders;
tests/test_workflow.py runs the same through Snakemake."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ntkpipe import workers, workflow_start
from ntkpipe.io import lock
from ntkpipe.workers import pool
from tests.workflow_helpers import CONFIGS

TINY = CONFIGS / "tiny.yaml"


def _workflow(tmp_path, *, dry_run=False, main=True, config=None, mem_mb=None):
    return SimpleNamespace(
        output_settings=SimpleNamespace(dryrun=dry_run),
        is_main_process=main,
        config_settings=SimpleNamespace(configfiles=[TINY], config=config or {}),
        basedir=str(tmp_path),
        global_resources={} if mem_mb is None else {"mem_mb": mem_mb},
    )


def test_begin_reads_the_sweep_and_takes_the_lock_only_when_the_command_writes(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    err, environ = io.StringIO(), {}
    started = workflow_start.begin(
        _workflow(tmp_path, dry_run=True), ["snakemake", "-n"], environ, err=err
    )
    assert started.sweep["name"] == "tiny" and len(started.runs) == 4
    assert started.jobs_per_stage and not started.writes and started.dry_run and started.plan
    assert started.layout.root.as_posix() == "results/tiny"
    assert environ["NTKPIPE_JAX_CACHE"] == str(started.layout.jax_cache.resolve())
    assert "ntkpipe plan: " in err.getvalue()
    assert lock.writer(started.layout.root) is None
    started = workflow_start.begin(_workflow(tmp_path), ["snakemake", "-c1"], {}, err=err)
    assert started.writes and lock.writer(started.layout.root) is not None


def test_begin_stops_with_the_messages_of_the_workflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = {"model": {"activation": "softplus"}}
    with pytest.raises(SystemExit, match=r"(?s)^ntkpipe: invalid config\n.*model.activation"):
        workflow_start.begin(_workflow(tmp_path, config=bad), ["snakemake"], {}, err=io.StringIO())
    with pytest.raises(SystemExit, match=r"(?s)^ntkpipe: invalid config\n.*--resources mem_mb"):
        workflow_start.begin(
            _workflow(tmp_path, mem_mb=1), ["snakemake", "-c1"], {}, err=io.StringIO()
        )


def test_a_jobs_own_snakemake_neither_plans_nor_refreshes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    started = workflow_start.begin(_workflow(tmp_path, main=False), ["snakemake"], {}, err=err)
    assert not started.main and not started.writes and err.getvalue() == ""
    started.layout.runs.mkdir(parents=True)
    (started.layout.root / "sweep.json").write_text("{}")  # stale, but not for a job's process
    workflow_start.refresh(started, err=err)
    assert err.getvalue() == "" and (started.layout.root / "sweep.json").read_text() == "{}"


def _onstart(executor, array_jobs=None):
    rules = {}
    return SimpleNamespace(
        executor_plugin=SimpleNamespace(name=executor),
        executor_settings=SimpleNamespace(array_jobs=array_jobs),
        dag_settings=SimpleNamespace(forcerun=None),
        execution_settings=SimpleNamespace(retries=0),
        get_rule=lambda name: rules.setdefault(name, SimpleNamespace(restart_times=0)),
        rules=rules,
    )


def test_on_start_refuses_unsafe_slurm_arrays_and_otherwise_records_the_scheduling(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    started = workflow_start.begin(_workflow(tmp_path), ["snakemake", "-c1"], {}, err=io.StringIO())
    workflow_start.on_start(started, _onstart("slurm", "train"), err=io.StringIO())  # alike
    # train jobs that ask differently: one array would give every task the first job's asks
    plan = [job._replace(mem_mb=job.mem_mb * (1 + i)) for i, job in enumerate(started.plan)]
    with pytest.raises(SystemExit, match="SLURM job arrays are not safe"):
        workflow_start.on_start(
            started._replace(plan=plan), _onstart("slurm", "train"), err=io.StringIO()
        )
    started.layout.resources_json.unlink()
    assert not started.layout.resources_json.exists()
    local, environ = _onstart("local"), {}
    workflow_start.on_start(started, local, err=io.StringIO(), environ=environ)
    assert started.layout.resources_json.exists() and local.rules == {}  # no segments here
    # the local executor's jobs go to warm workers (tests/test_workers.py), the pool's socket
    # in the jobs' environment; not on SLURM, not with resources.warm_workers: false
    assert Path(environ[workers.SOCKET_ENV]).is_socket()
    assert json.loads(started.layout.resources_json.read_text())["warm_workers"] is True
    pool.stop(environ[workers.SOCKET_ENV])
    for executor, settings in (("slurm", {}), ("local", {"warm_workers": False})):
        environ = {}
        changed = started._replace(settings={**started.settings, **settings})
        workflow_start.on_start(changed, _onstart(executor), err=io.StringIO(), environ=environ)
        assert environ == {}
        assert json.loads(started.layout.resources_json.read_text())["warm_workers"] is False
