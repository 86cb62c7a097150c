"""The paper's claims as one declarative table: one `ClaimRow` per claim, read by one evaluator
(`ntkpipe.analysis.claims.paper_claims`).

A row says what is measured (``metric``, a summary variable), against what (``axis``), the
paper's value or band (``paper``) and the allowance around it (``margin``), the claim's
wording, the conditions under which the paper's statement applies (``requires``, see
`ntkpipe.analysis.claims_applicability`), and the statistical test that decides it (``test``:
(summary, row, confidence) → claims, one per scope, in `claims_width` / `claims_outputs`).

To add a claim:

1. write its test, ``def my_claims(ds, row, confidence) -> list[Claim]``, next to the tests of
   its kind (reading the paper's value and margin from ``row.paper`` / ``row.margin``, one
   `Claim` per scope with ``estimate``, ``ci_low``, ``ci_high``, ``n_points`` filled in; reuse
   `claims_base.exponent_claim` for an exponent, `verdicts.sign_verdict` for a direction);
2. add a row to `CLAIM_TABLE` below, in the order of the report (its key's section must be a
   key of `claims_base.EXPERIMENTS`);
3. add a test in tests/analysis/test_claims.py on data where it holds and where it fails.

The evaluator lists the row when its data are present, checks ``requires`` (a failed condition
gives "not applicable" with the reason), runs the test on the runs that meet the conditions
and writes the row's wording and key onto every claim the test returns.
"""

from __future__ import annotations

import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis import claims_finite_width as finite
from ntkpipe.analysis import claims_late_growth as late
from ntkpipe.analysis import claims_outputs as outputs
from ntkpipe.analysis import claims_regime as regime
from ntkpipe.analysis import claims_width as width
from ntkpipe.analysis.claims_applicability import CUSTOM_ARCHITECTURE
from ntkpipe.analysis.claims_base import Claim, ClaimRow, power

#: Conditions of the claims on trained networks in the lazy regime, with a fit against width.
TRAINED_WIDTH = ("widths", "seeds", "trained", "lazy")
#: The per-role weight-change rows also need the layers' roles (not a custom module's).
TRAINED_ROLES = (*TRAINED_WIDTH, "layer_roles")
#: Conditions of the claims on trained networks in the lazy regime, at the widest width.
TRAINED = ("seeds", "trained", "lazy")


def _custom(ds: xr.Dataset) -> bool:
    return analysis.training_setting(ds, {}, "model.architecture") == CUSTOM_ARCHITECTURE


def _width_data(name: str):
    """Present when the width is swept and `name` has data."""

    def present(ds: xr.Dataset) -> bool:
        return analysis.is_width_sweep(ds) and analysis.has_data(ds, name)

    return present


def _dataset_data(name: str):
    """Present when the width and the dataset size |D| (n_train, ≥ 2 values) are swept and
    `name` has data: without a |D| axis there is nothing to judge, whatever the seeds."""

    def present(ds: xr.Dataset) -> bool:
        swept = "n_train" in analysis.sweep_axes(ds) and ds.sizes["n_train"] >= 2
        return swept and _width_data(name)(ds)

    return present


def _analytic_width_data(name: str):
    """Present when the width is swept and `name` has data, or the model is custom (then the
    row is listed as not applicable: a custom model has no analytic kernel)."""

    def present(ds: xr.Dataset) -> bool:
        return analysis.is_width_sweep(ds) and (analysis.has_data(ds, name) or _custom(ds))

    return present


def _lr_sweep(name: str):
    """Present when lr_factor is swept (≥ 2 values) and `name` has data."""

    def present(ds: xr.Dataset) -> bool:
        axes = analysis.sweep_axes(ds)
        swept = regime.LR_AXIS in axes and ds.sizes[regime.LR_AXIS] >= 2
        return swept and analysis.has_data(ds, name) and "regime" in ds

    return present


def _tracking_present(plain: bool):
    """Present when the sweep has the outputs' change and RMSE, in Fig. 3's setting (`plain`:
    fc, full-batch gd, mse) or in another one."""

    def present(ds: xr.Dataset) -> bool:
        data = analysis.has_data(ds, "output_change_test") and analysis.has_data(ds, "rmse_test")
        return data and outputs.has_setting(ds, plain)

    return present


def _closer_present(ds: xr.Dataset) -> bool:
    return analysis.has_data(ds, "rmse_test") and (
        analysis.has_data(ds, "rmse_test_analytic") or _custom(ds)
    )


def _xent_present(ds: xr.Dataset) -> bool:
    losses = ds["loss"].values if "loss" in analysis.sweep_axes(ds) else []
    xent = "xent" in losses or analysis.training_setting(ds, {}, "training.loss") == "xent"
    return xent and analysis.is_width_sweep(ds) and analysis.has_data(ds, "rmse_test")


def _mc_present(ds: xr.Dataset) -> bool:
    return analysis.has_mc_samples(ds) or (_custom(ds) and "mc_partners" in ds)


def _ensemble_present(ds: xr.Dataset) -> bool:
    return analysis.has_data(ds, "ensemble_fx") and (
        analysis.has_data(ds, "ntkgp_mean") or _custom(ds)
    )


def _mc_test(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    return width.mc_claims(ds, confidence)


def _ensemble_test(ds: xr.Dataset, row: ClaimRow, confidence: float) -> list[Claim]:
    return outputs.ensemble_claims(ds)


# these tests decide every row of their kind at once (`Claim.label` picks the row's claim)
_mc_test.row_independent = True
_ensemble_test.row_independent = True


#: Where this pipeline's experiment departs from the paper's: (section, architecture, note).
DEPARTURES = (
    (
        "fig4",
        "wrn",
        "This Wide ResNet has no batch normalization; the paper's (Zagoruyko and Komodakis, "
        "Fig. 4) has. With batch normalization a network's output on an example depends on the "
        "other examples of its batch, so neither the kernel Θ̂(x, x′) nor the linearization "
        "f_lin(x) = f_0(x) + ∇_θ f_0(x)·ω is a function of x alone without a choice the paper "
        "does not state (statistics frozen at θ₀, or linearized in the batch too); the "
        "per-example kernels and training programs here assume the former network class. The "
        "Fig. 4 verdicts are about this WRN without batch normalization.",
    ),
)


def departures(ds: xr.Dataset) -> dict[str, list[str]]:
    """{section: notes} of the `DEPARTURES` that apply to this sweep's architectures."""
    axes = analysis.sweep_axes(ds)
    archs = set(ds["architecture"].values) if "architecture" in axes else set()
    archs.add(analysis.training_setting(ds, {}, "model.architecture"))
    found: dict[str, list[str]] = {}
    for section, arch, note in DEPARTURES:
        if arch in archs:
            found.setdefault(section, []).append(note)
    return found


_W = "‖W_T − W_0‖_F/‖W_0‖_F"

#: The paper's claims, in the report's order.
CLAIM_TABLE: tuple[ClaimRow, ...] = (
    *(
        ClaimRow(
            key=f"fig1.{role}_weights",
            figure="Fig. 1",
            wording=f"relative change of the {role} weights {_W} ~ n^{power(paper)}",
            metric="weight_change",
            axis="width",
            paper=paper,
            margin=margin,
            test=width.weight_exponent_claims,
            label=role,
            requires=TRAINED_ROLES,
            present=_width_data("weight_change"),
        )
        for role, (paper, margin) in width.WEIGHT_CHANGE_CLAIMS.items()
    ),
    ClaimRow(
        key="fig1.hidden_steeper",
        figure="Fig. 1",
        wording="hidden weights change faster with width than input and output weights",
        metric="weight_change",
        axis="width",
        paper="p_hidden − p_input < 0 and p_hidden − p_output < 0",
        margin=width.STEEPER_MARGIN,
        test=width.steeper_claims,
        requires=TRAINED_ROLES,
        present=_width_data("weight_change"),
    ),
    *(
        ClaimRow(
            key=f"fig1.{kernel}_change",
            figure="Fig. 1 / S6",
            wording=f"relative kernel change ‖{s}_T − {s}_0‖_F/‖{s}_0‖_F scales between "
            f"n^{power(width.KERNEL_CHANGE_BOUNDS[0])} and "
            f"n^{power(width.KERNEL_CHANGE_BOUNDS[1])}",
            metric=f"{kernel}_change",
            axis="width",
            paper=width.KERNEL_CHANGE_BOUNDS,
            margin=width.KERNEL_CHANGE_TOLERANCE,
            # the claims also say which of n^−½ and n^−1 the interval supports (the paper: the
            # kernel change "is upper bounded by O(1/√n) but is closer to O(1/n)")
            test=finite.with_scaling_law(
                width.kernel_change_claims, finite.kernel_change_values(f"{kernel}_change")
            ),
            requires=TRAINED_WIDTH,
            present=_width_data(f"{kernel}_change"),
        )
        for kernel, s in (("ntk", "Θ̂"), ("nngp", "K̂"))
    ),
    ClaimRow(
        key="fig2.band",
        figure="Fig. 2 / S1",
        wording="the mean of the trained ensemble lies in the NTK-GP band: it follows μ_t "
        "(Eq. 14) along the interpolation line",
        metric="ensemble_fx,ntkgp_mean,ntkgp_factor",
        axis="(t, α)",
        paper="mean_ens = μ_t (max-statistic test with the NTK-GP's covariance across t, α)",
        margin="δ_μ = ε_n(|∂_τ μ| + ½|∂²_τ μ|), τ = log t, ε_n = 3(L + 1)/n (gp_test.margins)",
        test=_ensemble_test,
        label="band",
        requires=("analytic",),
        present=_ensemble_present,
    ),
    ClaimRow(
        key="fig2.spread",
        figure="Fig. 2 / S1",
        wording="the spread of the ensemble follows the NTK-GP standard deviation σ_t (Eq. 15)",
        metric="ensemble_fx,ntkgp_factor",
        axis="(t, α)",
        paper="σ_ens = σ_t (max-statistic test with the NTK-GP's covariance across t, α)",
        margin="δ_σ from ε_n(σ² + |∂_τ σ²| + ½|∂²_τ σ²| + (∂_τ μ)²) (gp_test.margins)",
        test=_ensemble_test,
        label="spread",
        requires=("analytic",),
        present=_ensemble_present,
    ),
    ClaimRow(
        key="fig2.follows_ntkgp",
        figure="Fig. 2 / S1",
        wording="gradient descent follows the NTK-GP, not the NNGP (readout-only training, "
        "Eq. S22–S23, whose t → ∞ limit is the posterior of Eq. 13)",
        metric="ensemble_fx,ntkgp_factor,nngp_mean,nngp_std",
        axis="(t, α)",
        paper="the NTK-GP not rejected (mean and σ) where the test would reject the NNGP",
        margin="δ_μ, δ_σ of gp_test",
        test=_ensemble_test,
        label="follows",
        requires=("analytic",),
        present=_ensemble_present,
    ),
    ClaimRow(
        key="fig3.tracking",
        figure="Fig. 3",
        wording="the network f follows its linearization f^lin over training "
        "(fc, full-batch gradient descent, MSE)",
        metric="rmse_test,output_change_test",
        axis="width",
        paper=0.0,
        margin=outputs.TRACKING_TOLERANCE,
        test=outputs.tracking_claims,
        label="plain",
        requires=TRAINED,
        present=_tracking_present(plain=True),
    ),
    ClaimRow(
        key="fig3.empirical_closer",
        figure="Fig. 3",
        wording="at finite width f^lin with the empirical Θ̂_0 is closer to the network than "
        "with the analytic Θ",
        metric="rmse_test_analytic,rmse_test",
        axis="runs",
        paper="log(RMSE_Θ̂ / RMSE_Θ) < 0",
        margin=outputs.CLOSER_MARGIN,
        test=outputs.empirical_closer_claims,
        requires=("analytic", *TRAINED),
        present=_closer_present,
    ),
    ClaimRow(
        key="fig4.tracking",
        figure="Fig. 4 / S2–S4",
        wording="the network f follows its linearization f^lin over training beyond full-batch "
        "gradient descent on MSE (momentum, minibatch SGD, cross-entropy, conv nets)",
        metric="rmse_test,output_change_test",
        axis="width",
        paper=0.0,
        margin=outputs.TRACKING_TOLERANCE,
        test=outputs.tracking_claims,
        label="beyond",
        requires=TRAINED,
        present=_tracking_present(plain=False),
    ),
    ClaimRow(
        key="fig4.s4_late_error_growth",
        figure="Fig. S4",
        wording="with cross-entropy the error between f and f^lin becomes much worse at late "
        "times where the two deviated early, before the logits' late-time steady growth",
        metric="rmse_test,loss_train",
        axis="width (RMSE at an early time t_e and its late growth)",
        paper="β > 0: the late growth RMSE_T/RMSE_e rises with RMSE_e across widths",
        margin=late.LATE_GROWTH_MARGIN,
        test=late.late_growth_claims,
        requires=TRAINED_WIDTH,
        present=_xent_present,
    ),
    ClaimRow(
        key="figS5.rmse_falls_with_width",
        figure="Fig. S5",
        wording="RMSE(f_T, f^lin_T) on the test set falls with the width n",
        metric="rmse_test",
        axis="width",
        paper="exponent < 0",
        margin=width.RMSE_TREND_MARGIN,
        test=finite.with_scaling_law(width.rmse_width_claims, finite.rmse_values),
        requires=TRAINED_WIDTH,
        present=_width_data("rmse_test"),
    ),
    ClaimRow(
        key="figS5.rmse_grows_with_data",
        figure="Fig. S5",
        wording="RMSE(f_T, f^lin_T) on the test set grows with the dataset size |D|",
        metric="rmse_test",
        axis="n_train",
        paper="exponent > 0",
        margin=width.RMSE_TREND_MARGIN,
        test=width.rmse_dataset_claims,
        requires=TRAINED,
        present=_dataset_data("rmse_test"),
    ),
    *(
        ClaimRow(
            key=f"figS9.{kernel}_analytic_error",
            figure="Fig. S9–S10",
            wording=f"the empirical kernel at initialization converges: ‖{s}_0 − {a}‖_F/‖{a}‖_F "
            f"~ n^{power(width.ANALYTIC_ERROR_CLAIM[0])}",
            metric=f"{kernel}_analytic_error",
            axis="width",
            paper=width.ANALYTIC_ERROR_CLAIM[0],
            margin=width.ANALYTIC_ERROR_CLAIM[1],
            test=width.analytic_error_claims,
            requires=("analytic", "widths", "seeds"),
            present=_analytic_width_data(f"{kernel}_analytic_error"),
        )
        for kernel, s, a in (("ntk", "Θ̂", "Θ"), ("nngp", "K̂", "K"))
    ),
    *(
        ClaimRow(
            key=f"figS9.{kernel}_monte_carlo",
            figure="Fig. S9–S10",
            wording=f"the mean of M empirical kernels converges to the analytic one: "
            f"‖mean_M {s}_0 − {a}‖_F/‖{a}‖_F ~ M^{power(width.MC_ERROR_CLAIM[0])} "
            "(Monte Carlo, M ≪ n)",
            metric=f"{kernel}_mc_sq,{kernel}_mc_cross",
            axis="M = 1 … S (the seeds of all runs of a point)",
            paper=width.MC_ERROR_CLAIM[0],
            margin=width.MC_ERROR_CLAIM[1],
            test=_mc_test,
            label=f"{kernel}_mc_error",
            requires=("analytic",),
            present=_mc_present,
        )
        for kernel, s, a in (("ntk", "Θ̂", "Θ"), ("nngp", "K̂", "K"))
    ),
    ClaimRow(
        key="beyond.tracking_below_critical",
        figure="Beyond the paper",
        wording="below η_crit (lr_factor < 1) the network tracks f^lin ever better with width: "
        "RMSE(f_T, f^lin_T) falls with n (Theorem 2.1)",
        metric="rmse_test",
        axis="width",
        paper="exponent < 0",
        margin=0.0,
        test=regime.tracking_below_critical_claims,
        requires=("widths", "seeds", "trained", "lazy"),
        present=_lr_sweep("rmse_test"),
    ),
    ClaimRow(
        key="beyond.largest_converging",
        figure="Beyond the paper",
        wording="the largest learning rate at which the network still converges, as "
        "η·λ_max(Θ̂₀)/(n·k) (η·λ₀ of Lewkowycz et al. 2020), lies in "
        f"[{regime.CONVERGENCE_BAND[0]:g}, {regime.CONVERGENCE_BAND[1]:g}]: above the linear "
        "stability edge 2 (catapult phase), at most ≈ 12 (their deep ReLU nets; 4 for their "
        "two-layer linear model)",
        metric="sharpness,regime",
        axis="lr_factor",
        paper=regime.CONVERGENCE_BAND,
        margin=regime.EDGE_MARGIN,
        test=regime.largest_converging_claims,
        present=_lr_sweep("sharpness"),
    ),
    ClaimRow(
        key="beyond.catapult_flatter",
        figure="Beyond the paper",
        wording="catapult runs end flatter than their linear stability edge: sharpness "
        "λ_max(Θ̂_T) < 2·n·k/η",
        metric="sharpness,regime",
        axis="runs",
        paper="η·λ_T/(n·k) < 2",
        margin=regime.EDGE_MARGIN,
        test=regime.catapult_flatter_claims,
        present=_lr_sweep("sharpness"),
    ),
    *finite.FINITE_WIDTH_ROWS,
)
