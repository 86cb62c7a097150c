"""The conv-net path of kernels (ntkpipe.core._conv_ntk) against explicit float64 Jacobians.

Float64 (tests/conftest.py). The reference is written here from scratch: J = ∂f/∂θ of the
whole batch by jax.jacrev, flattened to [n·k, P], and Θ̂ = J Jᵀ; it shares no code with either
kernel path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest

from ntkpipe.core import kernels, models
from ntkpipe.core._conv_ntk import conv_module_of

NETS = {
    "cnn_ntk_erf_bias": lambda: models.cnn(2, 3, 3, "erf", "ntk", 1.3, 0.2),
    "cnn_standard_relu": lambda: models.cnn(2, 3, 2, "relu", "standard", 1.4, 0.3),
    "cnn_flatten_tanh": lambda: models.cnn(1, 2, 3, "tanh", "ntk", 1.2, 0.1, pooling="flatten"),
    "wrn1_ntk_relu": lambda: models.wrn(1, 3, 3, "relu", "ntk", 1.3, 0.1),
    "wrn2_standard_k2": lambda: models.wrn(2, 2, 2, "erf", "standard", 1.1, 0.2, kernel_size=2),
    "wide_signals": lambda: models.cnn(2, 32, 8, "relu", "ntk", 1.4, 0.1),  # k·c_out ≥ 256
}


@functools.partial(jax.jit, static_argnums=2)
def _flat_jacobian(params, x, apply_fn):
    """J = ∂f(x)/∂θ of the whole batch, [n·k, P]."""
    jac = jax.jacrev(apply_fn)(params, x)  # leaves [n, k, *leaf]
    n, k = jax.tree.leaves(jac)[0].shape[:2]
    return jnp.concatenate([u.reshape(n * k, -1) for u in jax.tree.leaves(jac)], axis=1)


def _explicit_ntks(apply_fn, params, x1, x2):
    """J(x1) J(x1)ᵀ and J(x1) J(x2)ᵀ as [n1, n, k, k], from one Jacobian of the batch [x1; x2]."""
    k = jax.eval_shape(apply_fn, params, x1).shape[1]
    jac = _flat_jacobian(params, jnp.concatenate([x1, x2]), apply_fn)
    ja, jb = jac[: len(x1) * k], jac[len(x1) * k :]
    return tuple((ja @ j.T).reshape(len(x1), k, -1, k).transpose(0, 2, 1, 3) for j in (ja, jb))


def _rel(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def _setup(name, n1=3, n2=2, size=4):
    net = NETS[name]()
    shape = (3, 3, 2) if name == "wide_signals" else (size, size, 2)
    x1 = jax.random.normal(jax.random.PRNGKey(0), (n1, *shape), jnp.float64)
    x2 = jax.random.normal(jax.random.PRNGKey(2), (n2, *shape), jnp.float64)
    params = net.init(jax.random.PRNGKey(1), x1)
    return net, params, x1, x2


def _traced(full):
    return jnp.mean(jnp.diagonal(full, axis1=2, axis2=3), axis=-1)


@pytest.mark.parametrize("name", list(NETS))
def test_conv_path_is_the_explicit_jacobian_contraction(name):
    """Traced kernel with x2 given on every net; the full one and x2 = None on the first."""
    net, params, x1, x2 = _setup(name)
    assert conv_module_of(net.apply) is net.module
    ref_11, ref_12 = _explicit_ntks(net.apply, params, x1, x2)
    traced = kernels.empirical_ntk(net.apply, params, x1, x2)
    assert traced.shape == (len(x1), len(x2))
    assert _rel(traced, _traced(ref_12)) < 1e-5
    if name == "cnn_ntk_erf_bias":
        assert _rel(kernels.empirical_ntk(net, params, x1), _traced(ref_11)) < 1e-5
        assert _rel(kernels.empirical_ntk_full(net, params, x1), ref_11) < 1e-5
        assert _rel(kernels.empirical_ntk_full(net.apply, params, x1, x2), ref_12) < 1e-5


def test_blocked_conv_kernels_equal_one_tile():
    """n = 5 in tiles of 2 (padded), traced and full, x2 = None (symmetric tiles) and given."""
    net, params, x1, x2 = _setup("wrn1_ntk_relu", n1=5, size=4)
    ref_11, ref_12 = _explicit_ntks(net.apply, params, x1, x2)
    for x_b, ref in ((None, ref_11), (x2, ref_12)):
        assert (
            _rel(kernels.empirical_ntk_full(net.apply, params, x1, x_b, block_size=2), ref) < 1e-5
        )
        assert (
            _rel(kernels.empirical_ntk(net.apply, params, x1, x_b, block_size=2), _traced(ref))
            < 1e-5
        )


def test_only_cnn_and_wrn_without_batch_norm_take_the_conv_path():
    assert conv_module_of(models.cnn(1, 2, 2)) is not None
    assert conv_module_of(models.wrn(1, 2, 2).apply) is not None
    assert conv_module_of(models.wrn(1, 2, 2, batch_norm=True).apply) is None
    assert conv_module_of(models.mlp(1, 2, 2).apply) is None
    assert conv_module_of(models.cnn(1, 2, 1).apply) is None  # k = 1: generic (measured faster)
    net = models.cnn(1, 2, 2)
    assert conv_module_of(lambda p, x: net.apply(p, x)) is None
