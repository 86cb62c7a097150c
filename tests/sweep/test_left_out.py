"""Finished runs a config no longer has are named at start, never silently dropped (issue 21)."""

from __future__ import annotations

from ntkpipe.sweep.layout import Layout
from ntkpipe.sweep.left_out import finished_runs_left_out, left_out_message

NOW = ["width~64/n_train~32/seeds~0-1", "width~256/n_train~32/seeds~0-1"]


def _finished(out, run_id):
    store = out / "runs" / run_id / "metrics.zarr"
    store.mkdir(parents=True)
    (store / "zarr.json").write_text("{}")


def test_finished_runs_of_dropped_points_are_found_and_named(tmp_path):
    out = tmp_path / "results" / "digits"
    for run_id in [*NOW, "width~2048/n_train~32/seeds~0-1", "width~1024/n_train~32/seeds~0-1"]:
        _finished(out, run_id)
    (out / "runs" / "width~4096" / "n_train~32" / "seeds~0-1").mkdir(parents=True)  # unfinished
    left = finished_runs_left_out(Layout(out), NOW)
    assert left == ["width~1024/n_train~32/seeds~0-1", "width~2048/n_train~32/seeds~0-1"]
    message = left_out_message(out, left, NOW)
    assert message.startswith(f"ntkpipe: {out} holds 2 finished run(s) this config does not")
    assert "will leave them out" in message and "--configfile" in message
    assert "(width~1024, width~2048; e.g. width~1024/n_train~32/seeds~0-1)" in message


def test_nothing_to_say_when_every_finished_run_is_in_the_config(tmp_path):
    out = tmp_path / "results" / "digits"
    assert finished_runs_left_out(Layout(out), NOW) == []
    for run_id in NOW:
        _finished(out, run_id)
    assert finished_runs_left_out(Layout(out), NOW) == [] and left_out_message(out, [], NOW) is None
    _finished(out, "width~64/n_train~32/seeds~2-3")  # fewer seeds now
    left = finished_runs_left_out(Layout(out), NOW)
    assert "seeds~2-3" in left_out_message(out, left, NOW)
