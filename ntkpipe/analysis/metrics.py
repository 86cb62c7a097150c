"""Per-run metrics of f against f_lin, and the sweep summary (pure: xarray in, xarray out).

Per run (`metrics.zarr`), dims `model` ("net", "lin", and "lin_analytic" when the analytic
kernel is available), `seed`, `step`, `layer`:

- loss_train, loss_test, acc_train, acc_test (model, seed, step)
- rmse_train, rmse_test (seed, step): √mean over examples and outputs of (f_t − f_lin_t)²
- weight_change (model, seed, step, layer): ‖W_t − W_0‖_F/‖W_0‖_F (for f_lin: ‖ω_t‖_F/‖W_0‖_F)
- ntk_diag_init (seed, sample): Θ̂₀(x, x) of the first N_SAMPLES training examples (β, Hanin–Nica)
- ntk_change, nngp_change (seed): ‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F on the training set (NaN if not computed)
- ntk_analytic_error, nngp_analytic_error (seed): ‖Θ̂_0 − Θ‖_F/‖Θ‖_F (NaN if not computed);
  K̂ is the readout Gram mapped to the scale of K first, (K̂ − b)/a (``nngp_affine``)
  (the identity in the NTK parameterization; in the standard one the Gram grows with n_L)
- fx_sample_train, fx_sample_test (model, seed, step, sample): output 0 of a few fixed examples
- weight_sample (model, seed, step, wsample): θ_t − θ_0 of a few fixed weight entries per layer
  (Fig. 3), when the stores have it; f records it at step 0 and T only (NaN between), the closed
  form f_lin at every record step
- rmse_train_analytic, rmse_test_analytic (seed, step): RMSE between f_t and the f_lin evolved
  with the analytic Θ (model "lin_analytic"; NaN without it)
- output_change_train, output_change_test (seed, step): √mean of (f_t − f_0)² of the network,
  the scale against which RMSE(f, f_lin) is judged (relative linearization error)
- sharpness (model, seed, step): λ_max(Θ̂_t) when recorded (f_lin: Θ̂₀'s)
- lr_critical, lr_critical_traced, diverged_step (first step where f or f_lin diverged, −1:
  none), diverged_step_net, diverged_step_lin, status and regime (seed; criteria in
  :mod:`ntkpipe.analysis.regime`); learning_rate (scalar: the η trained with)
- ntk_mc_sq, ntk_mc_cross, nngp_mc_sq, nngp_mc_cross, mc_partners (seed): ‖D_s‖², Σ over the
  run's other seeds of ⟨D_s, D_s'⟩ and their number, D_s = (Θ̂_s − Θ)/‖Θ‖_F (K̂ as above), pooled
  over the runs of a point by the Monte Carlo claim (Fig. S9–S10, `ntkpipe.analysis.montecarlo`)

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

from ntkpipe.analysis import finite_width, montecarlo, regime
from ntkpipe.analysis.summary import LAYER_ROLES
from ntkpipe.conventions import STATUSES
from ntkpipe.io import variables

N_SAMPLES = 4
STATUS_MISSING = STATUSES[3]


def run_metrics(
    config,
    *,
    trained,
    linear,
    kernel_init=None,
    kernel_final=None,
    analytic=None,
    nngp_affine=None,
):
    """All metrics of one run from its stores (see the module docstring for the schema).

    Args:
        config: the run's configuration (``training.learning_rate`` is read).
        trained, linear: ``train.zarr`` and ``linear.zarr`` of the run.
        kernel_init: ``kernel_init.zarr`` (Θ̂₀, K̂₀, η_crit), or None without it
            (``kernels.initial: false``): lr_critical, kernel changes and kernel errors are
            then NaN and no seed is flagged lr_above_critical.
        kernel_final: ``kernel_final.zarr`` (Θ̂_T, K̂_T), or None: kernel changes are NaN.
        analytic: ``analytic.zarr`` (Θ, K), or None: kernel errors are NaN.
        nngp_affine: (a, b) with the readout Gram K̂ = a·K + b
            (:func:`ntkpipe.core.readout.readout_gram_affine`), or None where K has no such
            relation (not an MLP; standard parameterization of depth 0): the NNGP errors are
            then NaN.
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
    nngp_init = None if analytic is None else _nngp_on_k_scale(kernel_init, nngp_affine)
    ds["nngp_analytic_error"] = _analytic_error(nngp_init, analytic, "nngp_train_train", ds.seed)
    if analytic is not None:
        for kernel, store in (("ntk", kernel_init), ("nngp", nngp_init)):
            stats = _mc_statistics(store, analytic, f"{kernel}_train_train", ds.seed)
            ds[f"{kernel}_mc_sq"], ds[f"{kernel}_mc_cross"], ds["mc_partners"] = stats
    return ds.assign(regime.run_state(config, trained, linear, kernel_init, ds.seed))


def finish_summary(summary, sweep_config, axes) -> xr.Dataset:
    """The stacked runs (with ``layer_role_code``, ``status`` NaN where missing) described by
    `ntkpipe.io.variables`, dimensions in schema order (sweep axes in config order first), with
    ``learning_rate`` on the sweep axes alone (never ``seed``, however the seeds were chunked),
    ``t = η·step`` (on ``step`` alone when η is one value, else on η's axes too), ``sample``,
    ``status_flag`` (CF flags of ``status``) and the sweep's fixed settings as attributes named
    by their config path (``training.steps``, …) next to the full ``config`` (JSON)."""
    status = summary.status.astype(object)
    summary["status"] = status.where(status.notnull(), STATUS_MISSING).astype(str)
    if "regime" in summary:
        found = summary.regime.astype(object)
        summary["regime"] = found.where(found.notnull(), "").astype(str)
    summary["status_flag"] = _status_flags(summary["status"])
    summary.attrs = {
        "name": sweep_config["name"],
        "config": json.dumps(sweep_config, sort_keys=True),
        "sweep_axes": json.dumps(axes),
        **fixed_settings(sweep_config),
    }
    roles = _role_coordinate(summary["layer_role_code"])
    summary = summary.drop_vars("layer_role_code").assign_coords(layer_role=roles)
    if "learning_rate" in summary and "seed" in summary["learning_rate"].dims:
        # η is a setting of the run, not of a seed: stacking seed chunks gave it ``seed``.
        summary["learning_rate"] = summary["learning_rate"].max("seed")
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
    """`status` as the codes of `STATUSES` (int8; CF flag_values)."""
    codes = {name: i for i, name in enumerate(STATUSES)}
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


def natural_key(text: str) -> list:
    """Sort key with numbers compared as numbers: dense_2 before dense_10."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)
    ]


# ---------------------------------------------------------------- helpers


def _role_coordinate(codes) -> xr.DataArray:
    """Layer roles as text, on ``layer`` alone when every run agrees (one depth), else also on
    the sweep axes along which they differ (e.g. ``depth``); "" where a run has no such layer."""
    for axis in [d for d in codes.dims if d != "layer"]:
        first = codes.max(axis, skipna=True)
        if bool(((codes == first) | codes.isnull()).all()):
            codes = first
    names = np.array(["", *LAYER_ROLES], dtype=object)
    values = np.where(np.isfinite(codes.values), codes.values, -1).astype(int) + 1
    return xr.DataArray(names[values].astype(str), dims=codes.dims, coords=codes.coords)


def _curves(store) -> xr.Dataset:
    names = ["loss_train", "loss_test", "acc_train", "acc_test", "weight_change", "weight_sample"]
    names += ["sharpness"]
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


def _mc_statistics(kernel_init, analytic, name, seeds) -> tuple:
    """`montecarlo.per_seed_statistics` of (K̂_s − K)/‖K‖_F; NaN without the kernels."""
    if kernel_init is None:
        return (_nan_per_seed(seeds),) * 3
    exact = analytic[name].transpose(*kernel_init[name].dims[1:]).values.astype(float)
    deviations = (kernel_init[name].values.astype(float) - exact) / np.sqrt((exact**2).sum())
    return tuple(xr.DataArray(v, dims="seed") for v in montecarlo.per_seed_statistics(deviations))


def _nngp_on_k_scale(kernel_init, affine):
    """kernel_init with its readout Gram K̂ mapped to the scale of K, (K̂ − b)/a (which tends to
    K with the width in both parameterizations); None without it or without `affine`."""
    if kernel_init is None or affine is None:
        return None
    a, b = affine
    return kernel_init.assign(nngp_train_train=(kernel_init["nngp_train_train"] - b) / a)
