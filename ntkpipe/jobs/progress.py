"""Training progress in a job's log, by time: a line every ~10 s and one at the end.

:class:`Progress` is the ``progress`` callback of :func:`ntkpipe.core.train.train`, which calls
it after every recorded segment (record steps are log-spaced, so late segments are long: the
second half of a 2^17-step run is one segment). Between callbacks a heartbeat thread prints the
step extrapolated from the measured rate (marked ``≈``), so a long segment is not silent.

The ETA is measured after compilation: the first callback's time includes tracing and XLA
compilation, so the rate is (steps since the first callback) / (time since it); until a second
callback there is no ETA ("eta after the first segment").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Progress", "INTERVAL_S"]

#: Seconds between progress lines.
INTERVAL_S = 10.0


class Progress:
    """``progress(step, steps, loss, elapsed_s)`` callback that logs by time.

    Args:
        log: prints one line (e.g. ``ntkpipe.jobs.stages.log``).
        interval: seconds between lines (the first and the last callback always log).
        clock: monotonic seconds (for tests).
        heartbeat: run the thread that logs extrapolated steps between callbacks.

    Call :meth:`close` (or use it as a context manager) when training returns; the heartbeat
    also stops by itself at the last step.
    """

    def __init__(
        self,
        log: Callable[[str], None],
        *,
        interval: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: bool = True,
    ):
        self._log, self._interval, self._clock = log, interval, clock
        self._first: tuple[float, int] | None = None  # (time, step) of the first callback
        self._last: tuple[float, int] | None = None
        self._last_line = -float("inf")
        self._steps = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = None
        self._heartbeat = heartbeat

    def __call__(self, step: int, steps: int, loss: float, elapsed: float) -> None:
        now = self._clock()
        with self._lock:
            self._steps = int(steps)
            if self._first is None:
                self._first = (now, int(step))
            self._last = (now, int(step))
            final = int(step) >= int(steps)
            due = final or now - self._last_line >= self._interval or self._first[1] == step
            if due:
                self._last_line = now
                self._log(
                    f"step {int(step)}/{int(steps)}  loss {loss:.6g}  elapsed {elapsed:.1f} s  "
                    f"{self._eta_text(int(step))}"
                )
        if final:
            self.close()
        elif self._heartbeat and self._thread is None:
            self._thread = threading.Thread(target=self._beat, daemon=True, name="progress")
            self._thread.start()

    def rate(self) -> float | None:
        """Steps per second since the first callback (compilation excluded), or None."""
        if self._first is None or self._last is None or self._last[0] <= self._first[0]:
            return None
        steps = self._last[1] - self._first[1]
        return steps / (self._last[0] - self._first[0]) if steps > 0 else None

    def eta(self, step: int) -> float | None:
        """Seconds left at `step`, from `rate` (None before a second callback)."""
        rate = self.rate()
        return None if rate is None else max(self._steps - step, 0) / rate

    def close(self) -> None:
        """Stop the heartbeat (training returned)."""
        self._done.set()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _eta_text(self, step: int) -> str:
        eta = self.eta(step)
        return "eta after the first segment" if eta is None else f"eta {eta:.1f} s"

    def _beat(self) -> None:
        while not self._done.wait(self._interval / 2):
            with self._lock:
                now, rate = self._clock(), self.rate()
                if rate is None or self._last is None or now - self._last_line < self._interval:
                    continue
                guess = min(int(self._last[1] + rate * (now - self._last[0])), self._steps - 1)
                self._last_line = now
                self._log(
                    f"step ≈ {guess}/{self._steps} (between records)  "
                    f"elapsed {now - self._first[0]:.1f} s since the first segment  "
                    f"{self._eta_text(guess)}"
                )
