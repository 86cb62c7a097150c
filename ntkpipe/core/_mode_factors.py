"""Per-mode factors of the closed-form MSE dynamics (paper Eq. 8–11, 14–16), shared by
:mod:`ntkpipe.core.dynamics` and :mod:`ntkpipe.core.analytic`.

With Θ = V Λ Vᵀ and c = η/(n·k), mode λ decays as D_t = e^{−cλt} (gradient flow) or
D_i = (1 − cλ)^i (gradient descent), and G_t = (1 − D_t)/λ is the factor of Θ⁻¹(I − e^{−cΘt}).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def flow_factors(
    evals: jax.Array, times: jax.Array, rate: float, *, discrete: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Per-mode factors of the closed forms: the decay D_t and G_t = (1 − D_t)/λ.

    Continuous: D_t = e^{−cλt}, G_t = c·t·(1 − e^{−z})/z with z = cλt (→ c·t at λ = 0);
    t = ∞ gives D = 0, G = 1/λ on modes with λ > n·ε·λ_max and D = 1, G = 0 on the others
    (pseudo-inverse). Discrete: D_i = (1 − cλ)^i, G_i = −expm1(i·log1p(−cλ))/λ (→ c·i), exact
    for any sign of 1 − cλ.

    Args:
        evals: eigenvalues λ [m] (negative ones are treated as 0).
        times: t [n_t] (steps; integers when discrete).
        rate: c = η/(n·k).
        discrete: gradient descent instead of gradient flow.

    Returns:
        ``(decay, integral)``, each [n_t, m].
    """
    lam = jnp.maximum(evals, 0.0)[None, :]
    if discrete:
        return _discrete_factors(lam, times[:, None], rate)
    times = times[:, None]
    infinite = jnp.isinf(times)
    ct = rate * jnp.where(infinite, 0.0, times)
    z = ct * lam
    small = z == 0
    integral = ct * jnp.where(small, 1.0, -jnp.expm1(-z) / jnp.where(small, 1.0, z))
    keep = lam > cutoff(evals)
    decay = jnp.where(infinite, jnp.where(keep, 0.0, 1.0), jnp.exp(-z))
    pinv = jnp.where(keep, 1.0 / jnp.where(keep, lam, 1.0), 0.0)
    return decay, jnp.where(infinite, pinv, integral)


def _discrete_factors(lam, steps, rate):
    step = rate * lam  # cλ
    base = 1.0 - step
    positive = base > 0
    log_base = jnp.log1p(-jnp.where(positive, step, 0.0))
    decay_pos = jnp.exp(steps * log_base)
    odd = jnp.mod(steps, 2) == 1
    decay_neg = jnp.where(odd, -1.0, 1.0) * jnp.abs(base) ** steps
    zero = lam == 0
    integral_pos = jnp.where(
        zero, rate * steps, -jnp.expm1(steps * log_base) / jnp.where(zero, 1.0, lam)
    )
    integral_neg = (1.0 - decay_neg) / jnp.where(positive, 1.0, lam)
    return (
        jnp.where(positive, decay_pos, decay_neg),
        jnp.where(positive, integral_pos, integral_neg),
    )


def cutoff(evals):
    return evals.shape[-1] * jnp.finfo(evals.dtype).eps * jnp.max(jnp.abs(evals))
