"""The sweep summary combined from one xarray Dataset per run (expand_dims, reindex and
``combine_by_coords``), as ``ntkpipe collect`` built it before it streamed rows
(:mod:`ntkpipe.analysis.summary_rows`): ~10 ms a run and every run's Dataset held at once.

Test-only: the reference the streamed summary must equal (tests/analysis/test_collect_stream.py,
tests/analysis/test_metrics.py) and the baseline of benchmarks/bench_collect.py.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ntkpipe.analysis import metrics
from ntkpipe.analysis.summary import LAYER_ROLES


def summarize(sweep_config, found):
    """The runs {run_id: (Run, metrics Dataset or None)} stacked along the sweep axes."""
    axes = [path.split(".")[-1] for path in sweep_config.get("sweep", {})]
    present = [(run, _with_role_codes(ds)) for run, ds in found.values() if ds is not None]
    pieces = [_with_axes(ds, run.axes, axes) for run, ds in present]
    pieces += [_missing(run, axes, present) for run, ds in found.values() if ds is None and present]
    if not pieces:
        raise ValueError("no run has metrics yet: nothing to summarize")
    # t = η·step is per run (η may be a sweep axis): rebuilt below from step and learning_rate.
    pieces = [piece.drop_vars("t", errors="ignore") for piece in pieces]
    # Runs of different depths have different layers (and sampled weights): give every run the
    # union, so that combine_by_coords stacks along the sweep axes only.
    pieces = _on_shared_labels(pieces, ("layer", "wsample"))
    summary = xr.combine_by_coords(pieces, combine_attrs="drop_conflicts", join="outer")
    return metrics.finish_summary(summary, sweep_config, axes)


def _with_role_codes(ds) -> xr.Dataset:
    """The run's layer roles (``layer_roles``) as codes 0, 1, 2 on ``layer`` (combinable)."""
    codes = [LAYER_ROLES.index(role) for role in metrics.layer_roles(ds.layer.values)]
    return ds.assign(layer_role_code=xr.DataArray(np.asarray(codes, dtype=float), dims="layer"))


def _on_shared_labels(pieces, dims) -> list:
    """Every piece reindexed to the union of the labels of `dims` (NaN where a run lacks one)."""
    for dim in dims:
        have = [piece for piece in pieces if dim in piece.dims]
        if not have:
            continue
        labels = sorted(
            {str(v) for piece in have for v in piece[dim].values}, key=metrics.natural_key
        )
        pieces = [
            piece.assign_coords({dim: [str(v) for v in piece[dim].values]}).reindex({dim: labels})
            if dim in piece.dims
            else piece
            for piece in pieces
        ]
    return pieces


def _with_axes(ds, values, axes) -> xr.Dataset:
    ds = ds.drop_vars([axis for axis in axes if axis in ds.variables])
    ds.attrs = {}
    return ds.expand_dims({axis: [values[axis]] for axis in reversed(axes)})


def _missing(run, axes, present) -> xr.Dataset:
    """A NaN block for a run without metrics, shaped like the finished ones."""
    template = present[0][1]
    text = [name for name in ("status", "regime") if name in template]  # per-seed text
    block = xr.full_like(template.drop_vars(text), np.nan, dtype=float)
    block = block.isel(seed=slice(0, len(run.seeds))).assign_coords(seed=list(run.seeds))
    block["status"] = xr.DataArray([metrics.STATUS_MISSING] * len(run.seeds), dims="seed")
    if "regime" in text:  # a missing run has no regime ("", as finish_summary writes it)
        block["regime"] = xr.DataArray([""] * len(run.seeds), dims="seed").astype(object)
    return _with_axes(block, run.axes, axes)
