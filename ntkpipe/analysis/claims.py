"""The paper's claims tested on a sweep, with verdicts computed from the data.

Works on the sweep summary described in `ntkpipe.analysis.summary`, from whose aggregates
and fitted power laws (`ntkpipe.analysis.aggregate`) every verdict is computed. Pure:
nothing here touches a file.

The quantities tested against Lee et al. 2019:

- Fig. 1 / S6: relative weight change ‖W_T − W_0‖_F/‖W_0‖_F ~ n^−½ for the input and output
  layers and ~ n^−1 for hidden layers (hidden steeper); relative kernel change
  ‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F (and the same for K̂) between n^−1 and n^−½.
- Fig. S5: RMSE(f_T, f^lin_T) falls with the width n and grows with the dataset size |D|.
- Fig. S9–S10: ‖Θ̂_0 − Θ‖_F/‖Θ‖_F and ‖K̂_0 − K‖_F/‖K‖_F ~ n^−½; the error of the mean of M
  empirical kernels (M seeds, Monte Carlo) ~ M^−½ while M ≪ n.
- Fig. 3: the network follows its linearization (RMSE(f_T, f^lin_T) small against the change of
  the outputs f_T − f_0), and f^lin evolved with the empirical Θ̂_0 is closer to f than with the
  analytic Θ at finite width.
- Fig. 4 / S2–S4: the same tracking with momentum, minibatch SGD, cross-entropy and conv nets.
- Fig. 2 / S1: the mean of an ensemble of trained networks on x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾
  follows the NTK-GP (Eq. 14–15) within its standard error σ_t/√M, its spread matches σ_t,
  and it follows the NTK-GP rather than the NNGP where the two differ.

Verdicts (`ntkpipe.analysis.verdicts`): consistent, inconsistent, inconclusive (then
`Claim.needs` says what would decide it), and "not tested" for a claim without data. The
tests are in `ntkpipe.analysis.claims_width` (Fig. 1, S5, S9–S10) and
`ntkpipe.analysis.claims_outputs` (Fig. 2, 3, 4), each stated in `Claim.criterion`.

Every claim belongs to one of the paper's experiments (`EXPERIMENTS`); the report has one
section per experiment present in the sweep.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.claims_base import (  # noqa: F401  (re-exported)
    ANALYTIC_SYMBOLS,
    EXPERIMENTS,
    Claim,
    experiment_of,
)
from ntkpipe.analysis.claims_outputs import (  # noqa: F401  (re-exported)
    CLOSER_MARGIN,
    TRACKING_TOLERANCE,
    empirical_closer_claims,
    ensemble_claims,
    tracking_claims,
)
from ntkpipe.analysis.claims_width import (  # noqa: F401  (re-exported)
    ANALYTIC_ERROR_CLAIM,
    KERNEL_CHANGE_BOUNDS,
    KERNEL_CHANGE_TOLERANCE,
    MC_ERROR_CLAIM,
    RMSE_TREND_MARGIN,
    STEEPER_MARGIN,
    WEIGHT_CHANGE_CLAIMS,
    mc_claims,
    width_claims,
)
from ntkpipe.analysis.verdicts import VERDICTS  # noqa: F401  (re-exported)


def paper_claims(ds: xr.Dataset, *, confidence: float = 0.95) -> list[Claim]:
    """The paper's claims tested on this sweep, with verdicts computed from the data.

    A claim is listed only when its data are in the sweep (for the claims against width: the
    width is a sweep axis and the variable has finite values); it is "inconclusive" when there
    are data but too few widths, seeds or members to decide. Criteria (stated in each
    `Claim.criterion`, with `confidence` the level of every interval):

    - Fig. 1, per layer role: the CI of the exponent lies within ±0.2 of −½ (input, output) or
      ±0.3 of −1 (hidden); hidden steeper: the CI of p_hidden − p_other (paired per run)
      below 0 for input and output.
    - Fig. 1 / S6, per kernel: the CI of the exponent lies in [−1 − 0.2, −½ + 0.2].
    - Fig. S9–S10, per kernel: the CI of the exponent against width within ±0.2 of −½; with
      ≥ 3 Monte Carlo sample counts M, the exponent against M at the widest width likewise.
    - Fig. S5: the CI of the exponent of RMSE(f_T, f^lin_T) against width below 0, at every
      dataset size; against |D| (one intercept per width) above 0.
    - Fig. 3 / 4 / S2–S4, per group of the axes other than width: the CI over seeds of the mean
      RMSE(f_T, f^lin_T)/RMS(f_T − f_0) at the widest width below `TRACKING_TOLERANCE`.
    - Fig. 3: the CI over runs of mean log(RMSE with Θ̂_0 / RMSE with Θ) below 0.
    - Fig. 2 / S1, at the widest width: the ensemble mean within 2σ_t/√M + margin of μ_t, its
      spread within the sampling interval of σ_t, and closer to the NTK-GP than to the NNGP
      where those differ, each at ≥ 90% of the points (t > 0, α) (inconsistent below 50%).

    Returns:
        The claims, in the order of `EXPERIMENTS`.
    """
    claims = width_claims(ds, confidence) if analysis.is_width_sweep(ds) else []
    if analysis.has_mc_samples(ds):
        claims += mc_claims(ds, confidence)
    if analysis.has_data(ds, "output_change_test") and analysis.has_data(ds, "rmse_test"):
        claims += tracking_claims(ds, confidence)
    if analysis.has_data(ds, "rmse_test_analytic") and analysis.has_data(ds, "rmse_test"):
        claims += empirical_closer_claims(ds, confidence)
    if analysis.has_data(ds, "ensemble_fx") and analysis.has_data(ds, "ntkgp_mean"):
        claims += ensemble_claims(ds)
    order = list(EXPERIMENTS)
    return sorted(claims, key=lambda c: order.index(c.experiment))


def experiments_present(ds: xr.Dataset, claims: Sequence[Claim] | None = None) -> list[str]:
    """Keys of `EXPERIMENTS` this sweep has data for (those with a claim), in paper order."""
    claims = paper_claims(ds) if claims is None else claims
    found = {c.experiment for c in claims}
    return [key for key in EXPERIMENTS if key in found]
