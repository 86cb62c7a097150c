"""Workflow stages: read a run's config and input stores, call the library, write one store.

The per-run stages (init, kernels, analytic, train, linear, compare) are each one `ntkpipe
<command>` (see :mod:`ntkpipe.cli`) and one Snakemake rule; the sweep-level ones (ensemble,
collect, figures, report) are in
:mod:`ntkpipe.jobs.sweep_stages`, which uses this module's job helpers
(:class:`Job`, :func:`in_run_precision`, :func:`log`). Stores follow the schema of DESIGN.md:
dimension names `seed`, `step`, `train`, `test`, `train2`, `out`, `layer`; every store carries the
run config and provenance in its attributes (:mod:`ntkpipe.io.stores`).

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
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ntkpipe import datasets
from ntkpipe.core import analytic as ntk_analytic
from ntkpipe.core import dynamics, models
from ntkpipe.core import kernels as ntk_kernels
from ntkpipe.core import train as ntk_train
from ntkpipe.errors import StageError
from ntkpipe.io import stores as storage
from ntkpipe.jobs import progress
from ntkpipe.sweep import cost

INIT_STREAM, TRAIN_STREAM = 0, 1
_RUN_SECTIONS = ("data", "model")  # in every stage's config (run, model, analytic, sweep)


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


def in_run_precision(stage):
    """Runs a stage ``stage(run, ...)`` inside :func:`run_precision` of its run config, so that
    x64 is set before the stage creates its first JAX array."""

    @functools.wraps(stage)
    def in_precision(run, *args, **kwargs):
        with run_precision(load_run(run)):
            return stage(run, *args, **kwargs)

    return in_precision


def read_params(path: Path, config: dict):
    """The ``params/`` of a store (leading seed axis), floating leaves cast to the run's
    precision (a store written in another precision computes in this run's)."""
    dtype = precision_dtype(config)
    return jax.tree_util.tree_map(
        lambda leaf: leaf.astype(dtype) if np.issubdtype(leaf.dtype, np.floating) else leaf,
        storage.read_params(path),
    )


# ---------------------------------------------------------------- init-sampling


@in_run_precision
def init(run: Path, out: Path, overwrite: bool = False) -> None:
    """θ₀ for every seed of the run (vmapped) and f₀ on the train and test inputs."""
    job = Job(run, out, overwrite)
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
    log(f"init: {len(config['seeds'])} seeds, {_count(params0) // len(config['seeds'])} params")
    job.write(ds, stage="init", params=params0)


def init_params(net, seeds, x_example):
    """θ₀ of every seed, stacked on a leading seed axis."""
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), INIT_STREAM) for s in seeds])
    return jax.vmap(net.init, in_axes=(0, None))(keys, x_example[:1])


# ---------------------------------------------------------------- kernels


@in_run_precision
def kernels(run: Path, params: Path, out: Path, overwrite: bool = False) -> None:
    """Empirical Θ̂ and K̂ (traced over outputs) at the params of a store, per seed.

    Also the spectrum of Θ̂(X, X) and the critical learning rate
    η_crit = 2·n·k/(λ_min + λ_max) (Theorem 2.1 in the mean-loss normalization).
    """
    job = Job(run, out, overwrite)
    config = job.config
    data, net = load_data_and_network(config)
    stacked = read_params(params, config)
    block = config["kernels"]["block_size"]
    per_seed = []
    for i, seed in enumerate(config["seeds"]):
        theta = jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], stacked)
        per_seed.append(_kernels_of_one(net, theta, data, block, config, seed))
        log(f"kernels: seed {seed} done, elapsed {job.elapsed():.1f} s")
    ds = xr.concat(per_seed, dim="seed").assign_coords(seed=list(config["seeds"]))
    job.write(ds, stage="kernels", chunks={"train": block, "train2": block, "test": block})


def _kernels_of_one(net, theta, data, block, config, seed) -> xr.Dataset:
    ntk_tt = ntk_kernels.empirical_ntk(net.apply, theta, data.x_train, block_size=block)
    ntk_st = ntk_kernels.empirical_ntk(
        net.apply, theta, data.x_test, data.x_train, block_size=block
    )
    nngp_tt = ntk_kernels.empirical_nngp(net, theta, data.x_train)
    nngp_st = ntk_kernels.empirical_nngp(net, theta, data.x_test, data.x_train)
    eigvals = np.linalg.eigvalsh(np.asarray(ntk_tt, dtype=np.float64))
    return xr.Dataset(
        {
            "ntk_train_train": (("train", "train2"), np.asarray(ntk_tt)),
            "ntk_test_train": (("test", "train"), np.asarray(ntk_st)),
            "nngp_train_train": (("train", "train2"), np.asarray(nngp_tt)),
            "nngp_test_train": (("test", "train"), np.asarray(nngp_st)),
            "ntk_eigvals": (("train",), eigvals),
            "lr_critical": ((), float(dynamics.lr_critical(ntk_tt, net.out_dim))),
        }
    )


# ---------------------------------------------------------------- analytic kernels


@in_run_precision
def analytic(run: Path, out: Path, overwrite: bool = False) -> None:
    """Infinite-width K and Θ on train and test inputs (MLP family only)."""
    job = Job(run, out, overwrite)
    config = job.config
    model = config["model"]
    if model["architecture"] != "fc":
        raise StageError(
            f"model.architecture: analytic kernels exist for 'fc' only, got "
            f"{model['architecture']!r}; set kernels.analytic: false"
        )
    data = load_data(config)
    kwargs = dict(
        depth=model["depth"],
        activation=model["activation"],
        w_std=model["w_std"],
        b_std=model["b_std"] or 0.0,
        parameterization=model["parameterization"],
        width=model["width"],
    )
    pairs = {
        "train_train": (data.x_train, None),
        "test_train": (data.x_test, data.x_train),
        "test_test": (data.x_test, None),
    }
    dims = {
        "train_train": ("train", "train2"),
        "test_train": ("test", "train"),
        "test_test": ("test", "test2"),
    }
    variables = {}
    for name, (x1, x2) in pairs.items():
        nngp, ntk = ntk_analytic.kernels(x1, x2, **kwargs)
        variables[f"nngp_{name}"] = (dims[name], np.asarray(nngp))
        variables[f"ntk_{name}"] = (dims[name], np.asarray(ntk))
    block = config["kernels"]["block_size"]
    job.write(
        xr.Dataset(variables),
        stage="analytic",
        chunks={"train": block, "train2": block, "test": block, "test2": block},
    )


# ---------------------------------------------------------------- real training


@in_run_precision
def train(
    run: Path, init: Path, out: Path, checkpoint: Path | None = None, overwrite: bool = False
) -> None:
    """Train every seed of the run from θ₀; record outputs, losses and weight changes."""
    job = Job(run, out, overwrite)
    config = job.config
    data, net = load_data_and_network(config)
    params0 = read_params(init, config)
    trajectory = _fit(
        net.apply,
        params0,
        data,
        config,
        linearized=False,
        checkpoint=checkpoint or _default_checkpoint(out),
    )
    ds = trajectory_dataset(trajectory, config)
    ds["weight_sample"] = endpoint_weight_samples(params0, trajectory.params, ds.step.values)
    job.write(ds, stage="train", params=trajectory.params)
    _remove_checkpoint(checkpoint or _default_checkpoint(out))


def _fit(apply_fn, params0, data, config, *, linearized, checkpoint=None):
    """Trains f (or f_lin) for every seed of the run; the trajectory at ``record_steps(config)``.

    With ``training.checkpoint_every`` = K > 0 and a ``checkpoint`` file, training runs in
    segments that also end at every multiple of K (those extra ends are evaluated, checked for
    divergence, then dropped from the trajectory), the state is saved there, and a rerun of the
    same config resumes from the last checkpoint with bit-identical results.
    """
    training = config["training"]
    seeds = config["seeds"]
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), TRAIN_STREAM) for s in seeds])
    every = (training.get("checkpoint_every") or 0) if checkpoint else 0
    wanted = record_steps(config)
    ends = segment_ends(wanted, training["steps"], every)
    resume = _load_checkpoint(checkpoint, config) if every else None
    last_saved = [resume.step if resume is not None else 0]

    def on_segment(state):
        if every and int(state.step) - last_saved[0] >= every:
            _save_checkpoint(checkpoint, config, state)
            last_saved[0] = int(state.step)

    on_progress = progress.Progress(log)  # by time, ETA after compilation
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
    )
    on_progress.close()
    return _trajectory_at(trajectory, wanted)


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
    return trajectory._replace(
        steps=np.asarray(steps),
        **{name: getattr(trajectory, name)[:, index] for name in ntk_train.RECORD_FIELDS},
    )


def record_steps(config) -> np.ndarray:
    """Log-spaced record steps in [0, T], 0 and T included (unique integers)."""
    return ntk_train.log_record_steps(config["training"]["steps"], config["training"]["records"])


def trajectory_dataset(trajectory, config) -> xr.Dataset:
    """A Trajectory of :func:`ntkpipe.core.train.train` as the store schema of `train.zarr`."""
    lr = config["training"]["learning_rate"]
    steps = np.asarray(trajectory.steps)
    return xr.Dataset(
        {
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


# ---------------------------------------------------------------- helpers


class Job:
    """One stage job: the config it reads, the store it writes, the time it started.

    Made first thing in a stage: it reads the run config and refuses an existing store (unless
    ``overwrite``) before any work; :meth:`write` writes the store with that config, the stage's
    name and the job's wall time (the provenance of DESIGN.md).
    """

    def __init__(self, run: Path, out: Path, overwrite: bool):
        self.started = time.time()
        self.config = load_run(run)
        self.out, self.overwrite = Path(out), overwrite
        _check_out(out, overwrite)

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
            **options,
        )


def load_run(path: Path) -> dict:
    """A run's resolved config (JSON written by the workflow)."""
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


def load_data(config):
    """The run's dataset (one-hot targets for cross-entropy, ±1 for a binary MSE task)."""
    return datasets.from_config(config)


def load_data_and_network(config):
    data = load_data(config)
    return data, build_network(config["model"], data)


def build_network(model: dict, data) -> models.Network:
    """The network a run's `model` section describes, sized for the dataset."""
    out_dim = data.y_train.shape[1]
    common = dict(
        out_dim=out_dim,
        activation=model["activation"],
        parameterization=model["parameterization"],
        w_std=model["w_std"],
        b_std=model["b_std"] or 0.0,
    )
    arch = model["architecture"]
    if arch == "fc":
        return models.mlp(depth=model["depth"], width=model["width"], **common)
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
    raise StageError(f"model.architecture: {arch!r} is not one of fc, cnn, wrn")


def _check_out(out: Path, overwrite: bool) -> None:
    if Path(out).exists() and not overwrite:
        raise StageError(
            f"--out: {out} exists; pass --overwrite to replace it (nothing was computed)"
        )


def log_progress(step, steps, loss, elapsed):
    """Prints a training progress line (step, loss, elapsed and estimated remaining seconds): the
    ``progress`` callback of :func:`ntkpipe.core.train.train`."""
    eta = elapsed / max(step, 1) * (steps - step)
    log(f"step {step}/{steps}  loss {loss:.6g}  elapsed {elapsed:.1f} s  eta {eta:.1f} s")


def log(message: str) -> None:
    """Prints one line of a stage's log, flushed at once (the job's log file follows it live)."""
    print(message, flush=True)


def _count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


# ---------------------------------------------------------------- linearized training


@in_run_precision
def linear(
    run: Path,
    init: Path,
    kernel: Path | None,
    out: Path,
    analytic: Path | None = None,
    overwrite: bool = False,
) -> None:
    """The linearized network f_lin (Eq. 5) over training, at the record steps of `train`.

    MSE with full-batch GD: the discrete closed form (Eq. 8–11 with (1 − ηλ/(n·k))^i), which equals
    gradient descent on f_lin step by step; the weights ω_t come from Eq. 8. Given `analytic`, also
    the same closed form with the analytic Θ in place of Θ̂₀ (model "lin_analytic"). Any other loss
    or optimizer: f_lin itself is trained with the run's optimizer, and neither `kernel` (Θ̂₀, then
    None with ``kernels.initial: false``) nor `analytic` is read.
    """
    job = Job(run, out, overwrite)
    config = job.config
    training = config["training"]
    closed_form = training["loss"] == "mse" and training["optimizer"] == "gd"
    if closed_form and kernel is None:
        raise StageError(
            "--kernel: missing; training.loss mse with training.optimizer gd evolves f_lin in "
            "closed form from Θ̂₀: pass the run's kernel_init.zarr"
        )
    data, net = load_data_and_network(config)
    params0 = read_params(init, config)
    if closed_form:
        ds = _linear_closed_form(
            net,
            params0,
            data,
            config,
            storage.read_store(init),
            storage.read_store(kernel),
            storage.read_store(analytic) if analytic else None,
        )
        final_params = None
    else:
        trajectory = _fit(
            net.apply, params0, data, config, linearized=True, checkpoint=_default_checkpoint(out)
        )
        ds, final_params = trajectory_dataset(trajectory, config), trajectory.params
        ds["weight_sample"] = endpoint_weight_samples(params0, final_params, ds.step.values)
    ds.attrs["method"] = "closed_form" if final_params is None else "optimized"
    job.write(ds, stage="linear", params=final_params)
    _remove_checkpoint(_default_checkpoint(out))


def _linear_closed_form(net, params0, data, config, init_ds, kernel_ds, analytic_ds):
    lr = config["training"]["learning_rate"]
    steps = record_steps(config)
    per_seed = []
    for i, seed in enumerate(config["seeds"]):
        theta0 = jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], params0)
        f0_train = jnp.asarray(init_ds.f0_train.values[i])
        f0_test = jnp.asarray(init_ds.f0_test.values[i])
        ntk_tt, ntk_st = _closed_form_kernels(net, theta0, data, kernel_ds, i, config)
        predict = dynamics.gradient_descent_mse(ntk_tt, data.y_train, lr, discrete=True)
        fx_train, fx_test = predict(steps, f0_train, f0_test, ntk_st)
        one = _outputs_dataset(fx_train, fx_test, data, config["training"]["loss"])
        omega = dynamics.weights_mse(
            net.apply, theta0, data.x_train, ntk_tt, data.y_train, lr, discrete=True
        )
        change, samples = _omega_records(omega, theta0, steps)
        one["weight_change"] = (("step", "layer"), change)
        one["weight_sample"] = (("step", "wsample"), samples)
        if analytic_ds is not None:
            predict_a = dynamics.gradient_descent_mse(
                jnp.asarray(analytic_ds.ntk_train_train.values), data.y_train, lr, discrete=True
            )
            fa_train, fa_test = predict_a(
                steps, f0_train, f0_test, jnp.asarray(analytic_ds.ntk_test_train.values)
            )
            analytic_part = _outputs_dataset(fa_train, fa_test, data, config["training"]["loss"])
            one.update({f"{name}_analytic": var for name, var in analytic_part.items()})
        one["diverged_step"] = ((), _first_nonfinite(steps, one.loss_train.values))
        per_seed.append(one)
        log(f"linear: seed {seed} closed form at {len(steps)} steps")
    first = jax.tree_util.tree_map(lambda x: x[0], params0)
    layers = list(models.kernel_leaves(first))
    ds = xr.concat(per_seed, dim="seed")
    return ds.assign_coords(
        seed=list(config["seeds"]),
        step=steps,
        t=("step", lr * steps.astype(float)),
        layer=layers,
        wsample=weight_sample_labels(first),
    )


def _closed_form_kernels(net, theta0, data, kernel_ds, i, config):
    """Θ̂₀ for the closed form: the traced kernel when k = 1, the full [n, n, k, k] one else.

    With k > 1 outputs the traced kernel Θ̂ ⊗ I is only the infinite-width structure; the finite
    network's f_lin couples outputs, so the exact GD dynamics of f_lin need the full kernel.
    """
    if net.out_dim == 1:
        return (
            jnp.asarray(kernel_ds.ntk_train_train.values[i]),
            jnp.asarray(kernel_ds.ntk_test_train.values[i]),
        )
    block = config["kernels"]["block_size"]
    full_tt = ntk_kernels.empirical_ntk_full(net.apply, theta0, data.x_train, block_size=block)
    full_st = ntk_kernels.empirical_ntk_full(
        net.apply, theta0, data.x_test, data.x_train, block_size=block
    )
    return full_tt, full_st


def _omega_records(omega, theta0, steps) -> tuple[np.ndarray, np.ndarray]:
    """‖ω_t‖_F/‖W_0‖_F per layer [n_steps, n_layers] and the sampled entries of ω_t
    [n_steps, n_wsample] (see :func:`weight_sample_index`) at each step."""
    w0 = models.kernel_leaves(theta0)
    picks = weight_sample_index(theta0)
    rows, samples = [], []
    for step in steps:
        moved = models.kernel_leaves(omega(step))
        rows.append(
            [float(jnp.linalg.norm(moved[name]) / jnp.linalg.norm(w0[name])) for name in w0]
        )
        samples.append([float(moved[name][entry]) for name, entry in picks])
    return np.asarray(rows), np.asarray(samples)


# ---------------------------------------------------------------- sampled weights (Fig. 3)

#: Entries of each layer's weight matrix whose trajectory is recorded (Fig. 3).
WEIGHTS_PER_LAYER = 2


def weight_sample_index(theta) -> list[tuple[str, tuple[int, ...]]]:
    """The sampled weight entries of one network: (layer, multi-index), WEIGHTS_PER_LAYER a layer.

    Entry m of a layer kernel of shape (s₁, …, s_d) is (m mod s₁, …, m mod s_d): the diagonal
    entries (0, 0), (1, 1), … of a dense layer. They exist at every width, so the entries, and
    the ``wsample`` coordinate, are the same for every run of a width sweep (the summary combines
    runs by their coordinates); at initialization they are i.i.d. N(0, 1) like any other entry.
    Listed in the text order of their labels (:func:`weight_sample_labels`).

    Args:
        theta: the parameters of one network (no seed axis).
    """
    picks = []
    for name, kernel in models.kernel_leaves(theta).items():
        shape = tuple(kernel.shape)
        count = min(WEIGHTS_PER_LAYER, max(shape))
        entries = {tuple(m % size for size in shape) for m in range(count)}
        picks += [(name, entry) for entry in entries]
    return sorted(picks, key=_weight_label)


def weight_sample_labels(theta) -> list[str]:
    """Labels ``layer[i,j]`` of :func:`weight_sample_index` (the ``wsample`` coordinate)."""
    return [_weight_label(pick) for pick in weight_sample_index(theta)]


def _weight_label(pick) -> str:
    name, entry = pick
    return f"{name}[{','.join(map(str, entry))}]"


def endpoint_weight_samples(params0, params_t, steps) -> xr.DataArray:
    """θ − θ₀ of the sampled entries at step 0 (zero) and at the last step, NaN in between.

    Real training keeps only the final parameters, so its sampled weights are known at the two
    ends of training; the closed-form f_lin records them at every step (Eq. 8).

    Args:
        params0: θ₀ of every seed (leading seed axis).
        params_t: θ_T of every seed (leading seed axis).
        steps: the record steps [n_steps].

    Returns:
        DataArray (seed, step, wsample).
    """
    first = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], params0)
    picks = weight_sample_index(first)
    start, end = models.kernel_leaves(params0), models.kernel_leaves(params_t)
    n_seed = next(iter(start.values())).shape[0]
    final_change = np.stack(
        [
            np.asarray(end[name])[(slice(None), *entry)]
            - np.asarray(start[name])[(slice(None), *entry)]
            for name, entry in picks
        ],
        axis=-1,
    )
    values = np.full((n_seed, len(steps), len(picks)), np.nan)
    values[:, 0] = 0.0
    values[:, -1] = final_change
    return xr.DataArray(
        values,
        dims=("seed", "step", "wsample"),
        coords={"wsample": weight_sample_labels(first)},
    )


def _outputs_dataset(fx_train, fx_test, data, loss) -> xr.Dataset:
    """Outputs [step, n, k] with their losses and accuracies, as train.zarr names them."""
    per_step_loss = jax.vmap(ntk_train.loss_fn(loss), in_axes=(0, None))
    per_step_acc = jax.vmap(ntk_train.accuracy, in_axes=(0, None))
    return xr.Dataset(
        {
            "fx_train": (("step", "train", "out"), np.asarray(fx_train)),
            "fx_test": (("step", "test", "out"), np.asarray(fx_test)),
            "loss_train": (("step",), np.asarray(per_step_loss(fx_train, data.y_train))),
            "loss_test": (("step",), np.asarray(per_step_loss(fx_test, data.y_test))),
            "acc_train": (("step",), np.asarray(per_step_acc(fx_train, data.y_train))),
            "acc_test": (("step",), np.asarray(per_step_acc(fx_test, data.y_test))),
        }
    )


def _first_nonfinite(steps, losses) -> int:
    bad = np.flatnonzero(~np.isfinite(losses))
    return int(steps[bad[0]]) if bad.size else -1


# ---------------------------------------------------------------- per-run comparison


@in_run_precision
def compare(
    run: Path,
    train: Path,
    linear: Path,
    kernel_init: Path | None,
    out: Path,
    kernel_final: Path | None = None,
    analytic: Path | None = None,
    overwrite: bool = False,
) -> None:
    """Metrics of one run: f against f_lin, weight changes, kernel changes and errors.

    `kernel_init` is None without Θ̂₀ (``kernels.initial: false``): its metrics (η_crit, kernel
    changes and errors) are then NaN (:func:`ntkpipe.analysis.metrics.run_metrics`).
    """
    from ntkpipe.analysis import metrics

    job = Job(run, out, overwrite)
    config = job.config
    ds = metrics.run_metrics(
        config,
        trained=storage.read_store(train, stage="train"),
        linear=storage.read_store(linear, stage="linear"),
        kernel_init=storage.read_store(kernel_init, stage="kernels") if kernel_init else None,
        kernel_final=storage.read_store(kernel_final, stage="kernels") if kernel_final else None,
        analytic=storage.read_store(analytic, stage="analytic") if analytic else None,
    )
    job.write(ds, stage="metrics")


# ---------------------------------------------------------------- checkpoints


def _default_checkpoint(out: Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def _save_checkpoint(path: Path, config: dict, state) -> None:
    storage.save_checkpoint(path, state, fingerprint=_fingerprint(config))
    log(f"checkpoint: step {int(state.step)} -> {path}")


def _load_checkpoint(path: Path, config: dict):
    state = storage.load_checkpoint(path, fingerprint=_fingerprint(config))
    if state is not None:
        log(f"checkpoint: resuming from step {int(state.step)} ({path})")
    return state


def _remove_checkpoint(path: Path) -> None:
    if Path(path).exists():
        Path(path).unlink()


def _fingerprint(config: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
