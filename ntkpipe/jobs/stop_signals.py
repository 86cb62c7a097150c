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
"""

from __future__ import annotations

import contextlib
import signal
import threading

from ntkpipe.errors import NtkpipeError

__all__ = ["STOP_SIGNALS", "StopRequest", "Stopped", "stop_requests"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
"""The signals that ask a job to checkpoint and stop."""


class Stopped(NtkpipeError):
    """The job was asked to stop (:data:`STOP_SIGNALS`) and saved a checkpoint to resume from."""


class StopRequest:
    """The signal received since :func:`stop_requests` began (None: none)."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    def _handle(self, number, frame) -> None:  # a signal handler: record only
        self.signal = signal.Signals(number)


@contextlib.contextmanager
def stop_requests():
    """Records :data:`STOP_SIGNALS` instead of dying from them, for the block; the previous
    handlers are restored after. Outside the main thread (where Python cannot install handlers)
    nothing changes and the request stays None."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {number: signal.signal(number, request._handle) for number in STOP_SIGNALS}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
