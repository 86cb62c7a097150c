"""The sweep-start log (io.invocations) and the provenance rows the report builds from it."""

from __future__ import annotations

import datetime as dt
import json
import socket

from ntkpipe.analysis import provenance
from ntkpipe.io import invocations

ARGV = ["/venv/bin/snakemake", "--cores", "all", "--configfile", "config/small/fig 3.yaml"]


def test_each_start_is_appended_whole_and_read_back_in_order(tmp_path):
    results = tmp_path / "results" / "fig3"
    assert invocations.read(results) == []
    first = invocations.record(
        results, ARGV, cwd="/home/me/ntk", when=dt.datetime(2026, 1, 2, 3, 4, 5, 678, dt.UTC)
    )
    assert first.time == "2026-01-02T03:04:05Z" and first.host == socket.gethostname()
    later = dt.datetime(2026, 1, 2, 5, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    invocations.record(results, [*ARGV, "-k"], cwd="/home/me/ntk", when=later)
    starts = invocations.read(results)
    assert [s.time for s in starts] == ["2026-01-02T03:04:05Z", "2026-01-02T03:00:00Z"]
    assert starts[0] == first and starts[1].argv == (*ARGV, "-k")
    lines = (results / invocations.FILE).read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["argv"] == ARGV
    assert [p.name for p in results.iterdir()] == [invocations.FILE]  # no temporary left


def test_the_command_is_shown_as_typed_with_the_program_by_name():
    start = invocations.Invocation("t", "/w", tuple(ARGV), "h", "u")
    assert start.command == "snakemake --cores all --configfile 'config/small/fig 3.yaml'"
    as_module = invocations.Invocation("t", "/w", ("/x/snakemake/__main__.py", "-c1"), "h", "u")
    assert as_module.command == "snakemake -c1"  # python -m snakemake


def test_a_line_that_is_not_a_start_is_skipped_and_the_next_start_kept(tmp_path):
    invocations.record(tmp_path, ARGV)
    with open(tmp_path / invocations.FILE, "a") as f:
        f.write('{"time": "cut by an editor"')  # no newline, not JSON
    invocations.record(tmp_path, ["snakemake", "-c1"])
    starts = invocations.read(tmp_path)
    assert [s.command for s in starts] == [
        "snakemake --cores all --configfile 'config/small/fig 3.yaml'",
        "snakemake -c1",
    ]


def test_the_report_rows_show_the_latest_start_and_how_many_there_were(tmp_path):
    rows = dict(provenance.command_rows(tmp_path, "ntkpipe report --summary s.zarr"))
    assert rows == {
        "command": "ntkpipe report --summary s.zarr (this report's own: no sweep start recorded)"
    }
    invocations.record(tmp_path, ["snakemake", "-c1"], cwd="/first")
    rows = dict(provenance.command_rows(tmp_path, "ntkpipe report"))
    assert rows["command"] == "snakemake -c1" and "sweep starts" not in rows
    invocations.record(tmp_path, ARGV, cwd="/home/me/ntk")
    rows = dict(provenance.command_rows(tmp_path, "ntkpipe report"))
    assert rows["command"].startswith("snakemake --cores all")
    assert rows["started"].endswith("in /home/me/ntk") and socket.gethostname() in rows["started"]
    assert rows["sweep starts"].startswith("2, the latest shown")
