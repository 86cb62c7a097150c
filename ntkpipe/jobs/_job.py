"""What every stage job shares: the one run-config reader, the run's precision, the dataset
and network of a run config, the store a job writes, and its log.

A stage job is ``with stage_job(run, out, overwrite) as job: ...``: the run config (``--run``)
is read once, its ``precision`` checked and the existing store refused (unless ``overwrite``)
before any work, and JAX's x64 mode set for the stage (:func:`run_precision`).

Stores follow the schema of docs/store-schema.md: dimension names `seed`, `step`, `train`, `test`,
`train2`, `out`, `layer`; every store carries the run config and provenance in its attributes
(:mod:`ntkpipe.io.stores`).

Seeds: the network seed s gives ``key = PRNGKey(s)``; θ₀ is drawn with ``fold_in(key, 0)`` and
minibatches with ``fold_in(key, 1)``, so a seed means the same network in every stage and every job
layout (seeds per job).

Precision: every stage computes in its run's ``precision`` (:func:`run_precision`). With float64,
JAX's x64 mode is turned on when the stage starts, before it creates any JAX array (as the CLI pins
threads before JAX starts), the dataset and the parameters read from stores are cast to float64,
and the stores hold float64 arrays; float32 (the default) computes with x64 off, as the command
always did. The previous x64 mode comes back when the stage returns, so a stage called from Python
(a notebook, a test) leaves the process as it found it.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import jax
import numpy as np

from ntkpipe import datasets
from ntkpipe.core import models
from ntkpipe.core import train as ntk_train
from ntkpipe.errors import StageError
from ntkpipe.io import stores as storage
from ntkpipe.jobs._store_job import Job, load_run, log  # noqa: F401  (the jobs' names)
from ntkpipe.sweep import facts

INIT_STREAM, TRAIN_STREAM = 0, 1


# ---------------------------------------------------------------- the job


@contextlib.contextmanager
def stage_job(
    run: Path, out: Path, overwrite: bool, *, rule: str, inputs: dict | None = None, check=None
):
    """The :class:`Job` of the stage `rule`, computing in its run's precision
    (:func:`run_precision`): the run config is read once, its precision checked,
    ``check(config)`` run (the stage's own refusals, which raise), then the store refused if it
    exists and the input stores (``inputs``: name → path or None) checked against the config."""
    config = load_run(run)
    if check is not None:
        check(config)
    with run_precision(config):
        yield Job(run, out, overwrite, rule=rule, config=config, inputs=inputs)


# ---------------------------------------------------------------- precision


@contextlib.contextmanager
def run_precision(config: dict):
    """Computes in the run's ``precision``: JAX's x64 mode on for float64, off for float32.

    The previous mode is restored on exit (``jax.enable_x64`` is a context manager), so nothing
    leaks into the caller's process.

    Args:
        config: a run (or stage) config; without ``precision``, float32 (the schema's default).

    Yields:
        The numpy dtype of the precision (``np.float32`` or ``np.float64``).

    Raises:
        StageError: ``precision`` is not one of float32, float64.
    """
    dtype = precision_dtype(config)
    with jax.enable_x64(dtype == np.float64):
        yield dtype


def precision_dtype(config: dict) -> type:
    """The numpy dtype of a run config's ``precision`` (float32 when it has none)."""
    precision = config.get("precision", "float32")
    if precision not in datasets.PRECISIONS:
        raise StageError(
            f"precision: {precision!r} is not one of {', '.join(datasets.PRECISIONS)} "
            f"(in the --run config)"
        )
    return datasets.PRECISIONS[precision]


def read_params(path: Path, config: dict):
    """The ``params/`` of a store (leading seed axis), floating leaves cast to the run's
    precision (a store written in another precision computes in this run's)."""
    dtype = precision_dtype(config)
    return jax.tree_util.tree_map(
        lambda leaf: leaf.astype(dtype) if np.issubdtype(leaf.dtype, np.floating) else leaf,
        storage.read_params(path),
    )


# ---------------------------------------------------------------- data and network


def load_data(config):
    """The run's dataset (one-hot targets for cross-entropy, ±1 for a binary MSE task)."""
    return datasets.from_config(config)


def load_data_and_network(config):
    data = load_data(config)
    return data, build_network(config["model"], data)


def build_network(model: dict, data) -> models.Network:
    """The network a run's `model` section describes, sized for the dataset (k outputs: the
    columns of its targets)."""
    common = dict(
        out_dim=data.y_train.shape[1],
        activation=model["activation"],
        parameterization=model["parameterization"],
        **facts.init_scales(model),
    )
    arch = model["architecture"]
    if arch == "fc":
        rates = model.get("layer_rates", "uniform")
        return models.mlp(depth=model["depth"], width=model["width"], layer_rates=rates, **common)
    if arch == "cnn":
        return models.cnn(
            depth=model["depth"], width=model["width"], input_shape=data.input_shape, **common
        )
    if arch == "wrn":
        return models.wrn(
            block_size=model["depth"],
            channels=model["width"],
            input_shape=data.input_shape,
            **common,
        )
    if arch == "custom":
        return _custom_network(model, data)
    raise StageError(f"model.architecture: {arch!r} is not one of fc, cnn, wrn, custom")


def _custom_network(model: dict, data) -> models.Network:
    """The run's own Flax module (``model.factory``), checked against the task; the probe has
    checked it before the sweep started, this catches a factory edited since."""
    from ntkpipe.jobs import custom_model

    dtype, k = data.x_train.dtype.type, data.y_train.shape[1]
    net = custom_model.build_custom(model, data.input_shape, k, dtype)
    problems, _ = custom_model.custom_problems(net, data.input_shape, k, dtype, nngp=False)
    if problems:
        raise StageError("; ".join(problems))
    return net


def init_params(net, seeds, x_example):
    """θ₀ of every seed, stacked on a leading seed axis.

    One jitted program (the keys, every layer's draws and the forward pass Flax's init makes):
    run op by op, the same draws compiled one program per primitive and shape (about 30 for an
    MLP, each new width new ones), the run's largest fixed cost after the imports; the jitted
    draws are bit-identical (benchmarks/README.md, "The first experience")."""
    return _init_program(net)(np.asarray(seeds, np.uint32), x_example[:1])


@functools.lru_cache(maxsize=8)
def _init_program(net):
    def sample(seeds, x):
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(s), INIT_STREAM))(seeds)
        return jax.vmap(net.init, in_axes=(0, None))(keys, x)

    return jax.jit(sample)


def record_steps(config) -> np.ndarray:
    """Log-spaced record steps in [0, T], 0 and T included (unique integers)."""
    return ntk_train.log_record_steps(config["training"]["steps"], config["training"]["records"])


def resolved_training(config: dict, kernel_init: Path | None) -> dict:
    """The run config with ``training.learning_rate`` the η the run trains with.

    With ``training.lr_factor`` (:func:`ntkpipe.sweep.facts.lr_from_factor`), η = lr_factor ×
    the smallest η_crit of the run's seeds in ``kernel_init.zarr`` (each seed's
    2·n·k/(λ_min + λ_max) of Θ̂₀, the full kernel when k > 1): every seed is then at or below
    lr_factor × its own threshold, exactly at it with one seed per job. train and linear both
    call this, so f and f_lin use the same η. The store's ``config`` attribute stays the run's
    own (its provenance); the resolved η is stored as the variable ``learning_rate``.

    Raises:
        StageError: lr_factor without kernel_init.zarr, or with no finite η_crit in it.
    """
    training = config["training"]
    if not facts.lr_from_factor(training):
        return config
    if kernel_init is None:
        raise StageError(
            f"--kernel-init: missing; training.lr_factor {training['lr_factor']} sets η from "
            "η_crit of Θ̂₀: pass the run's kernel_init.zarr"
        )
    critical = np.asarray(storage.read_store(kernel_init, stage="kernels").lr_critical.values)
    if not np.isfinite(critical).all():
        raise StageError(
            f"{kernel_init}: η_crit is not finite for seeds at positions "
            f"{np.flatnonzero(~np.isfinite(critical)).tolist()} (Θ̂₀ not finite): no η can be "
            "resolved from training.lr_factor"
        )
    eta = float(training["lr_factor"]) * float(critical.min())
    log(f"learning rate: η = {training['lr_factor']} × η_crit {critical.min():.6g} = {eta:.6g}")
    return {**config, "training": {**training, "learning_rate": eta}}


# ---------------------------------------------------------------- log


def count_params(tree) -> int:
    """The number of entries of a parameter tree."""
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))
