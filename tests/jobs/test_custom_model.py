"""Custom models (examples/custom) through the library, in float64: the empirical NTK of the
generic blocked path is the explicit Jacobian product, and the closed-form f_lin is gradient
descent on f_lin step by step (Eq. 8–11)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpipe.core import dynamics, kernels, linearize
from ntkpipe.errors import StageError
from ntkpipe.jobs import custom_model
from ntkpipe.jobs._job import init_params

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "custom"
SECTION = dict(
    architecture="custom",
    depth=1,
    width=8,
    activation="relu",
    parameterization="ntk",
    w_std=1.4142135623730951,
    b_std=0.1,
)


def _net(name, out_dim=2, input_shape=(4, 3, 1), **options):
    model = {**SECTION, "factory": f"{EXAMPLES / name}.py:{name}", "options": options}
    return custom_model.build_custom(model, input_shape, out_dim, np.float64)


def _inputs(n, d=12, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, d)))


def _explicit_ntk(apply, params, x1, x2):
    """Θ̂_jk(x, x') = Σ_p ∂f_j(x)/∂θ_p ∂f_k(x')/∂θ_p from the whole Jacobian [n, k, P]."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    @jax.jit
    def jac(x):
        return jax.jacrev(lambda p: apply(unravel(p), x))(flat)

    return jnp.einsum("ajp,bkp->abjk", jac(x1), jac(x2))


@pytest.mark.parametrize(
    ("name", "options"), [("attention", {"heads": 2}), ("residual_mlp", {"branch_scale": 0.5})]
)
def test_empirical_ntk_of_a_custom_model_is_the_jacobian_product(name, options):
    import jax.flatten_util  # noqa: F401

    net = _net(name, **options)
    params = net.init(jax.random.PRNGKey(3), _inputs(1))
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree_util.tree_leaves(params))
    x1, x2 = _inputs(5), _inputs(3, seed=1)
    full = _explicit_ntk(net.apply, params, x1, x2)
    traced = jnp.trace(full, axis1=2, axis2=3) / 2
    blocked = kernels.empirical_ntk(net.apply, params, x1, x2, block_size=2)
    np.testing.assert_allclose(blocked, traced, rtol=1e-10, atol=1e-12)
    full_blocked = kernels.empirical_ntk_full(net.apply, params, x1, x2, block_size=2)
    np.testing.assert_allclose(full_blocked, full, rtol=1e-10, atol=1e-12)
    assert np.abs(traced).max() > 1e-3  # not a vacuous comparison


def test_closed_form_f_lin_of_the_attention_model_is_gradient_descent_step_by_step():
    net = _net("attention", out_dim=2, heads=2)
    params0 = net.init(jax.random.PRNGKey(0), _inputs(1))
    x, x_test = _inputs(6), _inputs(4, seed=2)
    y = jnp.asarray(np.eye(2)[np.arange(6) % 2])
    f_lin = jax.jit(linearize.linearize(net.apply, params0))
    ntk = kernels.empirical_ntk_full(net.apply, params0, x)
    eta = 0.5 * float(dynamics.lr_critical(ntk, 2))

    def loss(p):  # ½ · mean over the n·k entries (the config's mse)
        return 0.5 * jnp.mean((f_lin(p, x) - y) ** 2)

    params, train_gd, test_gd = params0, [], []
    grad = jax.jit(jax.grad(loss))
    for _ in range(6):
        train_gd.append(f_lin(params, x))
        test_gd.append(f_lin(params, x_test))
        params = jax.tree_util.tree_map(lambda p, g: p - eta * g, params, grad(params))
    predict = dynamics.gradient_descent_mse(ntk, y, eta, discrete=True)
    ntk_test = kernels.empirical_ntk_full(net.apply, params0, x_test, x)
    fx_train, fx_test = predict(jnp.arange(6), f_lin(params0, x), f_lin(params0, x_test), ntk_test)
    np.testing.assert_allclose(fx_train, np.stack(train_gd), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(fx_test, np.stack(test_gd), rtol=1e-9, atol=1e-11)
    assert float(jnp.abs(fx_train[-1] - fx_train[0]).max()) > 1e-2  # it moved


def test_every_seed_draws_its_own_custom_network_in_the_run_dtype():
    net = _net("residual_mlp")
    params = init_params(net, [0, 1], np.zeros((1, 12)))
    kernel = params["params"]["readout"]["kernel"]
    assert kernel.shape[0] == 2 and kernel.dtype == jnp.float64
    assert not np.allclose(kernel[0], kernel[1])


def test_a_factory_that_cannot_be_imported_names_model_factory():
    model = {**SECTION, "factory": "no_such_package.models:net", "options": {}}
    with pytest.raises(StageError, match=r"model\.factory: 'no_such_package.models:net' cannot"):
        custom_model.build_custom(model, (12,), 1, np.float32)
