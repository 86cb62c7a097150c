"""Time `snakemake -n` on a large sweep: how long the workflow takes to build its DAG.

Target (issue 5): a 10,000-run sweep builds its DAG in ≤ 30 s. The sweep is the tiny test config
(tests/configs/tiny.yaml) swept over model.width × training.learning_rate with 10 seeds per point
in jobs of ``--seeds-per-job``; a run is one job (one run folder), so ``--runs 10000
--seeds-per-job 1`` is 10,000 run folders (1,000 points × 10 seeds) and ``--seeds-per-job 10``
is 10,000 trained networks in 1,000 run folders. ``--jobs`` is the sweep's ``resources.jobs``:
``stages`` (default: one job per stage of a run, eight per run) or ``runs`` (one job per run,
:mod:`ntkpipe.jobs.run`); ``--jobs both`` times the two side by side. With ``--floor`` the same
number of jobs is timed in a trivial Snakefile (one shell rule per job, no config), Snakemake's
own cost per job.

    python benchmarks/bench_dag.py --jobs both          # 10,000 run folders, both layouts
    python benchmarks/bench_dag.py --seeds-per-job 10   # 10,000 networks, vmapped 10 per job
    python benchmarks/bench_dag.py --runs 1000 --floor --profile

Prints wall and CPU seconds (user + sys of the snakemake process), jobs, and ms per job.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SEEDS = 10
WIDTHS = 50
TARGET_S = 30.0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="ntkpipe-dag-") as tmp:
        workdir = Path(tmp)
        layouts = ["stages", "runs"] if args.jobs == "both" else [args.jobs]
        results = {}
        for layout in layouts:
            config, runs = sweep_config(workdir / layout, args.runs, args.seeds_per_job, layout)
            print(
                f"sweep: {runs} runs ({runs * min(args.seeds_per_job, SEEDS)} networks, "
                f"{args.seeds_per_job} seed(s) per job), resources.jobs: {layout}"
            )
            snakefile = ["--snakefile", str(REPO / "Snakefile")]
            result = results[layout] = time_dry_run(workdir / layout, snakefile, config)
            _print(f"ntkpipe/{layout}", result, runs)
            if args.floor:
                floor_dir = workdir / layout / "floor"
                floor_dir.mkdir(parents=True)
                per_run = max(1, round(result["jobs"] / runs))
                floor = time_dry_run(floor_dir, trivial_snakefile(floor_dir, runs, per_run))
                _print("floor", floor, runs)
                print(f"ntkpipe / Snakemake floor: {result['cpu_s'] / floor['cpu_s']:.2f} (CPU)")
            if args.profile:
                profile(workdir / layout, config)
    if len(results) == 2:
        ratio = results["stages"]["wall_s"] / results["runs"]["wall_s"]
        print(f"wall, jobs: stages / jobs: runs = {ratio:.2f}")
    for layout, result in results.items():
        verdict = "meets" if result["wall_s"] <= TARGET_S else "misses"
        wall = result["wall_s"]
        print(f"target ≤ {TARGET_S:.0f} s wall, jobs: {layout}: {verdict} ({wall:.1f} s)")
    return 0


def sweep_config(workdir: Path, runs: int, per_job: int, layout: str) -> tuple[Path, int]:
    """A config with about `runs` run folders; returns its path and the exact number."""
    config = yaml.safe_load(TINY.read_text())
    chunks = math.ceil(SEEDS / per_job)
    points = math.ceil(runs / chunks)
    rates = math.ceil(points / WIDTHS)
    config["name"] = "dag"
    config["seeds"] = {"count": SEEDS, "per_job": per_job}
    config["resources"] = {"jobs": layout}
    config["sweep"] = {
        "model.width": list(range(16, 16 + WIDTHS)),
        "training.learning_rate": [round(0.01 * (i + 1), 4) for i in range(rates)],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "dag.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, WIDTHS * rates * chunks


def time_dry_run(workdir: Path, snakefile_args: list[str], config: Path | None = None) -> dict:
    """Wall and CPU time of `snakemake -n` (job table only), and its number of jobs."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "snakemake", *snakefile_args, "-n", "--quiet", "rules"]
    command += ["--directory", str(workdir)]
    if config is not None:
        command += ["--configfile", str(config)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    total = re.search(r"^total\s+(\d+)", result.stdout, re.M)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "jobs": int(total.group(1)) if total else 0}


def trivial_snakefile(workdir: Path, runs: int, per_run: int) -> list[str]:
    """A Snakefile of `runs` chains of `per_run` shell rules, like the jobs of a run."""
    last = per_run - 1
    rules = ["rule all:", f"    input: expand('r/{{i}}/s{last}', i=range({runs}))"]
    for stage in range(per_run):
        rules += [f"rule s{stage}:", f"    output: 'r/{{i}}/s{stage}'"]
        if stage:
            rules.append(f"    input: 'r/{{i}}/s{stage - 1}'")
        rules.append("    shell: 'touch {output}'")
    path = workdir / "Floor.smk"
    path.write_text("\n".join(rules) + "\n")
    return ["--snakefile", str(path)]


def profile(workdir: Path, config: Path) -> None:
    """The dry run in this process under cProfile: the top functions of ntkpipe and the rules."""
    from snakemake.cli import main as snakemake_main

    stats_path = workdir / "dag.prof"
    argv = ["snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config)]
    argv += ["-n", "--quiet", "rules", "--directory", str(workdir / "profiled")]
    (workdir / "profiled").mkdir()
    old_argv, sys.argv = sys.argv, argv
    profiler = cProfile.Profile()
    try:
        profiler.runcall(snakemake_main)
    except SystemExit:
        pass
    finally:
        sys.argv = old_argv
    profiler.dump_stats(stats_path)
    stats = pstats.Stats(str(stats_path))
    stats.sort_stats("cumulative").print_stats(r"ntkpipe|\.smk|Snakefile", 15)


def _print(label: str, result: dict, runs: int) -> None:
    per_job = 1000 * result["cpu_s"] / max(result["jobs"], 1)
    print(
        f"{label:8s} jobs {result['jobs']:7d}  wall {result['wall_s']:6.1f} s  "
        f"cpu {result['cpu_s']:6.1f} s  ({per_job:.2f} ms cpu/job, "
        f"{1000 * result['cpu_s'] / runs:.1f} ms cpu/run)"
    )


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="run folders (default 10000)")
    parser.add_argument("--seeds-per-job", type=int, default=1, help="seeds.per_job (1 … 10)")
    parser.add_argument(
        "--jobs",
        choices=("stages", "runs", "both"),
        default="both",
        help="resources.jobs of the sweep (default: both, side by side)",
    )
    parser.add_argument("--floor", action="store_true", help="also time a trivial Snakefile")
    parser.add_argument("--profile", action="store_true", help="cProfile the ntkpipe side")
    args = parser.parse_args(argv)
    if not 1 <= args.seeds_per_job <= SEEDS:
        parser.error(f"--seeds-per-job: {args.seeds_per_job} is not in 1 … {SEEDS}")
    if args.runs < 1:
        parser.error(f"--runs: {args.runs} must be ≥ 1")
    os.environ.setdefault("NTKPIPE_JAX_CACHE", "off")
    return args


if __name__ == "__main__":
    sys.exit(main())
