"""Parameterizations beyond NTK (ntkpipe.core.models, DenseSpec.layer_scale).

References, all independent of the code under test:

- the standard parameterization trained with explicit per-tensor rates η·σ_w²/n_l, η·σ_b²
  (p ← p − η r ∇_p L, written here in NumPy-like JAX with float64), against the
  NTK-parameterized network trained by :func:`ntkpipe.core.train.train`, step by step;
- the closed form of f_lin (Eq. 8–11) with the kernel J diag(r) Jᵀ against gradient descent on
  f_lin with the per-parameter rates η·r, written here;
- μP (Yang & Hu 2021): initial variances and effective per-layer rates read off one gradient
  step against their definitions, a coord check (the change of every layer's activations in one
  step is flat in width under μP and shrinks like 1/√n under NTK), and the equality of its
  tangent kernel at initialization with the NTK parameterization's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpipe.core import dynamics, kernels, models
from ntkpipe.core.train import train

W_STD, B_STD = 1.4, 0.3


def _data(n=6, d_in=5, k=2, seed=0):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (n, d_in), jnp.float64)
    return x, jax.random.normal(ky, (n, k), jnp.float64)


def _mse(f, y):
    return 0.5 * jnp.mean((f - y) ** 2)


def _per_tensor_gd(apply_fn, params, rates, x, y, lr, steps):
    """p ← p − η r_p ∇_p L for every tensor p; returns f(x) after each step [steps + 1, n, k]."""
    grad = jax.jit(jax.grad(lambda p: _mse(apply_fn(p, x), y)))
    outs = [apply_fn(params, x)]
    for _ in range(steps):
        g = grad(params)
        params = jax.tree.map(lambda p, r, gp: p - lr * r * gp, params, rates, g)
        outs.append(apply_fn(params, x))
    return jnp.stack(outs)


def _ntk_rates(params):
    """The paper's per-tensor factors for the standard parameterization: σ_w²/n_l, σ_b²."""
    return {
        "params": {
            name: {"kernel": W_STD**2 / layer["kernel"].shape[0], "bias": B_STD**2}
            for name, layer in params["params"].items()
        }
    }


def test_standard_with_per_tensor_rates_is_ntk_gradient_descent_step_by_step():
    with jax.enable_x64(True):
        x, y = _data()
        key = jax.random.PRNGKey(3)
        std = models.mlp(2, 16, 2, "relu", "standard", W_STD, B_STD)
        ntk = models.mlp(2, 16, 2, "relu", "ntk", W_STD, B_STD)
        rated = models.mlp(2, 16, 2, "relu", "standard", W_STD, B_STD, layer_rates="ntk")
        p_std = std.init(key, x)
        lr, steps = 0.7, 12
        reference = _per_tensor_gd(std.apply, p_std, _ntk_rates(p_std), x, y, lr, steps)
        record = list(range(steps + 1))
        for net in (ntk, rated):
            params = jax.tree.map(lambda a: a[None], net.init(key, x))
            traj = train(
                net.apply, params, x, y, x, y, learning_rate=lr, steps=steps, record_steps=record
            )
            np.testing.assert_allclose(traj.fx_train[0], reference, rtol=1e-10, atol=1e-12)
        # the same parameters without the rates take other steps (the test can fail)
        plain = _per_tensor_gd(std.apply, p_std, jax.tree.map(lambda _: 1.0, p_std), x, y, lr, 3)
        assert np.max(np.abs(plain[1:] - reference[1:4])) > 1e-3


def test_rated_leaves_are_the_standard_weights_over_root_rate():
    with jax.enable_x64(True):
        x, _ = _data()
        key = jax.random.PRNGKey(1)
        std = models.mlp(1, 8, 1, "erf", "standard", W_STD, B_STD)
        rated = models.mlp(1, 8, 1, "erf", "standard", W_STD, B_STD, layer_rates="ntk")
        p, q = std.init(key, x), rated.init(key, x)
        rates = _ntk_rates(p)
        back = jax.tree.map(lambda leaf, r: leaf * np.sqrt(r), q, rates)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-14), back, p)
        np.testing.assert_allclose(rated.apply(q, x), std.apply(p, x), rtol=1e-13)


def test_closed_form_with_rate_weighted_kernel_is_per_parameter_gd_on_f_lin():
    """f_lin with rates η·r: the closed form with Θ_r = J diag(r) Jᵀ (the kernel of the rated
    leaves) equals gradient descent on the linearized standard network with those rates."""
    with jax.enable_x64(True):
        x, y = _data(n=5, k=1)
        key = jax.random.PRNGKey(7)
        std = models.mlp(2, 12, 1, "tanh", "standard", W_STD, B_STD)
        rated = models.mlp(2, 12, 1, "tanh", "standard", W_STD, B_STD, layer_rates="ntk")
        p0, q0 = std.init(key, x), rated.init(key, x)
        rates = _ntk_rates(p0)
        f0, jvp_at = std.apply(p0, x), lambda w: jax.jvp(lambda p: std.apply(p, x), (p0,), (w,))
        f_lin = lambda p: f0 + jvp_at(jax.tree.map(jnp.subtract, p, p0))[1]
        lr, steps = 1.3, 12
        reference = _per_tensor_gd(lambda p, _: f_lin(p), p0, rates, x, y, lr, steps)
        theta_r = kernels.empirical_ntk(rated, q0, x)
        predict = dynamics.gradient_descent_mse(theta_r, y, lr, discrete=True)
        closed, _ = predict(jnp.arange(steps + 1), f0)
        np.testing.assert_allclose(closed, reference, rtol=1e-9, atol=1e-12)
        # the unweighted kernel J Jᵀ of the standard leaves gives another trajectory
        other, _ = dynamics.gradient_descent_mse(
            kernels.empirical_ntk(std, p0, x), y, lr * 1e-3, discrete=True
        )(jnp.arange(steps + 1), f0)
        assert np.max(np.abs(other - reference)) > 1e-3


def test_mup_tangent_kernel_at_init_is_the_ntk_one():
    """μP = NTK with readout weights 1/√n smaller and rates n times larger (not the readout
    bias's): Θ at init is then exactly the NTK parameterization's (dense and generic paths)."""
    with jax.enable_x64(True):
        x, _ = _data(n=4, d_in=3)
        n, depth = 32, 2
        mup = models.mlp(depth, n, 2, "relu", "mup", W_STD, B_STD)
        ntk = models.mlp(depth, n, 2, "relu", "ntk", W_STD, B_STD)
        q = mup.init(jax.random.PRNGKey(0), x)
        omega = _mup_to_ntk_leaves(q, depth, n)
        readout_bias = _bias(q)
        np.testing.assert_allclose(
            (ntk.apply(omega, x) - readout_bias) / np.sqrt(n), mup.apply(q, x) - readout_bias
        )
        expected = kernels.empirical_ntk_full(ntk, omega, x)
        np.testing.assert_allclose(kernels.empirical_ntk_full(mup, q, x), expected, rtol=1e-12)
        generic = kernels.empirical_ntk_full(lambda p, xx: mup.apply(p, xx), q, x)
        np.testing.assert_allclose(generic, expected, rtol=1e-12)


def test_mup_initial_variances_and_per_layer_rates_match_the_definition():
    """Var(W_l) = σ_w²/d, σ_w²/n, σ_w²/n² and the W-space rates of one GD step η·n·σ_w²/d,
    η·σ_w², η·σ_w²/n (Yang & Hu, Tensor Programs V Table 3 in the SP form)."""
    with jax.enable_x64(True):
        d, n, depth = 8, 128, 2
        x, y = _data(n=3, d_in=d, k=1)
        net = models.mlp(depth, n, 1, "relu", "mup", W_STD, B_STD)
        q = net.init(jax.random.PRNGKey(5), x)
        spec = net.dense_spec
        fan_ins = [d] + [n] * depth
        weights = models.to_standard(net, q)["params"]
        expected_var = [W_STD**2 / d] + [W_STD**2 / n] * (depth - 1) + [W_STD**2 / n**2]
        for i, var in enumerate(expected_var):
            w = np.asarray(weights[f"dense_{i}"]["kernel"])
            assert abs(w.var() / var - 1) < 6 / np.sqrt(w.size), (i, w.var(), var)
        lr = 0.1
        grads = jax.grad(lambda p: _mse(net.apply(p, x), y))(q)
        step = jax.tree.map(lambda a, g: a - lr * g, q, grads)
        after = models.to_standard(net, step)["params"]
        w_grads = jax.grad(lambda w: _mse(_standard_apply(w, x, depth), y))(weights)
        expected_rate = [n * W_STD**2 / d] + [W_STD**2] * (depth - 1) + [W_STD**2 / n]
        for i, rate in enumerate(expected_rate):
            name = f"dense_{i}"
            delta = after[name]["kernel"] - weights[name]["kernel"]
            expected = -lr * rate * w_grads[name]["kernel"]
            atol = 1e-12 * float(jnp.max(jnp.abs(expected)))
            np.testing.assert_allclose(delta, expected, rtol=1e-9, atol=atol)
            bias_rate = B_STD**2 * (1 if i == depth else n)
            delta_b = after[name]["bias"] - weights[name]["bias"]
            np.testing.assert_allclose(delta_b, -lr * bias_rate * w_grads[name]["bias"], rtol=1e-9)
        assert spec.layer_scale(0, d).s_w == pytest.approx(W_STD * np.sqrt(n / fan_ins[0]))


def test_coord_check_mup_feature_updates_are_flat_in_width_ntk_are_not():
    """One GD step; ‖Δh_l‖_rms of every hidden layer against the width: μP's stays O(1), the
    NTK parameterization's falls like n^{−1/2} (fitted log-log slopes)."""
    x, y = (np.asarray(a, np.float32) for a in _data(n=8, d_in=10, k=1, seed=2))
    with jax.enable_x64(False):  # float32 suffices for a scale; float64 at n = 2048 is slow
        y = 10 * y  # the residual f₀ − y ≈ −y: the NTK f₀ = O(1) varies by seed and width
        widths = [128, 512, 2048]
        slopes = {}
        for parameterization in ("mup", "ntk"):
            changes = []
            for n in widths:
                runs = [_feature_change(parameterization, n, x, y, seed) for seed in range(2)]
                changes.append(np.mean(runs, axis=0))  # [layer]
            logs = np.log(np.asarray(changes))
            slopes[parameterization] = np.polyfit(np.log(widths), logs, 1)[0]  # [layer]
        assert np.all(np.abs(slopes["mup"]) < 0.15), slopes
        assert np.all(np.abs(slopes["ntk"] + 0.5) < 0.15), slopes


def test_mup_is_refused_where_it_is_not_defined():
    with pytest.raises(ValueError, match="depth ≥ 1"):
        models.mlp(0, 8, 1, parameterization="mup")
    with pytest.raises(ValueError, match="MLPs only"):
        models.cnn(1, 8, 1, parameterization="mup")
    with pytest.raises(ValueError, match="layer_rates='uniform'"):
        models.mlp(1, 8, 1, parameterization="ntk", layer_rates="ntk")
    with pytest.raises(ValueError, match="layer_rates must be one of"):
        models.mlp(1, 8, 1, parameterization="standard", layer_rates="mup")


# ---------------------------------------------------------------- helpers


def _feature_change(parameterization, n, x, y, seed):
    """rms of h_l(θ₁) − h_l(θ₀) over examples and units, for every hidden layer, after one GD
    step of rate 0.05 (the same η for both: their kernels at init are equal)."""
    depth = 2
    net = models.mlp(depth, n, 1, "relu", parameterization, W_STD, B_STD)
    q = net.init(jax.random.PRNGKey(seed), x)
    grads = jax.grad(lambda p: _mse(net.apply(p, x), y))(q)
    q1 = jax.tree.map(lambda a, g: a - 0.05 * g, q, grads)
    h0, h1 = (_hidden(net, p, x, depth) for p in (q, q1))
    return [float(jnp.sqrt(jnp.mean((b - a) ** 2))) for a, b in zip(h0, h1, strict=True)]


def _hidden(net, params, x, depth):
    """Pre-activations h_0 … h_{L−1} from the standard weights of the same function."""
    weights = models.to_standard(net, params)["params"]
    a, out = x, []
    for i in range(depth):
        h = a @ weights[f"dense_{i}"]["kernel"] + weights[f"dense_{i}"]["bias"]
        out.append(h)
        a = jax.nn.relu(h)
    return out


def _standard_apply(weights, x, depth):
    a = x
    for i in range(depth + 1):
        a = a @ weights[f"dense_{i}"]["kernel"] + weights[f"dense_{i}"]["bias"]
        if i < depth:
            a = jax.nn.relu(a)
    return a


def _mup_to_ntk_leaves(q, depth, n):
    """The NTK leaves of the same hidden weights: ω = √n q (q ~ N(0, 1/n)); the readout weights
    of μP are those of NTK over √n, so ω_L = √n q_L gives the NTK readout W_L = √n W_L^μP."""
    out = {}
    for i in range(depth + 1):
        layer = q["params"][f"dense_{i}"]
        out[f"dense_{i}"] = {
            "kernel": layer["kernel"] * np.sqrt(n),
            "bias": layer["bias"] * (1.0 if i == depth else np.sqrt(n)),
        }
    return {"params": out}


def _bias(q):
    """The readout bias term σ_b β_L, which μP and NTK share (not scaled by 1/√n)."""
    last = max(q["params"], key=lambda name: int(name.split("_")[1]))
    return B_STD * q["params"][last]["bias"]
