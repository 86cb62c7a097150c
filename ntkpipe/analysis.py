"""Aggregate metrics of a sweep, fitted power laws and the paper's claims with computed verdicts.

Works on the sweep summary (`results/<sweep>/summary.zarr`, written by `ntkpipe collect`), an
xarray Dataset whose dimensions are the sweep axes (short names in sweep order, listed as JSON in
``ds.attrs["sweep_axes"]``, e.g. ``width``, ``n_train``) plus ``model`` ("net" = f, "lin" =
f_lin), ``seed``, ``step`` and ``layer`` (with the coordinate ``layer_role`` ∈ {input, hidden,
output}). Missing combinations are NaN; every function here copes with NaN and with axes of
length 1. Pure: nothing here touches a file.

The quantities tested against Lee et al. 2019:

- Fig. 1 / S6: relative weight change ‖W_T − W_0‖_F/‖W_0‖_F ~ n^−½ for the input and output
  layers and ~ n^−1 for hidden layers; relative kernel change ‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F (and the
  same for K̂) between n^−1 and n^−½.
- Fig. S5: RMSE(f_T, f^lin_T) falls with the width n and grows with the dataset size |D|.
- Fig. S9–S10: ‖Θ̂_0 − Θ‖_F/‖Θ‖_F and ‖K̂_0 − K‖_F/‖K‖_F ~ n^−½; the error of the mean of M
  empirical kernels (M seeds, Monte Carlo) ~ M^−½ while M ≪ n.
- Fig. 3: the network follows its linearization (RMSE(f_T, f^lin_T) small against the change of
  the outputs f_T − f_0), and f^lin evolved with the empirical Θ̂_0 is closer to f than with the
  analytic Θ at finite width.
- Fig. 4 / S2–S4: the same tracking with momentum, minibatch SGD, cross-entropy and conv nets.
- Fig. 2 / S1: the mean of an ensemble of trained networks on x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾ lies
  in the NTK-GP band μ_t ± 2σ_t (Eq. 14–15), its spread matches σ_t, and it follows the NTK-GP
  rather than the NNGP.

Every claim belongs to one of the paper's experiments (`EXPERIMENTS`); the report has one
section per experiment present in the sweep.

Exponents are fitted by ordinary least squares on log y = log c + p · log x, with every seed
(and every layer of a role, averaged per seed) as a replicate, and a t-distribution confidence
interval on p.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

#: Dimensions of the summary that are not sweep axes.
FIXED_DIMS = ("model", "seed", "step", "layer")
#: Run statuses recorded by `ntkpipe collect`.
STATUSES = ("ok", "lr_above_critical", "diverged", "missing")
#: Runs whose values enter fits and figures: finished and not diverged. A learning rate above
#: η_crit is flagged in the run table but its (finite) values are kept.
USABLE_STATUSES = ("ok", "lr_above_critical")
#: Layer roles in network order.
LAYER_ROLES = ("input", "hidden", "output")
#: Verdicts of a `Claim`.
VERDICTS = ("consistent", "inconsistent", "not tested")

#: The paper's weight-change exponents (Fig. 1) and the tolerance of the verdict per role.
WEIGHT_CHANGE_CLAIMS = {"input": (-0.5, 0.2), "hidden": (-1.0, 0.3), "output": (-0.5, 0.2)}
#: The paper's bounds on the kernel-change exponent (Fig. 1: between n^−1 and n^−½), widened by
#: a tolerance on each side.
KERNEL_CHANGE_BOUNDS = (-1.0, -0.5)
KERNEL_CHANGE_TOLERANCE = 0.2
#: The Monte Carlo rate of the empirical kernels' error (Fig. S9–S10) and its tolerance.
ANALYTIC_ERROR_CLAIM = (-0.5, 0.2)

#: The Monte Carlo rate of the error of the mean of M empirical kernels (Fig. S9–S10).
MC_ERROR_CLAIM = (-0.5, 0.2)
#: f^lin tracks f when RMSE(f_T, f^lin_T) / RMS(f_T − f_0) on the test set is below this, per loss
#: (cross-entropy logits keep growing late in training, so its bound is looser; Fig. S4).
TRACKING_TOLERANCE = {"mse": 0.1, "xent": 0.2}
#: Fig. 3: Θ̂_0 must give the closer f^lin in at least this fraction of the runs.
EMPIRICAL_CLOSER_FRACTION = 0.9
#: Fig. 2: the ensemble mean must lie in μ_t ± 2σ_t for at least this fraction of (t > 0, α).
BAND_FRACTION = 0.9
#: Fig. 2: median of |σ_ensemble − σ_t| / max_α σ_t over (t > 0, α) at most this.
STD_TOLERANCE = 0.25

#: The paper's experiments: key → (its figures, title). The report has a section per key present.
EXPERIMENTS = {
    "fig1": ("Fig. 1 / S6", "Parameters and kernels move little"),
    "fig2": ("Fig. 2 / S1", "Output distribution: an ensemble against the NTK-GP and the NNGP"),
    "fig3": ("Fig. 3", "The network against its linearization"),
    "fig4": ("Fig. 4 / S2–S4", "Beyond full-batch gradient descent on MSE"),
    "figS5": ("Fig. S5", "Where linearization breaks"),
    "figS9": ("Fig. S9–S10", "The empirical kernels converge"),
}

KERNEL_SYMBOLS = {"ntk": "Θ̂", "nngp": "K̂"}
ANALYTIC_SYMBOLS = {"ntk": "Θ", "nngp": "K"}


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
            f"{_num(self.exponent)} ({level} CI [{_num(self.ci_low)}, {_num(self.ci_high)}], "
            f"{self.n_points} points)"
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
class Claim:
    """A claim of the paper next to what this sweep measured.

    Attributes:
        figure: the paper's figure, e.g. ``Fig. 1``.
        statement: the claim as the paper makes it.
        measured: the measured number(s), as text.
        verdict: one of `VERDICTS`, computed from the data.
        criterion: how the verdict was decided.
        group: values of the other sweep axes the claim was tested on ({} when there are none).
    """

    figure: str
    statement: str
    measured: str
    verdict: str
    criterion: str
    group: dict = field(default_factory=dict)

    @property
    def experiment(self) -> str:
        """The key of `EXPERIMENTS` this claim belongs to (from its figure)."""
        return experiment_of(self.figure)


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
        yield {a: _scalar(v) for a, v in point.items()}, ds.sel(point)


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


# ---------------------------------------------------------------- claims


def paper_claims(ds: xr.Dataset, *, confidence: float = 0.95) -> list[Claim]:
    """The paper's claims tested on this sweep, with verdicts computed from the data.

    A claim is listed only when its data are in the sweep (for the claims against width: the
    width is a sweep axis and the variable has finite values); it is "not tested" when there
    are data but too few widths to fit. Criteria (stated in each `Claim.criterion`):

    - Fig. 1, per layer role: the fitted exponent lies within ±0.2 of −½ (input, output) or
      ±0.3 of −1 (hidden); plus "hidden steeper than input and output" (point estimates).
    - Fig. 1 / S6, per kernel: the exponent lies in [−1 − 0.2, −½ + 0.2].
    - Fig. S9–S10, per kernel: the exponent against width lies within ±0.2 of −½; with ≥ 3
      Monte Carlo sample counts M (seeds in a job), the exponent against M at the widest width
      lies within ±0.2 of −½ (`MC_ERROR_CLAIM`).
    - Fig. S5: RMSE(f_T, f^lin_T) falls with width (95% CI of the exponent below 0) at every
      dataset size; it grows with |D| (geometric-mean ratio > 1 between consecutive sizes).
    - Fig. 3 (full-batch GD, MSE, fc) or Fig. 4 / S2–S4 (any other optimizer, loss or
      architecture), per group of the axes other than width: RMSE(f_T, f^lin_T)/RMS(f_T − f_0)
      at the widest width below `TRACKING_TOLERANCE` of the loss.
    - Fig. 3: f^lin evolved with Θ̂_0 closer to f than with Θ in ≥ `EMPIRICAL_CLOSER_FRACTION`
      of the runs.
    - Fig. 2 / S1, at the widest width: the ensemble mean inside μ_t ± 2σ_t for ≥
      `BAND_FRACTION` of (t > 0, α); median |σ_ens − σ_t|/max_α σ_t ≤ `STD_TOLERANCE`; the
      ensemble mean closer to the NTK-GP than to the NNGP at the last step.

    Returns:
        The claims, in the order of `EXPERIMENTS`.
    """
    claims = _width_claims(ds, confidence) if is_width_sweep(ds) else []
    if has_mc_samples(ds):
        claims += _mc_claims(ds, confidence)
    if has_data(ds, "output_change_test") and has_data(ds, "rmse_test"):
        claims += _tracking_claims(ds)
    if has_data(ds, "rmse_test_analytic") and has_data(ds, "rmse_test"):
        claims += _empirical_closer_claims(ds)
    if has_data(ds, "ensemble_fx") and has_data(ds, "ntkgp_mean"):
        claims += _ensemble_claims(ds)
    order = list(EXPERIMENTS)
    return sorted(claims, key=lambda c: order.index(c.experiment))


def experiment_of(figure: str) -> str:
    """The key of `EXPERIMENTS` of a figure label such as ``Fig. 1 / S6`` or ``Fig. S9–S10``."""
    head = figure.split("/")[0].strip()
    for key, (figures, _) in EXPERIMENTS.items():
        if head == figures.split("/")[0].strip():
            return key
    raise ValueError(f"figure={figure!r}: not one of the experiments {list(EXPERIMENTS)}")


def experiments_present(ds: xr.Dataset, claims: Sequence[Claim] | None = None) -> list[str]:
    """Keys of `EXPERIMENTS` this sweep has data for (those with a claim), in paper order."""
    claims = paper_claims(ds) if claims is None else claims
    found = {c.experiment for c in claims}
    return [key for key in EXPERIMENTS if key in found]


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
        return _scalar(ds[short].values[0])
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


def _scalar(value):
    return value.item() if hasattr(value, "item") else value


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
    sizes = [_scalar(v) for v in mean["n_train"].values]
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


def _width_claims(ds: xr.Dataset, confidence: float) -> list[Claim]:
    """The claims against width (Fig. 1 / S6, S5, S9–S10)."""
    claims: list[Claim] = []
    if has_data(ds, "weight_change"):
        claims += _weight_change_claims(weight_change_exponents(ds, confidence=confidence))
    if has_data(ds, "ntk_change") or has_data(ds, "nngp_change"):
        claims += [
            _kernel_change_claim(f) for f in kernel_change_exponents(ds, confidence=confidence)
        ]
    if has_data(ds, "rmse_test"):
        claims += _rmse_claims(ds, confidence)
    if has_data(ds, "ntk_analytic_error") or has_data(ds, "nngp_analytic_error"):
        fits = analytic_error_exponents(ds, confidence=confidence)
        claims += [_analytic_error_claim(f) for f in fits]
    return claims


def _widest(ds: xr.Dataset, name: str) -> tuple[xr.Dataset, object]:
    """`ds` at the widest width where `name` has a finite value (and that width); `ds` itself
    (and None) without a width axis."""
    if "width" not in ds.dims:
        return ds, None
    ordered = ds.sortby("width")
    other = [d for d in ordered[name].dims if d != "width"]
    finite = np.isfinite(ordered[name]).any(other) if other else np.isfinite(ordered[name])
    index = int(np.flatnonzero(finite.values)[-1]) if finite.any() else ordered.sizes["width"] - 1
    return ordered.isel(width=index), _scalar(ordered["width"].values[index])


def _at(group: dict, width) -> dict:
    return {**group, "width": width} if width is not None else group


def _mc_claims(ds: xr.Dataset, confidence: float) -> list[Claim]:
    paper, tol = MC_ERROR_CLAIM
    by_point = {}
    for f in mc_exponents(ds, confidence=confidence):
        rest = {k: v for k, v in f.group.items() if k != "width"}
        key = (f.quantity, json.dumps(rest, sort_keys=True, default=str))
        by_point.setdefault(key, []).append(f)
    claims = []
    for fits in by_point.values():
        fits = sorted(fits, key=lambda f: f.group.get("width", 0))
        widest = fits[-1]
        s = widest.label
        a = ANALYTIC_SYMBOLS[widest.quantity.split("_")[0]]
        claim = _exponent_claim(
            "Fig. S9–S10",
            f"the mean of M empirical kernels converges to the analytic one: "
            f"‖mean_M {s}_0 − {a}‖_F/‖{a}‖_F ~ M^{_power(paper)} (Monte Carlo, M ≪ n)",
            widest,
            (paper - tol, paper + tol),
            f"the exponent against M at the widest width lies within ±{tol:g} of {_power(paper)}",
        )
        others = [f"n = {f.group['width']}: {_num(f.fit.exponent)}" for f in fits[:-1] if f.fit]
        if others:
            claim = replace(claim, measured=f"{claim.measured}; other widths {', '.join(others)}")
        claims.append(claim)
    return claims


def _tracking_claims(ds: xr.Dataset) -> list[Claim]:
    relative = relative_rmse_final(ds, "test").to_dataset(name="relative")
    relative.attrs = ds.attrs
    claims = []
    for group, sub in groups(relative, exclude=("width",)):
        at_widest, width = _widest(sub, "relative")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(at_widest["relative"].mean().values)
        if not math.isfinite(value):
            continue
        settings = {k: training_setting(ds, group, k) for k in _TRACKING_FIELDS}
        loss = settings["training.loss"] or "mse"
        tol = TRACKING_TOLERANCE.get(loss, TRACKING_TOLERANCE["mse"])
        figure, how = _tracking_figure(settings)
        claims.append(
            Claim(
                figure,
                f"the network f follows its linearization f^lin over training ({how})",
                f"RMSE(f_T, f^lin_T)/RMS(f_T − f_0) on the test set = {_num(value, 3)} "
                f"(mean over seeds{f' at n = {width}' if width is not None else ''})",
                _verdict(value < tol),
                f"the relative RMSE at the widest width is below {tol:g} ({loss} loss)",
                _at(group, width),
            )
        )
    return claims


_TRACKING_FIELDS = (
    "model.architecture",
    "training.optimizer",
    "training.loss",
    "training.batch_size",
)


def _tracking_figure(settings: dict) -> tuple[str, str]:
    arch = settings["model.architecture"] or "fc"
    optimizer = settings["training.optimizer"] or "gd"
    loss = settings["training.loss"] or "mse"
    batch = settings["training.batch_size"]
    how = f"{arch}, {optimizer}{f' (batch {batch})' if batch else ''}, {loss} loss"
    plain = arch == "fc" and optimizer == "gd" and loss == "mse"
    return ("Fig. 3" if plain else "Fig. 4 / S2–S4"), how


def _empirical_closer_claims(ds: xr.Dataset) -> list[Claim]:
    both = empirical_vs_analytic(ds, "test")
    ok = np.isfinite(both["rmse"]) & np.isfinite(both["rmse_analytic"])
    n_runs = int(ok.sum())
    if not n_runs:
        return []
    closer = int(((both["rmse"] < both["rmse_analytic"]) & ok).sum())
    ratio = (both["rmse"] / both["rmse_analytic"]).where(ok)
    median = float(np.nanmedian(ratio.values))
    fraction = closer / n_runs
    return [
        Claim(
            "Fig. 3",
            "at finite width f^lin with the empirical Θ̂_0 is closer to the network than with "
            "the analytic Θ",
            f"Θ̂_0 closer in {closer} of {n_runs} runs; median RMSE ratio (Θ̂_0 / Θ) on the "
            f"test set at the end {_num(median, 3)}",
            _verdict(fraction >= EMPIRICAL_CLOSER_FRACTION),
            f"RMSE(f_T, f^lin_T) with Θ̂_0 below that with Θ in ≥ "
            f"{100 * EMPIRICAL_CLOSER_FRACTION:g}% of the runs",
        )
    ]


def _ensemble_claims(ds: xr.Dataset) -> list[Claim]:
    agreement = ensemble_agreement(ds)
    members = int(ds.sizes.get("member", 0))
    claims = []
    for group, sub in groups(agreement, exclude=("width",)):
        sub = sub.squeeze(drop=True)
        at, width = _widest(sub, "band_fraction")
        fraction = float(at["band_fraction"].values)
        if not math.isfinite(fraction):
            continue
        where = _at(group, width)
        others = ""
        if width is not None:
            rest = [
                f"n = {_scalar(w)}: {100 * float(v):.0f}%"
                for w, v in zip(sub["width"].values, sub["band_fraction"].values, strict=True)
                if _scalar(w) != width and math.isfinite(float(v))
            ]
            others = f" (other widths: {', '.join(rest)})" if rest else ""
        std_error = float(at["std_error"].values)
        near = {n: float(at[f"distance_{n}"].values) for n in ("ntkgp", "nngp", "posterior")}
        claims += [
            Claim(
                "Fig. 2 / S1",
                "the mean of the trained ensemble lies in the NTK-GP band μ_t ± 2σ_t "
                "(Eq. 14–15) along the interpolation line",
                f"inside for {100 * fraction:.0f}% of (t > 0, α); {members} members{others}",
                _verdict(fraction >= BAND_FRACTION),
                f"inside for ≥ {100 * BAND_FRACTION:g}% of the recorded steps t > 0 and points α "
                "at the widest width",
                where,
            ),
            Claim(
                "Fig. 2 / S1",
                "the spread of the ensemble follows the NTK-GP standard deviation σ_t (Eq. 15)",
                f"median |σ_ensemble − σ_t| / max_α σ_t = {_num(std_error, 3)}",
                _verdict(std_error <= STD_TOLERANCE),
                f"median over (t > 0, α) at most {STD_TOLERANCE:g}",
                where,
            ),
            Claim(
                "Fig. 2 / S1",
                "gradient descent follows the NTK-GP, not the NNGP (readout-only training, "
                "Eq. S22–S23, whose t → ∞ limit is the posterior of Eq. 13)",
                f"RMS over α at the end of mean_ensemble − NTK-GP {_num(near['ntkgp'], 3)}, "
                f"− NNGP {_num(near['nngp'], 3)}, − NNGP posterior {_num(near['posterior'], 3)}",
                _verdict(near["ntkgp"] < near["nngp"]),
                "the ensemble mean at the last step is closer (RMS over α) to the NTK-GP mean "
                "than to the NNGP mean at the same step",
                where,
            ),
        ]
    return claims


def _weight_change_claims(fits: list[ExponentFit]) -> list[Claim]:
    claims = []
    by_group: dict[str, dict[str, ExponentFit]] = {}
    for f in fits:
        by_group.setdefault(json.dumps(f.group, sort_keys=True, default=str), {})[f.label] = f
        paper, tol = WEIGHT_CHANGE_CLAIMS[f.label]
        claims.append(
            _exponent_claim(
                "Fig. 1",
                f"relative change of the {f.label} weights ‖W_T − W_0‖_F/‖W_0‖_F "
                f"~ n^{_power(paper)}",
                f,
                (paper - tol, paper + tol),
                f"the fitted exponent lies within ±{tol:g} of {_power(paper)}",
            )
        )
    for roles in by_group.values():
        claims += _steeper_claim(roles)
    return claims


def _steeper_claim(roles: dict[str, ExponentFit]) -> list[Claim]:
    if "hidden" not in roles:
        return []
    hidden = roles["hidden"]
    others = [roles[r] for r in ("input", "output") if r in roles]
    statement = "hidden weights change faster with width than input and output weights"
    criterion = "point estimate of the hidden exponent below those of the input and output layers"
    if hidden.fit is None or any(o.fit is None for o in others) or not others:
        return [
            Claim(
                "Fig. 1", statement, "too few widths to fit", "not tested", criterion, hidden.group
            )
        ]
    measured = "; ".join(f"{f.label}: {f.fit.describe()}" for f in (hidden, *others))
    steeper = all(hidden.fit.exponent < o.fit.exponent for o in others)
    return [Claim("Fig. 1", statement, measured, _verdict(steeper), criterion, hidden.group)]


def _kernel_change_claim(f: ExponentFit) -> Claim:
    low, high = KERNEL_CHANGE_BOUNDS
    tol = KERNEL_CHANGE_TOLERANCE
    s = f.label
    return _exponent_claim(
        "Fig. 1 / S6",
        f"relative kernel change ‖{s}_T − {s}_0‖_F/‖{s}_0‖_F scales between n^{_power(low)} "
        f"and n^{_power(high)}",
        f,
        (low - tol, high + tol),
        f"the fitted exponent lies in [{_num(low - tol)}, {_num(high + tol)}] "
        f"(the paper's range ±{tol:g})",
    )


def _analytic_error_claim(f: ExponentFit) -> Claim:
    paper, tol = ANALYTIC_ERROR_CLAIM
    s, a = f.label, ANALYTIC_SYMBOLS[f.quantity.split("_")[0]]
    return _exponent_claim(
        "Fig. S9–S10",
        f"the empirical kernel at initialization converges: ‖{s}_0 − {a}‖_F/‖{a}‖_F "
        f"~ n^{_power(paper)}",
        f,
        (paper - tol, paper + tol),
        f"the fitted exponent lies within ±{tol:g} of {_power(paper)}",
    )


def _rmse_claims(ds: xr.Dataset, confidence: float) -> list[Claim]:
    statement = "RMSE(f_T, f^lin_T) on the test set falls with the width n"
    criterion = f"the {100 * confidence:g}% CI of the exponent of RMSE against width is below 0"
    claims = []
    for f in rmse_exponents(ds, "test", confidence=confidence):
        if f.fit is None:
            claims.append(Claim("Fig. S5", statement, f.reason, "not tested", criterion, f.group))
            continue
        measured = f"exponent {f.fit.describe()}"
        claims.append(
            Claim("Fig. S5", statement, measured, _verdict(f.fit.ci_high < 0), criterion, f.group)
        )
    for trend in rmse_dataset_trends(ds, "test"):
        claims.append(_trend_claim(trend))
    return claims


def _trend_claim(trend: DatasetTrend) -> Claim:
    measured = "; ".join(f"|D| {a} → {b}: ×{_num(r, 3)}" for a, b, r in trend.pairs)
    if not math.isnan(trend.increasing_fraction):
        measured += f" (grew at {100 * trend.increasing_fraction:.0f}% of widths)"
    tested = not math.isnan(trend.increasing_fraction)
    return Claim(
        "Fig. S5",
        "RMSE(f_T, f^lin_T) on the test set grows with the dataset size |D|",
        measured,
        _verdict(trend.grows) if tested else "not tested",
        "geometric mean over widths of the seed-mean RMSE ratio > 1 for every consecutive |D|",
        trend.group,
    )


def _exponent_claim(figure, statement, f: ExponentFit, bounds, criterion) -> Claim:
    if f.fit is None:
        return Claim(figure, statement, f.reason, "not tested", criterion, f.group)
    inside = bounds[0] <= f.fit.exponent <= bounds[1]
    measured = f"exponent {f.fit.describe()}"
    return Claim(figure, statement, measured, _verdict(inside), criterion, f.group)


def _verdict(holds: bool) -> str:
    return "consistent" if holds else "inconsistent"


def _power(value: float) -> str:
    """The paper's exponents as written there: −½, −1."""
    return {-0.5: "−½", -1.0: "−1", 0.5: "½"}.get(value, _num(value))


def _num(value: float, digits: int = 2) -> str:
    """A number with a true minus sign, e.g. −0.52."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.{digits}f}".replace("-", "−")
