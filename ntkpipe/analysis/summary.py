"""Access to the sweep summary: its axes, usable runs, last values, groups and number formats.

The sweep summary (`results/<sweep>/summary.zarr`, written by `ntkpipe collect`) is an xarray
Dataset whose dimensions are the sweep axes (short names in sweep order, listed as JSON in
``ds.attrs["sweep_axes"]``, e.g. ``width``, ``n_train``) plus ``model`` ("net" = f, "lin" =
f_lin), ``seed``, ``step`` and ``layer`` (with the coordinate ``layer_role`` ∈ {input, hidden,
output}). Missing combinations are NaN; every function here copes with NaN and with axes of
length 1. Pure: nothing here touches a file.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import xarray as xr

from ntkpipe.conventions import STATUSES  # noqa: F401  (the analysis' name for them)
from ntkpipe.sweep.facts import USABLE_STATUSES

#: Dimensions of the summary that are not sweep axes.
FIXED_DIMS = ("model", "seed", "step", "layer")

#: Layer roles in network order.
LAYER_ROLES = ("input", "hidden", "output")

KERNEL_SYMBOLS = {"ntk": "Θ̂", "nngp": "K̂"}


def sweep_axes(ds: xr.Dataset) -> list[str]:
    """The sweep axes of the summary present as dimensions, in sweep order.

    Read from ``ds.attrs["sweep_axes"]`` (a JSON list) when present, else every dimension that
    is not one of `FIXED_DIMS`.
    """
    declared = ds.attrs.get("sweep_axes")
    if declared is not None:
        names = json.loads(declared) if isinstance(declared, str) else list(declared)
        return [name for name in names if name in ds.dims]
    return [name for name in ds.dims if name not in FIXED_DIMS]


def usable_runs(ds: xr.Dataset, statuses: Sequence[str] = USABLE_STATUSES) -> xr.Dataset:
    """Set every value of runs whose status is not in `statuses` to NaN.

    Only floating-point variables that carry all of `status`'s dimensions are masked (the
    per-run ones); a summary without a `status` variable is returned unchanged.

    Args:
        ds: the summary.
        statuses: statuses to keep, from `STATUSES`.

    Raises:
        ValueError: an unknown status is asked for.
    """
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise ValueError(f"statuses={list(statuses)!r}: unknown {unknown}; allowed: {STATUSES}")
    if "status" not in ds:
        return ds
    keep = ds["status"].isin(list(statuses))
    masked = {
        name: var.where(keep)
        for name, var in ds.data_vars.items()
        if name != "status"
        and np.issubdtype(var.dtype, np.floating)
        and set(ds["status"].dims) <= set(var.dims)
    }
    return ds.assign(masked)


def final(ds: xr.Dataset) -> xr.Dataset:
    """Values at the last recorded step of every run.

    For every floating-point variable with a ``step`` dimension, the value at the last step
    where it is finite (the last recorded step for a complete run; a run that recorded fewer
    steps keeps its own last one; all-NaN stays NaN). Variables without ``step`` are kept.

    Args:
        ds: the summary (or any Dataset with a ``step`` dimension).

    Returns:
        The Dataset without the ``step`` dimension.
    """
    if "step" not in ds.dims:
        return ds
    out = {}
    for name, var in ds.data_vars.items():
        if "step" in var.dims and np.issubdtype(var.dtype, np.floating):
            out[name] = last_finite(var, "step")
        elif "step" in var.dims:
            along = [c for c, coord in var.coords.items() if "step" in coord.dims]
            out[name] = var.drop_vars(along).isel(step=-1)
        else:
            out[name] = var
    return xr.Dataset(out, attrs=ds.attrs).drop_vars("step", errors="ignore")


def layer_role_mean(weight_change: xr.DataArray, role: str) -> xr.DataArray:
    """Mean of `weight_change` over the layers of one role (NaN where the role has no layer).

    Args:
        weight_change: DataArray with a ``layer`` dimension and a ``layer_role`` coordinate
            (on ``layer``, or on ``layer`` and e.g. ``depth`` when the depth is swept).
        role: one of `LAYER_ROLES`.

    Raises:
        ValueError: unknown role, or no ``layer_role`` coordinate.
    """
    if role not in LAYER_ROLES:
        raise ValueError(f"role={role!r}: expected one of {LAYER_ROLES}")
    if "layer_role" not in weight_change.coords:
        raise ValueError(
            f"{weight_change.name!r} has no 'layer_role' coordinate; expected one on 'layer' "
            f"with values in {LAYER_ROLES}"
        )
    selected = weight_change.where(weight_change["layer_role"] == role)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return selected.mean("layer", skipna=True).drop_vars("layer_role", errors="ignore")


def groups(ds: xr.Dataset, exclude: Sequence[str] = ()) -> Iterator[tuple[dict, xr.Dataset]]:
    """Iterate over every combination of the sweep axes of length > 1 not in `exclude`.

    Yields:
        (group, sub): group maps each such axis to its value (a Python scalar); sub is `ds` at
        that point with those axes dropped. A single ({}, ds) when there is no such axis.
    """
    axes = [a for a in sweep_axes(ds) if a not in exclude and ds.sizes[a] > 1]
    for values in itertools.product(*(ds[a].values for a in axes)):
        point = dict(zip(axes, values, strict=True))
        yield {a: as_scalar(v) for a, v in point.items()}, ds.sel(point)


def has_data(ds: xr.Dataset, name: str) -> bool:
    """Whether the summary has variable `name` with at least one finite value."""
    return name in ds and bool(np.isfinite(ds[name].values.astype(float)).any())


def is_width_sweep(ds: xr.Dataset) -> bool:
    """Whether the width is a sweep axis with at least two values."""
    return "width" in sweep_axes(ds) and ds.sizes["width"] >= 2


def format_group(group: dict) -> str:
    """E.g. ``n_train = 32, depth = 3``; empty for the whole sweep."""
    return ", ".join(f"{k} = {v}" for k, v in group.items())


def as_scalar(value):
    """A NumPy or xarray scalar (e.g. a coordinate value) as a plain Python value; any other value
    unchanged."""
    return value.item() if hasattr(value, "item") else value


def format_number(value: float, digits: int = 2) -> str:
    """A number with a true minus sign, e.g. −0.52 (``nan`` for None and NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.{digits}f}".replace("-", "−")


def last_finite(var: xr.DataArray, dim: str) -> xr.DataArray:
    """`var` at the last position along `dim` where it is finite (position 0 when none is).

    The coordinates along `dim` (the step itself, t = η·step) are dropped: each run may end at
    a different step, so they would no longer be one value per position.
    """
    finite = np.isfinite(var)
    position = xr.DataArray(np.arange(var.sizes[dim]), dims=dim)
    last = position.where(finite, 0).max(dim)
    along = [name for name, coord in var.coords.items() if dim in coord.dims]
    return var.drop_vars(along).isel({dim: last})


def require_variable(ds: xr.Dataset, name: str, *, width: bool = False) -> None:
    """Raise ValueError unless the summary has variable `name` (and, with `width`, a width axis)."""
    if name not in ds:
        raise ValueError(f"the summary has no variable {name!r}; it has {sorted(ds.data_vars)}")
    if width and "width" not in sweep_axes(ds):
        raise ValueError(
            f"{name!r} against width needs 'width' as a sweep axis; the sweep axes are "
            f"{sweep_axes(ds)}"
        )
