"""Tests of core.sharpness: power iteration on NTK-vector products, and the exact λ_max of the
formed kernel, against the explicit Θ̂ = J Jᵀ; training records either, and they agree."""

import jax
import jax.flatten_util
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


@pytest.mark.parametrize("method", ["power", "exact"])
@pytest.mark.parametrize(("seeds", "linearized"), [(2, False), (1, True)])
def test_training_records_the_explicit_top_eigenvalue_at_record_steps(seeds, linearized, method):
    """train(sharpness=…) records λ_max of the explicit full Θ̂_t at step 0 and at T (θ_T is
    returned), for f and, with Θ̂₀ at every step, for f_lin; one seed (unbatched) and two; by
    power iteration and from the formed kernel."""
    from ntkpipe.core import train

    net = models.mlp(1, 48, 2, "relu", "ntk", 1.4, 0.1)
    x = jax.random.normal(jax.random.key(0), (8, 3))
    y = jax.nn.one_hot(jnp.arange(8) % 2, 2)
    params0 = jax.vmap(lambda key: net.init(key, x))(jax.random.split(jax.random.key(2), seeds))
    options = sharpness.SharpnessOptions(tolerance=1e-10, max_iterations=5000, method=method)
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


@pytest.mark.parametrize("method", ["power", "exact"])
def test_a_resumed_run_continues_the_sharpness_bit_for_bit(method):
    """The power iteration's vector is part of the TrainState (the exact path needs none): a run
    resumed from a checkpoint (state_to_arrays) records the same sharpness as the uninterrupted
    one."""
    from ntkpipe.core import train

    net, params, x = _network(1)
    params0 = jax.tree.map(lambda a: a[None], params)
    y = jnp.sign(x[:, :1])
    options = sharpness.SharpnessOptions(method=method)
    kwargs = dict(learning_rate=0.5, steps=8, record_steps=[0, 2, 4, 8], sharpness=options)
    states = []
    full = train.train(net.apply, params0, x, y, x, y, on_segment=states.append, **kwargs)
    saved = train.state_to_arrays(states[1])  # after the record at step 2
    assert any("power" in name for name in saved) == (method == "power")
    resumed = train.train(net.apply, params0, x, y, x, y, state=saved, **kwargs)
    np.testing.assert_array_equal(resumed.sharpness, full.sharpness)


def _explicit_top_eigenvalue(net, params, x):
    """λ_max of Θ̂ = J Jᵀ from the explicit Jacobian J [n·k, P] (jacrev of the flat θ)."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jacobian = jax.jacrev(lambda p: net.apply(unravel(p), x).reshape(-1))(flat)
    return np.linalg.eigvalsh(np.asarray(jacobian @ jacobian.T))[-1]


@pytest.mark.parametrize(
    ("parameterization", "layer_rates"),
    [("ntk", "uniform"), ("standard", "uniform"), ("standard", "ntk"), ("mup", "uniform")],
)
@pytest.mark.parametrize(("k", "block_size"), [(1, None), (1, 4), (3, None), (3, 4)])
def test_the_exact_top_eigenvalue_is_that_of_the_explicit_jacobian(
    parameterization, layer_rates, k, block_size
):
    """exact_top_eigenvalue forms Θ̂ (the dense path, in one tile or in tiles of 4 of the 10
    examples) and diagonalizes it: λ_max of J Jᵀ from explicit Jacobians with respect to the
    trained leaves, float64, in the NTK, standard (also with the §2.1 per-layer rates) and μP
    parameterizations."""
    net = models.mlp(2, 32, k, "relu", parameterization, 1.4, 0.1, layer_rates)
    x = jax.random.normal(jax.random.key(0), (10, 3))
    params = net.init(jax.random.key(1), x)
    exact = _explicit_top_eigenvalue(net, params, x)
    got = sharpness.exact_top_eigenvalue(net.apply, params, x, k, block_size)
    np.testing.assert_allclose(got, exact, rtol=1e-12)
    nan = jax.tree.map(lambda a: a * jnp.nan, params)
    assert np.isnan(sharpness.exact_top_eigenvalue(net.apply, nan, x, k))


def test_the_method_is_exact_for_a_small_mlp_and_power_otherwise():
    """auto: exact where an MLP's Θ̂ has n·k ≤ EXACT_MAX_SIZE, the power iteration for a larger
    kernel and for any other model; a method named is kept; an unknown one is refused."""
    from ntkpipe.errors import ConfigError

    mlp = models.mlp(2, 16, 1)
    cnn = models.cnn(1, 4, 1)
    limit = sharpness.EXACT_MAX_SIZE
    assert sharpness.method(mlp.apply, limit, 1) == "exact"
    assert sharpness.method(mlp.apply, limit // 2 + 1, 2) == "power"
    assert sharpness.method(cnn.apply, 8, 1) == "power"
    assert sharpness.method(lambda p, x: x, 8, 1) == "power"
    forced = sharpness.SharpnessOptions(method="power")
    assert sharpness.method(mlp.apply, 8, 1, forced) == "power"
    assert sharpness.method(cnn.apply, 8, 1, forced._replace(method="exact")) == "exact"
    with pytest.raises(ConfigError, match="sharpness method: 'lanczos' is not one of"):
        sharpness.method(mlp.apply, 8, 1, forced._replace(method="lanczos"))


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_exact_and_power_sharpness_agree_along_a_training_run_whose_kernel_moves(parameterization):
    """The default sweep's setting, small: a two-layer ReLU net (k = 1) trained by GD at a large
    rate, whose Θ̂_t moves by far more than the power iteration's error. Both methods record the
    same λ_max(Θ̂_t) at every record, to the tolerance's bound (tol² · λ/(λ − λ₂) ≪ 1e-3)."""
    from ntkpipe.core import train

    net = models.mlp(2, 48, 1, "relu", parameterization, 2**0.5, 0.1)
    x = jax.random.normal(jax.random.key(0), (24, 5))
    y = jnp.sign(x[:, :1] * x[:, 1:2])
    params0 = jax.vmap(lambda key: net.init(key, x))(jax.random.split(jax.random.key(3), 2))
    lam0 = sharpness.exact_top_eigenvalue(net.apply, jax.tree.map(lambda a: a[0], params0), x, 1)
    rate = 1.6 * 24 / lam0  # 0.8 · 2·n·k/λ₀: near the edge, where the kernel moves most
    recorded = {
        method: train.train(
            net.apply, params0, x, y, x, y, learning_rate=rate, steps=200,
            record_steps=[0, 5, 20, 50, 100, 200],
            sharpness=sharpness.SharpnessOptions(method=method),
        ).sharpness
        for method in ("power", "exact")
    }  # fmt: skip
    exact, power = recorded["exact"], recorded["power"]
    assert np.isfinite(exact).all()
    moved = np.max(np.abs(exact - exact[:, :1]), axis=1) / exact[:, 0]
    assert (moved > 0.02).all(), moved  # so that θ₀'s kernel in place of θ_t's would be seen
    np.testing.assert_allclose(power, exact, rtol=1e-3)


def test_exact_sharpness_of_a_diverged_seed_is_nan():
    """A seed whose loss is no longer finite records NaN, like the power iteration's."""
    from ntkpipe.core import train

    net, params, x = _network(1)
    params0 = jax.tree.map(lambda a: a[None], params)
    y = jnp.sign(x[:, :1])
    trajectory = train.train(
        net.apply, params0, x, y, x, y, learning_rate=1e4, steps=40, record_steps=[0, 40],
        sharpness=sharpness.SharpnessOptions(method="exact"),
    )  # fmt: skip
    assert np.isfinite(trajectory.sharpness[0, 0]) and np.isnan(trajectory.sharpness[0, -1])
