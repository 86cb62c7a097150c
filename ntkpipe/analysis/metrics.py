"""Per-run metrics of f against f_lin, and the sweep summary (pure: xarray in, xarray out).

Per run (`metrics.zarr`), dims `model` ("net", "lin", and "lin_analytic" when the analytic
kernel is available), `seed`, `step`, `layer`:

- loss_train, loss_test, acc_train, acc_test (model, seed, step)
- rmse_train, rmse_test (seed, step): √mean over examples and outputs of (f_t − f_lin_t)²
- weight_change (model, seed, step, layer): ‖W_t − W_0‖_F/‖W_0‖_F (for f_lin: ‖ω_t‖_F/‖W_0‖_F)
- ntk_diag_init (seed, sample): Θ̂₀(x, x) of the first N_SAMPLES training examples (β, Hanin–Nica)
- ntk_change, nngp_change (seed): ‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F on the training set (NaN if not computed)
- ntk_analytic_error, nngp_analytic_error (seed): ‖Θ̂_0 − Θ‖_F/‖Θ‖_F (NaN if not computed);
  K̂ is the readout Gram mapped to the scale of K first, (K̂ − b)/a with `readout_gram_affine`
  (the identity in the NTK parameterization; in the standard one the Gram grows with n_L)
- fx_sample_train, fx_sample_test (model, seed, step, sample): output 0 of a few fixed examples
- weight_sample (model, seed, step, wsample): θ_t − θ_0 of a few fixed weight entries per layer
  (Fig. 3), when the stores have it; f records it at step 0 and T only (NaN between), the closed
  form f_lin at every record step
- rmse_train_analytic, rmse_test_analytic (seed, step): RMSE between f_t and the f_lin evolved
  with the analytic Θ (model "lin_analytic"; NaN without it)
- output_change_train, output_change_test (seed, step): √mean of (f_t − f_0)² of the network,
  the scale against which RMSE(f, f_lin) is judged (relative linearization error)
- ntk_mc_error, nngp_mc_error (seed): ‖mean of Θ̂_0 over the run's seeds up to this one − Θ‖_F /
  ‖Θ‖_F (K̂ on the scale of K, as above), with mc_samples (seed) the number of seeds averaged
  (Monte Carlo estimate, Fig. S9–S10)
- lr_critical, diverged_step (first step where f or f_lin diverged, −1: none), status (seed);
  learning_rate (scalar)

Without Θ̂₀ (``kernels.initial: false``, no ``kernel_init.zarr``) every metric of Θ̂₀ is NaN:
lr_critical, the kernel changes, the analytic and Monte Carlo errors; the learning rate is then
not checked against η_crit, so the status is "ok" unless the run diverged, never
"lr_above_critical".

The summary (`summary.zarr`) stacks runs along the sweep axes (named by their short names) and
concatenates seed chunks; combinations that are missing are NaN with status "missing".
"""

from __future__ import annotations

import json
import re

import numpy as np
import xarray as xr

from ntkpipe.analysis import finite_width
from ntkpipe.io import variables
from ntkpipe.sweep import facts
from ntkpipe.sweep.facts import readout_gram_affine  # noqa: F401  (its home; re-exported)

N_SAMPLES = 4
STATUS_OK, STATUS_HIGH_LR, STATUS_DIVERGED, STATUS_MISSING = facts.STATUSES


def run_metrics(config, *, trained, linear, kernel_init=None, kernel_final=None, analytic=None):
    """All metrics of one run from its stores (see the module docstring for the schema).

    Args:
        config: the run's configuration (``training.learning_rate`` is read).
        trained, linear: ``train.zarr`` and ``linear.zarr`` of the run.
        kernel_init: ``kernel_init.zarr`` (Θ̂₀, K̂₀, η_crit), or None without it
            (``kernels.initial: false``): lr_critical, kernel changes and kernel errors are
            then NaN and no seed is flagged lr_above_critical.
        kernel_final: ``kernel_final.zarr`` (Θ̂_T, K̂_T), or None: kernel changes are NaN.
        analytic: ``analytic.zarr`` (Θ, K), or None: kernel errors are NaN.
    """
    models = {"net": trained, "lin": linear}
    if "loss_train_analytic" in linear:
        models["lin_analytic"] = _analytic_part(linear)
    names = list(models)
    per_model = [_curves(models[name]) for name in names]
    ds = xr.concat(
        per_model,
        dim=xr.DataArray(names, dims="model"),
        join="outer",
        coords="minimal",
        compat="override",
    )
    ds["rmse_train"] = _rmse(trained.fx_train, linear.fx_train)
    ds["rmse_test"] = _rmse(trained.fx_test, linear.fx_test)
    for split in ("train", "test"):
        fx = trained[f"fx_{split}"]
        if f"fx_{split}_analytic" in linear:
            ds[f"rmse_{split}_analytic"] = _rmse(fx, linear[f"fx_{split}_analytic"])
        ds[f"output_change_{split}"] = _output_change(fx)
    ds["ntk_diag_init"] = finite_width.kernel_diagonal(kernel_init, ds.seed, N_SAMPLES)
    ds["ntk_change"] = _relative_change(kernel_final, kernel_init, "ntk_train_train", ds.seed)
    ds["nngp_change"] = _relative_change(kernel_final, kernel_init, "nngp_train_train", ds.seed)
    ds["ntk_analytic_error"] = _analytic_error(kernel_init, analytic, "ntk_train_train", ds.seed)
    nngp_init = None if analytic is None else _nngp_on_k_scale(kernel_init, config["model"])
    ds["nngp_analytic_error"] = _analytic_error(nngp_init, analytic, "nngp_train_train", ds.seed)
    if analytic is not None:
        for kernel, store in (("ntk", kernel_init), ("nngp", nngp_init)):
            name = f"{kernel}_train_train"
            ds[f"{kernel}_mc_error"] = (
                _nan_per_seed(ds.seed) if store is None else _mc_error(store[name], analytic[name])
            )
        ds["mc_samples"] = xr.DataArray(np.arange(1, ds.sizes["seed"] + 1), dims="seed")
    lr = config["training"]["learning_rate"]
    ds["lr_critical"] = _nan_per_seed(ds.seed) if kernel_init is None else kernel_init.lr_critical
    ds["diverged_step"] = _first_divergence(trained.diverged_step, linear.diverged_step)
    ds["learning_rate"] = lr
    ds["status"] = xr.DataArray(
        [
            _status(int(d), lr, float(c))
            for d, c in zip(ds.diverged_step.values, ds.lr_critical.values, strict=True)
        ],
        dims="seed",
    )
    return ds


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
    return finish_summary(summary, sweep_config, axes)


def finish_summary(summary, sweep_config, axes) -> xr.Dataset:
    """The stacked runs (with ``layer_role_code``, ``status`` NaN where missing) described by
    `ntkpipe.io.variables`, dimensions in schema order (sweep axes in config order first), with
    ``t = η·step`` (on ``step`` alone when η is one value, else on η's axes too), ``sample``,
    ``status_flag`` (CF flags of ``status``) and the sweep's fixed settings as attributes named
    by their config path (``training.steps``, …) next to the full ``config`` (JSON)."""
    status = summary.status.astype(object)
    summary["status"] = status.where(status.notnull(), STATUS_MISSING).astype(str)
    summary["status_flag"] = _status_flags(summary["status"])
    summary.attrs = {
        "name": sweep_config["name"],
        "config": json.dumps(sweep_config, sort_keys=True),
        "sweep_axes": json.dumps(axes),
        **fixed_settings(sweep_config),
    }
    roles = _role_coordinate(summary["layer_role_code"])
    summary = summary.drop_vars("layer_role_code").assign_coords(layer_role=roles)
    if "learning_rate" in summary and "step" in summary.dims:
        summary = summary.assign_coords(t=_time(summary))
    if "sample" in summary.dims:
        summary = summary.assign_coords(sample=np.arange(summary.sizes["sample"]))
    beta = finite_width.beta_coordinate(summary, sweep_config, axes)
    if beta is not None:
        summary = summary.assign_coords(beta=beta)
    return variables.annotate(variables.order(summary, axes), axes)


def in_schema_order(summary) -> xr.Dataset:
    """`summary` (e.g. with the ensembles merged in) re-ordered and described as `summarize`
    does: dimensions in schema order, every variable with long_name, units, description."""
    axes = json.loads(summary.attrs.get("sweep_axes", "[]"))
    attrs = summary.attrs
    out = variables.annotate(variables.order(summary, axes), axes)
    out.attrs = attrs
    return out


def fixed_settings(sweep_config) -> dict:
    """The settings every run of the sweep shares, {config path: value} (numbers, text, lists
    of them), leaving out the swept paths, ``sweep`` itself and the config ``name``."""
    swept = set(sweep_config.get("sweep", {}))
    out = {}

    def walk(node, prefix):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in swept or path in ("sweep", "name"):
                continue
            if isinstance(value, dict):
                walk(value, f"{path}.")
            elif value is not None and _plain_value(value):
                out[path] = value

    walk(sweep_config, "")
    return out


def _plain_value(value) -> bool:
    if isinstance(value, list | tuple):
        return all(isinstance(v, str | int | float | bool) for v in value)
    return isinstance(value, str | int | float | bool)


def _status_flags(status) -> xr.DataArray:
    """`status` as the codes of `variables.STATUS_FLAGS` (int8; CF flag_values)."""
    codes = {name: i for i, name in enumerate(variables.STATUS_FLAGS)}
    values = np.vectorize(lambda s: codes.get(str(s), codes[STATUS_MISSING]), otypes=[np.int8])
    return xr.DataArray(values(status.values), dims=status.dims, coords=status.coords)


def _time(summary) -> xr.DataArray:
    """t = η·step: on ``step`` alone when every run has the same η, else on η's axes too."""
    step = summary["step"].astype(float)
    lr = summary["learning_rate"]
    finite = np.unique(lr.values[np.isfinite(lr.values)])
    if len(finite) <= 1:
        return step * (float(finite[0]) if len(finite) else np.nan)
    return (lr * step).transpose(*lr.dims, "step")


def layer_roles(layer_names) -> list[str]:
    """'input' for the first layer, 'output' for the readout, 'hidden' in between."""
    names = list(layer_names)
    return [
        "input" if i == 0 else "output" if i == len(names) - 1 else "hidden"
        for i in range(len(names))
    ]


# ---------------------------------------------------------------- helpers

_ROLE_NAMES = ("input", "hidden", "output")


def _with_role_codes(ds) -> xr.Dataset:
    """The run's layer roles (``layer_roles``) as codes 0, 1, 2 on ``layer`` (combinable)."""
    codes = [_ROLE_NAMES.index(role) for role in layer_roles(ds.layer.values)]
    return ds.assign(layer_role_code=xr.DataArray(np.asarray(codes, dtype=float), dims="layer"))


def _on_shared_labels(pieces, dims) -> list:
    """Every piece reindexed to the union of the labels of `dims` (NaN where a run lacks one)."""
    for dim in dims:
        have = [piece for piece in pieces if dim in piece.dims]
        if not have:
            continue
        labels = sorted({str(v) for piece in have for v in piece[dim].values}, key=_natural_key)
        pieces = [
            piece.assign_coords({dim: [str(v) for v in piece[dim].values]}).reindex({dim: labels})
            if dim in piece.dims
            else piece
            for piece in pieces
        ]
    return pieces


def _role_coordinate(codes) -> xr.DataArray:
    """Layer roles as text, on ``layer`` alone when every run agrees (one depth), else also on
    the sweep axes along which they differ (e.g. ``depth``); "" where a run has no such layer."""
    for axis in [d for d in codes.dims if d != "layer"]:
        first = codes.max(axis, skipna=True)
        if bool(((codes == first) | codes.isnull()).all()):
            codes = first
    names = np.array(["", *_ROLE_NAMES], dtype=object)
    values = np.where(np.isfinite(codes.values), codes.values, -1).astype(int) + 1
    return xr.DataArray(names[values].astype(str), dims=codes.dims, coords=codes.coords)


def _natural_key(text: str) -> list:
    """Sort key with numbers compared as numbers: dense_2 before dense_10."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)
    ]


def _curves(store) -> xr.Dataset:
    names = ["loss_train", "loss_test", "acc_train", "acc_test", "weight_change", "weight_sample"]
    ds = store[[n for n in names if n in store]]
    ds["fx_sample_train"] = _samples(store.fx_train)
    ds["fx_sample_test"] = _samples(store.fx_test)
    keep = ("seed", "step", "layer", "t", "wsample")
    return ds.drop_vars([c for c in ds.coords if c not in keep])


def _analytic_part(linear) -> xr.Dataset:
    part = {
        name[: -len("_analytic")]: linear[name]
        for name in linear.data_vars
        if name.endswith("_analytic")
    }
    return xr.Dataset(part)


def _samples(fx) -> xr.DataArray:
    example = fx.dims[2]
    n = min(N_SAMPLES, fx.sizes[example])
    return (
        fx.isel({example: slice(0, n), "out": 0})
        .rename({example: "sample"})
        .drop_vars([c for c in fx.coords if c not in ("seed", "step", "t")], errors="ignore")
    )


def _rmse(fx_net, fx_lin) -> xr.DataArray:
    example = fx_net.dims[2]
    diff = fx_net - fx_lin.reindex_like(fx_net)
    return np.sqrt((diff**2).mean(dim=(example, "out")))


def _output_change(fx) -> xr.DataArray:
    """√mean over examples and outputs of (f_t − f_0)²: [seed, step]."""
    example = fx.dims[2]
    return np.sqrt(((fx - fx.isel(step=0, drop=True)) ** 2).mean(dim=(example, "out")))


def _frobenius(x) -> xr.DataArray:
    other = [d for d in x.dims if d != "seed"]
    return np.sqrt((x**2).sum(dim=other))


def _nan_per_seed(seeds) -> xr.DataArray:
    return xr.full_like(seeds, np.nan, dtype=float)


def _relative_change(final, initial, name, seeds) -> xr.DataArray:
    if final is None or initial is None:
        return _nan_per_seed(seeds)
    return _frobenius(final[name] - initial[name]) / _frobenius(initial[name])


def _analytic_error(kernel_init, analytic, name, seeds) -> xr.DataArray:
    if analytic is None or kernel_init is None:
        return _nan_per_seed(seeds)
    exact = analytic[name]
    return _frobenius(kernel_init[name] - exact) / float(np.sqrt((exact**2).sum()))


def _mc_error(kernels, exact) -> xr.DataArray:
    """‖(1/m) Σ_{s ≤ m} K̂_s − K‖_F/‖K‖_F for m = 1 … n_seed (the running mean over seeds)."""
    count = xr.DataArray(np.arange(1, kernels.sizes["seed"] + 1), dims="seed")
    running = kernels.cumsum("seed") / count
    return _frobenius(running - exact) / float(np.sqrt((exact**2).sum()))


def _nngp_on_k_scale(kernel_init, model: dict):
    """kernel_init with its readout Gram K̂ mapped to the scale of K, (K̂ − b)/a (which tends to
    K with the width in both parameterizations); None without it, for a non-MLP (no analytic K),
    or for a standard network of depth 0 (its readout fan-in d_in is not in the config)."""
    if kernel_init is None or model.get("architecture", "fc") != "fc":
        return None
    try:
        a, b = readout_gram_affine(model)
    except ValueError:
        return None
    return kernel_init.assign(nngp_train_train=(kernel_init["nngp_train_train"] - b) / a)


def _first_divergence(net_step, lin_step) -> xr.DataArray:
    """The first step at which f or f_lin diverged (−1: neither did)."""
    steps = np.stack([np.asarray(net_step, dtype=int), np.asarray(lin_step, dtype=int)])
    first = np.where(steps < 0, np.iinfo(int).max, steps).min(axis=0)
    return xr.DataArray(np.where(first == np.iinfo(int).max, -1, first), dims="seed")


def _status(diverged_step: int, lr: float, lr_critical: float) -> str:
    """diverged, else lr_above_critical when η > η_crit, else ok (also when η_crit is NaN:
    not computed, kernels.initial false)."""
    if diverged_step >= 0:
        return STATUS_DIVERGED
    if not np.isnan(lr_critical) and lr > lr_critical:
        return STATUS_HIGH_LR
    return STATUS_OK


def _with_axes(ds, values, axes) -> xr.Dataset:
    ds = ds.drop_vars([axis for axis in axes if axis in ds.variables])
    ds.attrs = {}
    return ds.expand_dims({axis: [values[axis]] for axis in reversed(axes)})


def _missing(run, axes, present) -> xr.Dataset:
    """A NaN block for a run without metrics, shaped like the finished ones."""
    template = present[0][1]
    block = xr.full_like(template.drop_vars("status"), np.nan, dtype=float)
    block = block.isel(seed=slice(0, len(run.seeds))).assign_coords(seed=list(run.seeds))
    block["status"] = xr.DataArray([STATUS_MISSING] * len(run.seeds), dims="seed")
    return _with_axes(block, run.axes, axes)
