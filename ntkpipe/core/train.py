"""Optax training of a network f(θ, x) or of its linearization f_lin, several seeds at once.

The paper trains the real network and, next to it, the linearized network

    f_lin(θ, x) = f(θ₀, x) + ∇_θ f(θ₀, x) · (θ − θ₀)            (Eq. 5, θ = θ₀ + ω_t)

"directly", with the same optimizer (§3, Fig. 3–4, S2–S4): full-batch gradient descent on MSE
(whose exact solution is the closed form of :mod:`ntkpipe.core.dynamics`), gradient descent with
momentum, minibatch SGD, and softmax cross-entropy. :func:`train` does all of these.

Conventions (docs/architecture.md):

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
``jax.vmap`` (a single seed without it: a vmap over an axis of size 1 cost 1.4–1.5× per step on
CPU, see :mod:`ntkpipe.core._train_programs`). Training runs as jitted loops over the steps
between consecutive record steps (``lax.fori_loop`` with the number of steps as a traced argument,
so one compilation serves every segment length; no Python loop per step). The same jitted
program then evaluates the records (outputs, losses, accuracies, per-layer weight changes),
marks the seeds whose training loss is not finite as diverged and NaNs their records, and
returns all of it packed in one array: one dispatch and one transfer per segment
(:func:`ntkpipe.core._train_programs.record_program`). Then ``on_segment(state)`` lets the
caller checkpoint an explicit :class:`TrainState`;
passing it back as ``state=`` resumes and gives bit-identical results to an uninterrupted run
(same device, same program).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.core._train_checks import (
    DEFAULT_MOMENTUM,
    DEFAULT_RECORDS,
    LOSSES,
    OPTIMIZERS,
    check_inputs,
    effective_momentum,
    log_record_steps,
)
from ntkpipe.core._train_programs import (
    ApplyFn,
    Programs,
    accuracy,
    cached,
    evaluate_program,
    exact_sharpness,
    init_opt_program,
    loss_fn,
    record_program,
    segment_program,
    unpack_records,
    weight_change,
)
from ntkpipe.core._train_state import (
    RECORD_FIELDS,
    TrainState,
    count_seeds,
    initial_state,
    resume_state,
    state_to_arrays,
)
from ntkpipe.core.models import kernel_leaves
from ntkpipe.core.sharpness import SharpnessOptions
from ntkpipe.core.sharpness import method as sharpness_method
from ntkpipe.errors import ConfigError

__all__ = [
    "DEFAULT_MOMENTUM",
    "DEFAULT_RECORDS",
    "LOSSES",
    "OPTIMIZERS",
    "RECORD_FIELDS",
    "SharpnessOptions",
    "TrainState",
    "Trajectory",
    "accuracy",
    "log_record_steps",
    "loss_fn",
    "state_to_arrays",
    "train",
    "weight_change",
]


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
    sharpness: np.ndarray | None = None  # [seed, rec]: λ_max(Θ̂_t) (f_lin: of Θ̂₀), or None


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
    sharpness: SharpnessOptions | bool | None = None,
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
        sharpness: also record λ_max(Θ̂_t) of the full kernel on the training set at every
            record step (Θ̂₀'s for f_lin), exact from the formed kernel for a small MLP, else by
            warm-started power iteration on kernel-vector products
            (:func:`ntkpipe.core.sharpness.method`); True: the default
            :class:`~ntkpipe.core.sharpness.SharpnessOptions`. None or False: not recorded.

    Returns:
        The :class:`Trajectory` (host NumPy arrays, final params as JAX arrays).

    Raises:
        ConfigError: for any invalid option or shape, listing every problem, before any work.
    """
    record_steps = check_inputs(
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
    momentum = effective_momentum(optimizer, momentum)
    single, lin = count_seeds(params0) == 1, bool(linearized)
    sharpness_options = _sharpness_options(sharpness)
    exact = None
    if sharpness_options is not None:
        n, k = np.shape(y_train)
        if sharpness_method(apply_fn, n, k, sharpness_options) == "exact":
            exact = functools.partial(
                exact_sharpness, apply_fn, lin, k, sharpness_options.block_size
            )
            if lin:  # f_lin's kernel is Θ̂₀ at every step: formed and diagonalized once
                none_diverged = np.zeros(count_seeds(params0), bool)
                exact = _constant_sharpness(exact(params0, params0, x_train, none_diverged))
    programs = Programs(
        segment=cached(
            segment_program, apply_fn, loss, optimizer, momentum, batch_size, lin, single
        ),
        record=cached(
            record_program,
            apply_fn,
            loss,
            optimizer,
            momentum,
            batch_size,
            lin,
            eval_block_size,
            single,
            sharpness_options if exact is None else None,  # the power iteration, or none
        ),
        evaluate=cached(evaluate_program, apply_fn, loss, lin, eval_block_size, single),
        init_opt=cached(init_opt_program, momentum),
        learning_rate=float(learning_rate),
        sharpness=sharpness_options,
        exact_sharpness=exact,
    )
    data = tuple(jnp.asarray(a) for a in (x_train, y_train, x_test, y_test))
    fresh = initial_state(programs, params0, key, record_steps, data)
    state = fresh if state is None else resume_state(state, fresh, record_steps, steps)
    layer_names = tuple(kernel_leaves(params0))  # names only: the seed axis is harmless
    state = _run(programs, state, params0, data, record_steps, steps, on_segment, progress)
    return Trajectory(
        steps=np.asarray(record_steps),
        **{name: state.records[name] for name in RECORD_FIELDS},
        layer_names=layer_names,
        params=state.params,
        diverged_step=state.diverged_step,
        sharpness=state.records.get("sharpness"),
    )


def _constant_sharpness(values: np.ndarray) -> Callable:
    """An ``exact_sharpness`` giving the same λ_max [seed] at every record (NaN once diverged)."""
    return lambda params, params0, x, diverged: np.where(diverged, np.nan, values)


def _sharpness_options(sharpness) -> SharpnessOptions | None:
    if sharpness is None or sharpness is False:
        return None
    if sharpness is True:
        return SharpnessOptions()
    if not isinstance(sharpness, SharpnessOptions):
        raise ConfigError(
            f"sharpness: must be None, a bool or a SharpnessOptions; got {sharpness!r}"
        )
    return sharpness


def _run(programs, state, params0, data, record_steps, steps, on_segment, progress) -> TrainState:
    """Segments between records: train, evaluate and check divergence (one jitted program and
    one transfer per segment), then report."""
    started = time.perf_counter()
    # written in place from here on; copied per segment only for on_segment, whose states
    # must not change afterwards (the records may be a resumed state's arrays: copy them once)
    state = state._replace(records={k: np.array(v) for k, v in state.records.items()})
    for r in range(state.n_records, len(record_steps)):
        if np.all(state.diverged_step >= 0):
            return state
        state = _segment(programs, state, params0, data, r, int(record_steps[r]))
        if on_segment is not None:
            on_segment(state)
            state = state._replace(records={k: v.copy() for k, v in state.records.items()})
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


def _segment(programs, state: TrainState, params0, data, r: int, step: int) -> TrainState:
    """Trains to ``step`` and writes record r (NaN for diverged seeds) into ``state.records``."""
    carry, packed = programs.record(
        state.params,
        state.opt_state,
        state.key,
        state.power,
        state.diverged_step >= 0,
        params0,
        *data,
        programs.learning_rate,
        step - state.step,
    )
    params, opt_state, key, power = carry
    exact = programs.exact_sharpness
    packed_fields = {k: v for k, v in state.records.items() if exact is None or k != "sharpness"}
    values, diverged = unpack_records(np.asarray(packed), packed_fields)  # the one transfer
    if exact is not None:  # λ_max(Θ̂_t) formed and diagonalized on the host
        values["sharpness"] = exact(params, params0, data[0], diverged)
    for name, array in state.records.items():
        array[:, r] = values[name]
    new = (state.diverged_step < 0) & diverged
    diverged_step = np.where(new, step, state.diverged_step)
    return state._replace(
        step=step,
        n_records=r + 1,
        params=params,
        opt_state=opt_state,
        key=key,
        diverged_step=diverged_step,
        power=power,
    )


def _advance(programs, state: TrainState, params0, data, to_step: int) -> TrainState:
    """Trains to ``to_step`` without a record (the steps after the last record step)."""
    params, opt_state, key = programs.segment(
        state.params,
        state.opt_state,
        state.key,
        params0,
        data[0],
        data[1],
        programs.learning_rate,
        to_step - state.step,
    )
    return state._replace(step=to_step, params=params, opt_state=opt_state, key=key)


def _mean_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.mean(finite)) if finite.size else float("nan")
