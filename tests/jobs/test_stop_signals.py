"""A job inside SLURM stops itself before its time limit (ntkpipe.jobs.stop_signals.job_deadline),
checkpoints, and its rerun resumes bit-identically: how a job longer than the partition's cap runs
as segments (ntkpipe.sweep.segments; on a real slurmctld: tests/test_slurm.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from ntkpipe.jobs import stop_signals
from ntkpipe.sweep.segments import reserve_s, segment_count
from tests.test_reliability import _assert_same_store, _cli, _env, _run_json


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0:45", 45), ("1:00", 60), ("2:03:04", 7384), ("1-00:00:01", 86401), ("5", 300)],
)
def test_slurm_durations_are_read_as_squeue_prints_them(text, seconds):
    assert stop_signals._slurm_seconds(text) == seconds


@pytest.mark.parametrize("text", ["UNLIMITED", "NOT_SET", "INVALID", "", "1:xx", "a-1:00"])
def test_what_is_not_a_duration_gives_no_time_budget(text):
    assert stop_signals._slurm_seconds(text) is None


def test_the_deadline_is_the_jobs_end_less_its_reserve(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_JOB_START_TIME", "1000")
    monkeypatch.setenv("SLURM_JOB_END_TIME", "4600")  # a one-hour limit: a 6-minute reserve
    stop_signals.job_deadline.cache_clear()
    try:
        assert stop_signals.job_deadline() == 4600 - 360
        monkeypatch.delenv("SLURM_JOB_ID")
        stop_signals.job_deadline.cache_clear()
        assert stop_signals.job_deadline() is None  # not inside SLURM: no budget
    finally:
        stop_signals.job_deadline.cache_clear()


def test_reserve_and_segment_count():
    assert reserve_s(60) == 15 and reserve_s(3600) == 360 and reserve_s(2880 * 60) == 1800
    # cap 10 min: 600 - 60 reserve - 40 start = 500 s of work per segment
    assert segment_count(1200, 40, 0, 10) == 3
    assert segment_count(400, 40, 0, 10) == 1
    assert segment_count(1200, 40, 600, 10) == 0  # a part that cannot stop is longer
    assert segment_count(1200, 600, 0, 10) == 0  # the start-up alone fills the cap


def test_training_stops_at_its_time_budget_and_the_rerun_resumes_bit_identically(tmp_path):
    run = _run_json(
        tmp_path / "run.json",
        model={"depth": 2, "width": 64},
        data={"n_train": 32, "n_test": 16},
        training={"steps": 400, "records": 5, "checkpoint_every": 100},
    )
    init = tmp_path / "init.zarr"
    _cli("init", "--run", run, "--out", init)
    reference = tmp_path / "reference.zarr"  # the uninterrupted job, side by side
    uninterrupted = subprocess.Popen(
        [sys.executable, "-m", "ntkpipe.cli", "train", "--run", str(run), "--init", str(init),
         "--out", str(reference)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip

    # A SLURM job with 5 s left of a 10-minute limit: past its deadline (60 s reserve) at once.
    now = int(time.time())
    slurm = {"SLURM_JOB_ID": "1", "SLURM_JOB_START_TIME": str(now - 595),
             "SLURM_JOB_END_TIME": str(now + 5)}  # fmt: skip
    out = tmp_path / "train.zarr"
    stopped = subprocess.run(
        [sys.executable, "-m", "ntkpipe.cli", "train", "--run", str(run), "--init", str(init),
         "--out", str(out)],
        capture_output=True, text=True, env={**_env(), **slurm}, timeout=300,
    )  # fmt: skip
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode == 1, said
    # It trains one segment (to the first record step after 0: never stops without progress).
    found = re.search(
        r"time budget \(the SLURM job's time limit is near\) at step (\d+) of 400", said
    )
    assert found and 0 < int(found[1]) < 400, said
    assert "rerunning the job" in said and not out.exists()
    assert os.path.exists(f"{out}.ckpt")

    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()
    resumed = _cli("train", "--run", run, "--init", init, "--out", out)
    assert f"resuming from step {found[1]}" in resumed, resumed
    _assert_same_store(reference, out)
