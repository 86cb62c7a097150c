"""ntkpipe status: runs done / running / failed / missing per stage, compute and ETA, from files."""

from __future__ import annotations

import contextlib
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
    with _live_writer(root):  # the snakemake that started them still runs
        got = status.sweep_status(root).stages["train"]
    assert (got.running, got.missing) == (1, 2)
    got = status.sweep_status(root).stages["train"]  # it was killed: they are not running
    assert (got.running, got.missing) == (0, 3)


@contextlib.contextmanager
def _live_writer(root):
    """A live process holding the results folder's lock, as a running snakemake does."""
    code = (
        "import sys, time; from ntkpipe.io import lock; lock.acquire(sys.argv[1], "
        "['snakemake', '-c1']); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_sweep_is_not_running_and_status_says_how_to_finish_it(tmp_path, capsys):
    import base64

    from ntkpipe.io import invocations

    root, (a, b, c) = _sweep(tmp_path)
    _store(root / "runs" / a / "metrics.zarr")
    markers = tmp_path / ".snakemake" / "incomplete"  # left by the killed snakemake
    markers.mkdir(parents=True)
    relative = f"results/st/runs/{b}/train.zarr"
    (markers / base64.urlsafe_b64encode(relative.encode()).decode()).write_text("")
    (tmp_path / ".snakemake" / "locks").mkdir()
    (tmp_path / ".snakemake" / "locks" / "0.input.lock").write_text("")
    argv = ["/venv/bin/snakemake", "--cores", "all", "--configfile", "st.yaml"]
    invocations.record(root, argv, cwd=tmp_path)
    got = status.sweep_status(root)
    assert got.writer is None and not any(c.running for c in got.stages.values())
    assert got.stages["metrics"].missing_runs == [b, c]
    assert got.finish == (
        f"cd {tmp_path} && snakemake --unlock --cores all --configfile st.yaml",
        f"cd {tmp_path} && snakemake --cores all --configfile st.yaml --rerun-incomplete",
    )
    text = status.format_status(got)
    assert "not running: no snakemake is writing this folder" in text
    assert f"missing: metrics of {b}" in text and "finish the sweep with:" in text
    (root / ".replaced" / "20261207-070000").mkdir(parents=True)  # a start moved stores aside
    text = status.format_status(status.sweep_status(root))
    assert f"kept aside: 1 replacement(s) in {root / '.replaced'}" in text


def test_status_names_the_live_writer_and_prints_no_finishing_command(tmp_path):
    from ntkpipe.io import lock

    root, _ = _sweep(tmp_path)
    with _live_writer(root) as holder:
        got = status.sweep_status(root)
        assert got.writer["pid"] == holder.pid and got.finish == ()
        assert f"running: snakemake process {holder.pid} on " in status.format_status(got)
    assert lock.writer(root) is None


def test_verify_names_a_store_whose_chunk_was_damaged(tmp_path, capsys):
    root, (a, *_rest) = _sweep(tmp_path)
    path = root / "runs" / a / "metrics.zarr"
    _store(path)
    assert cli.main(["status", str(root), "--verify"]) == 0
    assert "corrupted" not in capsys.readouterr().out
    chunk = next(
        p for p in (path / "loss_train").rglob("*") if p.is_file() and p.name != "zarr.json"
    )
    data = bytearray(chunk.read_bytes())
    data[-3:] = bytes(x ^ 0xFF for x in data[-3:])  # 3 bytes flipped, as on a failing disk
    chunk.write_bytes(bytes(data))
    assert status.sweep_status(root).stages["metrics"].done == 1  # without --verify: unseen
    assert cli.main(["status", str(root), "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"corrupted: {path}: " in out and "rm -r <path>" in out
    assert status.sweep_status(root, verify=True).stages["metrics"].missing == 3
