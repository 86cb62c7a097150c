"""Tests of analysis.claims: the paper's claims and their verdicts on synthetic summaries."""

import json

import pytest

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.claims import experiment_of, paper_claims
from tests.summary_fixture import FLAGGED, add_ensemble, add_linearization, add_mc, make_summary


@pytest.fixture(scope="module")
def summary():
    return make_summary(statuses=FLAGGED)


# ---------------------------------------------------------------- claims against width


def _verdicts(claims, text):
    return [c.verdict for c in claims if text in c.statement]


def test_claims_hold_on_data_that_follow_the_paper(summary):
    claims = paper_claims(summary)
    assert {c.figure for c in claims} == {"Fig. 1", "Fig. 1 / S6", "Fig. S5", "Fig. S9–S10"}
    assert all(c.verdict == "consistent" for c in claims), [
        c for c in claims if c.verdict != "consistent"
    ]
    assert len(_verdicts(claims, "hidden weights change faster")) == 2
    assert all("±0.3 of −1" in c.criterion for c in claims if "hidden weights ‖" in c.statement)


@pytest.mark.parametrize(
    ("exponents", "text"),
    [
        ({"input": -0.9}, "input weights"),
        ({"hidden": -0.6}, "hidden weights ‖"),
        ({"ntk_change": -0.1}, "‖Θ̂_T − Θ̂_0‖"),
        ({"nngp_change": -1.5}, "‖K̂_T − K̂_0‖"),
        ({"ntk_analytic_error": -1.0}, "‖Θ̂_0 − Θ‖"),
        ({"rmse_width": 0.3}, "falls with the width"),
        ({"rmse_n_train": -0.5}, "grows with the dataset size"),
    ],
)
def test_claim_verdicts_flip_on_data_that_violate_them(exponents, text):
    claims = paper_claims(make_summary(exponents=exponents))
    verdicts = _verdicts(claims, text)
    assert verdicts and set(verdicts) == {"inconsistent"}
    others = [c.verdict for c in claims if text not in c.statement and "faster" not in c.statement]
    assert set(others) == {"consistent"}


def test_hidden_not_steeper_flips_the_ordering_claim():
    claims = paper_claims(make_summary(exponents={"hidden": -0.45}))
    assert set(_verdicts(claims, "hidden weights change faster")) == {"inconsistent"}
    assert set(_verdicts(claims, "input weights")) == {"consistent"}


def test_claims_not_applicable_or_absent_without_enough_widths(summary):
    # two widths cannot test an exponent: not applicable (the experiment does not test the
    # claim), not inconclusive (it tests it but cannot decide)
    few = paper_claims(make_summary(widths=(64, 128)))
    exponent_claims = [c for c in few if "grows with the dataset size" not in c.statement]
    assert exponent_claims and {c.verdict for c in exponent_claims} == {"not applicable"}
    assert all(
        c.reason.startswith("an exponent against width needs ≥ 3 widths; the sweep has 2")
        for c in exponent_claims
    )
    (trend,) = [c for c in few if "grows with the dataset size" in c.statement]
    assert trend.verdict == "consistent"  # two widths are enough against |D|
    assert paper_claims(summary.isel(width=[0])) == []  # width not swept
    no_kernels = summary.drop_vars(["ntk_change", "nngp_change"])
    assert not [c for c in paper_claims(no_kernels) if c.figure == "Fig. 1 / S6"]


# ---------------------------------------------------------------- further experiments


def _claims(ds, figure):
    return [c for c in paper_claims(ds) if c.figure == figure]


def test_experiment_of_maps_figures_to_experiments():
    assert experiment_of("Fig. 1") == experiment_of("Fig. 1 / S6") == "fig1"
    assert experiment_of("Fig. S9–S10") == "figS9"
    assert experiment_of("Fig. 4 / S2–S4") == "fig4"
    with pytest.raises(ValueError, match="Fig. 7"):
        experiment_of("Fig. 7")


@pytest.mark.parametrize(
    ("plateau", "exponent", "verdict"), [(0.0, -0.5, "consistent"), (3.0, -0.08, "inconsistent")]
)
def test_mc_claim_fits_the_error_against_the_number_of_samples(plateau, exponent, verdict):
    # 6 seeds in runs of 3: the runs are pooled (M = 1 … 6)
    ds = add_mc(make_summary(seeds=6, n_trains=(32,)), seeds_per_chunk=3, plateau=plateau)
    (fit,) = [
        f
        for f in analysis.mc_exponents(ds)
        if f.quantity == "ntk_mc_error" and f.group == {"width": 1024}
    ]
    assert fit.fit.exponent == pytest.approx(exponent, abs=0.05)
    assert fit.fit.n_points == 6
    claims = [c for c in _claims(ds, "Fig. S9–S10") if "mean of M" in c.statement]
    assert len(claims) == 2 and {c.verdict for c in claims} == {verdict}
    assert all(c.group == {"width": 1024} for c in claims)
    assert "other widths n = 64" in claims[0].measured


def test_no_mc_claim_with_fewer_than_three_sample_counts():
    ds = add_mc(make_summary(seeds=2))
    assert not analysis.has_mc_samples(ds)
    assert not [c for c in paper_claims(ds) if "mean of M" in c.statement]


@pytest.mark.parametrize(("relative", "verdict"), [(0.03, "consistent"), (0.4, "inconsistent")])
def test_tracking_claim_compares_the_relative_rmse_at_the_widest_width(relative, verdict):
    ds = add_linearization(make_summary(statuses=FLAGGED), relative=relative)
    claims = [c for c in _claims(ds, "Fig. 3") if "follows its linearization" in c.statement]
    assert [c.group for c in claims] == [
        {"n_train": 32, "width": 1024},
        {"n_train": 128, "width": 1024},
    ]
    assert {c.verdict for c in claims} == {verdict}
    assert f"{relative:.3f}" in claims[0].measured


def test_tracking_claim_of_other_optimizers_belongs_to_fig4():
    ds = add_linearization(make_summary(n_trains=(32,)))
    config = json.loads(ds.attrs["config"])
    config["training"].update(optimizer="sgd", batch_size=8, loss="xent")
    ds.attrs["config"] = json.dumps(config)
    (claim,) = [c for c in paper_claims(ds) if "follows its linearization" in c.statement]
    assert claim.figure == "Fig. 4 / S2–S4" and claim.experiment == "fig4"
    assert claim.measured.startswith("fc, sgd (batch 8), xent loss: ")
    assert "below 0.2 (xent loss)" in claim.criterion
    assert analysis.training_setting(ds, {"loss": "mse"}, "training.loss") == "mse"


@pytest.mark.parametrize(("ratio", "verdict"), [(5.0, "consistent"), (0.5, "inconsistent")])
def test_empirical_kernel_claim_counts_runs_where_it_is_closer(ratio, verdict):
    ds = add_linearization(make_summary(statuses=FLAGGED), ratio_analytic=ratio)
    (claim,) = [c for c in _claims(ds, "Fig. 3") if "empirical Θ̂_0 is closer" in c.statement]
    assert claim.verdict == verdict
    # 20 runs, one missing and one diverged; one above η_crit, outside the lazy regime, left out
    closer = 17 if ratio > 1 else 0
    assert f"closer in {closer} of 17 runs" in claim.measured
    assert "1 of 18 runs left out, outside the lazy regime (1 η above η_crit" in claim.reason


@pytest.mark.parametrize(
    ("changes", "text", "verdict"),
    [
        ({}, "NTK-GP band", "consistent"),
        ({"offset": 1.0}, "NTK-GP band", "inconsistent"),
        ({"std_scale": 2.0}, "spread of the ensemble", "inconsistent"),
        ({"std_scale": 1.1}, "spread of the ensemble", "consistent"),
    ],
)
def test_ensemble_claims_compare_the_ensemble_with_the_ntk_gp(changes, text, verdict):
    ds = add_ensemble(make_summary(widths=(64, 256), n_trains=(32,)), **changes)
    claims = [c for c in _claims(ds, "Fig. 2 / S1") if text in c.statement]
    assert len(claims) == 1 and claims[0].verdict == verdict
    assert claims[0].group == {"width": 256}


def test_ensemble_following_the_nngp_is_inconsistent():
    ds = add_ensemble(make_summary(widths=(64, 256), n_trains=(32,)))
    nngp_like = ds.assign(ntkgp_mean=ds["nngp_mean"] * 2 - ds["ntkgp_mean"])
    agreement = analysis.ensemble_agreement(ds)
    assert float(agreement["distance_ntkgp"].sel(width=256, n_train=32)) < 1e-12
    (claim,) = [c for c in _claims(nngp_like, "Fig. 2 / S1") if "not the NNGP" in c.statement]
    assert claim.verdict == "inconsistent"


# ---------------------------------------------------------------- three verdicts


def test_equal_exponents_do_not_make_hidden_steeper():
    ds = make_summary(exponents={"hidden": -0.5}, seeds=8, noise=0.1)
    (claim,) = [c for c in paper_claims(ds) if "faster" in c.statement and c.group["n_train"] == 32]
    assert claim.verdict == "inconsistent"  # the CI of the difference excludes −0.1
    assert "p_hidden − p_input" in claim.measured


def test_a_wide_interval_is_inconclusive_and_says_what_would_decide_it():
    ds = make_summary(widths=(64, 128, 256), seeds=2, noise=0.5, n_trains=(32,), rng_seed=3)
    claims = [c for c in paper_claims(ds) if "input weights" in c.statement]
    assert [c.verdict for c in claims] == ["inconclusive"]
    assert "add seeds or widths" in claims[0].needs


def test_biased_or_narrow_ensembles_are_inconsistent():
    base = make_summary(widths=(64, 256), n_trains=(32,))
    biased = add_ensemble(base, members=100, offset=0.45)  # 1.5 σ_t at σ_t = 0.3
    (band,) = [c for c in _claims(biased, "Fig. 2 / S1") if "NTK-GP band" in c.statement]
    assert band.verdict == "inconsistent" and "s_t/√M" in band.criterion
    narrow = add_ensemble(base, members=64, std_scale=0.5)
    (spread,) = [c for c in _claims(narrow, "Fig. 2 / S1") if "spread" in c.statement]
    assert spread.verdict == "inconsistent"


def test_ensemble_on_the_nngp_is_inconsistent_and_halfway_is_not_consistent():
    ds = add_ensemble(make_summary(widths=(64, 256), n_trains=(32,)), members=64)
    gap = ds["nngp_mean"] - ds["ntkgp_mean"]
    for shift, verdicts in ((1.0, {"inconsistent"}), (0.5, {"inconsistent", "inconclusive"})):
        moved = ds.assign(ensemble_fx=ds["ensemble_fx"] + shift * gap)
        (claim,) = [c for c in _claims(moved, "Fig. 2 / S1") if "not the NNGP" in c.statement]
        assert claim.verdict in verdicts, claim
