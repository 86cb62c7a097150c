"""The NTK-GP over a whole training trajectory: mean and covariance across times and inputs.

Over random initializations the infinitely wide network trained on MSE is its linearization
(paper §2.2) with f_0 ~ GP(0, K) jointly on the training inputs X and the test inputs X_T.
After t steps of gradient descent (rate c = η/(n·k), the convention of
:mod:`ntkpipe.core.dynamics`), with A_t = Θ(X_T, X) Θ⁻¹ (I − (I − cΘ)^t),

    f_t(X_T) = f_0(X_T) + A_t (Y − f_0(X)) = μ_t + [−A_t, I] f_0(X ∪ X_T),   μ_t = A_t Y,

so with K(X ∪ X_T) = R Rᵀ the whole trajectory is f_t(X_T) = μ_t + F_t z, z ~ N(0, I_r),
F_t = [−A_t, I] R: Cov(f_t(x), f_s(x')) = (F_t F_sᵀ)(x, x'), whose diagonal blocks t = s are
Eq. 15 (gradient descent in place of gradient flow: (I − cΘ)^t for e^{−cΘt}; ``discrete=False``
gives the flow). Readout-only training is the same with Θ replaced by the readout layer's tangent
kernel (Eq. S22–S23). The factor F [n_t, n_test, n + n_test] is what a test of an ensemble
against the NTK-GP needs: it holds the correlations across times, which independent noise per
(t, x) ignores.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ntkpipe.core._mode_factors import flow_factors
from ntkpipe.core.analytic import check_learning_rate, check_ntk_gp_inputs, check_times


def ntk_gp_trajectory(
    ntk_train_train: jax.Array,
    ntk_test_train: jax.Array,
    nngp_train_train: jax.Array,
    nngp_test_train: jax.Array,
    nngp_test_test: jax.Array,
    y_train: jax.Array,
    steps: jax.Array,
    *,
    learning_rate: float,
    discrete: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Mean μ_t and factor F_t of the NTK-GP at every step (module docstring).

    Args:
        ntk_train_train: Θ(X, X) [n, n] (the tangent kernel that trains).
        ntk_test_train: Θ(X_T, X) [n_test, n].
        nngp_train_train, nngp_test_train, nngp_test_test: the prior K on X and X_T.
        y_train: targets Y [n, k].
        steps: record steps t ≥ 0 [n_t] (integers for gradient descent).
        learning_rate: η > 0.
        discrete: gradient descent (default; the networks are trained by it) or gradient flow.

    Returns:
        ``(mean [n_t, n_test, k], factor [n_t, n_test, n + n_test])``; every output has the
        same covariance F_t F_sᵀ (Θ ⊗ I).
    """
    theta, theta_st, k_tt, k_st, k_ss, y = check_ntk_gp_inputs(
        ntk_train_train, ntk_test_train, nngp_train_train, nngp_test_train, nngp_test_test, y_train
    )
    check_learning_rate(learning_rate)
    times = check_times(steps).reshape(-1).astype(k_tt.dtype)
    rate = jnp.asarray(learning_rate / y.size, k_tt.dtype)
    return _trajectory(theta, theta_st, k_tt, k_st, k_ss, y, times, rate, discrete)


@functools.partial(jax.jit, static_argnames="discrete")
def _trajectory(theta, theta_st, k_tt, k_st, k_ss, y, times, rate, discrete):
    evals, evecs = jnp.linalg.eigh(theta)
    _, factor = flow_factors(evals, times, rate, discrete=discrete)  # G_t per mode [n_t, n]
    a = jnp.einsum("sm,tm,nm->tsn", theta_st @ evecs, factor, evecs)  # A_t [n_t, n_test, n]
    joint = jnp.block([[k_tt, k_st.T], [k_st, k_ss]])
    lam, vec = jnp.linalg.eigh((joint + joint.T) / 2)
    root = vec * jnp.sqrt(jnp.maximum(lam, 0.0))  # R, R Rᵀ = K(X ∪ X_T)
    n = k_tt.shape[0]
    f = root[n:][None] - a @ root[:n]  # [−A_t, I] R
    return a @ y, f
