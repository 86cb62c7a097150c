"""Times the empirical NTK of conv nets: ntkpipe against neural-tangents 0.6.5 and plain jacrev.

Networks (NTK parameterization, ReLU, σ_w² = 2, σ_b = 0.1, float32, inputs [N, H, W, 3]):

* ``cnn``: ``models.cnn(depth=3, width=64, ...)``, 3×3 SAME convolutions, global average
  pooling, Dense readout; 16×16 inputs, N = 64 (``--cnn-n``).
* ``wrn``: ``models.wrn(block_size=1, channels=32, ...)``, the Table S1 Wide ResNet (stem, three
  groups of one pre-activation block, strides 1, 2, 2); 16×16 inputs, N = 64 (``--wrn-n``).

Outputs k ∈ ``--out-dims`` (default 10 and 1); Θ̂(x, x) traced over outputs, [N, N].

* ours: ``jax.jit(lambda p, x: kernels.empirical_ntk(net.apply, p, x))``, warm.
* jacrev: the plain baseline on the same JAX, written here: per-example Jacobians
  ``vmap(jacrev(f))`` contracted leaf by leaf (what ``_jacobian_ntk`` does for any apply).
* neural-tangents (jax 0.4.25, its own venv, this file run as a subprocess with ``--nt-side``):
  ``jax.jit(nt.empirical_ntk_fn(apply, trace_axes=(-1,), vmap_axes=0, implementation=IMPL))``
  on the ``stax`` network with the SAME weights, for every IMPL of ``--nt-impls``.

Rounds alternate ours + jacrev, then the subprocess; every time is the median over rounds ×
repeats, CPU seconds of one thread by default (``XLA_FLAGS`` single-threaded and the process
pinned to ``--cpus``, default 0, before JAX starts; the subprocess inherits both);
NTK_VECTOR_PRODUCTS (20–70 s a call) is timed in the first round only (``--slow-repeats``). Printed:
seconds per call, the ratios ours / nt-fastest and ours / jacrev, and the max relative
difference of every kernel from ours (a check of the benchmark itself).

Usage (see benchmarks/README.md)::

    python benchmarks/bench_conv_ntk.py [--nets cnn wrn] [--out-dims 10 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NT_IMPLS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES")
NETS = {
    "cnn": dict(kind="cnn", depth=3, width=64, hw=16),
    "wrn": dict(kind="wrn", blocks=1, width=32, hw=16),
}
W_STD, B_STD = 2**0.5, 0.1
SLOW = ("NTK_VECTOR_PRODUCTS",)  # 20-70 s a call here: timed in the first round only


def main() -> None:
    args = _parse()
    if args.nt_side:
        return _nt_main(*args.nt_side)
    os.environ.setdefault("XLA_FLAGS", _ONE_THREAD)
    import _common

    cpus = _common.pin_cpus(args.cpus)
    import jax

    print(f"# ntkpipe on jax {jax.__version__}; CPUs {cpus}; XLA_FLAGS={os.environ['XLA_FLAGS']}")
    rows = []
    for name in args.nets:
        for k in args.out_dims:
            rows.append((name, k, _bench(args, name, k, _common)))
            _print_rows(args, rows[-1:], header=len(rows) == 1)
    print("\nsummary")
    _print_rows(args, rows, header=True)
    if args.json:
        Path(args.json).write_text(json.dumps([list(r) for r in rows], indent=1))


_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _network(name: str, k: int):
    from ntkpipe.core import models

    cfg = NETS[name]
    common = dict(activation="relu", parameterization="ntk", w_std=W_STD, b_std=B_STD)
    if cfg["kind"] == "cnn":
        return models.cnn(cfg["depth"], cfg["width"], k, **common)
    return models.wrn(cfg["blocks"], cfg["width"], k, **common)


def _leaf_order(name: str, k: int) -> list[tuple[str, ...]]:
    """Module paths of ours in the order of the stax network's parameter leaves."""
    cfg = NETS[name]
    if cfg["kind"] == "cnn":
        return [(f"conv_{i}",) for i in range(cfg["depth"])] + [("readout",)]
    paths = [("conv",)]
    for g in range(3):
        for b in range(cfg["blocks"]):
            block = f"group_{g}_block_{b}"
            paths += [(block, "conv_0"), (block, "conv_1")]
            if g > 0 and b == 0:
                paths.append((block, "shortcut"))
    return paths + [("readout",)]


def jacrev_ntk(apply_fn):
    """The plain baseline: per-example jacrev Jacobians, contracted leaf by leaf, traced."""
    import jax
    import jax.numpy as jnp

    def kernel(params, x):
        jac = jax.vmap(jax.jacrev(lambda p, xi: apply_fn(p, xi[None])[0]), (None, 0))(params, x)
        leaves = jax.tree.leaves(jac)
        n, k = leaves[0].shape[:2]
        return sum(jnp.dot(u.reshape(n, -1), u.reshape(n, -1).T) for u in leaves) / k

    return jax.jit(kernel)


def _bench(args, name: str, k: int, _common) -> dict:
    import jax
    import numpy as np

    from ntkpipe.core import kernels

    n = args.cnn_n if NETS[name]["kind"] == "cnn" else args.wrn_n
    hw = NETS[name]["hw"]
    net = _network(name, k)
    x = jax.random.normal(jax.random.PRNGKey(0), (n, hw, hw, 3), np.float32)
    params = net.init(jax.random.PRNGKey(1), x)
    ours_fn = jax.jit(lambda p, xx: kernels.empirical_ntk(net.apply, p, xx))
    base_fn = jacrev_ntk(net.apply)
    leaves = []
    for path in _leaf_order(name, k):
        layer = params["params"]
        for key in path:
            layer = layer[key]
        leaves += [np.asarray(layer["kernel"])] + ([np.asarray(layer["bias"])] * ("bias" in layer))
    arrays = {"x": np.asarray(x), **{f"leaf_{i}": v for i, v in enumerate(leaves)}}
    ours, base, nt = [], [], {i: [] for i in args.nt_impls}
    kern = {}
    for r in range(args.rounds):
        ours += _common.time_calls(lambda: ours_fn(params, x), args.repeats, "cpu")
        base += _common.time_calls(lambda: base_fn(params, x), args.repeats, "cpu")
        kern["ours"] = np.asarray(ours_fn(params, x))
        kern["jacrev"] = np.asarray(base_fn(params, x))
        impls = [i for i in args.nt_impls if r == 0 or i not in SLOW]  # SLOW: first round only
        if impls:
            repeats = {i: args.slow_repeats if i in SLOW else args.repeats for i in impls}
            spec = dict(net=NETS[name], out_dim=k, impls=impls, repeats=repeats)
            out, secs = _run_nt_side(spec, arrays)
            for i in impls:
                nt[i] += secs[i]
                kern[i] = out[i]
        print(f"# {name} k={k} round {r + 1}/{args.rounds}: {_common.load_note()}", flush=True)
    med = _common.median
    return {
        "n": n,
        "ours": med(ours),
        "jacrev": med(base),
        "nt": {i: med(s) for i, s in nt.items()},
        "diff": {key: _common.max_rel_diff(v, kern["ours"]) for key, v in kern.items()},
    }


def _run_nt_side(spec: dict, arrays: dict):
    import numpy as np

    python = os.environ.get("NTKPIPE_NT_PYTHON", "/work/venvs/nt/bin/python")
    with tempfile.TemporaryDirectory(prefix="ntkpipe-conv-") as tmp:
        paths = [str(Path(tmp) / f) for f in ("spec.json", "in.npz", "out.npz")]
        Path(paths[0]).write_text(json.dumps(spec))
        np.savez(paths[1], **arrays)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
        cmd = [python, __file__, "--nt-side", *paths]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-5000:])
            raise RuntimeError(f"the neural-tangents side failed ({proc.returncode})")
        with np.load(paths[2]) as out:
            return {key: out[key] for key in out.files}, json.loads(proc.stdout.splitlines()[-1])


def _print_rows(args, rows, header: bool) -> None:
    if header:
        impls = " ".join(f"{'nt ' + i[:6]:>10}" for i in args.nt_impls)
        print(f"{'net':>4} {'k':>3} {'n':>4} {'ours s':>9} {'jacrev s':>9} {impls} "
              f"{'ours/nt-best':>12} {'ours/jacrev':>11}  max rel diff vs ours")  # fmt: skip
    for name, k, res in rows:
        nts = " ".join(f"{res['nt'][i]:10.4f}" for i in args.nt_impls)
        best = min(res["nt"].values()) if res["nt"] else float("nan")
        diffs = ", ".join(f"{key} {v:.1e}" for key, v in res["diff"].items() if key != "ours")
        ours = res["ours"]
        print(f"{name:>4} {k:>3} {res['n']:>4} {ours:9.4f} {res['jacrev']:9.4f} {nts} "
              f"{ours / best:12.3f} {ours / res['jacrev']:11.3f}  {diffs}")  # fmt: skip


# ---- the neural-tangents side: runs in /work/venvs/nt only, never imports ntkpipe ----------


def _stax_net(net: dict, k: int):
    from neural_tangents import stax

    conv = dict(padding="SAME", W_std=W_STD, b_std=B_STD, parameterization="ntk")
    c = net["width"]
    if net["kind"] == "cnn":
        layers = [stax.serial(stax.Conv(c, (3, 3), **conv), stax.Relu())] * net["depth"]
        return stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(k, W_STD, B_STD))
    layers = [stax.Conv(c, (3, 3), **conv)]
    for g, stride in enumerate((1, 2, 2)):
        for b in range(net["blocks"]):
            s = (stride, stride) if b == 0 else (1, 1)
            main = [stax.Conv(c, (3, 3), s, **conv), stax.Relu(), stax.Conv(c, (3, 3), **conv)]
            if g > 0 and b == 0:  # o = φ(a); conv_1(φ(conv_0(o))) + shortcut(o)
                short = stax.Conv(c, (1, 1), s, **conv)
                layers.append(stax.serial(stax.Relu(), stax.FanOut(2),
                                          stax.parallel(stax.serial(*main), short),
                                          stax.FanInSum()))  # fmt: skip
            else:  # conv_1(φ(conv_0(φ(a)))) + a
                branch = stax.serial(stax.Relu(), *main)
                layers.append(stax.serial(stax.FanOut(2), stax.parallel(branch, stax.Identity()),
                                          stax.FanInSum()))  # fmt: skip
    layers += [stax.Relu(), stax.GlobalAvgPool(), stax.Dense(k, W_STD, B_STD)]
    return stax.serial(*layers)


def _nt_main(spec_path: str, in_path: str, out_path: str) -> None:
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", False)
    import neural_tangents as nt

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common

    spec = json.loads(Path(spec_path).read_text())
    arrays = dict(np.load(in_path))
    init_fn, apply_fn, _ = _stax_net(spec["net"], spec["out_dim"])
    x = jax.numpy.asarray(arrays["x"])
    _, template = init_fn(jax.random.PRNGKey(0), x.shape)
    flat, tree = jax.tree_util.tree_flatten(template)
    leaves = [np.reshape(arrays[f"leaf_{i}"], t.shape) for i, t in enumerate(flat)]
    assert len(leaves) == len(flat) == sum(key.startswith("leaf_") for key in arrays)
    params = jax.tree_util.tree_unflatten(tree, [jax.numpy.asarray(v) for v in leaves])
    out, secs = {}, {}
    for impl in spec["impls"]:
        fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0,
                                 implementation=getattr(nt.NtkImplementation, impl))  # fmt: skip
        fn = jax.jit(fn)
        out[impl] = np.asarray(fn(x, None, params))
        repeats = spec["repeats"][impl]
        secs[impl] = _common.time_calls(lambda fn=fn: fn(x, None, params), repeats, "cpu")
    np.savez(out_path, **out)
    print(json.dumps(secs))


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--out-dims", type=int, nargs="+", default=[10, 1])
    p.add_argument("--cnn-n", type=int, default=64, help="inputs N of the CNN (default 64)")
    p.add_argument("--wrn-n", type=int, default=64, help="inputs N of the WRN (default 64)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds ours / nt")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per round and side")
    p.add_argument("--slow-repeats", type=int, default=1, help="timed NTK_VECTOR_PRODUCTS calls")
    p.add_argument("--cpus", default="0", help="CPU list for both sides (default 0)")
    p.add_argument("--nt-impls", nargs="*", default=list(NT_IMPLS), choices=NT_IMPLS)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--nt-side", nargs=3, default=None, help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    main()
