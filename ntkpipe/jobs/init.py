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
from ntkpipe.sweep import cost

__all__ = ["init"]


def init(run: Path, out: Path, overwrite: bool = False) -> None:
    """θ₀ for every seed of the run (vmapped) and f₀ on the train and test inputs."""
    with stage_job(run, out, overwrite, rule="init") as job:
        config = job.config
        data, net = load_data_and_network(config)
        params0 = init_params(net, config["seeds"], data.x_train)
        apply = jax.jit(jax.vmap(net.apply, in_axes=(0, None)))
        block = cost.eval_block_size(config)  # big nets: f₀ in blocks of examples (memory)
        f0_train = outputs(apply, params0, data.x_train, block)
        f0_test = outputs(apply, params0, data.x_test, block)
        ds = xr.Dataset(
            {
                "f0_train": (("seed", "train", "out"), f0_train),
                "f0_test": (("seed", "test", "out"), f0_test),
            },
            coords={"seed": list(config["seeds"])},
        )
        n_seeds = len(config["seeds"])
        log(f"init: {n_seeds} seeds, {count_params(params0) // n_seeds} params")
        job.write(ds, stage="init", params=params0)


def outputs(apply, params, x: np.ndarray, block: int | None) -> np.ndarray:
    """apply(params, x) [seed, n, out], evaluated on blocks of ``block`` rows of x [n, …] (None:
    all at once). The last block is padded to full size, so the function compiles once."""
    n = x.shape[0]
    if block is None or block >= n:
        return np.asarray(apply(params, x))
    pieces = []
    for start in range(0, n, block):
        xb = x[start : start + block]
        rows = xb.shape[0]
        if rows < block:
            xb = np.concatenate([xb, np.zeros((block - rows, *x.shape[1:]), x.dtype)])
        pieces.append(np.asarray(apply(params, xb))[:, :rows])
    return np.concatenate(pieces, axis=1)
