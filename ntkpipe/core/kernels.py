"""Empirical tangent kernels Θ̂ and NNGP kernels K̂ of finite networks (paper Eq. 4, §2.3.1).

Θ̂(x, x') = J(x) J(x')ᵀ with J = ∂f/∂θ, per output pair [k, k]; the traced kernel is the mean
over the output axis (the Θ ⊗ I convention of neural-tangents). Two paths compute it:

* The **dense path** for :func:`ntkpipe.core.models.mlp` networks never forms per-example Jacobians.
  With layer inputs a_l (a_0 = x), pre-activations h_l = s_w a_l ω_l + s_b β_l, and
  backpropagated signals δ_l^j(x) = ∂f_j/∂h_l (δ_L^j = e_j at the readout),

      Θ̂_jk(x, x') = Σ_{l=0}^{L} (s_w,l² a_l(x)·a_l(x') + s_b²) · δ_l^j(x)·δ_l^k(x'),

  i.e. each layer contributes the Gram of its inputs times the Gram of its signals. One forward
  pass gives every a_l and φ'(h_l); the k signals of each layer are propagated together as one
  [n·k, width] matrix, so k outputs cost one matrix product per layer, not k backward passes.
  For the traced kernel the layer below the readout needs only √(Σ_j W_L[:, j]²/k) ⊙ φ'(h_{L−1}).
* The **conv path** for :func:`ntkpipe.core.models.cnn` and :func:`ntkpipe.core.models.wrn`
  (``net`` or ``net.apply``, without batch norm) builds the per-example Jacobians from the layer
  structure, ∂f_j/∂ω_l = s_w Σ_p patch_p(a_l) ⊗ δ_l^j[p], with the signals of all k outputs
  from one vmapped reverse pass; see :mod:`ntkpipe.core._conv_ntk`.
* The **generic path** for any other ``apply(params, x)`` (and for the NNGP kernel of conv
  nets) contracts per-example jacrev Jacobians, see
  :func:`ntkpipe.core._jacobian_ntk.generic_features`.

All are blocked over x1 × x2 (``block_size``): features of one block of rows and one block of
columns are held at a time, so memory is O(block² + params) for the dense path (plus
O(block · out · params) for the per-example Jacobians of the conv and generic paths), never
the whole N × P Jacobian. With ``x2=None`` only the tiles on and above the diagonal are computed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ntkpipe.core._conv_ntk import conv_features, conv_gram, conv_kernel, conv_module_of
from ntkpipe.core._dense_ntk import (
    check_dense,
    dense_features,
    dense_gram,
    dense_kernel,
    dense_scales,
    dense_spec_of,
)
from ntkpipe.core._jacobian_ntk import check_generic, generic_gram, generic_jit, readout_only
from ntkpipe.core._layers import Network

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def empirical_ntk(
    apply_fn: ApplyFn | Network,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    block_size: int | None = None,
) -> jax.Array:
    """Empirical NTK Θ̂(x1, x2) traced over outputs (mean over the output axis), Eq. 4.

    Args:
        apply_fn: ``f(params, x) -> [n, out]``; ``net.apply`` of an :func:`ntkpipe.core.models.mlp`
            (or the network itself) takes the fast dense path, of a ``cnn`` / ``wrn`` the conv
            path, anything else the generic path.
        params: parameters θ.
        x1: inputs [n1, ...].
        x2: inputs [n2, ...] with the same trailing shape; None means x2 = x1.
        block_size: compute the kernel in tiles of block_size × block_size examples (memory
            O(block_size² + params)); None computes it in one tile.

    Returns:
        Θ̂ [n1, n2] = (1/k) Σ_j Θ̂_jj.
    """
    return _empirical(apply_fn, params, x1, x2, block_size, kind="ntk")


def empirical_ntk_full(
    apply_fn: ApplyFn | Network,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    block_size: int | None = None,
) -> jax.Array:
    """Empirical NTK with its output axes, Θ̂_jk(x, x') = Σ_p ∂f_j(x)/∂θ_p ∂f_k(x')/∂θ_p.

    Args: as :func:`empirical_ntk`.

    Returns:
        Θ̂ [n1, n2, out, out].
    """
    return _empirical(apply_fn, params, x1, x2, block_size, kind="ntk_full")


def empirical_nngp(
    net: Network | ApplyFn,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    block_size: int | None = None,
) -> jax.Array:
    """Empirical NNGP kernel K̂: the tangent kernel of the readout layer alone (§2.3.1).

    In the NTK parameterization K̂(x, x') = σ_w²/n_L · φ(h_{L−1}(x))·φ(h_{L−1}(x')) + σ_b², which
    tends to the NNGP kernel K as the width grows. It is the Jacobian Gram over the readout
    layer's parameters only, traced over outputs (for a Dense readout it is the same for every
    output). In the standard parameterization this Gram has no σ_w²/n_L factor and grows with
    the width.

    Args:
        net: a :class:`~ntkpipe.models.Network` or ``net.apply``; for a non-MLP the readout layer
            is the last layer of :func:`ntkpipe.core.models.kernel_leaves` (with its bias).
        params: parameters θ.
        x1: inputs [n1, ...].
        x2: inputs [n2, ...]; None means x2 = x1.
        block_size: as in :func:`empirical_ntk`.

    Returns:
        K̂ [n1, n2].
    """
    return _empirical(net, params, x1, x2, block_size, kind="nngp")


def _empirical(apply_fn, params, x1, x2, block_size, kind):
    x1, x2 = _check_inputs(x1, x2, block_size)
    spec = dense_spec_of(apply_fn)
    conv = conv_module_of(apply_fn) if kind != "nngp" else None
    if spec is not None:
        x1, x2 = check_dense(spec, params, x1, x2)
        # σ_w, σ_b and the parameterization enter as traced scales: no recompilation per value.
        static = ((spec.activation, spec.depth, spec.use_bias), kind, spec.out_dim)
        scales = dense_scales(spec, params)
        features = lambda p, x: dense_features(*static[:2], p, x, scales)
        gram = lambda fa, fb: dense_gram(*static[1:], fa, fb, scales[1] ** 2)
        whole = lambda p, xa, xb: dense_kernel(*static, p, xa, xb, scales)
    elif conv is not None:
        check_generic(apply_fn.apply if isinstance(apply_fn, Network) else apply_fn, params, x1)
        features = functools.partial(conv_features, conv, kind)
        gram = functools.partial(conv_gram, kind)
        whole = functools.partial(conv_kernel, conv, kind)
    else:
        apply_fn = apply_fn.apply if isinstance(apply_fn, Network) else apply_fn
        check_generic(apply_fn, params, x1)
        if kind == "nngp":
            apply_fn, params = readout_only(apply_fn, params)
        features, whole = generic_jit(apply_fn, kind == "ntk_full", cache=kind != "nngp")
        gram = functools.partial(generic_gram, kind == "ntk_full")
    transpose = (lambda t: t.transpose(1, 0, 3, 2)) if kind == "ntk_full" else (lambda t: t.T)
    if block_size is None or (x1.shape[0] <= block_size and (x2 is None or len(x2) <= block_size)):
        return whole(params, x1, x2)
    return _tiled(features, gram, transpose, params, x1, x2, block_size)


def _tiled(features, gram, transpose, params, x1, x2, block_size):
    """Assembles the kernel from tiles; features(params, x_block) are computed once per block.

    x1 and x2 are zero-padded to a multiple of block_size, so that every tile has one shape
    (one compilation); the padding rows and columns are cut off at the end.
    """
    symmetric = x2 is None
    rows = _blocks(x1, block_size)
    cols = rows if symmetric else _blocks(x2, block_size)
    tiles: list[list[Any]] = [[None] * len(cols) for _ in rows]
    for i, xa in enumerate(rows):
        fa = features(params, xa)
        for j, xb in enumerate(cols):
            if symmetric and j < i:
                tiles[i][j] = transpose(tiles[j][i])
            else:
                tiles[i][j] = gram(fa, fa if symmetric and i == j else features(params, xb))
    n2 = x1.shape[0] if symmetric else x2.shape[0]
    kernel = jnp.concatenate([jnp.concatenate(row, axis=1) for row in tiles], axis=0)
    return kernel[: x1.shape[0], :n2]


def _blocks(x, block_size):
    """x [n, ...] zero-padded to a multiple of block_size and split into blocks of that size."""
    pad = -x.shape[0] % block_size
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    return jnp.split(x, x.shape[0] // block_size)


def _check_inputs(x1, x2, block_size):
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
    ):
        raise ValueError(f"block_size must be a positive integer or None; got {block_size!r}.")
    x1 = _as_batch("x1", x1)
    if x2 is None:
        return x1, None
    x2 = _as_batch("x2", x2)
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"x1 and x2 must have the same feature shape; got x1 {x1.shape} and x2 {x2.shape}."
        )
    return x1, x2


def _as_batch(name, x):
    x = jnp.asarray(x)
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must be a batch [n ≥ 1, ...] of inputs; got shape {x.shape}.")
    return x
