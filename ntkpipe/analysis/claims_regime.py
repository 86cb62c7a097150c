"""The claims beyond the paper about the learning rate (issue 20): tests of rows of the claim
table (`ntkpipe.analysis.claims_table`), on sweeps with a ``lr_factor`` axis.

Normalization: with L = ½ · mean over n·k entries, GD on f_lin is stable iff
x = η·λ_max(Θ̂₀)/(n·k) < 2 (:mod:`ntkpipe.analysis.regime`); x is Lewkowycz et al.'s η·λ₀
(their loss is ½ · mean over examples and their kernel is ours divided by n·k, so their
η_crit = 2/λ₀ is our x = 2). λ_max(Θ̂₀) is the run's recorded sharpness at step 0.

- :func:`largest_converging_claims`: per width, the largest x at which the network still
  converges lies in the band :data:`CONVERGENCE_BAND`: above the stability edge 2 (the
  catapult phase exists) and at most ≈ 12 (Lewkowycz et al. 2020, "The large learning rate
  phase of deep learning: the catapult mechanism", arXiv:2003.02218: η_max = 4/λ₀ for their
  solvable two-layer linear model, ≈ 12/λ₀ measured for deep ReLU networks). The measured
  interval is [largest converging x, smallest diverging x above it] over the sweep's factors.
- :func:`catapult_flatter_claims`: every catapult run ends flatter than its stability line,
  η·λ_T/(n·k) < 2 (up to :data:`EDGE_MARGIN` for the power iteration's tolerance).
- :func:`tracking_below_critical_claims`: below η_crit (lr_factor < 1), RMSE(f_T, f^lin_T)
  falls with width (Theorem 2.1): the CI of its exponent against width lies below 0.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.claims_base import Claim
from ntkpipe.analysis.regime import STABILITY_EDGE, as_text
from ntkpipe.analysis.summary import format_number
from ntkpipe.analysis.verdicts import CONSISTENT, INCONCLUSIVE, INCONSISTENT

__all__ = [
    "CONVERGENCE_BAND",
    "EDGE_MARGIN",
    "LR_AXIS",
    "catapult_flatter_claims",
    "largest_converging_claims",
    "normalized_rate",
    "tracking_below_critical_claims",
]

LR_AXIS = "lr_factor"
CONVERGENCE_BAND = (STABILITY_EDGE, 12.0)
"""Where the largest converging η·λ₀/(n·k) lies: from the linear stability edge 2 to ≈ 12
(Lewkowycz et al. 2020: 4 for the two-layer linear model, ≈ 12 for deep ReLU nets)."""
EDGE_MARGIN = 0.05
"""A catapult run "ends below 2·n·k/η" when η·λ_T/(n·k) < 2·(1 + 5%): the power iteration
(where λ is not exact) stops at a relative residual of 1e-2 (λ to ≪ 1%) and the last record may
sit a few steps before the kernel has settled."""


def normalized_rate(ds: xr.Dataset, step: int) -> xr.DataArray:
    """x = η·λ_max(Θ̂_t)/(n·k) of the network at record `step` (0 or −1), per run and seed."""
    sharp = ds["sharpness"].sel(model="net") if "model" in ds["sharpness"].dims else ds.sharpness
    sharp = sharp.isel(step=step) if step == 0 else analysis.final(sharp.to_dataset())["sharpness"]
    return ds["learning_rate"] * sharp / n_times_k(ds)


def n_times_k(ds: xr.Dataset):
    """n·k: the training-set size (an axis or the fixed ``data.n_train``) times the outputs
    (``data.classes``, ``training.loss``), as a number or a DataArray on ``n_train``."""
    classes = ds.attrs.get("data.classes") or [0, 1]
    k = 1 if len(classes) == 2 and ds.attrs.get("training.loss", "mse") == "mse" else len(classes)
    if "n_train" in ds.dims:
        return ds["n_train"] * k
    return float(ds.attrs.get("data.n_train", math.nan)) * k


def largest_converging_claims(ds: xr.Dataset, row, confidence: float) -> list[Claim]:
    """Per width: the interval [largest converging x, smallest diverging x above it]."""
    low, high = CONVERGENCE_BAND
    claims = []
    for group, sub in _per_width(ds):
        x = normalized_rate(sub, 0).values.ravel()
        regime = as_text(sub["regime"].broadcast_like(normalized_rate(sub, 0))).ravel()
        ok = np.isfinite(x) & np.isin(regime, ["lazy", "catapult", "divergent"])
        converged = x[ok & (regime != "divergent")]
        diverged = x[ok & (regime == "divergent")]
        if converged.size == 0:
            claims.append(
                _claim(
                    row,
                    group,
                    INCONCLUSIVE,
                    "no run converged",
                    math.nan,
                    math.nan,
                    math.nan,
                    0,
                    "needs smaller lr_factor values",
                )
            )
            continue
        best = float(converged.max())
        above = diverged[diverged > best]
        upper = float(above.min()) if above.size else math.inf
        n = int(ok.sum())
        if upper <= low or best > high:
            verdict, reason = INCONSISTENT, ""
        elif best >= low and upper <= high * (1 + EDGE_MARGIN) and math.isfinite(upper):
            verdict, reason = CONSISTENT, ""
        elif best >= low and math.isinf(upper):
            verdict = INCONCLUSIVE
            reason = f"no run diverged above x = {format_number(best)}: needs larger lr_factor"
        else:
            verdict = INCONCLUSIVE
            reason = "the factors straddle the band's edge: needs lr_factor values near it"
        measured = (
            f"largest converging η·λ₀/(n·k) in [{format_number(best)}, {format_number(upper)}]"
        )
        claims.append(_claim(row, group, verdict, measured, best, best, upper, n, reason))
    return claims


def catapult_flatter_claims(ds: xr.Dataset, row, confidence: float) -> list[Claim]:
    """Every catapult run ends with η·λ_T/(n·k) below 2 (+ EDGE_MARGIN)."""
    end = normalized_rate(ds, -1)
    regime = as_text(ds["regime"].broadcast_like(end))
    values = end.values[(regime == "catapult") & np.isfinite(end.values)]
    if values.size == 0:
        return [
            _claim(
                row,
                {},
                INCONCLUSIVE,
                "no catapult run",
                math.nan,
                math.nan,
                math.nan,
                0,
                "needs lr_factor values just above 1 (catapult runs)",
            )
        ]
    worst = float(values.max())
    limit = STABILITY_EDGE * (1 + EDGE_MARGIN)
    verdict = CONSISTENT if worst < limit else INCONSISTENT
    share = float(np.mean(values < limit))
    measured = (
        f"max η·λ_T/(n·k) = {format_number(worst)} over {values.size} catapult runs "
        f"({share:.0%} below 2)"
    )
    return [_claim(row, {}, verdict, measured, worst, float(values.min()), worst, values.size, "")]


def tracking_below_critical_claims(ds: xr.Dataset, row, confidence: float) -> list[Claim]:
    """Per lr_factor < 1: the CI of the exponent of RMSE(f_T, f^lin_T) (test) against width
    below 0."""
    claims = []
    for factor in ds[LR_AXIS].values:
        if float(factor) >= 1.0:
            continue
        sub = ds.sel({LR_AXIS: factor})
        group = {LR_AXIS: float(factor)}
        for f in analysis.rmse_exponents(sub, "test", confidence=confidence):
            scope = {**group, **f.group}
            if f.fit is None:
                claims.append(
                    _claim(
                        row,
                        scope,
                        INCONCLUSIVE,
                        "no fit",
                        math.nan,
                        math.nan,
                        math.nan,
                        0,
                        f"needs ≥ 3 widths ({f.reason})",
                    )
                )
                continue
            verdict = (
                CONSISTENT
                if f.fit.ci_high < 0
                else INCONSISTENT
                if f.fit.ci_low > 0
                else INCONCLUSIVE
            )
            reason = "" if verdict != INCONCLUSIVE else "the interval straddles 0: more seeds"
            claims.append(
                _claim(
                    row,
                    scope,
                    verdict,
                    f"exponent {f.fit.describe()}",
                    f.fit.exponent,
                    f.fit.ci_low,
                    f.fit.ci_high,
                    f.fit.n_points,
                    reason,
                )
            )
    return claims


def _per_width(ds: xr.Dataset):
    if "width" not in ds.dims:
        yield {}, ds
        return
    for width in ds["width"].values:
        yield {"width": int(width)}, ds.sel(width=width)


def _claim(row, group, verdict, measured, estimate, low, high, n, reason) -> Claim:
    return Claim(
        figure=row.figure,
        statement=row.wording,
        measured=measured,
        verdict=verdict,
        criterion=_CRITERIA[row.key.split(".")[-1]],
        group=group,
        reason=reason,
        estimate=float(estimate),
        ci_low=float(low),
        ci_high=float(high),
        n_points=int(n),
    )


_CRITERIA = {
    "largest_converging": (
        "x = η·λ_max(Θ̂₀)/(n·k) (Lewkowycz's η·λ₀): consistent when [largest converging x, "
        f"smallest diverging x above it] lies in [{CONVERGENCE_BAND[0]:g}, "
        f"{CONVERGENCE_BAND[1]:g}] (+{EDGE_MARGIN:.0%}), inconsistent when it lies outside"
    ),
    "catapult_flatter": (
        f"every catapult run ends with η·λ_T/(n·k) < 2 (+{EDGE_MARGIN:.0%}); inconsistent if "
        "one does not"
    ),
    "tracking_below_critical": (
        "at each lr_factor < 1, the 95% CI of the exponent of RMSE(f_T, f^lin_T) against "
        "width lies below 0"
    ),
}
