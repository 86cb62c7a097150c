"""End to end: the README's first line, `snakemake --cores all` on the default sweep, reaches
its report with every figure (three or more widths and two dataset sizes draw what the tiny
sweep cannot).

The sweep is config/config.yaml as shipped (one job per run, both sweep axes), with fewer
optimizer steps and three of its five widths given on the command line as a user would
(`--config 'training={...}' 'sweep={...}'`), so the test takes about a minute. Its wall time
is measured by benchmarks/bench_default_sweep.py, never here.
"""

from __future__ import annotations

import subprocess

import pytest
import xarray as xr

from tests.workflow_helpers import REPO, snakemake_command

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


def test_the_default_sweep_reaches_its_report(tmp_path):
    command, env = snakemake_command(
        tmp_path,
        REPO / "config" / "config.yaml",
        "--config",
        "training={steps: 32, records: 6}",
        "sweep={model.width: [64, 256, 1024], data.n_train: [32, 128]}",
    )
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-6000:]
    out = tmp_path / "results" / "digits-binary"
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
