"""Fig. 2 / S1: an ensemble of M trained networks tested against the NTK-GP (pure NumPy).

Under the NTK-GP every member's outputs over the recorded (t, α) are one draw of
f = μ + F z, z ~ N(0, I) (`ntkpipe.core.gp_trajectory`): the points are strongly correlated
across t and α, so per-point tests with independent noise misjudge both the false-alarm rate
and the power. Here every point i = (t > 0, α) gets a standardized deviation of the ensemble
mean and of its standard deviation beyond a finite-width margin,

    z_μ,i = (|m̄_i − μ_i − (B m̄_0)_i| − δ_μ,i)₊ / (s_i/√M),
    z_σ,i = (|s_ens,i − σ_i| − δ_σ,i)₊ / (σ_i/√(2(M − 1))),

(σ_i² = (F Fᵀ)_ii, floored at 10⁻³ of the output scale), and the statistics are their maxima
over the points, T_μ, T_σ and T = max(T_μ, T_σ). Their null distributions are those of M-member
ensembles drawn from the GP itself (margins 0, `NULL_DRAWS` ensembles from a fixed seed), so
the correlations across (t, α) are accounted for exactly; the 1 − `LEVEL` quantile q is the critical
value: "inconsistent" when T > q, a test at level ≤ `LEVEL` of "the ensemble's mean (spread) lies
within the margin of the NTK-GP's at every point".

The mean's control. Most of the noise of m̄_t is the members' prior draw f_0 on the line, which
every later output carries (f_t = μ_t + F_t z, f_0 = F_0 z): the ensemble's own outputs at t = 0,
m̄_0, whose mean is 0 at any width (the readout weights are symmetric), predict it. The mean is
tested on m̄_t − μ_t − B m̄_0 with B = Cov(f_t, f_0) Cov(f_0)⁺ (`initial_regression`), which has
the same expectation as m̄_t − μ_t and a standard deviation s_i/√M, s_i² = ((F − B F_0)(F − B
F_0)ᵀ)_ii + the finite-width excess of Var f_t below: about 0.4 σ_i on 128 digits, where m̄_t − μ_t
alone left a 30% wrong kernel (0.7 Θ) undetected in 29% of ensembles of M = 100 (the largest
deviation over 363 points, each in units of σ_i/√M, against q ≈ 3). The null draws carry the same
regression, so the level is exact.

Finite-width margin. The NTK-GP is the n → ∞ limit. A network of width n with L hidden layers
has Θ̂₀ = Θ + δΘ with E‖δΘ‖²/‖Θ‖² = ε_n, ε_n ≈ 3(L + 1)/n (measured for ReLU at the small fig_s9
setting: 0.086 at L = 1, n = 64; 0.21 at L = 3, n = 64; Hanin & Nica 2019 give the L/n
scaling). The leading fluctuation of Θ̂ is its scale, Θ̂_m ≈ (1 + η_m) Θ, which runs member m's
gradient descent at the time t(1 + η_m), with E η = O(1/n) and Var η ≤ ε_n. Averaged over
members (τ = log t, derivatives along the recorded steps):

    E f_t − μ_t ≈ E η ∂_τ μ + ½ Var η ∂²_τ μ,
    Var f_t − σ_t² ≈ E η ∂_τ σ² + ½ Var η ∂²_τ σ² + Var η (∂_τ μ)² (+ O(1/n) σ² from the
    non-Gaussian prior),

so the margins are

    δ_μ = ε_n (|∂_τ μ| + ½|∂²_τ μ|),
    δ_σ = √(σ² + ε_n (σ² + |∂_τ σ²| + ½|∂²_τ σ²| + (∂_τ μ)²)) − σ,

O(1/n), vanishing as n → ∞ and where the GP does not move (t → ∞). A 30% error of Θ
(0.7 Θ) is η = −0.3 for every member: a shift of the mean by ≈ 0.36 |∂_τ μ|, far beyond these
margins at the paper's widths (ε_n = 0.023 at n = 512, L = 3).

Power. "Consistent" also needs the test to resolve what the claim is about: the band claim
a deviation of the mean by one σ_i (q_μ/√M ≤ 1), the spread claim an error of σ_i by half
(q_σ/√(2(M − 1)) ≤ ½), and "follows the NTK-GP, not the NNGP" the readout-only prediction
(the NNGP's own mean and σ give T ≥ q + 1.65, a 95% detection at its most separated point);
otherwise "inconclusive" (add members). The rates on correlated draws of exact infinite-width
ensembles trained by discrete GD are measured in tests/analysis/test_verdict_rates.py.
"""

from __future__ import annotations

import numpy as np

from ntkpipe.analysis.verdicts import CONSISTENT, INCONCLUSIVE, INCONSISTENT

#: Ensembles drawn from the GP for the null distributions, and the seed they are drawn from.
NULL_DRAWS, NULL_SEED = 2000, 20190218
#: Level of the tests (a false "inconsistent" at most this often; verdicts.py's 2.5% a side).
LEVEL = 0.025
#: ε_n = MARGIN_PER_LAYER · (L + 1)/n: the relative kernel fluctuation E‖δΘ‖²/‖Θ‖².
MARGIN_PER_LAYER = 3.0
#: The power conditions of "consistent" (module docstring).
BAND_RESOLUTION, SPREAD_RESOLUTION, NNGP_DETECTION = 1.0, 0.5, 1.65
#: σ_i is floored at this fraction of the output scale s (points the GP pins down exactly).
SIGMA_FLOOR = 1e-3
#: The regression on the outputs at t = 0 leaves out eigenvalues of their covariance below this
#: fraction of the largest (directions of the α grid the prior pins down; `initial_regression`).
CONTROL_CUTOFF = 1e-6


def finite_width_epsilon(width, depth) -> float:
    """ε_n = MARGIN_PER_LAYER · (L + 1)/n; 0 for an infinite (or unknown: None) width."""
    if width is None or not np.isfinite(float(width)):
        return 0.0
    return MARGIN_PER_LAYER * (int(depth) + 1) / float(width)


def margins(mu, sigma, steps, epsilon):
    """(δ_μ, δ_σ) at the points (t > 0, α), flattened [P] (module docstring).

    Args:
        mu, sigma: the NTK-GP's μ_t and σ_t on the recorded grid [step, alpha].
        steps: the record steps [step] (those > 0 are the points).
        epsilon: ε_n.
    """
    later = np.asarray(steps) > 0
    tau = np.log(np.asarray(steps, dtype=float)[later])
    mu, var = np.asarray(mu, float)[later], np.asarray(sigma, float)[later] ** 2
    d_mu, d2_mu = _derivatives(mu, tau)
    d_var, d2_var = _derivatives(var, tau)
    delta_mu = epsilon * (np.abs(d_mu) + 0.5 * np.abs(d2_mu))
    extra = epsilon * (var + np.abs(d_var) + 0.5 * np.abs(d2_var) + d_mu**2)
    sd = np.sqrt(var)
    return delta_mu.ravel(), (np.sqrt(var + extra) - sd).ravel()


def _derivatives(y, tau):
    """∂_τ y and ∂²_τ y along the first axis (finite differences on the log-time grid)."""
    if len(tau) < 3:
        return np.zeros_like(y), np.zeros_like(y)
    first = np.gradient(y, tau, axis=0)
    return first, np.gradient(first, tau, axis=0)


def initial_regression(factor, factor0, cutoff: float = CONTROL_CUTOFF):
    """B [P, A] = Cov(f_t, f_0) Cov(f_0)⁺: the regression of the outputs at the points (t > 0, α)
    on the same network's outputs at t = 0 on the line, under the GP (factor [P, r], factor0
    [A, r]); eigenvalues of Cov(f_0) below `cutoff` × the largest are left out."""
    factor, factor0 = np.asarray(factor, float), np.asarray(factor0, float)
    if factor0.shape[0] == 0:
        return np.zeros((factor.shape[0], 0))
    lam, vec = np.linalg.eigh(factor0 @ factor0.T)
    keep = lam > cutoff * lam.max()
    inverse = (vec[:, keep] / lam[keep]) @ vec[:, keep].T
    return factor @ factor0.T @ inverse


def statistics(fx, mu, sigma, scale, delta=(0.0, 0.0), control=None):
    """(T_μ, T_σ) of ensembles fx [..., member, P] against μ, σ [P] (batched), beyond the
    margins `delta` = (δ_μ, δ_σ) (numbers or [P]).

    `control` = (fx0 [..., member, A], B [P, A], s_r [P]): the members' outputs at t = 0, the
    `initial_regression` and the standard deviation of f_t − B f_0 of one member; the mean is
    then tested on m̄ − μ − B m̄_0 in units of s_r/√M (module docstring). None: on m̄ − μ in units
    of σ/√M.
    """
    fx = np.asarray(fx, dtype=float)
    m = fx.shape[-2]
    sd = np.maximum(np.asarray(sigma, float), SIGMA_FLOOR * scale)
    mean, std = fx.mean(-2), fx.std(-2, ddof=1)
    residual, sd_mean = mean - mu, sd
    if control is not None:
        fx0, regression, sd_residual = control
        residual = residual - np.asarray(fx0, float).mean(-2) @ np.asarray(regression).T
        sd_mean = np.maximum(np.asarray(sd_residual, float), SIGMA_FLOOR * scale)
    z_mu = np.maximum(np.abs(residual) - delta[0], 0.0) / (sd_mean / np.sqrt(m))
    z_sigma = np.maximum(np.abs(std - sigma) - delta[1], 0.0) / (sd / np.sqrt(2 * (m - 1)))
    return z_mu.max(-1), z_sigma.max(-1)


def null_quantiles(
    mu, factor, members: int, *, level: float = LEVEL, chunk: int = 250, factor0=None
):
    """The (1 − level) quantiles (q_μ, q_σ, q) of T_μ, T_σ and max(T_μ, T_σ) for ensembles of
    `members` draws μ + F z [P] (margins 0), from `NULL_DRAWS` ensembles of a fixed seed; with
    `factor0` [A, r] (the GP at t = 0) the mean is tested against its regression on the
    members' outputs at t = 0 (`statistics`)."""
    mu, factor = np.asarray(mu, float), np.asarray(factor, float)
    factor0 = np.zeros((0, factor.shape[-1])) if factor0 is None else np.asarray(factor0, float)
    sigma = np.sqrt((factor**2).sum(-1))
    scale = float(sigma.max())
    regression = initial_regression(factor, factor0)
    sd_residual = np.sqrt(((factor - regression @ factor0) ** 2).sum(-1))
    rng = np.random.default_rng(NULL_SEED)
    found = []
    for start in range(0, NULL_DRAWS, chunk):
        size = min(chunk, NULL_DRAWS - start)
        z = rng.standard_normal((size, members, factor.shape[-1]))
        control = (z @ factor0.T, regression, sd_residual)
        found.append(np.stack(statistics(mu + z @ factor.T, mu, sigma, scale, control=control), -1))
    t = np.concatenate(found)
    t = np.concatenate([t, t.max(-1, keepdims=True)], -1)
    return tuple(float(q) for q in np.quantile(t, 1 - level, axis=0))


def agreement(fx, mu, factor, nngp_mu, nngp_sigma, scale, delta, quantiles=None, initial=None):
    """The Fig. 2 verdicts of ensembles fx [..., member, P] against the NTK-GP (μ [P], F
    [P, r]), batched over leading axes.

    Args:
        fx: the members' outputs at the points (t > 0, α), flattened [..., member, P].
        mu, factor: the NTK-GP at the points.
        nngp_mu, nngp_sigma: the readout-only NNGP's mean and σ at the points [P].
        scale: the output scale s (max σ at t = 0; floors σ).
        delta: the finite-width margins (δ_μ, δ_σ) at the points (`margins`).
        quantiles: `null_quantiles` for this M and `initial` (computed when None).
        initial: (fx0 [..., member, A], factor0 [A, r]): the members' outputs on the line at
            t = 0 and the GP's factor there, the control of the mean's test (module
            docstring); None tests the mean without it.

    Returns:
        dict: ``band``, ``spread``, ``follows`` (verdict arrays [...]), ``t_mu``, ``t_sigma``,
        ``q_mu``, ``q_sigma``, ``q`` and ``t_nngp`` (T of the NNGP's own mean and σ).
    """
    fx = np.asarray(fx, dtype=float)
    m = fx.shape[-2]
    factor = np.asarray(factor, float)
    if initial is None:
        initial = (np.zeros((*fx.shape[:-1], 0)), np.zeros((0, factor.shape[-1])))
    fx0, factor0 = (np.asarray(a, float) for a in initial)
    q_mu, q_sigma, q = quantiles or null_quantiles(mu, factor, m, factor0=factor0)
    sigma = np.sqrt((factor**2).sum(-1))
    regression = initial_regression(factor, factor0)
    # one member's f_t − B f_0: the GP's variance, plus the finite-width bound on the excess
    # variance of f_t that δ_σ is made of, (σ + δ_σ)² − σ² (`margins`)
    excess = (sigma + np.asarray(delta[1], float)) ** 2 - sigma**2
    sd_residual = np.sqrt(((factor - regression @ factor0) ** 2).sum(-1) + excess)
    control = (fx0, regression, sd_residual)
    t_mu, t_sigma = statistics(fx, mu, sigma, scale, delta, control)
    t_nngp = _expected_statistic(nngp_mu, nngp_sigma, mu, sigma, sd_residual, scale, delta, m)
    band_power = q_mu / np.sqrt(m) <= BAND_RESOLUTION
    spread_power = q_sigma / np.sqrt(2 * (m - 1)) <= SPREAD_RESOLUTION
    joint = np.maximum(t_mu, t_sigma)
    return {
        "band": _verdict(t_mu > q_mu, band_power),
        "spread": _verdict(t_sigma > q_sigma, spread_power),
        "follows": _verdict(joint > q, t_nngp >= q + NNGP_DETECTION),
        "t_mu": t_mu,
        "t_sigma": t_sigma,
        "q_mu": q_mu,
        "q_sigma": q_sigma,
        "q": q,
        "t_nngp": t_nngp,
    }


def _expected_statistic(other_mu, other_sigma, mu, sigma, sd_residual, scale, delta, m):
    """max(T_μ, T_σ) of an ensemble whose mean and σ are exactly those of `other` (its mean at
    t = 0 is 0, as every prior's)."""
    sd = np.maximum(sigma, SIGMA_FLOOR * scale)
    sd_mean = np.maximum(sd_residual, SIGMA_FLOOR * scale)
    z_mu = np.maximum(np.abs(np.asarray(other_mu) - mu) - delta[0], 0.0) / (sd_mean / np.sqrt(m))
    z_sigma = np.maximum(np.abs(np.asarray(other_sigma) - sigma) - delta[1], 0.0) / (
        sd / np.sqrt(2 * (m - 1))
    )
    return float(max(z_mu.max(), z_sigma.max()))


def _verdict(rejected, powerful):
    rejected = np.asarray(rejected)
    decided = np.where(powerful, CONSISTENT, INCONCLUSIVE)
    return np.where(rejected, INCONSISTENT, decided)
