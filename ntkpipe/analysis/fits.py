"""Power-law fits with confidence intervals, and the interval statistics the verdicts use.

Exponents are fitted by ordinary least squares on log y = log c + p · log x, with every seed
(and every layer of a role, averaged per seed) as a replicate, and a t-distribution confidence
interval on p: p ± t_{(1+c)/2, N−2} · se(p). Optionally with one intercept per group of the
replicates (a fixed-effects fit: e.g. one per width when RMSE is fitted against |D|), then
with N − g − 1 degrees of freedom.

The batch functions (`ols_slopes`, `mean_intervals`) work on arrays [..., N] with NaN for
missing values, vectorized over the leading axes, so that the verdicts' false-positive rates
can be measured on thousands of synthetic sweeps at once (tests/analysis/test_verdict_rates.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy import special  # not scipy.stats: 0.5 s more of every job's start

from ntkpipe.analysis.summary import format_number


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


def fit_power_law(x, y, *, confidence: float = 0.95, intercepts=None) -> PowerLawFit:
    """Fit y ≈ c · x^p by ordinary least squares on log y = log c + p · log x.

    Every (x, y) pair is one observation (seeds are replicates: pass y [n_x, n_seed] with
    x [n_x, 1], or flat arrays). Pairs with a non-finite or non-positive x or y are dropped (the
    logarithm is undefined). The interval is p ± t_{(1+confidence)/2, dof} · se(p).

    Args:
        x: array broadcastable with `y`, e.g. the widths n.
        y: array, e.g. relative weight changes.
        confidence: level of the confidence interval, in (0, 1).
        intercepts: None (one intercept c, dof = N − 2), or integer labels broadcastable with
            `y`: one intercept per label (e.g. per width; dof = N − labels − 1), p fitted on the
            variation of x within each label.

    Returns:
        The `PowerLawFit`.

    Raises:
        ValueError: `confidence` outside (0, 1) or x and y not broadcastable.
        FitError: fewer than 3 distinct x (2 with `intercepts`) remain after dropping NaN /
            non-positive pairs, or no degree of freedom is left.
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
    labels = None if intercepts is None else np.broadcast_to(intercepts, x_b.shape)[keep]
    n_x = np.unique(log_x).size
    need = 3 if labels is None else 2
    n_groups = 1 if labels is None else np.unique(labels).size
    if n_x < need or log_x.size - n_groups - 1 < 1:
        raise FitError(
            f"a power-law fit needs at least {need} distinct positive x with finite positive y "
            f"(and a degree of freedom left); got {n_x} distinct x among {int(keep.sum())} "
            f"usable of {x_b.size} points"
        )
    slope, stderr, dof, intercept = ols_slopes(log_x, log_y, labels=labels)
    half = float(t_quantile(confidence, dof) * stderr)
    return PowerLawFit(
        exponent=float(slope),
        ci_low=float(slope) - half,
        ci_high=float(slope) + half,
        prefactor=float(np.exp(intercept)),
        n_points=int(log_x.size),
        n_x=n_x,
        stderr=float(stderr),
        confidence=confidence,
    )


def fit_along(
    da: xr.DataArray, dim: str = "width", *, confidence: float = 0.95, intercepts: str = ""
) -> PowerLawFit:
    """Fit `da` ≈ c · coord(dim)^p, with every other element along the other dims a replicate.

    Args:
        da: DataArray with dimension `dim` (a numeric coordinate) and any others (e.g. seed).
        dim: the axis to fit against.
        confidence: level of the confidence interval.
        intercepts: a dimension of `da` with one intercept per value (e.g. ``width`` when
            fitting against ``n_train``), or "" for a single intercept.

    Raises:
        ValueError: `dim` (or `intercepts`) is not a dimension of `da`.
        FitError: too few distinct values of `dim` with data.
    """
    for name in (dim, intercepts or dim):
        if name not in da.dims:
            raise ValueError(
                f"dim={name!r} is not a dimension of {da.name!r}; it has {list(da.dims)}"
            )
    x_b, y_b = xr.broadcast(da[dim].astype(float), da)
    labels = None
    if intercepts:
        codes = xr.DataArray(np.arange(da.sizes[intercepts]), dims=intercepts)
        labels = xr.broadcast(codes, y_b)[0].transpose(*y_b.dims).values
    return fit_power_law(
        x_b.transpose(*y_b.dims).values, y_b.values, confidence=confidence, intercepts=labels
    )


# ---------------------------------------------------------------- batch statistics


def t_quantile(confidence: float, dof) -> np.ndarray:
    """t_{(1+confidence)/2, dof}, the half-width of a two-sided interval in standard errors
    (inf where dof < 1)."""
    dof = np.asarray(dof, dtype=float)
    safe = np.where(dof >= 1, dof, 1.0)
    return np.where(dof >= 1, special.stdtrit(safe, 0.5 + confidence / 2), np.inf)


def ols_slopes(log_x, log_y, *, labels=None):
    """Least-squares slopes of `log_y` on `log_x` along the last axis, batched.

    Args:
        log_x, log_y: arrays [..., N] (broadcastable); NaN in either drops the pair.
        labels: None, or integer labels [..., N] (broadcastable): one intercept per label
            (the slope from the variation within labels).

    Returns:
        (slope, stderr, dof, intercept), each [...]; dof = N − labels − 1 (N − 2 without
        labels); stderr = inf where dof < 1; intercept is that of the first label.
    """
    log_x, log_y = np.broadcast_arrays(np.asarray(log_x, float), np.asarray(log_y, float))
    ok = np.isfinite(log_x) & np.isfinite(log_y)
    x, y = np.where(ok, log_x, 0.0), np.where(ok, log_y, 0.0)
    if labels is None:
        labels = np.zeros(x.shape, dtype=int)
    labels = np.broadcast_to(np.asarray(labels), x.shape)
    dx, dy = np.zeros_like(x), np.zeros_like(y)
    n_groups = np.zeros(x.shape[:-1])
    first_means = None
    for label in np.unique(labels):
        member = ok & (labels == label)
        count = member.sum(-1, keepdims=True)
        safe = np.maximum(count, 1)
        x_mean = (x * member).sum(-1, keepdims=True) / safe
        y_mean = (y * member).sum(-1, keepdims=True) / safe
        dx = np.where(member, x - x_mean, dx)
        dy = np.where(member, y - y_mean, dy)
        n_groups = n_groups + (count[..., 0] > 0)
        if first_means is None:
            first_means = (x_mean[..., 0], y_mean[..., 0])
    sxx = (dx**2).sum(-1)
    slope = (dx * dy).sum(-1) / np.where(sxx > 0, sxx, np.nan)
    dof = ok.sum(-1) - n_groups - 1
    rss = ((dy - slope[..., None] * dx) ** 2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        stderr = np.where(dof >= 1, np.sqrt(rss / np.maximum(dof, 1) / sxx), np.inf)
    intercept = first_means[1] - slope * first_means[0]
    return slope, stderr, dof, intercept


def slope_intervals(log_x, log_y, *, labels=None, confidence: float = 0.95):
    """Slopes of log y on log x and their t-intervals, batched over leading axes.

    Returns:
        (slope, low, high), each [...] (infinite interval without a degree of freedom).
    """
    slope, stderr, dof, _ = ols_slopes(log_x, log_y, labels=labels)
    half = t_quantile(confidence, dof) * stderr
    return slope, slope - half, slope + half


def value_intervals(log_x, log_y, log_x0, *, confidence: float = 0.95):
    """The fitted line's value at log x0 and the t-interval of that mean value, batched.

    log ŷ(x0) = log ĉ + p·log x0, se = s·√(1/N + (log x0 − mean log x)²/Sxx) with s² the
    residual variance (N − 2 degrees of freedom): the interval of the fitted power law at x0,
    which uses every width's replicates rather than those at x0 alone.

    Returns:
        (log value, low, high), each [...] (on the log scale; infinite without a dof).
    """
    log_x, log_y = np.broadcast_arrays(np.asarray(log_x, float), np.asarray(log_y, float))
    slope, stderr, dof, intercept = ols_slopes(log_x, log_y)
    ok = np.isfinite(log_x) & np.isfinite(log_y)
    n = ok.sum(-1)
    x_mean = np.where(ok, log_x, 0.0).sum(-1) / np.maximum(n, 1)
    sxx = np.where(ok, (log_x - x_mean[..., None]) ** 2, 0.0).sum(-1)
    value = intercept + slope * np.asarray(log_x0, float)
    with np.errstate(invalid="ignore"):
        se = stderr * np.sqrt(sxx / np.maximum(n, 1) + (log_x0 - x_mean) ** 2)
        half = t_quantile(confidence, dof) * se
    return value, value - half, value + half


def mean_intervals(values, *, confidence: float = 0.95):
    """Mean and its t-interval half-width along the last axis, batched (NaN ignored).

    Returns:
        (mean, half, n), each [...]; half = inf with fewer than 2 values.
    """
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    n = ok.sum(-1)
    safe = np.maximum(n, 1)
    mean = np.where(ok, values, 0.0).sum(-1) / safe
    mean = np.where(n > 0, mean, np.nan)
    squares = np.where(ok, (values - mean[..., None]) ** 2, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(squares / np.maximum(n - 1, 1) / safe)
        half = np.where(n >= 2, t_quantile(confidence, n - 1) * se, np.inf)
    return mean, half, n


def slope_ratio_intervals(log_z, log_x, log_y, *, confidence: float = 0.95):
    """β = b_y / b_x, the ratio of the slopes of log y and of log x on log z, with its Fieller
    interval, batched over leading axes.

    This is the slope of log y on log x with log z as the instrument: only the variation of
    log x that log z explains (e.g. through the width) enters β, so noise in x that is shared
    with y (y a ratio over x, or one run's noise in both) does not bias it, unlike the least-
    squares slope of log y on log x. The interval is Fieller's (the Anderson–Rubin
    inversion): every β for which the slope of log y − β log x on log z has a t-interval
    (N − 2 degrees of freedom, residual covariances of the two fits) that contains 0,

        (b_y − β b_x)² ≤ t² (V_yy − 2β V_xy + β² V_xx).

    Bounded when b_x is significant (b_x² > t² V_xx), else the whole line (−inf, inf).

    Args:
        log_z, log_x, log_y: arrays [..., N] (broadcastable); NaN in any drops the triple.

    Returns:
        (beta, low, high, slope_x), each [...]: the ratio, its interval, and b_x.
    """
    log_z, log_x, log_y = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (log_z, log_x, log_y))
    )
    ok = np.isfinite(log_z) & np.isfinite(log_x) & np.isfinite(log_y)
    n = ok.sum(-1)
    safe = np.maximum(n, 1)

    def centred(a):
        a = np.where(ok, a, 0.0)
        return np.where(ok, a - (a.sum(-1) / safe)[..., None], 0.0)

    dz, dx, dy = centred(log_z), centred(log_x), centred(log_y)
    szz = (dz**2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        b_x = (dz * dx).sum(-1) / np.where(szz > 0, szz, np.nan)
        b_y = (dz * dy).sum(-1) / np.where(szz > 0, szz, np.nan)
        rx, ry = dx - b_x[..., None] * dz, dy - b_y[..., None] * dz
        dof = n - 2
        scale = 1.0 / (np.maximum(dof, 1) * szz)
        v_xx, v_xy, v_yy = ((a * b).sum(-1) * scale for a, b in ((rx, rx), (rx, ry), (ry, ry)))
        t2 = t_quantile(confidence, dof) ** 2
        beta = b_y / b_x
        a = b_x**2 - t2 * v_xx
        half_b = b_x * b_y - t2 * v_xy
        c = b_y**2 - t2 * v_yy
        root = np.sqrt(np.maximum(half_b**2 - a * c, 0.0))
        bounded = (a > 0) & (dof >= 1)
        low = np.where(bounded, (half_b - root) / np.where(bounded, a, 1.0), -np.inf)
        high = np.where(bounded, (half_b + root) / np.where(bounded, a, 1.0), np.inf)
    return beta, low, high, b_x
