"""Tests of jobs.init: f₀ evaluated in blocks equals f₀ evaluated at once; θ₀ drawn in one
jitted program equals the draws op by op, bit for bit."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ntkpipe import models
from ntkpipe.jobs import _job
from ntkpipe.jobs import init as init_job


@pytest.mark.parametrize("block", [None, 1, 3, 7, 10, 64])
def test_outputs_in_blocks_equal_outputs_at_once(block):
    net = models.mlp(depth=2, width=16, out_dim=3, activation="relu", w_std=1.4, b_std=0.1)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (10, 5)), dtype=np.float32)
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    params = jax.vmap(net.init, in_axes=(0, None))(keys, x[:1])
    apply = jax.jit(jax.vmap(net.apply, in_axes=(0, None)))
    whole = np.asarray(apply(params, x))
    blocked = init_job.outputs(apply, params, x, block)
    assert blocked.shape == (2, 10, 3)
    np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("x64", [False, True])
def test_theta0_in_one_program_is_the_op_by_op_draw_bit_for_bit(x64):
    """init_params jits the keys, the draws and Flax's forward pass (issue 23: ~30 programs
    compiled op by op before); the stores must not change: θ₀ equals the draw as it was made,
    every seed (one past 2³¹ too), both precisions."""
    seeds = [0, 7, 2**31 + 5, 2**32 - 1]
    net = models.mlp(depth=2, width=8, out_dim=2, activation="relu", w_std=1.4, b_std=0.1)
    with jax.enable_x64(x64):
        x = np.ones((3, 5), np.float64 if x64 else np.float32)
        keys = jax.numpy.stack(
            [jax.random.fold_in(jax.random.PRNGKey(s), _job.INIT_STREAM) for s in seeds]
        )
        before = jax.vmap(net.init, in_axes=(0, None))(keys, x[:1])
        now = _job.init_params(net, seeds, x)
    flat_before, tree = jax.tree_util.tree_flatten(before)
    flat_now, tree_now = jax.tree_util.tree_flatten(now)
    assert tree_now == tree
    for old, new in zip(flat_before, flat_now, strict=True):
        assert new.dtype == old.dtype and np.array_equal(np.asarray(new), np.asarray(old))
