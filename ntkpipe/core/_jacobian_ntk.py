"""The generic path of :mod:`ntkpipe.core.kernels`: any ``apply(params, x)`` (CNN, WRN, …).

Θ̂ tiles are contractions of per-example Jacobians J(x) = ∂f(x)/∂θ [B, k, *leaf_shape]:
Θ̂_jk(x, x') = Σ_leaves J_j(x) · J_k(x'); the NNGP kernel K̂ is the same Gram over the readout
layer's parameters only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ntkpipe.core.models import kernel_leaves


def generic_features(apply_fn, params, x):
    """Per-example Jacobians ∂f(x_i)/∂θ, leaves [B, k, *leaf_shape].

    Why Jacobian contraction rather than NTK-vector products: a tile costs B·k backward passes
    here (vmapped, one batched reverse pass per output) plus a B²·k²·P contraction, whereas
    NTK-vector products need B·k vjp + jvp passes *over the whole block* (B²·k single-example
    passes). For convolutional networks a forward pass costs far more than P multiply-adds
    (weights are shared over spatial positions), so contraction is much cheaper; the price, a
    B·k·P Jacobian per block, is bounded by choosing block_size.
    """

    def f_single(p, xi):
        return apply_fn(p, xi[None])[0]

    return jax.vmap(jax.jacrev(f_single), in_axes=(None, 0))(params, x)


def generic_jit(apply_fn, full: bool, cache: bool):
    """Jitted (features(params, x), whole(params, x1, x2)) for apply_fn, cached when hashable."""
    if cache:
        try:
            return _generic_jit_cached(apply_fn, full)
        except TypeError:  # unhashable apply_fn: compile for this call only
            pass
    return _generic_jit_uncached(apply_fn, full)


@functools.lru_cache(maxsize=32)
def _generic_jit_cached(apply_fn, full):
    return _generic_jit_uncached(apply_fn, full)


def _generic_jit_uncached(apply_fn, full):
    features = functools.partial(generic_features, apply_fn)

    def whole(params, x1, x2):
        ja = features(params, x1)
        return generic_gram(full, ja, ja if x2 is None else features(params, x2))

    return jax.jit(features), jax.jit(whole)


@functools.partial(jax.jit, static_argnums=0)
def generic_gram(full: bool, ja, jb):
    """Θ̂ tile from per-example Jacobians: Σ_leaves J_a J_bᵀ, traced or [Ba, Bb, k, k]."""
    leaves_a, leaves_b = jax.tree.leaves(ja), jax.tree.leaves(jb)
    batch_a, k = leaves_a[0].shape[:2]
    batch_b = leaves_b[0].shape[0]
    if full:
        theta = sum(
            jnp.dot(u.reshape(batch_a * k, -1), v.reshape(batch_b * k, -1).T)
            for u, v in zip(leaves_a, leaves_b, strict=True)
        )
        return theta.reshape(batch_a, k, batch_b, k).transpose(0, 2, 1, 3)
    theta = sum(
        jnp.dot(u.reshape(batch_a, -1), v.reshape(batch_b, -1).T)
        for u, v in zip(leaves_a, leaves_b, strict=True)
    )
    return theta / k


def readout_only(apply_fn, params):
    """apply restricted to the readout layer's parameters (the last of kernel_leaves)."""
    names = list(kernel_leaves(params))
    if not names:
        raise ValueError("empirical_nngp needs a Flax params pytree with a 'kernel' leaf.")
    path = names[-1].split("/")
    readout = functools.reduce(lambda tree, key: tree[key], path, params["params"])

    def apply_readout(p_readout, x):
        return apply_fn(_replace(params, ("params", *path), p_readout), x)

    return apply_readout, readout


def _replace(tree, path, value):
    if not path:
        return value
    return {**tree, path[0]: _replace(tree[path[0]], path[1:], value)}


def check_generic(apply_fn, params, x1):
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable as apply_fn(params, x); got {apply_fn!r}.")
    out = jax.eval_shape(apply_fn, params, x1[:1])
    if not hasattr(out, "ndim") or out.ndim != 2:
        raise ValueError(
            "apply_fn(params, x) must return one array [n, out]; got "
            f"{getattr(out, 'shape', out)} for x of shape {x1[:1].shape}."
        )
