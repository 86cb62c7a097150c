"""End to end: the README's first line, `snakemake --cores all` on the default sweep, reaches
its report with every figure (three or more widths and two dataset sizes draw what the tiny
sweep cannot), and the README's stage reruns ("Rerunning one stage") do what it says in this
sweep's layout, one job per run.

The sweep is config/config.yaml as shipped (one job per run, both sweep axes), with fewer
optimizer steps and three of its five widths given on the command line as a user would
(`--config 'training={...}' 'sweep={...}'`). It starts with `--until kernel_init` (whose stores
the sweep then keeps) and ends with `--forcerun train`: 170 s of CPU in all against 98 s for the
sweep alone (measured side by side on a loaded 2-core machine).
Its wall time is measured by benchmarks/bench_default_sweep.py, never here.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import xarray as xr

from ntkpipe import stage_reruns
from tests.test_workers import _worker_pid
from tests.workflow_helpers import REPO, job_counts, snakemake_command

pytestmark = pytest.mark.slow
FIGURES = (
    "weight_change",
    "kernel_change",
    "loss_curves",
    "rmse_curves",
    "linearization",
    "rmse_vs_width",
    "kernel_error",
)
SHRUNK = (
    "--config",
    "training={steps: 32, records: 6}",
    "sweep={model.width: [64, 256, 1024], data.n_train: [32, 128]}",
)
RUN_STORES = ("init", "kernel_init", "train", "kernel_final", "linear", "metrics")


def _snakemake(workdir: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    command, environ = snakemake_command(workdir, REPO / "config" / "config.yaml", *args, *SHRUNK)
    environ = {**environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=environ, cwd=workdir)


def _stores(out: Path) -> dict[str, tuple[str, int]]:
    """{store path in the sweep's folder: (sha256 of its files, mtime of its zarr.json)}."""
    found = {}
    for store in sorted(out.glob("**/*.zarr")):
        if store.parent.name.endswith(".zarr") or ".replaced" in store.parts:
            continue
        digest = hashlib.sha256()
        for path in sorted(store.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(store)).encode() + path.read_bytes())
        found[str(store.relative_to(out))] = (digest.hexdigest(), store.stat().st_mtime_ns)
    return found


def _by_store(stores: dict) -> dict[str, int]:
    """How many of each store name (init.zarr, …)."""
    counts: dict[str, int] = {}
    for path in stores:
        counts[Path(path).name] = counts.get(Path(path).name, 0) + 1
    return counts


@pytest.fixture(scope="module")
def default_sweep(tmp_path_factory):
    """The default sweep, shrunk: `--until kernel_init` first (its stores), then the sweep
    itself; (workdir, the sweep's folder, its stores after --until, the result of the sweep)."""
    workdir = tmp_path_factory.mktemp("default-sweep")
    out = workdir / "results" / "digits-binary"
    until = _snakemake(workdir, "--until", "kernel_init")
    assert until.returncode == 0, until.stderr[-6000:]
    after_until = _stores(out)
    return workdir, out, after_until, _snakemake(workdir)


def test_the_default_sweep_reaches_its_report(default_sweep):
    _, out, _, result = default_sweep
    assert result.returncode == 0, result.stderr[-6000:]
    assert f"ntkpipe: the report: {(out / 'report.html').resolve()}" in result.stdout + (
        result.stderr
    )
    for name in FIGURES:
        assert (out / "figures" / f"{name}.svg").is_file(), name
    summary = xr.open_zarr(out / "summary.zarr")
    assert dict(summary.sizes)["width"] == 3 and dict(summary.sizes)["n_train"] == 2
    assert summary.attrs["training.steps"] == 32 and summary.attrs["training.records"] == 6
    assert (summary["status"] == "ok").all()
    assert len(list((out / "benchmarks" / "run").rglob("seeds~0-1.tsv"))) == 6  # one job a run
    # the longest runs first (priority = the cost model's seconds, ntkpipe.rules.priority_of):
    # the two of width 1024 start before the other four, the two of width 64 after them
    started = re.findall(r"rule run:\n(?:\s+\S.*\n)*?\s+wildcards: run=(\S+)", result.stderr)
    assert len(started) == 6, result.stderr[-6000:]
    assert {run.split("/")[0] for run in started[:2]} == {"width~1024"}, started
    assert {run.split("/")[0] for run in started[4:]} == {"width~64"}, started
    # every run, analytic, collect and report job ran in a warm worker (ntkpipe.workers), one
    # per core at most in each of the two Snakemake runs (--until, then the sweep)
    logs = [*(out / "logs" / "run").rglob("*.log"), *(out / "logs" / "analytic").rglob("*.log")]
    logs += [out / "logs" / "collect.log", out / "logs" / "report.log"]
    workers = {_worker_pid(log.read_text()) for log in logs}
    assert None not in workers and len(workers) <= 2 * os.cpu_count(), workers
    pools = out / "logs" / "workers.log"  # both pools end once their Snakemake has
    deadline = time.time() + 10
    while pools.read_text().count("pool ended") < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert pools.read_text().count("pool ended") == 2, pools.read_text()


def test_until_kernel_init_stops_after_the_initial_kernels(default_sweep):
    """README: `snakemake --cores all --until kernel_init` (the first command of the sweep)
    computes init and Θ̂₀ of every run and nothing else (no training, no analytic kernels); the
    sweep after it keeps those stores bit for bit."""
    _, out, after_until, result = default_sweep
    assert _by_store(after_until) == {"init.zarr": 6, "kernel_init.zarr": 6}
    assert result.returncode == 0, result.stderr[-6000:]
    assert {path: _stores(out)[path] for path in after_until} == after_until


def test_forcerun_train_recomputes_train_and_downstream_only(default_sweep):
    """README: `snakemake --cores all --forcerun train`: train and what reads it (Θ̂_T, metrics,
    summary, figures, report) computed again, in one job per run; init, Θ̂₀, f_lin and the
    analytic kernels kept bit for bit; then nothing left to do."""
    workdir, out, _, sweep = default_sweep
    assert sweep.returncode == 0, sweep.stderr[-6000:]
    before = _stores(out)
    forced = _snakemake(workdir, "--forcerun", "train")
    assert forced.returncode == 0, forced.stderr[-6000:]
    assert job_counts(forced.stdout + forced.stderr)["train"] == 6  # the per-run job, named train
    after = _stores(out)
    assert set(after) == set(before)
    changed = {path for path in before if after[path] != before[path]}
    assert _by_store(changed) == {
        "train.zarr": 6,
        "kernel_final.zarr": 6,
        "metrics.zarr": 6,
        "summary.zarr": 1,
    }
    assert (out / "report.html").stat().st_mtime_ns > before["summary.zarr"][1]
    for log in (out / "logs" / "run").rglob("*.log"):
        assert "run: computed train, kernel_final, compare" in log.read_text(), log
    assert "Nothing to be done" in _snakemake(workdir, "-n").stdout


def test_forcerun_init_plans_every_stage_and_a_misspelt_stage_is_named(default_sweep):
    """README: `--forcerun init` (a changed model module) reruns every run's job; a stage name
    that is no rule stops before any job, listing the stage names."""
    workdir, _, _, _ = default_sweep
    dry = _snakemake(workdir, "-n", "--forcerun", "init")
    assert dry.returncode == 0, dry.stderr[-6000:]
    counts = job_counts(dry.stdout)
    assert counts["init"] == 6 and "run" not in counts and counts["collect"] == 1
    # A cluster job's own snakemake has no --forcerun: the main process's stages reach it.
    run_id = "width~64/n_train~32/seeds~0-1"
    env = {stage_reruns.ENV: stage_reruns.from_argv(["snakemake", "-R", "train"]).to_env()}
    job = _snakemake(
        workdir, "-n", "-p", "--mode", "remote", "--target-jobs", f"train:run={run_id}", env=env
    )
    assert job.returncode == 0, job.stderr[-6000:]
    assert f"--dir results/digits-binary/runs/{run_id} " in job.stdout
    assert " --redo train --threads 1 " in job.stdout
    bad = _snakemake(workdir, "-n", "--forcerun", "trian")
    assert bad.returncode != 0
    assert "--forcerun trian: no stage of that name; the stages: init, kernel_init, train" in (
        bad.stderr
    )
