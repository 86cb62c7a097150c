"""The sweep summary stacked from per-run rows, in time and memory linear in the runs.

A row is a run's ``metrics.zarr`` reduced to what the summary takes from it: {name: (dims,
values, attrs)} in plain NumPy, the data variables and the dimension coordinates (``model``,
``seed``, ``step``, ``layer``, ``wsample``); ``t = η·step`` is rebuilt for the whole sweep.
`summarize` places each row into arrays allocated once over (sweep axes…, seed, …) and hands
them to `ntkpipe.analysis.metrics.finish_summary`. The result is the dataset
`tests.combined_summary.summarize` (the tests' reference) combines from one xarray Dataset per
run (expand_dims, reindex and ``combine_by_coords``: ~10 ms a run, and every run's Dataset held
at once), with the same variables, dims, dtypes, coordinates and attributes, following its
stacking rules: axis values ascending, seed chunks in seed order, a variable without ``seed``
given the seed dimension when a sweep point has several seed chunks, a missing run NaN (its
variables then float64), ``layer`` and ``wsample`` the union of the runs' labels. Runs that
differ in anything else (variables, dims, steps, models, seeds other than the run's), which
``combine_by_coords`` cannot stack either, are refused with an error naming them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ntkpipe.analysis import metrics
from ntkpipe.analysis.summary import LAYER_ROLES

#: Dimensions whose labels are the union over the runs (runs of different depths).
UNION_DIMS = ("layer", "wsample")


def row(arrays: dict, shared: dict | None = None) -> dict:
    """A run's summary row from its metrics store's arrays {name: (dims, values, attrs)}
    (:func:`ntkpipe.io.arrays.read_arrays`): everything but ``t``.

    Args:
        shared: dims and attributes already seen (keep one for all rows of a sweep): equal
            ones of every run are then one object, not one per run (most of a row's memory).
    """
    shared = {} if shared is None else shared
    out = {}
    for name, (dims, values, attrs) in arrays.items():
        if name != "t":
            dims = shared.setdefault(tuple(dims), tuple(dims))
            key = (name, repr(sorted(attrs.items())))
            out[name] = (dims, values, shared.setdefault(key, attrs))
    return out


def summarize(sweep_config: dict, runs: list) -> xr.Dataset:
    """The sweep summary of `runs`, [(Run, row or None)] in the order of
    ``ntkpipe.sweep.runs.expand_runs`` (None: the run has no metrics yet).

    Raises:
        ValueError: no run has metrics yet, or runs that cannot be stacked (naming them and
            what differs).
    """
    axes = [path.split(".")[-1] for path in sweep_config.get("sweep", {})]
    present = [(run, _without(r, axes)) for run, r in runs if r is not None]
    if not present:
        raise ValueError("no run has metrics yet: nothing to summarize")
    _check_stackable(present)
    grid = _grid(axes, [run for run, _ in runs], present)
    missing = [run for run, r in runs if r is None]
    data = {name: _stack(grid, name, present, missing) for name in grid["names"]}
    data["layer_role_code"] = _role_codes(grid, present)
    return metrics.finish_summary(xr.Dataset(data, coords=grid["coords"]), sweep_config, axes)


# ---------------------------------------------------------------- the layout


def _without(r: dict, axes) -> dict:
    """The row without variables named like a sweep axis (the axis' coordinate replaces them)."""
    return {name: entry for name, entry in r.items() if name not in axes}


def _is_coord(name, dims) -> bool:
    return tuple(dims) == (name,)


def _names(r: dict) -> list:
    return sorted(n for n, (dims, _, _) in r.items() if not _is_coord(n, dims))


def _check_stackable(present) -> None:
    """Raises ValueError unless every run has the first one's variables and dims, its own seeds,
    and the same labels on every dimension but the sweep axes, seed, layer and wsample (which
    runs of different depths do not share)."""
    first_run, first = present[0]
    for name in ("status", "layer", "seed"):
        if name not in first:
            _refuse(first_run, first_run, f"its store has no {name!r}: not a metrics store")
    labels = {d: first[d][1] for d, _ in _all_dims(first).items() if d in first}
    for run, r in present:
        if _names(r) != _names(first):
            only = sorted(set(_names(r)) ^ set(_names(first)))
            _refuse(run, first_run, f"variables only in one of them: {', '.join(only)}")
        if [int(s) for s in r["seed"][1]] != [int(s) for s in run.seeds]:
            _refuse(run, first_run, f"its store holds seeds {list(r['seed'][1])}")
        for name in _names(r):
            if r[name][0] != first[name][0]:
                _refuse(run, first_run, f"{name} has dims {r[name][0]}, not {first[name][0]}")
        for dim, size in _all_dims(r).items():
            if dim in ("seed", *UNION_DIMS):
                continue
            if dim in labels and not _equal(r[dim][1], labels[dim]):
                _refuse(run, first_run, f"other {dim} labels ({list(r[dim][1])})")
            if size != _all_dims(first)[dim]:
                _refuse(run, first_run, f"{dim} has length {size}")
    for name in _names(first):
        kinds = {r[name][1].dtype.kind for _, r in present}
        if any(d in UNION_DIMS for d in first[name][0]) and not kinds <= set("fiu"):
            _refuse(first_run, first_run, f"{name} holds no numbers but is on layers")


def _all_dims(r: dict) -> dict:
    return {d: n for dims, values, _ in r.values() for d, n in zip(dims, values.shape, strict=True)}


def _refuse(run, first, what: str):
    raise ValueError(
        f"run {run.run_id} cannot be stacked with run {first.run_id} into one summary: {what}. "
        f"A metrics store of another ntkpipe version or config: rerun its compare stage "
        f"(delete {run.run_id}/metrics.zarr, or snakemake --forcerun compare)"
    )


def _grid(axes, runs, present) -> dict:
    """Where every run goes: axis positions, seed offsets, the shared coordinates (the union of
    the runs' layer and wsample labels, natural order) and the dimensions' sizes."""
    first = present[0][1]
    chunks = sorted({tuple(run.seeds) for run in runs}, key=lambda seeds: seeds[0])
    values = {a: sorted({run.axes[a] for run in runs}) for a in axes}
    seed_of, start = {}, 0
    for seeds in chunks:
        seed_of[seeds] = slice(start, start + len(seeds))
        start += len(seeds)
    coords = {a: _axis_coordinate(a, values[a]) for a in axes}
    coords["seed"] = xr.Variable("seed", np.concatenate(chunks), _merged_attrs(present, "seed"))
    sizes, labels = dict(_all_dims(first)), {}
    for dim in _all_dims(first):
        if dim in UNION_DIMS and dim in first:
            found = {str(v) for _, r in present for v in r[dim][1]}
            union = sorted(found, key=metrics.natural_key)
            labels[dim] = {label: i for i, label in enumerate(union)}
            coords[dim], sizes[dim] = np.asarray(union), len(union)
        elif dim in first and dim != "seed":
            coords[dim] = xr.Variable(dim, first[dim][1], _merged_attrs(present, dim))
    sizes.update({a: len(values[a]) for a in axes}, seed=start)
    return {
        "axes": axes,
        "position": {a: {v: i for i, v in enumerate(values[a])} for a in axes},
        "sizes": sizes,
        "seed_of": seed_of,
        "split": len(chunks) > 1,  # seed chunks are concatenated: every variable gets ``seed``
        "labels": labels,
        "coords": coords,
        "names": _names(first),
        "gaps": {d: any(len(r[d][1]) != sizes[d] for _, r in present) for d in labels},
        "where": {},
    }


def _axis_coordinate(axis, values) -> xr.Variable:
    """The coordinate of a sweep axis as stacking one-value axes makes it (its dtype: text is
    object, ints and floats together float)."""
    pieces = [xr.Dataset().expand_dims({axis: [value]}) for value in values]
    return (xr.concat(pieces, dim=axis) if len(pieces) > 1 else pieces[0])[axis].variable


def _equal(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.all(a == b))


# ---------------------------------------------------------------- stacking


def _stack(grid, name, present, missing) -> xr.Variable:
    """One variable of every run in (axes…, [seed,] own dims), missing runs NaN."""
    dims = present[0][1][name][0]
    extra = ("seed",) if grid["split"] and "seed" not in dims else ()
    out_dims = (*grid["axes"], *extra, *dims)
    shape = tuple(grid["sizes"][d] for d in out_dims)
    dtypes = [r[name][1].dtype for _, r in present]
    gaps = [d for d in dims if grid["gaps"].get(d)]
    text = name == "status" or any(d.kind in "UOT" for d in dtypes)  # T: numpy's StringDType
    if text:  # per-run text (status, regime): object, a missing run's text as finish_summary's
        dtype = np.dtype(object)
    else:
        dtype = np.result_type(*dtypes, *([np.float64] if missing else []))
        dtype = np.dtype(np.float64) if gaps and dtype.kind != "f" else dtype
    out = np.full(shape, np.nan, dtype=dtype) if dtype.kind == "f" else np.empty(shape, dtype)
    for run, r in present:
        out[_where(grid, run, dims, extra, r)] = r[name][1]
    for run in missing:
        out[_where(grid, run, dims, extra, None)] = _missing_value(name) if text else np.nan
    attrs = _merged_attrs(present, name)
    return xr.Variable(out_dims, out, attrs)


def _missing_value(name: str) -> str:
    """A missing run's value of a text variable: its status ``missing``, else no text."""
    return metrics.STATUS_MISSING if name == "status" else ""


def _where(grid, run, dims, extra, r) -> tuple:
    """The index of `run`'s block in a stacked variable with own dims `dims` (made once per
    run and dims: variables share them)."""
    key = (run.run_id, dims, extra, r is None)
    if key not in grid["where"]:
        grid["where"][key] = _index(grid, run, dims, extra, r)
    return grid["where"][key]


def _index(grid, run, dims, extra, r) -> tuple:
    # Slices only (one label list at most): NumPy keeps every dimension in place.
    index = [_at(grid["position"][a][run.axes[a]]) for a in grid["axes"]]
    seeds = grid["seed_of"][tuple(run.seeds)]
    index += [seeds] * len(extra)
    for dim in dims:
        if dim == "seed":
            index.append(seeds)
        elif dim in grid["labels"] and r is not None:
            index.append(_label_index(grid["labels"][dim], tuple(str(v) for v in r[dim][1])))
        else:
            index.append(slice(None))
    return tuple(index)


def _label_index(union: dict, labels: tuple):
    """Where a run's labels are among the union's: all of them in order, or their positions."""
    if len(labels) == len(union) and all(union[v] == i for i, v in enumerate(labels)):
        return slice(None)
    return [union[v] for v in labels]


def _at(i: int) -> slice:
    return slice(i, i + 1)


def _role_codes(grid, present) -> xr.Variable:
    """The layer roles of every run as codes 0, 1, 2 on (axes…, [seed,] layer), NaN where a
    run has no such layer (or no metrics)."""
    extra = ("seed",) if grid["split"] else ()
    out_dims = (*grid["axes"], *extra, "layer")
    out = np.full(tuple(grid["sizes"][d] for d in out_dims), np.nan)
    for run, r in present:
        layers = r["layer"][1]
        codes = [LAYER_ROLES.index(role) for role in metrics.layer_roles(layers)]
        out[_where(grid, run, ("layer",), extra, r)] = codes
    return xr.Variable(out_dims, out)


def _merged_attrs(present, name) -> dict:
    """The attributes of `name` in every run, those that differ between runs dropped."""
    merged, conflicts = {}, set()
    for _, r in present:
        for key, value in r[name][2].items():
            if key in merged and not _same(merged[key], value):
                conflicts.add(key)
            merged.setdefault(key, value)
    return {k: v for k, v in merged.items() if k not in conflicts}


def _same(a, b) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except (TypeError, ValueError):
        return False
