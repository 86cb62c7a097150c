"""The layer recursion of :func:`ntkpipe.core.analytic.kernels` (SM §E, neural-tangents' ``stax``).

Dense layer l:  K_l = σ_w² K_in + σ_b²,  Θ_l = K_l + σ_w² Θ_in (NTK) or n_l K_in + σ_w² Θ_in (+1)
(standard); φ:  K_in ← E[φ(u)φ(v)],  Θ_in ← Θ_l · E[φ'(u)φ'(v)]. The expectations are in closed
form for relu (arc-cosine), erf (arcsine) and identity, by quadrature otherwise
(:mod:`ntkpipe.core._quadrature`). See the :mod:`ntkpipe.core.analytic` docstring.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.core._inverse_trig import arccos, arcsin
from ntkpipe.core._layers import ACTIVATIONS, PARAMETERIZATIONS
from ntkpipe.core._quadrature import activation_functions, gaussian_pair, nodes

CLOSED_FORM_ACTIVATIONS = ("relu", "erf", "identity")
"""Activations whose Gaussian expectations are computed in closed form by ``method="auto"``."""


METHODS = ("auto", "closed_form", "quadrature")


_MEMORY_BUDGET = 1 << 22  # floats of one quadrature tile [rows, n2, radial nodes] (32 MB in f64)


class RecursionConfig(NamedTuple):
    """Static settings of the recursion (hashable: a jit static argument)."""

    depth: int
    activation: str | Callable
    w_var: float
    b_var: float
    use_bias: bool
    standard: bool
    width: int
    quadrature: bool
    quad_order: int
    symmetric: bool = False  # x2 is x1: the diagonal K(x, x) is kept equal to the variances


def recursion_config(depth, activation, w_std, b_std, parameterization, width, method, quad_order):
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an integer ≥ 0 (hidden layers); got {depth!r}.")
    if not callable(activation) and activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)} or an elementwise function; "
            f"got {activation!r}."
        )
    if not is_number(w_std) or not w_std > 0 or not math.isfinite(w_std):
        raise ValueError(f"w_std must be a finite number > 0; got {w_std!r}.")
    b_std = 0.0 if b_std is None else b_std
    if not is_number(b_std) or not b_std >= 0 or not math.isfinite(b_std):
        raise ValueError(f"b_std must be a finite number ≥ 0, or None for no bias; got {b_std!r}.")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {list(PARAMETERIZATIONS)}; got {parameterization!r}."
        )
    standard = parameterization == "standard"
    if standard and depth >= 1 and width is None:
        raise ValueError(
            "width is required with parameterization='standard' (its NTK grows with the hidden "
            "width n: the readout term is n · E[φφ']); pass width=<hidden width>."
        )
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
        raise ValueError(f"width must be an integer ≥ 1 or None; got {width!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}.")
    closed = not callable(activation) and activation in CLOSED_FORM_ACTIVATIONS
    if method == "closed_form" and not closed:
        raise ValueError(
            f"activation {activation!r} has no closed form here (those are "
            f"{list(CLOSED_FORM_ACTIVATIONS)}); use method='auto' or 'quadrature'."
        )
    if isinstance(quad_order, bool) or not isinstance(quad_order, int) or quad_order < 2:
        raise ValueError(f"quad_order must be an integer ≥ 2; got {quad_order!r}.")
    quadrature = method == "quadrature" or (method == "auto" and not closed)
    return RecursionConfig(
        depth=depth,
        activation=activation,
        w_var=float(w_std) ** 2,
        b_var=float(b_std) ** 2,
        use_bias=b_std > 0,
        standard=standard,
        width=int(width or 0),
        quadrature=quadrature,
        quad_order=quad_order,
    )


@functools.partial(jax.jit, static_argnums=0)
def recursion(config: RecursionConfig, x1, x2, sq1, sq2, offset):
    """The layer recursion of the module docstring on the block of rows offset… of x1.

    When x2 is x1, the pre-activation entries (i, offset + i) are set to the variances before
    every nonlinearity, and their correlation to 1, so that cos θ = 1 there to the last bit
    (arccos near 1 would otherwise turn a rounding error of 1e-16 into an angle of 1e-8, a 1e-9
    relative error of Θ(x, x)). Only those n1 entries are written (no [n1, n2] mask).
    """
    d_in = x1.shape[1]
    k_in = x1 @ x2.T / d_in
    k, q1, q2, theta = _dense(config, d_in, k_in, sq1, sq2, jnp.zeros_like(k_in))
    diagonal = None
    if config.symmetric:
        rows = jnp.arange(x1.shape[0])
        diagonal = (rows, rows + offset)

    def layer(carry, _):
        k, q1, q2, theta = carry
        if config.symmetric:
            q1 = jax.lax.dynamic_slice_in_dim(q2, offset, x1.shape[0])
            k = k.at[diagonal].set(q1)
        k_in, dot, q1_in, q2_in = _activation_kernels(config, k, q1, q2, diagonal)
        return _dense(config, config.width, k_in, q1_in, q2_in, theta * dot), None

    # a loop over the layers, not an unrolled chain: XLA's CPU code for the unrolled chain of
    # three or more layers ran 4–5× slower per layer (measured, 1000 × 1000, relu)
    (k, q1, q2, theta), _ = jax.lax.scan(layer, (k, q1, q2, theta), None, length=config.depth)
    return k, theta


def _dense(config: RecursionConfig, fan_in, k_in, q1_in, q2_in, theta_in):
    """One Dense layer: pre-activation kernel K, variances q1, q2, and Θ from the layer input's."""
    k = config.w_var * k_in + config.b_var
    q1 = config.w_var * q1_in + config.b_var
    q2 = config.w_var * q2_in + config.b_var
    if config.standard:
        theta = fan_in * k_in + config.w_var * theta_in + (1.0 if config.use_bias else 0.0)
    else:
        theta = k + config.w_var * theta_in
    return k, q1, q2, theta


def _activation_kernels(config: RecursionConfig, k, q1, q2, diagonal):
    """E[φ(u)φ(v)], E[φ'(u)φ'(v)] [n1, n2] and the variances E[φ(u)²] [n1], E[φ(v)²] [n2].

    k: the covariances [n1, n2]; q1 [n1], q2 [n2] the variances. diagonal: (rows, cols) of the
    pairs (x, x) whose correlation is exactly 1, or None.
    """
    if not config.quadrature:
        pair, variance = _CLOSED_FORMS[config.activation]
        value, dot = pair(q1, q2, k, diagonal)
        return value, dot, variance(q1), variance(q2)
    rho = _correlation(q1, q2, k, diagonal)
    # one quadrature over the n1·n2 pairs and the n1 + n2 variances (one scan to compile)
    n1, n2 = k.shape
    flat_q1 = jnp.concatenate([jnp.repeat(q1, n2), q1, q2])
    flat_q2 = jnp.concatenate([jnp.tile(q2, n1), q1, q2])
    flat_rho = jnp.concatenate([rho.reshape(-1), jnp.ones(n1 + n2, rho.dtype)])
    phi = activation_functions(config.activation)
    values, dots = gaussian_pair(phi, nodes(config.quad_order), flat_q1, flat_q2, flat_rho)
    pairs = n1 * n2
    return (
        values[:pairs].reshape(n1, n2),
        dots[:pairs].reshape(n1, n2),
        values[pairs : pairs + n1],
        values[pairs + n1 :],
    )


def _correlation(q1, q2, c, diagonal):
    """ρ = c/√(q1 q2) [n1, n2] clipped to [−1, 1]; 0 where a variance is 0 (zero-norm input, no
    bias); exactly 1 on ``diagonal``. The 1/√q are taken per row and column, not per entry."""
    inv1 = jnp.where(q1 > 0, jax.lax.rsqrt(jnp.where(q1 > 0, q1, 1.0)), 0.0)
    inv2 = jnp.where(q2 > 0, jax.lax.rsqrt(jnp.where(q2 > 0, q2, 1.0)), 0.0)
    rho = jnp.clip(c * inv1[:, None] * inv2[None, :], -1.0, 1.0)
    return rho if diagonal is None else rho.at[diagonal].set(1.0)


def _relu_pair(q1, q2, c, diagonal):
    """Arc-cosine kernel: E[relu(u)relu(v)] = √(q1 q2)(sin θ + (π − θ) cos θ)/(2π) and
    E[relu'(u)relu'(v)] = (π − θ)/(2π), cos θ = ρ.

    θ = arccos ρ by :func:`ntkpipe.core._inverse_trig.arccos` (XLA's is 25× slower on CPU),
    sin θ = √((1 − ρ)(1 + ρ)). A zero-variance side gives 0 and θ = π/2 (the value
    neural-tangents uses; it multiplies a zero NTK row in that case).
    """
    rho = _correlation(q1, q2, c, diagonal)
    sin = jnp.sqrt((1 - rho) * (1 + rho))
    theta = arccos(rho)
    scale = (jnp.sqrt(q1) / (2 * jnp.pi))[:, None] * jnp.sqrt(q2)[None, :]
    return scale * (sin + (jnp.pi - theta) * rho), (jnp.pi - theta) / (2 * jnp.pi)


def _erf_pair(q1, q2, c, diagonal):
    """E[erf(u)erf(v)] = (2/π) arcsin(2c/√((1 + 2q1)(1 + 2q2))) and
    E[erf'(u)erf'(v)] = (4/π)/√D,  D = (1 + 2q1)(1 + 2q2) − 4c².

    D is computed as 1 + 2q1 + 2q2 + 4(q1 q2 − c²) with c² clipped to q1 q2 (Cauchy–Schwarz),
    so D ≥ 1: both are finite for any input, zero-norm ones included. The square roots of the
    per-input factors are taken per row and column, not per entry; arcsin is
    :func:`ntkpipe.core._inverse_trig.arcsin` (XLA's is 20× slower on CPU).
    """
    root1, root2 = jnp.sqrt(q1)[:, None], jnp.sqrt(q2)[None, :]
    bound = root1 * root2
    c = jnp.clip(c, -bound, bound)
    det = (1 + 2 * q1)[:, None] + (2 * q2)[None, :] + 4 * (bound * bound - c * c)
    inv = (2 * jax.lax.rsqrt(1 + 2 * q1))[:, None] * jax.lax.rsqrt(1 + 2 * q2)[None, :]
    arg = jnp.clip(c * inv, -1.0, 1.0)
    return 2 / jnp.pi * arcsin(arg), 4 / jnp.pi * jax.lax.rsqrt(det)


def _identity_pair(q1, q2, c, diagonal):
    return c, jnp.ones_like(c)


_CLOSED_FORMS = {
    # activation: (pair [n1, n2], variance E[φ(u)²] [n] for u ~ N(0, q))
    "relu": (_relu_pair, lambda q: q / 2),
    "erf": (_erf_pair, lambda q: 2 / jnp.pi * arcsin(2 * q / (1 + 2 * q))),
    "identity": (_identity_pair, lambda q: q),
}


def block_rows(config: RecursionConfig, n1: int, n2: int) -> int:
    """Rows of x1 per quadrature tile, so that a tile holds ≤ _MEMORY_BUDGET floats."""
    if not config.quadrature or config.depth == 0:
        return n1
    return max(1, _MEMORY_BUDGET // (n2 * config.quad_order))


def is_number(value) -> bool:
    """A real Python or NumPy scalar, not a bool."""
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)
