"""The paper's claims tested on a sweep, with verdicts computed from the data.

Works on the sweep summary described in
`ntkpipe.analysis.aggregate`, from whose aggregates and fitted power
laws every verdict is computed. Pure: nothing here touches a file.

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

The criteria of the verdicts are listed in `paper_claims` and stated in each `Claim.criterion`;
their thresholds are the constants below (`WEIGHT_CHANGE_CLAIMS`, `KERNEL_CHANGE_BOUNDS`,
`TRACKING_TOLERANCE`, `BAND_FRACTION`, ...).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.aggregate import DatasetTrend, ExponentFit, format_number

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

ANALYTIC_SYMBOLS = {"ntk": "Θ", "nngp": "K"}


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
    claims = _width_claims(ds, confidence) if analysis.is_width_sweep(ds) else []
    if analysis.has_mc_samples(ds):
        claims += _mc_claims(ds, confidence)
    if analysis.has_data(ds, "output_change_test") and analysis.has_data(ds, "rmse_test"):
        claims += _tracking_claims(ds)
    if analysis.has_data(ds, "rmse_test_analytic") and analysis.has_data(ds, "rmse_test"):
        claims += _empirical_closer_claims(ds)
    if analysis.has_data(ds, "ensemble_fx") and analysis.has_data(ds, "ntkgp_mean"):
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


# ---------------------------------------------------------------- private helpers


def _width_claims(ds: xr.Dataset, confidence: float) -> list[Claim]:
    """The claims against width (Fig. 1 / S6, S5, S9–S10)."""
    claims: list[Claim] = []
    if analysis.has_data(ds, "weight_change"):
        claims += _weight_change_claims(analysis.weight_change_exponents(ds, confidence=confidence))
    if analysis.has_data(ds, "ntk_change") or analysis.has_data(ds, "nngp_change"):
        claims += [
            _kernel_change_claim(f)
            for f in analysis.kernel_change_exponents(ds, confidence=confidence)
        ]
    if analysis.has_data(ds, "rmse_test"):
        claims += _rmse_claims(ds, confidence)
    if analysis.has_data(ds, "ntk_analytic_error") or analysis.has_data(ds, "nngp_analytic_error"):
        fits = analysis.analytic_error_exponents(ds, confidence=confidence)
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
    return ordered.isel(width=index), analysis.as_scalar(ordered["width"].values[index])


def _at(group: dict, width) -> dict:
    return {**group, "width": width} if width is not None else group


def _mc_claims(ds: xr.Dataset, confidence: float) -> list[Claim]:
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
        claim = _exponent_claim(
            "Fig. S9–S10",
            f"the mean of M empirical kernels converges to the analytic one: "
            f"‖mean_M {s}_0 − {a}‖_F/‖{a}‖_F ~ M^{_power(paper)} (Monte Carlo, M ≪ n)",
            widest,
            (paper - tol, paper + tol),
            f"the exponent against M at the widest width lies within ±{tol:g} of {_power(paper)}",
        )
        others = [
            f"n = {f.group['width']}: {format_number(f.fit.exponent)}" for f in fits[:-1] if f.fit
        ]
        if others:
            claim = replace(claim, measured=f"{claim.measured}; other widths {', '.join(others)}")
        claims.append(claim)
    return claims


def _tracking_claims(ds: xr.Dataset) -> list[Claim]:
    relative = analysis.relative_rmse_final(ds, "test").to_dataset(name="relative")
    relative.attrs = ds.attrs
    claims = []
    for group, sub in analysis.groups(relative, exclude=("width",)):
        at_widest, width = _widest(sub, "relative")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(at_widest["relative"].mean().values)
        if not math.isfinite(value):
            continue
        settings = {k: analysis.training_setting(ds, group, k) for k in _TRACKING_FIELDS}
        loss = settings["training.loss"] or "mse"
        tol = TRACKING_TOLERANCE.get(loss, TRACKING_TOLERANCE["mse"])
        figure, how = _tracking_figure(settings)
        claims.append(
            Claim(
                figure,
                f"the network f follows its linearization f^lin over training ({how})",
                f"RMSE(f_T, f^lin_T)/RMS(f_T − f_0) on the test set = {format_number(value, 3)} "
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
    both = analysis.empirical_vs_analytic(ds, "test")
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
            f"test set at the end {format_number(median, 3)}",
            _verdict(fraction >= EMPIRICAL_CLOSER_FRACTION),
            f"RMSE(f_T, f^lin_T) with Θ̂_0 below that with Θ in ≥ "
            f"{100 * EMPIRICAL_CLOSER_FRACTION:g}% of the runs",
        )
    ]


def _ensemble_claims(ds: xr.Dataset) -> list[Claim]:
    agreement = analysis.ensemble_agreement(ds)
    members = int(ds.sizes.get("member", 0))
    claims = []
    for group, sub in analysis.groups(agreement, exclude=("width",)):
        sub = sub.squeeze(drop=True)
        at, width = _widest(sub, "band_fraction")
        fraction = float(at["band_fraction"].values)
        if not math.isfinite(fraction):
            continue
        where = _at(group, width)
        others = ""
        if width is not None:
            rest = [
                f"n = {analysis.as_scalar(w)}: {100 * float(v):.0f}%"
                for w, v in zip(sub["width"].values, sub["band_fraction"].values, strict=True)
                if analysis.as_scalar(w) != width and math.isfinite(float(v))
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
                f"median |σ_ensemble − σ_t| / max_α σ_t = {format_number(std_error, 3)}",
                _verdict(std_error <= STD_TOLERANCE),
                f"median over (t > 0, α) at most {STD_TOLERANCE:g}",
                where,
            ),
            Claim(
                "Fig. 2 / S1",
                "gradient descent follows the NTK-GP, not the NNGP (readout-only training, "
                "Eq. S22–S23, whose t → ∞ limit is the posterior of Eq. 13)",
                f"RMS over α at the end of mean_ensemble − NTK-GP "
                f"{format_number(near['ntkgp'], 3)}, − NNGP {format_number(near['nngp'], 3)}, "
                f"− NNGP posterior {format_number(near['posterior'], 3)}",
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
        f"the fitted exponent lies in [{format_number(low - tol)}, {format_number(high + tol)}] "
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
    for f in analysis.rmse_exponents(ds, "test", confidence=confidence):
        if f.fit is None:
            claims.append(Claim("Fig. S5", statement, f.reason, "not tested", criterion, f.group))
            continue
        measured = f"exponent {f.fit.describe()}"
        claims.append(
            Claim("Fig. S5", statement, measured, _verdict(f.fit.ci_high < 0), criterion, f.group)
        )
    for trend in analysis.rmse_dataset_trends(ds, "test"):
        claims.append(_trend_claim(trend))
    return claims


def _trend_claim(trend: DatasetTrend) -> Claim:
    measured = "; ".join(f"|D| {a} → {b}: ×{format_number(r, 3)}" for a, b, r in trend.pairs)
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
    return {-0.5: "−½", -1.0: "−1", 0.5: "½"}.get(value, format_number(value))
