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
* The **generic path** for any other ``apply(params, x)`` (CNN, WRN) contracts per-example
  Jacobians, see :func:`_generic_features`.

Both are blocked over x1 × x2 (``block_size``): features of one block of rows and one block of
columns are held at a time, so memory is O(block² + params) for the dense path (plus
O(block · out · params) for the per-example Jacobians of the generic path), never the whole
N × P Jacobian. With ``x2=None`` only the tiles on and above the diagonal are computed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ntkpipe.core.models import ACTIVATIONS, DenseSpec, Network, kernel_leaves

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
            (or the network itself) takes the fast dense path, anything else the generic path.
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


# ----------------------------------------------------------------------------- private helpers


def _empirical(apply_fn, params, x1, x2, block_size, kind):
    x1, x2 = _check_inputs(x1, x2, block_size)
    spec = _dense_spec_of(apply_fn)
    if spec is not None:
        x1, x2 = _check_dense(spec, params, x1, x2)
        # σ_w, σ_b and the parameterization enter as traced scales: no recompilation per value.
        static = ((spec.activation, spec.depth, spec.use_bias), kind, spec.out_dim)
        scales = _dense_scales(spec, params)
        features = lambda p, x: _dense_features(*static[:2], p, x, scales)
        gram = lambda fa, fb: _dense_gram(*static[1:], fa, fb, scales[-1] ** 2)
        whole = lambda p, xa, xb: _dense_kernel(*static, p, xa, xb, scales)
    else:
        apply_fn = apply_fn.apply if isinstance(apply_fn, Network) else apply_fn
        _check_generic(apply_fn, params, x1)
        if kind == "nngp":
            apply_fn, params = _readout_only(apply_fn, params)
        features, whole = _generic_jit(apply_fn, kind == "ntk_full", cache=kind != "nngp")
        gram = functools.partial(_generic_gram, kind == "ntk_full")
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


# --- dense path -------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 1))
def _dense_features(structure: tuple[str, int, bool], kind: str, params, x, scales):
    """Per-example factors of Θ̂ for an MLP: scaled layer inputs and backpropagated signals.

    Args:
        structure: (activation, depth L, use_bias).
        kind: "ntk", "ntk_full" or "nngp".
        params: the MLP's parameters.
        x: inputs [B, d_in].
        scales: [L + 2]: s_w,0 … s_w,L, then s_b (see :func:`_dense_scales`).

    Returns:
        (inputs, signals): inputs[l] = s_w,l · a_l(x) [B, n_l] for l = 0 … L; signals[l] for
        l = 0 … L−1 is δ_l [B, k, n_{l+1}] (kind "ntk_full") or δ_l flattened to [B, k·n_{l+1}]
        and divided by √k (kind "ntk"; the last one compressed to [B, n_L]); empty for "nngp".
    """
    activation, depth, use_bias = structure
    layers = [params["params"][f"dense_{i}"] for i in range(depth + 1)]
    dtype = layers[0]["kernel"].dtype
    scales = scales.astype(dtype)
    weights = [layer["kernel"] * scales[i] for i, layer in enumerate(layers)]
    phi = ACTIVATIONS[activation]
    a, inputs, slopes = x.astype(dtype), [], []
    for i in range(depth):
        inputs.append(a * scales[i])
        h = jnp.dot(a, weights[i])
        if use_bias:
            h = h + layers[i]["bias"] * scales[-1]
        a, slope = jax.jvp(phi, (h,), (jnp.ones_like(h),))  # φ(h), φ'(h) (elementwise φ)
        slopes.append(slope)
    inputs.append(a * scales[depth])
    if kind == "nngp" or depth == 0:
        return inputs, []
    return inputs, _dense_signals(kind, weights, slopes)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _dense_kernel(structure, kind: str, k: int, params, x1, x2, scales):
    """The whole kernel in one tile (x2 None: x2 = x1, features computed once)."""
    fa = _dense_features(structure, kind, params, x1, scales)
    fb = fa if x2 is None else _dense_features(structure, kind, params, x2, scales)
    return _dense_gram(kind, k, fa, fb, scales[-1] ** 2)


def _dense_signals(kind, weights, slopes):
    """δ_l = φ'(h_l) ⊙ (δ_{l+1} W_{l+1}ᵀ), all k outputs at once as [B, k, n] (δ_L = I_k)."""
    depth = len(slopes)
    readout = weights[-1]  # [n_L, k]
    k = readout.shape[1]
    delta = slopes[-1][:, None, :] * readout.T[None, :, :]  # δ_{L−1}: [B, k, n_L]
    signals = [delta]
    for i in range(depth - 2, -1, -1):
        delta = jnp.einsum("bkm,nm->bkn", delta, weights[i + 1]) * slopes[i][:, None, :]
        signals.append(delta)
    signals = signals[::-1]
    if kind == "ntk_full":
        return signals
    batch = slopes[0].shape[0]
    traced = [d.reshape(batch, -1) * jnp.asarray(1 / math.sqrt(k), d.dtype) for d in signals[:-1]]
    # Σ_j δ_{L−1}^j(x)·δ_{L−1}^j(x') / k = Σ_i φ'_i(x) φ'_i(x') Σ_j W_L[i, j]² / k.
    row_norm = jnp.sqrt(jnp.sum(readout**2, axis=1) / k)
    return [*traced, slopes[-1] * row_norm]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _dense_gram(kind: str, k: int, fa, fb, bias2):
    """Θ̂ tile = Σ_l (Gram of inputs + s_b²) ⊙ Gram of signals (readout: signals Gram = I)."""
    (ins_a, sig_a), (ins_b, sig_b) = fa, fb
    grams = [jnp.dot(u, v.T) + bias2 for u, v in zip(ins_a, ins_b, strict=True)]
    if kind == "nngp":
        return grams[-1]
    if kind == "ntk":
        theta = grams[-1]
        for g, u, v in zip(grams[:-1], sig_a, sig_b, strict=True):
            theta = theta + g * jnp.dot(u, v.T)
        return theta
    theta = grams[-1][:, :, None, None] * jnp.eye(k, dtype=grams[-1].dtype)
    for g, u, v in zip(grams[:-1], sig_a, sig_b, strict=True):
        theta = theta + g[:, :, None, None] * jnp.einsum("ajn,bkn->abjk", u, v)
    return theta


def _dense_scales(spec: DenseSpec, params) -> jax.Array:
    """[s_w,0 … s_w,L, s_b]: W_l = s_w,l · kernel_l, b_l = s_b · bias_l (NTK or standard)."""
    fan_ins = [jnp.shape(params["params"][name]["kernel"])[0] for name in spec.layer_names]
    return jnp.asarray([*(spec.weight_scale(n) for n in fan_ins), spec.bias_scale])


def _dense_spec_of(apply_fn) -> DenseSpec | None:
    net = apply_fn if isinstance(apply_fn, Network) else getattr(apply_fn, "__self__", None)
    return net.dense_spec if isinstance(net, Network) else None


def _check_dense(spec: DenseSpec, params, x1, x2):
    layers = params.get("params", {}) if isinstance(params, dict) else {}
    missing = [name for name in spec.layer_names if name not in layers]
    if missing:
        raise ValueError(
            f"params do not match the MLP (depth={spec.depth}): layers {missing} are missing; "
            "pass the pytree returned by net.init."
        )
    d_in = jnp.shape(layers["dense_0"]["kernel"])[0]
    for name, x in (("x1", x1), ("x2", x2)):
        if x is not None and (x.ndim != 2 or x.shape[1] != d_in):
            raise ValueError(f"{name} must have shape [n, {d_in}] for this MLP; got {x.shape}.")
    out_shape = jnp.shape(layers[spec.layer_names[-1]]["kernel"])
    if out_shape[-1] != spec.out_dim:
        raise ValueError(f"readout kernel has shape {out_shape}; expected [., {spec.out_dim}].")
    return x1, x2


# --- generic path -----------------------------------------------------------------------------


def _generic_features(apply_fn, params, x):
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


def _generic_jit(apply_fn, full: bool, cache: bool):
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
    features = functools.partial(_generic_features, apply_fn)

    def whole(params, x1, x2):
        ja = features(params, x1)
        return _generic_gram(full, ja, ja if x2 is None else features(params, x2))

    return jax.jit(features), jax.jit(whole)


@functools.partial(jax.jit, static_argnums=0)
def _generic_gram(full: bool, ja, jb):
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


def _readout_only(apply_fn, params):
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


def _check_generic(apply_fn, params, x1):
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable as apply_fn(params, x); got {apply_fn!r}.")
    out = jax.eval_shape(apply_fn, params, x1[:1])
    if not hasattr(out, "ndim") or out.ndim != 2:
        raise ValueError(
            "apply_fn(params, x) must return one array [n, out]; got "
            f"{getattr(out, 'shape', out)} for x of shape {x1[:1].shape}."
        )


# --- inputs -----------------------------------------------------------------------------------


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
