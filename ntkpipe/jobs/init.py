"""Init-sampling (rule ``init``, ``ntkpipe init``): θ₀ for every seed of a run, and f₀.

Writes ``init.zarr``: ``f0_train (seed, train, out)``, ``f0_test (seed, test, out)`` and the
parameters θ₀ under ``params/`` (leading seed axis).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import xarray as xr

from ntkpipe.jobs._job import count_params, init_params, load_data_and_network, log, stage_job

__all__ = ["init"]


def init(run: Path, out: Path, overwrite: bool = False) -> None:
    """θ₀ for every seed of the run (vmapped) and f₀ on the train and test inputs."""
    with stage_job(run, out, overwrite) as job:
        config = job.config
        data, net = load_data_and_network(config)
        params0 = init_params(net, config["seeds"], data.x_train)
        apply = jax.jit(jax.vmap(net.apply, in_axes=(0, None)))
        ds = xr.Dataset(
            {
                "f0_train": (("seed", "train", "out"), np.asarray(apply(params0, data.x_train))),
                "f0_test": (("seed", "test", "out"), np.asarray(apply(params0, data.x_test))),
            },
            coords={"seed": list(config["seeds"])},
        )
        n_seeds = len(config["seeds"])
        log(f"init: {n_seeds} seeds, {count_params(params0) // n_seeds} params")
        job.write(ds, stage="init", params=params0)
