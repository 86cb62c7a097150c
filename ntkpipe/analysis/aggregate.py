"""Aggregate metrics of a sweep and fitted power laws.

Works on the sweep summary (`results/<sweep>/summary.zarr`, written by `ntkpipe collect`), an
xarray Dataset whose dimensions are the sweep axes (short names in sweep order, listed as JSON in
``ds.attrs["sweep_axes"]``, e.g. ``width``, ``n_train``) plus ``model`` ("net" = f, "lin" =
f_lin), ``seed``, ``step`` and ``layer`` (with the coordinate ``layer_role`` ∈ {input, hidden,
output}). Missing combinations are NaN; every function here copes with NaN and with axes of
length 1. Pure: nothing here touches a file.

Exponents are fitted by ordinary least squares on log y = log c + p · log x, with every seed
(and every layer of a role, averaged per seed) as a replicate, and a t-distribution confidence
interval on p.

The paper's claims, tested on these aggregates with computed verdicts, are in
`ntkpipe.analysis.claims`.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ntkpipe.sweep import facts

#: Dimensions of the summary that are not sweep axes.
FIXED_DIMS = ("model", "seed", "step", "layer")
#: Run statuses recorded by `ntkpipe collect`.
STATUSES = facts.STATUSES
#: Runs whose values enter fits and figures: finished and not diverged. A learning rate above
#: η_crit is flagged in the run table but its (finite) values are kept.
USABLE_STATUSES = facts.USABLE_STATUSES
#: Layer roles in network order.
LAYER_ROLES = ("input", "hidden", "output")

KERNEL_SYMBOLS = {"ntk": "Θ̂", "nngp": "K̂"}


class FitError(ValueError):
    """A power law cannot be fitted (too few distinct positive x with finite y)."""


@dataclass(frozen=True)
class PowerLawFit:
    """A fitted power law y ≈ prefactor · x^exponent (OLS on log-log axes).

    Attributes:
        exponent: fitted slope p of log y against log x.
        ci_low, ci_high: the confidence interval of p (t-distribution with n_points − 2 degrees
            of freedom).
        prefactor: c = exp(intercept).
        n_points: (x, y) pairs used (finite, positive).
        n_x: distinct x among them.
        stderr: standard error of p.
        confidence: level of the interval, e.g. 0.95.
    """

    exponent: float
    ci_low: float
    ci_high: float
    prefactor: float
    n_points: int
    n_x: int
    stderr: float
    confidence: float = 0.95

    def __call__(self, x) -> np.ndarray:
        """The fitted curve c · x^p at `x`."""
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent

    def covers(self, value: float) -> bool:
        """Whether the confidence interval contains `value`."""
        return self.ci_low <= value <= self.ci_high

    def describe(self) -> str:
        """E.g. ``−0.52 (95% CI [−0.58, −0.46], 10 points)``."""
        level = f"{100 * self.confidence:g}%"
        return (
            f"{format_number(self.exponent)} ({level} CI [{format_number(self.ci_low)}, "
            f"{format_number(self.ci_high)}], {self.n_points} points)"
        )


@dataclass(frozen=True)
class ExponentFit:
    """One fitted exponent of a quantity against an axis, for one group of the other sweep axes.

    Attributes:
        quantity: summary variable, e.g. ``weight_change`` or ``ntk_change``.
        label: what within the quantity, e.g. the layer role ``hidden`` (empty if none).
        group: values of the other sweep axes (those of length > 1) this fit is for.
        fit: the fit, or None when it could not be made (then `reason` says why).
        reason: why `fit` is None.
    """

    quantity: str
    label: str
    group: dict = field(default_factory=dict)
    fit: PowerLawFit | None = None
    reason: str = ""


@dataclass(frozen=True)
class DatasetTrend:
    """How RMSE(f_T, f^lin_T) changes between consecutive dataset sizes, for one group.

    Attributes:
        group: values of the sweep axes other than width and n_train.
        pairs: (n_small, n_large, ratio) with ratio = geometric mean over widths of the
            seed-mean RMSE at n_large over that at n_small.
        increasing_fraction: fraction of (width, pair) comparisons where the RMSE grew.
        grows: every ratio is > 1.
    """

    group: dict
    pairs: list
    increasing_fraction: float
    grows: bool


# ---------------------------------------------------------------- fitting


def fit_power_law(x, y, *, confidence: float = 0.95) -> PowerLawFit:
    """Fit y ≈ c · x^p by ordinary least squares on log y = log c + p · log x.

    Every (x, y) pair is one observation (seeds are replicates: pass y [n_x, n_seed] with
    x [n_x, 1], or flat arrays). Pairs with a non-finite or non-positive x or y are dropped (the
    logarithm is undefined). The interval is p ± t_{(1+confidence)/2, N−2} · se(p).

    Args:
        x: array broadcastable with `y`, e.g. the widths n.
        y: array, e.g. relative weight changes.
        confidence: level of the confidence interval, in (0, 1).

    Returns:
        The `PowerLawFit`.

    Raises:
        ValueError: `confidence` outside (0, 1) or x and y not broadcastable.
        FitError: fewer than 3 distinct x remain after dropping NaN / non-positive pairs.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r}: expected a number in (0, 1), e.g. 0.95")
    try:
        x_b, y_b = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    except ValueError as error:
        raise ValueError(
            f"x of shape {np.shape(x)} and y of shape {np.shape(y)} do not broadcast together: "
            "give one x per y, or x of shape [n_x, 1] against y [n_x, n_seed]"
        ) from error
    keep = np.isfinite(x_b) & np.isfinite(y_b) & (x_b > 0) & (y_b > 0)
    log_x, log_y = np.log(x_b[keep]), np.log(y_b[keep])
    n_x = np.unique(log_x).size
    if n_x < 3:
        raise FitError(
            f"a power-law fit needs at least 3 distinct positive x with finite positive y; "
            f"got {n_x} distinct x among {int(keep.sum())} usable of {x_b.size} points"
        )
    return _ols_log_log(log_x, log_y, n_x, confidence)


def fit_along(da: xr.DataArray, dim: str = "width", *, confidence: float = 0.95) -> PowerLawFit:
    """Fit `da` ≈ c · coord(dim)^p, with every other element along the other dims a replicate.

    Args:
        da: DataArray with dimension `dim` (a numeric coordinate) and any others (e.g. seed).
        dim: the axis to fit against.
        confidence: level of the confidence interval.

    Raises:
        ValueError: `dim` is not a dimension of `da`.
        FitError: too few distinct values of `dim` with data.
    """
    if dim not in da.dims:
        raise ValueError(f"dim={dim!r} is not a dimension of {da.name!r}; it has {list(da.dims)}")
    x_b, y_b = xr.broadcast(da[dim].astype(float), da)
    return fit_power_law(x_b.values, y_b.values, confidence=confidence)


# ---------------------------------------------------------------- summary access


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
            out[name] = _last_finite(var, "step")
        elif "step" in var.dims:
            out[name] = var.isel(step=-1, drop=True)
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


# ---------------------------------------------------------------- exponents


def weight_change_exponents(
    ds: xr.Dataset, *, model: str = "net", confidence: float = 0.95
) -> list[ExponentFit]:
    """Exponents of the relative weight change at the end of training against width (Fig. 1).

    For each layer role and each group of the other sweep axes: ‖W_T − W_0‖_F/‖W_0‖_F averaged
    over the layers of that role, seeds as replicates, fitted against the width n. Runs not in
    `USABLE_STATUSES` are left out.

    Args:
        ds: the summary, with ``weight_change`` (axes…, model, seed, step, layer).
        model: "net" (the network f) or "lin" (f_lin, whose weights are θ₀ + ω_t).
        confidence: level of the confidence intervals.

    Returns:
        One `ExponentFit` per (group, role present in the network), label = role.
    """
    _require(ds, "weight_change", width=True)
    if model not in ds["model"].values:
        raise ValueError(f"model={model!r}: expected one of {list(ds['model'].values)}")
    keep = ["weight_change", "status"] if "status" in ds else ["weight_change"]
    end = final(usable_runs(ds[keep]))
    change = end["weight_change"].sel(model=model, drop=True)
    fits = []
    for group, sub in groups(xr.Dataset({"weight_change": change}, attrs=ds.attrs), ("width",)):
        for role in LAYER_ROLES:
            if not (sub["layer_role"] == role).any():
                continue
            per_seed = layer_role_mean(sub["weight_change"], role)
            fits.append(_fit_or_reason("weight_change", role, group, per_seed, confidence))
    return fits


def kernel_change_exponents(ds: xr.Dataset, *, confidence: float = 0.95) -> list[ExponentFit]:
    """Exponents of ‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F and ‖K̂_T − K̂_0‖_F/‖K̂_0‖_F against width (Fig. 1, S6).

    Returns:
        One `ExponentFit` per (group, kernel with data), quantity ``ntk_change`` /
        ``nngp_change``, label Θ̂ / K̂.
    """
    return _scalar_exponents(ds, ("ntk_change", "nngp_change"), confidence)


def analytic_error_exponents(ds: xr.Dataset, *, confidence: float = 0.95) -> list[ExponentFit]:
    """Exponents of ‖Θ̂_0 − Θ‖_F/‖Θ‖_F and ‖K̂_0 − K‖_F/‖K‖_F against width (Fig. S9–S10)."""
    return _scalar_exponents(ds, ("ntk_analytic_error", "nngp_analytic_error"), confidence)


def rmse_final(ds: xr.Dataset, split: str = "test") -> xr.DataArray:
    """RMSE(f_T, f^lin_T) at the last recorded step of every usable run, dims (axes…, seed).

    Args:
        ds: the summary, with ``rmse_train`` and ``rmse_test`` (axes…, seed, step).
        split: "train" or "test".
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected 'train' or 'test'")
    name = f"rmse_{split}"
    _require(ds, name)
    return final(usable_runs(ds[[name, "status"]] if "status" in ds else ds[[name]]))[name]


def rmse_exponents(
    ds: xr.Dataset, split: str = "test", *, confidence: float = 0.95
) -> list[ExponentFit]:
    """Exponents of RMSE(f_T, f^lin_T) against width, per dataset size and other axes (Fig. S5)."""
    _require(ds, f"rmse_{split}", width=True)
    rmse = rmse_final(ds, split).to_dataset(name="rmse")
    rmse.attrs = ds.attrs
    return [
        _fit_or_reason(f"rmse_{split}", "", group, sub["rmse"], confidence)
        for group, sub in groups(rmse, exclude=("width",))
    ]


def rmse_dataset_trends(ds: xr.Dataset, split: str = "test") -> list[DatasetTrend]:
    """Whether RMSE(f_T, f^lin_T) grows with the dataset size |D| = n_train (Fig. S5).

    For each group of the axes other than width and n_train, the seed-mean RMSE at consecutive
    n_train values is compared at every width.

    Returns:
        One `DatasetTrend` per group; [] when n_train is not a sweep axis with ≥ 2 values.
    """
    axes = sweep_axes(ds)
    if "n_train" not in axes or ds.sizes["n_train"] < 2:
        return []
    rmse = rmse_final(ds, split).to_dataset(name="rmse")
    rmse.attrs = ds.attrs
    trends = []
    for group, sub in groups(rmse, exclude=("width", "n_train")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = sub["rmse"].mean("seed", skipna=True).sortby("n_train")
        trends.append(_dataset_trend(group, mean))
    return trends


# ---------------------------------------------------------------- Fig. S9–S10: Monte Carlo


def has_mc_samples(ds: xr.Dataset, at_least: int = 3) -> bool:
    """Whether the summary has Monte Carlo kernel errors for ≥ `at_least` sample counts M (a job
    holding that many seeds); fewer cannot be fitted against M."""
    if "mc_samples" not in ds or not (
        has_data(ds, "ntk_mc_error") or has_data(ds, "nngp_mc_error")
    ):
        return False
    counts = ds["mc_samples"].values.astype(float)
    return np.unique(counts[np.isfinite(counts)]).size >= at_least


def mc_error_curve(ds: xr.Dataset, kernel: str = "ntk") -> xr.DataArray:
    """Error of the mean of M empirical kernels against M (Fig. S9–S10).

    ‖(1/M) Σ_{s ≤ M} K̂_s − K‖_F/‖K‖_F, averaged over the seed chunks of a sweep point that
    reach the same M (``mc_samples``). Runs not in `USABLE_STATUSES` are left out.

    Args:
        ds: the summary with ``<kernel>_mc_error`` and ``mc_samples`` (axes…, seed).
        kernel: "ntk" (Θ̂ against Θ) or "nngp" (K̂ against K).

    Returns:
        DataArray (axes…, mc_samples).
    """
    if kernel not in KERNEL_SYMBOLS:
        raise ValueError(f"kernel={kernel!r}: expected one of {list(KERNEL_SYMBOLS)}")
    name = f"{kernel}_mc_error"
    _require(ds, name)
    _require(ds, "mc_samples")
    keep = [name, "mc_samples", "status"] if "status" in ds else [name, "mc_samples"]
    masked = usable_runs(ds[keep])
    counts = masked["mc_samples"].values.astype(float)
    values = sorted({int(c) for c in counts[np.isfinite(counts)]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        curves = [
            masked[name].where(masked["mc_samples"] == m).mean("seed", skipna=True) for m in values
        ]
    return xr.concat(curves, dim=xr.DataArray(values, dims="mc_samples", name="mc_samples"))


def mc_exponents(ds: xr.Dataset, *, confidence: float = 0.95) -> list[ExponentFit]:
    """Exponents of `mc_error_curve` against M, one per kernel and sweep point (width included).

    Returns:
        `ExponentFit` with quantity ``ntk_mc_error`` / ``nngp_mc_error``, label Θ̂ / K̂ and the
        sweep point (all axes of length > 1) as group.
    """
    fits = []
    for kernel, symbol in KERNEL_SYMBOLS.items():
        name = f"{kernel}_mc_error"
        if not has_data(ds, name):
            continue
        curve = mc_error_curve(ds, kernel).to_dataset(name=name)
        curve.attrs = ds.attrs
        for group, sub in groups(curve):
            fits.append(_fit_or_reason(name, symbol, group, sub[name], confidence, "mc_samples"))
    return fits


# ---------------------------------------------------------------- Fig. 3 and 4: f against f_lin


def relative_rmse_final(ds: xr.Dataset, split: str = "test") -> xr.DataArray:
    """RMSE(f_T, f^lin_T) / RMS(f_T − f_0) at the last step of every usable run (axes…, seed).

    The linearization error against how far training moved the outputs: 0 when f^lin tracks f
    exactly, 1 when the error is as large as the whole change.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected 'train' or 'test'")
    change = f"output_change_{split}"
    _require(ds, change)
    keep = [f"rmse_{split}", change] + (["status"] if "status" in ds else [])
    end = final(usable_runs(ds[keep]))
    return end[f"rmse_{split}"] / end[change]


def empirical_vs_analytic(ds: xr.Dataset, split: str = "test") -> xr.Dataset:
    """RMSE(f_T, f^lin_T) with f^lin evolved by Θ̂_0 (``rmse``) and by the analytic Θ
    (``rmse_analytic``) at the last step of every usable run, dims (axes…, seed) (Fig. 3)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected 'train' or 'test'")
    names = [f"rmse_{split}", f"rmse_{split}_analytic"]
    for name in names:
        _require(ds, name)
    end = final(usable_runs(ds[names + (["status"] if "status" in ds else [])]))
    return xr.Dataset({"rmse": end[names[0]], "rmse_analytic": end[names[1]]})


def training_setting(ds: xr.Dataset, group: dict, dotted: str):
    """The value of a config field (e.g. ``training.loss``) at a sweep point.

    From the group when the field's axis is in it, else from a sweep axis of length one, else
    from the sweep config in ``ds.attrs["config"]``; None when it is not recorded.
    """
    short = dotted.split(".")[-1]
    if short in group:
        return group[short]
    if short in sweep_axes(ds) and ds.sizes[short] == 1:
        return as_scalar(ds[short].values[0])
    config = ds.attrs.get("config")
    parsed = json.loads(config) if isinstance(config, str) else (config or {})
    section, key = dotted.split(".")
    return parsed.get(section, {}).get(key)


# ---------------------------------------------------------------- Fig. 2: ensembles


def ensemble_moments(ds: xr.Dataset) -> xr.Dataset:
    """Mean and standard deviation over the members of the ensemble's outputs on x(α).

    Returns:
        Dataset with ``mean`` and ``std`` (axes…, step, alpha).
    """
    _require(ds, "ensemble_fx")
    fx = ds["ensemble_fx"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.Dataset({"mean": fx.mean("member"), "std": fx.std("member", ddof=1)})


def ensemble_agreement(ds: xr.Dataset) -> xr.Dataset:
    """How the ensemble compares with the NTK-GP (Eq. 14–15) and the NNGP, per sweep point.

    Over the recorded steps t > 0 and the points α:

    - ``band_fraction``: fraction with |mean_ens − μ_t| ≤ 2σ_t (NTK-GP band);
    - ``std_error``: median of |σ_ens − σ_t| / max_α σ_t;
    - ``distance_ntkgp``, ``distance_nngp``, ``distance_posterior``: RMS over α at the last step
      of mean_ens − μ_T for the NTK-GP, the readout-only NNGP dynamics and the NNGP posterior.

    Returns:
        Dataset of those variables over the sweep axes.
    """
    for name in ("ntkgp_mean", "ntkgp_std", "nngp_mean", "nngp_posterior_mean"):
        _require(ds, name)
    moments = ensemble_moments(ds)
    later = ds["step"] > 0
    mean, std = moments["mean"].where(later), moments["std"].where(later)
    mu, sigma = ds["ntkgp_mean"].where(later), ds["ntkgp_std"].where(later)
    inside = (np.abs(mean - mu) <= 2 * sigma).where(np.isfinite(mean) & np.isfinite(mu))
    scale = sigma.max("alpha")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {
            "band_fraction": inside.mean(("step", "alpha")),
            "std_error": (np.abs(std - sigma) / scale).median(("step", "alpha")),
        }
        last = moments["mean"].isel(step=-1)

        def rms(other):
            return np.sqrt(((last - other) ** 2).mean("alpha"))

        out["distance_ntkgp"] = rms(ds["ntkgp_mean"].isel(step=-1))
        out["distance_nngp"] = rms(ds["nngp_mean"].isel(step=-1))
        out["distance_posterior"] = rms(ds["nngp_posterior_mean"])
    return xr.Dataset(out, attrs=ds.attrs).drop_vars("step", errors="ignore")


# ---------------------------------------------------------------- run table


def run_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per run (sweep point × seed): status, η, η_crit, divergence and final metrics.

    Columns: the sweep axes, ``seed``, ``status``, ``learning_rate``, ``lr_critical``,
    ``diverged_step`` (−1 = none), then whichever of ``loss_train`` / ``loss_test`` of f and
    f_lin and ``rmse_train`` / ``rmse_test`` exist, at the last record (so a diverged run shows
    its non-finite values, not the last finite ones).
    """
    end = ds.isel(step=-1, drop=True) if "step" in ds.dims else ds
    axes = sweep_axes(ds)
    index_dims = [*axes, "seed"] if "seed" in ds.dims else axes
    columns = {}
    for name in ("status", "learning_rate", "lr_critical", "diverged_step"):
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


# ---------------------------------------------------------------- private helpers


def _ols_log_log(log_x, log_y, n_x: int, confidence: float) -> PowerLawFit:
    n = log_x.size
    x_mean, y_mean = log_x.mean(), log_y.mean()
    sxx = float(np.sum((log_x - x_mean) ** 2))
    slope = float(np.sum((log_x - x_mean) * (log_y - y_mean)) / sxx)
    intercept = y_mean - slope * x_mean
    residuals = log_y - (intercept + slope * log_x)
    dof = n - 2
    stderr = math.sqrt(float(np.sum(residuals**2)) / dof / sxx) if dof > 0 else math.inf
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * stderr if dof > 0 else math.inf
    return PowerLawFit(
        exponent=slope,
        ci_low=slope - half,
        ci_high=slope + half,
        prefactor=float(np.exp(intercept)),
        n_points=n,
        n_x=n_x,
        stderr=stderr,
        confidence=confidence,
    )


def _last_finite(var: xr.DataArray, dim: str) -> xr.DataArray:
    finite = np.isfinite(var)
    position = xr.DataArray(np.arange(var.sizes[dim]), dims=dim)
    last = position.where(finite, 0).max(dim)
    return var.isel({dim: last}).drop_vars(dim, errors="ignore")


def _require(ds: xr.Dataset, name: str, *, width: bool = False) -> None:
    if name not in ds:
        raise ValueError(f"the summary has no variable {name!r}; it has {sorted(ds.data_vars)}")
    if width and "width" not in sweep_axes(ds):
        raise ValueError(
            f"{name!r} against width needs 'width' as a sweep axis; the sweep axes are "
            f"{sweep_axes(ds)}"
        )


def _fit_or_reason(quantity, label, group, da, confidence, dim="width") -> ExponentFit:
    try:
        fit = fit_along(da, dim, confidence=confidence)
    except FitError as error:
        return ExponentFit(quantity, label, group, None, str(error))
    return ExponentFit(quantity, label, group, fit)


def _scalar_exponents(ds, names, confidence) -> list[ExponentFit]:
    present = [name for name in names if has_data(ds, name)]
    for name in present:
        _require(ds, name, width=True)
    if not present:
        return []
    sub_ds = ds[present + (["status"] if "status" in ds else [])]
    masked = final(usable_runs(sub_ds))
    fits = []
    for group, sub in groups(masked, exclude=("width",)):
        for name in present:
            symbol = KERNEL_SYMBOLS[name.split("_")[0]]
            fits.append(_fit_or_reason(name, symbol, group, sub[name], confidence))
    return fits


def _grid(ds: xr.Dataset, dims: Sequence[str]) -> xr.DataArray:
    shape = [ds.sizes[d] for d in dims]
    return xr.DataArray(np.zeros(shape), dims=list(dims), coords={d: ds[d] for d in dims})


def _dataset_trend(group: dict, mean: xr.DataArray) -> DatasetTrend:
    sizes = [as_scalar(v) for v in mean["n_train"].values]
    pairs, increases, comparisons = [], 0, 0
    for i in range(len(sizes) - 1):
        small = mean.isel(n_train=i).values.ravel()
        large = mean.isel(n_train=i + 1).values.ravel()
        ok = np.isfinite(small) & np.isfinite(large) & (small > 0) & (large > 0)
        if not ok.any():
            pairs.append((sizes[i], sizes[i + 1], math.nan))
            continue
        ratio = float(np.exp(np.mean(np.log(large[ok] / small[ok]))))
        pairs.append((sizes[i], sizes[i + 1], ratio))
        increases += int(np.sum(large[ok] > small[ok]))
        comparisons += int(ok.sum())
    fraction = increases / comparisons if comparisons else math.nan
    grows = bool(pairs) and all(r > 1 for _, _, r in pairs if not math.isnan(r)) and comparisons > 0
    return DatasetTrend(group, pairs, fraction, grows)
