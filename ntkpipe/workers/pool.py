"""The pool of warm workers of one Snakemake run (:mod:`ntkpipe.workers`).

:func:`start`, called by the workflow's ``onstart`` in Snakemake's own process, binds the
pool's Unix socket (in a new temporary folder) and starts the pool's process
(``python -m ntkpipe.workers.pool``) with it. The pool accepts the jobs' connections and hands
each to an idle worker (:mod:`ntkpipe.workers.worker`, over the worker's control socket); with
none idle it starts one, up to one per core Snakemake was given, and the connection waits. A
worker that dies is dropped (the job it ran fails: its process gets no exit status). The pool
ends, killing its workers and removing its folder, as soon as the Snakemake process that
started it is gone (its parent changes) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ntkpipe.workers import wire

__all__ = ["start", "stop"]

_POLL_S = 0.5
_STARTED: dict[str, subprocess.Popen] = {}  # socket path → the pool's process, of this process


def start(max_workers: int, log: Path, environ=None) -> str:
    """Start the pool for the jobs of this (Snakemake's) process; returns its socket's path.

    Args:
        max_workers: the most workers at once (Snakemake's cores).
        log: the pool's log (workers started, retired, died), appended to.
        environ: the pool's and its workers' environment (default this process's).
    """
    folder = tempfile.mkdtemp(prefix="ntkpipe-workers-")
    path = os.path.join(folder, "socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        _STARTED[path] = subprocess.Popen(
            [sys.executable, "-P", "-m", "ntkpipe.workers.pool"]
            + ["--listen", str(listener.fileno())]
            + ["--socket", path, "--workers", str(max(1, int(max_workers)))],
            pass_fds=[listener.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches the jobs, not the pool
            env=os.environ if environ is None else environ,
        )
    listener.close()
    return path


def stop(path: str, timeout: float = 10.0) -> None:
    """End the pool this process started at `path` (its workers with it) and wait for it. (A
    pool also ends by itself when the process that started it ends.)"""
    process = _STARTED.pop(path, None)
    if process is not None:
        process.terminate()
        process.wait(timeout)
    _remove(path)  # a pool stopped before it could clean up (SIGTERM at its start) leaves it


def _remove(path: str) -> None:
    """The socket and its temporary folder."""
    for remove, leftover in ((os.unlink, path), (os.rmdir, os.path.dirname(path))):
        try:
            remove(leftover)
        except OSError:
            pass


@dataclass
class _Worker:
    process: subprocess.Popen
    control: socket.socket
    slot: int
    state: str = "starting"  # starting → idle ⇄ busy


@dataclass
class _Pool:
    listener: socket.socket
    max_workers: int
    workers: dict[int, _Worker] = field(default_factory=dict)  # by the control's fileno
    waiting: collections.deque = field(default_factory=collections.deque)
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    ending: list = field(default_factory=list)  # dropped workers' processes, not yet waited for

    def serve(self, owner: int, stop: list) -> None:
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        while os.getppid() == owner and not stop:
            for key, _ in self.selector.select(timeout=_POLL_S):
                if key.data is None:
                    conn, _ = self.listener.accept()
                    self.waiting.append(conn)
                else:
                    self._heard(key.data)
            self._reap()
            self._dispatch()

    def _heard(self, worker: _Worker) -> None:
        try:
            message, _ = wire.receive(worker.control)
        except OSError:
            self._drop(worker, "ended")
            return
        if "retire" in message:
            self._drop(worker, "retired")
        else:  # ready, idle
            worker.state = "idle"

    def _dispatch(self) -> None:
        idle = [w for w in self.workers.values() if w.state == "idle"]
        while self.waiting and idle:
            conn, worker = self.waiting.popleft(), idle.pop()
            try:
                wire.send(worker.control, {"job": True}, [conn.fileno()])
                worker.state = "busy"
            except OSError:
                self._drop(worker, "unreachable")
                self.waiting.appendleft(conn)
                continue
            conn.close()
        starting = sum(w.state == "starting" for w in self.workers.values())
        while len(self.waiting) > starting and len(self.workers) < self.max_workers:
            self._spawn()
            starting += 1

    def _spawn(self) -> None:
        used = {w.slot for w in self.workers.values()}
        slot = min(set(range(self.max_workers)) - used)
        mine, theirs = socket.socketpair()
        process = subprocess.Popen(
            # -P: not the working folder first on sys.path (the jobs' `ntkpipe` command does
            # not have it either), so the worker imports the ntkpipe the jobs would
            [sys.executable, "-P", "-m", "ntkpipe.workers.worker"]
            + ["--control", str(theirs.fileno())]
            + ["--core", str(slot)],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        worker = _Worker(process, mine, slot)
        self.workers[mine.fileno()] = worker
        self.selector.register(mine, selectors.EVENT_READ, worker)
        _say(f"worker {process.pid} started (core slot {slot})")

    def _drop(self, worker: _Worker, why: str) -> None:
        self.selector.unregister(worker.control)
        del self.workers[worker.control.fileno()]
        worker.control.close()
        self.ending.append(worker.process)
        code = worker.process.poll()  # never wait here: the loop serves the other jobs
        code = "(still ending)" if code is None else code
        _say(f"worker {worker.process.pid} {why} (it was {worker.state}); exit status {code}")

    def _reap(self) -> None:
        for worker in list(self.workers.values()):
            if worker.process.poll() is not None and worker.state != "busy":
                self._drop(worker, f"exited with {worker.process.returncode}")
        self.ending = [process for process in self.ending if process.poll() is None]

    def close(self) -> None:
        processes = [w.process for w in self.workers.values()] + self.ending
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()
        for conn in self.waiting:
            conn.close()


def main(argv=None) -> int:
    stop: list = []
    signal.signal(signal.SIGTERM, lambda number, frame: stop.append(number))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m ntkpipe.workers.pool")
    parser.add_argument("--listen", type=int, required=True, help="the bound socket (a fd)")
    parser.add_argument("--socket", required=True, help="its path (removed at the end)")
    parser.add_argument("--workers", type=int, required=True, help="the most workers at once")
    args = parser.parse_args(argv)
    pool = _Pool(socket.socket(fileno=args.listen), args.workers)
    _say(f"pool {os.getpid()} for Snakemake {os.getppid()}: up to {args.workers} workers")
    try:
        pool.serve(os.getppid(), stop)
    finally:
        pool.close()
        _remove(args.socket)
        _say(f"pool ended; CPU of the pool and its workers: {_cpu_seconds():.2f} s")
    return 0


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for workers (Snakemake, which
    does not wait for the pool, cannot count them; the benchmarks read them from the log)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _say(text: str) -> None:
    print(f"ntkpipe workers: {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
