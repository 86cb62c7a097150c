"""The conv-net path of :mod:`ntkpipe.core.kernels` for :func:`~ntkpipe.core.models.cnn` and
:func:`~ntkpipe.core.models.wrn` (without batch norm).

Every layer l of these networks is a convolution or a dense layer,
h_l = s_w (a_l ∗ ω_l) + s_b β_l (s_w = σ_w/√n_in, s_b = σ_b in the NTK parameterization, both 1 in
the standard one), with input a_l [n, H, W, c_in], stride s, k_h × k_w filters, SAME padding (ā_l:
a_l zero-padded), output h_l [n, H', W', c_out]. With the backpropagated signals
δ_l^j(x) = ∂f_j(x)/∂h_l [H', W', c_out], the per-example Jacobians are

    ∂f_j/∂ω_l[u, v, c, d] = s_w Σ_{p ∈ H'×W'} ā_l[s·p + (u, v), c] · δ_l^j[p, d],
    ∂f_j/∂β_l[d]         = s_b Σ_p δ_l^j[p, d]                      (dense: p is one position),

and Θ̂_jk(x, x') = Σ_l ∂f_j(x)/∂θ_l · ∂f_k(x')/∂θ_l, the Grams of :func:`generic_gram`.
All signals of all layers for all k outputs come from ONE reverse pass: f is evaluated with a
zero perturbation ε_l added to every layer output h_l (recorded with a Flax interceptor, which
also records the inputs a_l), and the vjp with respect to ε is vmapped over the k cotangents
e_j (f(x_i) depends on x_i only, so one cotangent for the whole batch gives per-example signals).
The reverse pass is then made of XLA's ordinary batched convolutions over n·k images (no weight
gradients), and the Jacobians of a layer are k_h·k_w matrix products batched over examples,
[c_in, H'W'] × [H'W', k·c_out] — where ``vmap(jacrev(f))`` of the generic path computes the same
per-example weight gradients as grouped convolutions, which XLA's CPU backend runs slowly.

Traced kernel (kind "ntk"): a layer whose output is added directly into z, the input of the last
φ before global average pooling and the readout (CNN: the last convolution; WRN: the last
block's conv_1 and its shortcut), has δ_l^j[p, d] = φ'(z)[p, d] · s_w,L ω_L[d, j] / (H'W'), so
Σ_j ∂f_j(x)/∂θ_l · ∂f_j(x')/∂θ_l is the product of one compressed Jacobian per example,
computed from the signal δ̃_l[p, d] = φ'(z)[p, d] · s_w,L ‖ω_L[d, :]‖ / (H'W' √k) (×√k, as the
traced Gram divides by k): those layers cost one output instead of k.

Features of a block of B examples are the per-example Jacobian leaves [B, k, P_l] (compressed
ones [B, 1, P_l] · √k), so a tile needs O(B·k·P) memory, as the generic path.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ntkpipe.core import convnets
from ntkpipe.core._layers import Network


def conv_module_of(apply_fn) -> nn.Module | None:
    """The CNN / WRN module behind ``net`` or ``net.apply`` (not with batch norm), else None.

    One output (k = 1) takes the generic path: there a per-example Jacobian is one vmapped
    gradient, whose weight gradients XLA fuses into its reverse pass, and it measured as fast or
    faster than this path's separate products (benchmarks/bench_conv_ntk.py, WRN: 0.076 s
    against 0.094 s), whereas k outputs cost it k reverse passes and per-example grouped
    convolutions.
    """
    net = apply_fn if isinstance(apply_fn, Network) else getattr(apply_fn, "__self__", None)
    module = net.module if isinstance(net, Network) else None
    if isinstance(module, convnets.CNN | convnets.WRN) and module.out_dim > 1:
        return None if getattr(module, "batch_norm", False) else module
    return None


@functools.partial(jax.jit, static_argnums=(0, 1))
def conv_features(module: nn.Module, kind: str, params, x):
    """Per-example Jacobian leaves of a block x [B, ...]: a list of [B, k or 1, P_l] arrays."""
    out, vjp_fn, (inputs, layers) = _linearized(module, params, x)
    batch, k = out.shape
    cotangents = jnp.broadcast_to(jnp.eye(k, dtype=out.dtype)[:, None, :], (k, batch, k))
    (signals,) = jax.vmap(vjp_fn)(cotangents)  # {name: [k, B, H', W', c_out]}
    top = _top_layers(module) if kind == "ntk" else ()
    leaves = []
    for name, layer in layers.items():
        delta = jnp.moveaxis(signals[name], 0, 1)  # [B, k, ..., c_out]
        if name in top:
            delta = _compressed_signal(params, delta)
        leaves += _layer_jacobians(layer, params, inputs[name], delta)
    return leaves


@functools.partial(jax.jit, static_argnums=(0, 1))
def conv_kernel(module: nn.Module, kind: str, params, x1, x2):
    """The whole kernel in one tile; features of x1 and x2 in one pass over [x1; x2]."""
    if x2 is None:
        fa = conv_features(module, kind, params, x1)
        return conv_gram(kind, fa, fa)
    both = conv_features(module, kind, params, jnp.concatenate([x1, x2.astype(x1.dtype)]))
    n1 = x1.shape[0]
    return conv_gram(kind, [u[:n1] for u in both], [u[n1:] for u in both])


@functools.partial(jax.jit, static_argnums=0)
def conv_gram(kind: str, fa, fb):
    """Θ̂ tile Σ_l J_l(x)·J_l(x'): traced [Ba, Bb] (leaves [B, k or 1, P]) or [Ba, Bb, k, k]."""
    (batch_a, k), batch_b = fa[0].shape[:2], fb[0].shape[0]
    if kind == "ntk_full":
        theta = sum(
            jnp.dot(u.reshape(batch_a * k, -1), v.reshape(batch_b * k, -1).T)
            for u, v in zip(fa, fb, strict=True)
        )
        return theta.reshape(batch_a, k, batch_b, k).transpose(0, 2, 1, 3)
    pairs = zip(fa, fb, strict=True)
    theta = sum(jnp.dot(u.reshape(batch_a, -1), v.reshape(batch_b, -1).T) for u, v in pairs)
    return theta / max(u.shape[1] for u in fa)  # the readout's leaves are never compressed


def _linearized(module, params, x):
    """(f(x) [B, k], vjp of f in ε, (layer inputs, layer modules)) from one forward pass."""
    inputs, layers = {}, {}

    def record(next_fun, args, kwargs, context):
        return _layer_call(next_fun, args, kwargs, context, inputs, layers, None)

    with nn.intercept_methods(record):
        shapes = jax.eval_shape(lambda: module.apply(params, x))
    del shapes
    out_shapes = {name: out for name, out in inputs.items() if name.endswith("#out")}
    eps0 = {name[:-4]: jnp.zeros(s.shape, s.dtype) for name, s in out_shapes.items()}
    inputs.clear()

    def f(eps):
        def perturb(next_fun, args, kwargs, context):
            return _layer_call(next_fun, args, kwargs, context, inputs, layers, eps)

        with nn.intercept_methods(perturb):
            out = module.apply(params, x)
        return out, {name: a for name, a in inputs.items() if not name.endswith("#out")}

    out, vjp_fn, recorded = jax.vjp(f, eps0, has_aux=True)
    return out, vjp_fn, (recorded, dict(layers))


def _layer_call(next_fun, args, kwargs, context, inputs, layers, eps):
    """Interceptor body: records a layer's input (and output shape), adds ε to its output."""
    module = context.module
    if context.method_name != "__call__" or not isinstance(
        module, convnets.ScaledConv | convnets.ScaledDense
    ):
        return next_fun(*args, **kwargs)
    name = "/".join(module.path)
    out = next_fun(*args, **kwargs)
    if eps is None:
        inputs[name + "#out"] = out
        return out
    inputs[name], layers[name] = args[0], module
    return out + eps[name]


def _layer_jacobians(layer, params, a, delta):
    """[∂f/∂ω_l, ∂f/∂β_l] for input a [B, ...] and signals delta [B, k, ..., c_out]."""
    batch, k = delta.shape[:2]
    # materialize a and δ: XLA's CPU backend otherwise fuses their producers into the products
    a, delta = jax.lax.optimization_barrier((a, delta))
    leaf = functools.reduce(lambda tree, key: tree[key], layer.path, params["params"])
    spec = layer.spec
    fan_in = math.prod(leaf["kernel"].shape[:-1])
    s_w = 1.0 if spec.standard else spec.w_std / math.sqrt(fan_in)
    if isinstance(layer, convnets.ScaledDense):
        jac = jnp.einsum("bc,bkd->bkcd", a, delta) * s_w
    else:
        jac = _conv_weight_jacobian(a, delta, layer.kernel_size, layer.stride) * s_w
    leaves = [jac.reshape(batch, k, -1)]
    if "bias" in leaf:
        s_b = 1.0 if spec.standard else spec.b_std
        axes = tuple(range(2, delta.ndim - 1))
        leaves.append(jnp.sum(delta, axis=axes) * s_b)
    return leaves


def _conv_weight_jacobian(a, delta, size, stride):
    """Σ_p ā[s·p + (u, v), c] δ^j[p, d] → [B, k, size, size, c_in, c_out] (SAME padding).

    One product per filter offset (u, v) of the shifted input [B, H', W', c_in] with δ, or, for
    wide signals (k·c_out ≥ 256, measured faster on CPU), one product of the stacked patches
    [B, H'W', size²·c_in] with δ [B, H'W', k·c_out].
    """
    batch, height, width, c_in = a.shape
    k, out_h, out_w, c_out = delta.shape[1:]
    pads = jax.lax.padtype_to_pads((height, width), (size, size), (stride, stride), "SAME")
    padded = jnp.pad(a, ((0, 0), *pads, (0, 0)))
    shifted = [
        jax.lax.slice(
            padded,
            (0, u, v, 0),
            (batch, u + stride * (out_h - 1) + 1, v + stride * (out_w - 1) + 1, c_in),
            (1, stride, stride, 1),
        )
        for u in range(size)
        for v in range(size)
    ]
    if k * c_out < 256:
        jac = jnp.stack([jnp.einsum("bhwc,bkhwd->bkcd", sl, delta) for sl in shifted], axis=2)
        return jac.reshape(batch, k, size, size, c_in, c_out)
    patches = jnp.stack(shifted, axis=3).reshape(batch, out_h * out_w, -1)
    signals = jnp.moveaxis(delta, 1, -2).reshape(batch, out_h * out_w, k * c_out)
    jac = jax.lax.dot_general(patches, signals, (((1,), (1,)), ((0,), (0,))))
    jac = jac.reshape(batch, size, size, c_in, k, c_out)
    return jnp.moveaxis(jac, 4, 1)


def _top_layers(module) -> tuple[str, ...]:
    """Layers whose outputs are added directly into the input z of the last φ (see above)."""
    if isinstance(module, convnets.CNN):  # flatten: ω_L[(p, d), j] is not u ⊙ R[:, j]
        return (f"conv_{module.depth - 1}",) if module.depth and module.pooling == "avg" else ()
    last = f"group_{len(convnets.WRN_STRIDES) - 1}_block_{module.block_size - 1}"
    names = (f"{last}/conv_1",)
    if module.block_size == 1:  # the first block of the last group has stride 2: a shortcut
        names += (f"{last}/shortcut",)
    return names


def _compressed_signal(params, delta):
    """δ̃ [B, 1, H', W', c] from the k signals δ^j = u ⊙ R[:, j] of a top layer (see above).

    u = φ'(z) s_w,L / (H'W') and R = ω_L [c, k]: |δ̃| = √(Σ_j (δ^j)²) = |u| ‖R[d, :]‖, with the
    sign of u, i.e. of Σ_j δ^j R[d, j] = u ‖R[d, :]‖² (φ' ≥ 0 for every φ of ACTIVATIONS, but the
    sign is kept so that the identity holds for any φ).
    """
    readout = params["params"]["readout"]["kernel"]  # [c, k]
    norm = jnp.sqrt(jnp.sum(delta**2, axis=1, keepdims=True))
    sign = jnp.sign(jnp.einsum("bk...d,dk->b...d", delta, readout))[:, None]
    return norm * sign
