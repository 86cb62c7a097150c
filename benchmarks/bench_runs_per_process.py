"""Prototype for issue 23: the run jobs of a sweep, one process per run (the workflow's layout,
``resources.jobs: runs``) against several runs in one process.

Takes the runs of a finished sweep (its ``runs/*/run.json`` and ``analytic/*/analytic.zarr``)
and computes them again into a temporary folder, with an empty compilation cache each time,
two at a time on two cores (one XLA thread each, as the rule's ``threads: 1``), largest first:

- ``separate``: one ``ntkpipe run`` process per run, two side by side (what Snakemake does);
- ``grouped``: two processes, each computing half of the runs in turn
  (:func:`ntkpipe.jobs.run.run_all_stages`, the function the ``ntkpipe run`` command calls),
  the runs dealt to the process with the least estimated work (:func:`_work`).

Both write the same stores (checked array by array with ``--compare``). The difference is
the start-up of a process (Python, JAX, Flax, xarray: ≈ 2 s of CPU) paid once per process
instead of once per run, and the programs a process has compiled already (same shapes).
The workflow's rules are not changed by this script.

    python benchmarks/bench_runs_per_process.py results/digits-binary --rounds 1
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_GROUP = """
import json, sys
from pathlib import Path
from ntkpipe.process import configure_compilation_cache, pin_threads
pin_threads(1)
configure_compilation_cache()
from ntkpipe.jobs import run as run_job
for line in sys.stdin.read().splitlines():
    config, folder, analytic = json.loads(line)
    run_job.run_all_stages(json.loads(config), Path(folder), Path(analytic), log=lambda _: None)
"""


def main(argv=None) -> int:
    args = _parse(argv)
    runs = _runs(args.sweep)
    print(f"{len(runs)} runs of {args.sweep}, largest first; load {os.getloadavg()[0]:.1f}")
    walls = {"separate": [], "grouped": []}
    cpus = {"separate": [], "grouped": []}
    with tempfile.TemporaryDirectory(prefix="ntkpipe-runs-") as tmp:
        for round_ in range(args.rounds):
            order = list(walls) if round_ % 2 == 0 else list(walls)[::-1]
            for mode in order:
                out = Path(tmp) / f"{mode}-{round_}"
                load, cpu = os.getloadavg()[0], _children_cpu()
                wall = (separate if mode == "separate" else grouped)(runs, out)
                walls[mode].append(wall)
                cpus[mode].append(_children_cpu() - cpu)
                print(
                    f"round {round_ + 1}, {mode}: {wall:.1f} s wall, {cpus[mode][-1]:.1f} s CPU "
                    f"(load {load:.1f})"
                )
        for name, values in (("wall", walls), ("CPU", cpus)):
            separate_s, grouped_s = (statistics.median(values[m]) for m in values)
            print(f"{name} medians: separate {separate_s:.1f} s, grouped {grouped_s:.1f} s, "
                  f"ratio {grouped_s / separate_s:.2f}")  # fmt: skip
        print(f"load now {os.getloadavg()[0]:.1f}")
        if args.compare:
            print(f"stores equal: {_equal(Path(tmp) / 'separate-0', Path(tmp) / 'grouped-0')}")
    return 0


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes and their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _runs(sweep: Path) -> list[tuple[dict, str, Path]]:
    """(run config, run id, analytic store) of every run, largest first."""
    found = []
    for path in sweep.glob("runs/**/run.json"):
        config = json.loads(path.read_text())
        key = f"n_train~{config['data']['n_train']}"
        analytic = next(sweep.glob(f"analytic/{key}/analytic.zarr"))
        found.append((config, config["run_id"], analytic))
    return sorted(found, key=lambda run: -_work(run[0]))


def _work(config: dict) -> float:
    """Estimated seconds of one run job on one core: a fixed part (imports, compilation) and the
    training's arithmetic, ∝ width² · n_train (≈ 12 s at width 1024, n_train 128)."""
    return 7.0 + 12.0 * config["model"]["width"] ** 2 * config["data"]["n_train"] / 2**27


def separate(runs, out: Path) -> float:
    env = {**os.environ, "NTKPIPE_JAX_CACHE": str(out / "jax-cache")}
    ntkpipe = str(Path(sys.executable).parent / "ntkpipe")

    def one(run):
        config, run_id, analytic = run
        command = [
            ntkpipe, "run", "--config", json.dumps(config), "--dir", str(out / run_id),
            "--analytic", str(analytic), "--threads", "1",
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, env=env)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(one, runs))
    return time.perf_counter() - start


def grouped(runs, out: Path) -> float:
    env = {**os.environ, "NTKPIPE_JAX_CACHE": str(out / "jax-cache")}
    groups, work = [[], []], [0.0, 0.0]
    for run in runs:
        i = work.index(min(work))
        groups[i].append(run)
        work[i] += _work(run[0])

    def one(group):
        lines = "\n".join(
            json.dumps([json.dumps(config), str(out / run_id), str(analytic)])
            for config, run_id, analytic in group
        )
        subprocess.run([sys.executable, "-c", _GROUP], input=lines, text=True, check=True, env=env)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(one, groups))
    return time.perf_counter() - start


def _equal(a: Path, b: Path) -> bool:
    import numpy as np
    import zarr

    for store in sorted(a.rglob("*.zarr")):
        left = zarr.open_group(str(store), mode="r")
        right = zarr.open_group(str(b / store.relative_to(a)), mode="r")
        for name, array in left.arrays():
            if not np.array_equal(np.asarray(array), np.asarray(right[name]), equal_nan=True):
                print(f"  differs: {store.relative_to(a)}/{name}")
                return False
    return True


def _parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep", type=Path, help="a finished sweep: results/<name>")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--compare", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
