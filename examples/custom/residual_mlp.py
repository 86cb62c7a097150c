"""A residual MLP for ntkpipe (``model.architecture: custom``), returned as an (init, apply) pair.

With width n, `depth` residual blocks and NTK-parameterized weights (W = σ_w/√fan_in · ω),

    h⁰ = W_in x,   h^{l+1} = h^l + W_l,2 φ(W_l,1 h^l) / √depth,   f(x) = W_out h^L + b

Options (``model.options``): ``branch_scale`` (default 1.0) multiplies each residual branch.
Shows the second form of the factory contract: a pair of pure functions, parameters a nested
dict whose weight matrices are named ``kernel``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "erf": jax.scipy.special.erf,
    "identity": lambda h: h,
}


def residual_mlp(model: dict):
    """ntkpipe factory: the run's model section → (init(key, x), apply(params, x))."""
    width, depth, k = model["width"], model["depth"], model["out_dim"]
    w_std, ntk = model["w_std"], model["parameterization"] == "ntk"
    branch = float(model["options"].get("branch_scale", 1.0)) / math.sqrt(max(depth, 1))
    phi = ACTIVATIONS[model["activation"]]

    def shapes(d_in):
        yield "dense_in", (d_in, width)
        for i in range(depth):
            yield f"block_{i}/dense_0", (width, width)
            yield f"block_{i}/dense_1", (width, width)
        yield "readout", (width, k)

    def init(key, x):
        params = {}
        for j, (name, shape) in enumerate(shapes(x.shape[-1])):
            draw = jax.random.normal(jax.random.fold_in(key, j), shape, x.dtype)
            node = params
            for part in name.split("/"):
                node = node.setdefault(part, {})
            node["kernel"] = draw if ntk else draw * w_std / math.sqrt(shape[0])
        params["readout"]["bias"] = jnp.zeros((k,), x.dtype)
        return {"params": params}

    def dense(layer, h):
        scale = w_std / math.sqrt(h.shape[-1]) if ntk else 1.0
        return h @ layer["kernel"] * scale

    def apply(params, x):
        p = params["params"]
        h = dense(p["dense_in"], x)
        for i in range(depth):
            block = p[f"block_{i}"]
            h = h + branch * dense(block["dense_1"], phi(dense(block["dense_0"], h)))
        return dense(p["readout"], h) + p["readout"]["bias"]

    return init, apply
