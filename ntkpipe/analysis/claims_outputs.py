"""The claims on the outputs: Fig. 3 and Fig. 4 / S2–S3 (the network against its
linearization) and Fig. 2 / S1 (an ensemble against the NTK-GP and the NNGP); Fig. S4's late
growth is in `ntkpipe.analysis.claims_late_growth`.

Every verdict is an interval or fraction test (`ntkpipe.analysis.verdicts`):

- tracking: the interval of the relative RMSE at the widest width, from the power law fitted
  against width (≥ 3 widths: every run informs it) or else the t-interval of the mean over the
  seeds there, against `TRACKING_TOLERANCE` (consistent below, inconsistent above,
  inconclusive across; one seed at one width gives no interval);
- Θ̂ closer than Θ: the t-interval over runs of the mean of log(RMSE_Θ̂ / RMSE_Θ) (runs are
  independent; the log ratio of two RMSEs of the same run is paired, and its scale does not
  depend on the width) below 0; inconsistent when it excludes `CLOSER_MARGIN`;
- Fig. 2: the largest standardized deviation of the ensemble's mean (spread) from the NTK-GP
  over (t > 0, α), beyond a finite-width margin ∝ 1/n, against its null distribution under the
  NTK-GP's own covariance across t and α (`ntkpipe.analysis.gp_test`).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis import gp_test
from ntkpipe.analysis.aggregate import format_number
from ntkpipe.analysis.claims_base import Claim, ClaimRow, at_width, widest
from ntkpipe.analysis.fits import mean_intervals, value_intervals
from ntkpipe.analysis.verdicts import (
    INCONCLUSIVE,
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
    """Fig. 2 / S1 at the widest width: mean, spread, and NTK-GP rather than NNGP, each a
    max-statistic test over (t > 0, α) with the NTK-GP's own covariance
    (`ntkpipe.analysis.gp_test`)."""
    if "ntkgp_factor" not in ds:
        return _old_ensemble_store()
    agreement = analysis.ensemble_agreement(ds)
    points = int((ds["step"] > 0).sum()) * int(ds.sizes.get("alpha", 0))  # (t > 0, α) judged
    claims = []
    for group, sub in analysis.groups(agreement, exclude=("width",)):
        sub = sub.squeeze(drop=True)
        at, width = widest(sub, "t_mu") if "t_mu" in sub else (sub, None)
        if "t_mu" not in at or not math.isfinite(float(at["t_mu"].values)):
            continue
        claims += _ensemble_claims_at(at, at_width(group, width), points)
    return claims


_GP_TEST = (
    "the largest standardized deviation over (t > 0, α) beyond the finite-width margin "
    "(ε_n = 3(L + 1)/n times the GP's rate of change in log t: a relative kernel error ε_n "
    "as a time rescaling, gp_test.margins) against its "
    "{level:g}% critical value q from ensembles of M draws of the NTK-GP itself (its "
    "covariance across t and α)"
)


def _ensemble_claims_at(at: xr.Dataset, where: dict, n_points: int = 0) -> list[Claim]:
    value = {name: at[name].values.item() for name in at.data_vars}
    m = int(value["members"])
    test = _GP_TEST.format(level=100 * (1 - gp_test.LEVEL))
    eps = f"ε_n = {format_number(value['epsilon'], 2)}"
    band, spread, follows = (str(value[k]) for k in ("band", "spread", "follows"))
    joint = max(value["t_mu"], value["t_sigma"])
    return [
        Claim(
            "Fig. 2 / S1",
            "the mean of the trained ensemble lies in the NTK-GP band: it follows μ_t (Eq. 14) "
            "along the interpolation line",
            f"T_μ = {format_number(value['t_mu'], 2)} against q = "
            f"{format_number(value['q_mu'], 2)} (M = {m} members, {eps})",
            band,
            f"T_μ = max |mean_ens − μ_t − B mean_ens,0| − δ_μ in units of s_t/√M (the mean "
            f"less its regression on the members' outputs at t = 0, s_t ≈ 0.4 σ_t): {test}; "
            f"inconsistent above q; consistent below it when q/√M ≤ "
            f"{gp_test.BAND_RESOLUTION:g} (resolves one σ_t)",
            where,
            _needs(band, "members: the test resolves q·σ_t/√M, more than one σ_t"),
            "band",
            value["t_mu"],
            n_points=n_points,
        ),
        Claim(
            "Fig. 2 / S1",
            "the spread of the ensemble follows the NTK-GP standard deviation σ_t (Eq. 15)",
            f"T_σ = {format_number(value['t_sigma'], 2)} against q = "
            f"{format_number(value['q_sigma'], 2)}; median |σ_ensemble − σ_t| / s = "
            f"{format_number(value['std_error'], 3)} (M = {m})",
            spread,
            f"T_σ = max |σ_ens − σ_t| − δ_σ in units of σ_t/√(2(M − 1)): {test}; inconsistent "
            f"above q; consistent below it when q/√(2(M − 1)) ≤ {gp_test.SPREAD_RESOLUTION:g}",
            where,
            _needs(spread, "members: the test cannot resolve an error of σ_t by half"),
            "spread",
            value["t_sigma"],
            n_points=n_points,
        ),
        Claim(
            "Fig. 2 / S1",
            "gradient descent follows the NTK-GP, not the NNGP (readout-only training, "
            "Eq. S22–S23, whose t → ∞ limit is the posterior of Eq. 13)",
            f"max(T_μ, T_σ) = {format_number(joint, 2)} against q = "
            f"{format_number(value['q'], 2)}; the readout-only NNGP's own mean and σ give "
            f"{format_number(value['t_nngp'], 1)}; at the end RMS over α to the NNGP posterior "
            f"{format_number(value['distance_posterior'], 3)}",
            follows,
            f"max(T_μ, T_σ), {test}: inconsistent above q; consistent below it when the NNGP "
            f"would give ≥ q + {gp_test.NNGP_DETECTION:g} (the test tells the two apart)",
            where,
            _needs(
                follows, "members: with M members the test cannot tell the NTK-GP from the NNGP"
            ),
            "follows",
            joint,
            n_points=n_points,
        ),
    ]


def _needs(verdict: str, text: str) -> str:
    return f"add {text}" if verdict == INCONCLUSIVE else ""


def _old_ensemble_store() -> list[Claim]:
    return [
        Claim(
            "Fig. 2 / S1",
            "the trained ensemble follows the NTK-GP (Eq. 14–15)",
            "no test: the summary has no ntkgp_factor (the NTK-GP's covariance across t and α)",
            INCONCLUSIVE,
            "the NTK-GP test of `ntkpipe.analysis.gp_test`",
            {},
            "rerun the ensemble stage (its store predates the NTK-GP factor)",
            label,
        )
        for label in ("band", "spread", "follows")
    ]
