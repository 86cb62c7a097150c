"""Infinite-width kernels of MLPs and the predictive distributions they imply (paper §2.3).

**Kernels.** For the networks of :func:`ntkpipe.core.models.mlp` (``depth`` = L hidden layers and a
linear readout, Dense layers l = 0 … L of fan-in n_l), the output NNGP kernel K (Eq. 12) and the
NTK Θ follow from the recursion over pre-activation kernels (SM §E; conventions of
neural-tangents' ``stax``, so that the numbers agree with ``stax.serial(Dense, φ, …, Dense)``):

    input:     K_in = x·x'/d_in,   Θ_in = 0,                               n_0 = d_in
    Dense l:   K_l = σ_w² K_in + σ_b²
               Θ_l = K_l + σ_w² Θ_in                               (NTK parameterization)
               Θ_l = n_l K_in + σ_w² Θ_in + [bias]                 (standard parameterization)
    φ (l < L): K_in ← E[φ(u) φ(v)],  Θ_in ← Θ_l · E[φ'(u) φ'(v)],  n_{l+1} = width,

with (u, v) ~ N(0, [[K_l(x, x), K_l(x, x')], [K_l(x, x'), K_l(x', x')]]). In the standard
parameterization a Dense layer's weight gradient is its input itself (not σ_w/√n_l times it), so
its NTK term is n_l times the input kernel and a bias adds 1: Θ grows with the width, which
therefore must be given (``width``); K does not depend on it. A network has bias parameters iff
``b_std`` is neither 0 nor None (the ``models.mlp`` convention; in neural-tangents ``b_std=0``
would still add a zero-initialized trainable bias, i.e. the ``+ 1`` above).

The Gaussian expectations are in closed form for ``relu`` (arc-cosine kernel) and ``erf``
(arcsine formula), and trivially for ``identity``; any activation (``tanh``, or any elementwise
JAX function) can be integrated numerically, see :func:`ntkpipe.core._quadrature.gaussian_pair`.

**Predictive distributions.** :func:`nngp_posterior` is the exact Bayesian posterior of the
NNGP (Eq. 13); :func:`ntk_gp_predictive` is the distribution over initializations of the
linearized network trained by gradient flow, at finite times (Eq. 14–15) and at t → ∞ (Eq. 16).
Time is measured exactly as in :mod:`ntkpipe.core.dynamics`: with the MSE loss ½ · mean over the n·k
entries, the train residual decays as exp(−η Θ t / (n·k)), t in units of optimizer steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.core._analytic_recursion import (
    CLOSED_FORM_ACTIVATIONS,
    METHODS,
    block_rows,
    is_number,
    recursion,
    recursion_config,
)
from ntkpipe.core._mode_factors import flow_factors
from ntkpipe.core._quadrature import DEFAULT_QUAD_ORDER

__all__ = [
    "CLOSED_FORM_ACTIVATIONS",
    "DEFAULT_QUAD_ORDER",
    "METHODS",
    "kernels",
    "nngp_posterior",
    "ntk_gp_predictive",
]


def kernels(
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    depth: int,
    activation: str | Callable[[jax.Array], jax.Array],
    w_std: float,
    b_std: float | None,
    parameterization: str = "ntk",
    width: int | None = None,
    method: str = "auto",
    quad_order: int = DEFAULT_QUAD_ORDER,
) -> tuple[jax.Array, jax.Array]:
    """Infinite-width output kernels K(x1, x2) (NNGP, Eq. 12) and Θ(x1, x2) (NTK) of an MLP.

    The kernels are per output (the Θ ⊗ I convention: the traced kernels of a network with k
    outputs); they do not depend on the number of outputs.

    Args:
        x1: inputs [n1, d_in].
        x2: inputs [n2, d_in]; None means x2 = x1.
        depth: number of hidden layers L ≥ 0 (the readout Dense layer sits on top).
        activation: ``"relu"``, ``"erf"``, ``"tanh"``, ``"identity"`` (the names of
            :data:`ntkpipe.core.models.ACTIVATIONS`), or any elementwise JAX function φ (then only
            ``method="quadrature"`` applies and φ' is taken by ``jax.grad``).
        w_std: σ_w > 0.
        b_std: σ_b ≥ 0; 0 or None means no bias parameters.
        parameterization: ``"ntk"`` or ``"standard"`` (see the module docstring).
        width: hidden width n; required by the standard parameterization when depth ≥ 1 (its
            NTK grows with n), ignored by the NTK parameterization.
        method: ``"auto"`` (closed form for relu, erf and identity, quadrature otherwise),
            ``"closed_form"`` (an error for other activations) or ``"quadrature"`` (for every
            activation, e.g. to check the closed forms).
        quad_order: Gauss nodes per dimension of the quadrature (≥ 2), see
            :data:`DEFAULT_QUAD_ORDER`.

    Returns:
        ``(nngp, ntk)``, each [n1, n2], in the dtype of the inputs (float64 when x64 is on).

    Raises:
        ValueError: on a bad shape or setting, before any computation.
    """
    x1, x2 = _check_inputs(x1, x2)
    config = recursion_config(
        depth, activation, w_std, b_std, parameterization, width, method, quad_order
    )
    d_in = x1.shape[1]
    sq1 = jnp.sum(x1 * x1, axis=1) / d_in
    symmetric = x2 is None
    config = config._replace(symmetric=symmetric)
    if symmetric:
        x2, sq2 = x1, sq1
    else:
        sq2 = jnp.sum(x2 * x2, axis=1) / d_in
    rows = block_rows(config, x1.shape[0], x2.shape[0])
    blocks = [
        recursion(config, x1[i : i + rows], x2, sq1[i : i + rows], sq2, i)
        for i in range(0, x1.shape[0], rows)
    ]
    if len(blocks) == 1:
        return blocks[0]
    return tuple(jnp.concatenate(parts, axis=0) for parts in zip(*blocks, strict=True))


def nngp_posterior(
    nngp_train_train: jax.Array,
    nngp_test_train: jax.Array,
    nngp_test_test: jax.Array,
    y_train: jax.Array,
    *,
    diag_reg: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """Posterior predictive of the NNGP given f(X) = Y (Eq. 13), per output.

    μ(X_T) = K(X_T, X) K⁻¹ Y,   Σ(X_T, X_T) = K(X_T, X_T) − K(X_T, X) K⁻¹ K(X, X_T),

    with K = K(X, X) + diag_reg · mean(diag K) · I (the relative regularization of
    neural-tangents' ``diag_reg``). K⁻¹ is applied through one eigendecomposition as a
    pseudo-inverse: eigenvalues below n·ε·λ_max are treated as 0, so a singular K gives the
    minimum-norm interpolant rather than NaNs.

    Args:
        nngp_train_train: K(X, X) [n, n].
        nngp_test_train: K(X_T, X) [n_test, n].
        nngp_test_test: K(X_T, X_T) [n_test, n_test].
        y_train: targets Y [n, k].
        diag_reg: relative diagonal regularization ≥ 0.

    Returns:
        ``(mean [n_test, k], cov [n_test, n_test])``; the k outputs are independent with the
        same covariance.
    """
    k_tt, k_st, k_ss, y = _check_predictive(
        nngp_train_train, nngp_test_train, nngp_test_test, y_train
    )
    if not is_number(diag_reg) or not diag_reg >= 0 or not math.isfinite(diag_reg):
        raise ValueError(f"diag_reg must be a finite number ≥ 0; got {diag_reg!r}.")
    return _nngp_posterior(k_tt, k_st, k_ss, y, jnp.asarray(diag_reg, k_tt.dtype))


def ntk_gp_predictive(
    ntk_train_train: jax.Array,
    ntk_test_train: jax.Array,
    nngp_train_train: jax.Array,
    nngp_test_train: jax.Array,
    nngp_test_test: jax.Array,
    y_train: jax.Array,
    t: jax.Array | float | None = None,
    *,
    learning_rate: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """Distribution of the infinitely wide linearized network trained on MSE (Eq. 14–16).

    With Θ = V Λ Vᵀ (one eigendecomposition) and c = η/(n·k),
    A_t = Θ(X_T, X) Θ⁻¹ (I − e^{−cΘt}) = Θ(X_T, X) V diag((1 − e^{−cλt})/λ) Vᵀ:

        μ_t = A_t Y                                                            (Eq. 14)
        Σ_t = K(X_T, X_T) + A_t K A_tᵀ − (A_t K(X, X_T) + K(X_T, X) A_tᵀ)      (Eq. 15)

    and t → ∞ replaces (1 − e^{−cλt})/λ by 1/λ (Eq. 16). Modes with λ ≈ 0 are stable: at finite
    t their factor tends to c·t; at t = ∞ eigenvalues below n·ε·λ_max count as 0 (pseudo-inverse).
    At t = 0 the distribution is the prior N(0, K(X_T, X_T)).

    Args:
        ntk_train_train: Θ(X, X) [n, n].
        ntk_test_train: Θ(X_T, X) [n_test, n].
        nngp_train_train: K(X, X) [n, n].
        nngp_test_train: K(X_T, X) [n_test, n].
        nngp_test_test: K(X_T, X_T) [n_test, n_test].
        y_train: targets Y [n, k].
        t: time(s) ≥ 0 in optimizer steps, a scalar or an array [n_t]; None means t → ∞.
        learning_rate: η > 0.

    Returns:
        ``(mean, cov)``: [n_t, n_test, k] and [n_t, n_test, n_test] for an array t, without the
        leading axis for a scalar t or t=None.
    """
    theta, theta_st, k_tt, k_st, k_ss, y = check_ntk_gp_inputs(
        ntk_train_train, ntk_test_train, nngp_train_train, nngp_test_train, nngp_test_test, y_train
    )
    check_learning_rate(learning_rate)
    times = None if t is None else check_times(t)
    rate = jnp.asarray(learning_rate / y.size, k_tt.dtype)
    flat = jnp.full((1,), jnp.inf) if times is None else times.reshape(-1)
    mean, cov = _ntk_gp(theta, theta_st, k_tt, k_st, k_ss, y, flat.astype(k_tt.dtype), rate)
    shape = () if times is None else times.shape
    return mean.reshape(shape + mean.shape[1:]), cov.reshape(shape + cov.shape[1:])


@jax.jit
def _nngp_posterior(k_tt, k_st, k_ss, y, diag_reg):
    n = k_tt.shape[0]
    k_tt = k_tt + diag_reg * jnp.trace(k_tt) / n * jnp.eye(n, dtype=k_tt.dtype)
    evals, evecs = jnp.linalg.eigh(k_tt)  # symmetrizes its input
    inv = _pinv_factor(evals)
    proj = k_st @ evecs  # K(X_T, X) V   [n_test, n]
    mean = proj @ (inv[:, None] * (evecs.T @ y))
    cov = k_ss - (proj * inv) @ proj.T
    return mean, _symmetrize(cov)


@jax.jit
def _ntk_gp(theta, theta_st, k_tt, k_st, k_ss, y, times, rate):
    """Eq. 14–16 at times [n_t] (∞ allowed): mean [n_t, n_test, k], cov [n_t, n_test, n_test]."""
    evals, evecs = jnp.linalg.eigh(theta.astype(k_tt.dtype))  # symmetrizes its input
    proj = theta_st @ evecs  # Θ(X_T, X) V   [n_test, n]
    _, factor = flow_factors(evals, times, rate)  # (1 − e^{−cλt})/λ   [n_t, n]
    moments = jax.vmap(lambda f: _ntk_gp_moments(proj * f, evecs, k_tt, k_st, k_ss, y))
    return moments(factor)


def _ntk_gp_moments(proj_scaled, evecs, k_tt, k_st, k_ss, y):
    a = proj_scaled @ evecs.T  # A_t = Θ(X_T, X) Θ⁻¹ (I − e^{−cΘt})   [n_test, n]
    cross = a @ k_st.T  # A_t K(X, X_T)
    cov = k_ss + a @ k_tt @ a.T - cross - cross.T
    return a @ y, _symmetrize(cov)


def _pinv_factor(evals):
    """1/λ, with 0 for λ ≤ n·ε·λ_max (pseudo-inverse of a PSD matrix)."""
    cutoff = evals.shape[0] * jnp.finfo(evals.dtype).eps * jnp.max(jnp.abs(evals))
    keep = evals > cutoff
    return jnp.where(keep, 1.0 / jnp.where(keep, evals, 1.0), 0.0)


def _symmetrize(a):
    return (a + a.T) / 2


def _check_inputs(x1, x2):
    x1 = _as_inputs("x1", x1)
    if x2 is None:
        return x1, None
    x2 = _as_inputs("x2", x2)
    if x2.shape[1] != x1.shape[1]:
        raise ValueError(
            f"x1 and x2 must have the same input dimension; got x1 {x1.shape}, x2 {x2.shape}."
        )
    return x1, x2


def _as_inputs(name, x):
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape [n ≥ 1, d_in ≥ 1]; got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def check_ntk_gp_inputs(theta, theta_st, k_tt, k_st, k_ss, y):
    """The inputs of the NTK-GP (Θ, Θ(X_T, X), K, K(X_T, X), K(X_T, X_T), Y) checked for shape
    and cast to one floating dtype; ValueError naming the argument otherwise."""
    k_tt, k_st, k_ss, y = _check_predictive(k_tt, k_st, k_ss, y)
    theta = _square("ntk_train_train", theta, k_tt.shape[0]).astype(k_tt.dtype)
    theta_st = jnp.asarray(theta_st)
    if theta_st.shape != k_st.shape:
        raise ValueError(
            f"ntk_test_train must have shape {k_st.shape} like nngp_test_train; "
            f"got {theta_st.shape}."
        )
    return theta, theta_st.astype(k_tt.dtype), k_tt, k_st, k_ss, y


def _check_predictive(k_tt, k_st, k_ss, y):
    y = jnp.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"y_train must have shape [n, k]; got {y.shape} (reshape to [n, 1]).")
    n = y.shape[0]
    k_tt = _square("nngp_train_train", k_tt, n)
    k_st = jnp.asarray(k_st)
    if k_st.ndim != 2 or k_st.shape[1] != n:
        raise ValueError(f"nngp_test_train must have shape [n_test, {n}]; got {k_st.shape}.")
    k_ss = _square("nngp_test_test", k_ss, k_st.shape[0])
    dtype = jnp.result_type(k_tt.dtype, k_st.dtype, k_ss.dtype, y.dtype, float)
    return k_tt.astype(dtype), k_st.astype(dtype), k_ss.astype(dtype), y.astype(dtype)


def _square(name, k, n):
    k = jnp.asarray(k)
    if k.shape != (n, n):
        raise ValueError(f"{name} must have shape [{n}, {n}]; got {k.shape}.")
    return k


def check_learning_rate(learning_rate):
    if not is_number(learning_rate) or not learning_rate > 0 or not math.isfinite(learning_rate):
        raise ValueError(f"learning_rate must be a finite number > 0; got {learning_rate!r}.")


def check_times(t):
    times = np.asarray(t, dtype=float)
    if times.ndim > 1:
        raise ValueError(f"t must be a scalar or a 1-d array [n_t]; got shape {times.shape}.")
    if np.any(np.isnan(times)) or np.any(times < 0):
        raise ValueError(f"t must be ≥ 0 (times in optimizer steps); got {t!r}.")
    return jnp.asarray(times)
