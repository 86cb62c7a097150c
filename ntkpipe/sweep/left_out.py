"""Finished runs a sweep's config no longer has: a width added once with ``--config`` and then
omitted, or a narrowed sweep file. Their stores stay under ``runs/``, but collect, the figures
and the report cover the config's runs only; :func:`left_out_message` says so at start, and how
to keep them (issue 21: the report silently dropped them before).
"""

from __future__ import annotations

from pathlib import Path

from ntkpipe.sweep import stage_table
from ntkpipe.sweep.layout import Layout

__all__ = ["finished_runs_left_out", "left_out_message"]


def finished_runs_left_out(layout: Layout, run_ids) -> list[str]:
    """The run ids under the sweep's runs folder whose last store (the compare stage's
    ``metrics.zarr``, renamed into place only when complete) exists, and that are not in
    ``run_ids`` (sorted)."""
    if not layout.runs.is_dir():
        return []
    finished = f"**/{stage_table.stage('compare').store}/zarr.json"
    wanted = set(run_ids)
    found = (
        str(path.parent.parent.relative_to(layout.runs)) for path in layout.runs.glob(finished)
    )
    return sorted(run_id for run_id in found if run_id not in wanted)


def left_out_message(out: str | Path, left_out: list[str], run_ids) -> str | None:
    """The start's note about ``left_out`` (None when there are none): how many, the axis values
    the config no longer has, and how to keep them in the report."""
    if not left_out:
        return None
    current = {segment for run_id in run_ids for segment in run_id.split("/")}
    missing = sorted(
        {seg for run_id in left_out for seg in run_id.split("/") if seg not in current},
        key=lambda seg: (seg.split("~")[0], _number(seg.split("~")[-1])),
    )
    values = ", ".join(missing) if missing else "other seeds"
    return (
        f"ntkpipe: {out} holds {len(left_out)} finished run(s) this config does not have "
        f"({values}; e.g. {left_out[0]}): the summary, figures and report will leave them out "
        "(their stores stay under runs/). To keep them in the report, keep those values in the "
        "sweep: write it to a config file (sweep: {…}) and run that with --configfile, rather "
        "than adding them with --config for one run."
    )


def _number(text: str):
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)
