"""Wall time of the first experience: the default sweep, `snakemake --cores all`, from nothing.

Target (issue 23): the default sweep (config/config.yaml, README line 1 after install) finishes
in ≤ 60 s on a 2-core machine from a fresh clone with a cold compilation cache, with the same
stores and the same report as before. One command measures it against a baseline:

    python -u benchmarks/bench_default_sweep.py                   # this tree against main (a0a4dc9)
    python -u benchmarks/bench_default_sweep.py --rounds 3 --features --fixed-cost

Sides: ``new`` is this working tree; ``base`` is a commit (``--base``, default a0a4dc9, main
before issue 23) exported with ``git archive`` into a temporary folder and run with the same
interpreter and packages (``PYTHONPATH`` puts its ``ntkpipe`` first, its Snakefile drives it).
Each sweep runs in its own empty working directory with an empty JAX compilation cache; the
sides alternate round by round (``base, new``, then ``new, base``: interleaved, so a busy machine
slows both alike), and the medians and their ratio are printed with the load average.

Per sweep, its CPU time (user + system of Snakemake and every job: the work, which a busy
machine inflates far less than the wall time; on a quiet 2-core machine the wall is about half
of it plus the parts that run alone) and the parts of its wall time (from the jobs' benchmark
files and the outputs' times): start to the first job, the analytic jobs, the run jobs (wall
from the first start to the last end, and their summed job time), collect, figures, report,
and the end. After the first
round the two sides' run stores are compared array by array (max relative difference; float
tolerance 1e-5), and their figures and claims.tsv file by file.

``--no-workers`` adds the new tree with ``resources.warm_workers: false`` (every JAX job in its
own process, as before the warm workers; the pool's CPU, which Snakemake does not count, is read
from ``logs/workers.log``); ``--no-base`` leaves the base out. ``--features`` adds a sweep per
round: the new tree with ``training.sharpness: true`` (the only feature of the open issues that
is off by default; claims and regimes are always on: the claims' time on the new side's summary
is printed after the first round, the regimes cost 0.024 s for all ten runs,
benchmarks/README.md section 10). ``--fixed-cost`` profiles single runs in fresh processes on
both sides (width 8 and width 1024, n_train 128, cold cache): imports, every stage's wall and
CPU time, the number of compiled programs and their compile time (``jax.monitoring``), against
the run's compute. ``--layouts stages runs`` instead compares the two ``resources.jobs`` layouts
of this tree (issue 14's measurement)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
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
TARGET_S = 60.0
BASE = "a0a4dc9"
PARTS = ("start", "analytic", "runs", "collect", "figures", "report", "end")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="ntkpipe-default-") as scratch:
        tmp = Path(args.keep or scratch)  # --keep: the sweeps stay there
        if args.layouts:
            return _layouts(args, tmp)
        sides = {"new": REPO} if args.no_base else {"base": _export(args.base, tmp / "base-src")}
        sides["new"] = REPO
        variants = [(name, tree, {}) for name, tree in sides.items()]
        if args.no_workers:
            variants.append(("new, no workers", REPO, {"resources": {"warm_workers": False}}))
        if args.features:
            variants.append(("new+sharpness", REPO, {"training": {"sharpness": True}}))
        walls, parts = defaultdict(list), defaultdict(list)
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for name, tree, overrides in order:
                workdir = tmp / f"{name}-{round_}"
                load = os.getloadavg()[0]
                wall, started = run_sweep(workdir, tree, args.cores, overrides)
                split = sweep_parts(workdir, started, wall)
                walls[name].append(wall)
                parts[name].append(split)
                print(f"round {round_ + 1}, {name}: {wall:.1f} s wall (load {load:.1f})")
                _print_parts(split)
            if round_ == 0 and not args.no_base:
                _compare_sides(tmp / "base-0", tmp / "new-0")
                _feature_costs(tmp / "new-0", statistics.median(walls["new"]))
        _print_summary(walls, parts)
        if args.fixed_cost:
            for name, tree in sides.items():
                fixed_cost(name, tree, tmp / "new-0", tmp / f"fixed-{name}")
    return 0


# ----------------------------------------------------------------------------- one sweep


def run_sweep(workdir: Path, tree: Path, cores: str, overrides: dict | None = None, layout=None):
    """The default sweep of the source tree ``tree`` (its config/config.yaml, with
    ``overrides`` merged section by section) in the empty folder ``workdir`` with an empty
    compilation cache; returns (wall seconds, start as time.time())."""
    workdir.mkdir(parents=True)
    config = yaml.safe_load((tree / "config" / "config.yaml").read_text())
    for section, values in (overrides or {}).items():
        config.setdefault(section, {}).update(values)
    if layout is not None:
        config.setdefault("resources", {})["jobs"] = layout
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = _env(tree, workdir)
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(tree / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(config_path), "--cores", cores,
    ]  # fmt: skip
    before = _children_cpu()
    started, start = time.time(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    wall = time.perf_counter() - start
    (workdir / "snakemake.log").write_text(result.stdout + result.stderr)
    cpu = _children_cpu() - before + _pool_cpu(workdir)
    (workdir / "cpu_seconds").write_text(f"{cpu:.2f}")
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return wall, started


def _children_cpu() -> float:
    """User + system CPU seconds of every finished child process and its descendants (each
    process waited for adds its own and its waited-for children's): the sweep's work, which
    a busy machine does not inflate as it does the wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pool_cpu(workdir: Path) -> float:
    """CPU seconds of the warm workers' pool (ntkpipe.workers), from its log: Snakemake does
    not wait for the pool, so its CPU is not among Snakemake's children's. Waits (≤ 5 s) for
    the pool to end (it ends within 0.5 s of Snakemake)."""
    logs = list(workdir.glob("results/*/logs/workers.log"))
    if not logs:
        return 0.0
    deadline = time.time() + 5
    while time.time() < deadline:
        ended = [line for line in logs[0].read_text().splitlines() if "pool ended" in line]
        if ended:
            return float(ended[-1].rsplit(": ", 1)[1].split()[0])
        time.sleep(0.1)
    return 0.0


def _env(tree: Path, workdir: Path) -> dict:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "NTKPIPE_JAX_CACHE": str(workdir / "jax-cache"),
    }
    if tree != REPO:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def sweep_parts(workdir: Path, started: float, wall: float) -> dict[str, float]:
    """The parts of one sweep's wall time (seconds), from the jobs' benchmark files (each
    job's wall ``s``; the file is written when the job ends) and the outputs' modification
    times: start (to the first job), analytic, runs (first start to last end; ``run jobs``:
    their summed wall), collect, figures, report (each from the end of what it waits for),
    end (the report to Snakemake's exit)."""
    out = next(workdir.glob("results/*/report.html")).parent
    spans = defaultdict(list)
    for tsv in (out / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(out / "benchmarks").parts[0]
        seconds = _last_row(tsv)
        end = tsv.stat().st_mtime
        spans[rule].append((end - seconds, end, seconds))
    per_stage = ("init", "kernel_init", "train", "kernel_final", "linear", "compare")
    runs = spans["run"] + [span for rule in per_stage for span in spans[rule]]
    analytic = spans["analytic"]
    first_job = min(s[0] for s in analytic + runs)
    runs_end = max(s[1] for s in runs)
    collect_end = _mtime(out / "summary.zarr")
    figures_end = max(_mtime(p) for p in (out / "figures").iterdir())
    report_end = _mtime(out / "report.html")
    analytic_time = max(s[1] for s in analytic) - min(s[0] for s in analytic) if analytic else 0
    return {
        "start": first_job - started,
        "analytic": analytic_time,
        "runs": runs_end - min(s[0] for s in runs),
        "run jobs": sum(s[2] for s in runs),
        "n runs": len(runs),
        "collect": collect_end - runs_end,
        "figures": figures_end - collect_end,
        "report": report_end - figures_end,
        "end": started + wall - report_end,
        "CPU": float((workdir / "cpu_seconds").read_text()),
    }


def _mtime(path: Path) -> float:
    """The latest modification time of a file or of the files of a folder."""
    if path.is_dir():
        return max((p.stat().st_mtime for p in path.rglob("*")), default=path.stat().st_mtime)
    return path.stat().st_mtime


def _last_row(tsv: Path) -> float:
    with tsv.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return float(rows[-1]["s"]) if rows else 0.0


def _print_parts(split: dict) -> None:
    cells = [f"{name} {split[name]:.1f}" for name in PARTS]
    print(
        "  parts (s): " + ", ".join(cells) + f"; {split['n runs']:.0f} run jobs: "
        f"{split['run jobs']:.1f} s of job time; CPU of the whole sweep {split['CPU']:.1f} s"
    )


def _print_summary(walls: dict, parts: dict) -> None:
    print()
    print("| part (median s) | " + " | ".join(walls) + " |")
    print("|---|" + "---|" * len(walls))
    for name in (*PARTS[:3], "run jobs", *PARTS[3:], "CPU"):
        row = [statistics.median(p[name] for p in parts[side]) for side in walls]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    medians = {side: statistics.median(times) for side, times in walls.items()}
    print("| **sweep wall** | " + " | ".join(f"**{m:.1f}**" for m in medians.values()) + " |")
    for side, median in medians.items():
        verdict = "meets" if median <= TARGET_S else "misses"
        print(f"{side}: median {median:.1f} s over {len(walls[side])} round(s): {verdict} ≤ 60 s")
    if "base" in medians and "new" in medians:
        print(f"ratio new / base: {medians['new'] / medians['base']:.2f} (wall)")
        cpu = {side: statistics.median(p["CPU"] for p in parts[side]) for side in walls}
        print(f"ratio new / base: {cpu['new'] / cpu['base']:.2f} (CPU of the whole sweep)")
    if "new+sharpness" in medians:
        print(f"ratio new+sharpness / new: {medians['new+sharpness'] / medians['new']:.2f}")
    print(f"load average now: {os.getloadavg()[0]:.1f}")


# ----------------------------------------------------------------------------- checks


def _compare_sides(a: Path, b: Path, rtol: float = 1e-5) -> None:
    """Run stores array by array (max relative difference), figures and claims file by file."""
    import numpy as np
    import zarr

    worst, worst_name, n_arrays, n_equal = 0.0, "", 0, 0
    for rel in sorted(p.relative_to(a) for p in a.glob("results/*/runs/**/*.zarr")):
        left = zarr.open_group(str(a / rel), mode="r")
        right = zarr.open_group(str(b / rel), mode="r")
        for name, array in _arrays(left):
            x, y = np.asarray(array), np.asarray(_get(right, name))
            n_arrays += 1
            if x.dtype.kind not in "fc":
                same = np.array_equal(x, y)
                n_equal += same
                if not same:
                    worst, worst_name = float("inf"), f"{rel}/{name}"
                continue
            n_equal += np.array_equal(x, y, equal_nan=True)
            scale = np.nanmax(np.abs(x)) if np.isfinite(x).any() else 1.0
            diff = np.nanmax(np.abs(x - y)) / (scale or 1.0) if x.size else 0.0
            if diff > worst:
                worst, worst_name = float(diff), f"{rel}/{name}"
    verdict = "within" if worst <= rtol else "BEYOND"
    print(
        f"stores: {n_arrays} arrays, {n_equal} bit-identical; max relative difference "
        f"{worst:.2e} ({worst_name or '-'}): {verdict} {rtol:g}"
    )
    for pattern in ("results/*/figures/*", "results/*/claims.tsv"):
        files = sorted(p.relative_to(a) for p in a.glob(pattern))
        same = sum(
            (b / f).is_file() and (a / f).read_bytes() == (b / f).read_bytes() for f in files
        )
        print(f"{pattern}: {same} of {len(files)} files byte-identical")


def _arrays(group, prefix=""):
    for name, member in group.members():
        if hasattr(member, "members"):
            yield from _arrays(member, f"{prefix}{name}/")
        else:
            yield f"{prefix}{name}", member


def _get(group, name):
    for part in name.split("/"):
        group = group[part]
    return group


def _feature_costs(workdir: Path, sweep_wall: float) -> None:
    """The claims table and the regime of every run, timed on the new side's summary."""
    code = (
        "import sys, time, xarray as xr\n"
        "from ntkpipe.analysis import claims\n"
        "ds = xr.open_zarr(sys.argv[1]).load()\n"
        "t = time.perf_counter(); claims.paper_claims(ds); c = time.perf_counter() - t\n"
        "print(f'{c:.3f}')\n"
    )
    summary = next(workdir.glob("results/*/summary.zarr"))
    result = subprocess.run(
        [sys.executable, "-c", code, str(summary)], capture_output=True, text=True, cwd=REPO
    )
    if result.returncode != 0:
        print(f"claims: not timed ({result.stderr.strip().splitlines()[-1:]})")
        return
    seconds = float(result.stdout.split()[-1])
    print(
        f"claims (analysis.claims.paper_claims on the summary): {seconds:.2f} s = "
        f"{seconds / sweep_wall:.1%} of the new sweep's wall"
    )


# ----------------------------------------------------------------------------- fixed cost


def fixed_cost(name: str, tree: Path, sweep: Path, folder: Path) -> None:
    """One run job of width 8 and one of width 1024 (n_train 128) in fresh processes with an
    empty compilation cache, profiled by benchmarks/profile_run.py."""
    template = next(sweep.glob("results/*/runs/width~64/n_train~128/*/run.json"))
    analytic = next(sweep.glob("results/*/analytic/n_train~128/analytic.zarr"))
    for width in (8, 1024):
        config = json.loads(template.read_text())
        config["model"]["width"] = width
        config["run_id"] = config["run_id"].replace("width~64", f"width~{width}")
        run_dir = folder / f"width{width}"
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps(config))
        env = _env(tree, run_dir)
        command = [
            sys.executable, str(REPO / "benchmarks" / "profile_run.py"),
            str(run_dir / "run.json"), str(analytic), str(run_dir / "out"),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        print(f"\n{name}, one run of width {width} (load {os.getloadavg()[0]:.1f}):")
        print(result.stdout.rstrip() or result.stderr[-2000:])


# ----------------------------------------------------------------------------- layouts


def _layouts(args, tmp: Path) -> int:
    walls = defaultdict(list)
    for round_ in range(args.rounds):
        for layout in args.layouts:
            workdir = tmp / f"{layout}-{round_}"
            wall, started = run_sweep(workdir, REPO, args.cores, layout=layout)
            walls[layout].append(wall)
            print(f"round {round_ + 1}, resources.jobs: {layout}: {wall:.1f} s wall")
            _print_parts(sweep_parts(workdir, started, wall))
    for layout, times in walls.items():
        print(f"{layout}: median {statistics.median(times):.1f} s, {len(times)} round(s)")
    return 0


def _export(commit: str, folder: Path) -> Path:
    """The tree of ``commit`` in ``folder`` (git archive: no worktree, nothing in .git)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default=BASE, help="the baseline commit (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cores", default="all")
    parser.add_argument("--features", action="store_true", help="also the sweep with sharpness")
    parser.add_argument(
        "--no-workers", action="store_true", help="also the new tree with warm_workers: false"
    )
    parser.add_argument("--no-base", action="store_true", help="only this tree's variants")
    parser.add_argument("--fixed-cost", action="store_true", help="profile width 8 and 1024 runs")
    parser.add_argument("--layouts", nargs="+", choices=["stages", "runs"], help="issue 14's mode")
    parser.add_argument("--keep", type=Path, help="run the sweeps in this (new) folder and keep it")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
