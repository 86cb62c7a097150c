"""Sweep-level stages (rules ``collect``, ``figures``, ``report``): every run's metrics (and the
ensembles) in summary.zarr, the figures drawn from it, and the HTML report.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import xarray as xr

from ntkpipe.io import stores as storage
from ntkpipe.jobs._store_job import Job, log  # not _job: no JAX in these jobs
from ntkpipe.sweep import ensemble as ensemble_plan
from ntkpipe.sweep import facts, stage_table
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep.layout import summary_rows_cache

__all__ = ["collect", "figures", "report"]

_ENSEMBLE_STORE = stage_table.BY_RULE["ensemble"].store


def collect(
    sweep: Path,
    runs: Path,
    out: Path,
    ensembles: Path | None = None,
    overwrite: bool = False,
    cache: Path | None = None,
) -> None:
    """Every run's metrics in one dataset with the sweep axes as dimensions (summary.zarr).

    Each run's metrics store is read once into its summary row (plain arrays,
    :func:`ntkpipe.io.arrays.read_arrays`) and the rows are stacked
    (:func:`ntkpipe.analysis.summary_rows.summarize`). The rows are kept in `cache` (default:
    ``.<summary name>-rows.npz`` next to `out`), keyed by the SHA-256 of each store's metadata,
    so a rerun reads only the stores that are new or changed since (a store written again has
    another digest). Given `ensembles` (the folder holding ``<point>/ensemble.zarr``), the
    ensemble of every sweep point is added (:func:`ntkpipe.jobs.ensemble.summarize`).
    """
    from ntkpipe.analysis import metrics, summary_rows
    from ntkpipe.io import arrays

    job = Job(sweep, out, overwrite, rule="collect")
    sweep_config = job.config
    cache = Path(cache) if cache is not None else summary_rows_cache(out)
    cached, fresh, rows, read, shared = arrays.load_cache(cache), {}, [], 0, {}
    for one in ntk_runs.expand_runs(sweep_config):
        path = Path(runs) / one.run_id / stage_table.BY_RULE["compare"].store
        row = None
        if path.exists():
            digest = arrays.metadata_digest(path)
            hit = cached.get(one.run_id)
            if hit is None or digest is None or hit[0] != digest:
                row = summary_rows.row(arrays.read_arrays(path, stage="metrics"), shared)
                read += 1
            else:
                row = hit[1]
            fresh[one.run_id] = (digest, row)
        rows.append((one, row))
    ds = summary_rows.summarize(sweep_config, rows)
    log(f"collect: {len(fresh)}/{len(rows)} runs ({read} read, {len(fresh) - read} cached)")
    if ensembles is not None:
        ds = metrics.in_schema_order(_with_ensembles(ds, sweep_config, Path(ensembles)))
    # What the sweep cannot measure by construction (custom models: no Θ, K), for the claims.
    ds.attrs["not_applicable"] = json.dumps(facts.not_applicable(sweep_config))
    job.write(ds, stage="summary")
    if read or fresh.keys() != cached.keys():
        arrays.save_cache(cache, fresh)


def figures(summary: Path, out: Path) -> None:
    """Every figure that applies to the sweep, as SVG files in `out` (with PNG and PDF), drawn
    by as many processes as this one may use cores (``--threads``)."""
    from ntkpipe.analysis import plots

    Path(out).mkdir(parents=True, exist_ok=True)
    ds = storage.read_store(summary, stage="summary").load()  # in memory before the fork
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if "jax" in sys.modules:  # called from a process running JAX (threads): no fork
        workers = 1
    for path in plots.make_figures(ds, Path(out), workers=workers):
        log(f"figure: {path}")


def report(summary: Path, figures: Path, out: Path) -> None:
    """The self-contained HTML report of the sweep."""
    from ntkpipe.analysis import report as ntk_report

    paths = sorted(Path(figures).glob("*.svg")) + sorted(Path(figures).glob("*.png"))
    ntk_report.write_report(storage.read_store(summary, stage="summary"), paths, Path(out))
    log(f"report: {out}")


def _with_ensembles(summary, sweep_config, folder: Path):
    from ntkpipe.jobs import ensemble as ntk_ensemble  # imports JAX: only for ensembles

    axes = list(ntk_runs.sweep_axes(sweep_config))
    found, seen = [], set()
    for one in ntk_runs.expand_runs(sweep_config):
        point = ensemble_plan.point_id(one.run_id)
        if point in seen:
            continue
        seen.add(point)
        found.append(
            (one.axes, storage.read_store(folder / point / _ENSEMBLE_STORE, stage="ensemble"))
        )
    log(f"collect: {len(found)} ensemble(s)")
    attrs = summary.attrs
    merged = xr.merge(
        [summary, ntk_ensemble.summarize(axes, found)], join="outer", compat="override"
    )
    merged.attrs = attrs
    return merged
