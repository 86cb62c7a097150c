"""One warm worker: a process that has imported JAX and the jobs' modules once and runs job
after job, each as ``ntkpipe <argv>`` (:func:`ntkpipe.cli.main`) would in a process of its own.

Started by the pool (:mod:`ntkpipe.workers.pool`) as ``python -m ntkpipe.workers.worker
--control FD --core K``: XLA gets one thread, pinned to core K, before JAX starts; the
compilation cache is the pool's. It then says ``ready`` on its control socket and waits there
for the connections the pool hands it, one job each:

1. the job's request (its command line, working folder and environment) and its stdout, stderr
   and error descriptors come on the connection;
2. a job whose start-up environment differs from the worker's (:data:`STARTUP_ENV_PREFIXES`) is
   refused (it then runs in its own process); otherwise the worker sends its pid (the job's
   process forwards signals to it), points its own descriptors 1 and 2 at the job's, takes the
   job's folder and environment, and calls :func:`ntkpipe.cli.main`;
3. it restores its own descriptors, folder, environment and JAX's global settings, sends the
   exit status, and says ``idle`` to the pool.

A thread watches the connection while the job runs: if the job's process ends (Snakemake
killed it), the worker kills itself at once, so no job outlives its Snakemake job. A job ended
by a signal or an unexpected exception (its state unknown), or a worker that has held more than
``$NTKPIPE_WORKER_MAX_MB`` of memory (default 4096) or 200 jobs, retires after the job: the pool
starts another when one is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import select
import signal
import socket
import sys
import threading
import traceback

from ntkpipe.workers import SOCKET_ENV, pooled_commands, startup_environment, wire

__all__ = ["main", "MAX_JOBS"]

MAX_JOBS = 200
"""Jobs a worker runs before it retires (its compiled programs and caches are let go)."""

_JAX_SETTINGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_debug_nans")


def main(argv=None) -> int:
    # The pool ignores Ctrl-C (its jobs' processes get it, and forward it here): a job gets
    # KeyboardInterrupt from a forwarded SIGINT as it would in a process of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = _parse(argv)
    startup = startup_environment(os.environ)  # as started, before pin_threads adds to it
    from ntkpipe.process import configure_compilation_cache, pin_threads

    pin_threads(1, core=args.core)
    configure_compilation_cache()
    _warm_up()
    control = socket.socket(fileno=args.control)
    wire.send(control, {"ready": os.getpid()})
    done = 0
    while True:
        try:
            _, fds = wire.receive(control, max_fds=1)
        except OSError:
            return 0  # the pool is gone
        with socket.socket(fileno=fds[0]) as conn:
            retire = _serve(conn, startup)
        done += 1
        retire = retire or done >= MAX_JOBS or _peak_mb() > _max_mb()
        wire.send(control, {"retire" if retire else "idle": os.getpid()})
        if retire:
            return 0


def _serve(conn: socket.socket, startup: dict) -> bool:
    """Run the job on `conn`; whether this worker should retire after it."""
    try:
        request, fds = wire.receive(conn, max_fds=3)
    except OSError:
        return False
    try:
        if _peer_gone(conn):
            return False
        if refusal := _refusal(request, startup):
            wire.send(conn, {"refused": refusal})
            return False
        wire.send(conn, {"pid": os.getpid()})
        status, retire = _run(request, fds, conn)
        with contextlib.suppress(OSError):
            wire.send(conn, {"status": status})
        return retire
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _refusal(request: dict, startup: dict) -> str | None:
    """Why this worker cannot run the job as its own process would (None: it can)."""
    from ntkpipe.workers.client import program

    if request.get("program") != program():
        return f"the job runs {request.get('program')}, this worker {program()}"
    differs = sorted(
        key
        for key in set(startup) | set(startup_environment(request["env"]))
        if startup.get(key) != request["env"].get(key)
    )
    if differs:
        return f"the environment differs from the worker's in {', '.join(differs)}"
    return None


def _run(request: dict, fds: list[int], conn: socket.socket) -> tuple[int, bool]:
    """The job's exit status, and whether it ended in a way that leaves this process unsure."""
    from ntkpipe import cli

    finished, wake = os.pipe()  # written when the job ends: the watcher stops at once
    watcher = threading.Thread(target=_watch, args=(conn, finished), daemon=True)
    watcher.start()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    saved_env, saved_cwd, saved_jax = dict(os.environ), os.getcwd(), _jax_settings()
    saved_path = list(sys.path)
    retire = False
    try:
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(SOCKET_ENV, None)
        if len(fds) > 2:
            os.environ["NTKPIPE_ERROR_FD"] = str(fds[2])
        else:
            os.environ.pop("NTKPIPE_ERROR_FD", None)
        os.chdir(request["cwd"])
        print(f"ntkpipe: warm worker {os.getpid()} runs this job", file=sys.stderr, flush=True)
        try:
            status = cli.main(request["argv"])
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if not isinstance(stop.code, int | None):
                print(stop.code, file=sys.stderr)
        except KeyboardInterrupt:  # a forwarded Ctrl-C: what Python exits with on SIGINT
            traceback.print_exc()
            status, retire = 128 + signal.SIGINT, True
        except BaseException:  # noqa: BLE001 (the job's process reports it; the worker goes on)
            traceback.print_exc()
            status, retire = 1, True
    finally:
        os.write(wake, b"x")
        watcher.join()
        os.close(wake)
        os.close(finished)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        _restore_jax_settings(saved_jax)
    return int(status), retire


def _watch(conn: socket.socket, finished: int) -> None:
    """Kill this process when the job's process ends before the job does (`finished`, a pipe's
    read end, becomes readable when the job ends)."""
    while True:
        readable, _, _ = select.select([conn, finished], [], [])
        if finished in readable:
            return
        if _peer_gone(conn):
            os._exit(70)  # the Snakemake job is gone: its work must stop with it


def _peer_gone(conn: socket.socket) -> bool:
    """Whether the other side has closed (it never sends after its request)."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _jax_settings() -> dict:
    import jax

    return {name: getattr(jax.config, name) for name in _JAX_SETTINGS if hasattr(jax.config, name)}


def _restore_jax_settings(saved: dict) -> None:
    import jax

    for name, value in saved.items():
        if getattr(jax.config, name) != value:
            jax.config.update(name, value)


def _warm_up() -> None:
    """What every job imports (≈ 2 s of CPU), once; and XLA's backend, started now: it reads
    its flags (``XLA_FLAGS``, which :func:`ntkpipe.process.pin_threads` set) from the
    environment when it starts, and a job's environment replaces the worker's while it runs."""
    import jax

    from ntkpipe import cli

    cli.import_stage_modules(pooled_commands())
    jax.devices()


def _peak_mb() -> float:
    """The most memory this process has held (resident, MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _max_mb() -> float:
    try:
        return float(os.environ.get("NTKPIPE_WORKER_MAX_MB", "4096"))
    except ValueError:
        return 4096.0


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m ntkpipe.workers.worker")
    parser.add_argument("--control", type=int, required=True, help="the pool's socket (a fd)")
    parser.add_argument("--core", type=int, default=None, help="the core XLA's thread runs on")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
