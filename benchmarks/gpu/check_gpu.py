"""The GPU check: a small paper config end to end on the GPU, its stores against the CPU's, and
the empirical NTK and a training loop timed on both.

On a machine with an NVIDIA GPU, after ``pip install -e ".[cuda]"``::

    python benchmarks/gpu/check_gpu.py [--configfile config/small/fig3.yaml] [--out DIR]

1. Runs ``snakemake --cores N --configfile CONFIG`` twice, in ``DIR/gpu`` (``JAX_PLATFORMS=cuda``,
   the config's ``resources: {gpu: 1}``: the heavy rules on the GPU, one at a time) and in
   ``DIR/cpu`` (``JAX_PLATFORMS=cpu``), each with its own compilation cache.
2. Compares every store of the two (``results/<name>/runs/**``, ``analytic/**``, ``summary.zarr``):
   each floating array must agree within ``RTOL`` × its largest magnitude on the CPU, plus
   ``ATOL`` (float32). Both runs use full float32 matrix products
   (``JAX_DEFAULT_MATMUL_PRECISION=highest``): the GPU's default TF32 products differ from the
   CPU's by ~1e-3 relative in every product, which training compounds.
3. Times, warm (compiled first), the median of ``--repeats`` calls on each device: the empirical
   NTK Θ̂(x, x) of a ReLU MLP 3 × 2048 on 512 MNIST-sized inputs (``ntkpipe.core.kernels``), and
   32 steps of full-batch gradient descent on it (``ntkpipe.core.train``), and prints the ratios.

It writes ``DIR/summary.json`` and exits 1 when a store disagrees, 2 when no GPU is visible.
Meant to take under 8 minutes on one GPU and a few CPU cores (the workflow runs dominate).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RTOL = 1e-3
"""Relative tolerance of a store's array, against its largest magnitude (float32, see above)."""
ATOL = 1e-6
"""Absolute tolerance (arrays that are zero on one device)."""


def main() -> int:
    args = _parse()
    started = time.monotonic()
    import jax

    if not any(d.platform == "gpu" for d in jax.devices()):
        print(f"no GPU visible to JAX ({jax.devices()}): install jax[cuda12] (.[cuda])")
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    walls = {
        kind: _workflow(kind, args.configfile, out / kind, args.cores) for kind in ("gpu", "cpu")
    }
    name = yaml.safe_load(args.configfile.read_text())["name"]
    worst = _compare(out / "gpu" / "results" / name, out / "cpu" / "results" / name)
    timings = _timings(args.repeats)
    failed = {store: gap for store, gap in worst.items() if gap > 1.0}
    summary = {
        "config": str(args.configfile),
        "device": str(jax.devices("gpu")[0]),
        "workflow_s": walls,
        "tolerance": {"rtol": RTOL, "atol": ATOL},
        "worst_gap_over_tolerance": worst,
        "timings_s": timings,
        "total_s": time.monotonic() - started,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    if failed:
        print(f"stores that differ beyond the tolerance: {sorted(failed)}")
        return 1
    return 0


def _workflow(kind: str, configfile: Path, workdir: Path, cores: int) -> float:
    """Runs the whole workflow on one device kind in ``workdir``; returns its wall seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(configfile.read_text())
    raw["resources"] = {**(raw.get("resources") or {}), "gpu": 1 if kind == "gpu" else 0}
    config = workdir / configfile.name
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cuda" if kind == "gpu" else "cpu",
        "JAX_DEFAULT_MATMUL_PRECISION": "highest",
        "NTKPIPE_JAX_CACHE": str(workdir / "jax_cache"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(config), "--cores", str(cores),
        "--forceall", "--quiet", "rules",
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{kind} workflow failed:\n{result.stderr[-4000:]}")
    return time.monotonic() - started


def _compare(gpu: Path, cpu: Path) -> dict[str, float]:
    """Per store, the largest |gpu − cpu| / (ATOL + RTOL · max |cpu|) over its float arrays."""
    import warnings

    import numpy as np

    warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
    from ntkpipe.io import stores

    worst = {}
    for path in sorted(cpu.glob("**/*.zarr")):
        if any(part.endswith(".zarr") for part in path.relative_to(cpu).parts[:-1]):
            continue  # a group inside a store
        name = str(path.relative_to(cpu))
        a, b = stores.read_store(gpu / name), stores.read_store(path)
        gaps = [0.0]
        for var in b.data_vars:
            want = np.asarray(b[var].values)
            if not np.issubdtype(want.dtype, np.floating):
                continue
            got = np.asarray(a[var].values, dtype=want.dtype)
            finite = np.isfinite(want)
            if not np.array_equal(finite, np.isfinite(got)):
                gaps.append(np.inf)
                continue
            scale = ATOL + RTOL * float(np.max(np.abs(want[finite]), initial=0.0))
            gaps.append(float(np.max(np.abs(got[finite] - want[finite]), initial=0.0)) / scale)
        worst[name] = max(gaps)
    return worst


def _timings(repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds of the empirical NTK and of a training loop on each device."""
    out = {kind: _time_on(kind, repeats) for kind in ("gpu", "cpu")}
    out["cpu_over_gpu"] = {key: out["cpu"][key] / out["gpu"][key] for key in out["gpu"]}
    return out


def _time_on(kind: str, repeats: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    from ntkpipe.core import kernels, models, train

    net = models.mlp(3, 2048, 10, "relu", "ntk", w_std=2**0.5, b_std=0.1)
    with jax.default_device(jax.devices(kind)[0]):
        x = jax.random.normal(jax.random.PRNGKey(0), (512, 784), jnp.float32)
        y = jax.nn.one_hot(jnp.arange(512) % 10, 10) - 0.1
        keys = jax.random.split(jax.random.PRNGKey(1), 1)
        params = jax.vmap(net.init, in_axes=(0, None))(keys, x[:1])
        one = jax.tree_util.tree_map(lambda leaf: leaf[0], params)
        ntk = jax.jit(lambda p, inputs: kernels.empirical_ntk(net.apply, p, inputs))

        def loop():
            return train.train(
                net.apply, params, x, y, x[:64], y[:64], learning_rate=0.5, steps=32,
                record_steps=[0, 32],
            )  # fmt: skip

        return {
            "empirical_ntk": _median(lambda: ntk(one, x).block_until_ready(), repeats),
            "train_32_steps": _median(lambda: jax.block_until_ready(loop()), repeats),
        }


def _median(call, repeats: int) -> float:
    call()  # compile and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "config/small/fig3.yaml")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ntkpipe-gpu-check"))
    parser.add_argument("--cores", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
