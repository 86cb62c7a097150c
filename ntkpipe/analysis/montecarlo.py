"""The Monte Carlo rate of Fig. S9–S10 from independent per-seed kernels (pure NumPy).

The claim: the mean of M empirical kernels converges to the analytic one as
‖(1/M) Σ_{s ≤ M} Θ̂_s − Θ‖_F/‖Θ‖_F ~ M^−½ while M ≪ n. With the relative deviations
D_s = (Θ̂_s − Θ)/‖Θ‖_F of independent seeds (the same holds for K̂ against K), the expected
squared error of a mean of M of them is exactly

    e²(M) = E‖(1/M) Σ_s D_s‖² = b² + v/M,    b² = ‖E D‖²,  v = E‖D − E D‖² = tr Var D,

the finite-width bias b (the plateau, O(1/n)) and the seed-to-seed variance v (O(1/n)); the
error falls as M^−½ while v/M ≫ b², i.e. M ≪ M* = v/b² (∝ n). The measured exponent is the
least-squares slope p of log e(M) against log M over M = 1 … S, the S seeds of the sweep point
(−½ exactly without bias, flatter with one).

Why not a fit to one chain's running means: the running means of one chain share their seeds,
so their errors are strongly correlated; an OLS interval that treats the M points as
independent covers the true slope in only ~65–70% of chains. Here b² and v are estimated from
per-seed statistics, and the interval comes from a jackknife over the seeds, which are
independent: every M shares the same (b̂², v̂), so the dependence between the points of the
curve is carried by construction.

Per-seed statistics (stored by every run, ``metrics.zarr``; a sweep point pools all its runs):

- ``sq_s = ‖D_s‖²`` (E = b² + v);
- ``cross_s = Σ_{s' ≠ s, same run} ⟨D_s, D_s'⟩`` and ``partners_s`` = the number of those s'
  (E⟨D_s, D_s'⟩ = b² for independent seeds s ≠ s').

Pairs within a run suffice for an unbiased b̂² = Σ cross / Σ partners, so no job has to read
another's kernels; a run of one seed contributes to v̂ only. With S seeds,
v̂ = mean_s sq_s − b̂² and ê²(M) = b̂² + v̂/M. p depends on b², v only through ρ = b²/v and
increases with it, so the interval on p is the image of the delete-one-seed jackknife
t-interval ρ̂ ± t_{S−1} · se_J, se_J² = (S − 1)/S · Σ_s (ρ̂_(s) − ρ̄)² (a monotone map keeps
the coverage). Pairs across runs would narrow it (they are 120 of the 120 + 16 terms at 16
seeds against 24 within runs of 4); they need every run's kernels in one job.

The interval of ρ is cut to ρ ≥ 0 (b² ≥ 0), so p's runs from p(max(ρ_low, 0)) ≥ −½: without
the cut the lower end fell below ρ = −1/S (p = −∞) in 99% of replicates and the claim was
"inconclusive" in 96–100%.

Measured on real empirical kernels (tests/analysis/test_montecarlo.py: ReLU, 3 hidden layers,
width 64, 16 seeds in runs of 4, 120 replicates; true ρ ≈ 10⁻⁴, p = −0.500): the 95% interval
covers the true slope in 98% of replicates; "consistent" with a range whose upper edge is the
true slope in 1%; against the paper's −½ ± 0.2 "consistent" in 26%, "inconclusive" in 74%,
never "inconsistent" (with every pair of the 16 seeds, as from one run of 16: 78% consistent).
The jackknife half-width of ρ (≈ 0.2 at runs of 4) is what is left: it is the honest spread of
ρ̂ from 24 within-run pairs, and the running-mean fit it replaces covered in < 85%.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr
from scipy import special  # stdtrit is scipy.stats.t.ppf, without importing scipy.stats

from ntkpipe.analysis.fits import ExponentFit, PowerLawFit
from ntkpipe.analysis.summary import (
    KERNEL_SYMBOLS,
    format_number,
    groups,
    has_data,
    require_variable,
    usable_runs,
)


def moments(sq, cross, partners):
    """(b̂², v̂) from per-seed statistics [..., seed] (NaN: a missing seed, left out).

    Args:
        sq: ‖D_s‖² [..., seed].
        cross: Σ over the other seeds of the same run of ⟨D_s, D_s'⟩ [..., seed].
        partners: the number of those seeds [..., seed].

    Returns:
        ``(bias_sq, variance)`` [...]: NaN where fewer than 2 seeds or no pair.
    """
    sq, cross, partners, use = _masked(sq, cross, partners)
    return _moments(
        (sq * use).sum(-1), use.sum(-1), (cross * use).sum(-1), (partners * use).sum(-1)
    )


def expected_error(bias_sq, variance, counts):
    """√(b² + v/M) for every M in `counts` [m]: [..., m] (NaN where negative)."""
    counts = np.asarray(counts, dtype=float)
    e2 = np.asarray(bias_sq, float)[..., None] + np.asarray(variance, float)[..., None] / counts
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(e2 > 0, e2, np.nan))


def slope(bias_sq, variance, seeds: int):
    """Least-squares slope of log √(b² + v/M) against log M over M = 1 … `seeds` [...]."""
    log_m = np.log(np.arange(1, seeds + 1, dtype=float))
    centred = log_m - log_m.mean()
    log_e = np.log(expected_error(bias_sq, variance, np.arange(1, seeds + 1)))
    return (log_e * centred).sum(-1) / (centred**2).sum()


def slope_interval(sq, cross, partners, *, confidence: float = 0.95):
    """The exponent p of e(M) over M = 1 … S and its interval, batched over [..., seed].

    p depends on the data only through ρ = b²/v (`slope_of_ratio`, increasing in ρ on
    ρ > −1/S), so the interval of p is the image of the delete-one-seed jackknife t-interval of
    ρ̂ (a smooth statistic of independent seeds), cut to the parameter space ρ ≥ 0 (b² is a
    squared norm): a monotone map and the cut keep its coverage, and p ≥ −½ always. Without the
    cut a lower end ρ < −1/S mapped to p = −∞ (99% of replicates at the paper layout, so the
    claim could never be "consistent").

    Args:
        sq, cross, partners: the per-seed statistics (`moments`); every leading index is one
            sweep point (or one replicate); NaN seeds are left out.
        confidence: level of the interval.

    Returns:
        dict of arrays [...]: ``slope``, ``low``, ``high``, ``ratio`` (ρ̂), ``ratio_low``,
        ``ratio_high``, ``bias_sq``, ``variance`` and ``seeds`` (S). NaN where S < 3, where no
        two seeds share a run (b² then cannot be told from v), or where even the upper end of
        ρ lies below −1/S.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r}: expected a number in (0, 1), e.g. 0.95")
    sq, cross, partners, use = _masked(sq, cross, partners)
    n = use.sum(-1)
    total_sq, total_cross = (sq * use).sum(-1), (cross * use).sum(-1)
    total_pairs = (partners * use).sum(-1)
    bias_sq, variance = _moments(total_sq, n, total_cross, total_pairs)
    out = {k: np.full(n.shape, np.nan) for k in ("slope", "low", "high", "ratio_low", "ratio_high")}
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a point without seeds: NaN
        ratio = bias_sq / variance
        # leave seed s out: its square, and both orders of each of its pairs
        b_out, v_out = _moments(
            total_sq[..., None] - sq,
            n[..., None] - 1.0,
            total_cross[..., None] - 2 * cross,
            total_pairs[..., None] - 2 * partners,
        )
        r_out = np.where(use, b_out / v_out, np.nan)
        mean_out = np.nanmean(r_out, axis=-1)
        se = np.sqrt((n - 1) / n * np.nansum((r_out - mean_out[..., None]) ** 2, -1))
        half = special.stdtrit(np.maximum(n - 1, 1), (1 + confidence) / 2) * se
    ok = (n >= 3) & np.isfinite(ratio) & np.isfinite(half)
    for seeds in np.unique(n[ok]).astype(int):  # one M grid (1 … S) per number of seeds S
        at = ok & (n == seeds)
        # b² = ‖E D‖² ≥ 0: the interval is cut to ρ ≥ 0, which keeps every ρ it could cover
        low, high = (np.maximum(ratio[at] + sign * half[at], 0.0) for sign in (-1, 1))
        out["ratio_low"][at], out["ratio_high"][at] = low, high
        out["slope"][at] = slope_of_ratio(ratio[at], seeds)
        out["low"][at] = slope_of_ratio(low, seeds)
        out["high"][at] = slope_of_ratio(high, seeds)
    out["low"] = np.where(np.isnan(out["high"]), np.nan, out["low"])
    return {**out, "ratio": ratio, "bias_sq": bias_sq, "variance": variance, "seeds": n}


def slope_of_ratio(ratio, seeds: int):
    """p(ρ): the least-squares slope of log √(ρ + 1/M) against log M over M = 1 … `seeds`,
    i.e. `slope` with b² = ρ·v (−½ at ρ = 0, → 0 as ρ → ∞); −∞ for ρ ≤ −1/S."""
    ratio = np.asarray(ratio, dtype=float)
    positive = ratio > -1.0 / seeds
    value = slope(np.where(positive, ratio, 0.0), np.ones_like(ratio), seeds)
    return np.where(positive, value, np.where(np.isnan(ratio), np.nan, -np.inf))


def per_seed_statistics(deviations):
    """``(sq, cross, partners)`` [seed] of one run from its relative deviations D_s
    [seed, ...] (any trailing shape, e.g. [seed, n, n]): the Gram of the flattened D_s."""
    d = np.asarray(deviations, dtype=float)
    flat = d.reshape(d.shape[0], -1)
    gram = flat @ flat.T
    sq = np.diag(gram).copy()
    finite = np.isfinite(sq)
    gram = np.where(finite[:, None] & finite[None, :], gram, 0.0)
    cross = gram.sum(1) - np.where(finite, sq, 0.0)
    partners = np.full(sq.shape, finite.sum() - 1.0)
    return sq, np.where(finite, cross, np.nan), np.where(finite, partners, np.nan)


def _masked(sq, cross, partners):
    sq, cross, partners = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (sq, cross, partners))
    )
    use = np.isfinite(sq) & np.isfinite(cross) & np.isfinite(partners)
    return (*(np.where(use, a, 0.0) for a in (sq, cross, partners)), use)


def _moments(total_sq, n, total_cross, total_pairs):
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (np.asarray(n) >= 2) & (np.asarray(total_pairs) > 0)
        bias_sq = np.where(ok, total_cross / np.where(ok, total_pairs, 1.0), np.nan)
        variance = np.where(ok, total_sq / np.where(ok, n, 1.0) - bias_sq, np.nan)
    return bias_sq, variance


# ---------------------------------------------------------------- on the summary


def has_mc_samples(ds: xr.Dataset, at_least: int = 3) -> bool:
    """Whether the summary has the Monte Carlo statistics (``<kernel>_mc_sq``) of ≥ `at_least`
    seeds at some sweep point (all its runs pooled); fewer cannot be fitted against M."""
    if not any(has_data(ds, f"{k}_mc_sq") for k in KERNEL_SYMBOLS):
        return False
    name = next(f"{k}_mc_sq" for k in KERNEL_SYMBOLS if has_data(ds, f"{k}_mc_sq"))
    return int(np.isfinite(ds[name]).sum("seed").max()) >= at_least


def mc_error_curve(ds: xr.Dataset, kernel: str = "ntk") -> xr.DataArray:
    """The expected error of the mean of M empirical kernels against M (Fig. S9–S10).

    √(b̂² + v̂/M) for M = 1 … the largest number of seeds of a sweep point, with b̂² and v̂
    estimated from the per-seed statistics of all the point's runs
    (:mod:`ntkpipe.analysis.montecarlo`); NaN beyond a point's own number of seeds. Runs not
    in `USABLE_STATUSES` are left out.

    Args:
        ds: the summary with ``<kernel>_mc_sq``, ``<kernel>_mc_cross`` and ``mc_partners``
            (axes…, seed).
        kernel: "ntk" (Θ̂ against Θ) or "nngp" (K̂ against K).

    Returns:
        DataArray (axes…, mc_samples).
    """
    stats = _mc_statistics(ds, kernel)
    b2, v = moments(*(stats[name].values for name in ("sq", "cross", "partners")))
    seeds = np.isfinite(stats["sq"]).sum("seed")
    counts = np.arange(1, max(int(seeds.max()), 1) + 1)
    curve = expected_error(b2, v, counts)
    curve = np.where(counts <= seeds.values[..., None], curve, np.nan)
    dims = [*seeds.dims, "mc_samples"]
    coords = {d: seeds[d] for d in seeds.dims if d in seeds.coords}
    return xr.DataArray(curve, dims=dims, coords={**coords, "mc_samples": counts})


def mc_exponents(ds: xr.Dataset, *, confidence: float = 0.95) -> list[ExponentFit]:
    """The exponent of `mc_error_curve` against M and its interval
    (:func:`ntkpipe.analysis.slope_interval`), per kernel and sweep point.

    Returns:
        `ExponentFit` with quantity ``ntk_mc_error`` / ``nngp_mc_error``, label Θ̂ / K̂, the
        sweep point (all axes of length > 1, width included) as group, and a `PowerLawFit`
        whose n_points is the number of seeds S (M = 1 … S); no fit, with the reason, where
        fewer than 3 seeds or no two seeds of one run.
    """
    fits = []
    for kernel, symbol in KERNEL_SYMBOLS.items():
        if not has_data(ds, f"{kernel}_mc_sq"):
            continue
        stats = _mc_statistics(ds, kernel)
        stats.attrs = ds.attrs
        name = f"{kernel}_mc_error"
        for group, sub in groups(stats):
            arrays = [np.ravel(sub[k].values) for k in ("sq", "cross", "partners")]
            found = slope_interval(*arrays, confidence=confidence)
            fits.append(ExponentFit(name, symbol, group, *_mc_fit(found, confidence)))
    return fits


def _mc_statistics(ds: xr.Dataset, kernel: str) -> xr.Dataset:
    if kernel not in KERNEL_SYMBOLS:
        raise ValueError(f"kernel={kernel!r}: expected one of {list(KERNEL_SYMBOLS)}")
    names = {"sq": f"{kernel}_mc_sq", "cross": f"{kernel}_mc_cross", "partners": "mc_partners"}
    for name in names.values():
        require_variable(ds, name)
    keep = [*names.values(), *(["status"] if "status" in ds else [])]
    masked = usable_runs(ds[keep])
    return xr.Dataset({short: masked[name] for short, name in names.items()})


def _mc_fit(found: dict, confidence: float) -> tuple:
    """(PowerLawFit, "") from `slope_interval` of one point, or (None, reason)."""
    value = {k: float(np.asarray(v)) for k, v in found.items()}
    seeds = int(value["seeds"])
    if seeds < 3:
        return None, f"{seeds} seed(s) with kernels at this point; needs ≥ 3"
    if not np.isfinite(value["slope"]):
        return None, (
            "no two seeds in one run (b² cannot be told from v): seeds.per_job ≥ 2"
            if not np.isfinite(value["bias_sq"])
            else f"the estimated plateau b̂²/v̂ = {format_number(value['ratio'])} ≤ −1/{seeds}"
        )
    fit = PowerLawFit(
        exponent=value["slope"],
        ci_low=value["low"],
        ci_high=value["high"],
        prefactor=math.sqrt(max(value["bias_sq"] + value["variance"], 0.0)),
        n_points=seeds,
        n_x=seeds,
        stderr=math.nan,  # the interval is the image of ρ's (slope_interval)
        confidence=confidence,
    )
    return fit, ""
