"""A custom Flax module (examples/custom/attention.py) through the whole workflow: the tiny sweep
of tests/configs/tiny_custom.yaml (session fixture ``tiny_custom_sweep``) runs every stage but the
analytic one, and its report gives the f vs f_lin verdicts."""

import json
import re

import xarray as xr

from ntkpipe.analysis import claims_tsv


def test_the_attention_sweep_reaches_a_report_with_f_vs_f_lin_verdicts(tiny_custom_sweep):
    workdir, _ = tiny_custom_sweep
    out = workdir / "results" / "tiny-custom"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (out / "report.html").read_text()))
    wording = "the network f follows its linearization f^lin over training"
    assert wording in text, "the report has no f vs f_lin claim for the custom model"
    # claims.tsv holds the report's claims (tests/analysis/test_claims_table.py): the tracking
    # claim is judged on the custom model (not a custom model's fig. 3 setting: fig. 4's row)
    claims = claims_tsv.read_claims(out / "claims.tsv")
    tracking = claims[claims["claim"].str.startswith(wording)]
    judged = set(tracking["verdict"]) & {"consistent", "inconsistent", "inconclusive"}
    assert judged, tracking.to_string()
    analytic = claims[claims["claim"].str.contains("empirical kernel at initialization")]
    assert set(analytic["verdict"]) == {"not applicable"}
    assert analytic["reason"].str.contains("custom model").all()
    assert not (out / "analytic").exists()  # no infinite-width kernels for a custom module


def test_the_summary_names_layers_by_the_modules_parameter_tree(tiny_custom_sweep):
    workdir, _ = tiny_custom_sweep
    summary = xr.open_zarr(workdir / "results" / "tiny-custom" / "summary.zarr")
    layers = list(summary.layer.values)
    assert layers[-1] == "readout" and "block_0/query" in layers and "embed" in layers
    assert summary.ntk_analytic_error.isnull().all()
    not_applicable = json.loads(summary.attrs["not_applicable"])
    assert "analytic_kernels" in not_applicable and "custom" in not_applicable["analytic_kernels"]
    assert (summary.status == "ok").all()  # trained below η_crit, nothing diverged
    rmse = summary.rmse_test.isel(step=-1)
    assert float(rmse.max()) > 0  # f and f_lin were both trained and compared
