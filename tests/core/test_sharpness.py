"""Tests of core.sharpness: power iteration on NTK-vector products against the explicit Θ̂."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpipe.core import kernels, models, sharpness


def _network(k, width=32, depth=2, seed=0):
    net = models.mlp(depth, width, k, "relu", "ntk", 1.4, 0.1)
    x = jax.random.normal(jax.random.key(seed), (10, 3))
    return net, net.init(jax.random.key(seed + 1), x), x


@pytest.mark.parametrize("k", [1, 3])
def test_top_eigenvalue_equals_the_explicit_full_kernel_eigenvalue(k):
    """λ_max from Θ̂v = J(Jᵀv) equals eigvalsh of the explicit [n·k, n·k] kernel (float64)."""
    net, params, x = _network(k)
    full = kernels.empirical_ntk_full(net.apply, params, x)  # [n, n, k, k]
    n = x.shape[0]
    matrix = np.asarray(full).transpose(0, 2, 1, 3).reshape(n * k, n * k)
    exact = np.linalg.eigvalsh(matrix)[-1]
    options = sharpness.SharpnessOptions(tolerance=1e-9, max_iterations=5000)
    v0 = sharpness.initial_vector(n, k, jnp.float64)
    lam, v, _ = jax.jit(sharpness.top_eigenvalue, static_argnums=(0, 4))(
        net.apply, params, x, v0, options
    )
    np.testing.assert_allclose(float(lam), exact, rtol=1e-10)
    # the eigenvector too: Θ̂ v = λ v
    np.testing.assert_allclose(matrix @ np.ravel(v), exact * np.ravel(v), atol=1e-6 * exact)


def test_the_product_is_the_explicit_kernel_times_the_vector():
    net, params, x = _network(2)
    v = jax.random.normal(jax.random.key(5), (x.shape[0], 2))
    full = kernels.empirical_ntk_full(net.apply, params, x)
    expected = jnp.einsum("abjl,bl->aj", full, v)
    got = sharpness.ntk_vector_product(net.apply, params, x, v)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_a_warm_start_needs_fewer_products_than_a_cold_one():
    """From the top eigenvector of a nearby θ (the previous record), few products suffice."""
    net, params, x = _network(1, width=64)
    n = x.shape[0]
    options = sharpness.SharpnessOptions(tolerance=1e-6, max_iterations=2000)
    top = jax.jit(sharpness.top_eigenvalue, static_argnums=(0, 4))
    cold = sharpness.initial_vector(n, 1, jnp.float64)
    lam0, v_star, cold_count = top(net.apply, params, x, cold, options)
    moved = jax.tree.map(lambda a: a * 1.01, params)
    _, _, warm_count = top(net.apply, moved, x, v_star, options)
    _, _, moved_cold = top(net.apply, moved, x, cold, options)
    assert int(warm_count) < int(moved_cold)
    assert int(cold_count) > 0


def test_a_diverged_network_gives_nan_not_a_hang():
    net, params, x = _network(1)
    bad = jax.tree.map(lambda a: a * jnp.nan, params)
    v0 = sharpness.initial_vector(x.shape[0], 1, jnp.float64)
    lam, _, count = sharpness.top_eigenvalue(net.apply, bad, x, v0)
    assert np.isnan(float(lam)) and int(count) == 0


@pytest.mark.parametrize(("seeds", "linearized"), [(2, False), (1, True)])
def test_training_records_the_explicit_top_eigenvalue_at_record_steps(seeds, linearized):
    """train(sharpness=…) records λ_max of the explicit full Θ̂_t at step 0 and at T (θ_T is
    returned), for f and, with Θ̂₀ at every step, for f_lin; one seed (unbatched) and two."""
    from ntkpipe.core import train

    net = models.mlp(1, 48, 2, "relu", "ntk", 1.4, 0.1)
    x = jax.random.normal(jax.random.key(0), (8, 3))
    y = jax.nn.one_hot(jnp.arange(8) % 2, 2)
    params0 = jax.vmap(lambda key: net.init(key, x))(jax.random.split(jax.random.key(2), seeds))
    options = sharpness.SharpnessOptions(tolerance=1e-10, max_iterations=5000)
    trajectory = train.train(
        net.apply, params0, x, y, x, y, learning_rate=2.0, steps=6, record_steps=[0, 2, 6],
        linearized=linearized, sharpness=options,
    )  # fmt: skip

    def explicit(params):
        full = np.asarray(kernels.empirical_ntk_full(net.apply, params, x))
        return np.linalg.eigvalsh(full.transpose(0, 2, 1, 3).reshape(16, 16))[-1]

    for s in range(seeds):
        theta0 = jax.tree.map(lambda a, s=s: a[s], params0)
        theta_t = jax.tree.map(lambda a, s=s: a[s], trajectory.params)
        end = explicit(theta0) if linearized else explicit(theta_t)
        np.testing.assert_allclose(trajectory.sharpness[s, 0], explicit(theta0), rtol=1e-9)
        np.testing.assert_allclose(trajectory.sharpness[s, -1], end, rtol=1e-9)
        if linearized:
            np.testing.assert_allclose(trajectory.sharpness[s], explicit(theta0), rtol=1e-9)
        else:  # the kernel of the network moves (it is what catapult dynamics act on)
            assert trajectory.sharpness[s, -1] != trajectory.sharpness[s, 0]


def test_training_without_sharpness_records_none_and_bad_options_are_refused():
    from ntkpipe.core import train
    from ntkpipe.errors import ConfigError

    net, params, x = _network(1)
    params0 = jax.tree.map(lambda a: a[None], params)
    y = jnp.ones((x.shape[0], 1))
    assert train.train(net.apply, params0, x, y, x, y, learning_rate=0.1, steps=2).sharpness is None
    with pytest.raises(ConfigError, match="sharpness"):
        train.train(net.apply, params0, x, y, x, y, learning_rate=0.1, steps=2, sharpness="yes")


def test_a_resumed_run_continues_the_warm_started_sharpness_bit_for_bit():
    """The power iteration's vector is part of the TrainState: a run resumed from a checkpoint
    (state_to_arrays) records the same sharpness as the uninterrupted one."""
    from ntkpipe.core import train

    net, params, x = _network(1)
    params0 = jax.tree.map(lambda a: a[None], params)
    y = jnp.sign(x[:, :1])
    kwargs = dict(learning_rate=0.5, steps=8, record_steps=[0, 2, 4, 8], sharpness=True)
    states = []
    full = train.train(net.apply, params0, x, y, x, y, on_segment=states.append, **kwargs)
    saved = train.state_to_arrays(states[1])  # after the record at step 2
    assert any("power" in name for name in saved)
    resumed = train.train(net.apply, params0, x, y, x, y, state=saved, **kwargs)
    np.testing.assert_array_equal(resumed.sharpness, full.sharpness)
