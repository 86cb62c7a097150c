"""Layer pieces shared by the MLPs of :mod:`ntkpipe.core.models` and the conv nets of
:mod:`ntkpipe.core.convnets`: the activations, the parameterizations, the N(0, 1)-scaled
initializer, the checks of (φ, parameterization, σ_w, σ_b), and the :class:`Network` both return.

Both parameterizations (paper §2.1, Eq. 1) draw the same N(0, 1) numbers from the same key:

    NTK parameterization:       h = σ_w/√n_in · a ω + σ_b · β,   ω, β ~ N(0, 1),
    standard parameterization:  h = a W + b,   W ~ N(0, σ_w²/n_in),   b ~ N(0, σ_b²),

so the standard leaves are the NTK ones scaled by σ_w/√n_in (and σ_b) at initialization.
"""

from __future__ import annotations

import dataclasses
import math
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
        dense_spec: the MLP structure when the network is an :func:`ntkpipe.core.models.mlp`
            (enables the fast kernel path in :mod:`ntkpipe.core.kernels`), otherwise None.

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


def scaled_normal(scale: float):
    """Flax initializer: N(0, 1) draws times ``scale`` (1 in the NTK parameterization)."""

    def init(key, shape, dtype):
        return jax.random.normal(key, shape, dtype) * jnp.asarray(scale, dtype)

    return init


def check_layer_settings(activation, parameterization, w_std, b_std) -> tuple[float, float]:
    """Checks φ, the parameterization, σ_w > 0 and σ_b ≥ 0 (None: 0); returns (σ_w, σ_b)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {list(PARAMETERIZATIONS)}; got {parameterization!r}."
        )
    if not is_real(w_std) or not w_std > 0 or not math.isfinite(w_std):
        raise ValueError(f"w_std must be a finite number > 0; got {w_std!r}.")
    b_std = 0.0 if b_std is None else b_std
    if not is_real(b_std) or not b_std >= 0 or not math.isfinite(b_std):
        raise ValueError(f"b_std must be a finite number ≥ 0, or None for no bias; got {b_std!r}.")
    return float(w_std), float(b_std)


def is_real(value: Any) -> bool:
    """A Python int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)
