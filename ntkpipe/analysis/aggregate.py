"""Aggregate metrics of a sweep and fitted power laws.

Works on the sweep summary (`ntkpipe.analysis.summary`: the sweep axes plus ``model``,
``seed``, ``step``, ``layer``). Exponents are fitted by `ntkpipe.analysis.fits` (OLS on
log-log axes, every seed a replicate, t-intervals). Pure: nothing here touches a file.

This module is the one entry point of the aggregates: it re-exports the summary access
(`ntkpipe.analysis.summary`), the fits (`ntkpipe.analysis.fits`), the ensemble statistics of
Fig. 2 (`ntkpipe.analysis.ensembles`) and the run table (`ntkpipe.analysis.tables`).

The paper's claims, tested on these aggregates with computed verdicts, are in
`ntkpipe.analysis.claims`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from ntkpipe.analysis.ensembles import (  # noqa: F401  (re-exported)
    ensemble_agreement,
    ensemble_moments,
)
from ntkpipe.analysis.fits import (  # noqa: F401  (re-exported)
    ExponentFit,
    FitError,
    PowerLawFit,
    fit_along,
    fit_power_law,
)
from ntkpipe.analysis.montecarlo import (  # noqa: F401  (re-exported)
    has_mc_samples,
    mc_error_curve,
    mc_exponents,
)
from ntkpipe.analysis.summary import (  # noqa: F401  (re-exported)
    FIXED_DIMS,
    KERNEL_SYMBOLS,
    LAYER_ROLES,
    STATUSES,
    USABLE_STATUSES,
    as_scalar,
    final,
    format_group,
    format_number,
    groups,
    has_data,
    is_width_sweep,
    layer_role_mean,
    sweep_axes,
    usable_runs,
)
from ntkpipe.analysis.summary import require_variable as _require
from ntkpipe.analysis.tables import run_table, status_counts  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class DatasetTrend:
    """How RMSE(f_T, f^lin_T) changes between consecutive dataset sizes, for one group.

    Attributes:
        group: values of the sweep axes other than width and n_train.
        pairs: (n_small, n_large, ratio) with ratio = geometric mean over widths of the
            seed-mean RMSE at n_large over that at n_small.
        increasing_fraction: fraction of (width, pair) comparisons where the RMSE grew.
        grows: every ratio is > 1.
        fit: the exponent q of RMSE ~ c_n · |D|^q, one intercept c_n per width, every seed a
            replicate (the verdict's interval), or None when it cannot be fitted.
        reason: why `fit` is None.
    """

    group: dict
    pairs: list
    increasing_fraction: float
    grows: bool
    fit: PowerLawFit | None = None
    reason: str = ""


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
    fits = []
    for group, roles in _role_means(ds, model):
        for role, per_seed in roles.items():
            fits.append(_fit_or_reason("weight_change", role, group, per_seed, confidence))
    return fits


def weight_change_ratio_exponents(
    ds: xr.Dataset, *, model: str = "net", confidence: float = 0.95
) -> list[ExponentFit]:
    """Exponents of the ratio hidden / input and hidden / output of the relative weight changes
    against width: the difference p_hidden − p_other of the Fig. 1 exponents, paired per run.

    The exponents of two roles come from the same runs, so their errors are correlated (a seed
    whose weights moved more moves every layer more); the exponent of the per-run ratio has the
    interval of the difference with that correlation taken into account, which adding the two
    fits' standard errors would not, and a bootstrap over 2–8 seeds would resolve too coarsely.

    Returns:
        One `ExponentFit` per (group, other role present), label ``hidden/input`` or
        ``hidden/output``; [] without hidden layers.
    """
    fits = []
    for group, roles in _role_means(ds, model):
        if "hidden" not in roles:
            continue
        for other in ("input", "output"):
            if other in roles:
                ratio = roles["hidden"] / roles[other]
                label = f"hidden/{other}"
                fits.append(_fit_or_reason("weight_change", label, group, ratio, confidence))
    return fits


def _role_means(ds: xr.Dataset, model: str):
    """(group, {role: ‖W_T − W_0‖_F/‖W_0‖_F averaged over the role's layers (width, seed)})
    per group of the sweep axes other than width, over the usable runs."""
    _require(ds, "weight_change", width=True)
    if model not in ds["model"].values:
        raise ValueError(f"model={model!r}: expected one of {list(ds['model'].values)}")
    keep = ["weight_change", "status"] if "status" in ds else ["weight_change"]
    end = final(usable_runs(ds[keep]))
    change = end["weight_change"].sel(model=model, drop=True)
    for group, sub in groups(xr.Dataset({"weight_change": change}, attrs=ds.attrs), ("width",)):
        roles = {
            role: layer_role_mean(sub["weight_change"], role)
            for role in LAYER_ROLES
            if (sub["layer_role"] == role).any()
        }
        yield group, roles


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


def rmse_dataset_trends(
    ds: xr.Dataset, split: str = "test", *, confidence: float = 0.95
) -> list[DatasetTrend]:
    """Whether RMSE(f_T, f^lin_T) grows with the dataset size |D| = n_train (Fig. S5).

    For each group of the axes other than width and n_train, the seed-mean RMSE at consecutive
    n_train values is compared at every width, and the exponent q of RMSE ∝ |D|^q is fitted
    with one intercept per width (the width changes the RMSE too) and every seed a replicate.

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
        trend = _dataset_trend(group, mean)
        rmse_sub = sub["rmse"] if "width" in sub["rmse"].dims else sub["rmse"].expand_dims("width")
        try:
            fit = fit_along(rmse_sub, "n_train", confidence=confidence, intercepts="width")
            trends.append(replace(trend, fit=fit))
        except FitError as error:
            trends.append(replace(trend, reason=str(error)))
    return trends


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
