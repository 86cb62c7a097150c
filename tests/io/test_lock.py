"""Tests of io.lock: one writer per results folder (issue 10, failure 7: two working directories
sharing one results/ deleted each other's stores)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ntkpipe.io import lock

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
HOLD = (
    "import sys, time; from ntkpipe.io import lock; lock.acquire(sys.argv[1]); "
    "print('held', flush=True); time.sleep(60)"
)


def _holder(folder):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(lock.LockedError) as err:
            lock.acquire(tmp_path)
        message = str(err.value)
        assert message.startswith(f"{tmp_path}: is being written by process {holder.pid} on ")
        assert socket.gethostname() in message and f"-c {tmp_path})" in message
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_writers_lock_is_taken_over_with_a_note_and_released_on_exit(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)  # no exit handler runs: the lock file stays
    holder.wait()
    assert (tmp_path / lock.LOCK_NAME).exists()
    held = lock.acquire(tmp_path, command=["test"])
    assert held.note.startswith(f"ntkpipe: {tmp_path}: took over the lock of process {holder.pid}")
    held.release()
    assert not (tmp_path / lock.LOCK_NAME).exists()
    held.release()  # twice: nothing happens
    code = "import sys; from ntkpipe.io import lock; lock.acquire(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert not (tmp_path / lock.LOCK_NAME).exists()  # released when the process exited


def _snakemake(workdir, *args):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    command += ["--directory", str(workdir), "--configfile", str(TINY), *args]
    return command


def test_two_snakemake_processes_sharing_one_results_folder(tmp_path):
    shared, first, second = tmp_path / "results", tmp_path / "a", tmp_path / "b"
    for workdir in (first, second):
        workdir.mkdir()
        (workdir / "results").symlink_to(shared, target_is_directory=True)
    shared.mkdir()
    writer = subprocess.Popen(
        _snakemake(first, "--cores", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    lock_file = shared / "tiny" / lock.LOCK_NAME
    try:
        deadline = time.monotonic() + 120
        while not lock_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lock_file.exists(), "the first snakemake never took the lock"
        refused = subprocess.run(_snakemake(second, "--cores", "1"), capture_output=True, text=True)
        assert refused.returncode != 0
        assert f"is being written by process {writer.pid} on {socket.gethostname()}" in (
            refused.stderr
        ), refused.stderr[-2000:]
        assert lock.writer(shared / "tiny")["pid"] == writer.pid
        # A dry run beside it names the writer, not Snakemake's incomplete-files advice.
        dry = subprocess.run(_snakemake(second, "-n"), capture_output=True, text=True)
        assert dry.returncode != 0 and "IncompleteFiles" not in dry.stderr
        assert f"is being written by process {writer.pid}" in dry.stderr, dry.stderr[-2000:]
        assert "A dry run now would see its running jobs' outputs as incomplete" in dry.stderr
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    target = "results/tiny/sweep.json"
    took = subprocess.run(_snakemake(second, "-c1", target), capture_output=True, text=True)
    assert took.returncode == 0, took.stderr[-3000:]
    assert f"took over the lock of process {writer.pid}" in took.stderr
    assert not lock_file.exists(), lock_file.read_text()
    assert lock.writer(shared / "tiny") is None


def test_a_full_disk_leaves_no_empty_lock_and_names_the_path(tmp_path):
    from tests.full_disk import fill, full_disk

    with full_disk(tmp_path / "disk") as disk:
        folder = disk / "results" / "sweep"
        folder.mkdir(parents=True)
        fill(disk)
        with pytest.raises(lock.NtkpipeError, match=r"\.ntkpipe\.lock: cannot write the results"):
            lock.acquire(folder, ["snakemake"])
        assert not (folder / lock.LOCK_NAME).exists()
