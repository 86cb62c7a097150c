"""``analytic.kernels`` against neural-tangents' ``stax`` ``kernel_fn`` (issue 14, item 3).

Both sides compute the infinite-width NNGP and NTK, Θ(x, x) and K(x, x) [N, N], of an MLP
with ``--depth`` hidden layers (default 3, σ_w = 1.4, σ_b = 0.1, NTK parameterization) on N
inputs (default 1000, d_in = 32, float32):

* ours: ``analytic.kernels(x, depth=…, activation=…, …)`` as a user calls it (its recursion
  is jitted inside), in this process;
* neural-tangents 0.6.5: ``jax.jit(kernel_fn, static_argnames="get")`` of the same
  ``stax.serial(Dense, φ, …, Dense)``, in its own environment (benchmarks/nt_side.py).

relu and erf are closed forms on both sides (exact to rounding). tanh is integrated
numerically on both sides: ours by the polar Gauss rule of order ``--quad-order`` (default 12;
the library's default is 40), theirs by
``stax.ElementwiseNumerical`` with Gauss–Hermite degree ``--nt-deg``. "Equal accuracy" is
checked, not assumed: both sides' float32 kernels are compared with a float64 reference (ours at
order 128, itself checked against scipy in tests/core/test_analytic.py) on the first
``--ref-n`` inputs, and the table prints both errors next to the ratio.

Timing: interleaved rounds (ours, then the subprocess), ``--repeats`` warm calls per side per
round, median; CPU seconds of each process with XLA on one thread (set below, before JAX
starts) and both processes pinned to ``--cpus`` (default 0).

    python benchmarks/bench_analytic.py [--activations relu erf tanh] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402
import numpy as np  # noqa: E402

W_STD, B_STD = 1.4, 0.1


def main() -> None:
    args = _parse()
    cpus = _common.pin_cpus(args.cpus)
    import jax

    print(
        f"analytic.kernels vs nt.stax kernel_fn (jitted): depth {args.depth}, N {args.n}, "
        f"d_in {args.d_in}, float32, {args.rounds} rounds × {args.repeats} calls, CPU s, "
        f"1 XLA thread, cpus {cpus}, jax {jax.__version__}; {_common.load_note()}"
    )
    header = f"{'activation':<10} {'ours s':>8} {'nt s':>8} {'ratio':>6}"
    print(header + f" {'ours err':>9} {'nt err':>9}  (max rel. error vs float64 reference)")
    for activation in args.activations:
        row = _bench(args, activation)
        print(
            f"{activation:<10} {row['ours']:8.4f} {row['nt']:8.4f} {row['ratio']:6.3f} "
            f"{row['ours_err']:9.2e} {row['nt_err']:9.2e}",
            flush=True,
        )


def _bench(args, activation: str) -> dict:
    import jax

    from ntkpipe.core import analytic

    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (args.n, args.d_in)), np.float32)
    order = dict(quad_order=args.quad_order) if activation == "tanh" else {}

    def ours():
        return analytic.kernels(
            x, depth=args.depth, activation=activation, w_std=W_STD, b_std=B_STD, **order
        )

    task = dict(
        name="k", kind="stax_kernels", depth=args.depth, width=1, out_dim=1,
        activation=activation, parameterization="ntk", w_std=W_STD, b_std=B_STD,
        repeats=args.repeats, clock="cpu", deg=args.nt_deg,
    )  # fmt: skip
    ours_s, nt_s = [], []
    for _ in range(args.rounds):
        ours_s += _common.time_calls(ours, args.repeats, "cpu")
        out, scalars = _common.run_nt({"x64": False, "tasks": [task]}, {"k/x1": x})
        nt_s += scalars["k"]["seconds"]
    mine = [np.asarray(a) for a in ours()]
    theirs = [out["k/nngp"], out["k/ntk"]]
    ref = _reference(x[: args.ref_n], args.depth, activation)
    m = args.ref_n
    ours_err = max(_common.max_rel_diff(a[:m, :m], r) for a, r in zip(mine, ref, strict=True))
    nt_err = max(_common.max_rel_diff(a[:m, :m], r) for a, r in zip(theirs, ref, strict=True))
    o, t = _common.median(ours_s), _common.median(nt_s)
    return dict(ours=o, nt=t, ratio=o / t, ours_err=ours_err, nt_err=nt_err)


def _reference(x, depth: int, activation: str):
    """float64 kernels of the first inputs (quadrature of order 128 for tanh)."""
    import jax

    from ntkpipe.core import analytic

    with jax.enable_x64(True):
        order = dict(quad_order=128) if activation == "tanh" else {}
        kernels = analytic.kernels(
            np.asarray(x, np.float64),
            depth=depth,
            activation=activation,
            w_std=W_STD,
            b_std=B_STD,
            **order,
        )
        return [np.asarray(k) for k in kernels]


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activations", nargs="+", default=["relu", "erf", "tanh"])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--d-in", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quad-order", type=int, default=12, help="ours, tanh (library default: 40)"
    )
    parser.add_argument("--nt-deg", type=int, default=25, help="Gauss–Hermite degree (tanh)")
    parser.add_argument("--ref-n", type=int, default=64)
    parser.add_argument("--cpus", default="0", help="CPU list to pin to ('' for none)")
    return parser.parse_args()


if __name__ == "__main__":
    main()
