"""The linearized network f_lin (paper Eq. 5).

    f_lin(θ, x) = f(θ₀, x) + ∇_θ f(θ₀, x) · (θ − θ₀)

is evaluated with one forward-mode Jacobian-vector product at θ₀ (``jax.jvp``), so the Jacobian
J₀ = ∇_θ f(θ₀, ·) [n, out, P] is never formed or stored: the cost is about that of two forward
passes of the network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def linearize(apply_fn: ApplyFn, params0: Any) -> ApplyFn:
    """First-order Taylor expansion of a network around θ₀ (Eq. 5).

    Args:
        apply_fn: the network f(params, x) -> [n, out], e.g. ``net.apply``.
        params0: the expansion point θ₀ (usually the initial parameters).

    Returns:
        ``f_lin(params, x) -> [n, out]`` = f(θ₀, x) + J₀(x) (params − θ₀), pure and jittable;
        ``params`` must have the tree structure of ``params0``. Exactly affine in ``params``:
        its derivative with respect to ``params`` is J₀ at every ``params``.
    """
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable as apply_fn(params, x); got {apply_fn!r}.")
    treedef0 = jax.tree.structure(params0)

    def f_lin(params: Any, x: jax.Array) -> jax.Array:
        treedef = jax.tree.structure(params)
        if treedef != treedef0:
            raise ValueError(
                "params must have the tree structure of params0 given to linearize; "
                f"got {treedef}, expected {treedef0}."
            )
        dparams = jax.tree.map(_difference, params, params0)
        f0, df = jax.jvp(lambda p: apply_fn(p, x), (params0,), (dparams,))
        return f0 + df

    return f_lin


def _difference(p: jax.Array, p0: jax.Array) -> jax.Array:
    """θ − θ₀ in the dtype of θ₀ (jvp needs tangents of the primal's dtype)."""
    p0 = jnp.asarray(p0)
    return (jnp.asarray(p) - p0).astype(p0.dtype)
