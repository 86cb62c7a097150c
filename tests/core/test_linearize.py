"""The linearized network f_lin (ntkpipe.core.linearize, paper Eq. 5).

References: the network itself at θ₀, its explicit jax.jacrev Jacobian J₀ at θ₀, the explicit
formula f₀ + J₀ (θ − θ₀) with that Jacobian, and the second-order Taylor remainder of f.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ntkpipe.core import linearize, models

TOL = {"rtol": 1e-11, "atol": 1e-12}


def _setup(activation="tanh", b_std=0.2):
    net = models.mlp(2, 8, 3, activation, "ntk", w_std=1.5, b_std=b_std)
    kx, kp, ku, kv = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.normal(kx, (5, 4))
    params0 = net.init(kp, x)
    flat0, unravel = ravel_pytree(params0)
    u = unravel(jax.random.normal(ku, flat0.shape))
    v = unravel(jax.random.normal(kv, flat0.shape))
    return net, params0, x, u, v


def _axpy(params, *terms):
    """params + Σ c·d for (c, d) in terms."""
    for c, d in terms:
        params = jax.tree.map(lambda p, e, c=c: p + c * e, params, d)
    return params


def _jacobian(fn, params, x):
    flat, unravel = ravel_pytree(params)
    return jax.jacrev(lambda p: fn(unravel(p), x))(flat)  # [n, out, P]


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_f_lin_equals_f_at_params0_and_matches_explicit_formula(activation):
    net, params0, x, u, _ = _setup(activation)
    f_lin = linearize.linearize(net.apply, params0)
    np.testing.assert_allclose(f_lin(params0, x), net.apply(params0, x), **TOL)
    # f_lin(θ) = f(θ₀) + J₀ (θ − θ₀) with the explicit Jacobian.
    params = _axpy(params0, (0.3, u))
    j0 = _jacobian(net.apply, params0, x)
    expected = net.apply(params0, x) + j0 @ (0.3 * ravel_pytree(u)[0])
    np.testing.assert_allclose(f_lin(params, x), expected, **TOL)


def test_derivative_of_f_lin_is_the_network_jacobian_at_params0_everywhere():
    net, params0, x, u, _ = _setup()
    f_lin = linearize.linearize(net.apply, params0)
    j0 = _jacobian(net.apply, params0, x)
    np.testing.assert_allclose(_jacobian(f_lin, params0, x), j0, **TOL)
    far = _axpy(params0, (2.0, u))
    np.testing.assert_allclose(_jacobian(f_lin, far, x), j0, **TOL)
    # ... while the network's own Jacobian there differs (tanh is not linear).
    assert not np.allclose(_jacobian(net.apply, far, x), j0, rtol=1e-3)


def test_f_lin_is_exactly_affine_in_params():
    net, params0, x, u, v = _setup()
    f_lin = jax.jit(linearize.linearize(net.apply, params0))
    f0 = f_lin(params0, x)
    du = f_lin(_axpy(params0, (1.0, u)), x) - f0
    dv = f_lin(_axpy(params0, (1.0, v)), x) - f0
    for a, b in ((0.5, -2.0), (3.0, 7.0), (-1e-3, 1e3)):
        combined = f_lin(_axpy(params0, (a, u), (b, v)), x)
        scale = float(jnp.max(jnp.abs(combined))) + 1.0
        np.testing.assert_allclose(combined, f0 + a * du + b * dv, rtol=0, atol=1e-12 * scale)


def test_f_lin_is_the_first_order_taylor_expansion():
    """f(θ₀ + εu) − f_lin(θ₀ + εu) = O(ε²): halving ε divides the remainder by 4."""
    net, params0, x, u, _ = _setup("erf")
    f_lin = linearize.linearize(net.apply, params0)

    def remainder(eps):
        params = _axpy(params0, (eps, u))
        return float(jnp.max(jnp.abs(net.apply(params, x) - f_lin(params, x))))

    ratio = remainder(1e-2) / remainder(5e-3)
    assert 3.9 < ratio < 4.1


def test_f_lin_of_a_generic_flax_model_and_mixed_dtypes():
    module = nn.Dense(2, param_dtype=jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4))
    params0 = module.init(jax.random.PRNGKey(1), x)
    f_lin = linearize.linearize(module.apply, params0)
    params = jax.tree.map(lambda p: (p + 1.0).astype(jnp.float32), params0)
    # A Dense layer is affine in its parameters, so f_lin is f (up to the float32 of params).
    np.testing.assert_allclose(f_lin(params, x), module.apply(params, x), rtol=1e-6)


def test_params_with_another_structure_are_a_clear_error():
    net, params0, x, _, _ = _setup()
    f_lin = linearize.linearize(net.apply, params0)
    with pytest.raises(ValueError, match="tree structure of params0"):
        f_lin({"params": {"dense_0": params0["params"]["dense_0"]}}, x)
    with pytest.raises(ValueError, match="apply_fn must be callable"):
        linearize.linearize("not a function", params0)
