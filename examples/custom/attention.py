"""A small transformer-style attention model for ntkpipe (``model.architecture: custom``).

Each flat input row x [d_in] is read as a sequence of T = H tokens of H × W × C images
(``input_shape``), one token per image row of W · C features. With width n and every Dense
layer in the NTK parameterization (W = σ_w/√fan_in · ω, ω ~ N(0, 1); ``parameterization:
standard`` draws W ~ N(0, σ_w²/fan_in) instead),

    h⁰ = embed(tokens) + pos                       [T, n]
    for each of `depth` blocks:
        a = softmax(q kᵀ / √d_head) v, per head     (q, k, v = Dense(n)(h))
        h = h + out(a) / √2
        h = h + mlp_out(φ(mlp_in(h))) / √2
    f(x) = readout(mean over tokens of h)          [out_dim]

Options (``model.options``): ``heads`` (default 2; must divide the width). The layers' weight
matrices are named ``kernel`` (``block_0/query/kernel``, …), the readout sorts last (``readout``).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "erf": jax.scipy.special.erf,
    "identity": lambda h: h,
}


def attention(model: dict) -> nn.Module:
    """ntkpipe factory: the model section of a run (width, depth, out_dim, input_shape,
    activation, parameterization, w_std, b_std, precision, options) → a Flax module."""
    heads = int(model["options"].get("heads", 2))
    if model["width"] % heads:
        raise ValueError(f"model.options.heads {heads} must divide model.width {model['width']}")
    shape = model["input_shape"]
    return Attention(
        tokens=shape[0],
        width=model["width"],
        depth=model["depth"],
        heads=heads,
        out_dim=model["out_dim"],
        activation=model["activation"],
        ntk=model["parameterization"] == "ntk",
        w_std=model["w_std"],
        b_std=model["b_std"] or 0.0,
    )


class Dense(nn.Module):
    """A Dense layer in the NTK (or standard) parameterization; weights named ``kernel``."""

    features: int
    ntk: bool
    w_std: float
    b_std: float

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        scale = self.w_std / math.sqrt(fan_in)
        init = nn.initializers.normal(1.0 if self.ntk else scale)
        kernel = self.param("kernel", init, (fan_in, self.features), x.dtype)
        h = x @ kernel * (scale if self.ntk else 1.0)
        if self.b_std > 0:
            bias = self.param(
                "bias",
                nn.initializers.normal(1.0 if self.ntk else self.b_std),
                (self.features,),
                x.dtype,
            )
            h = h + bias * (self.b_std if self.ntk else 1.0)
        return h


class Block(nn.Module):
    """One attention block: multi-head self-attention, then a two-layer MLP, both residual."""

    width: int
    heads: int
    activation: str
    ntk: bool
    w_std: float
    b_std: float

    @nn.compact
    def __call__(self, h):
        n, tokens, _ = h.shape
        dense = lambda features, name: Dense(features, self.ntk, self.w_std, self.b_std, name=name)
        d_head = self.width // self.heads
        split = lambda a: a.reshape(n, tokens, self.heads, d_head)
        q, k, v = (split(dense(self.width, name)(h)) for name in ("query", "key", "value"))
        scores = jnp.einsum("nthd,nshd->nhts", q, k) / math.sqrt(d_head)
        a = jnp.einsum("nhts,nshd->nthd", jax.nn.softmax(scores, axis=-1), v)
        h = h + dense(self.width, "out")(a.reshape(n, tokens, -1)) / math.sqrt(2)
        m = ACTIVATIONS[self.activation](dense(self.width, "mlp_in")(h))
        return h + dense(self.width, "mlp_out")(m) / math.sqrt(2)


class Attention(nn.Module):
    """Token embedding, `depth` attention blocks (``block_0`` …), mean pooling, readout."""

    tokens: int
    width: int
    depth: int
    heads: int
    out_dim: int
    activation: str
    ntk: bool
    w_std: float
    b_std: float

    @nn.compact
    def __call__(self, x):
        scales = dict(ntk=self.ntk, w_std=self.w_std, b_std=self.b_std)
        h = x.reshape(x.shape[0], self.tokens, -1)
        pos = self.param("pos", nn.initializers.normal(1.0), (self.tokens, self.width), x.dtype)
        h = Dense(self.width, **scales, name="embed")(h) + pos
        for i in range(self.depth):
            h = Block(self.width, self.heads, self.activation, **scales, name=f"block_{i}")(h)
        return Dense(self.out_dim, **scales, name="readout")(h.mean(axis=1))
