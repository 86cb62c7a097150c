"""Tests of jobs.init: f₀ evaluated in blocks equals f₀ evaluated at once."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ntkpipe import models
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
