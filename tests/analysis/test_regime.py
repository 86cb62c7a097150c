"""Tests of analysis.regime: the regime criterion and the run statuses, on constructed
trajectories and on real small runs at 0.5×, 1.5× and 40× η_crit."""

import numpy as np
import pytest
import xarray as xr

from ntkpipe.analysis import regime

N_K = 16


def _loss(values):
    return np.asarray(values, dtype=float)


@pytest.mark.parametrize(
    ("loss", "sharpness", "lr", "expected"),
    [
        # lazy: monotone decrease, η·λ₀/(n·k) = 1 < 2
        ([1.0, 0.6, 0.3, 0.01], [16.0, 16.0, 16.0, 16.0], 1.0, "lazy"),
        # lazy without sharpness: the loss alone
        ([1.0, 0.6, 0.3, 0.01], None, 1.0, "lazy"),
        # catapult: a spike above 2× the start, then convergence
        ([1.0, 30.0, 5.0, 0.001], None, 1.0, "catapult"),
        # catapult without a recorded spike: started above the edge (η·λ₀/(n·k) = 3) yet converged
        ([1.0, 0.9, 0.1, 0.001], [48.0, 40.0, 20.0, 20.0], 1.0, "catapult"),
        # divergent: non-finite
        ([1.0, 50.0, np.inf, np.nan], [48.0, 60.0, np.nan, np.nan], 1.0, "divergent"),
        # divergent: finite but ends above its start (did not converge)
        ([1.0, 50.0, 20.0, 3.0], [48.0, 40.0, 35.0, 33.0], 1.0, "divergent"),
        # a small bump (≤ 2×) below the edge stays lazy
        ([1.0, 1.5, 0.5, 0.1], [16.0, 16.0, 16.0, 16.0], 1.0, "lazy"),
    ],
)
def test_classify_constructed_trajectories(loss, sharpness, lr, expected):
    got = regime.classify(_loss(loss), None if sharpness is None else _loss(sharpness), lr, N_K)
    assert got == expected


def test_statuses_separate_catapult_from_divergence_and_flag_the_traced_band():
    steps = 4
    converging = np.geomspace(1.0, 1e-3, steps)
    blowing = np.array([1.0, 10.0, 1e6, np.inf])
    net = xr.DataArray(np.stack([converging, blowing, converging, converging, converging]),
                       dims=("seed", "step"))  # fmt: skip
    lin = xr.DataArray(np.stack([blowing, blowing, converging, converging, converging]),
                       dims=("seed", "step"))  # fmt: skip
    lr = 1.0
    critical = np.array([0.5, 0.5, 0.8, 0.9, 2.0])  # full kernel
    traced = np.array([0.9, 0.9, 0.9, 0.95, 2.0])
    got = regime.statuses(net, lin, lr, critical, traced, n_out=3).values.tolist()
    assert got == ["catapult", "diverged", "lr_above_critical", "lr_above_critical", "ok"]
    traced_above = np.array([0.9, 0.9, 1.2, 1.1, 2.0])
    got = regime.statuses(net, lin, lr, critical, traced_above, n_out=3).values.tolist()
    assert got[2:4] == ["lr_between_critical", "lr_between_critical"]
    # one output: the traced kernel is the full one, never "between"
    assert regime.statuses(net, lin, lr, critical, traced_above, n_out=1).values[2] == (
        "lr_above_critical"
    )


def test_traced_lr_critical_is_2nk_over_the_extreme_eigenvalues():
    eig = xr.Dataset({"ntk_eigvals": (("seed", "train"), np.array([[-1e-9, 1.0, 3.0]]))})
    np.testing.assert_allclose(regime.traced_lr_critical(eig, 2).values, [2 * 3 * 2 / 3.0])


@pytest.fixture(scope="module")
def real_runs():
    """One hidden ReLU layer of width 256 on 16 Gaussian inputs with ±1 targets, trained by
    full-batch GD at 0.5×, 1.5× and 40× its own η_crit with sharpness recorded, next to its
    linearization in closed form (the pipeline's train and linear computations, without
    stores)."""
    import jax
    import jax.numpy as jnp

    from ntkpipe.core import dynamics, kernels, models, train

    net = models.mlp(1, 256, 1, "relu", "ntk", 1.4, 0.1)
    x = jax.random.normal(jax.random.key(0), (16, 8))
    y = jnp.sign(jax.random.normal(jax.random.key(1), (16, 1)))
    params0 = jax.vmap(lambda key: net.init(key, x))(jax.random.split(jax.random.key(2), 1))
    theta0 = jax.tree.map(lambda a: a[0], params0)
    ntk = kernels.empirical_ntk(net.apply, theta0, x)
    critical = float(dynamics.lr_critical(ntk, 1))
    steps = train.log_record_steps(200, 24)
    out = {}
    for factor in (0.5, 1.5, 40.0):
        lr = factor * critical
        net_t = train.train(net.apply, params0, x, y, x, y, learning_rate=lr, steps=200,
                            record_steps=steps, sharpness=True)  # fmt: skip
        fx_lin, _ = dynamics.gradient_descent_mse(ntk, y, lr, discrete=True)(
            steps, net.apply(theta0, x)
        )
        with np.errstate(over="ignore", invalid="ignore"):  # f_lin overflows above the edge
            lin_loss = 0.5 * np.mean((np.asarray(fx_lin) - np.asarray(y)) ** 2, axis=(1, 2))
        out[factor] = (net_t, lin_loss, lr, critical)
    return out


@pytest.mark.parametrize(
    ("factor", "expected_regime", "expected_status"),
    [(0.5, "lazy", "ok"), (1.5, "catapult", "catapult"), (40.0, "divergent", "diverged")],
)
def test_real_runs_at_half_one_and_a_half_and_forty_times_eta_crit(
    real_runs, factor, expected_regime, expected_status
):
    net_t, lin_loss, lr, critical = real_runs[factor]
    loss, sharp = net_t.loss_train[0], net_t.sharpness[0]
    assert regime.classify(loss, sharp, lr, N_K) == expected_regime
    status = regime.statuses(
        xr.DataArray(loss[None], dims=("seed", "step")),
        xr.DataArray(lin_loss[None], dims=("seed", "step")),
        lr, np.array([critical]), np.array([critical]), n_out=1,
    )  # fmt: skip
    assert status.values.tolist() == [expected_status]
    if expected_regime == "catapult":
        # the loss spiked, and the run ended flatter than the linear stability edge 2·n·k/η
        assert np.max(loss) > regime.SPIKE_FACTOR * loss[0]
        assert sharp[-1] < 2 * N_K / lr < sharp[0]
    if expected_regime == "lazy":  # the kernel barely moves
        assert abs(sharp[-1] / sharp[0] - 1) < 0.05
