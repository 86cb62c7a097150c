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

Where Θ̂ is small and cheap to form, λ_max is instead exact (:func:`exact_top_eigenvalue`):
the full kernel [n·k, n·k] from :mod:`ntkpipe.core.kernels` (the dense path of an MLP forms it
from one forward pass, the backpropagated signals and a Gram per layer, without a Jacobian),
then ``eigvalsh`` in float64 on the host. :func:`method` chooses (``SharpnessOptions.method``
``"auto"``): exact for an MLP with n·k ≤ :data:`EXACT_MAX_SIZE`, power iteration otherwise.
Measured on one core (the default sweep's largest run, width 1024, n = 128, k = 1): Θ̂ in
7.8 ms and its eigenvalues in 0.5 ms against 15 ms for one warm-started product, and no
program of its own to compile (the kernels of Θ̂₀ already compiled it in the same process)
against ≈ 0.7 s of CPU for the power iteration's, per run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.core import kernels as ntk_kernels
from ntkpipe.core._dense_ntk import dense_spec_of as _dense_spec_of
from ntkpipe.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_TOLERANCE",
    "EXACT_MAX_SIZE",
    "METHODS",
    "SharpnessOptions",
    "exact_top_eigenvalue",
    "initial_vector",
    "kernel_top_eigenvalue",
    "method",
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


EXACT_MAX_SIZE = 512
"""n·k up to which ``method="auto"`` forms Θ̂ of an MLP and takes its exact λ_max: the float64
``eigvalsh`` of a [512, 512] kernel takes ≈ 25 ms on one core, a few warm-started products of
a wide net; above it the kernel (n²k² entries, O((n·k)³) to diagonalize) outgrows them."""

METHODS = ("auto", "power", "exact")
"""How λ_max is found: the power iteration, the exact spectrum of the formed kernel, or
:func:`method`'s choice between them."""


class SharpnessOptions(NamedTuple):
    """How λ_max is found (hashable: part of a compiled program's key).

    ``tolerance`` and ``max_iterations`` are the power iteration's (:func:`top_eigenvalue`);
    ``method`` one of :data:`METHODS`; ``block_size`` the tiles in which the exact path forms
    Θ̂ (as ``kernels.block_size``: the same tiles, so the same compiled programs, as the run's
    kernels; None: one tile).
    """

    tolerance: float = DEFAULT_TOLERANCE
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    method: str = "auto"
    block_size: int | None = None


DEFAULT_OPTIONS = SharpnessOptions()


def method(apply_fn: ApplyFn, n: int, k: int, options: SharpnessOptions = DEFAULT_OPTIONS) -> str:
    """``"exact"`` or ``"power"``: the options' method, or for ``"auto"`` exact where Θ̂ of an
    MLP (the kernels' dense path) has n·k ≤ :data:`EXACT_MAX_SIZE`.

    Args:
        apply_fn: f(θ, x) → [n, k] (``net.apply`` of an MLP takes the dense path).
        n: training examples; k: outputs.
        options: the sharpness options.

    Raises:
        ConfigError: an unknown method.
    """
    if options.method not in METHODS:
        raise ConfigError(
            f"sharpness method: {options.method!r} is not one of {', '.join(METHODS)}"
        )
    if options.method != "auto":
        return options.method
    mlp = _dense_spec_of(apply_fn) is not None
    return "exact" if mlp and n * k <= EXACT_MAX_SIZE else "power"


def exact_top_eigenvalue(
    apply_fn: ApplyFn, params: Any, x: jax.Array, k: int, block_size: int | None = None
) -> float:
    """λ_max(Θ̂(X, X)) of the full kernel, formed (:mod:`ntkpipe.core.kernels`) and diagonalized.

    Args:
        apply_fn: f(θ, x) → [n, k].
        params: θ of one network (no seed axis).
        x: inputs [n, ...].
        k: outputs (k = 1: the traced kernel is the full one, and the kernels' own program).
        block_size: tiles of Θ̂ (None: one tile).

    Returns:
        λ_max (float), NaN when Θ̂ is not finite (a diverged θ).
    """
    if k == 1:
        kernel = ntk_kernels.empirical_ntk(apply_fn, params, x, block_size=block_size)
    else:
        kernel = ntk_kernels.empirical_ntk_full(apply_fn, params, x, block_size=block_size)
    return kernel_top_eigenvalue(kernel)


def kernel_top_eigenvalue(kernel) -> float:
    """λ_max of a formed kernel, in float64: [n, n] (k = 1), or full [n, n, k, k] taken as
    [n·k, n·k] (outputs example-major, as Θ̂ v); NaN when it is not finite."""
    matrix = np.asarray(kernel, dtype=np.float64)
    if matrix.ndim == 4:
        n, k = matrix.shape[0], matrix.shape[2]
        matrix = matrix.transpose(0, 2, 1, 3).reshape(n * k, n * k)
    if not np.isfinite(matrix).all():
        return float("nan")
    return float(np.linalg.eigvalsh(matrix)[-1])


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


def initial_vector(n: int, k: int, dtype=np.float32) -> np.ndarray:
    """A cold start [n, k]: the normalized constant vector plus a fixed alternating component.

    The constant vector is close to the top eigenvector of Θ̂ for networks with a bias or a
    non-centred activation (ReLU), and the alternating part keeps the start off any eigenvector
    orthogonal to it. A host array, computed in float64 and cast to ``dtype``: as jax.numpy
    operations it compiled nine small programs per (n, k), ≈ 0.26 s of a run's start.
    """
    index = np.arange(n * k, dtype=np.float64).reshape(n, k)
    v = 1.0 + 0.1 * np.cos(index * 2.399963)  # golden angle: no symmetric pattern
    return (v / np.linalg.norm(v)).astype(dtype)


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

    # One loop whose body holds the only product: (products so far, next v, ρ and residual of
    # the last v, the last v). A first product outside the loop, as the textbook writes it,
    # puts a second copy of the vjp and jvp into the program: ≈ 0.15 s more compilation a run
    # (benchmarks/README.md, "Sharpness"), for the same arithmetic.
    def not_done(carry):
        products, _, rho, residual, _ = carry
        converged = residual <= options.tolerance * jnp.abs(rho)
        iterate = (products <= options.max_iterations) & ~converged & jnp.isfinite(rho)
        return (products == 0) | iterate

    def body(carry):
        products, v, _, _, _ = carry
        w = product(v)
        rho = jnp.vdot(v, w)
        residual = jnp.linalg.norm(w - rho * v)
        return products + 1, w / jnp.linalg.norm(w), rho, residual, v

    v = v0 / jnp.linalg.norm(v0)
    zero = jnp.zeros((), v.dtype)
    start = (jnp.int32(0), v, zero, zero, v)
    products, _, rho, _, v = jax.lax.while_loop(not_done, body, start)
    return rho, v, products - 1
