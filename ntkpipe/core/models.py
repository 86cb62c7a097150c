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
import math
import re
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import erf

Params = Any  # a flax variables pytree {"params": {...}}

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "erf": erf,
    "tanh": jnp.tanh,
    "identity": lambda h: h,
}
"""Elementwise nonlinearities φ by name (``erf`` is the plain error function, as in
neural-tangents' ``stax.Erf()``)."""

PARAMETERIZATIONS = ("ntk", "standard")


@dataclasses.dataclass(frozen=True)
class DenseSpec:
    """Structure of an MLP, used by the fast empirical-kernel path of :mod:`ntkpipe.core.kernels`.

    Attributes:
        depth: number of hidden layers L (Dense layers ``dense_0`` … ``dense_L``).
        width: hidden width n.
        out_dim: number of outputs k.
        activation: name of φ, a key of :data:`ACTIVATIONS`.
        parameterization: ``"ntk"`` or ``"standard"``.
        w_std: σ_w.
        b_std: σ_b; 0.0 when the network has no bias.
    """

    depth: int
    width: int
    out_dim: int
    activation: str
    parameterization: str
    w_std: float
    b_std: float

    @property
    def use_bias(self) -> bool:
        return self.b_std > 0.0

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"dense_{i}" for i in range(self.depth + 1))

    def weight_scale(self, fan_in: int) -> float:
        """Factor s_w with W_l = s_w · params_l: σ_w/√n_l (NTK) or 1 (standard)."""
        return self.w_std / math.sqrt(fan_in) if self.parameterization == "ntk" else 1.0

    @property
    def bias_scale(self) -> float:
        """Factor s_b with b_l = s_b · params_l: σ_b (NTK) or 1 (standard); 0 without bias."""
        if not self.use_bias:
            return 0.0
        return self.b_std if self.parameterization == "ntk" else 1.0


@dataclasses.dataclass(frozen=True)
class Network:
    """A Flax module with a pure functional interface.

    Attributes:
        module: the Flax linen module.
        out_dim: number of outputs k of ``apply``.
        dense_spec: the MLP structure when the network is an :func:`mlp` (enables the fast kernel
            path in :mod:`ntkpipe.core.kernels`), otherwise None.

    ``net.apply`` is a bound method: :mod:`ntkpipe.core.kernels` finds ``dense_spec`` through it, so
    ``kernels.empirical_ntk(net.apply, ...)`` takes the fast path for an MLP; any other
    ``apply(params, x)`` (a lambda, a jitted function) takes the generic path.
    """

    module: nn.Module
    out_dim: int
    dense_spec: DenseSpec | None = None

    def init(self, key: jax.Array, x: jax.Array) -> Params:
        """Samples the initial parameters θ₀.

        Args:
            key: a PRNG key.
            x: example inputs, [n, d_in] for an MLP (only their shape and dtype are used).
                Parameters take the dtype of ``x`` when it is floating, float32 otherwise.

        Returns:
            ``{"params": {layer_name: {"kernel": ..., "bias": ...}, ...}}``.
        """
        x = jnp.asarray(x)
        if self.dense_spec is not None and x.ndim != 2:
            raise ValueError(f"x must have shape [n, d_in] for an MLP; got shape {x.shape}.")
        return self.module.init(key, x)

    def apply(self, params: Params, x: jax.Array) -> jax.Array:
        """The network function f(θ, x): [n, ...] → [n, out_dim]. Pure."""
        return self.module.apply(params, x)

    __call__ = apply


def mlp(
    depth: int,
    width: int,
    out_dim: int,
    activation: str = "relu",
    parameterization: str = "ntk",
    w_std: float = 1.0,
    b_std: float | None = 0.0,
) -> Network:
    """A fully connected network with ``depth`` hidden layers and a linear readout (Eq. 1).

    Args:
        depth: number of hidden layers L ≥ 0.
        width: hidden width n ≥ 1.
        out_dim: number of outputs k ≥ 1.
        activation: one of :data:`ACTIVATIONS` (relu, erf, tanh, identity).
        parameterization: ``"ntk"`` (W = σ_w/√n_in · ω, b = σ_b · β, ω, β ~ N(0, 1)) or
            ``"standard"`` (W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²)).
        w_std: σ_w > 0.
        b_std: σ_b ≥ 0; 0 or None means the network has no bias parameters.

    Returns:
        A :class:`Network` with ``dense_spec`` set.
    """
    spec = _dense_spec(depth, width, out_dim, activation, parameterization, w_std, b_std)
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
    """Converts NTK-parameterized MLP parameters to the standard ones of the same function.

    W_l = σ_w/√n_l · ω_l and b_l = σ_b · β_l. Applied to ``mlp(..., parameterization="ntk")``
    parameters, the result evaluated by the same MLP with ``parameterization="standard"`` is the
    same function; at initialization it is exactly what the standard network draws from the
    same key.

    Args:
        net: the NTK-parameterized MLP.
        params: its parameters.

    Returns:
        The standard parameters (same tree structure).
    """
    spec = net.dense_spec
    if spec is None or spec.parameterization != "ntk":
        raise ValueError("to_standard needs an MLP built with parameterization='ntk'.")
    out = {}
    for name in spec.layer_names:
        layer = params["params"][name]
        kernel = layer["kernel"]
        new = {"kernel": kernel * spec.weight_scale(kernel.shape[0])}
        if spec.use_bias:
            new["bias"] = layer["bias"] * spec.b_std
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
            h = _Dense(features=features, spec=self.spec, name=f"dense_{i}")(h)
            if i < self.spec.depth:
                h = phi(h)
        return h


class _Dense(nn.Module):
    """h = s_w · x ω + s_b · β; both parameterizations draw ω, β from N(0, 1) with the same key."""

    features: int
    spec: DenseSpec

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        std = self.spec.parameterization == "standard"
        w_init = _scaled_normal(self.spec.w_std / math.sqrt(fan_in) if std else 1.0)
        kernel = self.param("kernel", w_init, (fan_in, self.features), dtype)
        h = jnp.dot(x.astype(dtype), kernel)
        if not std:
            h = h * self.spec.weight_scale(fan_in)
        if self.spec.use_bias:
            bias = self.param(
                "bias", _scaled_normal(self.spec.b_std if std else 1.0), (self.features,), dtype
            )
            h = h + bias * self.spec.bias_scale
        return h


def _scaled_normal(scale: float):
    def init(key, shape, dtype):
        return jax.random.normal(key, shape, dtype) * jnp.asarray(scale, dtype)

    return init


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
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {list(PARAMETERIZATIONS)}; got {parameterization!r}."
        )
    if not _is_real(w_std) or not w_std > 0 or not math.isfinite(w_std):
        raise ValueError(f"w_std must be a finite number > 0; got {w_std!r}.")
    if b_std is None:
        b_std = 0.0
    if not _is_real(b_std) or not b_std >= 0 or not math.isfinite(b_std):
        raise ValueError(f"b_std must be a finite number ≥ 0, or None for no bias; got {b_std!r}.")
    return DenseSpec(
        depth, width, out_dim, activation, parameterization, float(w_std), float(b_std)
    )


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


from ntkpipe.core.convnets import cnn, wrn  # noqa: E402,F401
