"""Closed-form gradient-descent dynamics of the linearized network on MSE (paper §2.2, Eq. 8–11).

Loss and time conventions (those of neural-tangents' ``predict.gradient_descent_mse``): the loss
is L = ½ · mean over the n·k entries of (f − y)², so one gradient step on the linearized network
moves the training outputs by −η/(n·k) · Θ̂ (f − y). With Θ̂ = V Λ Vᵀ and c = η/(n·k):

    continuous (gradient flow, t in optimizer steps, i.e. the absolute flow time is η·t):
        f_t(X) = Y + V e^{−cΛt} Vᵀ (f_0(X) − Y)
    discrete (plain gradient descent, t = integer step i):
        f_i(X) = Y + V (1 − cΛ)^i Vᵀ (f_0(X) − Y)

and on other inputs (Eq. 10–11, μ_t + γ_t)

        f_t(x) = f_0(x) − Θ̂(x, X) V G_t Vᵀ (f_0(X) − Y),   G_t = (I − e^{−cΛt}) Λ⁻¹
                                                            (discrete: (I − (1 − cΛ)^i) Λ⁻¹).

G_t is evaluated mode by mode without dividing by a small λ: (1 − e^{−cλt})/λ = c·t·(1 − e^{−z})/z
with z = cλt (→ c·t as λ → 0); the discrete factor is −expm1(i·log1p(−cλ))/λ (→ c·i). The
discrete form is exactly gradient descent on f_lin, step by step.

Kernels are either traced, Θ̂ [n, n] (the Θ̂ ⊗ I convention: every output column evolves with the
same kernel), or full, Θ̂ [n, n, k, k] (outputs coupled; the n·k × n·k matrix is decomposed).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.core._mode_factors import flow_factors

__all__ = ["flow_factors", "gradient_descent_mse", "lr_critical", "weights_mse"]


PredictFn = Callable[..., tuple[jax.Array, jax.Array | None]]


def gradient_descent_mse(
    ntk_train_train: jax.Array,
    y_train: jax.Array,
    learning_rate: float,
    *,
    discrete: bool = False,
) -> PredictFn:
    """Factory of the closed-form outputs of the linearized network trained on MSE (Eq. 9–11).

    The eigendecomposition of Θ̂ is done here, once; the returned function evaluates any array
    of times.

    Args:
        ntk_train_train: Θ̂(X, X), traced [n, n] or full [n, n, k, k].
        y_train: targets Y [n, k].
        learning_rate: η > 0.
        discrete: False: gradient flow, t real ≥ 0 in optimizer steps (absolute time η·t, the
            convention of neural-tangents); True: gradient descent, t integer steps ≥ 0.

    Returns:
        ``predict(t, fx_train_0, fx_test_0=None, ntk_test_train=None)
        -> (fx_train_t, fx_test_t)``:

        - t: a scalar, an array of times (any shape, typically [n_t]), or None for t → ∞
          (then f(X) → Y on the range of Θ̂; modes with λ ≤ n·ε·λ_max keep their initial value).
        - fx_train_0: f_0(X) [n, k].
        - fx_test_0: f_0(X_T) [n_test, k], or None (then fx_test_t is None).
        - ntk_test_train: Θ̂(X_T, X), [n_test, n] (traced) or [n_test, n, k, k] (full, like
          ntk_train_train); required with fx_test_0.
        - fx_train_t [*t.shape, n, k], fx_test_t [*t.shape, n_test, k] (like neural-tangents, a
          scalar t or None gives no time axis).

    Raises:
        ValueError: on shapes that do not match, η ≤ 0, negative or (discrete) non-integer
            times, before any computation.
    """
    _check_learning_rate(learning_rate)
    eig = _decompose(ntk_train_train, y_train, learning_rate)

    def predict(t, fx_train_0, fx_test_0=None, ntk_test_train=None):
        times = _check_times(t, discrete)
        f0, g0, k_st = _check_predict_inputs(eig, fx_train_0, fx_test_0, ntk_test_train)
        if discrete and t is None:  # i → ∞ needs |1 − cλ| < 1 on every mode
            lr_limit = _discrete_limit_lr(eig)
            if learning_rate >= lr_limit:
                raise ValueError(
                    f"t=None (t → ∞) with discrete=True needs learning_rate < 2·n·k/λ_max = "
                    f"{lr_limit:.6g}; got {learning_rate!r}: gradient descent does not converge."
                )
        shape = () if times is None else times.shape
        flat = jnp.full((1,), jnp.inf) if times is None else times.reshape(-1)
        fx_train_t, fx_test_t = _predict(
            eig, flat.astype(eig.evals.dtype), f0, g0, k_st, discrete and t is not None
        )
        fx_train_t = fx_train_t.reshape(shape + fx_train_t.shape[1:])
        if fx_test_t is not None:
            fx_test_t = fx_test_t.reshape(shape + fx_test_t.shape[1:])
        return fx_train_t, fx_test_t

    return predict


def lr_critical(ntk_train_train: jax.Array, n_out: int) -> jax.Array:
    """η_crit = 2·n·k / (λ_min + λ_max) of Θ̂ (Theorem 2.1 in the ½·mean loss normalization).

    Gradient descent on the linearized network contracts every mode at the same worst rate
    (λ_max − λ_min)/(λ_max + λ_min) at η_crit; it diverges only above 2·n·k/λ_max ≥ η_crit
    (the two agree when λ_min ≪ λ_max).

    Pass the kernel the dynamics evolve. With k > 1 outputs the finite network's f_lin couples
    its outputs and evolves with the full kernel; the traced Θ̄ = (1/k) Σ_j Θ̂_jj is the mean of
    its diagonal blocks, so λ_max(Θ̄) ≤ max_j λ_max(Θ̂_jj) ≤ λ_max(full) ≤ Σ_j λ_max(Θ̂_jj):
    the traced kernel's 2·n·k/λ_max is an upper bound of the true divergence threshold, too
    high by up to a factor k.

    Args:
        ntk_train_train: Θ̂(X, X), traced [n, n] or full [n, n, k, k].
        n_out: number of outputs k ≥ 1 (the last axis of f; must match a full kernel).

    Returns:
        η_crit, a scalar array. Negative rounding-level eigenvalues count as 0.
    """
    if isinstance(n_out, bool) or not isinstance(n_out, int | np.integer) or n_out < 1:
        raise ValueError(f"n_out must be an integer ≥ 1 (number of outputs k); got {n_out!r}.")
    matrix, n, k = _as_matrix("ntk_train_train", ntk_train_train)
    if k is not None and k != n_out:
        raise ValueError(
            f"n_out={n_out} does not match the full kernel's output axes of size {k} "
            f"(ntk_train_train has shape {tuple(jnp.shape(ntk_train_train))})."
        )
    evals = jnp.linalg.eigvalsh(matrix)  # symmetrizes its input
    return 2 * n * n_out / (jnp.maximum(evals[0], 0.0) + evals[-1])


def weights_mse(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params0: Any,
    x_train: jax.Array,
    ntk_train_train: jax.Array,
    y_train: jax.Array,
    learning_rate: float,
    *,
    discrete: bool = False,
) -> Callable[[Any], Any]:
    """Factory of the weight change ω_t = θ_t − θ_0 of the linearized network (Eq. 8).

    ω_t = −∇_θ f_0(X)ᵀ Θ̂⁻¹ (I − e^{−cΘ̂t}) (f_0(X) − Y)  (discrete: (I − (1 − cΘ̂)^i)),

    i.e. ω_t = J_0ᵀ a_t with the coefficients a_t = −V G_t Vᵀ (f_0(X) − Y) [n, k]. J_0ᵀ a_t is one
    vector–Jacobian product of f_0 at θ_0 (``jax.vjp`` is linearized once, here; the Jacobian is
    never stored). Θ̂ must be the NTK of ``apply_fn`` at ``params0`` on ``x_train`` (full, or traced
    when k = 1 or the full kernel is Θ̂ ⊗ I); then f_lin(θ_0 + ω_t) equals
    :func:`gradient_descent_mse`'s fx_train_t, and in discrete mode θ_0 + ω_i are exactly the
    gradient-descent iterates of f_lin.

    Args:
        apply_fn: f(params, x) -> [n, k].
        params0: θ_0 (any pytree).
        x_train: X [n, ...].
        ntk_train_train: Θ̂_0(X, X), traced [n, n] or full [n, n, k, k].
        y_train: Y [n, k].
        learning_rate: η > 0.
        discrete: as in :func:`gradient_descent_mse`.

    Returns:
        ``omega(t)``: ω_t, a pytree like params0 (add it to params0 for θ_t); a scalar t gives
        the tree itself, an array t [n_t] a tree whose leaves have a leading n_t axis; t=None
        is t → ∞. The coefficients a_t are computed in the dtype of Θ̂ and Y promoted (float64
        under x64, as in :func:`gradient_descent_mse`), then cast to the dtype of f_0(X) for the
        vector–Jacobian product, so every leaf of ω_t has the dtype of its leaf in params0:
        float32 params with float64 kernels or targets give a float32 ω_t, never a float64 one.
    """
    _check_learning_rate(learning_rate)
    eig = _decompose(ntk_train_train, y_train, learning_rate)
    fx_train_0, vjp_fn = jax.vjp(lambda p: apply_fn(p, x_train), params0)
    if fx_train_0.shape != (eig.n, eig.k):
        raise ValueError(
            f"apply_fn(params0, x_train) has shape {fx_train_0.shape}; expected [n, k] = "
            f"{[eig.n, eig.k]} from y_train."
        )
    modes0 = _to_modes(eig, fx_train_0 - eig.y)

    def omega(t):
        times = _check_times(t, discrete)
        flat = jnp.full((1,), jnp.inf) if times is None else times.reshape(-1)
        coeffs = _coefficients(
            eig, modes0, flat.astype(eig.evals.dtype), discrete and t is not None
        ).astype(fx_train_0.dtype)  # the cotangent of f_0(X): vjp needs the primal output's dtype
        if times is None or times.ndim == 0:
            return _apply_vjp(vjp_fn, coeffs[0])
        trees = jax.vmap(lambda c: _apply_vjp(vjp_fn, c))(coeffs)
        return jax.tree.map(lambda leaf: leaf.reshape(times.shape + leaf.shape[1:]), trees)

    return omega


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["evals", "evecs", "y", "rate"],
    meta_fields=["n", "k", "full"],
)
@dataclasses.dataclass(frozen=True)
class _Eigen:
    """Θ̂ = V Λ Vᵀ with the problem sizes; full kernels are flattened to [n·k, n·k]."""

    evals: jax.Array  # [m], m = n (traced) or n·k (full)
    evecs: jax.Array  # [m, m]
    y: jax.Array  # [n, k]
    rate: jax.Array  # c = η/(n·k), a scalar
    n: int
    k: int
    full: bool


def _decompose(ntk_train_train, y_train, learning_rate) -> _Eigen:
    y = jnp.asarray(y_train)
    if y.ndim != 2 or y.shape[0] < 1 or y.shape[1] < 1:
        raise ValueError(f"y_train must have shape [n, k]; got {y.shape} (reshape to [n, 1]).")
    matrix, n, k_full = _as_matrix("ntk_train_train", ntk_train_train)
    if n != y.shape[0] or (k_full is not None and k_full != y.shape[1]):
        expected = f"[{y.shape[0]}, {y.shape[0]}] or [{y.shape[0]}, {y.shape[0]}, {y.shape[1]}, "
        raise ValueError(
            f"ntk_train_train has shape {tuple(jnp.shape(ntk_train_train))}; expected "
            f"{expected}{y.shape[1]}] for y_train of shape {y.shape}."
        )
    dtype = jnp.result_type(matrix.dtype, y.dtype, float)
    evals, evecs = jnp.linalg.eigh(matrix.astype(dtype))  # symmetrizes its input: (A + Aᵀ)/2
    n, k = y.shape
    rate = jnp.asarray(learning_rate / (n * k), dtype)
    return _Eigen(evals, evecs, y.astype(dtype), rate, n, k, full=k_full is not None)


def _as_matrix(name, kernel):
    """A traced [n, n] kernel as is, a full [n, n, k, k] one as [n·k, n·k]; and n, k (or None)."""
    kernel = jnp.asarray(kernel)
    if kernel.ndim == 2 and kernel.shape[0] == kernel.shape[1] and kernel.shape[0] >= 1:
        return kernel, kernel.shape[0], None
    if (
        kernel.ndim == 4
        and kernel.shape[0] == kernel.shape[1] >= 1
        and kernel.shape[2] == kernel.shape[3] >= 1
    ):
        n, _, k, _ = kernel.shape
        return kernel.transpose(0, 2, 1, 3).reshape(n * k, n * k), n, k
    raise ValueError(
        f"{name} must be a traced kernel [n, n] or a full kernel [n, n, k, k]; "
        f"got shape {kernel.shape}."
    )


def _check_predict_inputs(eig: _Eigen, fx_train_0, fx_test_0, ntk_test_train):
    f0 = _outputs("fx_train_0", fx_train_0, eig.n, eig.k, eig.y.dtype)
    if (fx_test_0 is None) != (ntk_test_train is None):
        raise ValueError(
            "fx_test_0 and ntk_test_train go together: pass both for test predictions "
            "(zeros for fx_test_0 if f_0 = 0), or neither."
        )
    if fx_test_0 is None:
        return f0, None, None
    k_st = jnp.asarray(ntk_test_train)
    n_test = k_st.shape[0] if k_st.ndim >= 1 else -1
    expected = (n_test, eig.n, eig.k, eig.k) if eig.full else (n_test, eig.n)
    if k_st.shape != expected or n_test < 1:
        kind = "[n_test, n, k, k] (full, like ntk_train_train)" if eig.full else "[n_test, n]"
        raise ValueError(
            f"ntk_test_train must have shape {kind} with n={eig.n}, k={eig.k}; got {k_st.shape}."
        )
    g0 = _outputs("fx_test_0", fx_test_0, n_test, eig.k, eig.y.dtype)
    if eig.full:
        k_st = k_st.transpose(0, 2, 1, 3).reshape(n_test * eig.k, eig.n * eig.k)
    return f0, g0, k_st.astype(eig.y.dtype)


def _outputs(name, f, n, k, dtype):
    f = jnp.asarray(f, dtype=dtype)
    if f.ndim == 0:  # a constant, e.g. 0 for the mean over initializations
        return jnp.full((n, k), f, dtype)
    if f.shape != (n, k):
        raise ValueError(f"{name} must have shape [{n}, {k}]; got {f.shape}.")
    return f


@functools.partial(jax.jit, static_argnums=5)
def _predict(eig: _Eigen, times, f0, g0, k_st, discrete):
    """fx_train_t [n_t, n, k] and fx_test_t [n_t, n_test, k] (or None)."""
    modes0 = _to_modes(eig, f0 - eig.y)  # Vᵀ (f_0 − Y)   [m, cols]
    decay, integral = flow_factors(eig.evals, times, eig.rate, discrete=discrete)
    fx_train_t = eig.y + _from_modes(eig, decay[:, :, None] * modes0)
    if g0 is None:
        return fx_train_t, None
    proj = k_st @ eig.evecs  # Θ̂(X_T, X) V   [n_test (·k), m]
    change = jnp.einsum("sm,tm,mc->tsc", proj, integral, modes0)
    return fx_train_t, g0 - change.reshape(change.shape[0], g0.shape[0], eig.k)


@functools.partial(jax.jit, static_argnums=3)
def _coefficients(eig: _Eigen, modes0, times, discrete):
    """a_t = −V G_t Vᵀ (f_0 − Y) [n_t, n, k] (the cotangents of Eq. 8)."""
    _, integral = flow_factors(eig.evals, times, eig.rate, discrete=discrete)
    return -_from_modes(eig, integral[:, :, None] * modes0)


@jax.jit
def _apply_vjp(vjp_fn, cotangent):
    return vjp_fn(cotangent)[0]


def _to_modes(eig: _Eigen, residual):
    """Vᵀ r: [n, k] → [n, k] (traced, per column) or [n·k, 1] (full)."""
    flat = residual.reshape(-1, 1) if eig.full else residual
    return eig.evecs.T @ flat


def _from_modes(eig: _Eigen, modes_t):
    """V m_t: [n_t, m, cols] → [n_t, n, k]."""
    out = jnp.einsum("im,tmc->tic", eig.evecs, modes_t)
    return out.reshape(out.shape[0], eig.n, eig.k)


def _discrete_limit_lr(eig: _Eigen) -> float:
    lam_max = float(jnp.max(eig.evals))
    return math.inf if lam_max <= 0 else 2 * eig.n * eig.k / lam_max


def _check_learning_rate(learning_rate):
    ok = isinstance(learning_rate, int | float | np.floating | np.integer) and not isinstance(
        learning_rate, bool
    )
    if not ok or not learning_rate > 0 or not math.isfinite(learning_rate):
        raise ValueError(f"learning_rate must be a finite number > 0; got {learning_rate!r}.")


def _check_times(t, discrete):
    """None (t → ∞) or an array of times ≥ 0; checked when concrete (skipped under a trace)."""
    if t is None:
        return None
    if isinstance(t, jax.core.Tracer):
        return jnp.asarray(t)
    values = np.asarray(t)
    if not (np.issubdtype(values.dtype, np.number) and not np.iscomplexobj(values)):
        raise ValueError(f"t must be real times (optimizer steps); got {t!r}.")
    if np.any(np.isnan(values)) or np.any(values < 0):
        raise ValueError(f"t must be ≥ 0 (times in optimizer steps); got {t!r}.")
    if discrete and not (np.all(np.isfinite(values)) and np.all(values == np.round(values))):
        raise ValueError(
            f"with discrete=True, t must be integer step counts i ≥ 0 (t=None for i → ∞); "
            f"got {t!r}."
        )
    return jnp.asarray(values, dtype=float)
