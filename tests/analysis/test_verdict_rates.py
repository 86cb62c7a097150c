"""How often each verdict rule says "consistent", measured on many synthetic sweeps at once.

For every claim: a null (the claim false, at the edge of what it allows or with no effect):
"consistent" in at most 5% of 500 sweeps; a true effect at the paper's effect size with 8 seeds:
"consistent" in at least 80%; a wrong effect: "inconsistent" in at least 80%. The sweeps are
arrays [sweep, ...] with log-normal noise, pushed through the same batched statistics the claims
call (`fits.slope_intervals`, `fits.mean_intervals`, `ensembles.band_statistics`) and the same
rules (`verdicts.*`); `test_batched_path_equals_the_claims_path` checks that the two paths agree.
"""

import numpy as np
import pytest

from ntkpipe.analysis import claims, fits, verdicts
from ntkpipe.analysis.ensembles import band_statistics

SWEEPS = 500
SEEDS = 8
WIDTHS = np.array([64.0, 128.0, 256.0, 512.0, 1024.0])
NOISE = 0.15  # σ of log y per run: seed-to-seed scatter of the small configs is ~5–15%


def _rate(verdict_array, which):
    return float(np.mean(np.asarray(verdict_array) == which))


def _power_law_sweeps(exponent, rng, *, noise=NOISE, seeds=SEEDS):
    """log x [1, widths·seeds] and log y [SWEEPS, widths·seeds] of y = 0.3 (n/64)^p e^{noise·z}."""
    x = np.repeat(WIDTHS, seeds)
    z = rng.standard_normal((SWEEPS, x.size))
    log_y = np.log(0.3) + exponent * np.log(x / 64) + noise * z
    return np.log(x)[None, :], log_y


def _exponent_verdicts(exponent, allowed, rng):
    slope, low, high = fits.slope_intervals(*_power_law_sweeps(exponent, rng))
    return verdicts.range_verdict(low, high, allowed)


EXPONENT_CLAIMS = {
    # claim: (allowed range, the paper's value, a wrong value)
    "input weights": ((-0.7, -0.3), -0.5, -0.9),
    "hidden weights": ((-1.3, -0.7), -1.0, -0.5),
    "kernel change": ((-1.2, -0.3), -0.75, -0.1),
    "kernel error": ((-0.7, -0.3), -0.5, -1.0),
}


def test_allowed_ranges_are_those_of_the_claims():
    (paper, tol) = claims.WEIGHT_CHANGE_CLAIMS["input"]
    assert EXPONENT_CLAIMS["input weights"][0] == pytest.approx((paper - tol, paper + tol))
    (paper, tol) = claims.WEIGHT_CHANGE_CLAIMS["hidden"]
    assert EXPONENT_CLAIMS["hidden weights"][0] == pytest.approx((paper - tol, paper + tol))
    low, high = claims.KERNEL_CHANGE_BOUNDS
    tol = claims.KERNEL_CHANGE_TOLERANCE
    assert EXPONENT_CLAIMS["kernel change"][0] == pytest.approx((low - tol, high + tol))


@pytest.mark.parametrize("name", list(EXPONENT_CLAIMS))
def test_exponent_claims_rates(name):
    rng = np.random.default_rng(0)
    allowed, paper, wrong = EXPONENT_CLAIMS[name]
    for edge in allowed:  # the claim false at the edge of the widened range: the worst case
        assert _rate(_exponent_verdicts(edge, allowed, rng), "consistent") <= 0.05
    assert _rate(_exponent_verdicts(paper, allowed, rng), "consistent") >= 0.8
    assert _rate(_exponent_verdicts(wrong, allowed, rng), "inconsistent") >= 0.8


def test_a_wide_interval_around_the_paper_value_is_inconclusive():
    # the example: −0.34 with 95% CI [−0.85, 0.17] against −½ ± 0.2
    assert verdicts.range_verdict(-0.85, 0.17, (-0.7, -0.3)) == "inconclusive"
    needs = verdicts.interval_needs(-0.85, 0.17, (-0.7, -0.3))
    assert needs.startswith("CI width 1.02 > allowed range 0.40")


def _ratio_sweeps(hidden, other, rng):
    """Per-run hidden and input weight changes with a common per-run factor (correlated)."""
    log_x, _ = _power_law_sweeps(0.0, rng)
    x = np.exp(log_x)
    run = NOISE * rng.standard_normal((SWEEPS, x.size))  # shared by the layers of a run
    log_h = hidden * np.log(x / 64) + run + NOISE * rng.standard_normal(run.shape)
    log_o = other * np.log(x / 64) + run + NOISE * rng.standard_normal(run.shape)
    return log_x, log_h - log_o


def _steeper(hidden, other, rng):
    _, low, high = fits.slope_intervals(*_ratio_sweeps(hidden, other, rng))
    return verdicts.sign_verdict(low, high, direction=-1, margin=claims.STEEPER_MARGIN)


def test_hidden_steeper_rates():
    rng = np.random.default_rng(1)
    assert _rate(_steeper(-0.5, -0.5, rng), "consistent") <= 0.05  # equal exponents
    assert _rate(_steeper(-1.0, -0.5, rng), "consistent") >= 0.8
    assert _rate(_steeper(-0.3, -0.5, rng), "inconsistent") >= 0.8


def _falls(exponent, rng):
    _, low, high = fits.slope_intervals(*_power_law_sweeps(exponent, rng))
    return verdicts.sign_verdict(low, high, direction=-1, margin=claims.RMSE_TREND_MARGIN)


def test_rmse_falls_with_width_rates():
    rng = np.random.default_rng(2)
    assert _rate(_falls(0.0, rng), "consistent") <= 0.05
    assert _rate(_falls(-0.5, rng), "consistent") >= 0.8
    assert _rate(_falls(0.3, rng), "inconsistent") >= 0.8


def _grows(exponent, rng, n_trains=(32.0, 128.0)):
    """RMSE ∝ n^−½ |D|^q per (width, |D|, seed), fitted against |D| with width intercepts."""
    n = np.array(n_trains)
    w, d, _ = np.meshgrid(WIDTHS, n, np.arange(SEEDS), indexing="ij")
    labels = np.meshgrid(np.arange(WIDTHS.size), n, np.arange(SEEDS), indexing="ij")[0]
    log_y = -0.5 * np.log(w / 64) + exponent * np.log(d / 32)
    noisy = log_y.ravel() + NOISE * rng.standard_normal((SWEEPS, w.size))
    _, low, high = fits.slope_intervals(np.log(d).ravel()[None], noisy, labels=labels.ravel())
    return verdicts.sign_verdict(low, high, direction=+1, margin=claims.RMSE_TREND_MARGIN)


def test_rmse_grows_with_dataset_size_rates():
    rng = np.random.default_rng(3)
    assert _rate(_grows(0.0, rng), "consistent") <= 0.05  # RMSE independent of |D|
    assert _rate(_grows(0.5, rng), "consistent") >= 0.8
    assert _rate(_grows(-0.5, rng), "inconsistent") >= 0.8


def _tracking(mean_relative, rng, tol=claims.TRACKING_TOLERANCE["mse"]):
    values = mean_relative * np.exp(NOISE * rng.standard_normal((SWEEPS, SEEDS)) - NOISE**2 / 2)
    mean, half, _ = fits.mean_intervals(values)
    return verdicts.range_verdict(mean - half, mean + half, (-np.inf, tol))


def test_tracking_rates():
    rng = np.random.default_rng(4)
    assert _rate(_tracking(0.1, rng), "consistent") <= 0.05  # at the tolerance
    assert _rate(_tracking(0.03, rng), "consistent") >= 0.8
    assert _rate(_tracking(0.3, rng), "inconsistent") >= 0.8


def _tracking_fit(at_widest, rng, tol=claims.TRACKING_TOLERANCE["mse"]):
    """Relative RMSE ∝ n^−½ over the widths, `at_widest` at n = 1024: the power law's interval."""
    log_x, log_y = _power_law_sweeps(-0.5, rng)
    log_y = log_y - np.log(0.3) + np.log(at_widest) + 0.5 * np.log(1024 / 64)
    value, low, high = fits.value_intervals(log_x, log_y, np.log(1024.0))
    return verdicts.range_verdict(np.exp(low), np.exp(high), (-np.inf, tol))


def test_tracking_rates_of_the_fitted_power_law():
    rng = np.random.default_rng(10)
    assert _rate(_tracking_fit(0.1, rng), "consistent") <= 0.05
    assert _rate(_tracking_fit(0.03, rng), "consistent") >= 0.8
    assert _rate(_tracking_fit(0.3, rng), "inconsistent") >= 0.8


def _closer(ratio, rng, noise=0.5):
    log_ratio = np.log(ratio) + noise * rng.standard_normal((SWEEPS, SEEDS))
    mean, half, _ = fits.mean_intervals(log_ratio)
    low, high = mean - half, mean + half
    return verdicts.sign_verdict(low, high, direction=-1, margin=claims.CLOSER_MARGIN)


def test_empirical_kernel_closer_rates():
    rng = np.random.default_rng(5)
    assert _rate(_closer(1.0, rng), "consistent") <= 0.05
    assert _rate(_closer(0.4, rng), "consistent") >= 0.8
    assert _rate(_closer(2.0, rng), "inconsistent") >= 0.8


def test_batched_path_equals_the_claims_path():
    rng = np.random.default_rng(6)
    log_x, log_y = _power_law_sweeps(-0.5, rng)
    slope, low, high = fits.slope_intervals(log_x, log_y)
    fit = fits.fit_power_law(np.exp(log_x[0]), np.exp(log_y[3]))
    assert (fit.exponent, fit.ci_low, fit.ci_high) == pytest.approx((slope[3], low[3], high[3]))


# ---------------------------------------------------------------- Fig. 2


STEPS = np.array([0, 4, 16, 64, 256])
ALPHAS = np.linspace(0, 1, 9)


def _predictions():
    """μ_t, σ_t of the NTK-GP and of the NNGP [step, alpha]: the NNGP moves more slowly, so the
    two means differ at early steps and meet at the end."""
    t = STEPS[:, None].astype(float)
    target = (2 * ALPHAS - 1)[None, :]
    mu = target * (1 - np.exp(-t / 16))
    nngp = target * (1 - np.exp(-t / 128))
    sigma = 0.3 * (1 - 0.5 * (1 - np.exp(-t / 16))) + 0 * target
    return mu, sigma, nngp, sigma * 1.2


def _ensemble(center, sigma, rng, members, std_scale=1.0):
    draws = rng.standard_normal((SWEEPS, members, *center.shape))
    fx = center + std_scale * sigma * draws
    return fx.mean(1), fx.std(1, ddof=1)


def _fig2(members, rng, *, offset=0.0, std_scale=1.0, follow="ntk"):
    mu, sigma, nngp, nngp_sigma = _predictions()
    center = {"ntk": mu, "nngp": nngp, "half": (mu + nngp) / 2}[follow] + offset * sigma
    mean, std = _ensemble(center, sigma, rng, members, std_scale)
    found = band_statistics(mean, std, members, mu, sigma, nngp, nngp_sigma, later=STEPS > 0)
    follows = np.where(
        found["separated"] > 0, verdicts.fraction_verdict(found["ntkgp_closer"]), "inconclusive"
    )
    return (
        verdicts.fraction_verdict(found["band_fraction"]),
        verdicts.fraction_verdict(found["spread_fraction"]),
        follows,
    )


def test_band_rates():
    rng = np.random.default_rng(7)
    band, _, _ = _fig2(SEEDS, rng)
    assert _rate(band, "consistent") >= 0.8
    # off by the margin plus 3 standard errors: outside what the test allows
    margin = 0.1 * 0.3  # FINITE_WIDTH_MARGIN × max σ_t
    band, _, _ = _fig2(SEEDS, rng, offset=(margin / 0.3 + 3 / np.sqrt(SEEDS)))
    assert _rate(band, "consistent") <= 0.05
    band, _, _ = _fig2(100, rng, offset=1.5)  # the ensemble of 100, 15 standard errors
    assert _rate(band, "inconsistent") == 1.0


def test_spread_rates():
    rng = np.random.default_rng(8)
    _, spread, _ = _fig2(SEEDS, rng)
    assert _rate(spread, "consistent") >= 0.8
    _, spread, _ = _fig2(32, rng, std_scale=0.5)  # too narrow
    assert _rate(spread, "consistent") <= 0.05 and _rate(spread, "inconsistent") >= 0.8
    _, spread, _ = _fig2(32, rng, std_scale=2.0)  # too wide
    assert _rate(spread, "inconsistent") >= 0.8


def test_ntk_gp_rather_than_nngp_rates():
    rng = np.random.default_rng(9)
    _, _, follows = _fig2(SEEDS, rng)
    assert _rate(follows, "consistent") >= 0.8
    _, _, follows = _fig2(SEEDS, rng, follow="half")  # halfway: follows neither
    assert _rate(follows, "consistent") <= 0.05
    _, _, follows = _fig2(SEEDS, rng, follow="nngp")
    assert _rate(follows, "inconsistent") >= 0.8
