"""Real training (rule ``train``, ``ntkpipe train``): the network itself, from θ₀, with the run's
optimizer and loss; also the training driver that the linearized network's direct optimization
(:mod:`ntkpipe.jobs.linear`) shares, its checkpoints and the trajectory records.

Writes ``train.zarr``: ``fx_train (seed, step, train, out)``, ``fx_test (seed, step, test, out)``,
``loss_*``, ``acc_*`` (seed, step), ``weight_change (seed, step, layer)``,
``weight_sample (seed, step, wsample)``, ``diverged_step (seed)``, ``learning_rate`` (the η
trained with), ``sharpness (seed, step)`` when recorded, and θ_T under ``params/``;
coordinates ``step``, ``t`` = η·step, ``layer``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ntkpipe.core import train as ntk_train
from ntkpipe.core.sharpness import SharpnessOptions
from ntkpipe.io import stores as storage
from ntkpipe.jobs import progress
from ntkpipe.jobs._job import (
    TRAIN_STREAM,
    load_data_and_network,
    log,
    read_params,
    record_steps,
    resolved_training,
    stage_job,
)
from ntkpipe.jobs._weights import WeightTrajectory
from ntkpipe.jobs.stop_signals import Stopped, stop_requests
from ntkpipe.sweep import cost, facts

__all__ = ["train", "fit", "segment_ends", "trajectory_dataset", "default_checkpoint"]


def train(
    run: Path,
    init: Path,
    out: Path,
    kernel_init: Path | None = None,
    checkpoint: Path | None = None,
    overwrite: bool = False,
) -> None:
    """Train every seed of the run from θ₀; record outputs, losses and weight changes (and the
    sharpness λ_max(Θ̂_t) with :func:`ntkpipe.sweep.facts.records_sharpness`).

    ``kernel_init`` (Θ̂₀'s η_crit) is read with ``training.lr_factor``: η = lr_factor × η_crit
    (:func:`ntkpipe.jobs._job.resolved_training`).
    """
    stores = {"init": init, "kernel_init": kernel_init}
    with stage_job(run, out, overwrite, rule="train", inputs=stores) as job:
        config = resolved_training(job.config, kernel_init)
        data, net = load_data_and_network(config)
        params0 = read_params(init, config)
        checkpoint = checkpoint or default_checkpoint(out)
        weights = WeightTrajectory(params0, record_steps(config))
        trajectory = fit(
            net.apply, params0, data, config, linearized=False, checkpoint=checkpoint,
            weights=weights,
        )  # fmt: skip
        ds = trajectory_dataset(trajectory, config)
        ds["weight_sample"] = weights.finish(trajectory.params, trajectory.diverged_step)
        job.write(ds, stage="train", params=trajectory.params)
        remove_checkpoint(checkpoint)


def fit(apply_fn, params0, data, config, *, linearized, checkpoint=None, weights=None):
    """Trains f (or f_lin) for every seed of the run; the trajectory at ``record_steps(config)``.

    ``weights`` (a :class:`ntkpipe.jobs._weights.WeightTrajectory` at ``record_steps(config)``),
    if given, records the sampled weights θ_t − θ₀ after every segment; its records so far are
    saved in each checkpoint next to the TrainState and restored on resume.

    With ``training.checkpoint_every`` = K > 0 and a ``checkpoint`` file, training runs in
    segments that also end at every multiple of K (those extra ends are evaluated, checked for
    divergence, then dropped from the trajectory), the state is saved there, and a rerun of the
    same config resumes from the last checkpoint with bit-identical results.

    SIGTERM or SIGUSR1 (SLURM's time limit, preemption, ``sbatch --signal``), or the job's own
    time budget inside SLURM (:func:`ntkpipe.jobs.stop_signals.job_deadline`), stops training at
    the end of the current segment: with a ``checkpoint`` file the state is saved there first.
    Raises :class:`Stopped` then.
    """
    training = config["training"]
    seeds = config["seeds"]
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), TRAIN_STREAM) for s in seeds])
    every = (training.get("checkpoint_every") or 0) if checkpoint else 0
    wanted = record_steps(config)
    ends = segment_ends(wanted, training["steps"], every)
    resume = _load_checkpoint(checkpoint, config, weights) if checkpoint else None
    first_step = int(resume.step) if resume is not None else 0
    last_saved = [first_step]

    def on_segment(state):
        if weights is not None:
            weights.record(int(state.step), state.params)
        if every and int(state.step) - last_saved[0] >= every:
            _save_checkpoint(checkpoint, config, state, weights)
            last_saved[0] = int(state.step)
        reason = stop.reason(progressed=int(state.step) > first_step)
        if reason is not None and int(state.step) < training["steps"]:
            _stop(reason, checkpoint, config, state, weights, last_saved[0])

    # by time, ETA after compilation; the heartbeat thread stops even when training raises
    with progress.Progress(log) as on_progress, stop_requests() as stop:
        trajectory = ntk_train.train(
            apply_fn,
            params0,
            data.x_train,
            data.y_train,
            data.x_test,
            data.y_test,
            loss=training["loss"],
            optimizer=training["optimizer"],
            learning_rate=training["learning_rate"],
            steps=training["steps"],
            momentum=training["momentum"] if training["optimizer"] == "momentum" else None,
            batch_size=training["batch_size"],
            record_steps=ends,
            key=keys,
            linearized=linearized,
            state=resume,
            on_segment=on_segment,
            progress=on_progress,
            eval_block_size=cost.eval_block_size(config),  # big nets: outputs in blocks of examples
            sharpness=_sharpness(config),
        )
    return _trajectory_at(trajectory, wanted)


def _sharpness(config) -> SharpnessOptions | None:
    """The sharpness options of the run (None: not recorded), with the kernels' tiles: where Θ̂
    is formed for its exact λ_max, the programs that computed Θ̂₀ serve again."""
    if not facts.records_sharpness(config["training"]):
        return None
    return SharpnessOptions(block_size=config["kernels"]["block_size"])


def segment_ends(record: np.ndarray, steps: int, every: int) -> np.ndarray:
    """The record steps and, when ``every`` > 0, every multiple of it up to ``steps`` (sorted)."""
    if not every:
        return np.asarray(record)
    return np.union1d(record, np.arange(every, steps + 1, every)).astype(np.int64)


def _trajectory_at(trajectory, steps: np.ndarray):
    """The Trajectory restricted to the records at ``steps`` (a subset of its steps)."""
    index = np.searchsorted(trajectory.steps, steps)
    if np.array_equal(trajectory.steps, steps):
        return trajectory
    sharpness = trajectory.sharpness
    return trajectory._replace(
        steps=np.asarray(steps),
        **{name: getattr(trajectory, name)[:, index] for name in ntk_train.RECORD_FIELDS},
        sharpness=None if sharpness is None else sharpness[:, index],
    )


def trajectory_dataset(trajectory, config) -> xr.Dataset:
    """A Trajectory of :func:`ntkpipe.core.train.train` as the store schema of `train.zarr`."""
    lr = config["training"]["learning_rate"]
    steps = np.asarray(trajectory.steps)
    extra = {}
    if trajectory.sharpness is not None:
        extra["sharpness"] = (("seed", "step"), np.asarray(trajectory.sharpness))
    return xr.Dataset(
        {
            **extra,
            "learning_rate": ((), float(lr)),
            "fx_train": (("seed", "step", "train", "out"), np.asarray(trajectory.fx_train)),
            "fx_test": (("seed", "step", "test", "out"), np.asarray(trajectory.fx_test)),
            "loss_train": (("seed", "step"), np.asarray(trajectory.loss_train)),
            "loss_test": (("seed", "step"), np.asarray(trajectory.loss_test)),
            "acc_train": (("seed", "step"), np.asarray(trajectory.acc_train)),
            "acc_test": (("seed", "step"), np.asarray(trajectory.acc_test)),
            "weight_change": (("seed", "step", "layer"), np.asarray(trajectory.weight_change)),
            "diverged_step": (("seed",), np.asarray(trajectory.diverged_step)),
        },
        coords={
            "seed": list(config["seeds"]),
            "step": steps,
            "t": ("step", lr * steps.astype(float)),
            "layer": list(trajectory.layer_names),
        },
    )


# ---------------------------------------------------------------- checkpoints


def default_checkpoint(out: Path) -> Path:
    """The checkpoint file of a store: ``<out>.ckpt`` next to it."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def remove_checkpoint(path: Path) -> None:
    """Deletes a checkpoint file once its store is written (if there is one)."""
    if Path(path).exists():
        Path(path).unlink()


_WEIGHTS = "weight_sample"  # the checkpoint's extra array of a WeightTrajectory's values


def _save_checkpoint(path: Path, config: dict, state, weights=None) -> None:
    """The TrainState and, if recorded, the sampled weights so far, in one atomic file."""
    extra = {_WEIGHTS: weights.values} if weights is not None else None
    storage.save_checkpoint(path, state, fingerprint=_fingerprint(config), extra=extra)
    log(f"checkpoint: step {int(state.step)} -> {path}")


def _stop(reason: str, path: Path | None, config: dict, state, weights, saved: int) -> None:
    """Saves the state (where there is a checkpoint file) and raises :class:`Stopped`."""
    step = int(state.step)
    if path is not None and saved != step:
        _save_checkpoint(path, config, state, weights)
    where = f"checkpoint {path} holds step {step}" if path is not None else "no checkpoint file"
    raise Stopped(
        f"{reason} at step {step} of {config['training']['steps']}: stopped ({where}); "
        "rerunning the job (Snakemake's retry does) resumes from there"
    )


def _load_checkpoint(path: Path, config: dict, weights=None):
    """The checkpoint to resume from (None: start at step 0); restores ``weights`` from it."""
    state = storage.load_checkpoint(path, fingerprint=_fingerprint(config))
    if state is None:
        return None
    if weights is not None:
        saved = state.extra.get(_WEIGHTS)
        if saved is None or saved.shape != weights.values.shape:
            log(f"checkpoint: {path} lacks this run's sampled weights (older version); restart")
            return None
        weights.restore(state.extra[_WEIGHTS])
    log(f"checkpoint: resuming from step {int(state.step)} ({path})")
    return state


def _fingerprint(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
