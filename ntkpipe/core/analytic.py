"""Infinite-width kernels of MLPs and the predictive distributions they imply (paper §2.3).

**Kernels.** For the networks of :func:`ntkpipe.core.models.mlp` (``depth`` = L hidden layers and a
linear readout, Dense layers l = 0 … L of fan-in n_l), the output NNGP kernel K (Eq. 12) and the
NTK Θ follow from the recursion over pre-activation kernels (SM §E; conventions of
neural-tangents' ``stax``, so that the numbers agree with ``stax.serial(Dense, φ, …, Dense)``):

    input:     K_in = x·x'/d_in,   Θ_in = 0,                               n_0 = d_in
    Dense l:   K_l = σ_w² K_in + σ_b²
               Θ_l = K_l + σ_w² Θ_in                               (NTK parameterization)
               Θ_l = n_l K_in + σ_w² Θ_in + [bias]                 (standard parameterization)
    φ (l < L): K_in ← E[φ(u) φ(v)],  Θ_in ← Θ_l · E[φ'(u) φ'(v)],  n_{l+1} = width,

with (u, v) ~ N(0, [[K_l(x, x), K_l(x, x')], [K_l(x, x'), K_l(x', x')]]). In the standard
parameterization a Dense layer's weight gradient is its input itself (not σ_w/√n_l times it), so
its NTK term is n_l times the input kernel and a bias adds 1: Θ grows with the width, which
therefore must be given (``width``); K does not depend on it. A network has bias parameters iff
``b_std`` is neither 0 nor None (the ``models.mlp`` convention; in neural-tangents ``b_std=0``
would still add a zero-initialized trainable bias, i.e. the ``+ 1`` above).

The Gaussian expectations are in closed form for ``relu`` (arc-cosine kernel) and ``erf``
(arcsine formula), and trivially for ``identity``; any activation (``tanh``, or any elementwise
JAX function) can be integrated numerically, see :func:`_gaussian_pair`.

**Predictive distributions.** :func:`nngp_posterior` is the exact Bayesian posterior of the
NNGP (Eq. 13); :func:`ntk_gp_predictive` is the distribution over initializations of the
linearized network trained by gradient flow, at finite times (Eq. 14–15) and at t → ∞ (Eq. 16).
Time is measured exactly as in :mod:`ntkpipe.core.dynamics`: with the MSE loss ½ · mean over the n·k
entries, the train residual decays as exp(−η Θ t / (n·k)), t in units of optimizer steps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf

from ntkpipe.core.dynamics import flow_factors
from ntkpipe.core.models import ACTIVATIONS, PARAMETERIZATIONS

__all__ = [
    "CLOSED_FORM_ACTIVATIONS",
    "DEFAULT_QUAD_ORDER",
    "METHODS",
    "kernels",
    "nngp_posterior",
    "ntk_gp_predictive",
]

CLOSED_FORM_ACTIVATIONS = ("relu", "erf", "identity")
"""Activations whose Gaussian expectations are computed in closed form by ``method="auto"``."""

METHODS = ("auto", "closed_form", "quadrature")

DEFAULT_QUAD_ORDER = 40
"""Gauss nodes per dimension of the bivariate quadrature (see :func:`_gaussian_pair`).

Why 40: measured against order 128 (itself checked against scipy's adaptive integration), the
error of E[φ(u)φ(v)] and E[φ'(u)φ'(v)], relative to √(E[φ(u)²] E[φ(v)²]), over correlations
from −0.999 to 1, is at order 40: ≤ 1e-14 for variances q ≤ 3, ≤ 6e-10 (tanh) and 2e-9 (erf)
at q = 10, ≤ 2e-7 (tanh) and 1.2e-6 (erf') at q = 40. Order 32 would already miss 1e-6 for
tanh' at q ≈ 40 (3e-6); 48 halves nothing that matters at q = O(1). The sweep's inputs have
‖x‖²/d_in = 1, so q ≈ σ_w² + σ_b² = O(1) and the 1e-6 target holds with a wide margin after
any number of layers. ReLU is integrated to rounding at any order (its kink lies on the angle
cuts). Cost: 4·40² = 6400 evaluations of φ and of φ' per pair of inputs and layer.
"""

_MEMORY_BUDGET = 1 << 22  # floats of one quadrature tile [rows, n2, radial nodes] (32 MB in f64)


def kernels(
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    depth: int,
    activation: str | Callable[[jax.Array], jax.Array],
    w_std: float,
    b_std: float | None,
    parameterization: str = "ntk",
    width: int | None = None,
    method: str = "auto",
    quad_order: int = DEFAULT_QUAD_ORDER,
) -> tuple[jax.Array, jax.Array]:
    """Infinite-width output kernels K(x1, x2) (NNGP, Eq. 12) and Θ(x1, x2) (NTK) of an MLP.

    The kernels are per output (the Θ ⊗ I convention: the traced kernels of a network with k
    outputs); they do not depend on the number of outputs.

    Args:
        x1: inputs [n1, d_in].
        x2: inputs [n2, d_in]; None means x2 = x1.
        depth: number of hidden layers L ≥ 0 (the readout Dense layer sits on top).
        activation: ``"relu"``, ``"erf"``, ``"tanh"``, ``"identity"`` (the names of
            :data:`ntkpipe.core.models.ACTIVATIONS`), or any elementwise JAX function φ (then only
            ``method="quadrature"`` applies and φ' is taken by ``jax.grad``).
        w_std: σ_w > 0.
        b_std: σ_b ≥ 0; 0 or None means no bias parameters.
        parameterization: ``"ntk"`` or ``"standard"`` (see the module docstring).
        width: hidden width n; required by the standard parameterization when depth ≥ 1 (its
            NTK grows with n), ignored by the NTK parameterization.
        method: ``"auto"`` (closed form for relu, erf and identity, quadrature otherwise),
            ``"closed_form"`` (an error for other activations) or ``"quadrature"`` (for every
            activation, e.g. to check the closed forms).
        quad_order: Gauss nodes per dimension of the quadrature (≥ 2), see
            :data:`DEFAULT_QUAD_ORDER`.

    Returns:
        ``(nngp, ntk)``, each [n1, n2], in the dtype of the inputs (float64 when x64 is on).

    Raises:
        ValueError: on a bad shape or setting, before any computation.
    """
    x1, x2 = _check_inputs(x1, x2)
    config = _config(depth, activation, w_std, b_std, parameterization, width, method, quad_order)
    d_in = x1.shape[1]
    sq1 = jnp.sum(x1 * x1, axis=1) / d_in
    symmetric = x2 is None
    config = config._replace(symmetric=symmetric)
    if symmetric:
        x2, sq2 = x1, sq1
    else:
        sq2 = jnp.sum(x2 * x2, axis=1) / d_in
    rows = _block_rows(config, x1.shape[0], x2.shape[0])
    blocks = [
        _recursion(config, x1[i : i + rows], x2, sq1[i : i + rows], sq2, i)
        for i in range(0, x1.shape[0], rows)
    ]
    if len(blocks) == 1:
        return blocks[0]
    return tuple(jnp.concatenate(parts, axis=0) for parts in zip(*blocks, strict=True))


def nngp_posterior(
    nngp_train_train: jax.Array,
    nngp_test_train: jax.Array,
    nngp_test_test: jax.Array,
    y_train: jax.Array,
    *,
    diag_reg: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """Posterior predictive of the NNGP given f(X) = Y (Eq. 13), per output.

    μ(X_T) = K(X_T, X) K⁻¹ Y,   Σ(X_T, X_T) = K(X_T, X_T) − K(X_T, X) K⁻¹ K(X, X_T),

    with K = K(X, X) + diag_reg · mean(diag K) · I (the relative regularization of
    neural-tangents' ``diag_reg``). K⁻¹ is applied through one eigendecomposition as a
    pseudo-inverse: eigenvalues below n·ε·λ_max are treated as 0, so a singular K gives the
    minimum-norm interpolant rather than NaNs.

    Args:
        nngp_train_train: K(X, X) [n, n].
        nngp_test_train: K(X_T, X) [n_test, n].
        nngp_test_test: K(X_T, X_T) [n_test, n_test].
        y_train: targets Y [n, k].
        diag_reg: relative diagonal regularization ≥ 0.

    Returns:
        ``(mean [n_test, k], cov [n_test, n_test])``; the k outputs are independent with the
        same covariance.
    """
    k_tt, k_st, k_ss, y = _check_predictive(
        nngp_train_train, nngp_test_train, nngp_test_test, y_train
    )
    if not _is_number(diag_reg) or not diag_reg >= 0 or not math.isfinite(diag_reg):
        raise ValueError(f"diag_reg must be a finite number ≥ 0; got {diag_reg!r}.")
    return _nngp_posterior(k_tt, k_st, k_ss, y, jnp.asarray(diag_reg, k_tt.dtype))


def ntk_gp_predictive(
    ntk_train_train: jax.Array,
    ntk_test_train: jax.Array,
    nngp_train_train: jax.Array,
    nngp_test_train: jax.Array,
    nngp_test_test: jax.Array,
    y_train: jax.Array,
    t: jax.Array | float | None = None,
    *,
    learning_rate: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """Distribution of the infinitely wide linearized network trained on MSE (Eq. 14–16).

    With Θ = V Λ Vᵀ (one eigendecomposition) and c = η/(n·k),
    A_t = Θ(X_T, X) Θ⁻¹ (I − e^{−cΘt}) = Θ(X_T, X) V diag((1 − e^{−cλt})/λ) Vᵀ:

        μ_t = A_t Y                                                            (Eq. 14)
        Σ_t = K(X_T, X_T) + A_t K A_tᵀ − (A_t K(X, X_T) + K(X_T, X) A_tᵀ)      (Eq. 15)

    and t → ∞ replaces (1 − e^{−cλt})/λ by 1/λ (Eq. 16). Modes with λ ≈ 0 are stable: at finite
    t their factor tends to c·t; at t = ∞ eigenvalues below n·ε·λ_max count as 0 (pseudo-inverse).
    At t = 0 the distribution is the prior N(0, K(X_T, X_T)).

    Args:
        ntk_train_train: Θ(X, X) [n, n].
        ntk_test_train: Θ(X_T, X) [n_test, n].
        nngp_train_train: K(X, X) [n, n].
        nngp_test_train: K(X_T, X) [n_test, n].
        nngp_test_test: K(X_T, X_T) [n_test, n_test].
        y_train: targets Y [n, k].
        t: time(s) ≥ 0 in optimizer steps, a scalar or an array [n_t]; None means t → ∞.
        learning_rate: η > 0.

    Returns:
        ``(mean, cov)``: [n_t, n_test, k] and [n_t, n_test, n_test] for an array t, without the
        leading axis for a scalar t or t=None.
    """
    k_tt, k_st, k_ss, y = _check_predictive(
        nngp_train_train, nngp_test_train, nngp_test_test, y_train
    )
    theta = _square("ntk_train_train", ntk_train_train, k_tt.shape[0])
    theta_st = jnp.asarray(ntk_test_train)
    if theta_st.shape != k_st.shape:
        raise ValueError(
            f"ntk_test_train must have shape {k_st.shape} like nngp_test_train; "
            f"got {theta_st.shape}."
        )
    _check_learning_rate(learning_rate)
    times = None if t is None else _check_times(t)
    rate = jnp.asarray(learning_rate / y.size, k_tt.dtype)
    flat = jnp.full((1,), jnp.inf) if times is None else times.reshape(-1)
    theta_st = theta_st.astype(k_tt.dtype)
    mean, cov = _ntk_gp(theta, theta_st, k_tt, k_st, k_ss, y, flat.astype(k_tt.dtype), rate)
    shape = () if times is None else times.shape
    return mean.reshape(shape + mean.shape[1:]), cov.reshape(shape + cov.shape[1:])


# ----------------------------------------------------------------------------- private helpers


class _Config(NamedTuple):
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


def _config(depth, activation, w_std, b_std, parameterization, width, method, quad_order):
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an integer ≥ 0 (hidden layers); got {depth!r}.")
    if not callable(activation) and activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)} or an elementwise function; "
            f"got {activation!r}."
        )
    if not _is_number(w_std) or not w_std > 0 or not math.isfinite(w_std):
        raise ValueError(f"w_std must be a finite number > 0; got {w_std!r}.")
    b_std = 0.0 if b_std is None else b_std
    if not _is_number(b_std) or not b_std >= 0 or not math.isfinite(b_std):
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
    return _Config(
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
def _recursion(config: _Config, x1, x2, sq1, sq2, offset):
    """The layer recursion of the module docstring on the block of rows offset… of x1.

    When x2 is x1, the pre-activation entries (i, offset + i) are set to the variances before
    every nonlinearity, so that cos θ = 1 there to the last bit (arccos near 1 would otherwise
    turn a rounding error of 1e-16 into an angle of 1e-8, a 1e-9 relative error of Θ(x, x)).
    """
    d_in = x1.shape[1]
    k_in = x1 @ x2.T / d_in
    k, q1, q2, theta = _dense(config, d_in, k_in, sq1, sq2, jnp.zeros_like(k_in))
    if config.symmetric:
        rows, cols = jnp.arange(x1.shape[0])[:, None] + offset, jnp.arange(x2.shape[0])[None, :]
        on_diagonal = rows == cols
    for _ in range(config.depth):
        if config.symmetric:
            q1 = jax.lax.dynamic_slice_in_dim(q2, offset, x1.shape[0])
            k = jnp.where(on_diagonal, q1[:, None], k)
        k_in, dot, q1_in, q2_in = _activation_kernels(
            config, k, q1, q2, on_diagonal if config.symmetric else None
        )
        k, q1, q2, theta = _dense(config, config.width, k_in, q1_in, q2_in, theta * dot)
    return k, theta


def _dense(config: _Config, fan_in, k_in, q1_in, q2_in, theta_in):
    """One Dense layer: pre-activation kernel K, variances q1, q2, and Θ from the layer input's."""
    k = config.w_var * k_in + config.b_var
    q1 = config.w_var * q1_in + config.b_var
    q2 = config.w_var * q2_in + config.b_var
    if config.standard:
        theta = fan_in * k_in + config.w_var * theta_in + (1.0 if config.use_bias else 0.0)
    else:
        theta = k + config.w_var * theta_in
    return k, q1, q2, theta


def _activation_kernels(config: _Config, k, q1, q2, on_diagonal):
    """E[φ(u)φ(v)], E[φ'(u)φ'(v)] [n1, n2] and the variances E[φ(u)²] [n1], E[φ(v)²] [n2].

    on_diagonal: mask [n1, n2] of the pairs (x, x) whose correlation is exactly 1, or None.
    """
    rho = _correlation(q1[:, None], q2[None, :], k)
    if on_diagonal is not None:
        rho = jnp.where(on_diagonal, 1.0, rho)
    if not config.quadrature:
        pair = _CLOSED_FORMS[config.activation]
        value, dot = pair(q1[:, None], q2[None, :], k, rho)
        var1, _ = pair(q1, q1, q1, jnp.ones_like(q1))
        var2, _ = pair(q2, q2, q2, jnp.ones_like(q2))
        return value, dot, var1, var2
    # one quadrature over the n1·n2 pairs and the n1 + n2 variances (one scan to compile)
    n1, n2 = k.shape
    flat_q1 = jnp.concatenate([jnp.repeat(q1, n2), q1, q2])
    flat_q2 = jnp.concatenate([jnp.tile(q2, n1), q1, q2])
    flat_rho = jnp.concatenate([rho.reshape(-1), jnp.ones(n1 + n2, rho.dtype)])
    phi, dphi = _functions(config.activation)
    values, dots = _gaussian_pair(phi, dphi, _nodes(config.quad_order), flat_q1, flat_q2, flat_rho)
    pairs = n1 * n2
    return (
        values[:pairs].reshape(n1, n2),
        dots[:pairs].reshape(n1, n2),
        values[pairs : pairs + n1],
        values[pairs + n1 :],
    )


def _correlation(q1, q2, c):
    """ρ = c/√(q1 q2) clipped to [−1, 1]; 0 where a variance is 0 (zero-norm input, no bias)."""
    s = jnp.sqrt(q1 * q2)
    positive = s > 0
    return jnp.where(positive, jnp.clip(c / jnp.where(positive, s, 1.0), -1.0, 1.0), 0.0)


def _relu_pair(q1, q2, c, rho):
    """Arc-cosine kernel: E[relu(u)relu(v)] = √(q1 q2)(sin θ + (π − θ) cos θ)/(2π) and
    E[relu'(u)relu'(v)] = (π − θ)/(2π), cos θ = ρ.

    A zero-variance side gives 0 and θ = π/2 (the value neural-tangents uses; it multiplies a
    zero NTK row in that case).
    """
    theta = jnp.arccos(rho)
    value = jnp.sqrt(q1 * q2) * (jnp.sin(theta) + (jnp.pi - theta) * rho) / (2 * jnp.pi)
    return value, (jnp.pi - theta) / (2 * jnp.pi)


def _erf_pair(q1, q2, c, rho):
    """E[erf(u)erf(v)] = (2/π) arcsin(2c/√((1 + 2q1)(1 + 2q2))) and
    E[erf'(u)erf'(v)] = (4/π)/√D,  D = (1 + 2q1)(1 + 2q2) − 4c².

    D is computed as 1 + 2q1 + 2q2 + 4(q1 q2 − c²) with c² clipped to q1 q2 (Cauchy–Schwarz),
    so D ≥ 1: both are finite for any input, zero-norm ones included.
    """
    bound = jnp.sqrt(q1 * q2)
    c = jnp.clip(c, -bound, bound)
    det = 1 + 2 * q1 + 2 * q2 + 4 * (q1 * q2 - c * c)
    arg = jnp.clip(2 * c / jnp.sqrt((1 + 2 * q1) * (1 + 2 * q2)), -1.0, 1.0)
    return 2 / jnp.pi * jnp.arcsin(arg), 4 / jnp.pi / jnp.sqrt(det)


def _identity_pair(q1, q2, c, rho):
    shape = jnp.broadcast_shapes(q1.shape, q2.shape, c.shape)
    return jnp.broadcast_to(c, shape), jnp.ones(shape, c.dtype)


_CLOSED_FORMS = {"relu": _relu_pair, "erf": _erf_pair, "identity": _identity_pair}


def _functions(activation):
    """φ and φ' as elementwise functions (explicit derivatives for the named activations)."""
    if callable(activation):
        return activation, jnp.vectorize(jax.grad(activation))
    derivatives = {
        "relu": lambda h: (h > 0).astype(h.dtype),
        "erf": lambda h: 2 / jnp.sqrt(jnp.pi) * jnp.exp(-h * h),
        "tanh": lambda h: 1 - jnp.tanh(h) ** 2,
        "identity": jnp.ones_like,
    }
    phi = {"relu": jax.nn.relu, "erf": erf, "tanh": jnp.tanh, "identity": lambda h: h}
    return phi[activation], derivatives[activation]


def _gaussian_pair(phi, dphi, nodes, q1, q2, rho):
    """E[φ(u)φ(v)] and E[φ'(u)φ'(v)] for (u, v) ~ N(0, [[q1, ρ√(q1q2)], [ρ√(q1q2), q2]]).

    Polar Gauss quadrature of the bivariate Gaussian. With (u, v) = (√q1 x, √q2 (ρx + √(1−ρ²)y)),
    (x, y) ~ N(0, I), ρ = cos β, and (x, y) = r(cos α, sin α):

        E[F(u, v)] = 1/(2π) ∫₀^{2π} dα ∫₀^∞ r e^{−r²/2} F(√q1 r cos α, √q2 r cos(α − β)) dr.

    The radial integral uses the Gauss rule of the weight r e^{−r²/2} on [0, ∞) (the radial
    analogue of Gauss–Hermite), the angular one Gauss–Legendre on the four arcs between the
    lines u = 0 and v = 0 (cuts at α = π/2, π/2 + β, 3π/2, 3π/2 + β). On each arc sign(u) and
    sign(v) are fixed, so kinks and steep transitions of φ at 0 (ReLU's kink, its step
    derivative, tanh and erf at large variance) never fall inside a panel: ReLU comes out exact
    to rounding, smooth φ converge spectrally. A plain tensor Gauss–Hermite rule in (x, y) cuts
    across those lines and converges only algebraically (measured: 1e-2 relative error of the
    ReLU derivative kernel at 1024² nodes, 1e-4 for tanh' at q = 10 with 200² nodes). The arcs
    π apart map (u, v) to (−u, −v), so two arcs are integrated with F(u, v) + F(−u, −v).

    Args:
        phi, dphi: elementwise φ and φ' (dphi None: only the first expectation).
        nodes: ``(radial nodes, radial weights, Legendre nodes, Legendre weights)``.
        q1, q2, rho: broadcastable arrays of the variances and the correlation ρ ∈ [−1, 1].

    Returns:
        ``(E[φφ], E[φ'φ'] or None)`` with the broadcast shape.
    """
    r, wr, xa, wa = (jnp.asarray(a, dtype=rho.dtype) for a in nodes)
    shape = jnp.broadcast_shapes(q1.shape, q2.shape, rho.shape)
    s1, s2 = jnp.sqrt(jnp.broadcast_to(q1, shape)), jnp.sqrt(jnp.broadcast_to(q2, shape))
    beta = jnp.arccos(jnp.broadcast_to(rho, shape))
    # two arcs: [π/2, π/2 + β] and [π/2 + β, 3π/2], each with the Legendre nodes xa.
    starts = jnp.stack([jnp.full(shape, jnp.pi / 2), jnp.pi / 2 + beta])
    lengths = jnp.stack([beta, jnp.pi - beta])
    arc = jnp.repeat(jnp.arange(2), xa.shape[0])
    frac, weight = jnp.tile((xa + 1) / 2, 2), jnp.tile(wa / 2, 2)

    def integrand(f, u, v):
        return (f(u) * f(v) + f(-u) * f(-v)) @ wr

    def step(acc, node):
        a, fr, w = node
        alpha = starts[a] + lengths[a] * fr
        u = (s1 * jnp.cos(alpha))[..., None] * r
        v = (s2 * jnp.cos(alpha - beta))[..., None] * r
        scale = w * lengths[a]
        value = acc[0] + scale * integrand(phi, u, v)
        dot = acc[1] + scale * integrand(dphi, u, v) if dphi is not None else acc[1]
        return (value, dot), None

    zeros = jnp.zeros(shape, rho.dtype)
    (value, dot), _ = jax.lax.scan(step, (zeros, zeros), (arc, frac, weight))
    return value / (2 * jnp.pi), (dot / (2 * jnp.pi) if dphi is not None else None)


@functools.lru_cache(maxsize=16)
def _nodes(order: int) -> tuple[np.ndarray, ...]:
    r, wr = _radial_rule(order)
    xa, wa = np.polynomial.legendre.leggauss(order)
    return r, wr, xa, wa


def _radial_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule for ∫₀^∞ r e^{−r²/2} g(r) dr (weights sum to 1).

    The Jacobi matrix comes from the Stieltjes/Lanczos procedure on a discretization of the
    weight by composite Gauss–Legendre on [0, 16] (the weight's mass beyond 16 is e^{−128});
    the discretization integrates the polynomials of degree < 2·order × the weight to machine
    precision, so the rule is exact to rounding. Lanczos with full re-orthogonalization.
    """
    panels = np.linspace(0.0, 16.0, 9)
    x, w = np.polynomial.legendre.leggauss(100)
    edges = list(zip(panels[:-1], panels[1:], strict=True))
    grid = np.concatenate([(x + 1) / 2 * (b - a) + a for a, b in edges])
    mass = np.concatenate([w / 2 * (b - a) for a, b in edges])
    mass = mass * grid * np.exp(-grid * grid / 2)
    basis = np.zeros((grid.size, order))
    diag, off = np.zeros(order), np.zeros(order)
    vec = np.sqrt(mass) / np.linalg.norm(np.sqrt(mass))
    for i in range(order):
        basis[:, i] = vec
        z = grid * vec
        diag[i] = vec @ z
        for _ in range(2):
            z = z - basis[:, : i + 1] @ (basis[:, : i + 1].T @ z)
        off[i] = np.linalg.norm(z)
        vec = z / off[i]
    jacobi = np.diag(diag) + np.diag(off[:-1], 1) + np.diag(off[:-1], -1)
    nodes, vecs = np.linalg.eigh(jacobi)
    return nodes, vecs[0] ** 2 * mass.sum()


def _block_rows(config: _Config, n1: int, n2: int) -> int:
    """Rows of x1 per quadrature tile, so that a tile holds ≤ _MEMORY_BUDGET floats."""
    if not config.quadrature or config.depth == 0:
        return n1
    return max(1, _MEMORY_BUDGET // (n2 * config.quad_order))


@jax.jit
def _nngp_posterior(k_tt, k_st, k_ss, y, diag_reg):
    n = k_tt.shape[0]
    k_tt = k_tt + diag_reg * jnp.trace(k_tt) / n * jnp.eye(n, dtype=k_tt.dtype)
    evals, evecs = jnp.linalg.eigh(k_tt)  # symmetrizes its input
    inv = _pinv_factor(evals)
    proj = k_st @ evecs  # K(X_T, X) V   [n_test, n]
    mean = proj @ (inv[:, None] * (evecs.T @ y))
    cov = k_ss - (proj * inv) @ proj.T
    return mean, _symmetrize(cov)


@jax.jit
def _ntk_gp(theta, theta_st, k_tt, k_st, k_ss, y, times, rate):
    """Eq. 14–16 at times [n_t] (∞ allowed): mean [n_t, n_test, k], cov [n_t, n_test, n_test]."""
    evals, evecs = jnp.linalg.eigh(theta.astype(k_tt.dtype))  # symmetrizes its input
    proj = theta_st @ evecs  # Θ(X_T, X) V   [n_test, n]
    _, factor = flow_factors(evals, times, rate)  # (1 − e^{−cλt})/λ   [n_t, n]
    moments = jax.vmap(lambda f: _ntk_gp_moments(proj * f, evecs, k_tt, k_st, k_ss, y))
    return moments(factor)


def _ntk_gp_moments(proj_scaled, evecs, k_tt, k_st, k_ss, y):
    a = proj_scaled @ evecs.T  # A_t = Θ(X_T, X) Θ⁻¹ (I − e^{−cΘt})   [n_test, n]
    cross = a @ k_st.T  # A_t K(X, X_T)
    cov = k_ss + a @ k_tt @ a.T - cross - cross.T
    return a @ y, _symmetrize(cov)


def _pinv_factor(evals):
    """1/λ, with 0 for λ ≤ n·ε·λ_max (pseudo-inverse of a PSD matrix)."""
    cutoff = evals.shape[0] * jnp.finfo(evals.dtype).eps * jnp.max(jnp.abs(evals))
    keep = evals > cutoff
    return jnp.where(keep, 1.0 / jnp.where(keep, evals, 1.0), 0.0)


def _symmetrize(a):
    return (a + a.T) / 2


def _check_inputs(x1, x2):
    x1 = _as_inputs("x1", x1)
    if x2 is None:
        return x1, None
    x2 = _as_inputs("x2", x2)
    if x2.shape[1] != x1.shape[1]:
        raise ValueError(
            f"x1 and x2 must have the same input dimension; got x1 {x1.shape}, x2 {x2.shape}."
        )
    return x1, x2


def _as_inputs(name, x):
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape [n ≥ 1, d_in ≥ 1]; got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def _check_predictive(k_tt, k_st, k_ss, y):
    y = jnp.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"y_train must have shape [n, k]; got {y.shape} (reshape to [n, 1]).")
    n = y.shape[0]
    k_tt = _square("nngp_train_train", k_tt, n)
    k_st = jnp.asarray(k_st)
    if k_st.ndim != 2 or k_st.shape[1] != n:
        raise ValueError(f"nngp_test_train must have shape [n_test, {n}]; got {k_st.shape}.")
    k_ss = _square("nngp_test_test", k_ss, k_st.shape[0])
    dtype = jnp.result_type(k_tt.dtype, k_st.dtype, k_ss.dtype, y.dtype, float)
    return k_tt.astype(dtype), k_st.astype(dtype), k_ss.astype(dtype), y.astype(dtype)


def _square(name, k, n):
    k = jnp.asarray(k)
    if k.shape != (n, n):
        raise ValueError(f"{name} must have shape [{n}, {n}]; got {k.shape}.")
    return k


def _check_learning_rate(learning_rate):
    if not _is_number(learning_rate) or not learning_rate > 0 or not math.isfinite(learning_rate):
        raise ValueError(f"learning_rate must be a finite number > 0; got {learning_rate!r}.")


def _check_times(t):
    times = np.asarray(t, dtype=float)
    if times.ndim > 1:
        raise ValueError(f"t must be a scalar or a 1-d array [n_t]; got shape {times.shape}.")
    if np.any(np.isnan(times)) or np.any(times < 0):
        raise ValueError(f"t must be ≥ 0 (times in optimizer steps); got {t!r}.")
    return jnp.asarray(times)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)
