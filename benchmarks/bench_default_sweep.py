"""Wall time of the first experience: the default sweep, `snakemake --cores all`, from nothing.

Target (issue 14, item 5): the default sweep (config/config.yaml, README line 1 after install)
finishes in ≤ 120 s on a 2-core machine. Each layout (``resources.jobs``: ``stages``, one job per
stage of a run; ``runs``, one job per run) runs in its own empty working directory with an empty
JAX compilation cache, so nothing is reused from an earlier run; with ``--rounds R`` the layouts
alternate R times (interleaved, so a busy machine slows both alike) and the medians are printed
with their ratio. Both layouts must give the same stores: ``--compare`` checks the run stores of
the two layouts array for array (float equality) after the first round.

What dominates is printed from the jobs' own benchmark files (``results/<name>/benchmarks``):
the summed wall time of the jobs per rule, against the sweep's wall time and the cores.

    python benchmarks/bench_default_sweep.py                     # both layouts, one round each
    python benchmarks/bench_default_sweep.py --rounds 3 --compare
    python benchmarks/bench_default_sweep.py --layouts runs --threads 1 2   # per-run job threads
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "config" / "config.yaml"
TARGET_S = 120.0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    walls: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="ntkpipe-default-") as tmp:
        for round_ in range(args.rounds):
            for layout in args.layouts:
                for threads in args.threads or [None]:
                    name = layout if threads is None else f"{layout}, {threads} thread(s)"
                    workdir = Path(tmp) / f"{layout}-{threads}-{round_}"
                    wall = run_sweep(workdir, layout, args.cores, threads)
                    walls[name].append(wall)
                    print(f"round {round_ + 1}, resources.jobs: {name}: {wall:.1f} s wall")
                    _print_breakdown(workdir, wall, args.cores)
            if round_ == 0 and args.compare and len(args.layouts) == 2:
                first = (args.threads or [None])[0]
                a, b = (Path(tmp) / f"{layout}-{first}-0" for layout in args.layouts)
                print(f"stores equal across layouts: {compare_stores(a, b)}")
    print()
    for name, times in walls.items():
        median = statistics.median(times)
        verdict = "meets" if median <= TARGET_S else "misses"
        print(f"{name}: median {median:.1f} s, {len(times)} round(s): {verdict} ≤ {TARGET_S:.0f} s")
    if len(walls) == 2:
        (a_name, a), (b_name, b) = ((n, statistics.median(t)) for n, t in walls.items())
        print(f"ratio ({b_name}) / ({a_name}): {b / a:.2f}")
    return 0


def run_sweep(workdir: Path, layout: str, cores: str, threads: int | None = None) -> float:
    """Runs the default sweep with `resources.jobs: layout` in `workdir` (the per-run jobs with
    `threads` threads: --set-threads; None: the rules' own); returns its wall time."""
    workdir.mkdir(parents=True)
    config = yaml.safe_load(DEFAULT.read_text())
    config.setdefault("resources", {})["jobs"] = layout
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "NTKPIPE_JAX_CACHE": str(workdir / "jax-cache"),
    }
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(config_path), "--cores", cores,
    ]  # fmt: skip
    if threads is not None:
        rules = ["run"] if layout == "runs" else ["kernel_init", "train", "kernel_final", "linear"]
        command += ["--set-threads", *(f"{rule}={threads}" for rule in rules)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return wall


def _print_breakdown(workdir: Path, wall: float, cores: str) -> None:
    """Summed job wall time per rule, from the jobs' benchmark TSVs."""
    per_rule: dict[str, list[float]] = defaultdict(list)
    for benchmarks in workdir.glob("results/*/benchmarks"):
        for tsv in benchmarks.rglob("*.tsv"):
            _add_row(per_rule, tsv.relative_to(benchmarks).parts[0].removesuffix(".tsv"), tsv)
    total = sum(sum(times) for times in per_rule.values())
    print(f"  jobs' summed wall {total:.1f} s on {cores} core(s); sweep wall {wall:.1f} s")
    for rule, times in sorted(per_rule.items(), key=lambda item: -sum(item[1])):
        share = sum(times) / total if total else 0.0
        each = statistics.median(times)
        print(
            f"  {rule:>14}: {len(times):3d} jobs, {sum(times):6.1f} s ({share:5.1%}), "
            f"{each:.2f} s each"
        )


def _add_row(per_rule: dict, rule: str, tsv: Path) -> None:
    with tsv.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if rows:
        per_rule[rule].append(float(rows[-1]["s"]))


def compare_stores(a: Path, b: Path) -> bool:
    """Whether every run store under results/ of `a` equals its counterpart in `b` (arrays)."""
    import numpy as np
    import zarr

    stores = sorted(p.relative_to(a) for p in a.glob("results/*/runs/**/*.zarr"))
    if not stores:
        return False
    for rel in stores:
        left, right = (
            zarr.open_group(str(a / rel), mode="r"),
            zarr.open_group(str(b / rel), mode="r"),
        )
        for name, array in left.arrays():
            if name not in right or not np.array_equal(
                np.asarray(array), np.asarray(right[name]), equal_nan=True
            ):
                print(f"  differs: {rel}/{name}")
                return False
    return True


def _parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--layouts", nargs="+", default=["stages", "runs"], choices=["stages", "runs"]
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", help="threads of the per-run jobs")
    parser.add_argument("--cores", default="all")
    parser.add_argument(
        "--compare", action="store_true", help="check the two layouts' run stores are equal"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
