"""Layer pieces shared by the MLPs of :mod:`ntkpipe.core.models` and the conv nets of
:mod:`ntkpipe.core.convnets`: the activations, the parameterizations, the N(0, 1)-scaled
initializer, the checks of (φ, parameterization, σ_w, σ_b), and the :class:`Network` both return.

Both parameterizations (paper §2.1, Eq. 1) draw the same N(0, 1) numbers from the same key:

    NTK parameterization:       h = σ_w/√n_in · a ω + σ_b · β,   ω, β ~ N(0, 1),
    standard parameterization:  h = a W + b,   W ~ N(0, σ_w²/n_in),   b ~ N(0, σ_b²),

so the standard leaves are the NTK ones scaled by σ_w/√n_in (and σ_b) at initialization.

MLPs also have the maximal-update parameterization ``"mup"`` (Yang & Hu 2021), defined in
:meth:`DenseSpec.layer_scale`; the conv nets refuse it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

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

PARAMETERIZATIONS = ("ntk", "standard", "mup")
LAYER_RATES = ("uniform", "ntk")
"""Per-tensor learning-rate multipliers of an MLP (:meth:`DenseSpec.layer_scale`): ``uniform``
(one rate η for every leaf) or ``ntk`` (the standard parameterization with the per-tensor rates
that make its gradient descent that of the NTK parameterization, paper §2.1)."""
"""All parameterizations of :func:`ntkpipe.core.models.mlp`; the conv nets take the first two."""


@dataclasses.dataclass(frozen=True)
class DenseSpec:
    """Structure of an MLP, used by the fast empirical-kernel path of :mod:`ntkpipe.core.kernels`.

    Attributes:
        depth: number of hidden layers L (Dense layers ``dense_0`` … ``dense_L``).
        width: hidden width n.
        out_dim: number of outputs k.
        activation: name of φ, a key of :data:`ACTIVATIONS`.
        parameterization: ``"ntk"``, ``"standard"`` or ``"mup"`` (:meth:`layer_scale`).
        w_std: σ_w.
        b_std: σ_b; 0.0 when the network has no bias.
        layer_rates: ``"uniform"`` or ``"ntk"`` (standard parameterization only), see
            :meth:`layer_scale`.
    """

    depth: int
    width: int
    out_dim: int
    activation: str
    parameterization: str
    w_std: float
    b_std: float
    layer_rates: str = "uniform"

    @property
    def use_bias(self) -> bool:
        return self.b_std > 0.0

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"dense_{i}" for i in range(self.depth + 1))

    def layer_scale(self, layer: int, fan_in: int) -> LayerScale:
        """Multipliers and initial standard deviations of layer ``dense_<layer>``.

        Every parameterization writes W_l = s_w · kernel_l and b_l = s_b · bias_l with trained
        leaves kernel_l ~ N(0, v_w²), bias_l ~ N(0, v_b²), and one global learning rate η on the
        leaves, so the effective (W-space) rate of W_l is η · s_w² and Var(W_l) = s_w² v_w². With
        n_l = fan_in, n = the hidden width and d = n_0 the input dimension:

        ===========  ==================  ====================  =====================
        layer        ntk (s_w, v_w)      standard (s_w, v_w)   mup (s_w, v_w)
        ===========  ==================  ====================  =====================
        input  l=0   σ_w/√d, 1           1, σ_w/√d             σ_w·√(n/d), 1/√n
        hidden       σ_w/√n, 1           1, σ_w/√n             σ_w, 1/√n
        readout l=L  σ_w/√n, 1           1, σ_w/√n             σ_w/√n, 1/√n
        hidden bias  σ_b, 1              1, σ_b                σ_b·√n, 1/√n
        readout bias σ_b, 1              1, σ_b                σ_b, 1
        ===========  ==================  ====================  =====================

        The ``mup`` column is Yang & Hu's abc-parameterization (Tensor Programs IV, Eq. 5) with
        a = (−½, 0, ½) for (input, hidden, readout), b = ½ and c = 0 (SGD), with σ_w/√d and
        σ_w normalizing the scales. In W-space it is their Table 3 ("μP in SP form"): initial
        variances σ_w²/d, σ_w²/n, σ_w²/n² (input, hidden, readout weights) and σ_b² (biases);
        per-layer learning rates η·n·σ_w²/d, η·σ_w², η·σ_w²/n and η·n·σ_b² (hidden biases),
        η·σ_b² (readout bias). Relative to the NTK parameterization: the readout weights start
        1/√n smaller, and every rate but the readout bias's is n times larger; the two tangent
        kernels (Eq. 4) are then equal at initialization (a test checks it), so η_crit is the
        same, but f₀ = O(1/√n) and the hidden features move by O(1) in a step (feature
        learning), which the NTK parameterization suppresses by 1/√n.

        Per-tensor learning rates (``layer_rates="ntk"``, standard parameterization): gradient
        descent with the rate η·r on a tensor p, p ← p − η r ∂L/∂p, is gradient descent with
        the one rate η on the leaf q = p/√r of W = √r · q (∂L/∂q = √r ∂L/∂p, so √r q moves by
        −η r ∂L/∂p; the same holds for heavy-ball momentum and minibatch SGD, which are linear
        in the gradient). So the leaves are q with s_w = √r_w, v_w = σ_w/√n_l/√r_w (s_b = √r_b,
        v_b = σ_b/√r_b), and the tangent kernel of the leaves is J diag(r) Jᵀ: the kernel Θ_η/η
        of the closed form (Eq. 8–11) and of η_crit. The paper's per-tensor factors ("identical
        to those of standard networks, up to a width-dependent scaling factor in the learning
        rate for each parameter tensor", §2.1) are r_w = σ_w²/n_l for W_l and r_b = σ_b² for
        b_l: then Var(W_l) and every step are those of the NTK parameterization (a test checks
        it against per-tensor-rate gradient descent on the standard leaves, step by step).
        """
        readout = layer == self.depth
        if self.parameterization == "ntk":
            return LayerScale(self.w_std / math.sqrt(fan_in), self.b_std, 1.0, 1.0)
        if self.parameterization == "standard" and self.layer_rates == "ntk":
            s_w, s_b = self.w_std / math.sqrt(fan_in), self.b_std or 1.0
            return LayerScale(s_w, s_b, self.w_std / math.sqrt(fan_in) / s_w, self.b_std / s_b)
        if self.parameterization == "standard":
            return LayerScale(1.0, 1.0, self.w_std / math.sqrt(fan_in), self.b_std)
        n = self.width
        if layer == 0:
            s_w = self.w_std * math.sqrt(n / fan_in)
        else:
            s_w = self.w_std / math.sqrt(n) if readout else self.w_std
        v = 1.0 / math.sqrt(n)
        s_b, v_b = (self.b_std, 1.0) if readout else (self.b_std * math.sqrt(n), v)
        return LayerScale(s_w, s_b, v, v_b)


class LayerScale(NamedTuple):
    """W = s_w · kernel, b = s_b · bias, kernel ~ N(0, v_w²), bias ~ N(0, v_b²) at init.

    s_b and v_b are meaningless (and unused) when the network has no bias.
    """

    s_w: float
    s_b: float
    v_w: float
    v_b: float


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


def check_layer_rates(parameterization: str, layer_rates: str) -> str:
    """Checks :data:`LAYER_RATES`: ``ntk`` rates belong to the standard parameterization."""
    if layer_rates not in LAYER_RATES:
        raise ValueError(f"layer_rates must be one of {list(LAYER_RATES)}; got {layer_rates!r}.")
    if layer_rates == "ntk" and parameterization != "standard":
        raise ValueError(
            f"layer_rates='ntk' rescales the standard parameterization's rates to the NTK "
            f"parameterization's; with parameterization={parameterization!r} use "
            "layer_rates='uniform' (its rates are already those of its definition)."
        )
    return layer_rates


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
