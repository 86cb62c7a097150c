"""`train.train` against a bare jitted optax loop with the same records (issue 14, item 1).

The bare loop is what a user would write by hand for one run: one jitted program,
``lax.scan`` over the record segments with a ``lax.fori_loop`` of optax steps inside each, the
records (train/test outputs, losses, accuracies, per-layer ‖W_t − W_0‖_F/‖W_0‖_F) evaluated at
the end of every segment, and nothing else: no divergence check, no host round trip, no
checkpoint hook. With one seed it trains the parameters as they are; with several it vmaps the
step over the seed axis. ``train.train`` is timed as a user calls it (no outer jit), with its
checks, records, divergence detection and ``on_segment`` unused.

Both sides run in this process, one after the other in interleaved rounds, after one warm-up
call each (compilation excluded), and are timed in CPU seconds of the process
(``time.process_time``) with XLA pinned to one thread (set before JAX starts, below) and the
process pinned to one core (``--cpus``, default 0): other jobs on a shared machine do not
inflate the figures. Printed: the fastest round per side (interference only adds time) and their
ratio (target ≤ 1.10),
and the largest difference of the recorded training outputs (the two sides compute the same
trajectory).

Default shapes: an MLP 2×512 ReLU (NTK parameterization, σ_w = 1.4, σ_b = 0.1), d_in = 32,
n_train = n_test = 128, 300 steps, 12 log-spaced record steps, float32; cases: the real and the
linearized network × (gd, mse), (momentum, xent), (sgd B = 32, mse) × seeds 1 and 4 × out 1
and 10. ``--quick`` keeps (gd, mse) only. About 6 minutes on one core (``--quick``: 2).

    python benchmarks/bench_train.py [--quick] [--rounds 2] [--steps 300] [--cpus 0]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import pin_cpus  # noqa: E402

RECIPES = {  # name: (optimizer, loss, batch_size)
    "gd-mse": ("gd", "mse", None),
    "momentum-xent": ("momentum", "xent", None),
    "sgd-mse": ("sgd", "mse", 32),
}


def main() -> None:
    args = _parse()
    cpus = pin_cpus(args.cpus)
    import jax

    recipes = ["gd-mse"] if args.quick else args.recipes
    print(
        f"train.train vs bare loop: MLP {args.depth}×{args.width} relu, d_in {args.d_in}, "
        f"n {args.n}, {args.steps} steps, {args.records} records, float32, "
        f"{args.rounds} rounds, CPU s, 1 XLA thread, cpus {cpus}, jax {jax.__version__}"
    )
    print(f"{'case':<34} {'ours s':>8} {'bare s':>8} {'ratio':>6} {'max |Δf|':>9}")
    rows = []
    cases = itertools.product(("real", "linearized"), recipes, args.seeds, args.out_dims)
    for model, recipe, seeds, out in cases:
        row = _case(args, model, recipe, seeds, out)
        rows.append(row)
        print(
            f"{row['case']:<34} {row['ours']:8.3f} {row['bare']:8.3f} {row['ratio']:6.3f} "
            f"{row['max_diff']:9.2e}",
            flush=True,
        )
    worst = max(rows, key=lambda r: r["ratio"])
    print(f"worst ratio {worst['ratio']:.3f} ({worst['case']}); target ≤ 1.10")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


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

    def ours():
        traj = train.train(net.apply, params0, x, y, x_test, y_test, **kwargs)
        return traj.fx_train

    bare_run = _bare_loop(net.apply, params0, x, y, x_test, y_test, keys, **kwargs)
    times = {"ours": [], "bare": []}
    results = {"ours": ours(), "bare": bare_run()}  # warm-up: compile both
    for _ in range(args.rounds):
        for side, fn in (("ours", ours), ("bare", bare_run)):
            start = time.process_time()
            jax.block_until_ready(fn())
            times[side].append(time.process_time() - start)
    diff = float(np.max(np.abs(np.asarray(results["ours"]) - np.asarray(results["bare"]))))
    ours_s, bare_s = min(times["ours"]), min(times["bare"])  # interference only adds time
    case = f"{model} {recipe} seeds {seeds} out {out}"
    return dict(case=case, ours=ours_s, bare=bare_s, ratio=ours_s / bare_s, max_diff=diff)


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
    parser.add_argument("--quick", action="store_true", help="(gd, mse) only")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--rounds", type=int, default=2)
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
