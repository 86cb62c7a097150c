"""The fixed cost of one workflow job: start-up, imports, compilation; cold and warm cache.

A job of the workflow is a new process, `ntkpipe <stage> --run ... --out ...`. On a tiny run
(the first run of tests/configs/tiny.yaml) its time is almost all fixed cost. This benchmark runs
the init, train and kernels jobs as the rules do (`python -m ntkpipe.cli`), each

- cold: with an empty JAX compilation cache folder (every program is compiled and stored),
- warm: again with the same folder (every program is loaded), as all but the first job of a
  sweep run,
- off:  with NTKPIPE_JAX_CACHE=off (compiled every time, nothing stored),

and prints the best wall and CPU (user + sys) seconds of ``--repeat`` tries, then the parts of
the fixed cost: the interpreter, importing ntkpipe.jobs._job (JAX, Flax, xarray, zarr, optax), and
loading the dataset. Target (issue 5): ≤ 3 s per job with a warm cache.

Then the whole run, warm, in the two layouts of ``resources.jobs``, side by side: ``stages`` (six
jobs: init, kernels, train, kernels at θ_T, linear, compare, each a new process) against ``runs``
(one ``ntkpipe run`` job doing the six stages in one process), and their ratio.

    python benchmarks/bench_job_overhead.py [--repeat 3] [--stages init train kernels]

On a shared machine wall time includes waiting for a core; CPU time does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
TARGET_S = 3.0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="ntkpipe-overhead-") as tmp:
        folder = Path(tmp)
        run, model = write_run(folder)
        init = folder / "init.zarr"
        _job(["init", "--run", str(model), "--out", str(init)], {"NTKPIPE_JAX_CACHE": "off"})
        commands = {
            "init": ["init", "--run", str(model)],
            "train": ["train", "--run", str(run), "--init", str(init)],
            "kernels": [
                "kernels",
                "--run",
                str(model),
                "--rule",
                "kernel_init",
                "--params",
                str(init),
            ],
        }
        print(f"{'job':8s} {'cache':5s} {'wall s':>7s} {'cpu s':>7s}")
        warm = {}
        for stage in args.stages:
            rows = {}
            for mode in ("cold", "warm", "off"):
                rows[mode] = best_of(args.repeat, folder, commands[stage], mode)
                print(f"{stage:8s} {mode:5s} {rows[mode][0]:7.2f} {rows[mode][1]:7.2f}")
            warm[stage] = rows["warm"]
            cold, off = (rows[m][1] / rows["warm"][1] for m in ("cold", "off"))
            print(f"{stage:8s} CPU cold/warm {cold:.2f}, off/warm {off:.2f}")
        print_parts(args.repeat, run)
        print_run_layouts(args.repeat, folder, run, model)
    worst = max(warm.values(), key=lambda wall_cpu: wall_cpu[0])
    verdict = "meets" if worst[0] <= TARGET_S else "misses"
    print(
        f"target ≤ {TARGET_S:.0f} s per warm job: {verdict} (slowest warm job: wall "
        f"{worst[0]:.2f} s, cpu {worst[1]:.2f} s)"
    )
    return 0


def write_run(folder: Path) -> tuple[Path, Path]:
    """The first run of the tiny config: its run.json and model.json (init's stage config)."""
    from ntkpipe.sweep import runs as ntk_config

    run = ntk_config.expand_runs(TINY)[0]
    run_path, model_path = folder / "run.json", folder / "model.json"
    run_path.write_text(ntk_config.to_json(run.config))
    model_path.write_text(ntk_config.to_json(ntk_config.stage_config(run.config, "init")))
    return run_path, model_path


def best_of(repeat: int, folder: Path, command: list[str], mode: str) -> tuple[float, float]:
    """Best (wall, cpu) seconds of `repeat` jobs; a cold job gets a new empty cache each time."""
    best = (float("inf"), float("inf"))
    cache = folder / f"cache-{command[0]}"
    for _ in range(repeat):
        if mode == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        elif mode == "warm" and not cache.exists():
            _job(
                [*command, "--out", str(folder / "warmup.zarr")], {"NTKPIPE_JAX_CACHE": str(cache)}
            )
        out = folder / "out.zarr"
        shutil.rmtree(out, ignore_errors=True)
        env = {"NTKPIPE_JAX_CACHE": "off" if mode == "off" else str(cache)}
        wall, cpu = _job([*command, "--out", str(out)], env)
        best = (min(best[0], wall), min(best[1], cpu))
    return best


def print_parts(repeat: int, run: Path) -> None:
    """The parts of the fixed cost, each in a new interpreter (best of `repeat`)."""
    parts = {
        "interpreter": "pass",
        "import ntkpipe.jobs._job": "import ntkpipe.jobs._job",
        "import + load dataset": (
            f"import json, ntkpipe.jobs._job as s; s.load_data(json.load(open({str(run)!r})))"
        ),
    }
    print("parts of the fixed cost (new interpreter each):")
    previous = 0.0
    for name, code in parts.items():
        wall, cpu = min(
            (_timed([sys.executable, "-c", code], {}) for _ in range(repeat)),
            key=lambda t: t[1],
        )
        print(f"  {name:24s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  (+{cpu - previous:.2f} s cpu)")
        previous = cpu


def print_run_layouts(repeat: int, folder: Path, run: Path, model: Path) -> None:
    """Wall and CPU seconds of a whole run, warm cache: six stage jobs against one run job."""
    cache = {"NTKPIPE_JAX_CACHE": str(folder / "cache-layouts")}
    chain = folder / "chain"
    f = {name: str(chain / f"{name}.zarr") for name in ("init", "k0", "train", "kT", "lin", "m")}
    stage_jobs = [
        ["init", "--run", str(model), "--out", f["init"]],
        ["kernels", "--run", str(model), "--rule", "kernel_init", "--params", f["init"]]
        + ["--out", f["k0"]],
        ["train", "--run", str(run), "--init", f["init"], "--out", f["train"]],
        ["kernels", "--run", str(run), "--rule", "kernel_final", "--params", f["train"]]
        + ["--out", f["kT"]],
        ["linear", "--run", str(run), "--init", f["init"], "--kernel", f["k0"], "--out", f["lin"]],
        ["compare", "--run", str(run), "--train", f["train"], "--linear", f["lin"]]
        + ["--kernel-init", f["k0"], "--kernel-final", f["kT"], "--out", f["m"]],
    ]

    def six_jobs():
        shutil.rmtree(chain, ignore_errors=True)
        times = [_job(args, cache) for args in stage_jobs]
        return sum(t[0] for t in times), sum(t[1] for t in times)

    def one_job():
        shutil.rmtree(folder / "whole", ignore_errors=True)
        return _job(["run", "--run", str(run), "--dir", str(folder / "whole")], cache)

    six_jobs(), one_job()  # fill the cache
    layouts = {"stages": six_jobs, "runs": one_job}
    best = {name: (float("inf"), float("inf")) for name in layouts}
    for _ in range(repeat):  # alternate the two, so that both see the same machine
        for name, measure in layouts.items():
            wall, cpu = measure()
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    print("a whole run, warm cache (best of alternating tries):")
    for name, label in (("stages", "stages (6 jobs)"), ("runs", "runs   (1 job) ")):
        wall, cpu = best[name]
        print(f"  resources.jobs: {label}  wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    ratio_wall, ratio_cpu = (best["stages"][i] / best["runs"][i] for i in (0, 1))
    print(f"  stages / runs: wall {ratio_wall:.2f}, cpu {ratio_cpu:.2f}")


def _job(args: list[str], env: dict) -> tuple[float, float]:
    return _timed([sys.executable, "-m", "ntkpipe.cli", *args], env)


def _timed(command: list[str], env: dict) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, cwd=REPO
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="tries per measurement (best kept)")
    parser.add_argument(
        "--stages",
        nargs="+",
        default=["init", "train", "kernels"],
        choices=["init", "train", "kernels"],
        help="jobs to time",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat: {args.repeat} must be ≥ 1")
    return args


if __name__ == "__main__":
    sys.exit(main())
