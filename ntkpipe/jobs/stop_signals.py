"""Stop requests from the scheduler: SIGTERM (SLURM's time limit, preemption, ``scancel``) and
the warning signal ``sbatch --signal=USR1@<seconds>`` sends before the limit.

SLURM ends a job at its time limit, or when it is preempted, with SIGTERM and, ``KillWait``
seconds later (30 by default), SIGKILL. Killed at once, a training job would keep only its last
periodic checkpoint. Inside :func:`stop_requests`, either signal only records the request; the
training loop then finishes the segment it is in, saves a checkpoint and raises
:class:`Stopped`, so the job exits with a message naming the step and the checkpoint, and the
retry (Snakemake's ``retries``, or a rerun) resumes from it, bit-identical to an uninterrupted
run. A segment ends at every record step and every multiple of ``training.checkpoint_every``:
keep a segment shorter than ``KillWait`` (or ask for the warning signal early enough) so that the
checkpoint is written before SIGKILL.

A job inside SLURM also stops itself before its time limit (:func:`job_deadline`): at
:func:`ntkpipe.sweep.segments.reserve_s` before the end of the SLURM job it runs in, read from
``SLURM_JOB_END_TIME`` (Slurm ≥ 23.02) or else once from ``squeue``. That is how a job longer
than the partition's cap runs as segments (:mod:`ntkpipe.sweep.segments`) without waiting for
SIGTERM, whose ``KillWait`` grace may be shorter than one training segment.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import threading
import time

from ntkpipe.errors import NtkpipeError
from ntkpipe.sweep.segments import reserve_s

__all__ = ["STOP_SIGNALS", "StopRequest", "Stopped", "stop_requests", "job_deadline"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
"""The signals that ask a job to checkpoint and stop."""


class Stopped(NtkpipeError):
    """The job was asked to stop (:data:`STOP_SIGNALS`) and saved a checkpoint to resume from."""


class StopRequest:
    """The signal received since :func:`stop_requests` began (None: none), and the time
    (``time.time()``) at which the job stops itself (None: never)."""

    def __init__(self, deadline: float | None = None) -> None:
        self.signal: signal.Signals | None = None
        self.deadline = deadline

    def reason(self, progressed: bool = True) -> str | None:
        """Why the job should stop now (a signal's name, or its time budget), or None.

        Args:
            progressed: whether the job has done some work since it started (or resumed): the
                time budget stops it only then, so that every segment moves on.
        """
        if self.signal is not None:
            return self.signal.name
        if progressed and self.deadline is not None and time.time() >= self.deadline:
            return "time budget (the SLURM job's time limit is near)"
        return None

    def _handle(self, number, frame) -> None:  # a signal handler: record only
        self.signal = signal.Signals(number)


@contextlib.contextmanager
def stop_requests():
    """Records :data:`STOP_SIGNALS` instead of dying from them, for the block; the previous
    handlers are restored after. Outside the main thread (where Python cannot install handlers)
    nothing changes and the request stays None."""
    request = StopRequest(job_deadline())
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {number: signal.signal(number, request._handle) for number in STOP_SIGNALS}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@functools.cache
def job_deadline() -> float | None:
    """When this process, inside a SLURM job, stops itself: the job's end minus
    :func:`ntkpipe.sweep.segments.reserve_s` of its time limit (``time.time()`` seconds).

    None outside SLURM (no ``SLURM_JOB_ID``), for a job without a time limit, or when the end
    cannot be read (a note says so). Read once per process.
    """
    environ = os.environ
    job = environ.get("SLURM_JOB_ID")
    if not job:
        return None
    start, end = environ.get("SLURM_JOB_START_TIME"), environ.get("SLURM_JOB_END_TIME")
    if start and end and start.isdigit() and end.isdigit():
        limit, end_time = float(end) - float(start), float(end)
    else:
        left_limit = _squeue_left_and_limit(job)
        if left_limit is None:
            return None
        left, limit = left_limit
        end_time = time.time() + left
    if limit <= 0:
        return None
    deadline = end_time - reserve_s(limit)
    at = time.strftime("%H:%M:%S", time.localtime(deadline))
    print(
        f"time budget: SLURM job {job} ends in {end_time - time.time():.0f} s; training stops "
        f"{reserve_s(limit):.0f} s before, at {at}",
        flush=True,
    )
    return deadline


def _squeue_left_and_limit(job: str) -> tuple[float, float] | None:
    """(seconds left, time limit in seconds) of a SLURM job from ``squeue``, or None."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%L %l"],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout.split()  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        print(f"ntkpipe: SLURM job {job}: time limit not read ({error}); no time budget")
        return None
    seconds = [_slurm_seconds(value) for value in out[:2]]
    if len(seconds) != 2 or None in seconds:
        return None  # UNLIMITED, NOT_SET, or the job is not known
    return seconds[0], seconds[1]


def _slurm_seconds(value: str) -> float | None:
    """Seconds of a SLURM duration ``[days-][hours:]minutes:seconds`` (None: not one)."""
    days, _, clock = value.rpartition("-")
    parts = clock.split(":")
    if not all(part.isdigit() for part in parts) or not 1 <= len(parts) <= 3:
        return None
    if days and not days.isdigit():
        return None
    total = 0
    for part in parts:
        total = 60 * total + int(part)
    if len(parts) == 1:  # a bare number is minutes
        total *= 60
    return float(total + 86400 * int(days or 0))
