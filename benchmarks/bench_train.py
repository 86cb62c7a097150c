"""`train.train` against a bare jitted optax loop with the same records (issue 14, item 1).

The bare loop is what a user would write by hand for one run, written here independently of
ntkpipe (only the network's ``apply`` is shared): one jitted program, ``lax.scan`` over the
record segments with a ``lax.fori_loop`` of optax steps inside each, the records (train/test
outputs, losses, accuracies, per-layer ‖W_t − W_0‖_F/‖W_0‖_F) evaluated at the end of every
segment, and nothing else: no divergence check, no host round trip, no checkpoint hook. With
one seed it trains the parameters as they are; with several it vmaps the whole run over the seed
axis. ``train.train`` is timed as a user calls it (no outer jit, with its checks, records and
divergence detection); ``--hooks`` also times it as the training job calls it, with an
``on_segment`` checkpoint hook and a ``progress`` logger (both cheap Python callables).

Both sides run in this process after one warm-up call each (compilation excluded), in
interleaved rounds (the order alternates from round to round), and are timed in CPU seconds of
the process (``time.process_time``) with XLA pinned to one thread (set before JAX starts,
below) and the process pinned to one core (``--cpus``, default 0): other jobs on a shared
machine do not inflate the figures much. Printed per case: the median time per side and their
difference (Δ ms: with ``--width 8`` the arithmetic is negligible and it is the fixed cost), the
median of the per-round ratios ours / bare (target ≤ 1.10) with their range, and the largest
difference of the recorded training outputs (the two sides compute the same trajectory).

Default shapes: an MLP 2×512 ReLU (NTK parameterization, σ_w = 1.4, σ_b = 0.1), d_in = 32,
n_train = n_test = 128, 300 steps, 12 log-spaced record steps, float32. Cases: the real and the
linearized network × recipes × seeds 1 and 4 × out 1 and 10. Recipes by default (every
optimizer and every loss): (gd, mse), (momentum, xent), (sgd B = 32, xent), (sgd B = 32, mse);
``--full``: every optimizer × loss (6 recipes, 48 cases); ``--quick``: (gd, mse) only. About
1 minute per recipe on one core with 5 rounds.

    python benchmarks/bench_train.py [--quick | --full] [--rounds 5] [--hooks] [--cpus 0]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import load_note, pin_cpus  # noqa: E402

RECIPES = {  # name: (optimizer, loss, batch_size)
    "gd-mse": ("gd", "mse", None),
    "gd-xent": ("gd", "xent", None),
    "momentum-mse": ("momentum", "mse", None),
    "momentum-xent": ("momentum", "xent", None),
    "sgd-mse": ("sgd", "mse", 32),
    "sgd-xent": ("sgd", "xent", 32),
}
DEFAULT_RECIPES = ["gd-mse", "momentum-xent", "sgd-xent", "sgd-mse"]


def main() -> None:
    args = _parse()
    cpus = pin_cpus(args.cpus)
    import jax

    recipes = ["gd-mse"] if args.quick else list(RECIPES) if args.full else args.recipes
    print(
        f"train.train vs bare loop: MLP {args.depth}×{args.width} relu, d_in {args.d_in}, "
        f"n {args.n}, {args.steps} steps, {args.records} records, float32, "
        f"{args.rounds} interleaved rounds, CPU s, 1 XLA thread, cpus {cpus}, "
        f"jax {jax.__version__}, {load_note()}"
    )
    hooks = f" {'hooks s':>8} {'hooks/bare':>16}" if args.hooks else ""
    head = f"{'case':<36} {'ours s':>8} {'bare s':>8} {'Δ ms':>7} {'ratio [range]':>20}"
    print(f"{head}{hooks} {'max |Δf|':>9}")
    rows = []
    cases = itertools.product(args.models, recipes, args.seeds, args.out_dims)
    for model, recipe, seeds, out in cases:
        row = _case(args, model, recipe, seeds, out)
        rows.append(row)
        extra = f" {row['hooks']:8.3f} {_ratio_text(row['hooks_ratios']):>16}" if args.hooks else ""
        print(
            f"{row['case']:<36} {row['ours']:8.3f} {row['bare']:8.3f} "
            f"{1e3 * (row['ours'] - row['bare']):7.2f} "
            f"{_ratio_text(row['ratios']):>20}{extra} {row['max_diff']:9.2e}",
            flush=True,
        )
    worst = max(rows, key=lambda r: r["ratio"])
    print(
        f"worst median ratio {worst['ratio']:.3f} ({worst['case']}); target ≤ 1.10; {load_note()}"
    )
    if args.hooks:
        worst = max(rows, key=lambda r: r["hooks_ratio"])
        print(f"worst median ratio with hooks {worst['hooks_ratio']:.3f} ({worst['case']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def _ratio_text(ratios) -> str:
    return f"{statistics.median(ratios):.3f} [{min(ratios):.2f}–{max(ratios):.2f}]"


def _case(args, model: str, recipe: str, seeds: int, out: int) -> dict:
    import jax
    import numpy as np

    from ntkpipe.core import models, train

    optimizer, loss, batch_size = RECIPES[recipe]
    net = models.mlp(args.depth, args.width, out, "relu", w_std=1.4, b_std=0.1)
    kx, ky, kt, kp, kb = jax.random.split(jax.random.PRNGKey(0), 5)
    x = jax.random.normal(kx, (args.n, args.d_in))
    x_test = jax.random.normal(kt, (args.n, args.d_in))
    y = _targets(ky, args.n, out, loss)
    y_test = _targets(kt, args.n, out, loss)
    params0 = jax.vmap(net.init, in_axes=(0, None))(jax.random.split(kp, seeds), x)
    keys = jax.random.split(kb, seeds)
    record_steps = train.log_record_steps(args.steps, args.records)
    lr = 0.5 if loss == "mse" else 1.0
    kwargs = dict(loss=loss, optimizer=optimizer, learning_rate=lr, steps=args.steps)
    kwargs.update(batch_size=batch_size, record_steps=record_steps, linearized=model != "real")
    kwargs.update(key=keys if batch_size else None)
    saved = []

    def ours():
        return train.train(net.apply, params0, x, y, x_test, y_test, **kwargs).fx_train

    def with_hooks():  # as jobs/train.py calls it: a checkpoint hook and a progress logger
        def on_segment(state):
            if state.step % 1000 == 0:  # the job saves every checkpoint_every steps
                saved.append(state.step)

        return train.train(
            net.apply,
            params0,
            x,
            y,
            x_test,
            y_test,
            on_segment=on_segment,
            progress=lambda *a: None,
            **kwargs,
        ).fx_train

    sides = {
        "ours": ours,
        "bare": _bare_loop(net.apply, params0, x, y, x_test, y_test, keys, **kwargs),
    }
    if args.hooks:
        sides["hooks"] = with_hooks
    results = {side: fn() for side, fn in sides.items()}  # warm-up: compile
    times = {side: [] for side in sides}
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
        for side in order:
            start = time.process_time()
            jax.block_until_ready(sides[side]())
            times[side].append(time.process_time() - start)
    diff = max(
        float(np.max(np.abs(np.asarray(results[side]) - np.asarray(results["bare"]))))
        for side in sides
    )
    row = dict(case=f"{model} {recipe} seeds {seeds} out {out}", max_diff=diff, times=times)
    for side in sides:
        row[side] = statistics.median(times[side])
    for side in set(sides) - {"bare"}:
        ratios = [a / b for a, b in zip(times[side], times["bare"], strict=True)]
        prefix = "" if side == "ours" else f"{side}_"
        row[f"{prefix}ratios"], row[f"{prefix}ratio"] = ratios, statistics.median(ratios)
    return row


def _targets(key, n: int, out: int, loss: str):
    import jax

    if out == 1:
        return jax.numpy.sign(jax.random.normal(key, (n, 1)))
    return jax.nn.one_hot(jax.random.randint(key, (n,), 0, out), out)


def _bare_loop(apply_fn, params0, x, y, x_test, y_test, keys, **kw):
    """The hand-written baseline: one jitted scan over segments of fori_loop optax steps."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    momentum = 0.9 if kw["optimizer"] == "momentum" else None
    opt = optax.sgd(kw["learning_rate"], momentum=momentum)
    batch = kw["batch_size"]
    seeds = jax.tree.leaves(params0)[0].shape[0]

    def f(p, p0, xs):
        if not kw["linearized"]:
            return apply_fn(p, xs)
        tangent = jax.tree.map(lambda a, b: a - b, p, p0)
        f0, df = jax.jvp(lambda q: apply_fn(q, xs), (p0,), (tangent,))
        return f0 + df

    def loss(fx, ys):
        if kw["loss"] == "mse":
            return 0.5 * jnp.mean((fx - ys) ** 2)
        if fx.shape[-1] == 1:
            return jnp.mean(jax.nn.softplus(-ys * fx))
        return -jnp.mean(jnp.sum(ys * jax.nn.log_softmax(fx), -1))

    def acc(fx, ys):
        if fx.shape[-1] == 1:
            return jnp.mean(fx * ys > 0)
        return jnp.mean(jnp.argmax(fx, -1) == jnp.argmax(ys, -1))

    def step(carry, p0, data):
        p, s, k = carry
        xs, ys = data[0], data[1]
        if batch:
            k, draw = jax.random.split(k)
            idx = jax.random.choice(draw, xs.shape[0], (batch,), replace=False)
            xs, ys = xs[idx], ys[idx]
        g = jax.grad(lambda q: loss(f(q, p0, xs), ys))(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, k

    def record(p, p0, data):
        x, y, x_test, y_test = data
        fx, ft = f(p, p0, x), f(p, p0, x_test)
        ws = [
            jnp.linalg.norm(a["kernel"] - b["kernel"]) / jnp.linalg.norm(b["kernel"])
            for a, b in zip(p["params"].values(), p0["params"].values(), strict=True)
        ]
        return fx, ft, loss(fx, y), loss(ft, y_test), acc(fx, y), acc(ft, y_test), jnp.stack(ws)

    def run_seed(p0, k, data, lengths):
        def segment(carry, n):
            carry = jax.lax.fori_loop(0, n, lambda _, c: step(c, p0, data), carry)
            return carry, record(carry[0], p0, data)

        return jax.lax.scan(segment, (p0, opt.init(p0), k), lengths)[1]

    # every array is an argument (a closed-over constant would be folded at compile time)
    if seeds == 1:
        program = jax.jit(run_seed)
        p0, k = jax.tree.map(lambda a: a[0], params0), keys[0]
    else:
        program = jax.jit(jax.vmap(run_seed, (0, 0, None, None)))
        p0, k = params0, keys
    steps = np.asarray(kw["record_steps"])
    lengths = jnp.asarray(np.diff(steps, prepend=0), jnp.int32)
    data = (x, y, x_test, y_test)
    return lambda: program(p0, k, data, lengths)[0].reshape(seeds, len(steps), *y.shape)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--quick", action="store_true", help="(gd, mse) only")
    grid.add_argument("--full", action="store_true", help="every optimizer × loss")
    grid.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=DEFAULT_RECIPES)
    models = ("real", "linearized")
    parser.add_argument("--models", nargs="+", choices=models, default=list(models))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case")
    parser.add_argument("--hooks", action="store_true", help="also time on_segment + progress")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--records", type=int, default=12)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--d-in", type=int, default=32)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--out-dims", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--cpus", default="0", help="CPU list to pin to ('' for none)")
    parser.add_argument("--json", help="write the rows to this file")
    return parser.parse_args()


if __name__ == "__main__":
    main()
