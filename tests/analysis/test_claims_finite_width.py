"""The claim rows beyond the paper (section ``beyond`` of claims_table.CLAIM_TABLE), through the
one evaluator: μP against NTK, which scaling law, Hanin–Nica's constant and the β collapse.
Each on data where it holds and where it fails."""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ntkpipe.analysis import claims
from ntkpipe.analysis.claims_table import CLAIM_TABLE
from tests.summary_fixture import make_summary

TABLE = {row.key: row for row in CLAIM_TABLE}
ROWS = {key: row for key, row in TABLE.items() if key.startswith("beyond.")}
DATA = Path(__file__).with_name("data") / "relu_ntk_diag.npz"


def _verdicts(ds, *keys):
    out = claims.paper_claims(ds, table=[ROWS[k] for k in keys])
    return {c.key: c for c in out}


def _parameterizations(mup_exponent, noise=0.05):
    """NTK: relative error ~ n^−½; μP: ~ n^mup_exponent (output change 1 at the end)."""
    ds = make_summary(n_trains=None, seeds=3, noise=noise,
                      extra_axes={"parameterization": ["ntk", "mup"]})  # fmt: skip
    ramp = ds["rmse_test"] / ds["rmse_test"].isel(step=-1)
    ds["output_change_test"] = ramp.fillna(0) * 0 + 1.0
    tilt = (ds["width"] / 64.0) ** (mup_exponent + 0.5)
    mup = ds["parameterization"] == "mup"
    ds["rmse_test"] = ds["rmse_test"].where(~mup, ds["rmse_test"] * tilt)
    return ds


def test_mup_contrast_consistent_when_mup_error_stays_inconsistent_when_it_falls():
    held = _verdicts(_parameterizations(0.0), "beyond.mup_contrast")["beyond.mup_contrast"]
    assert held.verdict == "consistent", held
    assert "μP y_∞" in held.measured and held.group == {}
    fails = _verdicts(_parameterizations(-0.5), "beyond.mup_contrast")["beyond.mup_contrast"]
    assert fails.verdict == "inconsistent", fails


def test_mup_contrast_row_needs_both_parameterizations():
    ds = make_summary(n_trains=None, seeds=3)
    assert "beyond.mup_contrast" not in _verdicts(ds, "beyond.mup_contrast")


@pytest.mark.parametrize(
    ("exponent", "noise", "law"),
    [
        (-1.0, 0.05, "supports n^−1 only"),
        (-0.5, 0.05, "supports n^−1/2 only"),
        (-0.75, 0.05, "supports neither"),
        (-0.75, 0.8, "supports both"),
    ],
)
def test_the_kernel_change_claim_says_which_law_its_interval_supports(exponent, noise, law):
    ds = make_summary(n_trains=None, seeds=2, noise=noise, exponents={"ntk_change": exponent})
    (claim,) = claims.paper_claims(ds, table=[TABLE["fig1.ntk_change"]])
    assert law in claim.measured, claim
    if law == "supports both":  # the power calculation: what would separate them
        assert "seeds per width" in claim.reason and "widths up to" in claim.reason, claim
    else:
        assert "separate" not in claim.reason


def test_the_rmse_claim_says_which_law_per_dataset_size():
    ds = make_summary(seeds=3, exponents={"rmse_width": -1.0})
    out = claims.paper_claims(ds, table=[TABLE["figS5.rmse_falls_with_width"]])
    assert len(out) == 2 and all("supports n^−1 only" in c.measured for c in out), out


def _real_fluctuations(activation="relu"):
    data = np.load(DATA)
    da = xr.DataArray(
        data["ntk_diag"],
        dims=("depth", "width", "seed", "sample"),
        coords={"depth": data["depths"], "width": data["widths"]},
    )
    ds = xr.Dataset({"ntk_diag_init": da}).assign_coords(beta=(da.depth / da.width).astype(float))
    ds.attrs.update(
        sweep_axes=json.dumps(["depth", "width"]),
        config=json.dumps({"model": {"activation": activation}}),
    )
    return ds


def test_hanin_nica_rows_on_real_kernels():
    """Depths 2 and 4 at widths 16–64: one curve in β (consistent); the constant c ≈ 2.8 is
    below Hanin & Nica's 5 ± 2 (their e^{5β} is the large-depth limit): inconsistent."""
    out = _verdicts(_real_fluctuations(), "beyond.hanin_nica_constant", "beyond.beta_collapse")
    assert out["beyond.beta_collapse"].verdict == "consistent", out["beyond.beta_collapse"]
    constant = out["beyond.hanin_nica_constant"]
    assert constant.verdict == "inconsistent" and 2.0 < constant.estimate < 3.5, constant
    assert "per depth L=2" in constant.measured


def test_hanin_nica_rows_are_not_applicable_with_few_seeds_per_point():
    """A depth × width sweep of the paper (config/small/fig_s5.yaml: 2 seeds per point) listed
    the Hanin–Nica constant "inconsistent" from a bootstrap over 2 seeds, whose interval did not
    even hold its own estimate. The same real kernels with 2 seeds per point: not applicable."""
    few = _real_fluctuations().isel(seed=slice(0, 2))
    out = _verdicts(few, "beyond.hanin_nica_constant", "beyond.beta_collapse")
    for claim in out.values():
        assert claim.verdict == "not applicable", claim
        assert claim.reason.startswith("2 seeds per sweep point") and "≥ 32" in claim.reason


def test_hanin_nica_rows_are_not_applicable_to_tanh():
    out = _verdicts(_real_fluctuations("tanh"), "beyond.hanin_nica_constant")
    claim = out["beyond.hanin_nica_constant"]
    assert claim.verdict == "not applicable" and "ReLU" in claim.reason
