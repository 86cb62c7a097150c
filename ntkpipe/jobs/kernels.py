"""Empirical kernels (rules ``kernel_init`` at θ₀ and ``kernel_final`` at θ_T, both
``ntkpipe kernels``): Θ̂ and K̂ of the finite network, per seed.

Writes ``kernel_init.zarr`` / ``kernel_final.zarr``: ``ntk_train_train (seed, train, train2)``,
``ntk_test_train (seed, test, train)``, the same for ``nngp_*``, ``ntk_eigvals (seed, train)``
and ``lr_critical (seed)``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import xarray as xr

from ntkpipe.core import dynamics
from ntkpipe.core import kernels as ntk_kernels
from ntkpipe.errors import StageError
from ntkpipe.jobs._job import load_data_and_network, log, read_params, stage_job
from ntkpipe.sweep import stage_table

__all__ = ["kernels", "KERNEL_RULES"]

KERNEL_RULES = stage_table.COMMAND_RULES["kernels"]
"""The rules this job computes (``kernel_init``, ``kernel_final``): its ``rule`` argument."""


def kernels(run: Path, params: Path, out: Path, rule: str, overwrite: bool = False) -> None:
    """Empirical Θ̂ and K̂ (traced over outputs) at the params of a store, per seed.

    ``rule`` is the stage computed, ``kernel_init`` (θ₀ of init.zarr, config model.json) or
    ``kernel_final`` (θ_T of train.zarr, config run.json): the store records the config file it
    was computed from, and the input is checked against the one its stage reads.

    Also the spectrum of Θ̂(X, X) and the critical learning rate
    η_crit = 2·n·k/(λ_min + λ_max) (Theorem 2.1 in the mean-loss normalization).
    """
    if rule not in KERNEL_RULES:
        raise StageError(f"--rule: {rule!r} is not one of {', '.join(KERNEL_RULES)}")
    with stage_job(run, out, overwrite, rule=rule, inputs={"params": params}) as job:
        config = job.config
        data, net = load_data_and_network(config)
        stacked = read_params(params, config)
        block = config["kernels"]["block_size"]
        per_seed = []
        for i, seed in enumerate(config["seeds"]):
            theta = jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], stacked)
            per_seed.append(_kernels_of_one(net, theta, data, block))
            log(f"kernels: seed {seed} done, elapsed {job.elapsed():.1f} s")
        ds = xr.concat(per_seed, dim="seed").assign_coords(seed=list(config["seeds"]))
        job.write(ds, stage="kernels", chunks={"train": block, "train2": block, "test": block})


def _kernels_of_one(net, theta, data, block) -> xr.Dataset:
    ntk_tt = ntk_kernels.empirical_ntk(net.apply, theta, data.x_train, block_size=block)
    ntk_st = ntk_kernels.empirical_ntk(
        net.apply, theta, data.x_test, data.x_train, block_size=block
    )
    nngp_tt = ntk_kernels.empirical_nngp(net, theta, data.x_train)
    nngp_st = ntk_kernels.empirical_nngp(net, theta, data.x_test, data.x_train)
    if not np.isfinite(np.asarray(ntk_tt)).all():
        log("kernels: Θ̂ is not finite (a diverged run?): spectrum and η_crit NaN")
        return _dataset(ntk_tt, ntk_st, nngp_tt, nngp_st, np.full(len(ntk_tt), np.nan), np.nan)
    try:
        eigvals = np.linalg.eigvalsh(np.asarray(ntk_tt, dtype=np.float64))
    except np.linalg.LinAlgError as error:
        log(f"kernels: the eigensolver failed ({error}): spectrum and η_crit NaN")
        return _dataset(ntk_tt, ntk_st, nngp_tt, nngp_st, np.full(len(ntk_tt), np.nan), np.nan)
    # η_crit of the kernel the closed form evolves (see dynamics.lr_critical): full when k > 1
    dynamics_kernel = ntk_tt
    if net.out_dim > 1:
        dynamics_kernel = ntk_kernels.empirical_ntk_full(
            net.apply, theta, data.x_train, block_size=block
        )
    lr_crit = float(dynamics.lr_critical(dynamics_kernel, net.out_dim))
    return _dataset(ntk_tt, ntk_st, nngp_tt, nngp_st, eigvals, lr_crit)


def _dataset(ntk_tt, ntk_st, nngp_tt, nngp_st, eigvals, lr_crit) -> xr.Dataset:
    """One seed's kernels, spectrum and η_crit (NaN where Θ̂ is not finite or the eigensolver
    failed: the run is then recorded, its metrics say diverged, and the sweep goes on)."""
    return xr.Dataset(
        {
            "ntk_train_train": (("train", "train2"), np.asarray(ntk_tt)),
            "ntk_test_train": (("test", "train"), np.asarray(ntk_st)),
            "nngp_train_train": (("train", "train2"), np.asarray(nngp_tt)),
            "nngp_test_train": (("test", "train"), np.asarray(nngp_st)),
            "ntk_eigvals": (("train",), eigvals),
            "lr_critical": ((), float(lr_crit)),
        }
    )
