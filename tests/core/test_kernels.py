"""Empirical NTK and NNGP kernels (ntkpipe.core.kernels, paper Eq. 4, §2.3.1).

The reference is the definition Θ̂_jk(x, x') = Σ_p ∂f_j(x)/∂θ_p ∂f_k(x')/∂θ_p with explicit
jax.jacrev Jacobians in float64; the fast dense path, the generic path, blocking and the traced
kernel must all agree with it.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ntkpipe.core import kernels, models

TOL = {"rtol": 1e-10, "atol": 1e-12}


def _jacobian(apply_fn, params, x):
    """Explicit Jacobian ∂f/∂θ [n, out, P]."""
    flat, unravel = ravel_pytree(params)
    return jax.jit(jax.jacrev(lambda p: apply_fn(unravel(p), x)))(flat)


def _jacobians(apply_fn, params, x1, x2):
    """Jacobians at x1 and x2, from one compilation."""
    j = _jacobian(apply_fn, params, jnp.concatenate([x1, x2]))
    return j[: len(x1)], j[len(x1) :]


def _gram(j1, j2):
    """Θ̂ [n1, n2, out, out] from Jacobians [n, out, P]."""
    return jnp.einsum("ajp,bkp->abjk", j1, j2)


def _reference_full(apply_fn, params, x1, x2):
    return _gram(*_jacobians(apply_fn, params, x1, x2))


def _setup(activation="relu", parameterization="ntk", b_std=0.3, out_dim=3, depth=2, width=6):
    net = models.mlp(depth, width, out_dim, activation, parameterization, w_std=1.4, b_std=b_std)
    k1, k2, kp = jax.random.split(jax.random.PRNGKey(0), 3)
    x1 = jax.random.normal(k1, (4, 4))
    x2 = jax.random.normal(k2, (4, 4))
    return net, net.init(kp, x1), x1, x2


def _generic(net):
    """The same network behind a plain function: takes the generic path."""
    return lambda params, x: net.apply(params, x)


@pytest.mark.parametrize("activation", sorted(models.ACTIVATIONS))
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("b_std", [0.0, 0.3])
def test_dense_path_equals_explicit_jacobians(activation, parameterization, b_std):
    # Every activation, parameterization and bias setting meets both out_dim = 1 and 3 (the
    # two parameterizations share a shape, hence compilations).
    odd = (sorted(models.ACTIVATIONS).index(activation) + (b_std > 0)) % 2
    out_dim = 3 if odd else 1
    net, params, x1, x2 = _setup(activation, parameterization, b_std, out_dim)
    j1, j2 = _jacobians(net.apply, params, x1, x2)
    full = kernels.empirical_ntk_full(net.apply, params, x1, x2)
    np.testing.assert_allclose(full, _gram(j1, j2), **TOL)
    traced = kernels.empirical_ntk(net.apply, params, x1)  # x2 = x1
    np.testing.assert_allclose(traced, jnp.einsum("abjj->ab", _gram(j1, j1)) / out_dim, **TOL)


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_dense_path_any_depth(depth):
    net, params, x1, x2 = _setup("tanh", depth=depth)
    ref = _reference_full(net.apply, params, x1, x2)
    np.testing.assert_allclose(kernels.empirical_ntk_full(net, params, x1, x2), ref, **TOL)
    traced = kernels.empirical_ntk(net, params, x1, x2)
    np.testing.assert_allclose(traced, jnp.einsum("abjj->ab", ref) / 3, **TOL)


def test_traced_full_equals_empirical_ntk():
    out_dim = 3
    net, params, x1, x2 = _setup("erf", out_dim=out_dim)
    for apply_fn in (net.apply, _generic(net)):
        full = kernels.empirical_ntk_full(apply_fn, params, x1, x2)
        traced = kernels.empirical_ntk(apply_fn, params, x1, x2)
        np.testing.assert_allclose(jnp.trace(full, axis1=2, axis2=3) / out_dim, traced, **TOL)


def test_generic_path_equals_explicit_jacobians_and_dense_path():
    net, params, x1, x2 = _setup("erf", "standard", 0.3, out_dim=3)
    ref = _reference_full(net.apply, params, x1, x2)
    generic = kernels.empirical_ntk_full(_generic(net), params, x1, x2)
    np.testing.assert_allclose(generic, ref, **TOL)
    np.testing.assert_allclose(
        kernels.empirical_ntk(_generic(net), params, x1),
        kernels.empirical_ntk(net.apply, params, x1),
        **TOL,
    )


@pytest.mark.parametrize(
    ("kind", "path", "block_size"),
    [
        ("traced", "dense", 2),
        ("full", "dense", 3),
        ("traced", "generic", 3),
        ("full", "generic", 2),
    ],
)
def test_blocked_equals_unblocked(kind, path, block_size):
    net, params, _, _ = _setup("relu", out_dim=2)
    x1 = jax.random.normal(jax.random.PRNGKey(5), (7, 4))  # block sizes 2, 3 divide neither
    x2 = jax.random.normal(jax.random.PRNGKey(6), (5, 4))
    fn = kernels.empirical_ntk if kind == "traced" else kernels.empirical_ntk_full
    apply_fn = net.apply if path == "dense" else _generic(net)
    for xb in (x2, None):
        blocked = fn(apply_fn, params, x1, xb, block_size=block_size)
        np.testing.assert_allclose(blocked, fn(apply_fn, params, x1, xb), **TOL)
    # x2 = None: only the upper tiles are computed; the kernel is still symmetric and PSD.
    swap = (1, 0) if kind == "traced" else (1, 0, 3, 2)
    np.testing.assert_allclose(blocked, blocked.transpose(swap), rtol=0, atol=1e-13)
    square = blocked if kind == "traced" else blocked.transpose(0, 2, 1, 3).reshape(14, 14)
    assert float(jnp.linalg.eigvalsh(square).min()) > -1e-12


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("b_std", [0.0, 0.3])
def test_nngp_is_readout_layer_jacobian_gram(parameterization, b_std):
    net, params, x1, x2 = _setup("erf", parameterization, b_std, out_dim=3)
    readout = params["params"]["dense_2"]

    def f_readout(p, x):
        return net.apply({"params": {**params["params"], "dense_2": p}}, x)

    j1, j2 = _jacobians(f_readout, readout, x1, x2)
    ref = jnp.einsum("ajp,bjp->ab", j1, j2) / 3
    np.testing.assert_allclose(kernels.empirical_nngp(net, params, x1, x2), ref, **TOL)
    np.testing.assert_allclose(kernels.empirical_nngp(_generic(net), params, x1, x2), ref, **TOL)
    np.testing.assert_allclose(
        kernels.empirical_nngp(net, params, x1, x2, block_size=2), ref, **TOL
    )


def test_nngp_in_ntk_parameterization_is_sigma_w2_mean_of_features_plus_sigma_b2():
    net, params, x1, x2 = _setup("relu", "ntk", 0.3, out_dim=2, depth=1, width=9)
    w0 = params["params"]["dense_0"]
    phi = lambda x: jax.nn.relu(1.4 / 2.0 * x @ w0["kernel"] + 0.3 * w0["bias"])  # d_in = 4
    expected = 1.4**2 * phi(x1) @ phi(x2).T / 9 + 0.3**2
    np.testing.assert_allclose(kernels.empirical_nngp(net, params, x1, x2), expected, **TOL)


class _ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = jnp.tanh(nn.Conv(3, (2, 2), param_dtype=jnp.float64, name="conv_0")(x))
        return nn.Dense(2, param_dtype=jnp.float64, name="readout")(x.reshape(x.shape[0], -1))


def test_generic_path_on_a_conv_net():
    module = _ConvNet()
    x1 = jax.random.normal(jax.random.PRNGKey(1), (5, 3, 3, 1))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (4, 3, 3, 1))
    params = module.init(jax.random.PRNGKey(0), x1)
    j1, j2 = _jacobians(module.apply, params, x1, x2)
    full = kernels.empirical_ntk_full(module.apply, params, x1, x2, block_size=2)
    np.testing.assert_allclose(full, _gram(j1, j2), **TOL)
    traced = kernels.empirical_ntk(module.apply, params, x1, block_size=3)
    np.testing.assert_allclose(traced, jnp.einsum("abjj->ab", _gram(j1, j1)) / 2, **TOL)
    # NNGP: Jacobian Gram of the readout layer (the last kernel leaf) only.
    readout = params["params"]["readout"]

    def f_readout(p, x):
        return module.apply({"params": {**params["params"], "readout": p}}, x)

    j1, j2 = _jacobians(f_readout, readout, x1, x2)
    np.testing.assert_allclose(
        kernels.empirical_nngp(module.apply, params, x1, x2),
        jnp.einsum("ajp,bjp->ab", j1, j2) / 2,
        **TOL,
    )


def test_usable_under_jit_and_vmap_over_seeds():
    net, _, x1, x2 = _setup("relu", out_dim=2)
    seeds = [net.init(jax.random.PRNGKey(s), x1) for s in range(2)]
    params = jax.tree.map(lambda *p: jnp.stack(p), *seeds)
    batched = jax.jit(jax.vmap(lambda p: kernels.empirical_ntk(net.apply, p, x1, x2)))(params)
    for s in range(2):
        p = jax.tree.map(lambda a, s=s: a[s], params)
        np.testing.assert_allclose(batched[s], kernels.empirical_ntk(net.apply, p, x1, x2), **TOL)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x2": jnp.ones((3, 5))}, "same feature shape"),
        ({"x1": jnp.ones(4)}, "x1 must be a batch"),
        ({"x1": jnp.ones((0, 4))}, "x1 must be a batch"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": -2}, "block_size"),
        ({"block_size": 2.5}, "block_size"),
        ({"block_size": True}, "block_size"),
    ],
)
def test_bad_inputs_are_clear_errors(change, message):
    net, params, x1, _ = _setup()
    args = {"x1": x1, "x2": None, "block_size": None, **change}
    for fn in (kernels.empirical_ntk, kernels.empirical_ntk_full, kernels.empirical_nngp):
        for apply_fn in (net.apply, _generic(net)):
            with pytest.raises(ValueError, match=message):
                fn(apply_fn, params, args["x1"], args["x2"], block_size=args["block_size"])


def test_mlp_input_dimension_and_params_are_checked():
    net, params, _, _ = _setup()
    with pytest.raises(ValueError, match=r"x1 must have shape \[n, 4\]"):
        kernels.empirical_ntk(net.apply, params, jnp.ones((3, 5)))
    with pytest.raises(ValueError, match=r"x1 must have shape \[n, 4\]"):
        kernels.empirical_ntk(net.apply, params, jnp.ones((3, 4, 1)), jnp.ones((2, 4, 1)))
    with pytest.raises(ValueError, match="dense_2"):
        kernels.empirical_ntk(net.apply, {"params": {"dense_0": {}}}, jnp.ones((3, 4)))


def test_generic_apply_must_return_batch_of_outputs():
    with pytest.raises(ValueError, match=r"must return one array \[n, out\]"):
        kernels.empirical_ntk(lambda p, x: jnp.sum(x * p, axis=1), jnp.ones(4), jnp.ones((3, 4)))
