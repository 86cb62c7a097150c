"""The claims on the outputs: Fig. 3 and Fig. 4 / S2–S4 (the network against its
linearization) and Fig. 2 / S1 (an ensemble against the NTK-GP and the NNGP).

Every verdict is an interval or fraction test (`ntkpipe.analysis.verdicts`):

- tracking: the interval of the relative RMSE at the widest width, from the power law fitted
  against width (≥ 3 widths: every run informs it) or else the t-interval of the mean over the
  seeds there, against `TRACKING_TOLERANCE` (consistent below, inconsistent above,
  inconclusive across; one seed at one width gives no interval);
- Θ̂ closer than Θ: the t-interval over runs of the mean of log(RMSE_Θ̂ / RMSE_Θ) (runs are
  independent; the log ratio of two RMSEs of the same run is paired, and its scale does not
  depend on the width) below 0; inconsistent when it excludes `CLOSER_MARGIN`;
- Fig. 2: fractions of the points (t > 0, α) where the ensemble agrees with a prediction
  within its standard error plus a finite-width margin (`ntkpipe.analysis.ensembles`),
  consistent at ≥ 90%, inconsistent below 50% (`FRACTION_THRESHOLDS`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.aggregate import format_number
from ntkpipe.analysis.claims_base import Claim, ClaimRow, at_width, widest
from ntkpipe.analysis.ensembles import FINITE_WIDTH_MARGIN, SEPARATION_ERRORS
from ntkpipe.analysis.fits import mean_intervals, slope_intervals, value_intervals
from ntkpipe.analysis.verdicts import (
    FRACTION_THRESHOLDS,
    INCONCLUSIVE,
    fraction_verdict,
    interval_needs,
    range_verdict,
    sign_needs,
    sign_verdict,
)

#: f^lin tracks f when RMSE(f_T, f^lin_T) / RMS(f_T − f_0) on the test set is below this, per loss
#: (cross-entropy logits keep growing late in training, so its bound is looser; Fig. S4).
TRACKING_TOLERANCE = {"mse": 0.1, "xent": 0.2}
#: Fig. 3: inconsistent when the CI of mean log(RMSE_Θ̂ / RMSE_Θ) lies above −this (Θ̂ not
#: closer by at least ~10%).
CLOSER_MARGIN = 0.1

_TRACKING_FIELDS = (
    "model.architecture",
    "training.optimizer",
    "training.loss",
    "training.batch_size",
)


def tracking_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. 3 (row label ``plain``: fc, gd, mse) or Fig. 4 / S2–S4 (label ``beyond``: every
    other setting): f follows f^lin, per group of the axes other than width, at the widest."""
    relative = analysis.relative_rmse_final(ds, "test").to_dataset(name="relative")
    relative.attrs = ds.attrs
    claims = []
    for group, sub in analysis.groups(relative, exclude=("width",)):
        settings = {k: analysis.training_setting(ds, group, k) for k in _TRACKING_FIELDS}
        plain, how = _tracking_setting(settings)
        if plain != (row.label == "plain"):
            continue
        at_widest, width = widest(sub, "relative")
        value, low, high, n, how_measured = _relative_at_widest(sub, at_widest, width, confidence)
        if not math.isfinite(value):
            continue
        loss = settings["training.loss"] or "mse"
        tol = row.margin.get(loss, row.margin["mse"])
        verdict = str(range_verdict(low, high, (-math.inf, tol)))
        needs = interval_needs(low, high, (0.0, tol), "seeds")
        claims.append(
            Claim(
                row.figure,
                row.wording,
                f"{how}: RMSE(f_T, f^lin_T)/RMS(f_T − f_0) on the test set = "
                f"{format_number(value, 3)} ({100 * confidence:g}% CI "
                f"[{format_number(low, 3)}, {format_number(high, 3)}]; {how_measured})",
                verdict,
                f"the {100 * confidence:g}% CI of the relative RMSE at the widest width (of the "
                f"power law fitted against width with ≥ 3 widths, else of the mean over seeds) "
                f"is below {tol:g} ({loss} loss); inconsistent when it lies above",
                at_width(group, width),
                needs if verdict == INCONCLUSIVE else "",
                row.label,
                value,
                low,
                high,
                n,
            )
        )
    return claims


def _relative_at_widest(sub, at_widest, width, confidence):
    """The relative RMSE at the widest width and its interval: from the power law fitted
    against width when ≥ 3 widths have data (every width's seeds inform the value at the
    widest), else the t-interval of the mean over the seeds at the widest width."""
    rel = sub["relative"].where(sub["relative"] > 0)
    if width is not None and int(np.isfinite(rel).any("seed").sum()) >= 3:
        x, y = xr.broadcast(rel["width"].astype(float), rel)
        log_x, log_y = np.log(x.values).ravel(), np.log(y.values).ravel()
        value, low, high = (
            float(np.exp(v))
            for v in value_intervals(log_x, log_y, math.log(width), confidence=confidence)
        )
        n = int(np.isfinite(log_y).sum())
        return value, low, high, n, f"power law against width fitted on {n} runs, at n = {width}"
    values = np.ravel(at_widest["relative"].values)
    mean, half, n = (float(v) for v in mean_intervals(values, confidence=confidence))
    where = f" at n = {width}" if width is not None else ""
    return mean, mean - half, mean + half, int(n), f"mean over {int(n)} seeds{where}"


def has_setting(ds: xr.Dataset, plain: bool) -> bool:
    """Whether some group of the sweep (width aside) trains in Fig. 3's setting (fc, full-batch
    gd, mse: `plain`) or in another one (not `plain`)."""
    for group, _ in analysis.groups(ds[["status"]] if "status" in ds else ds, exclude=("width",)):
        settings = {k: analysis.training_setting(ds, group, k) for k in _TRACKING_FIELDS}
        if _tracking_setting(settings)[0] == plain:
            return True
    return False


def _tracking_setting(settings: dict) -> tuple[bool, str]:
    """Whether the setting is Fig. 3's (fc, full-batch gd, mse), and the setting in words."""
    arch = settings["model.architecture"] or "fc"
    optimizer = settings["training.optimizer"] or "gd"
    loss = settings["training.loss"] or "mse"
    batch = settings["training.batch_size"]
    how = f"{arch}, {optimizer}{f' (batch {batch})' if batch else ''}, {loss} loss"
    return arch == "fc" and optimizer == "gd" and loss == "mse", how


def empirical_closer_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. 3: f^lin with Θ̂_0 closer to f than f^lin with Θ."""
    both = analysis.empirical_vs_analytic(ds, "test")
    ok = np.isfinite(both["rmse"]) & np.isfinite(both["rmse_analytic"])
    ok = ok & (both["rmse"] > 0) & (both["rmse_analytic"] > 0)
    n_runs = int(ok.sum())
    if not n_runs:
        return []
    closer = int(((both["rmse"] < both["rmse_analytic"]) & ok).sum())
    log_ratio = np.log(both["rmse"] / both["rmse_analytic"]).where(ok).values.ravel()
    mean, half, _ = (float(v) for v in mean_intervals(log_ratio, confidence=confidence))
    low, high = mean - half, mean + half
    margin = row.margin
    verdict = str(sign_verdict(low, high, direction=-1, margin=margin))
    needs = sign_needs(low, high, direction=-1, margin=margin, what="seeds")
    return [
        Claim(
            row.figure,
            row.wording,
            f"Θ̂_0 closer in {closer} of {n_runs} runs; geometric-mean RMSE ratio (Θ̂_0 / Θ) on "
            f"the test set at the end {format_number(math.exp(mean), 3)} "
            f"({100 * confidence:g}% CI [{format_number(math.exp(low), 3)}, "
            f"{format_number(math.exp(high), 3)}])",
            verdict,
            f"the {100 * confidence:g}% CI over runs of the mean log(RMSE with Θ̂_0 / RMSE with "
            f"Θ) is below 0; inconsistent when it lies above −{margin:g}",
            reason=needs if verdict == INCONCLUSIVE else "",
            estimate=mean,
            ci_low=low,
            ci_high=high,
            n_points=n_runs,
        )
    ]


def ensemble_claims(ds: xr.Dataset) -> list[Claim]:
    """Fig. 2 / S1 at the widest width: band, spread, and NTK-GP rather than NNGP."""
    agreement = analysis.ensemble_agreement(ds)
    points = int((ds["step"] > 0).sum()) * int(ds.sizes.get("alpha", 0))  # (t > 0, α) judged
    claims = []
    for group, sub in analysis.groups(agreement, exclude=("width",)):
        sub = sub.squeeze(drop=True)
        at, width = widest(sub, "band_fraction")
        if not math.isfinite(float(at["band_fraction"].values)):
            continue
        claims += _ensemble_claims_at(at, at_width(group, width), points)
    return claims


_MARGIN_TEXT = f"{FINITE_WIDTH_MARGIN:g} × max σ_t (finite-width margin)"
_FRACTIONS_TEXT = (
    f"consistent at ≥ {100 * FRACTION_THRESHOLDS[0]:g}% of the recorded (t > 0, α), "
    f"inconsistent below {100 * FRACTION_THRESHOLDS[1]:g}%"
)


def _ensemble_claims_at(at: xr.Dataset, where: dict, n_points: int = 0) -> list[Claim]:
    value = {name: float(at[name].values) for name in at.data_vars}
    members = int(value["members"])
    band, spread = value["band_fraction"], value["spread_fraction"]
    closer, separated = value["ntkgp_closer"], int(value["separated"])
    follows = str(fraction_verdict(closer)) if separated else INCONCLUSIVE
    return [
        _fraction_claim(
            "band",
            n_points,
            "the mean of the trained ensemble lies in the NTK-GP band μ_t ± 2σ_t "
            "(Eq. 14–15) along the interpolation line",
            f"inside μ_t ± 2σ_t/√M + margin for {100 * band:.0f}% of (t > 0, α); "
            f"M = {members} members",
            band,
            f"|mean_ens − μ_t| ≤ 2σ_t/√M (the standard error of the mean of M members) + "
            f"{_MARGIN_TEXT}; {_FRACTIONS_TEXT}",
            where,
        ),
        _fraction_claim(
            "spread",
            n_points,
            "the spread of the ensemble follows the NTK-GP standard deviation σ_t (Eq. 15)",
            f"σ_ensemble inside the 95% interval of a sample σ of M = {members} draws for "
            f"{100 * spread:.0f}% of (t > 0, α); median |σ_ensemble − σ_t| / max σ_t = "
            f"{format_number(value['std_error'], 3)}",
            spread,
            f"σ_ens within σ_t·√(χ²_{{M−1}}(2.5%, 97.5%)/(M − 1)) ± {_MARGIN_TEXT}; "
            f"{_FRACTIONS_TEXT}",
            where,
        ),
        Claim(
            "Fig. 2 / S1",
            "gradient descent follows the NTK-GP, not the NNGP (readout-only training, "
            "Eq. S22–S23, whose t → ∞ limit is the posterior of Eq. 13)",
            f"at the {separated} points (t > 0, α) where the two means differ, closer to the "
            f"NTK-GP at {_percent(closer)}; RMS z against the NTK-GP "
            f"{format_number(value['z_ntkgp'], 1)}, against the NNGP "
            f"{format_number(value['z_nngp'], 1)}; at the end RMS over α to the NNGP posterior "
            f"{format_number(value['distance_posterior'], 3)}",
            follows,
            f"over the points where |μ_NTK − μ_NNGP| > {SEPARATION_ERRORS:g} standard errors "
            f"max(σ)/√M + {_MARGIN_TEXT}: the ensemble mean closer to the NTK-GP; "
            f"{_FRACTIONS_TEXT.replace('(t > 0, α)', 'those points')}",
            where,
            _follows_needs(follows, closer, separated),
            "follows",
            closer,
            n_points=separated,
        ),
    ]


def _follows_needs(verdict: str, closer: float, separated: int) -> str:
    if verdict != INCONCLUSIVE:
        return ""
    if not separated:
        return (
            "the NTK-GP and NNGP means never separate by more than the standard errors: add "
            "members or record earlier steps"
        )
    return _fraction_needs(closer)


def _fraction_claim(label, n_points, statement, measured, fraction, criterion, where) -> Claim:
    verdict = str(fraction_verdict(fraction))
    needs = _fraction_needs(fraction) if verdict == INCONCLUSIVE else ""
    return Claim(
        "Fig. 2 / S1", statement, measured, verdict, criterion, where, needs, label, fraction,
        n_points=n_points,
    )  # fmt: skip


def _fraction_needs(fraction: float) -> str:
    good, bad = FRACTION_THRESHOLDS
    if not math.isfinite(fraction):
        return "no point to judge: record steps t > 0"
    return (
        f"{_percent(fraction)} lies between {100 * bad:g}% and {100 * good:g}%: add members "
        "(a narrower standard error) or widths (a smaller finite-width deviation)"
    )


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.0f}%" if math.isfinite(fraction) else "nan"


#: Fig. S4: inconsistent when the CI of the slope b of log(RMSE_T/RMSE_e) on log RMSE_e lies
#: below this (no growth of the late error with the early deviation of at least this size).
LATE_GROWTH_MARGIN = 0.1
#: Fig. S4's early time: the first record at which the network's median training loss has
#: fallen to this fraction of its initial value (the logits start their steady growth once the
#: examples are classified), if it comes before the last record.
EARLY_LOSS_FRACTION = 0.5


def late_growth_claims(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    """Fig. S4 (cross-entropy): the error between f and f^lin becomes much worse at late times
    where the two deviated early, before the logits' late-time steady growth.

    Over the runs of a group (every width and seed), the slope b of
    log(RMSE(f_T, f^lin_T) / RMSE(f_e, f^lin_e)) on log RMSE(f_e, f^lin_e), with t_e the early
    time (`EARLY_LOSS_FRACTION`) and T the last record: the late growth of the error is larger
    where the early deviation is (b > 0). Noise in RMSE_e biases b down (it sits on both sides),
    so the test is conservative.
    """
    names = ["rmse_test", "loss_train"] + (["status"] if "status" in ds else [])
    usable = analysis.usable_runs(ds[names])
    claims = []
    for group, sub in analysis.groups(usable, exclude=("width",)):
        if (analysis.training_setting(ds, group, "training.loss") or "mse") != "xent":
            continue
        claims.append(_late_growth_claim(sub, row, group, confidence))
    return claims


def _late_growth_claim(sub: xr.Dataset, row: ClaimRow, group: dict, confidence: float) -> Claim:
    criterion = (
        f"the {100 * confidence:g}% CI of the slope b of log(RMSE_T/RMSE_e) on log RMSE_e over "
        f"the runs (every width and seed; RMSE of f against f^lin on the test set, t_e the first "
        f"record where the network's median training loss is ≤ {EARLY_LOSS_FRACTION:g}·L_0) "
        f"is above 0; inconsistent when it lies below {LATE_GROWTH_MARGIN:g}"
    )
    curve = sub["loss_train"].sel(model="net") if "model" in sub["loss_train"].dims else None
    steps = sub["step"].values
    early = None
    if curve is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = curve.median([d for d in curve.dims if d != "step"]).values
        fell = np.flatnonzero(median[:-1] <= EARLY_LOSS_FRACTION * median[0])
        early = int(fell[0]) if fell.size and fell[0] > 0 else None
    if early is None:
        reason = (
            f"the network's training loss does not fall to {EARLY_LOSS_FRACTION:g}·L_0 before "
            "the last record: train longer or record more steps"
        )
        return Claim(row.figure, row.wording, "no early time", INCONCLUSIVE, criterion, group,
                     reason)  # fmt: skip
    rmse = sub["rmse_test"]
    at_early, at_end = rmse.isel(step=early), rmse.isel(step=-1)
    x = np.log(at_early.where(at_early > 0)).values.ravel()
    y = np.log((at_end / at_early).where((at_end > 0) & (at_early > 0))).values.ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    slope, low, high = (float(v) for v in slope_intervals(x[ok], y[ok], confidence=confidence))
    verdict = str(sign_verdict(low, high, direction=+1, margin=LATE_GROWTH_MARGIN))
    needs = ""
    if verdict == INCONCLUSIVE:
        needs = sign_needs(
            low, high, direction=+1, margin=LATE_GROWTH_MARGIN, what="seeds or widths"
        )
    growth = float(np.exp(np.median(y[ok]))) if ok.any() else math.nan
    measured = (
        f"b = {format_number(slope)} ({100 * confidence:g}% CI [{format_number(low)}, "
        f"{format_number(high)}], {int(ok.sum())} runs); t_e = step {int(steps[early])}, "
        f"T = step {int(steps[-1])}; median growth RMSE_T/RMSE_e ×{format_number(growth, 3)}"
    )
    return Claim(row.figure, row.wording, measured, verdict, criterion, group, needs, "",
                 slope, low, high, int(ok.sum()))  # fmt: skip
