"""Tests of jobs._weights: the Fig. 3 weight trajectories of trained networks."""

from __future__ import annotations

import jax
import numpy as np

from ntkpipe import models
from ntkpipe import train as ntk_train
from ntkpipe.jobs._weights import WeightTrajectory, endpoint_weight_samples


def _setup():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = np.sign(rng.standard_normal((8, 1))).astype(np.float32)
    net = models.mlp(depth=2, width=16, out_dim=1, activation="relu", w_std=1.4, b_std=0.1)
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    params0 = jax.vmap(net.init, in_axes=(0, None))(keys, x[:1])
    return net, params0, x, y


def _trained(net, params0, x, y, steps, **kwargs):
    return ntk_train.train(net.apply, params0, x, y, x, y, learning_rate=0.5, steps=steps, **kwargs)


def test_recorded_weights_are_the_weights_of_gradient_descent_stopped_there():
    net, params0, x, y = _setup()
    steps = np.array([0, 1, 4, 10])
    weights = WeightTrajectory(params0, steps)
    final = _trained(
        net, params0, x, y, 10, record_steps=steps,
        on_segment=lambda state: weights.record(int(state.step), state.params),
    )  # fmt: skip
    out = weights.finish(final.params)
    assert out.dims == ("seed", "step", "wsample") and not np.isnan(out.values).any()
    np.testing.assert_array_equal(out.isel(step=0), 0.0)
    for i, step in enumerate(steps[1:], start=1):
        stopped = _trained(net, params0, x, y, int(step))
        expected = endpoint_weight_samples(params0, stopped.params, steps[[0, i]])
        np.testing.assert_allclose(out.isel(step=i), expected.isel(step=-1), rtol=1e-5, atol=1e-7)
    assert np.abs(out.isel(step=-1)).max() > 1e-3  # the weights moved


def test_steps_not_seen_stay_unknown_and_other_segment_ends_are_ignored():
    net, params0, x, y = _setup()
    weights = WeightTrajectory(params0, np.array([0, 5, 10]))
    weights.record(3, params0)  # a checkpoint segment end, not a record step
    final = _trained(net, params0, x, y, 10)
    out = weights.finish(final.params)
    assert np.isnan(out.isel(step=1)).all()  # step 5 was never seen (e.g. before a resume)
    np.testing.assert_array_equal(out.isel(step=0), 0.0)
    assert np.isfinite(out.isel(step=2)).all()
