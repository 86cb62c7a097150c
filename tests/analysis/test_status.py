"""ntkpipe status: runs done / running / failed / missing per stage, compute and ETA, from files."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from ntkpipe import cli
from ntkpipe.analysis import status
from ntkpipe.errors import NtkpipeError
from ntkpipe.io import stores
from ntkpipe.sweep import runs as sweep_runs
from ntkpipe.sweep import validate

ROOT = Path(__file__).resolve().parents[2]
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _sweep(tmp_path):
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    raw.pop("resources", None)
    raw["name"] = "st"
    raw["sweep"] = {"model.width": [64, 128, 256], "data.n_train": [32]}
    config = validate.load_config(raw)
    root = tmp_path / "results" / "st"
    root.mkdir(parents=True)
    (root / "sweep.json").write_text(json.dumps(config))
    return root, [run.run_id for run in sweep_runs.expand_runs(config)]


def _store(path):
    ds = xr.Dataset({"loss_train": (("seed", "step"), np.ones((1, 2)))})
    stores.write_store(ds, path, config={}, stage=path.stem)


def _bench(root, rule, run_id, seconds):
    path = root / "benchmarks" / rule / f"{run_id}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_HEADER + f"{seconds}\t0:00:01\t100\t1\t1\t1\t0\t0\t50\t{seconds}\n")


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_status_counts_done_running_failed_missing_and_estimates_the_rest(tmp_path, sleeper):
    root, (a, b, c) = _sweep(tmp_path)
    for run_id in (a, b):  # init done for two runs, train for one
        _store(root / "runs" / run_id / "init.zarr")
        _bench(root, "init", run_id, 10.0)
    _store(root / "runs" / a / "train.zarr")
    _bench(root, "train", a, 100.0)
    host = socket.gethostname()
    (root / "runs" / b / f".train.zarr.partial-{host}-{sleeper}").mkdir(parents=True)
    log = root / "logs" / "init" / f"{c}.log"
    log.parent.mkdir(parents=True)
    log.write_text("Traceback (most recent call last):\nValueError: boom\n")
    got = status.sweep_status(root)
    assert got.runs == 3
    init, train = got.stages["init"], got.stages["train"]
    assert (init.done, init.running, init.failed, init.missing) == (2, 0, 1, 0)
    assert (train.done, train.running, train.failed, train.missing) == (1, 1, 0, 1)
    assert init.failed_runs == [c] and got.stages["metrics"].missing == 3
    assert got.compute_s == pytest.approx(120.0) and got.jobs == 3
    # metrics has no finished job: no ETA yet; init and train would be 1 × 10 s + 2 × 100 s
    assert got.remaining_s is None
    _store(root / "runs" / a / "metrics.zarr")
    _bench(root, "compare", a, 5.0)
    again = status.sweep_status(root)
    assert again.remaining_s == pytest.approx(10.0 + 2 * 100.0 + 2 * 5.0)
    text = status.format_status(again)
    assert "init" in text and "failed: init of" in text and "report: not yet" in text


def test_a_partial_store_of_a_dead_job_is_not_running(tmp_path):
    root, (a, *_rest) = _sweep(tmp_path)
    host = socket.gethostname()
    (root / "runs" / a / f".train.zarr.partial-{host}-999999999").mkdir(parents=True)
    assert status.sweep_status(root).stages["train"].running == 0


def test_status_command_prints_the_table_and_rejects_other_folders(tmp_path, capsys):
    root, _ = _sweep(tmp_path)
    assert cli.main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "st: 3 runs" in out and "metrics" in out and "missing" in out
    assert cli.main(["status", str(tmp_path)]) == 1
    assert "no sweep.json here" in capsys.readouterr().err
    with pytest.raises(NtkpipeError, match="results/<name>"):
        status.sweep_status(tmp_path)


def test_help_starts_with_how_to_run_a_sweep(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert out.index("snakemake --cores all") < out.index("init ")
    assert "ntkpipe status results/<name>" in out


def test_outputs_snakemake_has_started_count_as_running(tmp_path):
    import base64

    root, (a, *_rest) = _sweep(tmp_path)
    markers = tmp_path / ".snakemake" / "incomplete"  # the workdir holds results/
    markers.mkdir(parents=True)
    relative = f"results/st/runs/{a}/train.zarr"
    (markers / base64.urlsafe_b64encode(relative.encode()).decode()).write_text("")
    (root / "logs" / "train").mkdir(parents=True)  # Snakemake opens the job's log as it starts
    (root / "logs" / "train" / "a.log").write_text("step 1/16  loss 0.5\n")
    got = status.sweep_status(root).stages["train"]
    assert (got.running, got.missing) == (1, 2)
