"""Tests of ntkpipe.convnets: CNN and Wide ResNet in the NTK and standard parameterization."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpipe import convnets, models

SHAPE = (6, 6, 2)  # (H, W, C) of the test images
N = 5


def _images(n=N, shape=SHAPE, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, *shape))


def _flat(x):
    return x.reshape(x.shape[0], -1)


def _ntk(apply_fn, params, x):
    """Θ̂ = J Jᵀ over all n·k outputs, from explicit jacrev Jacobians: [n·k, n·k]."""

    @jax.jit
    def jacobian(params):
        jac = jax.jacrev(lambda p: apply_fn(p, x).reshape(-1))(params)
        return jnp.concatenate([a.reshape(a.shape[0], -1) for a in jax.tree.leaves(jac)], 1)

    j = jacobian(params)
    return j @ j.T


def _net(arch, parameterization="ntk", **kwargs):
    common = dict(out_dim=3, parameterization=parameterization, w_std=1.3, input_shape=SHAPE)
    if arch == "cnn":
        return convnets.cnn(depth=2, width=4, b_std=0.2, **common, **kwargs)
    return convnets.wrn(block_size=1, channels=4, b_std=0.2, **common, **kwargs)


@pytest.mark.parametrize("arch", ["cnn", "wrn"])
def test_shapes_and_flat_or_image_inputs(arch):
    net, x = _net(arch), _images()
    params = jax.jit(net.init)(jax.random.key(0), x)
    params_flat = jax.jit(net.init)(jax.random.key(0), _flat(x))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params_flat), strict=True):
        np.testing.assert_array_equal(a, b)
    apply = jax.jit(net.apply)
    out = apply(params, x)
    assert out.shape == (N, 3) and out.dtype == x.dtype and net.out_dim == 3
    np.testing.assert_array_equal(apply(params, _flat(x)), out)


def test_cnn_layers_in_order_and_pooling():
    x = _images()
    for pooling, readout_in in (("avg", 4), ("flatten", 6 * 6 * 4)):
        net = _net("cnn", pooling=pooling)
        leaves = models.kernel_leaves(net.init(jax.random.key(0), x))
        assert list(leaves) == ["conv_0", "conv_1", "readout"]
        assert leaves["conv_0"].shape == (3, 3, 2, 4) and leaves["conv_1"].shape == (3, 3, 4, 4)
        assert leaves["readout"].shape == (readout_in, 3)


def test_wrn_follows_table_s1():
    """Stem conv, three groups of N blocks, a strided 1×1 shortcut where the resolution halves."""
    net = convnets.wrn(block_size=2, channels=4, out_dim=3, input_shape=(8, 8, 2))
    x = _images(shape=(8, 8, 2))
    names = list(models.kernel_leaves(jax.jit(net.init)(jax.random.key(0), x)))
    blocks = [f"group_{g}_block_{b}" for g in range(3) for b in range(2)]
    expected = ["conv"]
    for block in blocks:
        expected += [f"{block}/conv_0", f"{block}/conv_1"]
        if block in ("group_1_block_0", "group_2_block_0"):
            expected.append(f"{block}/shortcut")
    assert names == expected + ["readout"]

    params = jax.jit(net.init)(jax.random.key(0), x)
    leaves = models.kernel_leaves(params)
    assert leaves["group_1_block_0/shortcut"].shape == (1, 1, 4, 4)
    assert leaves["readout"].shape == (4, 3)  # global average pooling: C features


@pytest.mark.parametrize("arch", ["cnn", "wrn"])
def test_ntk_and_standard_parameterizations_agree_at_init(arch):
    x = _images()
    outs = []
    for parameterization in ("ntk", "standard"):
        net = _net(arch, parameterization)
        params = jax.jit(net.init)(jax.random.key(3), x)
        outs.append(jax.jit(net.apply)(params, x))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-14)


def test_standard_weights_have_variance_sigma_w_squared_over_fan_in():
    """W ~ N(0, σ_w²/n_in) with n_in = k_h·k_w·c_in for a convolution."""
    net = convnets.cnn(
        depth=2,
        width=64,
        out_dim=1,
        parameterization="standard",
        w_std=1.3,
        b_std=0.5,
        input_shape=(3, 3, 64),
    )
    params = net.init(jax.random.key(0), jnp.zeros((1, 3, 3, 64)))
    kernel = params["params"]["conv_1"]["kernel"]
    np.testing.assert_allclose(np.std(kernel), 1.3 / math.sqrt(3 * 3 * 64), rtol=0.03)
    np.testing.assert_allclose(np.std(params["params"]["conv_1"]["bias"]), 0.5, rtol=0.3)


def test_one_by_one_cnn_is_the_mlp():
    """With 1×1 filters on 1×1 images a convolution is a dense layer: the CNN is the MLP."""
    d, width = 5, 7
    cnn = convnets.cnn(
        depth=2,
        width=width,
        out_dim=2,
        activation="erf",
        w_std=1.5,
        b_std=0.3,
        kernel_size=1,
        input_shape=(1, 1, d),
    )
    mlp = models.mlp(depth=2, width=width, out_dim=2, activation="erf", w_std=1.5, b_std=0.3)
    x = jax.random.normal(jax.random.key(1), (N, d))
    p_cnn = cnn.init(jax.random.key(2), x)["params"]
    p_mlp = {"params": {}}
    for i, name in enumerate(["conv_0", "conv_1", "readout"]):
        kernel = p_cnn[name]["kernel"]
        p_mlp["params"][f"dense_{i}"] = {
            "kernel": kernel.reshape(-1, kernel.shape[-1]),
            "bias": p_cnn[name]["bias"],
        }
    np.testing.assert_allclose(
        cnn.apply({"params": p_cnn}, x), mlp.apply(p_mlp, x), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("arch", ["cnn", "wrn"])
def test_empirical_ntk_is_finite_and_psd(arch):
    net, x = _net(arch), _images()
    params = jax.jit(net.init)(jax.random.key(4), x)
    ntk = np.asarray(_ntk(net.apply, params, x))
    assert ntk.shape == (N * 3, N * 3) and np.all(np.isfinite(ntk))
    np.testing.assert_allclose(ntk, ntk.T, rtol=1e-12, atol=1e-12)
    eigvals = np.linalg.eigvalsh(ntk)
    assert eigvals[0] > -1e-10 * eigvals[-1] and eigvals[-1] > 0


@pytest.mark.parametrize("arch", ["cnn", "wrn"])
def test_apply_is_pure_and_per_example(arch):
    """Same output eagerly, jitted and on a sub-batch: f(x_i) depends on θ and x_i only."""
    net, x = _net(arch), _images()
    params = jax.jit(net.init)(jax.random.key(5), x)
    jitted = jax.jit(net.apply)(params, x)
    np.testing.assert_array_equal(jax.jit(net.apply)(params, x), jitted)
    np.testing.assert_allclose(net.apply(params, x), jitted, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(net.apply)(params, x[:2]), jitted[:2], rtol=1e-12)


def test_batch_norm_is_pure_with_batch_statistics():
    net, x = _net("wrn", batch_norm=True), _images()
    params = jax.jit(net.init)(jax.random.key(6), x)
    bn = [k for k in params["params"]["group_0_block_0"] if k.startswith("bn_")]
    assert sorted(bn) == ["bn_0_bias", "bn_0_scale", "bn_1_bias", "bn_1_scale"]
    apply = jax.jit(net.apply)
    out = apply(params, x)
    np.testing.assert_array_equal(apply(params, x), out)  # no hidden state
    assert np.all(np.isfinite(out))
    # batch statistics: the output of an example depends on the rest of its batch
    assert not np.allclose(apply(params, x[:2]), out[:2])


def test_batch_norm_centres_the_batch():
    """φ = identity: the last BN zeroes the batch mean of the pooled features, so the batch
    mean of f is the readout bias σ_b · b (β_BN = 0 at init)."""
    net, x = _net("wrn", batch_norm=True, activation="identity"), _images()
    params = jax.jit(net.init)(jax.random.key(7), x)
    out = jax.jit(net.apply)(params, x)
    bias = 0.2 * params["params"]["readout"]["bias"]
    np.testing.assert_allclose(np.mean(out, axis=0), bias, rtol=1e-10, atol=1e-12)
    assert np.std(out, axis=0).min() > 1e-3


def test_models_reexports_the_convnets():
    assert models.cnn is convnets.cnn and models.wrn is convnets.wrn


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: convnets.cnn(2, 4, 1, pooling="max"), "pooling"),
        (lambda: convnets.cnn(2, 0, 1), "width"),
        (lambda: convnets.cnn(2, 4, 1, activation="softplus"), "activation"),
        (lambda: convnets.cnn(2, 4, 1, parameterization="mup"), "parameterization"),
        (lambda: convnets.cnn(2, 4, 1, w_std=0.0), "w_std"),
        (lambda: convnets.cnn(2, 4, 1, b_std=-1.0), "b_std"),
        (lambda: convnets.cnn(2, 4, 1, input_shape=(8, 8)), "input_shape"),
        (lambda: convnets.wrn(block_size=0, channels=4, out_dim=1), "block_size"),
        (lambda: convnets.wrn(1, 4, 1, batch_norm="yes"), "batch_norm"),
    ],
)
def test_bad_arguments_are_clear_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_wrong_input_shape_is_a_clear_error():
    net = _net("cnn")
    with pytest.raises(ValueError, match=r"x must have shape \[n, 72\]"):
        net.init(jax.random.key(0), jnp.zeros((2, 71)))
    with pytest.raises(ValueError, match="pass input_shape"):
        convnets.cnn(1, 4, 1).init(jax.random.key(0), jnp.zeros((2, 72)))
