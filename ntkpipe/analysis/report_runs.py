"""The report's runs table: status counts, flagged runs first, links to stores and logs.

Each row is a run (sweep point × seed) of `analysis.run_table`; its first cell links the run's
folder (``runs/<run id>/``, its stores) and its job logs (``logs/<rule>/<run id>.log``),
relative to the report; numeric cells carry a ``data-sort`` key for the page's sorting.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ntkpipe.analysis import aggregate as analysis

#: How each run status is shown.
STATUS_LABELS = {
    "ok": "ok",
    "lr_above_critical": "lr above η_crit",
    "diverged": "diverged",
    "missing": "missing",
    "catapult": "catapult (f converges, f_lin diverges)",
    "lr_between_critical": "η between full and traced η_crit",
}
#: Runs shown in the page's table at most (a 10,000-run sweep stays well under 1 MB); every
#: run is in runs.tsv next to the report.
MAX_RUN_ROWS = 500


def runs_context(table: pd.DataFrame, ds, results_dir, runs_tsv) -> dict:
    """What the template's runs section shows: status counts, the flagged runs, at most
    `MAX_RUN_ROWS` rows (flagged first) with links to each run's stores and logs."""
    links = _run_links(ds, results_dir)
    status = table["status"].astype(str) if "status" in table.columns else None
    flagged = table[status != "ok"] if status is not None else table.iloc[:0]
    ordered = pd.concat([flagged, table.drop(flagged.index)]) if status is not None else table
    shown = ordered.iloc[:MAX_RUN_ROWS]
    columns = (["files"] if links else []) + list(table.columns)
    counts = status.value_counts() if status is not None else pd.Series(dtype=int)
    return {
        "count": len(table),
        "counts": [(_css(s), STATUS_LABELS.get(s, s), int(n)) for s, n in counts.items()],
        "columns": columns,
        "attention": [_row(r, table.columns, links) for r in flagged.itertuples(index=False)],
        "rows": [_row(r, table.columns, links) for r in shown.itertuples(index=False)],
        "shown": len(shown),
        "open": len(table) <= 50,
        "all_ok": _all_ok(table) if status is not None else "",
        "tsv": runs_tsv,
    }


def _row(record, columns, links) -> list[dict]:
    cells = []
    values = dict(zip(columns, record, strict=True))
    for column, value in values.items():
        text = STATUS_LABELS.get(str(value), str(value)) if column == "status" else _cell(value)
        cells.append(
            {
                "text": text,
                "css": _css(value) if column == "status" else "",
                "sort": _sort_key(value),
                "links": None,
            }
        )
    if links:  # first: the run's stores and logs
        key = tuple(str(_plain(values[c])) for c in links["index"] if c in values)
        found = links["runs"].get(key, [])
        cells.insert(0, {"text": "", "css": "", "sort": None, "links": found or [("—", "#runs")]})
    return cells


def _run_links(ds: xr.Dataset, results_dir: Path | None) -> dict | None:
    """{"index": the table columns naming a run, "runs": {their values: [(label, href)]}}: the
    run's folder (its stores) and its job logs, from the sweep config's run ids."""
    if results_dir is None or not (Path(results_dir) / "runs").is_dir():
        return None
    try:
        from ntkpipe.sweep import runs as ntk_runs

        expanded = ntk_runs.expand_runs(json.loads(ds.attrs["config"]))
    except Exception:  # an old or partial config: the table is still worth showing
        return None
    logs = Path(results_dir) / "logs"
    stages = sorted(p.name for p in logs.iterdir() if p.is_dir()) if logs.is_dir() else []
    axes = analysis.sweep_axes(ds)
    out = {}
    for run in expanded:
        found = [("stores", f"runs/{run.run_id}/")]
        for stage in stages:
            if (logs / stage / f"{run.run_id}.log").is_file():
                found.append((f"{stage} log", f"logs/{stage}/{run.run_id}.log"))
        for seed in run.seeds:
            key = tuple(str(_plain(run.axes[a])) for a in axes) + (str(seed),)
            out[key] = found
    return {"index": [*axes, "seed"], "runs": out}


def _all_ok(table: pd.DataFrame) -> str:
    """The sentence for a table whose runs are all ok: below η_crit, or not checked against it
    where η_crit is NaN (no Θ̂₀: kernels.initial false)."""
    unchecked = int(table["lr_critical"].isna().sum()) if "lr_critical" in table.columns else 0
    if not unchecked:
        return "Every run finished with a learning rate below η_crit."
    if unchecked == len(table):
        return (
            "Every run finished without diverging. η_crit was not computed (kernels.initial: "
            "false, no Θ̂₀), so no learning rate was checked against it."
        )
    return (
        f"Every run finished without diverging, with a learning rate below η_crit where it was "
        f"computed; {unchecked} runs have no η_crit (kernels.initial: false, no Θ̂₀)."
    )


def _cell(value) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return str(value)


def _sort_key(value) -> str | None:
    """A numeric sort key for numbers (NaN sorts as text, after the numbers)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating) and math.isfinite(value):
        return repr(float(value))
    return None


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _css(value) -> str:
    """A CSS class suffix from a status (letters and dashes only)."""
    return "".join(ch if ch.isalnum() else "-" for ch in str(value))
