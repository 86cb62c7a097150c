"""The claims against width and sample counts: Fig. 1 / S6, Fig. S5 and Fig. S9–S10.

Every verdict is an interval test (`ntkpipe.analysis.verdicts`):

- an exponent claim is consistent when the 95% CI of the fitted exponent lies inside the
  paper's value (or range) widened by a finite-width margin (the paper's exponents are those
  of the n → ∞ limit; at the widths of a sweep the fitted slope deviates from them by
  corrections of relative size O(n^−½), which the margin absorbs), inconsistent when it lies
  outside, inconclusive otherwise or with fewer than 3 widths;
- a comparison ("hidden steeper than input", "RMSE falls with n", "RMSE grows with |D|") is
  decided on the interval of the difference or slope, see `sign_verdict`: consistent on the
  claimed side of 0, inconsistent when it excludes an effect of the stated margin.
"""

from __future__ import annotations

import json
from dataclasses import replace

import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.aggregate import ExponentFit, format_number
from ntkpipe.analysis.claims_base import (
    ANALYTIC_SYMBOLS,
    Claim,
    ClaimRow,
    exponent_claim,
    fit_numbers,
    fitted,
    power,
    range_text,
)
from ntkpipe.analysis.verdicts import INCONCLUSIVE, sign_needs, sign_verdict

#: The paper's weight-change exponents (Fig. 1) and the finite-width margin per role.
WEIGHT_CHANGE_CLAIMS = {"input": (-0.5, 0.2), "hidden": (-1.0, 0.3), "output": (-0.5, 0.2)}
#: Hidden steeper: the difference p_hidden − p_other must be < 0; inconsistent when its CI
#: excludes a difference of this size (a fifth of the paper's −1 − (−½)).
STEEPER_MARGIN = 0.1
#: The paper's bounds on the kernel-change exponent (Fig. 1: between n^−1 and n^−½) and the
#: finite-width margin on each side.
KERNEL_CHANGE_BOUNDS = (-1.0, -0.5)
KERNEL_CHANGE_TOLERANCE = 0.2
#: The rate of the empirical kernels' error against width (Fig. S9–S10) and its margin.
ANALYTIC_ERROR_CLAIM = (-0.5, 0.2)
#: The Monte Carlo rate of the error of the mean of M empirical kernels (Fig. S9–S10).
MC_ERROR_CLAIM = (-0.5, 0.2)
#: Fig. S5: the smallest exponent of RMSE against n (falls) or |D| (grows) that counts as an
#: effect: inconsistent when the CI excludes a slope of this size in the claimed direction.
RMSE_TREND_MARGIN = 0.1


def weight_exponent_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. 1: the exponent of the weight change of the layer role `row.label` against width."""
    paper, tol = row.paper, row.margin
    allowed = (paper - tol, paper + tol)
    fits = fitted(analysis.weight_change_exponents, ds, confidence)
    criterion = (
        f"the {100 * confidence:g}% CI of the fitted exponent lies within ±{tol:g} of "
        f"{power(paper)} (finite-width margin), i.e. inside {range_text(allowed)}"
    )
    return _exponent_claims(row, [f for f in fits if f.label == row.label], allowed, criterion)


def _exponent_claims(row: ClaimRow, fits, allowed, criterion: str) -> list[Claim]:
    """One `exponent_claim` per fit, with the row's figure and wording."""
    return [exponent_claim(row.figure, row.wording, f, allowed, criterion) for f in fits]


def steeper_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. 1: hidden weights steeper than input and output (paired per run), per group."""
    by_group: dict[str, list[ExponentFit]] = {}
    for f in analysis.weight_change_ratio_exponents(ds, confidence=confidence):
        by_group.setdefault(json.dumps(f.group, sort_keys=True, default=str), []).append(f)
    return [_steeper_claim(row, ratios, confidence) for ratios in by_group.values()]


def _steeper_claim(row: ClaimRow, ratios: list[ExponentFit], confidence: float) -> Claim:
    margin = row.margin
    criterion = (
        f"the {100 * confidence:g}% CI of p_hidden − p_other (the exponent of the per-run ratio "
        f"of the weight changes) is below 0 for input and output; inconsistent when one lies "
        f"above −{margin:g}"
    )
    group = ratios[0].group
    missing = [f for f in ratios if f.fit is None]
    if missing:
        needs = f"needs ≥ 3 widths with data ({missing[0].reason})"
        return Claim(row.figure, row.wording, "no fit", INCONCLUSIVE, criterion, group, needs)
    measured = "; ".join(f"p_{f.label.replace('/', ' − p_')}: {f.fit.describe()}" for f in ratios)
    verdicts = [
        str(sign_verdict(f.fit.ci_low, f.fit.ci_high, direction=-1, margin=margin)) for f in ratios
    ]
    verdict = _all_of(verdicts)
    needs = ""
    if verdict == INCONCLUSIVE:
        f = ratios[verdicts.index(INCONCLUSIVE)]
        needs = f"{f.label}: " + sign_needs(
            f.fit.ci_low, f.fit.ci_high, direction=-1, margin=margin, what="seeds"
        )
    # the estimate is the least steep difference (the one that decides the claim)
    decisive = max(ratios, key=lambda f: f.fit.ci_high)
    numbers = fit_numbers(decisive.fit)
    return Claim(row.figure, row.wording, measured, verdict, criterion, group, needs, "", *numbers)


def _all_of(verdicts: list[str]) -> str:
    """Consistent when every part is, inconsistent when any part is, else inconclusive."""
    if "inconsistent" in verdicts:
        return "inconsistent"
    return "consistent" if set(verdicts) == {"consistent"} else INCONCLUSIVE


def kernel_change_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. 1 / S6: the exponent of the relative change of the kernel `row.metric`."""
    (low, high), tol = row.paper, row.margin
    allowed = (low - tol, high + tol)
    fits = fitted(analysis.kernel_change_exponents, ds, confidence)
    criterion = (
        f"the {100 * confidence:g}% CI of the fitted exponent lies in {range_text(allowed)} "
        f"(the paper's range widened by a finite-width margin ±{tol:g})"
    )
    return _exponent_claims(
        row, [f for f in fits if f.quantity == row.metrics[0]], allowed, criterion
    )


def analytic_error_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. S9–S10: the exponent of ‖Θ̂_0 − Θ‖_F/‖Θ‖_F (or of K̂) against width."""
    paper, tol = row.paper, row.margin
    fits = fitted(analysis.analytic_error_exponents, ds, confidence)
    criterion = (
        f"the {100 * confidence:g}% CI of the fitted exponent lies within ±{tol:g} of "
        f"{power(paper)} (finite-width margin)"
    )
    own = [f for f in fits if f.quantity == row.metrics[0]]
    return _exponent_claims(row, own, (paper - tol, paper + tol), criterion)


def mc_claims(ds: xr.Dataset, confidence: float) -> list[Claim]:
    """Fig. S9–S10: the error of the mean of M kernels against M, at the widest width."""
    paper, tol = MC_ERROR_CLAIM
    by_point = {}
    for f in analysis.mc_exponents(ds, confidence=confidence):
        rest = {k: v for k, v in f.group.items() if k != "width"}
        key = (f.quantity, json.dumps(rest, sort_keys=True, default=str))
        by_point.setdefault(key, []).append(f)
    claims = []
    for fits in by_point.values():
        fits = sorted(fits, key=lambda f: f.group.get("width", 0))
        widest = fits[-1]
        s = widest.label
        a = ANALYTIC_SYMBOLS[widest.quantity.split("_")[0]]
        claim = exponent_claim(
            "Fig. S9–S10",
            f"the mean of M empirical kernels converges to the analytic one: "
            f"‖mean_M {s}_0 − {a}‖_F/‖{a}‖_F ~ M^{power(paper)} (Monte Carlo, M ≪ n)",
            widest,
            (paper - tol, paper + tol),
            f"the 95% CI of the exponent against M at the widest width lies within ±{tol:g} of "
            f"{power(paper)} (margin for the M ≪ n plateau)",
            what="sample counts M",
        )
        others = [
            f"n = {f.group['width']}: {format_number(f.fit.exponent)}" for f in fits[:-1] if f.fit
        ]
        if others:
            claim = replace(claim, measured=f"{claim.measured}; other widths {', '.join(others)}")
        claims.append(claim)
    return claims


def rmse_width_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. S5: RMSE(f_T, f^lin_T) falls with the width, per dataset size."""
    criterion = (
        f"the {100 * confidence:g}% CI of the exponent of RMSE against width is below 0; "
        f"inconsistent when it lies above −{row.margin:g}"
    )
    return [
        _sign_claim(row, f.fit, f.reason, -1, criterion, f.group, "3 widths")
        for f in analysis.rmse_exponents(ds, "test", confidence=confidence)
    ]


def rmse_dataset_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. S5: RMSE(f_T, f^lin_T) grows with the dataset size |D| (one intercept per width)."""
    criterion = (
        f"the {100 * confidence:g}% CI of the exponent q of RMSE ∝ |D|^q (one intercept per "
        f"width, seeds as replicates) is above 0; inconsistent when it lies below {row.margin:g}"
    )
    claims = []
    for trend in analysis.rmse_dataset_trends(ds, "test", confidence=confidence):
        claim = _sign_claim(
            row, trend.fit, trend.reason, +1, criterion, trend.group, "2 dataset sizes"
        )
        ratios = "; ".join(f"|D| {a} → {b}: ×{format_number(r, 3)}" for a, b, r in trend.pairs)
        claims.append(replace(claim, measured=f"{claim.measured}; {ratios}"))
    return claims


def _sign_claim(row: ClaimRow, fit, reason, direction, criterion, group, enough) -> Claim:
    if fit is None:
        needs = f"needs ≥ {enough} with data ({reason})"
        return Claim(row.figure, row.wording, "no fit", INCONCLUSIVE, criterion, group, needs)
    margin = row.margin
    verdict = str(sign_verdict(fit.ci_low, fit.ci_high, direction=direction, margin=margin))
    needs = ""
    if verdict == INCONCLUSIVE:
        needs = sign_needs(
            fit.ci_low, fit.ci_high, direction=direction, margin=margin, what="seeds"
        )
    measured = f"exponent {fit.describe()}"
    return Claim(
        row.figure, row.wording, measured, verdict, criterion, group, needs, "", *fit_numbers(fit)
    )
