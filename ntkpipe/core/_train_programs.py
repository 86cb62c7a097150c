"""The jitted programs of :func:`ntkpipe.core.train.train` and the losses, accuracy and weight
change they record (conventions: the :mod:`ntkpipe.core.train` docstring).

Seeds: the programs map a one-seed function over the leading seed axis with ``jax.vmap``; with a
single seed they squeeze that axis instead and run the function as is (:func:`_over_seeds`). A
vmap over an axis of size 1 is not free on CPU: XLA then runs batched matrix products of batch
1, measured 1.4–1.5× slower per step than the plain products on a 2×512 MLP.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntkpipe.core._train_checks import LOSSES
from ntkpipe.core.linearize import linearize
from ntkpipe.core.models import kernel_leaves
from ntkpipe.core.sharpness import SharpnessOptions, exact_top_eigenvalue, top_eigenvalue
from ntkpipe.errors import ConfigError

ApplyFn = Callable[[Any, jax.Array], jax.Array]


class Programs(NamedTuple):
    """Jitted programs of one run; η is an argument, so runs differing in η share them."""

    segment: Callable  # (params, opt_state, key, params0, x, y, η, n_steps) -> first three
    record: Callable  # a segment and its records, see record_program
    evaluate: Callable  # (params, params0, x_train, y_train, x_test, y_test) -> {field: [seed..]}
    init_opt: Callable  # params [seed, ...] -> opt_state [seed, ...]
    learning_rate: float  # η
    sharpness: SharpnessOptions | None = None  # record λ_max(Θ̂_t) (None: not recorded)
    # with sharpness: None when ``record`` finds λ_max by power iteration (a ``power`` vector
    # in the state), else the host function giving it exactly after each record
    # (sharpness.method): (params [seed, ...], params0, x_train, diverged [seed]) -> [seed]
    exact_sharpness: Callable | None = None


def cached(build: Callable, *args) -> Callable:
    """build(*args), cached so that repeated and resumed runs reuse compiled programs."""
    try:
        return _program_cache(build, *args)
    except TypeError:  # an unhashable apply_fn: build without the cache
        return build(*args)


@functools.lru_cache(maxsize=32)
def _program_cache(build: Callable, *args) -> Callable:
    return build(*args)


def segment_program(
    apply_fn, loss, optimizer, momentum, batch_size, linearized, single=False
) -> Callable:
    """n_steps optimizer steps of every seed in one jitted loop (``single``: one seed)."""
    seed_segment = _seed_segment(apply_fn, loss, momentum, batch_size, linearized)
    return jax.jit(_over_seeds(seed_segment, (0, 0, 0, 0, None, None, None, None), single))


def record_program(
    apply_fn,
    loss,
    optimizer,
    momentum,
    batch_size,
    linearized,
    eval_block_size,
    single=False,
    sharpness: SharpnessOptions | None = None,
) -> Callable:
    """One recorded segment of every seed in one jitted program (``single``: one seed).

    ``(params, opt_state, key, power, diverged, params0, x_train, y_train, x_test, y_test, η,
    n_steps)`` ↦ ``((params, opt_state, key, power), packed)``: n_steps optimizer steps, then
    the records of :func:`evaluate_program` at the new θ, NaN for seeds that have diverged
    (``diverged`` bool [seed], or a non-finite training loss now), packed with the new
    divergence flags into one array [seed, size] (:func:`unpack_records`). One dispatch and one
    transfer per segment: a separate step and evaluation, and one transfer per record field,
    cost ≈ 0.5 ms more per segment on CPU, 4–8 % of a 0.15 s SGD run with 12 records.

    With ``sharpness``, the record ``sharpness`` is λ_max(Θ̂_t) of the model trained (Θ̂₀ for
    f_lin) on the training set, by power iteration from ``power`` [seed, n_train, k] (the last
    record's eigenvector: a warm start), which comes back updated; without it ``power`` is None.
    """
    seed_segment = _seed_segment(apply_fn, loss, momentum, batch_size, linearized)
    seed_evaluate = _seed_evaluate(apply_fn, loss, linearized, eval_block_size)
    model = _model(apply_fn, linearized)

    def seed_record(
        params, opt_state, key, power, diverged, params0, x, y, x_test, y_test, lr, n_steps
    ):
        params, opt_state, key = seed_segment(params, opt_state, key, params0, x, y, lr, n_steps)
        records = seed_evaluate(params, params0, x, y, x_test, y_test)
        if sharpness is not None:
            apply_at = lambda p, xx: model(p, params0, xx)  # noqa: E731
            records["sharpness"], power, _ = top_eigenvalue(apply_at, params, x, power, sharpness)
        diverged = diverged | ~jnp.isfinite(records["loss_train"])
        records = {k: jnp.where(diverged, jnp.nan, v) for k, v in records.items()}
        return (params, opt_state, key, power), (records, diverged)

    in_axes = (0, 0, 0, 0, 0, 0, None, None, None, None, None, None)
    mapped = _over_seeds(seed_record, in_axes, single)

    def record(*args):
        carry, (records, diverged) = mapped(*args)
        return carry, _pack(records, diverged)

    return jax.jit(record)


def _pack(records: dict[str, jax.Array], diverged: jax.Array) -> jax.Array:
    """{field: [seed, ...]} and bool [seed] as one array [seed, size], fields in sorted order."""
    dtype = jnp.result_type(*records.values())
    parts = [records[k].reshape(diverged.shape[0], -1).astype(dtype) for k in sorted(records)]
    return jnp.concatenate([*parts, diverged[:, None].astype(dtype)], axis=1)


def unpack_records(packed: np.ndarray, like: dict[str, np.ndarray]):
    """The inverse of the packing of :func:`record_program`, on the host.

    Args:
        packed: [seed, size] from the program.
        like: the record arrays {field: [seed, rec, ...]}, which give the fields and shapes.

    Returns:
        ({field: [seed, ...]}, diverged bool [seed]).
    """
    values, start = {}, 0
    for name in sorted(like):
        shape = like[name].shape[2:]
        size = math.prod(shape)
        values[name] = packed[:, start : start + size].reshape(packed.shape[0], *shape)
        start += size
    return values, packed[:, start] != 0


def exact_sharpness(apply_fn, linearized: bool, k: int, block_size, params, params0, x, diverged):
    """λ_max(Θ̂_t) of every seed, exact (:func:`ntkpipe.core.sharpness.exact_top_eigenvalue`):
    Θ̂ at θ_t of f, or at θ₀ for f_lin (its kernel never moves); NaN for a diverged seed.

    Args:
        apply_fn, linearized: as for :func:`record_program`; k: outputs; block_size: Θ̂'s
            tiles.
        params, params0: θ_t and θ₀ [seed, ...]; x: training inputs [n, ...].
        diverged: bool [seed].

    Returns:
        [seed] float64.
    """
    source = params0 if linearized else params
    values = np.full(len(diverged), np.nan)
    for seed in np.flatnonzero(~np.asarray(diverged)):
        theta = _one_seed(source, seed)
        values[seed] = exact_top_eigenvalue(apply_fn, theta, x, k, block_size)
    return values


@jax.jit
def _one_seed(tree, seed):
    """The leaves of ``tree`` at ``seed`` of their leading axis: one program for the whole tree
    (indexing leaf by leaf compiles two small programs per leaf shape, ≈ 0.2 s a run)."""
    return jax.tree.map(lambda a: a[seed], tree)


def evaluate_program(apply_fn, loss, linearized, eval_block_size, single=False) -> Callable:
    """The recorded quantities of every seed, jitted (``single``: one seed)."""
    seed_evaluate = _seed_evaluate(apply_fn, loss, linearized, eval_block_size)
    return jax.jit(_over_seeds(seed_evaluate, (0, 0, None, None, None, None), single))


def _seed_segment(apply_fn, loss, momentum, batch_size, linearized) -> Callable:
    """(θ, opt_state, key, θ₀, x, y, η, n_steps) ↦ (θ, opt_state, key) after n_steps (one seed)."""
    model, loss_of = _model(apply_fn, linearized), loss_fn(loss)

    def seed_step(params, opt_state, key, params0, x, y, learning_rate):
        if batch_size is not None:
            key, x, y = _minibatch(key, x, y, batch_size)
        grads = jax.grad(lambda p: loss_of(model(p, params0, x), y))(params)
        updates, opt_state = _optimizer(learning_rate, momentum).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key

    def seed_segment(params, opt_state, key, params0, x, y, learning_rate, n_steps):
        def body(_, carry):
            return seed_step(*carry, params0, x, y, learning_rate)

        # a traced trip count: one compilation serves every segment length
        return jax.lax.fori_loop(0, n_steps, body, (params, opt_state, key))

    return seed_segment


def _seed_evaluate(apply_fn, loss, linearized, eval_block_size) -> Callable:
    """(θ, θ₀, x_train, y_train, x_test, y_test) ↦ {record field: value} of one seed."""
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

    return seed_evaluate


def _over_seeds(fn: Callable, in_axes: tuple, single: bool) -> Callable:
    """fn of one seed mapped over the seed axis 0 of the arguments with ``in_axes`` 0.

    ``single``: the seed axis has size 1; it is squeezed on the way in and restored on the way
    out, and fn runs unbatched (no vmap of size 1, see the module docstring).
    """
    if not single:
        return jax.vmap(fn, in_axes=in_axes)

    def one_seed(*args):
        pairs = zip(args, in_axes, strict=True)
        args = [jax.tree.map(lambda a: a[0], a) if ax == 0 else a for a, ax in pairs]
        return jax.tree.map(lambda a: a[None], fn(*args))

    return one_seed


def init_opt_program(momentum) -> Callable:
    return jax.jit(jax.vmap(_optimizer(1.0, momentum).init))  # the state does not depend on η


def _optimizer(learning_rate, momentum: float) -> optax.GradientTransformation:
    """optax.sgd: θ ← θ − η v, v ← β v + ∇L (heavy ball; plain GD/SGD when β = 0)."""
    return optax.sgd(learning_rate, momentum=momentum if momentum > 0 else None)


def _model(apply_fn: ApplyFn, linearized: bool) -> Callable:
    """(θ, θ₀, x) ↦ f(θ, x), or f_lin(θ, x) around θ₀."""
    if not linearized:
        return lambda params, params0, x: apply_fn(params, x)
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
    now, start = kernel_leaves(params), kernel_leaves(params0)
    return jnp.stack([jnp.linalg.norm(now[n] - start[n]) / jnp.linalg.norm(start[n]) for n in now])


def _mse(fx: jax.Array, y: jax.Array) -> jax.Array:
    return 0.5 * jnp.mean((fx - y) ** 2)


def _xent(fx: jax.Array, y: jax.Array) -> jax.Array:
    if fx.shape[-1] == 1:
        return jnp.mean(jax.nn.softplus(-y * fx))
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(fx, axis=-1), axis=-1))
