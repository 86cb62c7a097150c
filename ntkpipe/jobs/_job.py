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
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ntkpipe import datasets
from ntkpipe.core import models
from ntkpipe.core import train as ntk_train
from ntkpipe.errors import StageError
from ntkpipe.io import stores as storage
from ntkpipe.sweep import facts, stage_table

INIT_STREAM, TRAIN_STREAM = 0, 1
_RUN_SECTIONS = ("data", "model")  # in every stage's config (run, model, analytic, sweep)


# ---------------------------------------------------------------- the job


class Job:
    """One stage job: the config it reads, the store it writes, the time it started.

    Made first thing in a stage: it reads the run config (unless given it) and refuses an
    existing store (unless ``overwrite``) before any work; :meth:`write` writes the store with
    that config, the config file it is (the stage table's ``config_file`` of `rule`: the part of
    the run config the store depends on, recorded so that nothing has to infer it), the stage's
    name and the job's wall time (the provenance of docs/architecture.md, "Stores").

    Args:
        run: the config file; out: the store to write; overwrite: replace an existing store.
        rule: the stage table's rule the job computes (``kernel_init`` or ``kernel_final`` for
            the one kernels job).
        config: the config, already read (else read from `run`).
        inputs: {the input's name (its flag's argparse dest): path or None} of the stores it
            reads, each checked against the config file its stage records.
    """

    def __init__(
        self,
        run: Path,
        out: Path,
        overwrite: bool,
        *,
        rule: str,
        config: dict | None = None,
        inputs=None,
    ):
        self.started = time.time()
        self.config = load_run(run) if config is None else config
        self.config_file = stage_table.stage(rule).config_file
        self.out, self.overwrite = Path(out), overwrite
        _check_out(out, overwrite)
        self.inputs = _checked_inputs(self.config, rule, inputs)

    def elapsed(self) -> float:
        """Seconds since the job started."""
        return time.time() - self.started

    def write(self, ds: xr.Dataset, *, stage: str, **options) -> Path:
        """:func:`ntkpipe.io.stores.write_store` of ``ds`` as this job's store (``options``:
        ``params``, ``chunks``)."""
        return storage.write_store(
            ds,
            self.out,
            config=self.config,
            stage=stage,
            wall_time=self.elapsed(),
            overwrite=self.overwrite,
            inputs=self.inputs,
            config_file=self.config_file,
            **options,
        )


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


def _checked_inputs(config: dict, rule: str, inputs: dict | None) -> dict:
    """{file name: content digest} of a job's input stores, each checked to be computed from this
    job's config: the part of it that the stage writing the input reads (the stage table's
    ``config_file`` of the input's stage: init-sampling and Θ̂₀ ``model.json``, training and what
    follows ``run.json``, the analytic kernels ``analytic.json``), which the store records
    (:func:`ntkpipe.io.provenance.check_input`)."""
    from ntkpipe.io import provenance

    given = {name: path for name, path in (inputs or {}).items() if path is not None}
    if not given:
        return {}
    reads = {_dest(one.flag): one for one in stage_table.stage(rule).inputs if one.flag}
    for name, path in given.items():
        storage.read_attrs(path)  # a missing, partial or foreign store: its own message
        config_file = stage_table.stage(reads[name].stage).config_file
        expected = _config_part(config, config_file)
        provenance.check_input(
            path,
            [expected],
            view=lambda c, _s, f=config_file: _config_part(c, f),
            config_file=config_file,
        )
    return provenance.input_digests({Path(path).name: path for path in given.values()})


def _dest(flag: str) -> str:
    """A command's flag as its argparse dest (the stage function's keyword)."""
    return flag.lstrip("-").replace("-", "_")


def _config_part(config, config_file):
    """The content of `config_file` for a run (or stage) config: the part of it the stages
    reading that file depend on (:func:`ntkpipe.sweep.runs.file_config`)."""
    from ntkpipe.sweep import runs as ntk_runs

    try:
        return ntk_runs.file_config(config, config_file)
    except (KeyError, TypeError, ValueError, AttributeError):
        return config


def load_run(path: Path) -> dict:
    """A run's resolved config (JSON written by the workflow): the one run-config reader."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"--run: no run config at {path}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StageError(f"--run: {path} is not valid JSON ({error})") from error
    missing = [k for k in _RUN_SECTIONS if not isinstance(config, dict) or k not in config]
    if missing:
        raise StageError(
            f"--run: {path} is not a run config written by the workflow (no section "
            f"{', '.join(missing)}); pass the run's run.json / model.json (or the sweep.json)"
        )
    return config


def _check_out(out: Path, overwrite: bool) -> None:
    if Path(out).exists() and not overwrite:
        raise StageError(
            f"--out: {out} exists; pass --overwrite to replace it (nothing was computed)"
        )


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
    """θ₀ of every seed, stacked on a leading seed axis."""
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), INIT_STREAM) for s in seeds])
    return jax.vmap(net.init, in_axes=(0, None))(keys, x_example[:1])


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


def log(message: str) -> None:
    """Prints one line of a stage's log, flushed at once (the job's log file follows it live)."""
    print(message, flush=True)


def count_params(tree) -> int:
    """The number of entries of a parameter tree."""
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))
