"""Times ntkpipe's ``kernels.empirical_ntk`` against neural-tangents 0.6.5, side by side.

Network: ReLU MLP with ``--depth`` hidden layers of ``--width`` units and a Dense readout
(default 3 × 1024, σ_w² = 2, σ_b = 0.1, NTK parameterization), inputs [N, d_in] (default
N = 256, d_in = 784), outputs k ∈ ``--out-dims`` (default 1 and 10), float32, Θ̂(x, x) traced over
outputs, i.e. [N, N].

* ours: ``kernels.empirical_ntk(net.apply, params, x)`` wrapped in ``jax.jit``, in this process
  (current jax), warm (compiled before timing).
* neural-tangents 0.6.5 (jax 0.4.25, its own venv): ``jax.jit(nt.empirical_ntk_fn(apply,
  trace_axes=(-1,), vmap_axes=0, implementation=IMPL))`` for JACOBIAN_CONTRACTION,
  NTK_VECTOR_PRODUCTS, STRUCTURED_DERIVATIVES, on a stax net with the SAME weights, in a
  subprocess (benchmarks/nt_side.py). Implementations whose per-example Jacobians would exceed
  ``--nt-max-gb`` are skipped (JACOBIAN_CONTRACTION holds N·k·P floats twice).

The two sides never run at the same time: each round runs ours, then the subprocess; every
time reported is the median over all rounds × repeats. JACOBIAN_CONTRACTION and
NTK_VECTOR_PRODUCTS, which take seconds to minutes per call here, are timed in the first round
only, ``--slow-repeats`` times (default 1, after a warm-up call). Both sides are pinned to the
same CPUs (``--cpus``, default: this process' affinity; the subprocess inherits it, so
neither side can run on other cores).

FLOP rate of ours. FLOPs are counted analytically for the layer-structured formula
Θ̂ = Σ_l (a_l·a_l' s_l² + s_b²) ⊙ (δ_l·δ_l'), counting 2mnp per [m, n]×[n, p] product:
  forward, inputs of every layer:                   2N(d_in·w + (L−1)·w²)
  backward, k signals below the top hidden layer:   2N·k·w²·(L−1)
  Grams of layer inputs:                            2N²(d_in + L·w)
  Grams of signals (top hidden layer compressed):   2N²·w·(k·(L−1) + 1)
(elementwise work is left out, so the rate is a lower bound of the work done). It is compared
with the rate of a plain jitted fp32 ``jnp.dot`` on this machine: the best of square 1024³,
2048³ and of the net's own layer product [N·k, w] × [w, w].

Usage (see benchmarks/README.md)::

    nice python benchmarks/bench_empirical_ntk.py [--rounds 3] [--repeats 5] [--cpus 0,1]
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

NT_IMPLS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES")


def main() -> None:
    args = _parse()
    cpus = _common.pin_cpus(args.cpus)
    import jax

    jax.config.update("jax_enable_x64", False)
    print(f"# ntkpipe on jax {jax.__version__}; CPUs {cpus}; {_common.load_note()}")
    results = {}
    for k in args.out_dims:
        results[k] = _bench_out_dim(args, k)
    matmul = _matmul_rates(args)
    _print_table(args, results, matmul)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "matmul": matmul}, indent=1))


def flops_empirical_ntk(n: int, d_in: int, width: int, depth: int, k: int) -> float:
    """Analytic FLOPs of Θ̂(x, x) [n, n] traced over k outputs (see the module docstring)."""
    w, layers = width, depth
    forward = 2 * n * (d_in * w + (layers - 1) * w * w)
    backward = 2 * n * k * w * w * (layers - 1)
    input_grams = 2 * n * n * (d_in + layers * w)
    signal_grams = 2 * n * n * w * (k * (layers - 1) + 1)
    return float(forward + backward + input_grams + signal_grams)


def _bench_out_dim(args, k: int) -> dict:
    import jax

    from ntkpipe.core import kernels, models

    net = models.mlp(args.depth, args.width, k, "relu", "ntk", w_std=2**0.5, b_std=0.1)
    x = jax.random.normal(jax.random.PRNGKey(0), (args.n, args.d_in), np.float32)
    params = net.init(jax.random.PRNGKey(1), x)
    ours_fn = jax.jit(lambda p, xx: kernels.empirical_ntk(net.apply, p, xx))
    arrays = _nt_arrays(params, x, args.depth)
    impls = [i for i in args.nt_impls if _nt_fits(args, i, k, arrays)]
    fast = [i for i in impls if i == "STRUCTURED_DERIVATIVES"]
    slow = [i for i in impls if i not in fast]
    ours_s, nt_s = [], {i: [] for i in impls}
    ours_k, nt_k = None, {}
    for r in range(args.rounds):
        ours_s += _common.time_calls(lambda: ours_fn(params, x), args.repeats, args.clock)
        ours_k = np.asarray(ours_fn(params, x))
        if args.skip_nt or not impls:
            continue
        # the slow implementations are timed in the first round only, --slow-repeats times
        tasks = [_nt_task(args, k, "fast", fast, args.repeats)] if fast else []
        if r == 0 and slow:
            tasks.append(_nt_task(args, k, "slow", slow, args.slow_repeats))
        nt_arrays = {f"{t['name']}/{key}": v for t in tasks for key, v in arrays.items()}
        out, scalars = _common.run_nt({"x64": False, "tasks": tasks}, nt_arrays)
        for t in tasks:
            for i in t["implementations"]:
                nt_s[i] += scalars[t["name"]][i]
                nt_k[i] = out[f"{t['name']}/ntk_{i}"]
        print(f"# k={k} round {r + 1}/{args.rounds}: {_common.load_note()}", flush=True)
    diffs = {i: _common.max_rel_diff(ours_k, ref) for i, ref in nt_k.items()}
    return {
        "ours": ours_s,
        "nt": nt_s,
        "skipped": [i for i in args.nt_impls if i not in impls],
        "max_rel_diff": diffs,
        "flops": flops_empirical_ntk(args.n, args.d_in, args.width, args.depth, k),
    }


def _nt_arrays(params, x, depth: int) -> dict:
    """ntkpipe params {"params": {"dense_i": {"kernel", "bias"}}} → stax (W_i, b_i), as-is.

    Both store the NTK-parameterized N(0, 1) leaves ω (W = σ_w/√n_in · ω) and β (b = σ_b · β).
    """
    arrays = {"x1": np.asarray(x)}
    for i in range(depth + 1):
        layer = params["params"][f"dense_{i}"]
        arrays[f"W_{i}"] = np.asarray(layer["kernel"])
        if "bias" in layer:
            arrays[f"b_{i}"] = np.asarray(layer["bias"])
    return arrays


def _nt_task(args, k: int, name: str, impls: list[str], repeats: int) -> dict:
    return dict(
        name=name, kind="empirical_ntk", depth=args.depth, width=args.width, out_dim=k,
        activation="relu", parameterization="ntk", w_std=2**0.5, b_std=0.1,
        implementations=impls, repeats=repeats, clock=args.clock,
    )  # fmt: skip


def _nt_fits(args, impl: str, k: int, arrays: dict) -> bool:
    if impl != "JACOBIAN_CONTRACTION":
        return True
    n_params = sum(v.size for key, v in arrays.items() if key != "x1")
    gb = 2 * args.n * k * n_params * 4 / 1e9
    if gb > args.nt_max_gb:
        print(f"# k={k}: skipping NT {impl}: its Jacobians need ~{gb:.0f} GB > --nt-max-gb")
        return False
    return True


def _matmul_rates(args) -> dict:
    """GFLOP/s of a jitted fp32 jnp.dot for a few shapes (median of rounds × repeats)."""
    import jax
    import jax.numpy as jnp

    dot = jax.jit(jnp.dot)
    shapes = {"1024^3": (1024, 1024, 1024), "2048^3": (2048, 2048, 2048)}
    for k in args.out_dims:
        shapes[f"[{args.n * k},{args.width}]x[{args.width},{args.width}]"] = (
            args.n * k, args.width, args.width,
        )  # fmt: skip
    rates = {}
    for name, (m, n, p) in shapes.items():
        a = jax.random.normal(jax.random.PRNGKey(2), (m, n), jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(3), (n, p), jnp.float32)
        seconds = _common.time_calls(
            lambda a=a, b=b: dot(a, b), args.repeats * args.rounds, args.clock
        )
        rates[name] = 2 * m * n * p / _common.median(seconds) / 1e9
    return rates


def _print_table(args, results: dict, matmul: dict) -> None:
    ref_name = max(matmul, key=matmul.get)
    print(
        f"\nReLU MLP {args.depth}x{args.width}, d_in={args.d_in}, N={args.n}, float32, "
        f"median of {args.rounds} rounds x {args.repeats} repeats, {args.clock} clock"
    )
    print(f"{'k':>3} {'implementation':<34} {'s/call':>9} {'GFLOP/s':>8} {'max rel diff':>13}")
    for k, res in results.items():
        ours = _common.median(res["ours"])
        rate = res["flops"] / ours / 1e9
        print(f"{k:>3} {'ntkpipe kernels.empirical_ntk':<34} {ours:9.4f} {rate:8.1f}")
        for impl, secs in res["nt"].items():
            diff = res["max_rel_diff"].get(impl, float("nan"))
            print(f"{k:>3} {'nt ' + impl:<34} {_common.median(secs):9.4f} {'':>8} {diff:13.2e}")
        for impl in res["skipped"]:
            print(f"{k:>3} {'nt ' + impl:<34} {'skipped (memory)':>18}")
        timed = {i: _common.median(s) for i, s in res["nt"].items() if s}
        if timed:
            best = min(timed, key=timed.get)
            ratio = ours / timed[best]
            print(f"    ratio ours / nt fastest ({best}) = {ratio:.3f} (target <= 0.5)")
        print(
            f"    FLOPs {res['flops'] / 1e9:.2f} G (analytic); ours {rate:.1f} GFLOP/s = "
            f"{100 * rate / matmul[ref_name]:.0f}% of matmul {ref_name} (target >= 60%)"
        )
    print("plain jitted fp32 jnp.dot: " + ", ".join(f"{k} {v:.1f}" for k, v in matmul.items())
          + " GFLOP/s")  # fmt: skip


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256, help="number of inputs N (default 256)")
    p.add_argument("--d-in", type=int, default=784)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=3, help="hidden layers L (default 3)")
    p.add_argument("--out-dims", type=int, nargs="+", default=[1, 10])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds ours / NT")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per round and side")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="see README.md")
    p.add_argument("--cpus", default=None, help="CPU list for both sides, e.g. 0,1 (taskset)")
    p.add_argument("--nt-impls", nargs="+", default=list(NT_IMPLS), choices=NT_IMPLS)
    p.add_argument(
        "--slow-repeats", type=int, default=1,
        help="timed calls of JACOBIAN_CONTRACTION / NTK_VECTOR_PRODUCTS (first round only)",
    )  # fmt: skip
    p.add_argument("--nt-max-gb", type=float, default=8.0, help="skip NT impls needing more")
    p.add_argument("--skip-nt", action="store_true", help="time only ntkpipe")
    p.add_argument("--json", default=None, help="also write all timings to this JSON file")
    return p.parse_args()


if __name__ == "__main__":
    main()
