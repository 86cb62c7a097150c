"""The explicit training state of :func:`ntkpipe.core.train.train` (checkpoint and resume)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.core.sharpness import initial_vector
from ntkpipe.errors import ConfigError

RECORD_FIELDS = (
    "fx_train",
    "fx_test",
    "loss_train",
    "loss_test",
    "acc_train",
    "acc_test",
    "weight_change",
)


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
    power: Any = None  # [seed, n_train, k]: the power iteration's last top eigenvector, or None


def state_to_arrays(state: TrainState) -> dict[str, np.ndarray]:
    """A :class:`TrainState` as flat NumPy arrays named by their pytree path (for checkpoints).

    The inverse is done by :func:`train` itself: pass the dict back as ``state=`` with the
    same arguments, and it is matched leaf by leaf against the fresh state of that run.
    """
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def initial_state(programs, params0, key, record_steps, data) -> TrainState:
    n_seeds = count_seeds(params0)
    params0 = jax.tree.map(jnp.asarray, params0)
    shapes = jax.eval_shape(programs.evaluate, params0, params0, *data)
    n_rec = len(record_steps)
    records = {
        name: np.full((n_seeds, n_rec, *shapes[name].shape[1:]), np.nan, shapes[name].dtype)
        for name in RECORD_FIELDS
    }
    power = None
    if programs.sharpness is not None:
        n, k = shapes["fx_train"].shape[1:]
        dtype = shapes["fx_train"].dtype
        records["sharpness"] = np.full((n_seeds, n_rec), np.nan, dtype)
        if programs.exact_sharpness is None:  # the power iteration's cold start
            power = jnp.asarray(np.broadcast_to(initial_vector(n, k, dtype), (n_seeds, n, k)))
    return TrainState(
        step=0,
        n_records=0,
        params=params0,
        opt_state=programs.init_opt(params0),
        key=_seed_keys(key, n_seeds),
        diverged_step=np.full((n_seeds,), -1, np.int64),
        records=records,
        power=power,
    )


def resume_state(state, fresh: TrainState, record_steps, steps: int) -> TrainState:
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


def _seed_keys(key, n_seeds: int) -> jax.Array:
    """uint32 [seed, 2] raw key data: one key split per seed, or the given per-seed keys."""
    if key is None:
        return np.zeros((n_seeds, 2), np.uint32)  # unused by full-batch optimizers
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
    if key.ndim == 0:
        key = jax.random.split(key, n_seeds)
    return jax.random.key_data(key)


def count_seeds(params0) -> int:
    return np.shape(jax.tree.leaves(params0)[0])[0]
