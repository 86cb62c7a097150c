"""Warm workers (ntkpipe.workers): jobs handed to a real pool's worker processes.

A job in a worker must be the job in its own process: the same stores bit for bit, the same
exit status and messages, the same reaction to signals; a killed job takes its worker with it,
and the pool ends with the process that started it. Every workflow test that runs Snakemake
locally goes through the pool too (tests/test_default_sweep.py checks that it did).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ntkpipe.workers import SOCKET_ENV, client, pool, wire
from tests.test_reliability import (
    _assert_same_store,
    _run_json,
    checkpointed_run,
    signalled_at_checkpoint,
)

CLIENT = [sys.executable, "-m", "ntkpipe.cli"]


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A pool of one worker, and the environment of a job pointed at it."""
    folder = tmp_path_factory.mktemp("pool")
    env = {**os.environ, "NTKPIPE_JAX_CACHE": "off"}
    env.pop(SOCKET_ENV, None)
    path = pool.start(1, folder / "workers.log", environ=env)
    yield {**env, SOCKET_ENV: path}
    pool.stop(path)
    assert not Path(path).exists(), "the pool leaves its socket behind"


def _ntkpipe(args, env, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLIENT, *map(str, args)], capture_output=True, text=True, env=env, **kwargs
    )


def _worker_pid(output: str) -> int | None:
    for line in output.splitlines():
        if line.startswith("ntkpipe: warm worker ") and line.endswith(" runs this job"):
            return int(line.split()[3])
    return None


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie has ended; a reaped one has no /proc entry)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_job_in_a_worker_writes_what_its_own_process_writes(tmp_path, warm):
    run = _run_json(tmp_path / "run.json", training={"steps": 32, "records": 4})
    own_env = {k: v for k, v in warm.items() if k != SOCKET_ENV}
    pids = []
    for name, env in (("own", own_env), ("warm", warm), ("again", warm)):
        args = ["run", "--config", run.read_text(), "--dir", tmp_path / name, "--threads", "1"]
        done = _ntkpipe(args, env)
        assert done.returncode == 0, done.stderr
        pids.append(_worker_pid(done.stderr))
    assert pids[0] is None and pids[1] is not None
    assert pids[2] == pids[1], "the second job did not reuse the warm worker"
    for store in ("init", "kernel_init", "train", "linear", "metrics"):
        _assert_same_store(tmp_path / "own" / f"{store}.zarr", tmp_path / "warm" / f"{store}.zarr")
    # what a worker does not run, it refuses, and the job runs in its own process
    for args, env in (
        (["init", "--run", run, "--out", tmp_path / "two.zarr", "--threads", "2"], warm),
        (["init", "--run", run, "--out", tmp_path / "x64.zarr", "--threads", "1"],
         {**warm, "JAX_ENABLE_X64": "1"}),
    ):  # fmt: skip
        done = _ntkpipe(args, env)
        assert done.returncode == 0 and _worker_pid(done.stderr) is None, done.stderr
    assert "the environment differs from the worker's in JAX_ENABLE_X64" in done.stderr


def test_a_jobs_error_is_reported_as_in_its_own_process_and_the_worker_goes_on(tmp_path, warm):
    missing = tmp_path / "nowhere" / "run.json"
    # the workflow's shell prefix: the job's stderr kept as descriptor 3, its output to a log
    command = (
        "set -euo pipefail; export NTKPIPE_ERROR_FD=3; exec 3>&2; "
        f"{' '.join(CLIENT)} init --run {missing} --out {tmp_path}/x.zarr --threads 1 "
        f"> {tmp_path}/job.log 2>&1"
    )
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=warm)
    assert done.returncode == 1
    assert done.stderr == f"ntkpipe init: error: --run: no run config at {missing}\n"
    log = (tmp_path / "job.log").read_text()
    assert f"no run config at {missing}" in log and _worker_pid(log) is not None
    run = _run_json(tmp_path / "run.json")
    again = _ntkpipe(["init", "--run", run, "--out", tmp_path / "i.zarr", "--threads", "1"], warm)
    assert again.returncode == 0 and _worker_pid(again.stderr) == _worker_pid(log)


def test_signals_reach_the_job_and_a_killed_job_takes_its_worker_with_it(tmp_path, warm):
    run, init = checkpointed_run(tmp_path, every=200)
    train = ["train", "--run", run, "--init", init, "--threads", "1"]

    # SIGTERM (a time limit, or Snakemake stopping): the job checkpoints and says so, as alone
    output, status, pid = _signal_at_checkpoint([*train, "--out", tmp_path / "t.zarr"], warm)
    assert status == 1 and "SIGTERM at step" in output, output

    # Ctrl-C (SIGINT, forwarded): KeyboardInterrupt in the job, exit status 130 as Python's,
    # and the worker, its state unknown, retires; the pool starts another for the next job
    output, status, pid = _signal_at_checkpoint(
        [*train, "--out", tmp_path / "i.zarr"], warm, signal.SIGINT
    )
    assert status == 130 and "KeyboardInterrupt" in output, output
    assert not (tmp_path / "i.zarr").exists()

    # SIGKILL of the job's process (Snakemake killed it): the worker ends at once, nothing that
    # looks complete is left, and the pool starts a new worker for the next job
    killed = tmp_path / "k.zarr"
    output, status, pid = _signal_at_checkpoint([*train, "--out", killed], warm, signal.SIGKILL)
    assert status == -signal.SIGKILL
    deadline = time.time() + 10
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the worker went on with a job whose process was killed"
    time.sleep(0.5)
    assert not killed.exists()
    done = _ntkpipe(["init", "--run", run, "--out", tmp_path / "next.zarr", "--threads", "1"], warm)
    assert done.returncode == 0 and _worker_pid(done.stderr) not in (None, pid), done.stderr


def _signal_at_checkpoint(args, env, number=signal.SIGTERM) -> tuple[str, int, int]:
    """Starts the job, sends `number` to its process after its first checkpoint; (output, exit
    status, the worker's pid)."""
    output, status = signalled_at_checkpoint(args, number, env)
    pid = _worker_pid(output)
    assert pid is not None, output
    return output, status, pid


def test_the_pool_ends_with_the_process_that_started_it(tmp_path):
    owner = (
        "import os, subprocess, sys; from ntkpipe.workers import pool, SOCKET_ENV\n"
        f"path = pool.start(1, {str(tmp_path / 'workers.log')!r})\n"
        "env = {**os.environ, SOCKET_ENV: path, 'NTKPIPE_JAX_CACHE': 'off'}\n"
        "done = subprocess.run([sys.executable, '-m', 'ntkpipe.cli', 'init', '--run', "
        f"{str(tmp_path / 'nowhere.json')!r}, '--out', 'x.zarr', '--threads', '1'], env=env,"
        " capture_output=True, text=True)\n"
        "print(path); print(done.stderr, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"  # abruptly: no clean-up of its own
    )
    done = subprocess.run(
        [sys.executable, "-c", owner], capture_output=True, text=True,
        env={**os.environ, "NTKPIPE_JAX_CACHE": "off"},
    )  # fmt: skip
    path, *rest = done.stdout.splitlines()
    worker = _worker_pid("\n".join(rest))
    assert worker is not None, done.stdout + done.stderr
    deadline = time.time() + 10
    while (_alive(worker) or Path(path).parent.exists()) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(worker) and not Path(path).parent.exists()
    log = (tmp_path / "workers.log").read_text()
    assert "worker" in log and "pool ended" in log, log


def test_messages_carry_descriptors_and_a_closed_connection_is_said():
    left, right = socket.socketpair()
    read, write = os.pipe()
    wire.send(left, {"argv": ["run", "é" * 5_000]}, [write])
    message, fds = wire.receive(right, max_fds=3)
    assert message == {"argv": ["run", "é" * 5_000]} and len(fds) == 1
    os.write(fds[0], b"through the passed descriptor")
    assert os.read(read, 100) == b"through the passed descriptor"
    for fd in (read, write, *fds):
        os.close(fd)
    left.close()
    with pytest.raises(wire.Closed):
        wire.receive(right)
    right.close()


@pytest.mark.parametrize(
    ("argv", "pooled"),
    [
        (["run", "--config", "{}", "--threads", "1"], True),
        (["analytic", "--run", "a.json", "--out", "a.zarr", "--threads=1"], True),
        (["run", "--config", "{}", "--threads", "2"], False),  # the workers have one thread
        (["run", "--config", "{}"], False),
        (["figures", "--threads", "1"], False),  # no JAX, and it forks
        (["collect", "--sweep", "s.json", "--runs", "r", "--out", "s.zarr"], True),
        (["report", "--summary", "s.zarr", "--figures", "f", "--out", "r.html"], True),
        (["figures", "--summary", "s.zarr", "--out", "f"], False),
        (["run", "--help", "--threads", "1"], False),
        ([], False),
    ],
)
def test_which_commands_the_pool_runs(argv, pooled):
    assert client.runs_in_pool(argv) is pooled
