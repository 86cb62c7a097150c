"""Times ``dynamics.gradient_descent_mse`` against ``nt.predict.gradient_descent_mse``.

Problem: N = ``--n`` training points (default 1000), ``--n-test`` test points (default 500),
k = ``--out`` outputs (default 10), predictions at ``--n-times`` times (default 50,
t = 0 and log-spaced up to 1e4). The kernel is a random PSD matrix: the one-hidden-layer ReLU
NTK (arc-cosine closed form, computed here in numpy, independent of both libraries) of Gaussian
inputs with d = 64, so it is dense and positive definite. Targets, f₀ on train and test:
Gaussian.

What is timed, on both sides, as a user calls it (no outer jit): building the predictor (the
factory: one eigendecomposition) plus predicting train and test outputs at all times,
``predict(t, fx_train_0, fx_test_0, k_test_train)``; warm (one untimed call first); the median
over ``--rounds`` alternating rounds × ``--repeats`` calls. The neural-tangents side runs in its
own environment as a subprocess (benchmarks/nt_side.py), never at the same time as ours.
Both sides are pinned to the same CPUs (``--cpus``) and use the same dtype (``--dtype``).

Prints max |ours − nt| of the predictions (relative to max |nt|) and the ratio of times
(target ≤ 1.0).

Usage (see benchmarks/README.md)::

    nice python benchmarks/bench_gd_mse.py [--dtype float64] [--rounds 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402
import numpy as np  # noqa: E402


def main() -> None:
    args = _parse()
    cpus = _common.pin_cpus(args.cpus)
    import jax

    jax.config.update("jax_enable_x64", args.dtype == "float64")
    print(f"# ntkpipe on jax {jax.__version__}; CPUs {cpus}; {_common.load_note()}")
    arrays = problem(args.n, args.n_test, args.out, args.n_times, args.dtype, seed=0)
    ours_fn = _ours(arrays, args.learning_rate)
    task = dict(
        name="gd", kind="gd_mse", learning_rate=args.learning_rate, repeats=args.repeats,
        clock=args.clock,
    )  # fmt: skip
    spec = {"x64": args.dtype == "float64", "tasks": [task]}
    ours_s, nt_s, nt_out = [], [], None
    for r in range(args.rounds):
        ours_s += _common.time_calls(ours_fn, args.repeats, args.clock)
        if not args.skip_nt:
            nt_out, scalars = _common.run_nt(spec, {f"gd/{k}": v for k, v in arrays.items()})
            nt_s += scalars["gd"]["seconds"]
        print(f"# round {r + 1}/{args.rounds}: {_common.load_note()}", flush=True)
    fx_train_t, fx_test_t = (np.asarray(a) for a in ours_fn())
    _report(args, ours_s, nt_s, fx_train_t, fx_test_t, nt_out)


def problem(n: int, n_test: int, k: int, n_times: int, dtype: str, seed: int) -> dict:
    """Kernel, targets, f₀ and times of the benchmark (numpy, reproducible from seed)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + n_test, 64))
    kern = relu_ntk(x, x)
    arrays = {
        "k_train_train": kern[:n, :n],
        "k_test_train": kern[n:, :n],
        "y_train": rng.standard_normal((n, k)),
        "fx_train_0": rng.standard_normal((n, k)),
        "fx_test_0": rng.standard_normal((n_test, k)),
        "t": np.concatenate([[0.0], np.logspace(-2, 4, n_times - 1)]),
    }
    return {key: v.astype(dtype) for key, v in arrays.items()}


def relu_ntk(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Analytic NTK [n1, n2] of a ReLU net with one hidden layer (a dense PSD test kernel).

    NTK parameterization, no bias, σ_w² = 2 for the hidden layer and 1 for the readout.

    With q = x·x'/d: K₁ = (1/π)·√(q₁₁q₂₂)·(sin θ + (π − θ) cos θ), Θ = K₁ + q · (π − θ)/π.
    """
    d = x1.shape[1]
    q12 = x1 @ x2.T / d
    q1, q2 = np.sum(x1**2, 1) / d, np.sum(x2**2, 1) / d
    norms = np.sqrt(np.outer(q1, q2))
    cos = np.clip(q12 / norms, -1.0, 1.0)
    theta = np.arccos(cos)
    nngp = norms * (np.sin(theta) + (np.pi - theta) * cos) / np.pi
    return nngp + q12 * (np.pi - theta) / np.pi


def _ours(arrays: dict, learning_rate: float):
    import jax.numpy as jnp

    from ntkpipe.core import dynamics

    x = {k: jnp.asarray(v) for k, v in arrays.items()}

    def factory_and_predict():
        predict = dynamics.gradient_descent_mse(x["k_train_train"], x["y_train"], learning_rate)
        return predict(x["t"], x["fx_train_0"], x["fx_test_0"], x["k_test_train"])

    return factory_and_predict


def _report(args, ours_s, nt_s, fx_train_t, fx_test_t, nt_out) -> None:
    ours, nt = _common.median(ours_s), _common.median(nt_s)
    print(
        f"\ngradient_descent_mse: N={args.n}, n_test={args.n_test}, k={args.out}, "
        f"{args.n_times} times, {args.dtype}, median of {args.rounds} rounds x {args.repeats}, "
        f"{args.clock} clock"
    )
    print(f"  ntkpipe dynamics.gradient_descent_mse      {ours:9.4f} s (factory + predict)")
    result = {"ours_s": ours_s, "nt_s": nt_s}
    if nt_out is not None:
        d_train = _common.max_rel_diff(fx_train_t, nt_out["gd/fx_train_t"])
        d_test = _common.max_rel_diff(fx_test_t, nt_out["gd/fx_test_t"])
        a_train = float(np.max(np.abs(fx_train_t - nt_out["gd/fx_train_t"])))
        a_test = float(np.max(np.abs(fx_test_t - nt_out["gd/fx_test_t"])))
        print(f"  nt.predict.gradient_descent_mse            {nt:9.4f} s (factory + predict)")
        print(f"  ratio ours / nt = {ours / nt:.3f} (target <= 1.0)")
        print(f"  max abs diff: train {a_train:.2e}, test {a_test:.2e}")
        print(f"  max rel diff (/ max|nt|): train {d_train:.2e}, test {d_test:.2e}")
        result.update(max_abs_diff_train=a_train, max_abs_diff_test=a_test)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="training points N (default 1000)")
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--out", type=int, default=10, help="outputs k (default 10)")
    p.add_argument("--n-times", type=int, default=50)
    p.add_argument("--learning-rate", type=float, default=1.0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="see README.md")
    p.add_argument("--cpus", default=None, help="CPU list for both sides, e.g. 0,1")
    p.add_argument("--skip-nt", action="store_true")
    p.add_argument("--json", default=None)
    return p.parse_args()


if __name__ == "__main__":
    main()
