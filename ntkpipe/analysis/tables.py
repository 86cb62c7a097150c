"""The run table: one row per run with its status, η, η_crit and final metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ntkpipe.analysis.summary import STATUSES, sweep_axes

_RUN_COLUMNS = (
    "status",
    "regime",
    "learning_rate",
    "lr_critical",
    "lr_critical_traced",
    "diverged_step",
    "diverged_step_net",
    "diverged_step_lin",
)


def run_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per run (sweep point × seed): status, η, η_crit, divergence and final metrics.

    Columns: the sweep axes, ``seed``, ``status``, ``regime``, ``learning_rate``,
    ``lr_critical``, ``lr_critical_traced``, ``diverged_step`` (−1 = none) and its parts
    ``diverged_step_net``, ``diverged_step_lin`` (those the summary has), then whichever of
    ``loss_train`` / ``loss_test`` of f and f_lin and ``rmse_train`` / ``rmse_test`` exist, at
    the last record (so a diverged run shows its non-finite values, not the last finite ones).
    """
    end = ds.isel(step=-1, drop=True) if "step" in ds.dims else ds
    axes = sweep_axes(ds)
    index_dims = [*axes, "seed"] if "seed" in ds.dims else axes
    columns = {}
    for name in _RUN_COLUMNS:
        if name in end and name not in index_dims:
            columns[name] = end[name]
    for name in ("loss_train", "loss_test", "acc_test"):
        if name in end and "model" in end[name].dims:
            for model in end["model"].values:
                columns[f"{name} ({model})"] = end[name].sel(model=model, drop=True)
    for name in ("rmse_train", "rmse_test"):
        if name in end:
            columns[name] = end[name]
    grid = _grid(ds, index_dims)
    frame = xr.Dataset({k: v.broadcast_like(grid) for k, v in columns.items()}).to_dataframe(
        dim_order=index_dims
    )
    return frame.reset_index()[[*index_dims, *columns]]


def status_counts(ds: xr.Dataset) -> dict[str, int]:
    """Number of runs (sweep point × seed) per status, in `STATUSES` order (then any other)."""
    if "status" not in ds:
        return {}
    text = np.array([str(v) for v in np.ravel(ds["status"].values)], dtype=object)
    values, counts = np.unique(text, return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist(), strict=True))
    ordered = {s: found.pop(s) for s in STATUSES if s in found}
    return {**ordered, **found}


def _grid(ds: xr.Dataset, dims: Sequence[str]) -> xr.DataArray:
    shape = [ds.sizes[d] for d in dims]
    return xr.DataArray(np.zeros(shape), dims=list(dims), coords={d: ds[d] for d in dims})
