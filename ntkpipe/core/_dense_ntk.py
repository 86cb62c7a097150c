"""The dense fast path of :mod:`ntkpipe.core.kernels` for :func:`ntkpipe.core.models.mlp` networks.

With layer inputs a_l (a_0 = x), pre-activations h_l = s_w a_l ω_l + s_b β_l and backpropagated
signals δ_l^j(x) = ∂f_j/∂h_l (δ_L^j = e_j at the readout),

    Θ̂_jk(x, x') = Σ_{l=0}^{L} (s_w,l² a_l(x)·a_l(x') + s_b²) · δ_l^j(x)·δ_l^k(x'),

so a tile is a sum of (Gram of layer inputs) ⊙ (Gram of signals); no per-example Jacobian is
formed. Features are :func:`dense_features` of one block, tiles :func:`dense_gram`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from ntkpipe.core._layers import ACTIVATIONS, DenseSpec, Network


@functools.partial(jax.jit, static_argnums=(0, 1))
def dense_features(structure: tuple[str, int, bool], kind: str, params, x, scales):
    """Per-example factors of Θ̂ for an MLP: scaled layer inputs and backpropagated signals.

    Args:
        structure: (activation, depth L, use_bias).
        kind: "ntk", "ntk_full" or "nngp".
        params: the MLP's parameters.
        x: inputs [B, d_in].
        scales: [2, L + 1]: s_w,0 … s_w,L, then s_b,0 … s_b,L (see :func:`dense_scales`).

    Returns:
        (inputs, signals): inputs[l] = s_w,l · a_l(x) [B, n_l] for l = 0 … L; signals[l] for
        l = 0 … L−1 is δ_l [B, k, n_{l+1}] (kind "ntk_full") or δ_l flattened to [B, k·n_{l+1}]
        and divided by √k (kind "ntk"; the last one compressed to [B, n_L]); empty for "nngp".
    """
    activation, depth, use_bias = structure
    layers = [params["params"][f"dense_{i}"] for i in range(depth + 1)]
    dtype = layers[0]["kernel"].dtype
    scales = scales.astype(dtype)
    weights = [layer["kernel"] * scales[0, i] for i, layer in enumerate(layers)]
    phi = ACTIVATIONS[activation]
    a, inputs, slopes = x.astype(dtype), [], []
    for i in range(depth):
        inputs.append(a * scales[0, i])
        h = jnp.dot(a, weights[i])
        if use_bias:
            h = h + layers[i]["bias"] * scales[1, i]
        a, slope = jax.jvp(phi, (h,), (jnp.ones_like(h),))  # φ(h), φ'(h) (elementwise φ)
        slopes.append(slope)
    inputs.append(a * scales[0, depth])
    if kind == "nngp" or depth == 0:
        return inputs, []
    return inputs, _dense_signals(kind, weights, slopes)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def dense_kernel(structure, kind: str, k: int, params, x1, x2, scales):
    """The whole kernel in one tile (x2 None: x2 = x1, features computed once)."""
    fa = dense_features(structure, kind, params, x1, scales)
    fb = fa if x2 is None else dense_features(structure, kind, params, x2, scales)
    return dense_gram(kind, k, fa, fb, scales[1] ** 2)


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
def dense_gram(kind: str, k: int, fa, fb, bias2):
    """Θ̂ tile = Σ_l (Gram of inputs + s_b,l²) ⊙ Gram of signals (readout: signals Gram = I);
    bias2 [L + 1] holds the s_b,l² (zeros without bias)."""
    (ins_a, sig_a), (ins_b, sig_b) = fa, fb
    grams = [jnp.dot(u, v.T) + bias2[i] for i, (u, v) in enumerate(zip(ins_a, ins_b, strict=True))]
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


def dense_scales(spec: DenseSpec, params) -> jax.Array:
    """[[s_w,0 … s_w,L], [s_b,0 … s_b,L]]: W_l = s_w,l · kernel_l, b_l = s_b,l · bias_l
    (:meth:`DenseSpec.layer_scale`; s_b,l = 0 without bias)."""
    fan_ins = [jnp.shape(params["params"][name]["kernel"])[0] for name in spec.layer_names]
    scales = [spec.layer_scale(i, n) for i, n in enumerate(fan_ins)]
    bias = [s.s_b if spec.use_bias else 0.0 for s in scales]
    return jnp.asarray([[s.s_w for s in scales], bias])


def dense_spec_of(apply_fn) -> DenseSpec | None:
    net = apply_fn if isinstance(apply_fn, Network) else getattr(apply_fn, "__self__", None)
    return net.dense_spec if isinstance(net, Network) else None


def check_dense(spec: DenseSpec, params, x1, x2):
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
