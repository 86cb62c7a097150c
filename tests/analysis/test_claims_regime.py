"""Tests of the claims beyond the paper (analysis.claims_regime) on constructed summaries where
each holds and where it fails, and of their rows in the claim table."""

import numpy as np
import pytest

from ntkpipe.analysis import claims, claims_regime
from ntkpipe.analysis.claims_table import CLAIM_TABLE
from tests.analysis.test_plots_beyond import _summary

# The rows of a learning-rate sweep (the finite-width rows: tests/analysis/test_claims_finite_width)
ROWS = {row.key: row for row in CLAIM_TABLE if row.test.__module__.endswith("claims_regime")}


def _with_sharpness(start, end, regimes=None):
    ds = _summary()
    steps = ds.sizes["step"]
    ds["sharpness"][:] = np.linspace(start, end, steps)
    if regimes is not None:
        ds["regime"][:] = np.asarray(regimes, dtype=object)[:, :, None].astype(str)
    return ds


def test_catapult_runs_ending_below_their_edge_are_consistent_and_above_it_inconsistent():
    row = ROWS["beyond.catapult_flatter"]
    # η = lr_factor, n·k = 16: at 1.5 the run ends at x = 1.5·10/16 < 2
    (good,) = claims_regime.catapult_flatter_claims(_with_sharpness(30.0, 10.0), row, 0.95)
    assert good.verdict == "consistent" and good.n_points == 8 and good.estimate < 2
    # the kernel never flattens: x_T = 1.5·30/16 = 2.8 > 2
    (bad,) = claims_regime.catapult_flatter_claims(_with_sharpness(30.0, 30.0), row, 0.95)
    assert bad.verdict == "inconsistent" and bad.estimate > 2


def test_the_largest_converging_rate_in_band_is_consistent_and_below_the_edge_inconsistent():
    row = ROWS["beyond.largest_converging"]
    # x₀ = η·30/16: converges up to 2.8 (1.5×), diverges at 4.7 (2.5×): in [2, 12]
    found = claims_regime.largest_converging_claims(_with_sharpness(30.0, 10.0), row, 0.95)
    verdicts = {c.group["width"]: c.verdict for c in found}
    assert verdicts[64] == verdicts[256] == "consistent"
    assert verdicts[1024] == "inconclusive"  # converges at 4.7, diverges only at 75: unresolved
    # a network that diverges where f_lin still converges (x₀ = 0.94 < 2): inconsistent
    diverging_early = [["lazy", "divergent", "divergent", "divergent"]] * 3
    found = claims_regime.largest_converging_claims(
        _with_sharpness(10.0, 10.0, diverging_early), row, 0.95
    )
    assert {c.verdict for c in found} == {"inconsistent"}


@pytest.mark.parametrize("key", sorted(ROWS))
def test_the_rows_are_evaluated_in_the_beyond_section(key):
    ds = _with_sharpness(30.0, 10.0)
    ds["loss_train"] = ds["rmse_test"] * 0 + np.linspace(1.0, 1e-3, ds.sizes["step"])
    found = [c for c in claims.paper_claims(ds, table=(ROWS[key],))]
    assert found and all(c.key == key and c.experiment == "beyond" for c in found)
