"""η_crit of the kernel the dynamics use (dynamics.lr_critical), against gradient descent on
f_lin itself: with k > 1 outputs the full kernel gives the learning rate where GD starts to
diverge; the traced one overestimates it. And the kernels job stores the full kernel's η_crit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpipe.core import dynamics, kernels, linearize, models

N, D, K = 12, 6, 4


def _setup(width=8):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((N, D)))
    y = jnp.asarray(np.eye(K)[rng.integers(0, K, N)] - 1 / K)
    net = models.mlp(depth=2, width=width, out_dim=K, activation="relu", w_std=1.4, b_std=0.1)
    params = net.init(jax.random.PRNGKey(3), x[:1])
    return net, params, x, y


def _divergence_test(net, params, x, y, steps=300):
    """η ↦ whether full-batch GD on the ½·mean MSE of f_lin (Eq. 5) diverged (the loss grew
    10⁶×), compiled once with η a traced argument."""
    f_lin = linearize.linearize(net.apply, params)

    def loss(p):
        return 0.5 * jnp.mean((f_lin(p, x) - y) ** 2)

    @jax.jit
    def final_loss(learning_rate):
        def step(p, _):
            return jax.tree.map(lambda a, g: a - learning_rate * g, p, jax.grad(loss)(p)), None

        return loss(jax.lax.scan(step, params, None, length=steps)[0])

    start = float(loss(params))
    return lambda learning_rate: not float(final_loss(learning_rate)) < 1e6 * start


def test_full_kernel_gives_where_gd_on_f_lin_starts_to_diverge():
    net, params, x, y = _setup()
    full = kernels.empirical_ntk_full(net.apply, params, x)
    traced = kernels.empirical_ntk(net.apply, params, x)
    matrix = np.asarray(full).transpose(0, 2, 1, 3).reshape(N * K, N * K)
    limit = 2 * N * K / np.linalg.eigvalsh(matrix)[-1]  # |1 − cλ_max| = 1
    eta = float(dynamics.lr_critical(full, K))
    diverges = _divergence_test(net, params, x, y)
    assert eta <= limit * (1 + 1e-12)  # equal when λ_min ≈ 0
    assert not diverges(eta)
    assert not diverges(0.97 * limit)
    assert diverges(1.03 * limit)
    # λ_max(Θ̄) ≤ max_j λ_max(Θ̂_jj) ≤ λ_max(full) ≤ Σ_j λ_max(Θ̂_jj) (stated in lr_critical)
    blocks = [np.linalg.eigvalsh(np.asarray(full)[:, :, j, j])[-1] for j in range(K)]
    top = 2 * N * K / limit
    assert np.linalg.eigvalsh(np.asarray(traced))[-1] <= max(blocks) * (1 + 1e-12)
    assert max(blocks) <= top * (1 + 1e-12) and top <= sum(blocks) * (1 + 1e-12)
    # the traced kernel's threshold is too high: a run between the two diverges
    traced_limit = 2 * N * K / np.linalg.eigvalsh(np.asarray(traced))[-1]
    assert traced_limit > 1.1 * limit
    assert float(dynamics.lr_critical(traced, K)) > eta
    assert diverges(0.5 * (limit + traced_limit))


@pytest.mark.parametrize("out_dim", [1, K])
def test_kernels_job_stores_the_eta_crit_of_the_dynamics_kernel(out_dim):
    from ntkpipe.jobs import kernels as kernels_job

    net, params, x, y = _setup()
    net = models.mlp(depth=2, width=8, out_dim=out_dim, activation="relu", w_std=1.4, b_std=0.1)
    params = net.init(jax.random.PRNGKey(3), x[:1])
    data = type("Data", (), {"x_train": x, "x_test": x[:3]})()
    ds = kernels_job._kernels_of_one(net, params, data, None)
    full = kernels.empirical_ntk_full(net.apply, params, x)
    expected = dynamics.lr_critical(full if out_dim > 1 else full[:, :, 0, 0], out_dim)
    assert float(ds["lr_critical"]) == pytest.approx(float(expected), rel=1e-9)
