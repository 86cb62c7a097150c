"""The declarative claim table, its applicability conditions, claims.tsv and `ntkpipe claims`."""

import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from ntkpipe import cli, cli_claims
from ntkpipe.analysis import claims_tsv, report, verdicts
from ntkpipe.analysis.claims import paper_claims
from ntkpipe.analysis.claims_applicability import CHECKS, TRAINED_LOSS_RATIO
from ntkpipe.analysis.claims_base import EXPERIMENTS
from ntkpipe.analysis.claims_table import CLAIM_TABLE
from ntkpipe.sweep.facts import not_applicable
from tests.summary_fixture import FLAGGED, add_linearization, add_mc, make_summary

#: The rows about trained networks (their conditions include "trained").
TRAINED_ROWS = {row.key for row in CLAIM_TABLE if "trained" in row.requires}


def _by_key(claims):
    found = {}
    for c in claims:
        found.setdefault(c.key, []).append(c)
    return found


def test_every_row_is_well_formed():
    keys = [row.key for row in CLAIM_TABLE]
    assert len(keys) == len(set(keys))
    for row in CLAIM_TABLE:
        assert row.section in EXPERIMENTS, row.key
        assert set(row.requires) <= set(CHECKS), row.key
        assert row.wording and row.metric and row.axis, row.key


def test_a_two_step_sweep_makes_every_trained_network_claim_not_applicable():
    # the fixture's loss is 0.5·exp(−step/50) + 0.01: after 2 steps L_T/L_0 = 0.96 (little
    # noise: the steps needed are extrapolated from the decay over the last two records)
    ds = add_mc(add_linearization(make_summary(steps=(0, 1, 2), seeds=4, noise=1e-3)))
    claims = _by_key(paper_claims(ds))
    # fc, gd, mse: Fig. 3's setting, not Fig. 4's (other optimizers) nor S4's (cross-entropy)
    # (the rows beyond the paper need a sweep over training.lr_factor or the parameterization)
    beyond = {key for key in TRAINED_ROWS if key.startswith("beyond.")}
    expected = TRAINED_ROWS - {"fig4.tracking", "fig4.s4_late_error_growth"} - beyond
    assert expected <= set(claims)  # every such row is listed, none is silently dropped
    for key in expected:
        for c in claims[key]:
            assert c.verdict == "not applicable", c
            assert c.reason.startswith("training stopped at loss ratio 0.96 "), c.reason
    # the steps it would need: L_T/L_0 = 0.1 at 50·ln(0.5/(0.1·0.51 − 0.01)) ≈ 125 steps
    needed = int(re.search(r"needs ≈ (\d+) steps", claims["fig1.input_weights"][0].reason)[1])
    assert 100 <= needed <= 140
    # claims on the kernels at initialization do not need training
    for key in ("figS9.ntk_analytic_error", "figS9.ntk_monte_carlo"):
        assert {c.verdict for c in claims[key]} == {"consistent"}, claims[key]


def test_a_long_enough_sweep_is_applicable_and_the_criterion_states_the_conditions():
    claims = _by_key(paper_claims(add_linearization(make_summary(seeds=3))))
    assert {c.verdict for key in TRAINED_ROWS & set(claims) for c in claims[key]} == {"consistent"}
    (closer,) = claims["fig3.empirical_closer"]
    assert f"L_T/L_0 ≤ {TRAINED_LOSS_RATIO['mse']:g} (mse)" in closer.criterion
    assert "η ≤ η_crit" in closer.criterion


def test_runs_outside_the_lazy_regime_are_left_out_with_the_reason():
    ds = add_linearization(make_summary(n_trains=(32, 128), seeds=3))
    ds["regime"] = xr_full(ds, "lazy")
    ds["regime"].loc[{"n_train": 32, "width": 1024}] = "catapult"
    ds["regime"].loc[{"n_train": 128}] = "divergent"
    claims = _by_key(paper_claims(ds))
    for c in claims["fig1.input_weights"]:
        if c.group["n_train"] == 32:
            assert c.verdict == "consistent"
            assert "3 of 15 runs left out, outside the lazy regime (3 regime not lazy" in c.reason
        else:
            assert c.verdict == "not applicable"
            assert c.reason.startswith(
                "every run is outside the lazy regime the claim is about (15 regime not lazy"
            )
    # the same summary without the variable: every run is used
    plain = _by_key(paper_claims(ds.drop_vars("regime")))
    assert all(c.verdict == "consistent" and not c.reason for c in plain["fig1.input_weights"])


def xr_full(ds, value):
    return ds["status"].copy(data=np.full(ds["status"].shape, value, dtype="<U9"))


def test_eta_above_eta_crit_everywhere_is_not_applicable():
    ds = make_summary(n_trains=(32,))
    ds["lr_critical"] = ds["lr_critical"] * 0 + 0.5  # η = 1 > η_crit = 0.5 in every run
    claims = _by_key(paper_claims(ds))
    (c,) = claims["fig1.hidden_weights"]
    assert c.verdict == "not applicable"
    assert "η above η_crit" in c.reason and "η = 1.000, η_crit ≈ 0.500" in c.reason


def test_a_sweep_without_eta_crit_says_the_lazy_condition_was_not_checked():
    ds = make_summary(n_trains=(32,))
    ds["lr_critical"] = ds["lr_critical"] * np.nan  # kernels.initial: false
    (c,) = [c for c in paper_claims(ds) if c.key == "fig1.hidden_weights"]
    assert c.verdict == "consistent" and c.reason.startswith("η_crit not computed")


def test_one_seed_per_point_is_not_applicable_not_inconclusive():
    claims = paper_claims(add_linearization(make_summary(widths=(64, 128), seeds=1)))
    tracking = [c for c in claims if c.key == "fig3.tracking"]
    assert tracking and {c.verdict for c in tracking} == {"not applicable"}
    assert tracking[0].reason.startswith("1 seed per sweep point: no replicate")
    assert "inconclusive" not in {c.verdict for c in claims}
    assert "fig4.tracking" not in {c.key for c in claims}  # fc, gd, mse: Fig. 3's setting only


def test_the_dataset_size_claim_is_listed_only_where_the_sweep_varies_the_dataset_size():
    """Fig. S5's "grows with |D|" needs n_train swept; a width-only sweep with one seed per
    point (config/small/fig_s2_cnn.yaml) listed it "not applicable: 1 seed per point", as if
    a second seed would let it be judged."""
    for seeds in (1, 2):
        claims = paper_claims(make_summary(widths=(64, 128, 256), n_trains=None, seeds=seeds))
        assert "figS5.rmse_falls_with_width" in {c.key for c in claims}
        assert "figS5.rmse_grows_with_data" not in {c.key for c in claims}, seeds
    claims = _by_key(paper_claims(make_summary(widths=(64, 128, 256), seeds=1)))
    (c,) = claims["figS5.rmse_grows_with_data"]
    assert c.verdict == "not applicable" and c.reason.startswith("1 seed per sweep point")


def test_a_custom_model_makes_the_analytic_kernel_claims_not_applicable():
    ds = add_linearization(make_summary(n_trains=(32,)))
    ds = ds.drop_vars(["ntk_analytic_error", "nngp_analytic_error", "rmse_test_analytic"])
    config = json.loads(ds.attrs["config"])
    config["model"]["architecture"] = "custom"
    ds.attrs["config"] = json.dumps(config)
    claims = _by_key(paper_claims(ds))
    for key in ("figS9.ntk_analytic_error", "figS9.nngp_analytic_error", "fig3.empirical_closer"):
        (c,) = claims[key]
        assert c.verdict == "not applicable" and "custom model" in c.reason
    assert {c.verdict for c in claims["fig1.input_weights"]} == {"consistent"}
    # The summary of a custom sweep says its layers' roles are unknown (sweep.facts): the
    # per-role weight-change claims are then not applicable, the others stay.
    ds.attrs["not_applicable"] = json.dumps(not_applicable(config | {"sweep": {}}))
    claims = _by_key(paper_claims(ds))
    for key in ("fig1.input_weights", "fig1.hidden_weights", "fig1.hidden_steeper"):
        assert {c.verdict for c in claims[key]} == {"not applicable"}, key
        assert "which is the input layer" in claims[key][0].reason
    assert {c.verdict for c in claims["fig1.ntk_change"]} != {"not applicable"}


# ---------------------------------------------------------------- claims.tsv and the report


class _ClaimRows(HTMLParser):
    """The cells of the rows of the report's claim tables (<tr id="claim-…">)."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and (attrs.get("id") or "").startswith("claim-"):
            self._row = self.rows.setdefault(attrs["id"], [])
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_claims_tsv_is_written_with_the_report_and_equals_its_tables(tmp_path):
    ds = add_linearization(make_summary(statuses=FLAGGED, exponents={"hidden": -0.3}))
    ds = ds.sel(width=[64, 128, 256, 512])
    out = report.write_report(ds, [], tmp_path / "r.html")
    frame = claims_tsv.read_claims(tmp_path / "claims.tsv")
    assert tuple(frame.columns) == claims_tsv.COLUMNS
    assert {"consistent", "inconsistent"} <= set(frame["verdict"])
    parser = _ClaimRows()
    parser.feed(out.read_text(encoding="utf-8"))
    shown = [parser.rows[f"claim-{i}"] for i in range(len(parser.rows))]
    assert len(shown) == len(frame)
    for cells, row in zip(shown, frame.itertuples(index=False), strict=True):
        figure, scope, statement, _, verdict, criterion, reason = cells
        assert (figure, statement, verdict, criterion) == (
            row.section,
            row.claim,
            row.verdict,
            row.criterion,
        )
        assert scope == (row.scope or "—")
        assert reason.removeprefix("to decide: ") == row.reason
    fitted = frame[frame["claim"].str.contains("hidden weights ‖")]
    assert (fitted["verdict"] == "inconsistent").all() and (fitted["n_points"] > 0).all()
    assert all(lo <= e <= hi for e, lo, hi in fitted[["estimate", "ci_low", "ci_high"]].values)
    assert math.isclose(fitted["estimate"].mean(), -0.3, abs_tol=0.1)


def test_the_report_leads_with_the_counts_and_every_claim_that_is_not_consistent(tmp_path):
    ds = add_linearization(make_summary(steps=(0, 1, 2), exponents={"ntk_analytic_error": -1.0}))
    text = report.write_report(ds, [], tmp_path / "r.html").read_text(encoding="utf-8")
    first = text.split('<section id="claims">')[1].split("</section>")[0]
    assert text.index('<section id="claims">') < text.index('<section id="sweep">')
    assert text.index('<section id="claims">') < text.index('<section id="runs">')
    frame = claims_tsv.read_claims(tmp_path / "claims.tsv")
    counts = claims_tsv.verdict_counts(frame)
    for verdict in ("consistent", "inconsistent", "inconclusive", "not applicable"):
        assert f"{counts.get(verdict, 0)} {verdict}</span>" in first
    assert counts["not applicable"] > 0 and counts["inconsistent"] > 0
    listed = re.findall(r'<li><a href="#(claim-\d+)">', first)
    assert len(listed) == len(frame[frame["verdict"] != "consistent"])
    assert all(f'<tr id="{anchor}">' in text for anchor in listed)
    assert "training stopped at loss ratio" in first


def test_the_claims_command_prints_the_claims_and_fails_on_a_verdict(tmp_path, capsys):
    good = make_summary(widths=(64, 128, 256), n_trains=(32,))
    bad = make_summary(widths=(64, 128, 256), n_trains=(32,), exponents={"hidden": -0.3})
    for name, ds in (("good", good), ("bad", bad)):
        claims_tsv.write_claims(paper_claims(ds), tmp_path / name / "claims.tsv")
    assert cli.main(["claims", str(tmp_path / "good"), "--fail-on", "inconsistent"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{len(paper_claims(good))} claims: ")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["claims", str(tmp_path / "bad"), "--fail-on", "inconsistent"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "INCONSISTENT" in captured.out and "claim(s) inconsistent" in captured.err
    assert cli.main(["claims", str(tmp_path / "bad")]) == 0  # without --fail-on: a listing
    assert cli.main(["claims", str(tmp_path / "absent")]) == 1
    assert "results folder" in capsys.readouterr().err
    assert cli_claims.VERDICTS == verdicts.VERDICTS  # the light command's copy


@pytest.mark.parametrize(
    ("b", "verdicts"),
    [(0.5, {"consistent"}), (0.0, {"inconsistent", "inconclusive"}), (-0.3, {"inconsistent"})],
)
def test_fig_s4_claim_tests_that_the_late_error_grows_where_the_early_deviation_is_large(
    b, verdicts
):
    """Cross-entropy: RMSE_T/RMSE_e ∝ RMSE_e^b over runs; the paper's S4 says b > 0."""
    ds = make_summary(seeds=4, n_trains=(32,))
    config = json.loads(ds.attrs["config"])
    config["training"]["loss"] = "xent"
    ds.attrs["config"] = json.dumps(config)
    rng = np.random.default_rng(5)
    early_index = 4  # step 64: the first record with the median loss ≤ ½ L_0
    run = ds["rmse_test"].isel(step=0)  # (width, n_train, seed)
    noise = run.copy(data=rng.standard_normal(run.shape))
    early = 0.01 * (ds["width"] / 64.0) ** -0.5 * np.exp(0.3 * noise)
    late = 10 * early * (early / 0.005) ** b * np.exp(0.1 * noise.copy(data=noise.values[::-1]))
    rmse = ds["rmse_test"].copy()
    rmse[{"step": early_index}] = early.transpose(*run.dims)
    rmse[{"step": -1}] = late.transpose(*run.dims)
    ds["rmse_test"] = rmse
    (claim,) = [c for c in paper_claims(ds) if c.key == "fig4.s4_late_error_growth"]
    assert claim.figure == "Fig. S4" and claim.experiment == "fig4"
    assert claim.verdict in verdicts, claim
    assert claim.estimate == pytest.approx(b, abs=0.2) and claim.n_points == 20
    assert "t_e = step 64, T = step 512" in claim.measured


def test_the_fig4_section_says_the_wrn_has_no_batch_normalization(tmp_path):
    ds = add_linearization(make_summary(widths=(64, 128, 256), n_trains=(32,)))
    config = json.loads(ds.attrs["config"])
    config["model"]["architecture"] = "wrn"
    config["training"].update(optimizer="momentum", batch_size=8)
    ds.attrs["config"] = json.dumps(config)
    text = report.write_report(ds, [], tmp_path / "r.html").read_text(encoding="utf-8")
    section = text.split('<section id="experiment-fig4">')[1].split("</section>")[0]
    assert "Departure from the paper." in section and "no batch normalization" in section
    assert "Departure from the paper." not in text.split('<section id="experiment-fig4">')[0]
