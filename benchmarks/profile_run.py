"""Where one run job's time goes: imports, each stage's wall and CPU time, and the compiled
programs (how many, their compile time), in a fresh process as `ntkpipe run` starts.

    python benchmarks/profile_run.py RUN_JSON ANALYTIC_ZARR OUT_FOLDER [--cache DIR]

RUN_JSON is a run's ``run.json`` (e.g. results/digits-binary/runs/width~64/n_train~32/seeds~0-1/
run.json), ANALYTIC_ZARR its ``analytic.zarr``; the stores are written into OUT_FOLDER (emptied
first). One XLA thread, as the workflow's run job (``--threads 1``); the compilation cache is
off unless ``--cache`` names one (``NTKPIPE_JAX_CACHE`` is honoured too). Runs whichever
``ntkpipe`` is first on the path (``bench_default_sweep.py --fixed-cost`` runs it for two
trees). ``--log-compiles`` also lists every compiled program with its compile time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

STARTED = time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("analytic", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cache", default=os.environ.get("NTKPIPE_JAX_CACHE", "off"))
    parser.add_argument("--log-compiles", action="store_true")
    args = parser.parse_args()

    from ntkpipe.process import configure_compilation_cache, pin_threads

    pin_threads(1)
    os.environ["NTKPIPE_JAX_CACHE"] = args.cache
    configure_compilation_cache()
    import jax
    from jax import monitoring

    events = []
    monitoring.register_event_duration_secs_listener(
        lambda event, duration, **_: events.append((event.rsplit("/", 1)[-1], duration))
    )
    if args.log_compiles:
        jax.config.update("jax_log_compiles", True)
    from ntkpipe.jobs import run as run_job

    for row in run_job.RUN_STAGES:  # every stage's module: the job's imports, timed here
        __import__(f"ntkpipe.jobs.{row.module}")
    import ntkpipe.analysis.metrics  # noqa: F401  (compare's)

    imports_wall, imports_cpu = time.perf_counter() - STARTED, time.process_time()
    rows = [("imports", imports_wall, imports_cpu, 0, 0.0)]
    call = run_job._call

    def timed(stage, *arguments, **keywords):
        first, wall, cpu = len(events), time.perf_counter(), time.process_time()
        call(stage, *arguments, **keywords)
        compiled = [d for name, d in events[first:] if name == "backend_compile_duration"]
        rows.append(
            (
                stage.rule,
                time.perf_counter() - wall,
                time.process_time() - cpu,
                len(compiled),
                sum(compiled),
            )
        )

    run_job._call = timed
    shutil.rmtree(args.out, ignore_errors=True)
    config = json.loads(args.run.read_text())
    run_job.run_all_stages(config, args.out, analytic=args.analytic, log=lambda _: None)
    total_wall, total_cpu = time.perf_counter() - STARTED, time.process_time()
    print(f"{'part':>13} | {'wall s':>7} | {'CPU s':>6} | programs compiled | compile s")
    for name, wall, cpu, count, seconds in rows:
        print(f"{name:>13} | {wall:7.2f} | {cpu:6.2f} | {count:17d} | {seconds:9.2f}")
    compiles = sum(r[3] for r in rows)
    compile_s = sum(r[4] for r in rows)
    print(
        f"{'process':>13} | {total_wall:7.2f} | {total_cpu:6.2f} | {compiles:17d} | "
        f"{compile_s:9.2f}"
    )
    totals = defaultdict(float)
    for name, duration in events:
        totals[name] += duration
    listed = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(totals.items()))
    print(f"jax.monitoring totals: {listed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
