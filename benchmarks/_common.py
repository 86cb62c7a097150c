"""Helpers shared by the benchmarks and the cross-check (ntkpipe side).

The neural-tangents side runs in its own interpreter (default /work/venvs/nt/bin/python, or
$NTKPIPE_NT_PYTHON), as a subprocess of ``benchmarks/nt_side.py``; arrays go there and back
through ``.npz`` files in a temporary directory. See benchmarks/README.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NT_SIDE = HERE / "nt_side.py"
DEFAULT_NT_PYTHON = "/work/venvs/nt/bin/python"


def nt_python() -> str | None:
    """The neural-tangents interpreter: $NTKPIPE_NT_PYTHON, else /work/venvs/nt; None if absent."""
    path = os.environ.get("NTKPIPE_NT_PYTHON", DEFAULT_NT_PYTHON)
    return path if Path(path).is_file() and os.access(path, os.X_OK) else None


def run_nt(spec: dict, arrays: dict[str, np.ndarray], python: str | None = None):
    """Runs the tasks of ``spec`` in the neural-tangents environment.

    Args:
        spec: ``{"x64": bool, "tasks": [...]}`` as documented in nt_side.py.
        arrays: input arrays keyed ``"task_name/key"``.
        python: interpreter of the neural-tangents environment (default :func:`nt_python`).

    Returns:
        (out_arrays keyed ``"task_name/key"``, scalars ``{task_name: {...}}``).
    """
    python = python or nt_python()
    if python is None:
        raise RuntimeError(
            "neural-tangents environment not found: create /work/venvs/nt (benchmarks/README.md) "
            "or set NTKPIPE_NT_PYTHON to its python."
        )
    with tempfile.TemporaryDirectory(prefix="ntkpipe-nt-") as tmp:
        spec_path, in_path, out_path = (Path(tmp) / n for n in ("spec.json", "in.npz", "out.npz"))
        spec_path.write_text(json.dumps(spec))
        np.savez(in_path, **{k: np.asarray(v) for k, v in arrays.items()})
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
        proc = subprocess.run(
            [python, str(NT_SIDE), str(spec_path), str(in_path), str(out_path)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-5000:])
            raise RuntimeError(f"nt_side.py failed with exit code {proc.returncode}")
        scalars = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(out_path) as out:
            return {k: out[k] for k in out.files}, scalars


def time_calls(fn: Callable[[], object], repeats: int, clock: str = "wall") -> list[float]:
    """Seconds of ``repeats`` calls of fn after one warm-up call, each blocked until ready.

    Args:
        fn: the call to time.
        repeats: number of timed calls.
        clock: ``"wall"`` (time.perf_counter) or ``"cpu"`` (time.process_time: CPU seconds of
            all threads of this process; robust to other processes competing for the cores,
            meaningful with single-threaded XLA, see README.md).
    """
    import jax

    timer = CLOCKS[clock]
    jax.block_until_ready(fn())
    seconds = []
    for _ in range(repeats):
        start = timer()
        jax.block_until_ready(fn())
        seconds.append(timer() - start)
    return seconds


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pin_cpus(cpus: str | None) -> list[int]:
    """Pins this process (and so every subprocess it starts) to a CPU list like ``"0,1"``.

    Must run before jax creates its thread pool, i.e. before the first computation. The
    neural-tangents subprocess inherits the affinity, so both sides use the same cores.
    """
    if cpus:
        wanted = set()
        for part in cpus.split(","):
            lo, _, hi = part.partition("-")
            wanted.update(range(int(lo), int(hi or lo) + 1))
        os.sched_setaffinity(0, wanted)
    return sorted(os.sched_getaffinity(0))


def load_note() -> str:
    """One line with the 1-minute load average, to judge interference on a shared machine."""
    return f"load avg (1 min) {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |b| (a norm-wise relative difference, stable where b has zeros)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / scale) if scale > 0 else float(np.max(np.abs(a - b)))
