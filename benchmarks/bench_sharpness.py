"""The cost of recording the sharpness λ_max(Θ̂_t) during training (issue 20, item 2).

``train.train(..., sharpness=SharpnessOptions(method=m))`` for each method ``m`` of
``--methods`` (``power``: the warm-started power iteration; ``exact``: Θ̂_t formed and
diagonalized; :func:`ntkpipe.core.sharpness.method` picks one of them for ``auto``) against the
same call without sharpness, side by side: all in this process after one warm-up call each
(compilation excluded), in interleaved rounds (the order alternates), timed in CPU seconds of
the process (``time.process_time``) with XLA pinned to one thread and the process to one core
(``--cpus``). Printed per case: the median time per side, the median of the per-round ratios
with / without (target ≤ 1.15 at the paper's Fig. 1 length) with their range, and the final
sharpness (the runs are real: η = 1.0 is below η_crit).

Cases:

- ``fig1``: the paper's Fig. 1 setting at CPU scale: 3 hidden ReLU layers (NTK
  parameterization, σ_w² = 2, σ_b = 0.1), |D| = 128 training examples with k = 10 one-hot
  outputs (the digits shipped with ntkpipe stand in for MNIST: d_in = 64), full-batch GD on
  MSE at η = 1.0, with the record steps of T = 2^17 and 32 records (``log_record_steps``)
  kept up to the prefix ``--prefix`` (default 2^12 = 4096 steps, which holds 22 of the 32
  records: a denser record schedule than the full run's, so the ratio is an upper bound of
  the full length's). ``--steps 131072`` runs the full length.
- ``default``: the default sweep's largest run (config/config.yaml: 2 hidden layers of width
  1024, |D| = 128, k = 1, 512 steps, 24 records, 2 seeds vmapped).

    python benchmarks/bench_sharpness.py [--width 512] [--prefix 4096] [--rounds 3] [--cpus 0]
        [--only fig1|default] [--methods power,exact]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import pin_cpus  # noqa: E402


def _case(name, width, depth, n_train, classes, steps, record_steps, seeds):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ntkpipe import datasets
    from ntkpipe.core import models

    data = datasets.load_dataset(
        dataset="digits", classes=list(range(classes)) if classes > 2 else [3, 8],
        n_train=n_train, n_test=32,
    )  # fmt: skip
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    net = models.mlp(depth, width, y.shape[1], "relu", "ntk", float(np.sqrt(2.0)), 0.1)
    keys = jax.random.split(jax.random.key(0), seeds)
    params0 = jax.vmap(lambda key: net.init(key, x))(keys)
    return dict(name=name, net=net, width=width, params0=params0, x=x, y=y, steps=steps,
                record_steps=record_steps)  # fmt: skip


def _time(case, sharpness):
    from ntkpipe.core import train

    started = time.process_time()
    trajectory = train.train(
        case["net"].apply, case["params0"], case["x"], case["y"], case["x"], case["y"],
        learning_rate=1.0, steps=case["steps"], record_steps=case["record_steps"],
        sharpness=sharpness,
    )  # fmt: skip
    trajectory.loss_train.sum()
    return time.process_time() - started, trajectory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--prefix", type=int, default=4096, help="steps of the Fig. 1 case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpus", default="0")
    parser.add_argument("--only", choices=["fig1", "default"], default=None)
    parser.add_argument(
        "--methods", default="power,exact", help="sharpness methods timed, comma-separated"
    )
    args = parser.parse_args()
    pin_cpus(args.cpus)
    import numpy as np

    from ntkpipe.core import train
    from ntkpipe.core.sharpness import SharpnessOptions
    from ntkpipe.core.sharpness import method as sharpness_method

    full = train.log_record_steps(2**17, 32)
    prefix = full[full <= args.prefix]
    if prefix[-1] != args.prefix:
        prefix = np.append(prefix, args.prefix)
    cases = {
        "fig1": lambda: _case("fig1", args.width, 3, 128, 10, args.prefix, prefix, 1),
        "default": lambda: _case(
            "default", 1024, 2, 128, 1, 512, train.log_record_steps(512, 24), 2
        ),
    }
    for name, build in cases.items():
        if args.only and name != args.only:
            continue
        case = build()
        n, k = case["y"].shape
        methods = [m for m in args.methods.split(",") if m]
        options = {m: SharpnessOptions(method=m) for m in methods}
        _time(case, None)  # warm-up: compile every program
        finals = {m: _time(case, options[m])[1].sharpness[:, -1] for m in methods}
        seconds = {side: [] for side in [None, *methods]}
        for r in range(args.rounds):
            order = [None, *methods] if r % 2 == 0 else [*methods, None][::-1]
            for side in order:
                seconds[side].append(_time(case, None if side is None else options[side])[0])
        without = statistics.median(seconds[None])
        print(
            f"{name}: width {case['width']} n {n} k {k} steps {case['steps']} records "
            f"{len(case['record_steps'])} (auto: {sharpness_method(case['net'].apply, n, k)}): "
            f"without {without:.2f} s",
            flush=True,
        )
        for m in methods:
            ratios = [a / b for a, b in zip(seconds[m], seconds[None], strict=True)]
            print(
                f"  {m}: {statistics.median(seconds[m]):.2f} s, ratio "
                f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}–{max(ratios):.3f}); "
                f"final sharpness {np.asarray(finals[m]).round(3).tolist()}",
                flush=True,
            )


if __name__ == "__main__":
    main()
