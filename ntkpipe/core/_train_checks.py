"""Argument checks of :func:`ntkpipe.core.train.train`: every problem reported together, before
any compilation (a :class:`~ntkpipe.errors.ConfigError` listing them), and the record steps."""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.conventions import DEFAULT_MOMENTUM
from ntkpipe.errors import ConfigError

LOSSES = ("mse", "xent")


OPTIMIZERS = ("gd", "momentum", "sgd")


DEFAULT_RECORDS = 24
"""Number of log-spaced record steps when ``record_steps`` is None."""


def log_record_steps(steps: int, records: int = DEFAULT_RECORDS) -> np.ndarray:
    """About ``records`` log-spaced integer steps in [0, T]: 0 and T included, unique, sorted.

    Args:
        steps: T ≥ 1.
        records: wanted number of records ≥ 2 (fewer when T is small: duplicates are dropped).

    Returns:
        int64 [rec].
    """
    if not is_int(steps) or steps < 1:
        raise ConfigError(f"steps: must be an integer ≥ 1; got {steps!r}")
    if not is_int(records) or records < 2:
        raise ConfigError(f"records: must be an integer ≥ 2; got {records!r}")
    grid = np.round(np.geomspace(1, steps, records - 1)).astype(np.int64)
    return np.unique(np.concatenate([[0], grid, [steps]]))


def check_inputs(
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
    if not is_real(learning_rate) or not (learning_rate > 0 and math.isfinite(learning_rate)):
        errors.append(f"learning_rate: must be a finite number > 0; got {learning_rate!r}")
    steps_ok = is_int(steps) and steps >= 1
    if not steps_ok:
        errors.append(f"steps: must be an integer ≥ 1; got {steps!r}")
    errors += _check_momentum(optimizer, momentum)
    n_train = np.shape(x_train)[0] if np.ndim(x_train) >= 1 else None
    errors += _check_batch_size(optimizer, batch_size, n_train)
    if batch_size is not None and key is None:
        errors.append(f"key: minibatches (batch_size={batch_size!r}) are drawn with a PRNG key")
    if eval_block_size is not None and (not is_int(eval_block_size) or eval_block_size < 1):
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
    if not is_real(momentum) or not 0 <= momentum < 1:
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
    if not is_int(batch_size) or batch_size < 1 or (n_train is not None and batch_size > n_train):
        return [f"batch_size: must be an integer in [1, n_train={n_train}]; got {batch_size!r}"]
    return []


def effective_momentum(optimizer: str, momentum: float | None) -> float:
    """β actually used: the argument (or `DEFAULT_MOMENTUM`) for ``momentum``, 0 for ``gd`` and
    ``sgd``."""
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
    try:  # shapes only: nothing is compiled or computed
        out = _output_shape(apply_fn, params0, jnp.asarray(x_train))
    except Exception as error:  # noqa: BLE001 - reported as a clear input error
        return [f"apply_fn: cannot evaluate on params0[seed 0] and x_train: {error}"]
    if out.shape != np.shape(y_train):
        return [
            f"apply_fn: returns shape {out.shape} on x_train but y_train has shape "
            f"{np.shape(y_train)}"
        ]
    return []


def _output_shape(apply_fn, params0, x) -> jax.ShapeDtypeStruct:
    """Shape of apply_fn(params0[seed 0], x), traced once per (apply_fn, shapes) when apply_fn is
    hashable (tracing a Flax apply costs ≈ 60 ms, a fifth of a short training run)."""
    try:
        hash(apply_fn)
    except TypeError:
        return jax.eval_shape(functools.partial(_first_seed_output, apply_fn), params0, x)
    return _first_seed_output_jit.eval_shape(apply_fn, params0, x)


def _first_seed_output(apply_fn, params, x):
    return apply_fn(jax.tree.map(lambda a: a[0], params), x)


_first_seed_output_jit = jax.jit(_first_seed_output, static_argnums=0)


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
