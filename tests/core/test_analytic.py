"""Infinite-width kernels and predictive distributions (core.analytic, paper §2.3, Eq. 12–16).

The kernels are checked against hand formulas (depth 0, identity activation), closed forms
against the quadrature, the quadrature against scipy's adaptive integration, and against the
empirical kernels of finite networks, whose error falls as width^−½. The predictive
distributions are checked against their limits (t = 0, t → ∞, footnote 10) and against the
dynamics of ntkpipe.core.dynamics, from which Eq. 14–15 follow by averaging over f0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from ntkpipe.core import _analytic_recursion, analytic, dynamics, kernels, models

D_IN = 4


def _inputs(n, seed, scale=1.0):
    return scale * jax.random.normal(jax.random.PRNGKey(seed), (n, D_IN))


X1 = _inputs(5, 0).at[2].set(0.0)  # a zero-norm input
X2 = _inputs(3, 1)


def _close(ours, ref, rtol):
    """Elementwise |ours − ref| ≤ rtol · (|ref| + max|ref|·1e-3): relative, robust to zeros."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * 1e-3 * np.max(np.abs(ref)))


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize(
    "activation, parameterization, b_std, x2",
    [
        ("relu", "ntk", 0.2, X2),
        ("relu", "standard", 0.0, None),
        ("erf", "ntk", None, None),
        ("erf", "standard", 0.5, X2),
    ],
)
def test_quadrature_equals_closed_forms(activation, parameterization, b_std, x2):
    kw = dict(depth=2, activation=activation, w_std=1.5, b_std=b_std)
    kw.update(parameterization=parameterization, width=100)
    closed = analytic.kernels(X1, x2, method="closed_form", **kw)
    quad = analytic.kernels(X1, x2, method="quadrature", **kw)
    for c, q in zip(closed, quad, strict=True):
        assert np.all(np.isfinite(c))
        _close(q, c, rtol=1e-6)


def test_tanh_quadrature_is_converged_against_scipy():
    """One hidden tanh layer: K and Θ from nested adaptive quadrature (scipy) for one pair."""
    w_std, b_std = 1.8, 0.3
    x = _inputs(2, 7, scale=1.5)
    nngp, ntk = analytic.kernels(x, depth=1, activation="tanh", w_std=w_std, b_std=b_std)
    k0 = np.asarray(w_std**2 * x @ x.T / D_IN + b_std**2)  # first-layer pre-activation kernel
    e_phi = _gaussian_expectation(np.tanh, k0[0, 0], k0[1, 1], k0[0, 1])
    e_dphi = _gaussian_expectation(lambda h: 1 - np.tanh(h) ** 2, k0[0, 0], k0[1, 1], k0[0, 1])
    expected_nngp = w_std**2 * e_phi + b_std**2
    expected_ntk = expected_nngp + w_std**2 * k0[0, 1] * e_dphi
    assert float(nngp[0, 1]) == pytest.approx(expected_nngp, rel=1e-8)
    assert float(ntk[0, 1]) == pytest.approx(expected_ntk, rel=1e-8)


def test_tanh_default_order_is_within_1e_6_at_large_variance():
    """First-layer variances q from 8 to 34: the default order agrees with order 96 to 1e-6."""
    x = _inputs(4, 3, scale=2.0)
    kw = dict(depth=1, activation="tanh", w_std=2.0, b_std=0.1)
    default = analytic.kernels(x, **kw)
    fine = analytic.kernels(x, quad_order=96, **kw)
    for d, f in zip(default, fine, strict=True):
        _close(d, f, rtol=1e-6)


@pytest.mark.parametrize("b_std", [0.0, 0.7])
def test_depth_zero_is_the_affine_input_kernel(b_std):
    dot = np.asarray(X1 @ X2.T)
    nngp, ntk = analytic.kernels(X1, X2, depth=0, activation="relu", w_std=1.3, b_std=b_std)
    expected = 1.3**2 * dot / D_IN + b_std**2
    _close(nngp, expected, rtol=1e-13)
    _close(ntk, expected, rtol=1e-13)
    _, ntk_std = analytic.kernels(
        X1, X2, depth=0, activation="relu", w_std=1.3, b_std=b_std, parameterization="standard"
    )
    _close(ntk_std, dot + (1.0 if b_std else 0.0), rtol=1e-13)


@pytest.mark.parametrize("method", ["auto", "quadrature"])
def test_identity_activation_hand_formulas(method):
    """Depth 2 (three Dense layers), σ_w = 1.2, σ_b = 0.4, both parameterizations."""
    s2, b2, width = 1.2**2, 0.4**2, 50
    k0 = np.asarray(X1 @ X2.T) / D_IN
    k1 = s2 * k0 + b2
    k2 = s2 * k1 + b2
    k3 = s2 * k2 + b2
    ntk_param = k3 + s2 * (k2 + s2 * k1)
    theta1 = D_IN * k0 + 1
    theta2 = width * k1 + s2 * theta1 + 1
    standard = width * k2 + s2 * theta2 + 1
    kw = dict(depth=2, activation="identity", w_std=1.2, b_std=0.4, method=method)
    nngp, ntk = analytic.kernels(X1, X2, **kw)
    _, ntk_std = analytic.kernels(X1, X2, parameterization="standard", width=width, **kw)
    _close(nngp, k3, rtol=1e-12)
    _close(ntk, ntk_param, rtol=1e-12)
    _close(ntk_std, standard, rtol=1e-12)


@pytest.mark.parametrize(
    "activation, parameterization, widths",
    [("relu", "ntk", (64, 256, 1024)), ("tanh", "standard", (64, 256, 1024))],
)
def test_empirical_kernels_converge_as_inverse_sqrt_width(activation, parameterization, widths):
    """RMS over 8 seeds of ‖Θ̂ − Θ‖_F/‖Θ‖_F (and K̂ for NTK param.) ∝ width^s, s ∈ [−0.8, −0.3]."""
    x = _inputs(5, 11)
    keys = jax.random.split(jax.random.PRNGKey(2), 8)
    errors = []
    for width in widths:
        nngp, ntk = analytic.kernels(
            x, depth=1, activation=activation, w_std=1.4, b_std=0.1,
            parameterization=parameterization, width=width,
        )  # fmt: skip
        net = models.mlp(1, width, 1, activation, parameterization, w_std=1.4, b_std=0.1)
        emp_ntk, emp_nngp = jax.lax.map(jax.jit(lambda key, net=net: _empirical(net, key, x)), keys)
        errors.append([_rms_rel(emp_ntk, ntk), _rms_rel(emp_nngp, nngp)])
    errors = np.array(errors)
    slopes = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.8 <= slopes[0] <= -0.3, (errors, slopes)
    if parameterization == "ntk":  # the standard readout Gram grows with the width
        assert -0.8 <= slopes[1] <= -0.3, (errors, slopes)


def test_symmetric_call_blocking_and_zero_inputs(monkeypatch):
    kw = dict(depth=1, activation="tanh", w_std=1.4, b_std=0.0)
    nngp, ntk = analytic.kernels(X1, **kw)
    nngp_12, ntk_12 = analytic.kernels(X1, X1, **kw)
    _close(nngp, nngp_12, rtol=1e-12)
    _close(ntk, ntk_12, rtol=1e-12)
    np.testing.assert_allclose(ntk, ntk.T, rtol=1e-14)
    # the zero input, without bias, has zero kernels; everything is finite
    assert np.all(np.isfinite(ntk)) and np.all(np.isfinite(nngp))
    np.testing.assert_array_equal(ntk[2], 0.0)
    budget = X1.shape[0] * analytic.DEFAULT_QUAD_ORDER
    monkeypatch.setattr(_analytic_recursion, "_MEMORY_BUDGET", budget)
    blocked = analytic.kernels(X1, **kw)  # one row per block
    _close(blocked[0], nngp, rtol=1e-13)
    _close(blocked[1], ntk, rtol=1e-13)


def test_kernel_settings_are_checked():
    kw = dict(depth=1, activation="relu", w_std=1.0, b_std=0.1)
    with pytest.raises(ValueError, match="width is required"):
        analytic.kernels(X1, **{**kw, "parameterization": "standard"})
    with pytest.raises(ValueError, match="activation must be one of"):
        analytic.kernels(X1, **{**kw, "activation": "softplus"})
    with pytest.raises(ValueError, match="no closed form"):
        analytic.kernels(X1, **{**kw, "activation": "tanh"}, method="closed_form")
    with pytest.raises(ValueError, match="same input dimension"):
        analytic.kernels(X1, X2[:, :2], **kw)
    with pytest.raises(ValueError, match="depth must be"):
        analytic.kernels(X1, **{**kw, "depth": -1})
    with pytest.raises(ValueError, match="b_std must be"):
        analytic.kernels(X1, **{**kw, "b_std": -0.1})
    with pytest.raises(ValueError, match="quad_order"):
        analytic.kernels(X1, **kw, quad_order=1)


# ----------------------------------------------------------------------------- predictive


@pytest.fixture(scope="module")
def gp():
    """Analytic relu kernels on 6 train and 3 test inputs, targets with k = 2."""
    x, xt = _inputs(6, 20), _inputs(3, 21)
    both = jnp.concatenate([x, xt])
    nngp, ntk = analytic.kernels(both, depth=2, activation="relu", w_std=1.4, b_std=0.1)
    y = jax.random.normal(jax.random.PRNGKey(22), (6, 2))
    split = lambda k: dict(tt=k[:6, :6], st=k[6:, :6], ss=k[6:, 6:])
    return dict(nngp=split(nngp), ntk=split(ntk), y=y)


def _ntk_gp(gp, t, learning_rate=1.0):
    n, k = gp["ntk"], gp["nngp"]
    return analytic.ntk_gp_predictive(
        n["tt"], n["st"], k["tt"], k["st"], k["ss"], gp["y"], t, learning_rate=learning_rate
    )


def test_ntk_gp_at_t0_is_the_prior(gp):
    mean, cov = _ntk_gp(gp, 0.0)
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_allclose(cov, gp["nngp"]["ss"], rtol=1e-14)


def test_ntk_gp_mean_and_cov_follow_the_linearized_dynamics(gp):
    """Eq. 14–15 are the mean and covariance of Eq. 10–11 over f0 ~ N(0, K) (same time units)."""
    times, eta = np.array([0.0, 0.5, 3.0, 40.0]), 0.7
    mean, cov = _ntk_gp(gp, times, learning_rate=eta)
    n_ = gp["ntk"]
    predict = dynamics.gradient_descent_mse(n_["tt"], gp["y"], eta)
    _, mean_dyn = predict(times, 0.0, 0.0, n_["st"])
    _close(mean, mean_dyn, rtol=1e-10)
    # f_test_t = f_test_0 − A_t (f_0 − Y): A_t from the dynamics with f_0 = I, Y = 0
    # 6 columns instead of k = 2: the learning rate 3η keeps c = η/(n·k) = 3η/(n·6)
    predict_a = dynamics.gradient_descent_mse(n_["tt"], jnp.zeros((6, 6)), 3 * eta)
    _, minus_a = predict_a(times, jnp.eye(6), jnp.zeros((3, 6)), n_["st"])
    k = gp["nngp"]
    joint = np.block([[k["ss"], k["st"]], [k["st"].T, k["tt"]]])
    for i in range(len(times)):
        m = np.hstack([np.eye(3), np.asarray(minus_a[i])])
        _close(cov[i], m @ joint @ m.T, rtol=1e-9)


def test_ntk_gp_infinite_time(gp):
    mean_inf, cov_inf = _ntk_gp(gp, None)
    mean_big, cov_big = _ntk_gp(gp, np.array([1e13]))
    _close(mean_inf, mean_big[0], rtol=1e-9)
    _close(cov_inf, cov_big[0], rtol=1e-9)
    n_, k = gp["ntk"], gp["nngp"]
    a = np.asarray(n_["st"]) @ np.linalg.inv(n_["tt"])
    _close(mean_inf, a @ gp["y"], rtol=1e-9)
    cross = a @ np.asarray(k["st"]).T
    _close(cov_inf, k["ss"] + a @ k["tt"] @ a.T - cross - cross.T, rtol=1e-8)  # Eq. 16
    assert mean_inf.shape == (3, 2) and cov_inf.shape == (3, 3)
    assert mean_big.shape == (1, 3, 2) and cov_big.shape == (1, 3, 3)


def test_ntk_gp_with_theta_equal_k_is_the_nngp_posterior(gp):
    k = gp["nngp"]
    mean, cov = analytic.ntk_gp_predictive(
        k["tt"], k["st"], k["tt"], k["st"], k["ss"], gp["y"], None
    )
    mean_post, cov_post = analytic.nngp_posterior(k["tt"], k["st"], k["ss"], gp["y"])
    _close(mean, mean_post, rtol=1e-9)
    _close(cov, cov_post, rtol=1e-7)


def test_identity_without_bias_ntk_gp_equals_nngp_posterior():
    """Footnote 10: identity activation, no bias ⇒ Θ ∝ K ⇒ Eq. 16 is the NNGP posterior."""
    x = jax.random.normal(jax.random.PRNGKey(30), (6, 9))  # d_in > n: K has full rank
    nngp, ntk = analytic.kernels(x, depth=2, activation="identity", w_std=1.3, b_std=None)
    _close(ntk, 3 * nngp, rtol=1e-12)
    y = jax.random.normal(jax.random.PRNGKey(31), (4, 1))
    tr, te = slice(0, 4), slice(4, 6)
    args = (nngp[tr, tr], nngp[te, tr], nngp[te, te], y)
    mean, cov = analytic.ntk_gp_predictive(ntk[tr, tr], ntk[te, tr], *args, None)
    mean_post, cov_post = analytic.nngp_posterior(*args)
    _close(mean, mean_post, rtol=1e-9)
    _close(cov, cov_post, rtol=1e-7)


def test_nngp_posterior_interpolates_and_handles_singular_k(gp):
    k = gp["nngp"]
    mean, cov = analytic.nngp_posterior(k["tt"], k["tt"], k["tt"], gp["y"])
    _close(mean, gp["y"], rtol=1e-8)
    assert np.max(np.abs(cov)) < 1e-8 * np.max(np.abs(k["tt"]))
    # a rank-3 K (identity activation, d_in = 3 < n = 6): the pseudo-inverse answer, no NaN
    x = jax.random.normal(jax.random.PRNGKey(40), (8, 3))
    nngp, _ = analytic.kernels(x, depth=1, activation="identity", w_std=1.0, b_std=0.0)
    k_tt, k_st, k_ss = nngp[:6, :6], nngp[6:, :6], nngp[6:, 6:]
    mean, cov = analytic.nngp_posterior(k_tt, k_st, k_ss, gp["y"])
    pinv = np.linalg.pinv(np.asarray(k_tt), rcond=1e-10)
    _close(mean, k_st @ pinv @ gp["y"], rtol=1e-7)
    assert np.all(np.isfinite(cov))
    # diag_reg is relative to the mean diagonal (neural-tangents' convention)
    mean_reg, _ = analytic.nngp_posterior(k_tt, k_st, k_ss, gp["y"], diag_reg=0.1)
    reg = k_tt + 0.1 * np.trace(k_tt) / 6 * np.eye(6)
    _close(mean_reg, k_st @ np.linalg.solve(reg, gp["y"]), rtol=1e-9)


def test_predictive_inputs_are_checked(gp):
    n_, k = gp["ntk"], gp["nngp"]
    with pytest.raises(ValueError, match="nngp_test_train must have shape"):
        analytic.nngp_posterior(k["tt"], k["st"][:, :5], k["ss"], gp["y"])
    with pytest.raises(ValueError, match="diag_reg"):
        analytic.nngp_posterior(k["tt"], k["st"], k["ss"], gp["y"], diag_reg=-1.0)
    with pytest.raises(ValueError, match="t must be ≥ 0"):
        _ntk_gp(gp, np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="learning_rate"):
        _ntk_gp(gp, 1.0, learning_rate=0.0)
    with pytest.raises(ValueError, match="ntk_test_train must have shape"):
        analytic.ntk_gp_predictive(n_["tt"], n_["st"].T, k["tt"], k["st"], k["ss"], gp["y"])


# ----------------------------------------------------------------------------- helpers


def _empirical(net, key, x):
    params = net.init(key, x)
    return kernels.empirical_ntk(net, params, x), kernels.empirical_nngp(net, params, x)


def _rms_rel(emp, ref):
    rel = jnp.linalg.norm(emp - ref, axis=(1, 2)) / jnp.linalg.norm(ref)
    return float(jnp.sqrt(jnp.mean(rel**2)))


def _gaussian_expectation(f, q1, q2, c):
    """E[f(u) f(v)], (u, v) ~ N(0, [[q1, c], [c, q2]]), by nested adaptive quadrature."""
    rho = c / np.sqrt(q1 * q2)
    normal = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)

    def inner(a):
        g = lambda b: f(np.sqrt(q2) * (rho * a + np.sqrt(1 - rho**2) * b)) * normal(b)
        return integrate.quad(g, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0]

    outer = lambda a: f(np.sqrt(q1) * a) * inner(a) * normal(a)
    return integrate.quad(outer, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0]
