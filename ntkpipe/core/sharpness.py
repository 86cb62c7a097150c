"""Sharpness: the top eigenvalue λ_max of the empirical tangent kernel Θ̂_t during training.

With the MSE loss L = ½ · mean over all n·k entries of (f − y)², one gradient-descent step on
the network moves its training outputs by

    f_{i+1} − f_i ≈ −η/(n·k) · Θ̂_i (f_i − y),

where Θ̂_i = J_i J_iᵀ is the *full* tangent kernel [n·k, n·k] at θ_i (J = ∂f(X)/∂θ, outputs
flattened example-major). The linearized dynamics are stable while η·λ_max(Θ̂)/(n·k) < 2, i.e.
η < 2·n·k/λ_max: the line that sharpness is compared with (Lewkowycz et al. 2020, "The large
learning rate phase of deep learning: the catapult mechanism", in this normalization; the
run's η_crit = 2·n·k/(λ_min + λ_max) of :func:`ntkpipe.core.dynamics.lr_critical` lies between
n·k/λ_max and 2·n·k/λ_max and equals the latter when λ_min ≪ λ_max).

λ_max is found by power iteration on kernel-vector products,

    Θ̂ v = J (Jᵀ v):   Jᵀ v by one reverse pass (``jax.vjp``), J u by one forward pass (``jax.jvp``),

so Θ̂ [n·k, n·k] and J [n·k, P] are never formed: each iteration costs about one gradient step
on the full training set. Θ̂ is positive semi-definite, so the iteration converges to λ_max from
any start that is not orthogonal to its top eigenvector, at the rate λ₂/λ_max per iteration.
It stops when the residual ‖Θ̂v − ρv‖ ≤ tol · ρ (ρ = vᵀΘ̂v, ‖v‖ = 1); the eigenvalue is then
exact to ≈ tol²·ρ²/(λ_max − λ₂). Started from the previous record's eigenvector (warm start),
a few iterations suffice while the kernel changes slowly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_TOLERANCE",
    "SharpnessOptions",
    "initial_vector",
    "ntk_vector_product",
    "top_eigenvalue",
]

ApplyFn = Callable[[Any, jax.Array], jax.Array]

DEFAULT_TOLERANCE = 1e-2
"""Relative residual at which the power iteration stops: λ_max then carries a relative error of
about tol² · λ_max/(λ_max − λ₂): 0.2% measured on a 3 × 512 ReLU net with 10 outputs whose top
eigenvalues lie 4% apart (λ₂/λ_max = 0.957), far below what the regime criterion and the
2·n·k/η line need. Warm-started records then take 1–14 products there (tol 1e-3: 15–56)."""

DEFAULT_MAX_ITERATIONS = 200
"""Iterations at most per record (the cold start of the net above needs 58 at tol 1e-2, 108 at
1e-3; warm starts a few)."""


class SharpnessOptions(NamedTuple):
    """How :func:`top_eigenvalue` iterates (hashable: part of a compiled program's key)."""

    tolerance: float = DEFAULT_TOLERANCE
    max_iterations: int = DEFAULT_MAX_ITERATIONS


DEFAULT_OPTIONS = SharpnessOptions()


def ntk_vector_product(apply_fn: ApplyFn, params: Any, x: jax.Array, v: jax.Array) -> jax.Array:
    """Θ̂(X, X) v = J (Jᵀ v) with the full kernel, without forming it.

    Args:
        apply_fn: f(θ, x) → [n, k].
        params: θ.
        x: inputs [n, ...].
        v: [n, k].

    Returns:
        [n, k]: (Θ̂ v)_{a,j} = Σ_{b,l} Θ̂_{jl}(x_a, x_b) v_{b,l}.
    """
    _, vjp = jax.vjp(lambda p: apply_fn(p, x), params)
    (jt_v,) = vjp(v.astype(jnp.result_type(*jax.tree.leaves(params))))
    return jax.jvp(lambda p: apply_fn(p, x), (params,), (jt_v,))[1]


def initial_vector(n: int, k: int, dtype=jnp.float32) -> jax.Array:
    """A cold start [n, k]: the normalized constant vector plus a fixed alternating component.

    The constant vector is close to the top eigenvector of Θ̂ for networks with a bias or a
    non-centred activation (ReLU), and the alternating part keeps the start off any eigenvector
    orthogonal to it.
    """
    index = jnp.arange(n * k, dtype=dtype).reshape(n, k)
    v = 1.0 + 0.1 * jnp.cos(index * 2.399963)  # golden angle: no symmetric pattern
    return v / jnp.linalg.norm(v)


def top_eigenvalue(
    apply_fn: ApplyFn,
    params: Any,
    x: jax.Array,
    v0: jax.Array,
    options: SharpnessOptions = DEFAULT_OPTIONS,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """λ_max(Θ̂(X, X)) of the full kernel by power iteration (module docstring). Jittable.

    Args:
        apply_fn: f(θ, x) → [n, k].
        params: θ.
        x: inputs [n, ...].
        v0: start vector [n, k] (:func:`initial_vector`, or the last call's eigenvector).
        options: tolerance and iteration cap.

    Returns:
        (λ_max scalar, its unit eigenvector [n, k], the number of products after the first one
        (int)). λ_max is NaN when Θ̂ v is not finite (a diverged θ).
    """

    def product(v):
        return ntk_vector_product(apply_fn, params, x, v)

    def rayleigh(v):
        w = product(v)
        rho = jnp.vdot(v, w)
        residual = jnp.linalg.norm(w - rho * v)
        return w, rho, residual

    def not_done(carry):
        i, _, _, rho, residual = carry
        converged = residual <= options.tolerance * jnp.abs(rho)
        return (i < options.max_iterations) & ~converged & jnp.isfinite(rho)

    def body(carry):
        i, _, w, _, _ = carry
        v = w / jnp.linalg.norm(w)
        w, rho, residual = rayleigh(v)
        return i + 1, v, w, rho, residual

    v = v0 / jnp.linalg.norm(v0)
    w, rho, residual = rayleigh(v)
    count, v, _, rho, _ = jax.lax.while_loop(not_done, body, (0, v, w, rho, residual))
    return rho, v, count
