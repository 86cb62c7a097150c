"""Fig. S4 (cross-entropy): the error between f and f^lin "becomes much worse at late times if
the two models deviate significantly before the logits enter their late-time steady-growth
regime" (§3).

What is measured. Per run, RMSE_e = RMSE(f_{t_e}, f^lin_{t_e}) on the test set at an early
time t_e (the first record at which the network's median training loss has fallen to
`EARLY_LOSS_FRACTION` of its initial value: the examples are being classified, the logits'
steady growth starts) and the late growth G = RMSE_T / RMSE_e to the last record T. The claim:
G is larger where RMSE_e is, β = d log G / d log RMSE_e > 0.

Why across widths. The least-squares slope of log G = log RMSE_T − log RMSE_e on log RMSE_e
over runs regresses a ratio on its own denominator: a run's noise in RMSE_e enters x and, with
the opposite sign, y, which biases the slope toward −1 (measured on config/small/fig_s4_xent:
−0.39 [−0.67, −0.11] over 6 runs, a false "inconsistent"; tests/analysis/test_claims_table.py
reproduces it with the seed noise those runs show). Here the width is the instrument: narrower
networks deviate more early (RMSE_e ∝ n^{b_e}, b_e < 0), and the claim says their late growth is
larger too (G ∝ n^{b_G}, b_G < 0). β = b_G / b_e (`fits.slope_ratio_intervals`): both slopes
are against log n, which carries no noise, so a run's noise in RMSE_e moves neither the slope's
x nor its expectation; the interval is Fieller's. When the widths do not move RMSE_e
significantly, the interval is unbounded and the claim "inconclusive": the sweep does not vary
the early deviation.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.aggregate import format_number
from ntkpipe.analysis.claims_base import Claim, ClaimRow
from ntkpipe.analysis.fits import slope_ratio_intervals
from ntkpipe.analysis.verdicts import INCONCLUSIVE, sign_needs, sign_verdict

#: Inconsistent when the CI of β lies below this (the late growth does not rise with the early
#: deviation by at least this elasticity).
LATE_GROWTH_MARGIN = 0.1
#: The early time: the first record at which the network's median training loss has fallen to
#: this fraction of its initial value (the logits start their steady growth once the examples
#: are classified), if it comes before the last record.
EARLY_LOSS_FRACTION = 0.5


def late_growth_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. S4, one claim per group of the axes other than width, on cross-entropy groups."""
    names = ["rmse_test", "loss_train"] + (["status"] if "status" in ds else [])
    usable = analysis.usable_runs(ds[names])
    claims = []
    for group, sub in analysis.groups(usable, exclude=("width",)):
        if (analysis.training_setting(ds, group, "training.loss") or "mse") != "xent":
            continue
        claims.append(_late_growth_claim(sub, row, group, confidence))
    return claims


def early_record(sub: xr.Dataset) -> int | None:
    """The index of t_e in the records (None when the loss does not fall far enough)."""
    if "model" not in sub["loss_train"].dims:
        return None
    curve = sub["loss_train"].sel(model="net")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = curve.median([d for d in curve.dims if d != "step"]).values
    fell = np.flatnonzero(median[:-1] <= EARLY_LOSS_FRACTION * median[0])
    return int(fell[0]) if fell.size and fell[0] > 0 else None


def growth_runs(sub: xr.Dataset, early: int):
    """(log n, log RMSE_e, log G) per run, flattened [runs] (NaN where not positive)."""
    rmse = sub["rmse_test"]
    at_early, at_end = rmse.isel(step=early), rmse.isel(step=-1)
    log_e = np.log(at_early.where(at_early > 0))
    log_g = np.log((at_end / at_early).where((at_end > 0) & (at_early > 0)))
    log_n, log_e, log_g = xr.broadcast(np.log(sub["width"].astype(float)), log_e, log_g)
    dims = log_e.dims
    return tuple(a.transpose(*dims).values.ravel() for a in (log_n, log_e, log_g))


def _late_growth_claim(sub: xr.Dataset, row: ClaimRow, group: dict, confidence: float) -> Claim:
    level = f"{100 * confidence:g}%"
    criterion = (
        f"the {level} Fieller CI of β = b_G/b_e is above 0, with RMSE_e ∝ n^b_e and the late "
        f"growth G = RMSE_T/RMSE_e ∝ n^b_G fitted against width over the runs (RMSE of f "
        f"against f^lin on the test set; t_e the first record where the network's median "
        f"training loss is ≤ {EARLY_LOSS_FRACTION:g}·L_0): G grows with the early deviation "
        f"across widths; inconsistent when the CI lies below {LATE_GROWTH_MARGIN:g}"
    )
    early = early_record(sub)
    if early is None:
        reason = (
            f"the network's training loss does not fall to {EARLY_LOSS_FRACTION:g}·L_0 before "
            "the last record: train longer or record more steps"
        )
        return Claim(row.figure, row.wording, "no early time", INCONCLUSIVE, criterion, group,
                     reason)  # fmt: skip
    log_n, log_e, log_g = growth_runs(sub, early)
    ok = np.isfinite(log_n) & np.isfinite(log_e) & np.isfinite(log_g)
    beta, low, high, b_e = (
        float(v)
        for v in slope_ratio_intervals(log_n[ok], log_e[ok], log_g[ok], confidence=confidence)
    )
    verdict = str(sign_verdict(low, high, direction=+1, margin=LATE_GROWTH_MARGIN))
    needs = ""
    if verdict == INCONCLUSIVE and not (math.isfinite(low) and math.isfinite(high)):
        needs = (
            f"RMSE_e does not change significantly with width (b_e = {format_number(b_e)}): the "
            "widths do not vary the early deviation; add seeds or widths further apart"
        )
    elif verdict == INCONCLUSIVE:
        needs = sign_needs(
            low, high, direction=+1, margin=LATE_GROWTH_MARGIN, what="seeds or widths"
        )
    steps = sub["step"].values
    growth = float(np.exp(np.median(log_g[ok]))) if ok.any() else math.nan
    measured = (
        f"β = {format_number(beta)} ({level} CI [{format_number(low)}, {format_number(high)}], "
        f"{int(ok.sum())} runs); b_e = {format_number(b_e)}, b_G = {format_number(beta * b_e)}; "
        f"t_e = step {int(steps[early])}, T = step {int(steps[-1])}; median growth "
        f"RMSE_T/RMSE_e ×{format_number(growth, 3)}"
    )
    return Claim(row.figure, row.wording, measured, verdict, criterion, group, needs, "",
                 beta, low, high, int(ok.sum()))  # fmt: skip
