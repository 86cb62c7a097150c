"""Convolutional networks in the NTK and the standard parameterization (paper §3, Fig. 4, S2–S4).

Two families, returned as the same
:class:`~ntkpipe.core._layers.Network` as :func:`ntkpipe.core.models.mlp`
(re-exported there as ``models.cnn`` and ``models.wrn``):

- :func:`cnn`: ``depth`` convolutions (stride 1, SAME padding) each followed by φ, a pooling
  layer, and a linear readout ``readout``.
- :func:`wrn`: the Wide ResNet of Table S1 (Zagoruyko & Komodakis) with a constant channel count
  C, as in the paper's Fig. 4: a 3×3 stem convolution, three groups of N pre-activation blocks
  (the first block of the second and third group has stride 2), φ, global average pooling and a
  linear readout.

Every convolution or dense layer with fan-in n_in = k_h · k_w · c_in (or the input dimension of
a dense layer) follows the conventions of :mod:`ntkpipe.core.models`:

    NTK parameterization:       h = σ_w/√n_in · (a ∗ ω) + σ_b · β,   ω, β ~ N(0, 1),
    standard parameterization:  h = a ∗ W + b,   W ~ N(0, σ_w²/n_in),   b ~ N(0, σ_b²),

and both draw the same N(0, 1) numbers from the same key, so the two parameterizations give the
same function at initialization. Without bias when σ_b is 0 or None. Layer kernels are stored as
leaves named ``kernel`` whose module paths sort (naturally) in layer order, so
:func:`ntkpipe.core.models.kernel_leaves` returns them in order.

Inputs: images [n, H, W, C] (NHWC), or flat vectors [n, H·W·C] when ``input_shape = (H, W, C)``
is given (the datasets of :mod:`ntkpipe.datasets` are flat with an ``input_shape``); flat rows are
reshaped in row-major (H, W, C) order.

Pooling: :func:`cnn` uses global average pooling by default (the readout then sees C features,
which keeps the NTK parameterization of the readout width-independent and the kernel
translation-invariant, as in neural-tangents' ``GlobalAvgPool``); ``pooling="flatten"`` gives the
readout all H·W·C features instead.

Batch norm (:func:`wrn` only, ``batch_norm=True``): normalizes every channel with the mean and
variance of the *current batch* over (n, H, W), then applies a learned per-channel scale γ
(initialized to 1) and shift β (initialized to 0). No running averages are kept, so
``apply(params, x)`` stays a pure function of (params, x) — but the output for one example then
depends on the other examples of the batch (minibatch statistics in SGD, full-set statistics
when the whole training set is evaluated). Kernels and per-example evaluation are therefore
only meaningful without batch norm, which is the default for NTK work.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ntkpipe.core._layers import ACTIVATIONS, Network, check_layer_settings, scaled_normal

POOLINGS = ("avg", "flatten")
"""Pooling before the readout of :func:`cnn`: global average over (H, W), or flattening."""


BATCH_NORM_EPS = 1e-5
"""ε in (a − mean)/√(var + ε) of the batch norm of :func:`wrn` (Flax's default)."""


WRN_STRIDES = (1, 2, 2)
"""Strides of the first block of the three groups of Table S1 (32×32 → 32, 16, 8 for CIFAR)."""


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """Layer conventions shared by every layer of a convolutional network.

    Attributes:
        activation: name of φ, a key of :data:`~ntkpipe.core._layers.ACTIVATIONS`.
        parameterization: ``"ntk"`` or ``"standard"``.
        w_std: σ_w.
        b_std: σ_b; 0.0 when the network has no bias.
        input_shape: (H, W, C) used to reshape flat inputs, or None (inputs must be NHWC).
    """

    activation: str
    parameterization: str
    w_std: float
    b_std: float
    input_shape: tuple[int, int, int] | None

    @property
    def use_bias(self) -> bool:
        return self.b_std > 0.0

    @property
    def standard(self) -> bool:
        return self.parameterization == "standard"


def cnn(
    depth: int,
    width: int,
    out_dim: int,
    activation: str = "relu",
    parameterization: str = "ntk",
    w_std: float = 1.0,
    b_std: float | None = 0.0,
    kernel_size: int = 3,
    input_shape: Sequence[int] | None = None,
    pooling: str = "avg",
) -> Network:
    """A convolutional network: ``depth`` SAME convolutions with φ, pooling, linear readout.

    f(x) = readout(pool(φ(conv_{L−1}(… φ(conv_0(x)) …)))), layers ``conv_0`` … ``conv_{L−1}``
    (k × k kernels, stride 1, SAME padding, ``width`` channels) and ``readout``.

    Args:
        depth: number of convolution layers L ≥ 0 (0: pooling and readout only).
        width: channels C ≥ 1 of every convolution.
        out_dim: number of outputs k ≥ 1.
        activation: one of :data:`~ntkpipe.core._layers.ACTIVATIONS`.
        parameterization: ``"ntk"`` or ``"standard"`` (module docstring).
        w_std: σ_w > 0.
        b_std: σ_b ≥ 0; 0 or None: no bias.
        kernel_size: spatial size k ≥ 1 of the (square) filters.
        input_shape: (H, W, C) of one image, to accept flat inputs [n, H·W·C]; None: inputs must
            be images [n, H, W, C].
        pooling: ``"avg"`` (global average over H, W: the readout sees C features) or
            ``"flatten"`` (the readout sees H·W·C features).

    Returns:
        A :class:`~ntkpipe.core._layers.Network`; ``apply(params, x)`` maps [n, H, W, C] or
        [n, H·W·C] to [n, out_dim].
    """
    _check_int("depth", depth, 0)
    _check_int("width", width, 1)
    _check_int("out_dim", out_dim, 1)
    _check_int("kernel_size", kernel_size, 1)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}; got {pooling!r}.")
    spec = _conv_spec(activation, parameterization, w_std, b_std, input_shape)
    module = CNN(
        depth=depth,
        width=width,
        out_dim=out_dim,
        kernel_size=kernel_size,
        pooling=pooling,
        spec=spec,
    )
    return Network(module=module, out_dim=out_dim)


def wrn(
    block_size: int = 1,
    channels: int = 1024,
    out_dim: int = 10,
    activation: str = "relu",
    parameterization: str = "ntk",
    w_std: float = 1.0,
    b_std: float | None = 0.0,
    kernel_size: int = 3,
    input_shape: Sequence[int] | None = None,
    batch_norm: bool = False,
) -> Network:
    """The Wide ResNet of Table S1 with a constant channel count (paper Fig. 4).

    Layout (defaults: the paper's Fig. 4, N = 1, C = 1024, k = 10, σ_w² = 1, σ_b² = 0):

    ====== ================================= ===================================
    group  output size (32×32 input)         block
    ====== ================================= ===================================
    conv   32 × 32                           [k×k, C] (layer ``conv``)
    group0 32 × 32                           [k×k, C; k×k, C] × N, stride 1
    group1 16 × 16                           [k×k, C; k×k, C] × N, first stride 2
    group2 8 × 8                             [k×k, C; k×k, C] × N, first stride 2
    pool   1 × 1                             φ, global average pool, ``readout``
    ====== ================================= ===================================

    Each block is pre-activation as in the original implementation:
    o = φ(BN(a)), h = conv_1(φ(BN(conv_0(o)))) + s, with s = a (identity) when the block keeps
    the resolution and s = ``shortcut``(o), a strided 1×1 convolution, when it has stride 2.
    BN is the identity unless ``batch_norm`` (see the module docstring for its pure form).
    Block ``b`` of group ``g`` is the submodule ``group_{g}_block_{b}``.

    Args:
        block_size: blocks per group N ≥ 1 (Table S1's N).
        channels: channels C ≥ 1 of every convolution (constant, as in the paper).
        out_dim: number of outputs k ≥ 1.
        activation: one of :data:`~ntkpipe.core._layers.ACTIVATIONS`.
        parameterization: ``"ntk"`` or ``"standard"``.
        w_std: σ_w > 0.
        b_std: σ_b ≥ 0; 0 or None: no bias.
        kernel_size: spatial size of the block and stem filters.
        input_shape: (H, W, C) of one image, to accept flat inputs [n, H·W·C].
        batch_norm: normalize with the current batch's statistics before every φ (default off:
            then f(x_i) depends on x_i only, which kernels and linearization assume).

    Returns:
        A :class:`~ntkpipe.core._layers.Network` mapping [n, H, W, C] or [n, H·W·C] to [n, out_dim].
    """
    _check_int("block_size", block_size, 1)
    _check_int("channels", channels, 1)
    _check_int("out_dim", out_dim, 1)
    _check_int("kernel_size", kernel_size, 1)
    if not isinstance(batch_norm, bool):
        raise ValueError(f"batch_norm must be True or False; got {batch_norm!r}.")
    spec = _conv_spec(activation, parameterization, w_std, b_std, input_shape)
    module = WRN(
        block_size=block_size,
        channels=channels,
        out_dim=out_dim,
        kernel_size=kernel_size,
        batch_norm=batch_norm,
        spec=spec,
    )
    return Network(module=module, out_dim=out_dim)


class CNN(nn.Module):
    """Flax module of :func:`cnn`; build it through :func:`cnn`."""

    depth: int
    width: int
    out_dim: int
    kernel_size: int
    pooling: str
    spec: ConvSpec

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        phi = ACTIVATIONS[self.spec.activation]
        h = _as_images(x, self.spec.input_shape)
        for i in range(self.depth):
            h = phi(ScaledConv(self.width, self.kernel_size, 1, self.spec, name=f"conv_{i}")(h))
        h = jnp.mean(h, axis=(1, 2)) if self.pooling == "avg" else h.reshape(h.shape[0], -1)
        return ScaledDense(self.out_dim, self.spec, name="readout")(h)


class WRN(nn.Module):
    """Flax module of :func:`wrn`; build it through :func:`wrn`."""

    block_size: int
    channels: int
    out_dim: int
    kernel_size: int
    batch_norm: bool
    spec: ConvSpec

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = _as_images(x, self.spec.input_shape)
        h = ScaledConv(self.channels, self.kernel_size, 1, self.spec, name="conv")(h)
        for g, stride in enumerate(WRN_STRIDES):
            for b in range(self.block_size):
                block = _WideBlock(
                    self.channels,
                    self.kernel_size,
                    stride if b == 0 else 1,
                    self.batch_norm,
                    self.spec,
                    name=f"group_{g}_block_{b}",
                )
                h = block(h)
        h = ACTIVATIONS[self.spec.activation](_norm(self, "bn", h, self.batch_norm))
        return ScaledDense(self.out_dim, self.spec, name="readout")(jnp.mean(h, axis=(1, 2)))


class _WideBlock(nn.Module):
    """Pre-activation residual block: conv_1(φ(BN(conv_0(o)))) + shortcut, o = φ(BN(a))."""

    channels: int
    kernel_size: int
    stride: int
    batch_norm: bool
    spec: ConvSpec

    @nn.compact
    def __call__(self, a: jax.Array) -> jax.Array:
        phi = ACTIVATIONS[self.spec.activation]
        o = phi(_norm(self, "bn_0", a, self.batch_norm))
        h = ScaledConv(self.channels, self.kernel_size, self.stride, self.spec, name="conv_0")(o)
        h = phi(_norm(self, "bn_1", h, self.batch_norm))
        h = ScaledConv(self.channels, self.kernel_size, 1, self.spec, name="conv_1")(h)
        if self.stride == 1 and a.shape[-1] == self.channels:
            return h + a
        return h + ScaledConv(self.channels, 1, self.stride, self.spec, name="shortcut")(o)


class ScaledConv(nn.Module):
    """h = s_w · (a ∗ ω) + s_b · β, SAME padding; ω [k, k, c_in, c_out] drawn N(0, 1)."""

    features: int
    kernel_size: int
    stride: int
    spec: ConvSpec

    @nn.compact
    def __call__(self, a: jax.Array) -> jax.Array:
        k = self.kernel_size
        shape = (k, k, a.shape[-1], self.features)
        kernel, w_scale = _weight(self, shape, fan_in=k * k * a.shape[-1], dtype=a.dtype)
        h = jax.lax.conv_general_dilated(
            a,
            kernel,
            window_strides=(self.stride, self.stride),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return _add_bias(self, h * w_scale, self.spec)


class ScaledDense(nn.Module):
    """h = s_w · a ω + s_b · β; ω [n_in, features] drawn N(0, 1)."""

    features: int
    spec: ConvSpec

    @nn.compact
    def __call__(self, a: jax.Array) -> jax.Array:
        shape = (a.shape[-1], self.features)
        kernel, w_scale = _weight(self, shape, fan_in=a.shape[-1], dtype=a.dtype)
        return _add_bias(self, jnp.dot(a, kernel) * w_scale, self.spec)


def _weight(module: nn.Module, shape: tuple[int, ...], fan_in: int, dtype) -> tuple[Any, float]:
    """The ``kernel`` leaf and the factor s_w applied to a ∗ kernel (1 in standard param.)."""
    scale = module.spec.w_std / math.sqrt(fan_in)
    std = module.spec.standard
    kernel = module.param("kernel", scaled_normal(scale if std else 1.0), shape, dtype)
    return kernel, 1.0 if std else scale


def _add_bias(module: nn.Module, h: jax.Array, spec: ConvSpec) -> jax.Array:
    if not spec.use_bias:
        return h
    init = scaled_normal(spec.b_std if spec.standard else 1.0)
    bias = module.param("bias", init, (h.shape[-1],), h.dtype)
    return h + bias * (1.0 if spec.standard else spec.b_std)


def _norm(module: nn.Module, name: str, h: jax.Array, enabled: bool) -> jax.Array:
    """Batch norm with the current batch's statistics over (n, H, W) and a learned γ, β."""
    if not enabled:
        return h
    mean = jnp.mean(h, axis=(0, 1, 2))
    var = jnp.var(h, axis=(0, 1, 2))
    c = h.shape[-1]
    gamma = module.param(f"{name}_scale", nn.initializers.ones, (c,), h.dtype)
    beta = module.param(f"{name}_bias", nn.initializers.zeros, (c,), h.dtype)
    return (h - mean) * jax.lax.rsqrt(var + BATCH_NORM_EPS) * gamma + beta


def _as_images(x: jax.Array, input_shape: tuple[int, int, int] | None) -> jax.Array:
    """x as NHWC floats: [n, H, W, C] kept, [n, H·W·C] reshaped with ``input_shape``."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    if x.ndim == 4 and (input_shape is None or x.shape[1:] == input_shape):
        return x
    if x.ndim == 2 and input_shape is not None and x.shape[1] == math.prod(input_shape):
        return x.reshape((x.shape[0], *input_shape))
    expected = "[n, H, W, C]" if input_shape is None else f"[n, {math.prod(input_shape)}] or "
    if input_shape is not None:
        expected += f"[n, {', '.join(map(str, input_shape))}] (input_shape={input_shape})"
    hint = "" if input_shape is not None else "; pass input_shape=(H, W, C) to accept flat inputs"
    raise ValueError(f"x must have shape {expected}; got shape {x.shape}{hint}.")


def _conv_spec(activation, parameterization, w_std, b_std, input_shape) -> ConvSpec:
    if parameterization == "mup":
        raise ValueError(
            "parameterization='mup' is defined for MLPs only (models.mlp); the conv nets take "
            "'ntk' or 'standard': μP for convolutions needs a choice of width per layer (channels "
            "against channels × window) and for WRN of the readout after pooling, which ntkpipe "
            "does not make."
        )
    w_std, b_std = check_layer_settings(activation, parameterization, w_std, b_std)
    return ConvSpec(activation, parameterization, w_std, b_std, _input_shape(input_shape))


def _input_shape(input_shape) -> tuple[int, int, int] | None:
    if input_shape is None:
        return None
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(_is_int(s) and s >= 1 for s in shape):
        raise ValueError(
            f"input_shape must be (H, W, C), three positive integers, or None; got {input_shape!r}."
        )
    return tuple(int(s) for s in shape)


def _check_int(field: str, value: Any, low: int) -> None:
    if not _is_int(value) or value < low:
        raise ValueError(f"{field} must be an integer ≥ {low}; got {value!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
