"""The tests of the claims beyond the paper (rows of `ntkpipe.analysis.claims_table`, section
``beyond``): μP against NTK and depth against width (Hanin & Nica); and which scaling law,
n^−½ or n^−1, the exponents of the paper's kernel-change (Fig. 1) and RMSE (Fig. S5) claims
support (:func:`with_scaling_law`, which wraps those rows' tests). The section's rows,
`FINITE_WIDTH_ROWS`, are the last part of the claim table.

Each test is (summary, row, confidence) → claims, one per group of the other sweep axes; the
numbers are computed by `ntkpipe.analysis.finite_width`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis import finite_width
from ntkpipe.analysis.claims_base import Claim, ClaimRow, ClaimTest, range_text
from ntkpipe.analysis.fits import FitError
from ntkpipe.analysis.summary import format_number
from ntkpipe.analysis.verdicts import (
    CONSISTENT,
    INCONCLUSIVE,
    INCONSISTENT,
    NOT_APPLICABLE,
    interval_needs,
    range_verdict,
)

#: μP against NTK: the relative linearization error extrapolated to infinite width "vanishes"
#: below this value (1% of the change of the outputs) and "does not vanish" above it.
MUP_MARGIN = 0.01
#: Depths "collapse" onto one curve when their Hanin–Nica constants agree within this factor
#: (shallowest against deepest depth; e^{5β} is the leading order in 1/n and in 1/depth).
COLLAPSE_FACTOR = 1.5
#: The fitted Hanin–Nica constant is consistent with the paper's 5 within this margin (their
#: e^{5β} is asymptotic in depth and width; biases and finite depth shift it).
HANIN_NICA_MARGIN = 2.0


def mup_contrast_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """‖f − f_lin‖/‖f − f₀‖ extrapolated to infinite width (y = y_∞ + b·n^{−½},
    `finite_width.width_limit`): below `row.margin` under NTK (it vanishes), above it under μP
    (it does not), per group of the axes other than width and parameterization."""
    fits = finite_width.relative_error_limits(ds, confidence=confidence)
    out = []
    for rest, ntk in fits.get("ntk", []):
        mup = next((fit for group, fit in fits.get("mup", []) if group == rest), None)
        out.append(_mup_claim(row, rest, ntk, mup, confidence))
    return out


def _mup_claim(row, group, ntk, mup, confidence) -> Claim:
    margin = row.margin
    criterion = (
        f"the {100 * confidence:g}% CI of the infinite-width limit y_∞ of the relative "
        f"linearization error (y = y_∞ + b·n^−½ fitted against width) lies below {margin:g} "
        f"under NTK and above {margin:g} under μP"
    )
    fits = (("NTK", ntk), ("μP", mup))
    if not all(isinstance(fit, finite_width.WidthLimit) for _, fit in fits):
        why = "; ".join(f"{name}: {fit or 'no runs'}" for name, fit in fits)
        return Claim(
            row.figure, row.wording, "no fit", INCONCLUSIVE, criterion, group,
            reason=f"needs ≥ 3 widths with data for both parameterizations ({why})",
        )  # fmt: skip
    ntk_part = _side(ntk.ci_low, ntk.ci_high, margin, below=True)
    mup_part = _side(mup.ci_low, mup.ci_high, margin, below=False)
    parts = (ntk_part, mup_part)
    verdict = (
        INCONSISTENT
        if INCONSISTENT in parts
        else CONSISTENT
        if parts == (CONSISTENT, CONSISTENT)
        else INCONCLUSIVE
    )
    reason = "the limits' intervals straddle the margin: add seeds or widths" * (
        verdict == INCONCLUSIVE
    )
    measured = f"NTK {ntk.describe()}; μP {mup.describe()}"
    return Claim(
        row.figure, row.wording, measured, verdict, criterion, group, reason=reason,
        estimate=mup.limit, ci_low=mup.ci_low, ci_high=mup.ci_high,
        n_points=ntk.n_points + mup.n_points,
    )  # fmt: skip


def _side(low: float, high: float, margin: float, *, below: bool) -> str:
    """Whether [low, high] lies on the claimed side of `margin` (below it, or above it)."""
    if below:
        low, high, margin = -high, -low, -margin
    return CONSISTENT if low > margin else INCONSISTENT if high < margin else INCONCLUSIVE


def hanin_nica_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """The fitted constant c of 1 + R = e^{cβ} (label ``constant``) against the paper's 5, and
    the collapse of the depths at equal β (label ``collapse``): log(c_deep/c_shallow) within
    ±log COLLAPSE_FACTOR."""
    activation = analysis.training_setting(ds, {}, "model.activation")
    if activation not in (None, "relu"):
        reason = (
            f"Hanin & Nica's e^{{5β}} is for ReLU networks; this sweep's model.activation is "
            f"{activation}"
        )
        return [
            Claim(row.figure, row.wording, "", NOT_APPLICABLE, "", {}, reason=reason, label=lab)
            for lab in ("constant", "collapse")
        ]
    out = []
    for fit in finite_width.fit_hanin_nica(ds, confidence=confidence):
        out.append(_constant_claim(row, fit, confidence))
        out.append(_collapse_claim(row, fit, confidence))
    return out


def _constant_claim(row, fit: finite_width.HaninNicaFit, confidence) -> Claim:
    allowed = (finite_width.HANIN_NICA_CONSTANT - HANIN_NICA_MARGIN,
               finite_width.HANIN_NICA_CONSTANT + HANIN_NICA_MARGIN)  # fmt: skip
    verdict = str(range_verdict(fit.ci_low, fit.ci_high, allowed))
    per_depth = ", ".join(
        f"L={d}: {format_number(c)} [{format_number(lo)}, {format_number(hi)}]"
        for d, (c, lo, hi) in fit.per_depth.items()
    )
    measured = (
        f"c = {format_number(fit.constant)} ({100 * confidence:g}% bootstrap CI "
        f"[{format_number(fit.ci_low)}, {format_number(fit.ci_high)}], {fit.n_points} (depth, "
        f"width) points, ≥ {fit.n_seeds} seeds each); per depth {per_depth}"
    )
    reason = ""
    if verdict == INCONCLUSIVE:
        reason = interval_needs(fit.ci_low, fit.ci_high, allowed, "seeds")
    return Claim(
        row.figure, row.wording, measured, verdict,
        f"the bootstrap CI of c in log(1 + R) = c·β lies in {range_text(allowed)} (the paper's "
        f"5 ± {HANIN_NICA_MARGIN:g}: finite depth, width and biases)",
        fit.group, reason=reason, label="constant", estimate=fit.constant, ci_low=fit.ci_low,
        ci_high=fit.ci_high, n_points=fit.n_points,
    )  # fmt: skip


def _collapse_claim(row, fit: finite_width.HaninNicaFit, confidence) -> Claim:
    bound = math.log(COLLAPSE_FACTOR)
    criterion = (
        f"the bootstrap CI of log(c_deepest/c_shallowest) lies within ±log {COLLAPSE_FACTOR:g} "
        "(the depths' constants agree: one curve in β)"
    )
    if len(fit.per_depth) < 2 or not np.isfinite(fit.collapse):
        return Claim(
            row.figure, row.wording, "one depth", INCONCLUSIVE, criterion, fit.group,
            reason="needs ≥ 2 depths with data (sweep model.depth)", label="collapse",
        )  # fmt: skip
    verdict = str(range_verdict(fit.collapse_low, fit.collapse_high, (-bound, bound)))
    depths = sorted(fit.per_depth)
    measured = (
        f"c(L={depths[-1]})/c(L={depths[0]}) = {format_number(math.exp(fit.collapse))} "
        f"(CI [{format_number(math.exp(fit.collapse_low))}, "
        f"{format_number(math.exp(fit.collapse_high))}])"
    )
    reason = ""
    if verdict == INCONCLUSIVE:
        reason = interval_needs(fit.collapse_low, fit.collapse_high, (-bound, bound), "seeds")
    return Claim(
        row.figure, row.wording, measured, verdict, criterion, fit.group, reason=reason,
        label="collapse", estimate=fit.collapse, ci_low=fit.collapse_low,
        ci_high=fit.collapse_high, n_points=fit.n_points,
    )  # fmt: skip


def with_scaling_law(test: ClaimTest, values: Callable[[xr.Dataset], xr.DataArray]) -> ClaimTest:
    """A row's exponent test whose claims also say which of n^−½ and n^−1 their exponent's
    interval supports ("supports n^−1 only", "both", "neither", appended to `measured`) and,
    when it supports both, the seeds per width or the widths that would separate them (appended
    to `reason`; :func:`ntkpipe.analysis.finite_width.which_scaling_law`). The verdict is the
    row's own.

    Args:
        test: the row's test (claims with a ``group`` per scope).
        values: the fitted quantity at the end of every usable run (axes…, seed) of a summary.
    """

    def test_with_law(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
        claims = test(ds, row, confidence)
        if not claims:
            return claims
        data = values(ds)
        return [_with_law(claim, data, confidence) for claim in claims]

    test_with_law.row_independent = getattr(test, "row_independent", False)
    return test_with_law


def kernel_change_values(name: str) -> Callable[[xr.Dataset], xr.DataArray]:
    """The relative kernel change `name` at the end of every usable run."""

    def values(ds: xr.Dataset) -> xr.DataArray:
        keep = [name] + (["status"] if "status" in ds else [])
        return analysis.final(analysis.usable_runs(ds[keep]))[name]

    return values


def rmse_values(ds: xr.Dataset) -> xr.DataArray:
    """RMSE(f_T, f^lin_T) on the test set at the end of every usable run."""
    return analysis.rmse_final(ds, "test")


def _with_law(claim: Claim, data: xr.DataArray, confidence: float) -> Claim:
    scope = {k: v for k, v in claim.group.items() if k in data.dims and k != "width"}
    try:
        check = finite_width.which_scaling_law(data.sel(scope), confidence=confidence)
    except (FitError, KeyError, ValueError):
        return claim
    reason = "; ".join(part for part in (claim.reason, check.needs) if part)
    return replace(claim, measured=f"{claim.measured}; {check.describe()}", reason=reason)


def _mup_present(ds: xr.Dataset) -> bool:
    """A width sweep of both parameterizations, ntk and mup, with RMSE data."""
    axes = analysis.sweep_axes(ds)
    return (
        analysis.is_width_sweep(ds)
        and "parameterization" in axes
        and {"ntk", "mup"} <= {str(v) for v in ds["parameterization"].values}
        and analysis.has_data(ds, "rmse_test")
    )


def _hanin_nica_test(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    return hanin_nica_claims(ds, row, confidence)


_hanin_nica_test.row_independent = True  # decides both Hanin–Nica rows at once

#: The rows of `ntkpipe.analysis.claims_table.CLAIM_TABLE` beyond the paper (section
#: ``beyond``): μP against NTK, Hanin–Nica's constant and the β collapse.
FINITE_WIDTH_ROWS: tuple[ClaimRow, ...] = (
    ClaimRow(
        key="beyond.mup_contrast",
        figure="Beyond the paper",
        wording="‖f_T − f^lin_T‖/‖f_T − f_0‖ vanishes as the width grows under the NTK "
        "parameterization and not under μP (Yang & Hu 2021: features move by O(1))",
        metric="rmse_test,output_change_test",
        axis="width",
        paper="y_∞(NTK) = 0 < y_∞(μP)",
        margin=MUP_MARGIN,
        test=mup_contrast_claims,
        requires=("widths", "seeds", "trained"),
        present=_mup_present,
    ),
    *(
        ClaimRow(
            key=f"beyond.{label}",
            figure="Beyond the paper",
            wording=wording,
            metric="ntk_diag_init",
            axis="beta",
            paper=paper,
            margin=margin,
            test=_hanin_nica_test,
            label=label.removeprefix("hanin_nica_").removeprefix("beta_"),
            requires=("fluctuation_seeds",),
            present=finite_width.has_depth_width,
        )
        for label, wording, paper, margin in (
            (
                "hanin_nica_constant",
                "the NTK's fluctuation at init grows with β = Σ_l 1/n_l as "
                "Var Θ̂₀(x, x)/(E Θ̂₀(x, x))² ≃ e^{5β} − 1 (ReLU; Hanin & Nica 2020)",
                finite_width.HANIN_NICA_CONSTANT,
                HANIN_NICA_MARGIN,
            ),
            (
                "beta_collapse",
                "depths at equal β = Σ_l 1/n_l have the same NTK fluctuation (one curve)",
                "c_deepest / c_shallowest = 1",
                COLLAPSE_FACTOR,
            ),
        )
    ),
)
