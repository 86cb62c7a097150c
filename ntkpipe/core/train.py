"""Optax training of a network f(θ, x) or of its linearization f_lin, several seeds at once.

The paper trains the real network and, next to it, the linearized network

    f_lin(θ, x) = f(θ₀, x) + ∇_θ f(θ₀, x) · (θ − θ₀)            (Eq. 5, θ = θ₀ + ω_t)

"directly", with the same optimizer (§3, Fig. 3–4, S2–S4): full-batch gradient descent on MSE
(whose exact solution is the closed form of :mod:`ntkpipe.core.dynamics`), gradient descent with
momentum, minibatch SGD, and softmax cross-entropy. :func:`train` does all of these.

Conventions (DESIGN.md):

- ``mse``: L = ½ · mean over all n·k entries of (f − y)²; the GD step on f_lin is then exactly
  f_{i+1} = f_i − η/(n·k) · Θ̂₀ (f_i − y), the discrete closed form.
- ``xent``: mean over examples of the softmax cross-entropy −Σ_k y_k log softmax(f)_k with one-hot
  targets; with one output (k = 1, targets ±1) the binary logistic loss log(1 + e^{−y f}), which is
  the two-class softmax cross-entropy of the logits (f/2, −f/2).
- ``gd``: ``optax.sgd(η)`` on the full batch, θ ← θ − η ∇L.
- ``momentum``: ``optax.sgd(η, momentum=β)``, heavy ball v ← βv + ∇L, θ ← θ − ηv (β = 0.9 by
  default, the paper's value): on the full batch (Fig. S3), or on minibatches when
  ``batch_size`` is given (SGD with momentum, Fig. 4).
- ``sgd``: ``optax.sgd(η)`` on minibatches of ``batch_size`` examples (plain SGD).
- Minibatches: each step an independent uniform draw of B examples without replacement from the
  training set, with the seed's key (which advances once per step).
- Accuracy: sign agreement f·y > 0 for k = 1 (±1 targets), argmax agreement otherwise.

Seeds: every leaf of ``params0`` has a leading seed axis; the seeds are trained together with
``jax.vmap``. Training runs as jitted loops over the steps between consecutive record steps
(``lax.fori_loop`` with the number of steps as a traced argument, so one compilation serves every
segment length; no Python loop per step). After each segment the outputs, losses, accuracies and
per-layer weight changes are recorded, divergence is checked, and ``on_segment(state)`` lets the
caller checkpoint an explicit :class:`TrainState`; passing it back as ``state=`` resumes and gives
bit-identical results to an uninterrupted run (same device, same program).
"""

from __future__ import annotations

import functools
import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntkpipe.errors import ConfigError

LOSSES = ("mse", "xent")
OPTIMIZERS = ("gd", "momentum", "sgd")
DEFAULT_MOMENTUM = 0.9
"""β of the ``momentum`` optimizer when ``momentum=None`` (the paper's value, Fig. 4, S3)."""
DEFAULT_RECORDS = 24
"""Number of log-spaced record steps when ``record_steps`` is None."""

RECORD_FIELDS = (
    "fx_train",
    "fx_test",
    "loss_train",
    "loss_test",
    "acc_train",
    "acc_test",
    "weight_change",
)

ApplyFn = Callable[[Any, jax.Array], jax.Array]


class TrainState(NamedTuple):
    """Everything needed to continue training after a segment (checkpoint and resume).

    All seeds share ``step`` and ``n_records``; other leaves carry the leading seed axis.
    :func:`state_to_arrays` flattens it to named NumPy arrays for storage, and :func:`train`
    accepts that flat form back as ``state=``.
    """

    step: int  # optimizer steps taken, T_done
    n_records: int  # records filled so far: record_steps[:n_records]
    params: Any  # pytree, leaves [seed, ...]
    opt_state: Any  # optax state of params, leaves [seed, ...]
    key: Any  # uint32 [seed, 2]: raw PRNG key data, advanced once per SGD step
    diverged_step: np.ndarray  # int64 [seed]: first record step with non-finite loss, −1 if none
    records: dict[str, np.ndarray]  # RECORD_FIELDS as in Trajectory, NaN where not recorded yet


class Trajectory(NamedTuple):
    """What :func:`train` records, at the steps ``steps``.

    Records of a seed at and after its divergence (``diverged_step`` ≥ 0) are NaN; records after
    an early stop (all seeds diverged) are NaN too.
    """

    steps: np.ndarray  # int [rec]: optimizer steps of the records (t = η · step)
    fx_train: np.ndarray  # [seed, rec, n_train, k]: f_t(x_train)
    fx_test: np.ndarray  # [seed, rec, n_test, k]: f_t(x_test)
    loss_train: np.ndarray  # [seed, rec]
    loss_test: np.ndarray  # [seed, rec]
    acc_train: np.ndarray  # [seed, rec]
    acc_test: np.ndarray  # [seed, rec]
    weight_change: np.ndarray  # [seed, rec, layer]: ‖W_t − W_0‖_F / ‖W_0‖_F
    layer_names: tuple[str, ...]  # [layer], from models.kernel_leaves
    params: Any  # final parameters θ_T (f_lin: θ₀ + ω_T), leaves [seed, ...]
    diverged_step: np.ndarray  # int [seed]: first record step with non-finite loss, −1 if none


def train(
    apply_fn: ApplyFn,
    params0: Any,
    x_train: jax.Array,
    y_train: jax.Array,
    x_test: jax.Array,
    y_test: jax.Array,
    *,
    loss: str = "mse",
    optimizer: str = "gd",
    learning_rate: float,
    steps: int,
    momentum: float | None = None,
    batch_size: int | None = None,
    record_steps: Sequence[int] | None = None,
    key: jax.Array | None = None,
    linearized: bool = False,
    state: TrainState | Mapping[str, np.ndarray] | None = None,
    on_segment: Callable[[TrainState], None] | None = None,
    progress: Callable[[int, int, float, float], None] | None = None,
    eval_block_size: int | None = None,
) -> Trajectory:
    """Trains f (or f_lin around each seed's θ₀) from ``params0`` for every seed at once.

    Args:
        apply_fn: the pure network function f(θ, x) → [n, k] (``Network.apply``).
        params0: θ₀ for every seed, each leaf with a leading seed axis [seed, ...].
        x_train: training inputs [n_train, ...].
        y_train: targets [n_train, k] (±1 for k = 1, one-hot for classification).
        x_test: test inputs [n_test, ...].
        y_test: test targets [n_test, k].
        loss: ``"mse"`` or ``"xent"`` (module docstring).
        optimizer: ``"gd"``, ``"momentum"`` or ``"sgd"`` (module docstring).
        learning_rate: η > 0.
        steps: number of optimizer steps T ≥ 1.
        momentum: β in [0, 1) of the ``momentum`` optimizer (None: :data:`DEFAULT_MOMENTUM`);
            ignored by ``gd`` and ``sgd`` (so a run config may always carry it).
        batch_size: minibatch size B in [1, n_train]: required by ``sgd``, optional for
            ``momentum`` (None: full batch), refused by ``gd``.
        record_steps: integer steps in [0, T] at which to record (sorted, duplicates dropped);
            None: :func:`log_record_steps` (T, 24). Training always runs to T.
        key: PRNG key for minibatches (required with ``batch_size``): one key (split into one
            per seed) or one key per seed ([seed] typed keys or [seed, 2] raw ``PRNGKey``
            data). Unused by full-batch training.
        linearized: train f_lin(θ, x) = f(θ₀, x) + ∇f(θ₀, x)(θ − θ₀) with θ₀ the seed's params0.
        state: a :class:`TrainState` (or :func:`state_to_arrays` of one) from ``on_segment`` of
            a run with the same arguments: training resumes from it.
        on_segment: called with the :class:`TrainState` after every recorded segment.
        progress: called as ``progress(step, steps, loss, elapsed_s)`` after every segment, with
            the mean training loss over the seeds that have not diverged (NaN if none).
        eval_block_size: evaluate the recorded outputs in blocks of this many examples (memory);
            None: all at once. Blocks change nothing unless the network uses batch statistics.

    Returns:
        The :class:`Trajectory` (host NumPy arrays, final params as JAX arrays).

    Raises:
        ConfigError: for any invalid option or shape, listing every problem, before any work.
    """
    record_steps = _check_inputs(
        apply_fn,
        params0,
        x_train,
        y_train,
        x_test,
        y_test,
        loss=loss,
        optimizer=optimizer,
        learning_rate=learning_rate,
        steps=steps,
        momentum=momentum,
        batch_size=batch_size,
        record_steps=record_steps,
        key=key,
        eval_block_size=eval_block_size,
    )
    momentum = _effective_momentum(optimizer, momentum)
    programs = _Programs(
        segment=_cached(
            _segment_program, apply_fn, loss, optimizer, momentum, batch_size, bool(linearized)
        ),
        evaluate=_cached(_evaluate_program, apply_fn, loss, bool(linearized), eval_block_size),
        init_opt=_cached(_init_opt_program, momentum),
        learning_rate=float(learning_rate),
    )
    data = tuple(jnp.asarray(a) for a in (x_train, y_train, x_test, y_test))
    fresh = _initial_state(programs, params0, key, record_steps, data)
    state = fresh if state is None else _resume_state(state, fresh, record_steps, steps)
    layer_names = tuple(_kernel_leaves(params0))  # names only: the seed axis is harmless
    state = _run(programs, state, params0, data, record_steps, steps, on_segment, progress)
    return Trajectory(
        steps=np.asarray(record_steps),
        **{name: state.records[name] for name in RECORD_FIELDS},
        layer_names=layer_names,
        params=state.params,
        diverged_step=state.diverged_step,
    )


def log_record_steps(steps: int, records: int = DEFAULT_RECORDS) -> np.ndarray:
    """About ``records`` log-spaced integer steps in [0, T]: 0 and T included, unique, sorted.

    Args:
        steps: T ≥ 1.
        records: wanted number of records ≥ 2 (fewer when T is small: duplicates are dropped).

    Returns:
        int64 [rec].
    """
    if not _is_int(steps) or steps < 1:
        raise ConfigError(f"steps: must be an integer ≥ 1; got {steps!r}")
    if not _is_int(records) or records < 2:
        raise ConfigError(f"records: must be an integer ≥ 2; got {records!r}")
    grid = np.round(np.geomspace(1, steps, records - 1)).astype(np.int64)
    return np.unique(np.concatenate([[0], grid, [steps]]))


def loss_fn(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The loss L(f, y) by name (module docstring): f, y [n, k] → scalar."""
    if name not in LOSSES:
        raise ConfigError(f"loss: {name!r} is not one of {', '.join(LOSSES)}")
    return {"mse": _mse, "xent": _xent}[name]


def accuracy(fx: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of examples classified right: f·y > 0 for k = 1, argmax agreement otherwise."""
    if fx.shape[-1] == 1:
        return jnp.mean((fx * y > 0).astype(fx.dtype))
    return jnp.mean((jnp.argmax(fx, -1) == jnp.argmax(y, -1)).astype(fx.dtype))


def weight_change(params: Any, params0: Any) -> jax.Array:
    """‖W_t − W_0‖_F / ‖W_0‖_F for every layer kernel of :func:`ntkpipe.core.models.kernel_leaves`.

    Args:
        params: θ_t of one seed.
        params0: θ₀ of the same seed.

    Returns:
        [layer], in the order of ``kernel_leaves``.
    """
    now, start = _kernel_leaves(params), _kernel_leaves(params0)
    return jnp.stack([jnp.linalg.norm(now[n] - start[n]) / jnp.linalg.norm(start[n]) for n in now])


def state_to_arrays(state: TrainState) -> dict[str, np.ndarray]:
    """A :class:`TrainState` as flat NumPy arrays named by their pytree path (for checkpoints).

    The inverse is done by :func:`train` itself: pass the dict back as ``state=`` with the
    same arguments, and it is matched leaf by leaf against the fresh state of that run.
    """
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


# ---------------------------------------------------------------- the training loop


def _run(programs, state, params0, data, record_steps, steps, on_segment, progress) -> TrainState:
    """Segments between records: train, evaluate, check divergence, report."""
    started = time.perf_counter()
    for r in range(state.n_records, len(record_steps)):
        if np.all(state.diverged_step >= 0):
            return state
        state = _advance(programs, state, params0, data, int(record_steps[r]))
        state = _record(programs, state, params0, data, r, int(record_steps[r]))
        if on_segment is not None:
            on_segment(state)
        if progress is not None:
            progress(
                state.step,
                steps,
                _mean_finite(state.records["loss_train"][:, r]),
                time.perf_counter() - started,
            )
    if state.step < steps and not np.all(state.diverged_step >= 0):
        state = _advance(programs, state, params0, data, steps)
        if on_segment is not None:
            on_segment(state)
    return state


def _advance(programs, state: TrainState, params0, data, to_step: int) -> TrainState:
    n_steps = to_step - state.step
    if n_steps == 0:
        return state
    x_train, y_train = data[0], data[1]
    params, opt_state, key = programs.segment(
        state.params,
        state.opt_state,
        state.key,
        params0,
        x_train,
        y_train,
        programs.learning_rate,
        n_steps,
    )
    return state._replace(step=to_step, params=params, opt_state=opt_state, key=key)


def _record(programs, state: TrainState, params0, data, r: int, step: int) -> TrainState:
    values = {k: np.asarray(v) for k, v in programs.evaluate(state.params, params0, *data).items()}
    diverged = state.diverged_step.copy()
    diverged[(diverged < 0) & ~np.isfinite(values["loss_train"])] = step
    records = {}
    for name, array in state.records.items():
        array = array.copy()  # records handed to on_segment are never mutated later
        array[:, r] = values[name]
        array[diverged >= 0, r] = np.nan
        records[name] = array
    return state._replace(n_records=r + 1, diverged_step=diverged, records=records)


def _initial_state(programs, params0, key, record_steps, data) -> TrainState:
    n_seeds = _n_seeds(params0)
    params0 = jax.tree.map(jnp.asarray, params0)
    shapes = jax.eval_shape(programs.evaluate, params0, params0, *data)
    n_rec = len(record_steps)
    records = {
        name: np.full((n_seeds, n_rec, *shapes[name].shape[1:]), np.nan, shapes[name].dtype)
        for name in RECORD_FIELDS
    }
    return TrainState(
        step=0,
        n_records=0,
        params=params0,
        opt_state=programs.init_opt(params0),
        key=_seed_keys(key, n_seeds),
        diverged_step=np.full((n_seeds,), -1, np.int64),
        records=records,
    )


def _resume_state(state, fresh: TrainState, record_steps, steps: int) -> TrainState:
    """Checks a state to resume from against the fresh state of this run (and unflattens it)."""
    if isinstance(state, Mapping):
        state = _state_from_arrays(state, fresh)
    if not isinstance(state, TrainState):
        raise ConfigError(f"state: must be a TrainState or state_to_arrays(...); got {state!r}")
    n_records, step = int(state.n_records), int(state.step)
    expected = int(record_steps[n_records - 1]) if n_records > 0 else 0
    if not 0 <= n_records <= len(record_steps) or not (step == expected or step == steps):
        raise ConfigError(
            f"state: step {step} after {n_records} records does not match record_steps "
            f"{list(map(int, record_steps))} (or steps={steps}); resume with the arguments "
            "of the interrupted run"
        )
    pairs = zip(jax.tree.leaves(state), jax.tree.leaves(fresh), strict=False)
    same_tree = jax.tree.structure(state) == jax.tree.structure(fresh)
    ok = same_tree and all(np.shape(a) == np.shape(b) for a, b in pairs)
    if not ok:
        raise ConfigError(
            "state: its arrays do not match this run (other seeds, data, network or optimizer); "
            "resume with the arguments of the interrupted run"
        )
    diverged = np.asarray(state.diverged_step)
    return state._replace(step=step, n_records=n_records, diverged_step=diverged)


def _state_from_arrays(arrays: Mapping[str, np.ndarray], fresh: TrainState) -> TrainState:
    paths, treedef = jax.tree_util.tree_flatten_with_path(fresh)
    missing = [jax.tree_util.keystr(p) for p, _ in paths if jax.tree_util.keystr(p) not in arrays]
    if missing:
        raise ConfigError(
            f"state: the checkpoint lacks {missing[:3]} (of {len(missing)} arrays); it was written "
            "for another network or optimizer"
        )
    leaves = []
    for path, like in paths:
        value = np.asarray(arrays[jax.tree_util.keystr(path)])
        if isinstance(like, np.ndarray | int):
            leaves.append(value.item() if isinstance(like, int) else value)
        else:
            leaves.append(jnp.asarray(value, dtype=like.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)


# ---------------------------------------------------------------- compiled programs


class _Programs(NamedTuple):
    """Jitted programs of one run; η is an argument, so runs differing in η share them."""

    segment: Callable  # (params, opt_state, key, params0, x, y, η, n_steps) -> first three
    evaluate: Callable  # (params, params0, x_train, y_train, x_test, y_test) -> {field: [seed..]}
    init_opt: Callable  # params [seed, ...] -> opt_state [seed, ...]
    learning_rate: float  # η


def _cached(build: Callable, *args) -> Callable:
    """build(*args), cached so that repeated and resumed runs reuse compiled programs."""
    try:
        return _program_cache(build, *args)
    except TypeError:  # an unhashable apply_fn: build without the cache
        return build(*args)


@functools.lru_cache(maxsize=32)
def _program_cache(build: Callable, *args) -> Callable:
    return build(*args)


def _segment_program(apply_fn, loss, optimizer, momentum, batch_size, linearized) -> Callable:
    """n_steps optimizer steps of every seed (vmapped) in one jitted loop."""
    model, loss_of = _model(apply_fn, linearized), loss_fn(loss)

    def seed_step(params, opt_state, key, params0, x, y, learning_rate):
        if batch_size is not None:
            key, x, y = _minibatch(key, x, y, batch_size)
        grads = jax.grad(lambda p: loss_of(model(p, params0, x), y))(params)
        updates, opt_state = _optimizer(learning_rate, momentum).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key

    step = jax.vmap(seed_step, in_axes=(0, 0, 0, 0, None, None, None))

    @jax.jit
    def segment(params, opt_state, key, params0, x, y, learning_rate, n_steps):
        def body(_, carry):
            return step(*carry, params0, x, y, learning_rate)

        # a traced trip count: one compilation serves every segment length
        return jax.lax.fori_loop(0, n_steps, body, (params, opt_state, key))

    return segment


def _evaluate_program(apply_fn, loss, linearized, eval_block_size) -> Callable:
    """The recorded quantities of every seed (vmapped), jitted."""
    model, loss_of = _model(apply_fn, linearized), loss_fn(loss)

    def seed_evaluate(params, params0, x_train, y_train, x_test, y_test):
        fx_train = _blocked(model, params, params0, x_train, eval_block_size)
        fx_test = _blocked(model, params, params0, x_test, eval_block_size)
        return {
            "fx_train": fx_train,
            "fx_test": fx_test,
            "loss_train": loss_of(fx_train, y_train),
            "loss_test": loss_of(fx_test, y_test),
            "acc_train": accuracy(fx_train, y_train),
            "acc_test": accuracy(fx_test, y_test),
            "weight_change": weight_change(params, params0),
        }

    return jax.jit(jax.vmap(seed_evaluate, in_axes=(0, 0, None, None, None, None)))


def _init_opt_program(momentum) -> Callable:
    return jax.jit(jax.vmap(_optimizer(1.0, momentum).init))  # the state does not depend on η


def _optimizer(learning_rate, momentum: float) -> optax.GradientTransformation:
    """optax.sgd: θ ← θ − η v, v ← β v + ∇L (heavy ball; plain GD/SGD when β = 0)."""
    return optax.sgd(learning_rate, momentum=momentum if momentum > 0 else None)


def _model(apply_fn: ApplyFn, linearized: bool) -> Callable:
    """(θ, θ₀, x) ↦ f(θ, x), or f_lin(θ, x) around θ₀."""
    if not linearized:
        return lambda params, params0, x: apply_fn(params, x)
    from ntkpipe.core.linearize import linearize

    return lambda params, params0, x: linearize(apply_fn, params0)(params, x)


def _minibatch(key, x, y, batch_size: int):
    """B examples drawn uniformly without replacement; the key advances once."""
    next_key, draw = jax.random.split(jax.random.wrap_key_data(key))
    index = jax.random.choice(draw, x.shape[0], (batch_size,), replace=False)
    return jax.random.key_data(next_key), x[index], y[index]


def _blocked(model, params, params0, x, block: int | None):
    """model(params, params0, x) evaluated over blocks of ``block`` rows of x."""
    n = x.shape[0]
    if block is None or block >= n:
        return model(params, params0, x)
    n_blocks = -(-n // block)
    padded = jnp.concatenate([x, jnp.zeros((n_blocks * block - n, *x.shape[1:]), x.dtype)])
    out = jax.lax.map(
        lambda xb: model(params, params0, xb), padded.reshape(n_blocks, block, *x.shape[1:])
    )
    return out.reshape(n_blocks * block, *out.shape[2:])[:n]


# ---------------------------------------------------------------- losses


def _mse(fx: jax.Array, y: jax.Array) -> jax.Array:
    return 0.5 * jnp.mean((fx - y) ** 2)


def _xent(fx: jax.Array, y: jax.Array) -> jax.Array:
    if fx.shape[-1] == 1:
        return jnp.mean(jax.nn.softplus(-y * fx))
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(fx, axis=-1), axis=-1))


# ---------------------------------------------------------------- checks and small helpers


def _check_inputs(
    apply_fn,
    params0,
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    loss,
    optimizer,
    learning_rate,
    steps,
    momentum,
    batch_size,
    record_steps,
    key,
    eval_block_size,
) -> np.ndarray:
    """Every problem with the arguments, raised together; returns the record steps."""
    errors = []
    if loss not in LOSSES:
        errors.append(f"loss: {loss!r} is not one of {', '.join(LOSSES)}")
    if optimizer not in OPTIMIZERS:
        errors.append(f"optimizer: {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if not _is_real(learning_rate) or not (learning_rate > 0 and math.isfinite(learning_rate)):
        errors.append(f"learning_rate: must be a finite number > 0; got {learning_rate!r}")
    steps_ok = _is_int(steps) and steps >= 1
    if not steps_ok:
        errors.append(f"steps: must be an integer ≥ 1; got {steps!r}")
    errors += _check_momentum(optimizer, momentum)
    n_train = np.shape(x_train)[0] if np.ndim(x_train) >= 1 else None
    errors += _check_batch_size(optimizer, batch_size, n_train)
    if batch_size is not None and key is None:
        errors.append(f"key: minibatches (batch_size={batch_size!r}) are drawn with a PRNG key")
    if eval_block_size is not None and (not _is_int(eval_block_size) or eval_block_size < 1):
        errors.append(f"eval_block_size: must be an integer ≥ 1 or None; got {eval_block_size!r}")
    errors += _check_data(x_train, y_train, x_test, y_test)
    n_seeds, seed_errors = _check_params0(params0)
    errors += seed_errors
    if n_seeds is not None:
        errors += _check_key(key, n_seeds)
    record, record_errors = _check_record_steps(record_steps, steps if steps_ok else None)
    errors += record_errors
    if not errors:
        errors += _check_output_shape(apply_fn, params0, x_train, y_train)
    if errors:
        raise ConfigError(errors)
    return record


def _check_momentum(optimizer, momentum) -> list[str]:
    if momentum is None or optimizer != "momentum":
        return []
    if not _is_real(momentum) or not 0 <= momentum < 1:
        return [f"momentum: must be a number in [0, 1) or None; got {momentum!r}"]
    return []


def _check_batch_size(optimizer, batch_size, n_train) -> list[str]:
    if optimizer == "gd" and batch_size is not None:
        return [
            f"batch_size: optimizer 'gd' is full-batch; got batch_size={batch_size!r} (set it "
            "to None, or use optimizer 'sgd' or 'momentum' for minibatches)"
        ]
    if optimizer == "sgd" and batch_size is None:
        return ["batch_size: optimizer 'sgd' needs a batch_size (an integer in [1, n_train])"]
    if batch_size is None:
        return []
    if not _is_int(batch_size) or batch_size < 1 or (n_train is not None and batch_size > n_train):
        return [f"batch_size: must be an integer in [1, n_train={n_train}]; got {batch_size!r}"]
    return []


def _effective_momentum(optimizer: str, momentum: float | None) -> float:
    """β actually used: the argument (or 0.9) for ``momentum``, 0 for ``gd`` and ``sgd``."""
    if optimizer != "momentum":
        return 0.0
    return DEFAULT_MOMENTUM if momentum is None else float(momentum)


def _check_data(x_train, y_train, x_test, y_test) -> list[str]:
    errors = []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if np.ndim(y) != 2:
            errors.append(f"y_{split}: must have shape [n_{split}, k]; got {np.shape(y)}")
        elif np.ndim(x) < 1 or np.shape(x)[0] != np.shape(y)[0]:
            errors.append(
                f"x_{split}, y_{split}: must have the same number of examples; got shapes "
                f"{np.shape(x)} and {np.shape(y)}"
            )
    both_2d = np.ndim(y_train) == 2 and np.ndim(y_test) == 2
    if both_2d and np.shape(y_train)[1] != np.shape(y_test)[1]:
        errors.append(
            f"y_train, y_test: must have the same number of outputs k; got {np.shape(y_train)[1]} "
            f"and {np.shape(y_test)[1]}"
        )
    return errors


def _check_params0(params0) -> tuple[int | None, list[str]]:
    leaves = jax.tree.leaves(params0)
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) >= 1 else None for leaf in leaves}
    if not leaves or None in sizes or len(sizes) != 1:
        return None, [
            "params0: every leaf must have the same leading seed axis [seed, ...]; got leading "
            f"sizes {sorted(map(str, sizes))} (stack single-seed params with a new axis 0)"
        ]
    return sizes.pop(), []


def _check_key(key, n_seeds: int) -> list[str]:
    if key is None:
        return []
    shape = np.shape(key)
    typed = jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key)
    single = shape == () if typed else shape == (2,)
    per_seed = shape == (n_seeds,) if typed else shape == (n_seeds, 2)
    if single or per_seed:
        return []
    return [f"key: must be one PRNG key or one per seed ({n_seeds} seeds); got shape {shape}"]


def _check_record_steps(record_steps, steps) -> tuple[np.ndarray | None, list[str]]:
    if steps is None:
        return None, []
    if record_steps is None:
        return log_record_steps(steps), []
    values = np.asarray(record_steps)
    integral = values.size > 0 and values.ndim == 1 and np.all(np.mod(values, 1) == 0)
    if not integral or values.min() < 0 or values.max() > steps:
        return None, [
            f"record_steps: must be integers in [0, steps={steps}]; got {list(np.ravel(values))}"
        ]
    return np.unique(values.astype(np.int64)), []


def _check_output_shape(apply_fn, params0, x_train, y_train) -> list[str]:
    def first_seed(params, x):
        return apply_fn(jax.tree.map(lambda a: a[0], params), x)

    try:  # shapes only: nothing is compiled or computed
        out = jax.eval_shape(first_seed, params0, jnp.asarray(x_train))
    except Exception as error:  # noqa: BLE001 - reported as a clear input error
        return [f"apply_fn: cannot evaluate on params0[seed 0] and x_train: {error}"]
    if out.shape != np.shape(y_train):
        return [
            f"apply_fn: returns shape {out.shape} on x_train but y_train has shape "
            f"{np.shape(y_train)}"
        ]
    return []


def _seed_keys(key, n_seeds: int) -> jax.Array:
    """uint32 [seed, 2] raw key data: one key split per seed, or the given per-seed keys."""
    if key is None:
        return np.zeros((n_seeds, 2), np.uint32)  # unused by full-batch optimizers
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
    if key.ndim == 0:
        key = jax.random.split(key, n_seeds)
    return jax.random.key_data(key)


def _n_seeds(params0) -> int:
    return np.shape(jax.tree.leaves(params0)[0])[0]


def _kernel_leaves(params) -> dict[str, jax.Array]:
    from ntkpipe.core.models import kernel_leaves

    return kernel_leaves(params)


def _mean_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.mean(finite)) if finite.size else float("nan")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
