"""Closed-form MSE dynamics of the linearized network (ntkpipe.core.dynamics, paper Eq. 8–11).

References are independent of the closed form: explicit gradient descent on f_lin (built with
jax.jvp, its gradient with jax.grad), the function-space iteration in numpy, explicit jax.jacrev
Jacobians for the kernels, and scipy's matrix exponential for the time integral.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

from ntkpipe.core import dynamics, models

N, N_TEST, D_IN = 6, 3, 3


def _problem(out_dim, seed=0, depth=1, width=12):
    """A small float64 MLP, its f0 and explicit-Jacobian kernels (full and traced)."""
    net = models.mlp(depth, width, out_dim, "tanh", "ntk", w_std=1.3, b_std=0.2)
    kx, kt, ky, kp = jax.random.split(jax.random.PRNGKey(seed), 4)
    x = jax.random.normal(kx, (N, D_IN))
    xt = jax.random.normal(kt, (N_TEST, D_IN))
    y = jax.random.normal(ky, (N, out_dim))
    params = net.init(kp, x)
    flat, unravel = ravel_pytree(params)

    both = jnp.concatenate([x, xt])
    jac = jax.jit(jax.jacrev(lambda p: net.apply(unravel(p), both)))(flat)
    j, jt = jac[:N], jac[N:]  # [n, k, P]
    f_both = net.apply(params, both)
    full = jnp.einsum("iap,jbp->ijab", j, j)
    full_st = jnp.einsum("iap,jbp->ijab", jt, j)
    return dict(
        net=net, params=params, x=x, xt=xt, y=y,
        f0=f_both[:N], g0=f_both[N:], gd_step=_gd_step(net, params, x, xt, y),
        full=full, full_st=full_st,
        traced=jnp.einsum("ijaa->ij", full) / out_dim,
        traced_st=jnp.einsum("ijaa->ij", full_st) / out_dim,
    )  # fmt: skip


def _f_lin(net, params0):
    def f_lin(params, x):
        delta = jax.tree.map(jnp.subtract, params, params0)
        f0, df = jax.jvp(lambda p: net.apply(p, x), (params0,), (delta,))
        return f0 + df

    return f_lin


def _gd_step(net, params0, x, xt, y):
    """One explicit gradient-descent step on ½·mean((f_lin − y)²), with f_lin on X and X_T."""
    f_lin = _f_lin(net, params0)
    loss = lambda params: 0.5 * jnp.mean((f_lin(params, x) - y) ** 2)

    @jax.jit
    def step(params, learning_rate):
        outputs = (f_lin(params, x), f_lin(params, xt))
        grad = jax.grad(loss)(params)
        return jax.tree.map(lambda a, g: a - learning_rate * g, params, grad), outputs

    return step


def _gd_on_f_lin(p, learning_rate, steps):
    """Parameters θ_i and outputs f_lin(θ_i, X), f_lin(θ_i, X_T) for i = 0 … steps."""
    params, history = p["params"], []
    for _ in range(steps + 1):
        new, (f, g) = p["gd_step"](params, learning_rate)
        history.append((params, f, g))
        params = new
    return history


def _function_space_gd(ntk, ntk_st, y, f0, g0, learning_rate, steps):
    """f ← f − η/(n·k) Θ̂ (f − y) in numpy (traced kernel), all steps [steps + 1, ...]."""
    ntk, ntk_st, y, f, g = (np.asarray(a) for a in (ntk, ntk_st, y, f0, g0))
    rate, out_f, out_g = learning_rate / y.size, [], []
    for _ in range(steps + 1):
        out_f.append(f)
        out_g.append(g)
        residual = f - y
        f, g = f - rate * ntk @ residual, g - rate * ntk_st @ residual
    return np.stack(out_f), np.stack(out_g)


def _explicit_ntk(net, params, x):
    """Θ̂(X, X) of a one-output net from its explicit Jacobian [n, n]."""
    flat, unravel = ravel_pytree(params)
    jac = jax.jacrev(lambda p: net.apply(unravel(p), x)[:, 0])(flat)
    return jac @ jac.T


@pytest.fixture(scope="module")
def p1():
    return _problem(out_dim=1)


@pytest.fixture(scope="module")
def p2():
    return _problem(out_dim=2, seed=1)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("kernel", ["traced", "full"])
def test_t0_gives_f0(p2, kernel, discrete):
    k_tt, k_st = p2[kernel], p2[f"{kernel}_st"]
    predict = dynamics.gradient_descent_mse(k_tt, p2["y"], 0.5, discrete=discrete)
    fx_train_t, fx_test_t = predict(np.array([0, 0]), p2["f0"], p2["g0"], k_st)
    np.testing.assert_allclose(fx_train_t, np.stack([p2["f0"]] * 2), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(fx_test_t, np.stack([p2["g0"]] * 2), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kernel", ["traced", "full"])
def test_t_infinity_interpolates_the_training_set(p2, kernel):
    """f_∞(X) = Y and f_∞(x) = f0(x) − Θ̂(x, X) Θ̂⁻¹ (f0(X) − Y) (full-rank Θ̂)."""
    k_tt, k_st = p2[kernel], p2[f"{kernel}_st"]
    predict = dynamics.gradient_descent_mse(k_tt, p2["y"], 1.0)
    f0, g0, y = (np.asarray(p2[k]) for k in ("f0", "g0", "y"))
    if kernel == "full":
        m = np.asarray(k_tt).transpose(0, 2, 1, 3).reshape(N * 2, N * 2)
        m_st = np.asarray(k_st).transpose(0, 2, 1, 3).reshape(N_TEST * 2, N * 2)
        expected = g0 - (m_st @ np.linalg.solve(m, (f0 - y).reshape(-1))).reshape(N_TEST, 2)
    else:
        expected = g0 - np.asarray(k_st) @ np.linalg.solve(np.asarray(k_tt), f0 - y)
    for t in (None, np.inf):
        fx_train_t, fx_test_t = predict(t, f0, g0, k_st)
        np.testing.assert_allclose(fx_train_t, y, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fx_test_t, expected, rtol=1e-8, atol=1e-10)
    fx_train_t, _ = predict(np.array([1e12]), f0, g0, k_st)
    np.testing.assert_allclose(fx_train_t[0], y, rtol=1e-8, atol=1e-10)


def test_discrete_equals_gradient_descent_on_f_lin_every_step(p2):
    """Full kernel, k = 2, including a learning rate where 1 − cλ < 0 for some modes."""
    lr_div = 2 * N * 2 / float(np.linalg.eigvalsh(_flat(p2["full"]))[-1])
    for eta in (0.3, 0.75 * lr_div):
        steps = 25
        history = _gd_on_f_lin(p2, eta, steps)
        predict = dynamics.gradient_descent_mse(p2["full"], p2["y"], eta, discrete=True)
        fx_train_t, fx_test_t = predict(np.arange(steps + 1), p2["f0"], p2["g0"], p2["full_st"])
        for i, (_, f, g) in enumerate(history):
            np.testing.assert_allclose(fx_train_t[i], f, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(fx_test_t[i], g, rtol=1e-10, atol=1e-10)


def test_discrete_traced_equals_gradient_descent_one_output(p1):
    steps, eta = 20, 0.8
    history = _gd_on_f_lin(p1, eta, steps)
    predict = dynamics.gradient_descent_mse(p1["traced"], p1["y"], eta, discrete=True)
    fx_train_t, fx_test_t = predict(np.arange(steps + 1), p1["f0"], p1["g0"], p1["traced_st"])
    np.testing.assert_allclose(fx_train_t, np.stack([h[1] for h in history]), rtol=1e-10)
    np.testing.assert_allclose(fx_test_t, np.stack([h[2] for h in history]), rtol=1e-10)


def test_continuous_is_the_small_learning_rate_limit_of_gd(p1):
    """At fixed flow time η·i the GD error is O(η): quartering η divides it by ≈ 4."""
    errors = []
    for eta in (0.4, 0.1):
        steps = int(round(8.0 / eta))
        ref_f, ref_g = _function_space_gd(
            p1["traced"], p1["traced_st"], p1["y"], p1["f0"], p1["g0"], eta, steps
        )
        predict = dynamics.gradient_descent_mse(p1["traced"], p1["y"], eta)
        f, g = predict(np.arange(steps + 1), p1["f0"], p1["g0"], p1["traced_st"])
        errors.append(max(np.max(np.abs(f - ref_f)), np.max(np.abs(g - ref_g))))
        motion = np.max(np.abs(ref_f - ref_f[0]))
    assert errors[1] < 0.05 * motion
    assert 3.0 < errors[0] / errors[1] < 5.0


def test_full_kernel_equals_traced_kernel(p1, p2):
    """k = 1: [n, n, 1, 1] is [n, n]; k = 2 with Θ̂ ⊗ I: the full path equals the traced one."""
    t = np.array([0.0, 0.7, 5.0, 60.0])
    a = dynamics.gradient_descent_mse(p1["full"], p1["y"], 1.0)(
        t, p1["f0"], p1["g0"], p1["full_st"]
    )
    b = dynamics.gradient_descent_mse(p1["traced"], p1["y"], 1.0)(
        t, p1["f0"], p1["g0"], p1["traced_st"]
    )
    eye = np.eye(2)
    kron = np.einsum("ij,ab->ijab", p2["traced"], eye)
    kron_st = np.einsum("ij,ab->ijab", p2["traced_st"], eye)
    c = dynamics.gradient_descent_mse(kron, p2["y"], 1.0)(t, p2["f0"], p2["g0"], kron_st)
    d = dynamics.gradient_descent_mse(p2["traced"], p2["y"], 1.0)(
        t, p2["f0"], p2["g0"], p2["traced_st"]
    )
    for ours, ref in ((a, b), (c, d)):
        np.testing.assert_allclose(ours[0], ref[0], rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(ours[1], ref[1], rtol=1e-11, atol=1e-12)


def test_time_axis_follows_t(p2):
    predict = dynamics.gradient_descent_mse(p2["traced"], p2["y"], 1.0)
    f_scalar, g_scalar = predict(3.0, p2["f0"], p2["g0"], p2["traced_st"])
    f_array, g_array = predict(np.array([1.0, 3.0]), p2["f0"], p2["g0"], p2["traced_st"])
    assert f_scalar.shape == (N, 2) and g_scalar.shape == (N_TEST, 2)
    assert f_array.shape == (2, N, 2) and g_array.shape == (2, N_TEST, 2)
    np.testing.assert_allclose(f_array[1], f_scalar, rtol=1e-14)
    f_only, none = predict(np.array([1.0]), p2["f0"])
    assert none is None
    np.testing.assert_allclose(f_only[0], f_array[0], rtol=1e-14)


def test_singular_kernel_is_stable_and_exact():
    """Rank-deficient Θ̂ (λ = 0 modes): against ∫₀ᵗ e^{−cΘ̂s} ds from scipy's expm (Van Loan)."""
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((N + N_TEST, 3))  # rank 3 < n = 6
    kern = feats @ feats.T
    k_tt, k_st = kern[:N, :N], kern[N:, :N]
    y, f0, g0 = rng.standard_normal((N, 1)), rng.standard_normal((N, 1)), np.zeros((N_TEST, 1))
    eta, t = 0.9, 7.5
    c = eta / N
    block = np.block([[-c * k_tt, np.eye(N)], [np.zeros((N, N)), np.zeros((N, N))]])
    expo = scipy.linalg.expm(block * t)
    decay, integral = expo[:N, :N], expo[:N, N:]
    predict = dynamics.gradient_descent_mse(k_tt, y, eta)
    fx_train_t, fx_test_t = predict(t, f0, g0, k_st)
    np.testing.assert_allclose(fx_train_t, y + decay @ (f0 - y), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(fx_test_t, -c * k_st @ integral @ (f0 - y), rtol=1e-9, atol=1e-11)
    # t → ∞: the null-space part of f0 − Y stays; the test outputs stay finite.
    evals, evecs = np.linalg.eigh(k_tt)
    null = evecs[:, evals < 1e-10 * evals[-1]]
    fx_train_inf, fx_test_inf = predict(None, f0, g0, k_st)
    np.testing.assert_allclose(fx_train_inf, y + null @ null.T @ (f0 - y), atol=1e-10)
    expected = -k_st @ np.linalg.pinv(k_tt, rcond=1e-10) @ (f0 - y)
    np.testing.assert_allclose(fx_test_inf, expected, rtol=1e-7, atol=1e-9)


def test_weights_match_gd_parameter_updates(p2):
    """ω_i (Eq. 8, discrete) equals θ_i − θ_0 of explicit GD on f_lin at every step."""
    eta, steps = 0.6, 12
    history = _gd_on_f_lin(p2, eta, steps)
    omega = dynamics.weights_mse(
        p2["net"].apply, p2["params"], p2["x"], p2["full"], p2["y"], eta, discrete=True
    )
    stacked = omega(np.arange(steps + 1))
    for i, (params, _, _) in enumerate(history):
        expected = jax.tree.map(jnp.subtract, params, p2["params"])
        got = omega(i)
        for a, b, s in zip(
            jax.tree.leaves(got), jax.tree.leaves(expected), jax.tree.leaves(stacked), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(s[i], a, rtol=1e-12, atol=1e-14)


def test_weights_reproduce_the_output_dynamics(p1):
    """f_lin(θ0 + ω_t) = fx_train_t and fx_test_t of the continuous closed form."""
    f_lin = _f_lin(p1["net"], p1["params"])
    omega = dynamics.weights_mse(p1["net"].apply, p1["params"], p1["x"], p1["traced"], p1["y"], 0.9)
    predict = dynamics.gradient_descent_mse(p1["traced"], p1["y"], 0.9)
    for t in (0.0, 2.5, 40.0, None):
        params_t = jax.tree.map(jnp.add, p1["params"], omega(t))
        fx_train_t, fx_test_t = predict(t, p1["f0"], p1["g0"], p1["traced_st"])
        np.testing.assert_allclose(f_lin(params_t, p1["x"]), fx_train_t, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(f_lin(params_t, p1["xt"]), fx_test_t, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kernel_dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("params_dtype", [jnp.float32, jnp.float64])
def test_weights_take_the_dtype_of_the_params_under_x64(p1, params_dtype, kernel_dtype):
    """Mixed precision (x64 on): ω_t has the dtype of θ_0 and equals the float64 ω_t (Eq. 8)
    to the precision of θ_0, whatever the dtype of Θ̂ (Y is float64)."""
    assert jax.config.jax_enable_x64  # conftest: float64 is available, so dtypes can mix
    cast = lambda tree, dtype: jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)
    params = cast(p1["params"], params_dtype)
    x = p1["x"].astype(params_dtype)
    exact = cast(params, jnp.float64)  # the same θ_0, exactly, in float64
    ntk = _explicit_ntk(p1["net"], exact, x.astype(jnp.float64))
    y = p1["y"].astype(jnp.float64)
    steps = np.arange(5)
    omega = dynamics.weights_mse(
        p1["net"].apply, params, x, ntk.astype(kernel_dtype), y, 0.9, discrete=True
    )
    reference = dynamics.weights_mse(
        p1["net"].apply, exact, x.astype(jnp.float64), ntk, y, 0.9, discrete=True
    )
    rtol = 1e-5 if jnp.float32 in (params_dtype, kernel_dtype) else 1e-12
    for t in (steps, 3, None):
        got, expected = omega(t), reference(t)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            assert a.dtype == params_dtype
            scale = float(jnp.max(jnp.abs(b)))
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def test_lr_critical_definition_and_divergence():
    """η_crit = 2nk/(λ_min + λ_max); GD diverges above 2nk/λ_max, converges below η_crit."""
    rng = np.random.default_rng(5)
    vecs, _ = np.linalg.qr(rng.standard_normal((N, N)))
    kern = vecs @ np.diag([1e-4, 0.3, 0.8, 1.1, 2.0, 5.0]) @ vecs.T
    k = 2
    eta_crit = float(dynamics.lr_critical(kern, k))
    assert eta_crit == pytest.approx(2 * N * k / (1e-4 + 5.0), rel=1e-12)
    full = np.einsum("ij,ab->ijab", kern, np.eye(k))
    assert float(dynamics.lr_critical(full, k)) == pytest.approx(eta_crit, rel=1e-12)
    y, f0 = rng.standard_normal((N, k)), rng.standard_normal((N, k))

    def residual(eta, steps=4000):
        f, _ = _function_space_gd(kern, np.zeros((1, N)), y, f0, np.zeros((1, k)), eta, steps)
        return np.linalg.norm(f[-1] - y)

    start = np.linalg.norm(f0 - y)
    lr_div = 2 * N * k / 5.0  # λ_min ≪ λ_max: η_crit is within 2e-5 of it
    assert residual(0.99 * eta_crit) < start
    assert residual(1.01 * eta_crit) > 1e6 * start
    assert residual(1.001 * lr_div) > 1e3 * start
    assert np.isfinite(residual(0.999 * lr_div))


def test_lr_critical_checks_n_out():
    kern = np.eye(3)
    with pytest.raises(ValueError, match="n_out"):
        dynamics.lr_critical(kern, 0)
    with pytest.raises(ValueError, match="n_out=2 does not match"):
        dynamics.lr_critical(np.zeros((3, 3, 1, 1)), 2)


def test_bad_inputs_raise_clear_errors(p2):
    k_tt, y = p2["traced"], p2["y"]
    with pytest.raises(ValueError, match="learning_rate"):
        dynamics.gradient_descent_mse(k_tt, y, 0.0)
    with pytest.raises(ValueError, match="y_train must have shape"):
        dynamics.gradient_descent_mse(k_tt, y[:, 0], 1.0)
    with pytest.raises(ValueError, match="ntk_train_train has shape"):
        dynamics.gradient_descent_mse(k_tt[:-1, :-1], y, 1.0)
    with pytest.raises(ValueError, match="ntk_train_train must be"):
        dynamics.gradient_descent_mse(k_tt[:, :-1], y, 1.0)
    predict = dynamics.gradient_descent_mse(k_tt, y, 1.0)
    with pytest.raises(ValueError, match="t must be ≥ 0"):
        predict(np.array([1.0, -1.0]), p2["f0"])
    with pytest.raises(ValueError, match="fx_train_0 must have shape"):
        predict(1.0, p2["f0"][:, :1])
    with pytest.raises(ValueError, match="go together"):
        predict(1.0, p2["f0"], p2["g0"])
    with pytest.raises(ValueError, match="ntk_test_train must have shape"):
        predict(1.0, p2["f0"], p2["g0"], p2["full_st"])
    discrete = dynamics.gradient_descent_mse(k_tt, y, 1.0, discrete=True)
    with pytest.raises(ValueError, match="integer step counts"):
        discrete(np.array([0.5]), p2["f0"])
    too_fast = dynamics.gradient_descent_mse(k_tt, y, 1e6, discrete=True)
    with pytest.raises(ValueError, match="does not converge"):
        too_fast(None, p2["f0"])


def _flat(full):
    n, _, k, _ = full.shape
    return np.asarray(full).transpose(0, 2, 1, 3).reshape(n * k, n * k)
