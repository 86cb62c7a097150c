"""Networks and parameterizations (ntkpipe.core.models, paper §2.1, Eq. 1).

References: an explicit numpy forward pass written from the paper's equations, the equality of
the standard and the NTK parameterization at initialization, and Flax models of other shapes
for kernel_leaves.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from ntkpipe.core import models

NUMPY_ACTIVATIONS = {
    "relu": lambda h: np.maximum(h, 0.0),
    "erf": erf,
    "tanh": np.tanh,
    "identity": lambda h: h,
}


def _data(n=5, d_in=4, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, d_in))


def _numpy_forward(params, x, activation, parameterization, w_std, b_std, depth):
    """Eq. 1: h_l = σ_w/√n_l a_l ω_l + σ_b β_l (NTK) or a_l W_l + b_l (standard)."""
    a = np.asarray(x)
    for i in range(depth + 1):
        layer = params["params"][f"dense_{i}"]
        w = np.asarray(layer["kernel"])
        scale = w_std / np.sqrt(w.shape[0]) if parameterization == "ntk" else 1.0
        h = scale * a @ w
        if b_std:
            h = h + (b_std if parameterization == "ntk" else 1.0) * np.asarray(layer["bias"])
        a = NUMPY_ACTIVATIONS[activation](h) if i < depth else h
    return a


@pytest.mark.parametrize("activation", sorted(models.ACTIVATIONS))
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("b_std", [0.0, 0.4])
def test_apply_is_eq1(activation, parameterization, b_std):
    net = models.mlp(2, 6, 3, activation, parameterization, w_std=1.3, b_std=b_std)
    x = _data()
    params = net.init(jax.random.PRNGKey(1), x)
    expected = _numpy_forward(params, x, activation, parameterization, 1.3, b_std, depth=2)
    np.testing.assert_allclose(net.apply(params, x), expected, rtol=1e-12, atol=1e-12)
    assert net(params, x).shape == (5, 3)


@pytest.mark.parametrize("b_std", [0.0, None, 0.5])
def test_layers_names_shapes_and_bias(b_std):
    net = models.mlp(3, 8, 2, b_std=b_std)
    params = net.init(jax.random.PRNGKey(0), _data(d_in=5))
    layers = params["params"]
    assert list(layers) == ["dense_0", "dense_1", "dense_2", "dense_3"]
    shapes = [layers[f"dense_{i}"]["kernel"].shape for i in range(4)]
    assert shapes == [(5, 8), (8, 8), (8, 8), (8, 2)]
    has_bias = {"bias" in layer for layer in layers.values()}
    assert has_bias == {bool(b_std)}
    assert net.out_dim == 2 and net.dense_spec.depth == 3


def test_depth_zero_is_linear_readout():
    net = models.mlp(0, 8, 2, "relu", w_std=2.0, b_std=0.0)
    x = _data(d_in=3)
    params = net.init(jax.random.PRNGKey(0), x)
    w = params["params"]["dense_0"]["kernel"]
    np.testing.assert_allclose(net.apply(params, x), 2.0 / np.sqrt(3) * x @ w, rtol=1e-12)


def test_ntk_leaves_are_standard_normal_and_standard_weights_scaled():
    x = _data(d_in=400)
    key = jax.random.PRNGKey(3)
    ntk = models.mlp(1, 300, 1, "relu", "ntk", w_std=1.5, b_std=0.2).init(key, x)
    std = models.mlp(1, 300, 1, "relu", "standard", w_std=1.5, b_std=0.2).init(key, x)
    omega = ntk["params"]["dense_0"]["kernel"]
    assert abs(float(jnp.std(omega)) - 1.0) < 0.01 and abs(float(jnp.mean(omega))) < 0.01
    w = std["params"]["dense_0"]["kernel"]
    assert abs(float(jnp.std(w)) - 1.5 / np.sqrt(400)) < 0.01 * 1.5 / np.sqrt(400)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_standard_and_ntk_parameterization_same_function_at_init(activation):
    x = _data(d_in=7)
    key = jax.random.PRNGKey(11)
    ntk = models.mlp(2, 16, 3, activation, "ntk", w_std=1.7, b_std=0.3)
    std = models.mlp(2, 16, 3, activation, "standard", w_std=1.7, b_std=0.3)
    p_ntk, p_std = ntk.init(key, x), std.init(key, x)
    # Standard weights drawn from the same key are the NTK ω scaled by σ_w/√n_in (and σ_b β).
    converted = models.to_standard(ntk, p_ntk)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-14), converted, p_std)
    np.testing.assert_allclose(ntk.apply(p_ntk, x), std.apply(p_std, x), rtol=1e-12, atol=1e-14)
    # ... and the conversion preserves the function away from initialization too.
    moved = jax.tree.map(lambda p: p + 0.1, p_ntk)
    np.testing.assert_allclose(
        ntk.apply(moved, x), std.apply(models.to_standard(ntk, moved), x), rtol=1e-12
    )


def test_params_follow_input_dtype():
    net = models.mlp(1, 4, 1)
    assert (
        net.init(jax.random.PRNGKey(0), np.ones((2, 3), np.float32))["params"]["dense_0"][
            "kernel"
        ].dtype
        == jnp.float32
    )
    assert (
        net.init(jax.random.PRNGKey(0), np.ones((2, 3)))["params"]["dense_0"]["kernel"].dtype
        == jnp.float64
    )


def test_unknown_activation_names_the_allowed_ones():
    with pytest.raises(ValueError, match="activation.*erf.*identity.*relu.*tanh.*'softplus'"):
        models.mlp(1, 4, 1, activation="softplus")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"depth": -1}, "depth"),
        ({"depth": 1.5}, "depth"),
        ({"width": 0}, "width"),
        ({"out_dim": True}, "out_dim"),
        ({"parameterization": "mf"}, "parameterization"),
        ({"w_std": 0.0}, "w_std"),
        ({"w_std": float("nan")}, "w_std"),
        ({"b_std": -0.1}, "b_std"),
    ],
)
def test_bad_arguments_are_named(kwargs, field):
    args = {"depth": 1, "width": 4, "out_dim": 1, **kwargs}
    with pytest.raises(ValueError, match=field):
        models.mlp(**args)


def test_init_rejects_unbatched_input():
    with pytest.raises(ValueError, match=r"\[n, d_in\]"):
        models.mlp(1, 4, 1).init(jax.random.PRNGKey(0), jnp.ones(3))


def test_to_standard_needs_ntk_mlp():
    net = models.mlp(1, 4, 1, parameterization="standard")
    with pytest.raises(ValueError, match="parameterization='ntk'"):
        models.to_standard(net, net.init(jax.random.PRNGKey(0), _data()))


def test_kernel_leaves_mlp_in_layer_order_even_after_tree_map():
    net = models.mlp(11, 3, 1, b_std=0.1)
    params = net.init(jax.random.PRNGKey(0), _data())
    expected = [f"dense_{i}" for i in range(12)]
    assert list(models.kernel_leaves(params)) == expected
    # jax.tree.map returns dicts with sorted keys (dense_10 before dense_2).
    mapped = jax.tree.map(lambda p: 2 * p, params)
    leaves = models.kernel_leaves(mapped)
    assert list(leaves) == expected
    np.testing.assert_array_equal(leaves["dense_3"], 2 * params["params"]["dense_3"]["kernel"])


class _Nested(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(2, (3, 3), name="conv_0")(x)
        x = _Block(name="block_0")(x)
        return nn.Dense(1, name="readout")(x.reshape(x.shape[0], -1))


class _Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.relu(nn.Conv(2, (3, 3), use_bias=False, name="conv_1")(x))


def test_kernel_leaves_any_flax_model():
    x = jnp.ones((2, 4, 4, 1))
    params = _Nested().init(jax.random.PRNGKey(0), x)
    leaves = models.kernel_leaves(params)
    assert list(leaves) == ["block_0/conv_1", "conv_0", "readout"]
    assert leaves["block_0/conv_1"].shape == (3, 3, 2, 2)
    assert models.kernel_leaves(params["params"]).keys() == leaves.keys()
