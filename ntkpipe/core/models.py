"""Networks in the NTK and the standard parameterization (paper §2.1, Eq. 1).

An MLP with ``depth`` = L hidden layers has L + 1 Dense layers named ``dense_0`` … ``dense_L``
(the last one is the linear readout). With layer inputs a_0 = x and a_{l+1} = φ(h_l),

    NTK parameterization:       h_l = σ_w/√n_l · a_l ω_l + σ_b · β_l,   ω_l, β_l ~ N(0, 1),
    standard parameterization:  h_l = a_l W_l + b_l,   W_l ~ N(0, σ_w²/n_l),   b_l ~ N(0, σ_b²),

where n_l is the fan-in of layer l. The trainable leaves are ω_l, β_l (NTK) or W_l, b_l (standard);
they are stored as ``params["params"]["dense_l"]["kernel"]`` / ``["bias"]``. Both
parameterizations draw the same N(0, 1) numbers from the same key, so that at initialization the
standard weights are exactly the NTK ω scaled by σ_w/√n_l (and σ_b β): the two functions agree
(see :func:`to_standard`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ntkpipe.core._layers import (
    ACTIVATIONS,
    LAYER_RATES,
    PARAMETERIZATIONS,
    DenseSpec,
    Network,
    Params,
    check_layer_rates,
    check_layer_settings,
    scaled_normal,
)
from ntkpipe.core.convnets import cnn, wrn

__all__ = [
    "ACTIVATIONS",
    "LAYER_RATES",
    "PARAMETERIZATIONS",
    "DenseSpec",
    "MLP",
    "Network",
    "Params",
    "cnn",
    "kernel_leaves",
    "mlp",
    "to_standard",
    "wrn",
]


def mlp(
    depth: int,
    width: int,
    out_dim: int,
    activation: str = "relu",
    parameterization: str = "ntk",
    w_std: float = 1.0,
    b_std: float | None = 0.0,
    layer_rates: str = "uniform",
) -> Network:
    """A fully connected network with ``depth`` hidden layers and a linear readout (Eq. 1).

    Args:
        depth: number of hidden layers L ≥ 0.
        width: hidden width n ≥ 1.
        out_dim: number of outputs k ≥ 1.
        activation: one of :data:`ACTIVATIONS` (relu, erf, tanh, identity).
        parameterization: ``"ntk"`` (W = σ_w/√n_in · ω, b = σ_b · β, ω, β ~ N(0, 1)),
            ``"standard"`` (W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²)) or ``"mup"`` (maximal update,
            Yang & Hu 2021; needs depth ≥ 1; scales and rates in
            :meth:`DenseSpec.layer_scale`).
        w_std: σ_w > 0.
        b_std: σ_b ≥ 0; 0 or None means the network has no bias parameters.
        layer_rates: ``"uniform"`` (one rate for every leaf) or ``"ntk"`` (standard
            parameterization only: the per-tensor rates η σ_w²/n_l, η σ_b² of §2.1, trained as
            the leaves W/√r; see :meth:`DenseSpec.layer_scale`).

    Returns:
        A :class:`Network` with ``dense_spec`` set.
    """
    spec = _dense_spec(depth, width, out_dim, activation, parameterization, w_std, b_std)
    if check_layer_rates(parameterization, layer_rates) != "uniform":
        spec = dataclasses.replace(spec, layer_rates=layer_rates)
    return Network(module=MLP(spec=spec), out_dim=spec.out_dim, dense_spec=spec)


def kernel_leaves(params: Params) -> dict[str, jax.Array]:
    """The weight matrices / convolution kernels of every layer, in layer order.

    Works for any Flax model: every leaf named ``kernel`` is returned, keyed by the path of its
    module with ``/`` separators (``"dense_0"``, ``"block_1/conv_0"``), without the leading
    ``params`` collection. Layers are ordered by the natural order of their names (numbers
    compared as numbers: ``dense_2`` before ``dense_10``), which is the layer order of :func:`mlp`;
    creation order is not used because ``jax.tree.map`` returns dicts with sorted keys. Used for
    the per-layer ‖W_t − W_0‖_F / ‖W_0‖_F of training.

    Args:
        params: a Flax variables pytree (``{"params": {...}}``) or its ``"params"`` collection.

    Returns:
        ``{layer_name: kernel}``.
    """
    tree = params["params"] if isinstance(params, dict) and "params" in params else params
    leaves: dict[str, jax.Array] = {}
    _collect_kernels(tree, (), leaves)
    return {name: leaves[name] for name in sorted(leaves, key=_natural_key)}


def to_standard(net: Network, params: Params) -> Params:
    """Converts NTK-parameterized (or μP) MLP parameters to the standard ones of the same
    function.

    W_l = s_w,l · ω_l and b_l = s_b,l · β_l (:meth:`DenseSpec.layer_scale`; NTK: σ_w/√n_l, σ_b).
    Applied to ``mlp(..., parameterization="ntk")`` parameters, the result evaluated by the same
    MLP with ``parameterization="standard"`` is the same function; at initialization it is
    exactly what the standard network draws from the same key (μP: the same function, not the
    same draws).

    Args:
        net: the NTK-parameterized (or μP) MLP.
        params: its parameters.

    Returns:
        The standard parameters (same tree structure).
    """
    spec = net.dense_spec
    if spec is None or spec.parameterization not in ("ntk", "mup"):
        raise ValueError("to_standard needs an MLP built with parameterization='ntk' or 'mup'.")
    out = {}
    for i, name in enumerate(spec.layer_names):
        layer = params["params"][name]
        kernel = layer["kernel"]
        scale = spec.layer_scale(i, kernel.shape[0])
        new = {"kernel": kernel * scale.s_w}
        if spec.use_bias:
            new["bias"] = layer["bias"] * scale.s_b
        out[name] = new
    return {"params": out}


class MLP(nn.Module):
    """Flax module of :func:`mlp`; build it through :func:`mlp`."""

    spec: DenseSpec

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        phi = ACTIVATIONS[self.spec.activation]
        h = x
        for i in range(self.spec.depth + 1):
            features = self.spec.out_dim if i == self.spec.depth else self.spec.width
            h = _Dense(features=features, spec=self.spec, layer=i, name=f"dense_{i}")(h)
            if i < self.spec.depth:
                h = phi(h)
        return h


class _Dense(nn.Module):
    """h = s_w · x kernel + s_b · bias with the scales of :meth:`DenseSpec.layer_scale`.

    The leaves are N(0, 1) draws times v_w (v_b), so every parameterization draws the same
    numbers from the same key.
    """

    features: int
    spec: DenseSpec
    layer: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        scale = self.spec.layer_scale(self.layer, fan_in)
        kernel = self.param("kernel", scaled_normal(scale.v_w), (fan_in, self.features), dtype)
        h = jnp.dot(x.astype(dtype), kernel)
        if scale.s_w != 1.0:
            h = h * scale.s_w
        if self.spec.use_bias:
            bias = self.param("bias", scaled_normal(scale.v_b), (self.features,), dtype)
            h = h + bias * scale.s_b
        return h


def _collect_kernels(tree: Any, path: tuple[str, ...], out: dict[str, jax.Array]) -> None:
    for name, value in tree.items():
        if isinstance(value, dict) or hasattr(value, "items"):
            _collect_kernels(value, (*path, str(name)), out)
        elif name == "kernel":
            out["/".join(path) if path else "kernel"] = value


def _natural_key(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _dense_spec(depth, width, out_dim, activation, parameterization, w_std, b_std) -> DenseSpec:
    for field, value, low in (("depth", depth, 0), ("width", width, 1), ("out_dim", out_dim, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{field} must be an integer ≥ {low}; got {value!r}.")
    w_std, b_std = check_layer_settings(activation, parameterization, w_std, b_std)
    if parameterization == "mup" and depth < 1:
        raise ValueError(
            "parameterization='mup' needs depth ≥ 1 (μP scales layers by the hidden width, "
            f"which a network without hidden layers lacks); got depth={depth}."
        )
    return DenseSpec(depth, width, out_dim, activation, parameterization, w_std, b_std)
