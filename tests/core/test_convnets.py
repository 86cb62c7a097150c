"""Tests of core.convnets: CNN and Wide ResNet in the NTK and standard parameterization.

XLA compilation dominates on CPU: the networks are initialized once and evaluated eagerly
(primitives compile once per shape), structure is checked with ``jax.eval_shape``.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpipe.core import convnets, models

SHAPE = (6, 6, 2)  # (H, W, C) of the test images
N, K = 5, 3
X = jax.random.normal(jax.random.key(0), (N, *SHAPE))
KEY = jax.random.key(3)


def _flat(x):
    return x.reshape(x.shape[0], -1)


def _net(arch, parameterization="ntk", **kwargs):
    common = dict(out_dim=K, parameterization=parameterization, w_std=1.3, input_shape=SHAPE)
    if arch == "cnn":
        return convnets.cnn(depth=2, width=4, b_std=0.2, **common, **kwargs)
    return convnets.wrn(block_size=1, channels=4, b_std=0.2, **common, **kwargs)


@functools.cache
def _init(arch, parameterization="ntk"):
    net = _net(arch, parameterization)
    return net, net.init(KEY, X)


def _param_shapes(net, x=X):
    return jax.tree.map(lambda a: a.shape, jax.eval_shape(net.init, KEY, x))


def _ntk(apply_fn, params, x):
    """Θ̂ = J Jᵀ over all n·k outputs, from explicit jacrev Jacobians: [n·k, n·k]."""

    @jax.jit
    def jacobian(params):
        jac = jax.jacrev(lambda p: apply_fn(p, x).reshape(-1))(params)
        return jnp.concatenate([a.reshape(a.shape[0], -1) for a in jax.tree.leaves(jac)], 1)

    j = jacobian(params)
    return j @ j.T


@pytest.mark.parametrize("arch", ["cnn", "wrn"])
def test_shapes_and_flat_or_image_inputs(arch):
    net, params = _init(arch)
    out = net.apply(params, X)
    assert out.shape == (N, K) and out.dtype == X.dtype and net.out_dim == K
    np.testing.assert_array_equal(net.apply(params, _flat(X)), out)
    assert _param_shapes(net, _flat(X)) == _param_shapes(net, X)


def test_cnn_layers_in_order_and_pooling():
    for pooling, readout_in in (("avg", 4), ("flatten", 6 * 6 * 4)):
        params = _param_shapes(_net("cnn", pooling=pooling))
        leaves = models.kernel_leaves(params)
        assert list(leaves) == ["conv_0", "conv_1", "readout"]
        assert leaves["conv_0"] == (3, 3, 2, 4) and leaves["conv_1"] == (3, 3, 4, 4)
        assert leaves["readout"] == (readout_in, K)
        assert params["params"]["conv_0"]["bias"] == (4,)
    no_bias = _param_shapes(convnets.cnn(1, 4, K, b_std=None, input_shape=SHAPE))
    assert set(no_bias["params"]["conv_0"]) == {"kernel"}


def test_wrn_follows_table_s1():
    """Stem conv, three groups of N blocks, a strided 1×1 shortcut where the resolution halves."""
    net = convnets.wrn(block_size=2, channels=4, out_dim=K, input_shape=SHAPE)
    leaves = models.kernel_leaves(_param_shapes(net))
    expected = ["conv"]
    for block in [f"group_{g}_block_{b}" for g in range(3) for b in range(2)]:
        expected += [f"{block}/conv_0", f"{block}/conv_1"]
        if block in ("group_1_block_0", "group_2_block_0"):
            expected.append(f"{block}/shortcut")
    assert list(leaves) == expected + ["readout"]
    assert leaves["conv"] == (3, 3, 2, 4) and leaves["group_2_block_1/conv_1"] == (3, 3, 4, 4)
    assert leaves["group_1_block_0/shortcut"] == (1, 1, 4, 4)
    assert leaves["readout"] == (4, K)  # global average pooling: C features


def test_wrn_halves_the_resolution_in_groups_1_and_2():
    """Table S1: group outputs at full, 1/2 and 1/4 resolution (6 → 6, 3, 2 with SAME padding)."""
    net, params = _init("wrn")
    _, state = net.module.apply(params, X, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]
    sizes = [inter[f"group_{g}_block_0"]["__call__"][0].shape for g in range(3)]
    assert sizes == [(N, 6, 6, 4), (N, 3, 3, 4), (N, 2, 2, 4)]


@pytest.mark.parametrize("arch", ["cnn", "wrn"])
def test_ntk_and_standard_parameterizations_agree_at_init(arch):
    (net_ntk, p_ntk), (net_std, p_std) = _init(arch, "ntk"), _init(arch, "standard")
    np.testing.assert_allclose(
        net_ntk.apply(p_ntk, X), net_std.apply(p_std, X), rtol=1e-12, atol=1e-14
    )
    # the standard weights are the NTK ω scaled by σ_w/√n_in, n_in = k·k·c_in
    w_ntk = models.kernel_leaves(p_ntk)["conv_0" if arch == "cnn" else "conv"]
    w_std = models.kernel_leaves(p_std)["conv_0" if arch == "cnn" else "conv"]
    np.testing.assert_allclose(w_std, w_ntk * 1.3 / math.sqrt(3 * 3 * 2), rtol=1e-14)


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
    net, params = _init(arch)
    ntk = np.asarray(_ntk(net.apply, params, X))
    assert ntk.shape == (N * K, N * K) and np.all(np.isfinite(ntk))
    np.testing.assert_allclose(ntk, ntk.T, rtol=1e-12, atol=1e-12)
    eigvals = np.linalg.eigvalsh(ntk)
    assert eigvals[0] > -1e-10 * eigvals[-1] and eigvals[-1] > 0


@pytest.mark.parametrize("arch", ["cnn", "wrn"])
def test_apply_is_pure_and_per_example(arch):
    """Same output jitted, eagerly and on a sub-batch: f(x_i) depends on θ and x_i only."""
    net, params = _init(arch)
    eager = net.apply(params, X)
    np.testing.assert_array_equal(net.apply(params, X), eager)
    np.testing.assert_allclose(jax.jit(net.apply)(params, X), eager, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.apply(params, X[:2]), eager[:2], rtol=1e-12, atol=1e-14)


def test_batch_norm_is_pure_with_batch_statistics():
    net = _net("wrn", batch_norm=True, activation="identity")
    params = net.init(KEY, X)
    bn = [k for k in params["params"]["group_0_block_0"] if k.startswith("bn_")]
    assert sorted(bn) == ["bn_0_bias", "bn_0_scale", "bn_1_bias", "bn_1_scale"]
    out = net.apply(params, X)
    np.testing.assert_array_equal(net.apply(params, X), out)  # no hidden state
    # batch statistics: the output of an example depends on the rest of its batch
    assert not np.allclose(net.apply(params, X[:2]), out[:2])
    # φ = identity: the last BN zeroes the batch mean of the pooled features (β_BN = 0 at
    # init), so the batch mean of f is the readout bias σ_b · b
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
        jax.eval_shape(net.init, KEY, jnp.zeros((2, 71)))
    with pytest.raises(ValueError, match="pass input_shape"):
        jax.eval_shape(convnets.cnn(1, 4, 1).init, KEY, jnp.zeros((2, 72)))
