"""The sweep-level collect stage at 10 … 10,000 runs: time per run and peak memory (issue 14).

The run stores are those of one tiny real sweep (tests/configs/tiny.yaml: 4 runs, 2 widths × 2
seed chunks, analytic kernels), replicated under new run ids: for N runs the script writes a
sweep config over ``model.width`` × ``training.learning_rate`` with N/2 points (2 seed chunks
each, as tiny.yaml) and gives every run the metrics.zarr of the real run with its seed chunk
(a symbolic link by default, ``--copy`` for real copies: every file its own). collect finds
the runs from the sweep config, as in the workflow.

Each measurement is one new process (``ntkpipe collect`` as the rule runs it, in-process timing
of the stage after the imports), reporting wall and CPU (user + sys) seconds of the stage and
the process's peak RSS (``getrusage``, imports included; the RSS after the imports is printed
too). Per size, interleaved:

- ``before``: collect as it was (every store opened with ``read_store``, one xarray Dataset per
  run, ``tests.combined_summary.summarize``: combine_by_coords), written the same way; by
  default only up to
  ``--before-max`` runs (8 min and 3 GB at 10,000 on this machine): larger sizes extrapolated;
- ``after``: the streamed collect, no cache (every store read);
- ``rerun``: the streamed collect again with every row cached (nothing changed);
- ``+1%``: 1 % of the runs' stores replaced by new ones (written again): only they are read;
- ``figures``: the figures stage on the summary (its time and the figures' total size);
- ``report``: the report stage on the summary and those figures (its time and the size of
  report.html, figures inlined).

    python benchmarks/bench_collect.py --source results/tiny [--sizes 10 100 1000 10000]

``--source``: a folder with sweep.json and runs/ of the tiny sweep (``snakemake --cores 2
--configfile tests/configs/tiny.yaml`` in a scratch directory makes one, ≈ 4 min on 2 cores;
without --source the script runs it in --work). Targets: collect ≤ 10 ms per run and ≤ 1 GB
peak RSS at 10,000 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
MODES = ("before", "after", "rerun", "+1%", "figures", "report")


def main(argv=None) -> int:
    args = _parse(argv)
    if args.child:
        return _child(args.child, Path(args.folder), args.runs)
    source = Path(args.source) if args.source else _tiny_sweep(Path(args.work))
    print(
        f"{'runs':>6s} {'mode':7s} {'wall s':>8s} {'cpu s':>8s} {'ms/run':>7s} "
        f"{'peak MB':>8s} {'import MB':>9s}  note"
    )
    for n in args.sizes:
        folder = Path(args.work) / f"n{n}"
        runs = _replicate(source, folder, n, copy=args.copy)
        for mode in MODES:
            if mode == "before" and n > args.before_max:
                continue
            if mode == "+1%":
                _replace(folder, runs, max(1, n // 100))
            result = _measure(mode, folder, n)
            cpu = result["cpu"]
            print(
                f"{n:6d} {mode:7s} {result['wall']:8.2f} {cpu:8.2f} {1e3 * cpu / n:7.2f} "
                f"{result['peak_mb']:8.0f} {result['import_mb']:9.0f}  {result.get('note', '')}",
                flush=True,
            )
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="folder with sweep.json and runs/ of the tiny sweep")
    parser.add_argument("--work", default="/tmp/ntkpipe-bench-collect", help="scratch folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--before-max", type=int, default=1000, help="largest N for 'before'")
    parser.add_argument("--copy", action="store_true", help="copy the stores (default: links)")
    parser.add_argument("--keep", action="store_true", help="keep the replicated sweeps")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the replicated sweep


def _tiny_sweep(work: Path) -> Path:
    """The tiny sweep's stores, made once in `work`/tiny by the real workflow."""
    folder = work / "tiny"
    result = folder / "results" / "tiny"
    if not (result / "summary.zarr").exists():
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
        command += ["--directory", str(folder), "--configfile", str(TINY), "--cores", "2"]
        subprocess.run(command, check=True, cwd=folder)
    return result


def _grid(n: int) -> tuple[list, list]:
    """Widths and learning rates of a grid of n/2 points (two seed chunks a point)."""
    points = max(1, n // 2)
    lrs = next(k for k in (50, 20, 5, 1) if points % k == 0 and points // k >= k)
    widths = list(range(16, 16 + points // lrs))
    return widths, [round(1.0 + 0.01 * i, 2) for i in range(lrs)]


def _replicate(source: Path, folder: Path, n: int, copy: bool) -> list:
    """A sweep of n runs in `folder` (sweep.json, runs/<run_id>/metrics.zarr); its run ids."""
    from ntkpipe.sweep import runs as ntk_runs
    from ntkpipe.sweep import validate

    config = json.loads((source / "sweep.json").read_text())
    widths, lrs = _grid(n)
    config["sweep"] = {"model.width": widths, "training.learning_rate": lrs}
    config = validate.load_config(config)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "runs").mkdir(parents=True)
    (folder / "sweep.json").write_text(ntk_runs.to_json(config))
    originals = {
        tuple(run.seeds): source / "runs" / run.run_id / "metrics.zarr"
        for run in ntk_runs.expand_runs(json.loads((source / "sweep.json").read_text()))
    }
    runs = ntk_runs.expand_runs(config)
    for run in runs:
        target = folder / "runs" / run.run_id / "metrics.zarr"
        target.parent.mkdir(parents=True)
        if copy:
            shutil.copytree(originals[tuple(run.seeds)], target)
        else:
            target.symlink_to(originals[tuple(run.seeds)].resolve(), target_is_directory=True)
    return runs


def _replace(folder: Path, runs: list, count: int) -> None:
    """`count` runs' stores written again (same arrays, new provenance): new to the cache."""
    from ntkpipe.io import stores

    for run in runs[:: max(1, len(runs) // count)][:count]:
        path = folder / "runs" / run.run_id / "metrics.zarr"
        ds = stores.read_store(path, stage="metrics")
        path.unlink() if path.is_symlink() else shutil.rmtree(path)
        stores.write_store(ds, path, config=run.config, stage="metrics")


# ---------------------------------------------------------------- one measurement


def _measure(mode: str, folder: Path, n: int) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--folder", str(folder), "--runs", str(n)]
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-5000:])
        raise RuntimeError(f"{mode} at {n} runs failed ({out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(mode: str, folder: Path, n: int) -> int:
    """One stage in this process: prints {wall, cpu, peak_mb, import_mb, note} as JSON."""
    import contextlib
    import io

    from ntkpipe.analysis import metrics  # noqa: F401  (the imports of the stage, untimed)
    from ntkpipe.jobs import analysis
    from ntkpipe.jobs._job import Job
    from ntkpipe.sweep import layout

    import_mb = _peak_mb()
    summary = folder / ("summary-before.zarr" if mode == "before" else "summary.zarr")
    sweep, runs = folder / "sweep.json", folder / "runs"
    if mode == "after":
        layout.summary_rows_cache(summary).unlink(missing_ok=True)
    wall, cpu = time.perf_counter(), _cpu()
    note = ""
    with contextlib.redirect_stdout(io.StringIO()) as log:
        if mode == "before":
            _collect_before(Job(sweep, summary, True, rule="collect"), runs)
        elif mode == "figures":
            shutil.rmtree(folder / "figures", ignore_errors=True)
            analysis.figures(summary, folder / "figures")
        elif mode == "report":
            figures = folder / "figures"
            figures.mkdir(exist_ok=True)
            analysis.report(summary, figures, folder / "report.html")
        else:
            analysis.collect(sweep, runs, summary, overwrite=True)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    if mode == "report":
        note = f"report.html {(folder / 'report.html').stat().st_size / 1e3:.0f} KB"
    elif mode == "figures":
        files = list((folder / "figures").iterdir())
        note = f"{len(files)} files, {sum(f.stat().st_size for f in files) / 1e3:.0f} KB"
    else:
        lines = [line for line in log.getvalue().splitlines() if line.startswith("collect:")]
        note = lines[-1] if lines else ""
    result = dict(wall=wall, cpu=cpu, peak_mb=_peak_mb(), import_mb=import_mb, note=note)
    print(json.dumps(result))
    return 0


def _collect_before(job, runs: Path) -> None:
    """collect as it was before the streamed one (commit bc01445): one Dataset per run."""
    from ntkpipe.io import stores
    from ntkpipe.sweep import runs as ntk_runs

    found = {}
    for one in ntk_runs.expand_runs(job.config):
        path = Path(runs) / one.run_id / "metrics.zarr"
        ds = stores.read_store(path, stage="metrics") if path.exists() else None
        found[one.run_id] = (one, ds)
    from tests import combined_summary

    job.write(combined_summary.summarize(job.config, found), stage="summary")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
