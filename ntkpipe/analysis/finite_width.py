"""Beyond the paper: depth against width, which scaling law, and μP against NTK (pure: xarray in).

**Depth against width** (Hanin & Nica 2020, "Finite depth and width corrections to the neural
tangent kernel"). For a ReLU MLP with hidden widths n_l, the fluctuation of the tangent kernel's
diagonal at initialization grows with β = Σ_l 1/n_l (depth/width for equal widths):

    E[Θ̂₀(x, x)²] / E[Θ̂₀(x, x)]² ≃ e^{5β},   so   R = Var Θ̂₀(x, x) / (E Θ̂₀(x, x))² ≃ e^{5β} − 1.

:func:`kernel_fluctuation` estimates R per sweep point from the seeds (averaged over a few x);
:func:`fit_hanin_nica` fits log(1 + R) = c β through the origin over every point (least squares)
and per depth, with percentile-bootstrap intervals (seeds resampled within each point), and the
collapse statistic log(c_deepest / c_shallowest): depths at equal β fall on one curve when it is
near 0.

**Which scaling law** (paper §3, Fig. 1: the kernel change "is upper bounded by O(1/√n) but is
closer to O(1/n)"). :func:`which_scaling_law` fits p of y ~ n^p and says which of p = −½ and
p = −1 the interval contains; where it contains both it states the seeds per width (at the
present widths) or the widths (with the present seeds) that would make the interval narrower
than the 0.5 between them, from the fit's residual variance (power calculation:
se(p) = σ / √(S · Σ_w (log w − mean)²) for S seeds at every width w).

**μP against NTK**: :func:`relative_error_limits` extrapolates the relative linearization error
RMSE(f_T, f^lin_T)/RMS(f_T − f_0) to infinite width, y = y_∞ + b·n^{−½}, for each
parameterization (:func:`width_limit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ntkpipe.analysis.fits import FitError, PowerLawFit, fit_along, t_quantile
from ntkpipe.analysis.summary import format_number, groups, sweep_axes

#: Hanin & Nica's constant for ReLU: E[Θ(x,x)²]/E[Θ(x,x)]² ≃ e^{5β}.
HANIN_NICA_CONSTANT = 5.0
#: Bootstrap replicates of the Hanin–Nica fit (fixed generator: the verdict is reproducible).
BOOTSTRAP = 2000
#: The two scaling laws the paper's sentence about Fig. 1 weighs: name → exponent.
SCALING_LAWS = {"n^−1/2": -0.5, "n^−1": -1.0}
#: Largest width a power calculation proposes.
MAX_PROPOSED_WIDTH = 2**20


@dataclass(frozen=True)
class HaninNicaFit:
    """log(1 + R) = c · β fitted over the sweep points of one group of the other axes.

    Attributes:
        constant, ci_low, ci_high: c and its percentile-bootstrap interval.
        per_depth: {depth: (c_d, low, high)} for every depth with data.
        collapse, collapse_low, collapse_high: log(c_deepest / c_shallowest) and its interval
            (NaN with one depth).
        n_points: sweep points (depth, width) used; n_seeds: seeds per point (smallest).
        group: values of the other sweep axes.
    """

    constant: float
    ci_low: float
    ci_high: float
    per_depth: dict = field(default_factory=dict)
    collapse: float = math.nan
    collapse_low: float = math.nan
    collapse_high: float = math.nan
    n_points: int = 0
    n_seeds: int = 0
    group: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ScalingLawCheck:
    """Which of the scaling laws :data:`SCALING_LAWS` an exponent's interval supports.

    Attributes:
        fit: the power-law fit y ~ n^p.
        supported: the names of the laws whose exponent lies in the interval.
        needs: when both are supported, the seeds or widths that would separate them.
    """

    fit: PowerLawFit
    supported: tuple[str, ...]
    needs: str = ""

    def describe(self) -> str:
        """E.g. ``supports n^−1 only`` or ``supports both n^−1/2 and n^−1``."""
        if not self.supported:
            return "supports neither n^−1/2 nor n^−1"
        if len(self.supported) == len(SCALING_LAWS):
            return "supports both n^−1/2 and n^−1"
        return f"supports {self.supported[0]} only"


def beta_coordinate(summary: xr.Dataset, sweep_config: dict, axes) -> xr.DataArray | None:
    """β = Σ_l 1/n_l over the hidden layers = depth/width of an MLP (Hanin & Nica 2020), on the
    depth and width axes where they are swept (the summary's ``beta`` coordinate); None unless
    every run is an MLP (fc) with a depth and a width."""
    model = sweep_config.get("model", {})
    if "architecture" in axes or model.get("architecture", "fc") != "fc":
        return None
    if any(name not in axes and name not in model for name in ("depth", "width")):
        return None
    depth, width = (
        summary[name] if name in axes else xr.DataArray(float(model[name]))
        for name in ("depth", "width")
    )
    return (depth / width).astype(float)


def kernel_diagonal(kernel_init: xr.Dataset | None, seeds: xr.DataArray, n: int) -> xr.DataArray:
    """Θ̂₀(x, x) of the first `n` training examples [seed, sample] from ``kernel_init.zarr``
    (``ntk_train_train``; NaN without it): the per-run part of :func:`kernel_fluctuation`."""
    if kernel_init is None:
        return xr.full_like(seeds, np.nan, dtype=float).expand_dims(sample=n, axis=1)
    kernel = kernel_init["ntk_train_train"]
    rows, cols = kernel.dims[1], kernel.dims[2]
    n = min(n, kernel.sizes[rows], kernel.sizes[cols])
    diag = np.stack([kernel.isel({rows: i, cols: i}).values for i in range(n)], axis=1)
    return xr.DataArray(diag, dims=("seed", "sample"), coords={"seed": seeds.values})


def kernel_fluctuation(ds: xr.Dataset) -> xr.DataArray:
    """R = Var_seed Θ̂₀(x, x) / (E_seed Θ̂₀(x, x))², averaged over the sampled x (axes…).

    Args:
        ds: the summary with ``ntk_diag_init`` (axes…, seed, sample).

    Returns:
        R on the sweep axes (NaN where fewer than 2 seeds have data).
    """
    diag = ds["ntk_diag_init"]
    count = diag.notnull().sum("seed")
    mean = diag.mean("seed")
    ratio = diag.var("seed", ddof=1) / mean**2
    return ratio.where(count >= 2).mean("sample")


def fit_hanin_nica(ds: xr.Dataset, *, confidence: float = 0.95) -> list[HaninNicaFit]:
    """The constant c of log(1 + R) = c β, per group of the sweep axes other than depth and
    width (module docstring).

    Args:
        ds: the summary, with ``ntk_diag_init`` and the coordinate ``beta``.
        confidence: level of the bootstrap intervals.

    Raises:
        ValueError: the summary lacks ``ntk_diag_init`` or ``beta`` (an MLP sweep with Θ̂₀).
    """
    for name in ("ntk_diag_init", "beta"):
        if name not in ds.variables:
            raise ValueError(
                f"the Hanin–Nica fit needs {name!r} in the summary (an fc sweep with "
                f"kernels.initial: true); it has {sorted(map(str, ds.data_vars))}"
            )
    diag = ds["ntk_diag_init"].assign_coords(beta=ds["beta"])
    out = []
    holder = xr.Dataset({"ntk_diag_init": diag}, attrs=ds.attrs)
    for group, sub in groups(holder, exclude=("depth", "width")):
        fit = _hanin_nica_group(sub["ntk_diag_init"], confidence)
        if fit is not None:
            out.append(HaninNicaFit(**{**fit.__dict__, "group": group}))
    return out


def which_scaling_law(da: xr.DataArray, *, confidence: float = 0.95) -> ScalingLawCheck:
    """Fits da ~ n^p along ``width`` (other dims replicates) and checks p = −½ and p = −1.

    Raises:
        FitError: fewer than 3 widths with data.
    """
    fit = fit_along(da, "width", confidence=confidence)
    supported = tuple(name for name, p in SCALING_LAWS.items() if fit.covers(p))
    needs = ""
    if len(supported) == len(SCALING_LAWS):
        needs = _separating_design(da, fit, confidence)
    return ScalingLawCheck(fit, supported, needs)


@dataclass(frozen=True)
class WidthLimit:
    """y(n) = y_∞ + b · n^{−½} fitted by least squares (every seed a replicate).

    Attributes:
        limit, ci_low, ci_high: y_∞, the value extrapolated to infinite width, and its
            t-interval (N − 2 degrees of freedom).
        slope: b.
        exponent: the power law y ~ n^p fitted on the same data (PowerLawFit), for the text.
        n_points: (width, seed) points used.
    """

    limit: float
    ci_low: float
    ci_high: float
    slope: float
    exponent: PowerLawFit | None
    n_points: int

    def describe(self) -> str:
        """E.g. ``y_∞ = 0.033 [0.021, 0.045] (15 points), exponent −0.35 (…)``."""
        text = (
            f"y_∞ = {format_number(self.limit)} [{format_number(self.ci_low)}, "
            f"{format_number(self.ci_high)}] ({self.n_points} points)"
        )
        return f"{text}, exponent {self.exponent.describe()}" if self.exponent else text


def width_limit(da: xr.DataArray, *, confidence: float = 0.95) -> WidthLimit:
    """Fits da = y_∞ + b · n^{−½} along ``width`` (other dims replicates).

    The form of the leading finite-width correction in both parameterizations: under NTK
    f − f_lin = O(n^{−½}) (Theorem 2.1), so y_∞ = 0; under μP the network converges to a
    feature-learning limit with O(n^{−½}) fluctuations around it, so y_∞ > 0 when that limit is
    not the linearized one. A power law fitted over a finite range of widths cannot tell a
    slowly approached plateau from a decay; the extrapolated y_∞ can.

    Raises:
        FitError: fewer than 3 widths with data.
    """
    x, y = xr.broadcast(da["width"].astype(float), da)
    ok = np.isfinite(y.values) & np.isfinite(x.values) & (x.values > 0)
    u, v = x.values[ok] ** -0.5, y.values[ok]
    if np.unique(u).size < 3:
        raise FitError(f"a width limit needs ≥ 3 widths with data; got {np.unique(u).size}")
    design = np.stack([np.ones_like(u), u], axis=1)
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    dof = v.size - 2
    sigma2 = float(np.sum((v - design @ coef) ** 2) / dof)
    se = math.sqrt(sigma2 * np.linalg.inv(design.T @ design)[0, 0])
    half = float(t_quantile(confidence, dof)) * se
    try:
        exponent = fit_along(da, "width", confidence=confidence)
    except FitError:
        exponent = None
    return WidthLimit(
        float(coef[0]), float(coef[0] - half), float(coef[0] + half), float(coef[1]),
        exponent, int(v.size),
    )  # fmt: skip


def relative_error_limits(ds: xr.Dataset, *, confidence: float = 0.95) -> dict:
    """{parameterization: [(group, WidthLimit or FitError text)]} of the relative linearization
    error RMSE(f_T, f^lin_T)/RMS(f_T − f_0) on the test set against width, per value of the
    ``parameterization`` axis and group of the other axes (:func:`width_limit`)."""
    from ntkpipe.analysis.aggregate import relative_rmse_final

    relative = relative_rmse_final(ds, "test").to_dataset(name="relative")
    relative.attrs = ds.attrs
    out: dict = {}
    for group, sub in groups(relative, exclude=("width",)):
        name = str(group.get("parameterization", ""))
        rest = {k: v for k, v in group.items() if k != "parameterization"}
        try:
            result = width_limit(sub["relative"], confidence=confidence)
        except FitError as error:
            result = str(error)
        out.setdefault(name, []).append((rest, result))
    return out


def has_depth_width(ds: xr.Dataset) -> bool:
    """Whether depth and width are both swept (≥ 2 values each) with ``ntk_diag_init`` data."""
    axes = sweep_axes(ds)
    return (
        all(a in axes and ds.sizes[a] >= 2 for a in ("depth", "width"))
        and "ntk_diag_init" in ds
        and bool(np.isfinite(ds["ntk_diag_init"].values).any())
    )


# ---------------------------------------------------------------- private helpers


def _hanin_nica_group(diag: xr.DataArray, confidence: float) -> HaninNicaFit | None:
    """The fit on one group: diag (depth, width, seed, sample) with coordinate beta."""
    points = diag.stack(point=("depth", "width")).transpose("point", "seed", "sample")
    # β over (depth, width) in the stacking's order, whatever the sweep's axis order
    grid = xr.DataArray(
        np.zeros((diag.sizes["depth"], diag.sizes["width"])),
        dims=("depth", "width"),
        coords={"depth": diag["depth"], "width": diag["width"]},
    )
    beta = diag["beta"].broadcast_like(grid).transpose("depth", "width").values.ravel()
    depth = np.repeat(diag["depth"].values, diag.sizes["width"])
    values = points.values  # [point, seed, sample]
    seeds_ok = np.isfinite(values).all(axis=2)
    keep = (seeds_ok.sum(axis=1) >= 2) & np.isfinite(beta) & (beta > 0)
    if keep.sum() < 2:
        return None
    values, beta, depth = values[keep], beta[keep], depth[keep]
    samples = [v[np.isfinite(v).all(axis=1)] for v in values]  # per point [seed_ok, sample]
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(BOOTSTRAP):
        drawn = [s[rng.integers(0, len(s), len(s))] for s in samples]
        boot.append(_log1p_fluctuation(drawn))
    boot = np.asarray(boot)  # [boot, point]
    point = _log1p_fluctuation(samples)
    depths = sorted(set(depth.tolist()))
    lo_q, hi_q = 50 * (1 - confidence), 50 * (1 + confidence)

    def constant(y, mask):  # least squares through the origin, per row of y
        b = beta[mask]
        return np.nansum(y[..., mask] * b, axis=-1) / np.sum(b**2)

    def interval(estimate, replicates):
        return (
            float(estimate),
            float(np.nanpercentile(replicates, lo_q)),
            float(np.nanpercentile(replicates, hi_q)),
        )

    every = np.ones_like(beta, dtype=bool)
    c, low, high = interval(constant(point, every), constant(boot, every))
    per_depth = {int(d): interval(constant(point, depth == d), constant(boot, depth == d))
                 for d in depths}  # fmt: skip
    collapse = (math.nan, math.nan, math.nan)
    if len(depths) >= 2:
        shallow, deep = depth == depths[0], depth == depths[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            collapse = interval(
                np.log(constant(point, deep) / constant(point, shallow)),
                np.log(constant(boot, deep) / constant(boot, shallow)),
            )
    return HaninNicaFit(
        constant=c,
        ci_low=low,
        ci_high=high,
        per_depth=per_depth,
        collapse=collapse[0],
        collapse_low=collapse[1],
        collapse_high=collapse[2],
        n_points=int(len(beta)),
        n_seeds=int(min(len(s) for s in samples)),
    )


def _log1p_fluctuation(samples) -> np.ndarray:
    """log(1 + R) per point, R the sample-mean of Var_seed/mean² (samples: [seed, sample])."""
    out = []
    for s in samples:
        ratio = np.var(s, axis=0, ddof=1) / np.mean(s, axis=0) ** 2
        out.append(np.log1p(np.mean(ratio)))
    return np.asarray(out)


def _separating_design(da: xr.DataArray, fit: PowerLawFit, confidence: float) -> str:
    """Seeds per width (present widths) or widths (present seeds) for a CI narrower than 0.5.

    From the fit's residual standard deviation σ = se(p) · √Sxx (Sxx = Σ over the points of
    (log n − mean)²), the half-width t · σ/√Sxx' must fall to 0.25, the half of the distance
    between −½ and −1, so that the interval cannot contain both.
    """
    x, y = xr.broadcast(da["width"].astype(float), da)
    ok = np.isfinite(y.values) & (y.values > 0)
    log_x = np.log(x.values[ok])
    widths, counts = np.unique(log_x, return_counts=True)
    sxx = float(np.sum((log_x - log_x.mean()) ** 2))
    sigma = fit.stderr * math.sqrt(sxx)
    t = float(t_quantile(confidence, max(fit.n_points - 2, 1)))
    target = 0.25
    seeds = int(np.min(counts))
    needed_sxx = (t * sigma / target) ** 2
    seeds_needed = math.ceil(seeds * needed_sxx / sxx) if sxx > 0 else math.inf
    grid = list(np.exp(widths))
    while True:  # widths doubling beyond the largest, every one with the present seeds
        logs = np.log(grid)
        if seeds * float(np.sum((logs - logs.mean()) ** 2)) >= needed_sxx:
            break
        if grid[-1] >= MAX_PROPOSED_WIDTH:
            grid = None
            break
        grid.append(grid[-1] * 2)
    widths_text = (
        f"widths up to {int(round(grid[-1]))} (doubling) with {seeds} seeds each"
        if grid is not None
        else f"more than widths up to {MAX_PROPOSED_WIDTH}"
    )
    return (
        f"to separate n^−1/2 from n^−1 (CI half-width ≤ {target}; now "
        f"{format_number(t * fit.stderr)}, residual sd {format_number(sigma)}): "
        f"≥ {seeds_needed} seeds per width at the present {len(widths)} widths, or "
        f"{widths_text}"
    )
