"""The job's side: hand an ``ntkpipe`` command line to the pool's worker and wait for it.

Called first thing by :func:`ntkpipe.cli.main`, before JAX or the parser: with
``$NTKPIPE_WORKERS`` set (local sweeps, :mod:`ntkpipe.workers`), a command the pool runs goes to
a worker, which writes to this process's stdout and stderr (passed with the request) and sends
back the exit status. This process stays, forwarding the signals it gets to the worker, so
Snakemake sees a job like any other. Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from ntkpipe.workers import SOCKET_ENV, UNTHREADED_COMMANDS, pooled_commands, wire

__all__ = ["submit", "FORWARDED_SIGNALS"]

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP)
"""Signals the job's process passes on to the worker running its command."""


def submit(argv: list[str], environ=None) -> int | None:
    """Run the ``ntkpipe`` command `argv` in a worker of the pool.

    Returns:
        Its exit status; None when it is to run in this process instead (no pool, a command or
        thread count the pool does not run, or the worker refused it: the reason goes to
        stderr, the job's log).
    """
    env = os.environ if environ is None else environ
    address = env.get(SOCKET_ENV, "")
    if not address or not runs_in_pool(argv):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
        wire.send(sock, _request(argv, env), _descriptors(env))
        reply, _ = wire.receive(sock)
    except OSError as error:
        sock.close()
        _note(f"no worker answered ({error}): the job runs in its own process")
        return None
    if "refused" in reply:
        sock.close()
        _note(f"{reply['refused']}: the job runs in its own process")
        return None
    return _wait(sock, int(reply["pid"]))


def runs_in_pool(argv: list[str]) -> bool:
    """Whether the pool runs this command line: a JAX stage with ``--threads 1``, or collect
    or report (:data:`ntkpipe.workers.UNTHREADED_COMMANDS`)."""
    if not argv or argv[0] not in pooled_commands():
        return False
    if any(arg in ("-h", "--help") for arg in argv):
        return False
    threads = _threads(argv)
    return threads == "1" or (threads is None and argv[0] in UNTHREADED_COMMANDS)


def _threads(argv) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.partition("=")[2]
    return None


def _request(argv, env) -> dict:
    return {"argv": list(argv), "cwd": os.getcwd(), "env": dict(env), "program": program()}


def program() -> list[str]:
    """This process's Python and ntkpipe package: a worker runs a job only if they are its own."""
    import ntkpipe

    return [os.path.realpath(sys.executable), os.path.realpath(os.path.dirname(ntkpipe.__file__))]


def _descriptors(env) -> list[int]:
    """stdout, stderr and, in a workflow job, the job's stderr kept as ``$NTKPIPE_ERROR_FD``."""
    fds = [1, 2]
    error_fd = env.get("NTKPIPE_ERROR_FD", "")
    if error_fd.isdigit():
        try:
            os.fstat(int(error_fd))
            fds.append(int(error_fd))
        except OSError:
            pass
    return fds


def _wait(sock: socket.socket, pid: int) -> int:
    """The worker's exit status for the job, forwarding signals to it meanwhile."""
    received: list[int] = []

    def forward(number, frame):
        received.append(number)
        try:
            os.kill(pid, number)
        except OSError:
            pass

    # A signal this process ignores (a job started in the background with SIGINT ignored)
    # stays ignored: its own process would not have reacted either.
    previous = {
        number: signal.signal(number, forward)
        for number in FORWARDED_SIGNALS
        if signal.getsignal(number) is not signal.SIG_IGN
    }
    try:
        reply, _ = wire.receive(sock)
        return int(reply["status"])
    except OSError:
        if received:
            return 128 + received[-1]
        _note(f"the worker (pid {pid}) running this job ended without an exit status")
        return 1
    finally:
        sock.close()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _note(text: str) -> None:
    print(f"ntkpipe: warm worker: {text}", file=sys.stderr, flush=True)
