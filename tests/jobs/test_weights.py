"""The Fig. 3 weight trajectories θ_t − θ₀ of trained networks (jobs._weights, jobs.train.fit):
recorded at every record step, equal to gradient descent stopped there, and carried through a
checkpoint so that a resumed run records the same trajectory as an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpipe.core import models
from ntkpipe.io import stores as storage
from ntkpipe.jobs import train as train_job
from ntkpipe.jobs._job import load_data_and_network, record_steps
from ntkpipe.jobs._weights import WeightTrajectory, weight_sample_index
from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import validate

SWEEP = {
    "name": "weights",
    "data": {"dataset": "digits", "classes": [3, 8], "n_train": 12, "n_test": 8},
    "model": {"depth": 1, "width": 16},
    "training": {"steps": 40, "records": 6, "checkpoint_every": 8, "learning_rate": 0.5},
    "seeds": {"count": 2, "per_job": 2},
}


@pytest.fixture(scope="module")
def setup():
    """The run's config, its data in float64, the network and θ₀ of both seeds (float64)."""
    (run,) = ntk_config.expand_runs(validate.load_config(SWEEP))
    config = json.loads(ntk_config.to_json(ntk_config.stage_config(run.config, "train")))
    data, net = load_data_and_network(config)
    data = dataclasses.replace(
        data, **{f: np.asarray(getattr(data, f), np.float64) for f in _ARRAYS}
    )
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    params0 = jax.vmap(net.init, in_axes=(0, None))(keys, jnp.asarray(data.x_train[:1]))
    assert jax.tree.leaves(params0)[0].dtype == jnp.float64
    return config, data, net, params0


_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _fit(setup, weights, checkpoint):
    config, data, net, params0 = setup
    return train_job.fit(
        net.apply, params0, data, config, linearized=False, checkpoint=checkpoint,
        weights=weights,
    )  # fmt: skip


def _plain_gd(net, theta0, x, y, lr, stops):
    """θ_s at each s of ``stops`` of θ ← θ − η ∇_θ ½·mean((f(θ, x) − y)²), written out (one
    seed): gradient descent stopped at s."""

    def loss(theta):
        return 0.5 * jnp.mean((net.apply(theta, x) - y) ** 2)

    step = jax.jit(
        lambda theta: jax.tree.map(lambda p, g: p - lr * g, theta, jax.grad(loss)(theta))
    )
    theta, done, stopped = theta0, 0, []
    for stop in stops:
        for _ in range(int(stop) - done):
            theta = step(theta)
        done = int(stop)
        stopped.append(theta)
    return stopped


def test_recorded_weights_are_those_of_gradient_descent_stopped_at_each_record_step(
    setup, tmp_path
):
    config, data, net, params0 = setup
    steps = record_steps(config)
    weights = WeightTrajectory(params0, steps)
    trajectory = _fit(setup, weights, tmp_path / "train.zarr.ckpt")
    out = weights.finish(trajectory.params, trajectory.diverged_step)
    assert out.dims == ("seed", "step", "wsample") and np.isfinite(out.values).all()
    np.testing.assert_array_equal(out.isel(step=0), 0.0)
    assert np.abs(out.isel(step=-1)).max() > 1e-3  # the weights did move
    lr = config["training"]["learning_rate"]
    for seed in range(2):
        theta0 = jax.tree.map(lambda leaf, seed=seed: leaf[seed], params0)
        picks = weight_sample_index(theta0)
        start = models.kernel_leaves(theta0)
        stopped = _plain_gd(net, theta0, data.x_train, data.y_train, lr, steps)
        for i, theta in enumerate(stopped):
            moved = models.kernel_leaves(theta)
            expected = [float(moved[n][e] - start[n][e]) for n, e in picks]
            np.testing.assert_allclose(out.values[seed, i], expected, rtol=1e-9, atol=1e-13)


class _Killed(Exception):
    pass


class _KilledAt(WeightTrajectory):
    """A run that dies (as if killed) when it reaches ``at``, before it checkpoints there."""

    def __init__(self, params0, steps, at):
        super().__init__(params0, steps)
        self._at = at

    def record(self, step, params):
        if step >= self._at:
            raise _Killed(step)
        super().record(step, params)


def _kill_before_step(setup, params0, steps, at, checkpoint):
    """Trains until the record at step `at`, dying there (after the last checkpoint before it);
    the progress heartbeat stops with it (no thread left behind)."""
    with pytest.raises(_Killed):
        _fit(setup, _KilledAt(params0, steps, at=at), checkpoint)
    time.sleep(0.05)
    assert not any(t.name == "progress" and t.is_alive() for t in threading.enumerate())


def test_a_checkpoint_carries_the_partial_trajectory_and_a_resumed_run_continues_it(
    setup, tmp_path, capsys
):
    config, _, _, params0 = setup
    steps = record_steps(config)  # [0 1 3 6 16 40]; checkpoints every 8 steps
    reference = WeightTrajectory(params0, steps)
    uninterrupted = _fit(setup, reference, tmp_path / "reference.ckpt")

    checkpoint = tmp_path / "train.zarr.ckpt"
    _kill_before_step(setup, params0, steps, 40, checkpoint)
    saved = storage.load_checkpoint(checkpoint, fingerprint=train_job._fingerprint(config))
    assert saved.step == 32
    partial = saved.extra["weight_sample"]
    done = steps <= 32
    np.testing.assert_array_equal(partial[:, done], reference.values[:, done])
    assert np.isnan(partial[:, ~done]).all()

    resumed = WeightTrajectory(params0, steps)
    capsys.readouterr()
    trajectory = _fit(setup, resumed, checkpoint)
    assert "resuming from step 32" in capsys.readouterr().out
    np.testing.assert_array_equal(resumed.values, reference.values)  # bit for bit
    a = resumed.finish(trajectory.params, trajectory.diverged_step)
    b = reference.finish(uninterrupted.params, uninterrupted.diverged_step)
    assert a.identical(b)


def test_a_checkpoint_without_the_sampled_weights_is_not_resumed(setup, tmp_path, capsys):
    """An older checkpoint has only the TrainState: resuming it would lose the records before
    it, so training starts over (a correct trajectory rather than a partial one)."""
    config, _, _, params0 = setup
    steps = record_steps(config)
    checkpoint = tmp_path / "train.zarr.ckpt"
    _kill_before_step(setup, params0, steps, 40, checkpoint)
    state = storage.load_checkpoint(checkpoint, fingerprint=train_job._fingerprint(config))
    old = tmp_path / "old.ckpt"
    with open(old, "wb") as f:  # the format before the weights were carried
        np.savez(f, fingerprint=np.asarray(train_job._fingerprint(config)), **_state_arrays(state))
    assert storage.load_checkpoint(old, fingerprint=train_job._fingerprint(config)).extra == {}
    weights = WeightTrajectory(params0, steps)
    capsys.readouterr()
    _fit(setup, weights, old)
    log = capsys.readouterr().out
    assert "lacks this run's sampled weights" in log and "resuming" not in log
    assert np.isfinite(weights.values).all()


def _state_arrays(checkpoint) -> dict:
    return {f"state{name}": value for name, value in checkpoint.items()}


def test_restore_refuses_another_runs_shape(setup):
    _, _, _, params0 = setup
    weights = WeightTrajectory(params0, np.array([0, 5, 10]))
    with pytest.raises(ValueError, match=r"does not match this run's \(2, 3, "):
        weights.restore(np.zeros((2, 4, weights.values.shape[2])))


def test_steps_not_reached_stay_unknown_and_a_diverged_seed_is_nan_from_its_step(setup):
    _, _, _, params0 = setup
    weights = WeightTrajectory(params0, np.array([0, 5, 10]))
    weights.record(3, params0)  # a checkpoint segment end, not a record step
    assert np.isnan(weights.values[:, 1:]).all()
    moved = jax.tree.map(lambda a: a + 1.0, params0)
    out = weights.finish(moved, diverged_step=np.array([-1, 5]))
    np.testing.assert_array_equal(out.isel(seed=0, step=0), 0.0)
    np.testing.assert_allclose(out.isel(seed=0, step=2), 1.0, rtol=1e-12)
    assert np.isnan(out.isel(seed=0, step=1)).all()
    assert np.isnan(out.isel(seed=1, step=[1, 2])).all() and (out.isel(seed=1, step=0) == 0).all()
