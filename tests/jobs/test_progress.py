"""Progress lines by time, with an ETA that leaves out compilation (jobs.progress)."""

from __future__ import annotations

import threading
import time

from ntkpipe.jobs import progress


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_come_by_time_and_at_the_end_with_an_eta_after_compilation():
    lines, clock = [], _Clock()
    p = progress.Progress(lines.append, interval=10.0, clock=clock, heartbeat=False)
    clock.now = 30.0  # the first segment: 30 s of compilation, 10 steps
    p(10, 1010, 0.5, 30.0)
    assert len(lines) == 1 and "eta after the first segment" in lines[0]
    clock.now = 31.0  # 100 steps in 1 s: too soon for a line
    p(110, 1010, 0.4, 31.0)
    assert len(lines) == 1
    assert p.eta(110) == 9.0  # 900 steps left at 100 steps/s; compilation left out
    clock.now = 41.0  # 10 s later
    p(500, 1010, 0.2, 41.0)
    assert len(lines) == 2 and "step 500/1010" in lines[1]
    clock.now = 42.0
    p(1010, 1010, 0.1, 42.0)  # the end always logs
    assert len(lines) == 3 and "step 1010/1010" in lines[2] and "eta 0.0 s" in lines[2]


def test_a_naive_eta_would_include_compilation():
    """The control: the old estimate elapsed/step × steps left is 100× too long here."""
    clock = _Clock()
    p = progress.Progress(lambda _: None, clock=clock, heartbeat=False)
    clock.now = 100.0
    p(1, 1001, 1.0, 100.0)  # 100 s compiling, one step
    clock.now = 101.0
    p(101, 1001, 1.0, 101.0)  # then 100 steps per second
    naive = 101.0 / 101 * (1001 - 101)
    assert p.eta(101) == 9.0 and naive > 100 * p.eta(101) - 1


def test_the_heartbeat_logs_between_long_segments_and_stops_on_close():
    lines = []
    p = progress.Progress(lines.append, interval=0.2)
    p(1, 10_000, 1.0, 0.0)
    time.sleep(0.05)
    p(11, 10_000, 1.0, 0.05)  # a rate: ~200 steps/s
    time.sleep(0.7)
    beats = [line for line in lines if "≈" in line]
    assert beats, lines
    p.close()
    time.sleep(0.3)
    count = len(lines)
    time.sleep(0.5)
    assert len(lines) == count
    assert not any(t.name == "progress" and t.is_alive() for t in threading.enumerate())
