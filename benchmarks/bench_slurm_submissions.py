"""sbatch calls and scheduler records of N runs through SLURM, per job layout (real slurmctld).

Needs a SLURM cluster (e.g. `.ci/slurm-up` as root). For each layout the tiny sweep of N runs
(one width, N seeds of one job each, so every run asks for the same resources and arrays are
safe; no analytic kernels, so every run job is ready at once) is started with the shipped
workflow profile and a site profile on the default partition, every job submitted on hold
(`slurm_extra=--hold`: nothing runs, so this measures the submissions alone, in seconds). A
PATH shim counts the `sbatch` processes the plugin starts; `squeue` counts the scheduler's
records (a pending array is one record; `squeue -r` shows its tasks). Once the submissions have
settled, snakemake is stopped and its jobs cancelled.

Layouts: `runs` (one job per run), `groups` (`--groups run=runs --group-components runs=25`),
`arrays` (`--slurm-array-jobs=run`); `stages` and `stages+arrays` count the first wave only
(init jobs: the later stages wait for it).

    python benchmarks/bench_slurm_submissions.py --runs 100
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {
    "runs": ("runs", []),
    "groups": ("runs", ["--groups", "run=runs", "--group-components", "runs=25", "--cores", "2"]),
    "arrays": ("runs", ["--slurm-array-jobs=run"]),
    "stages": ("stages", []),
    "stages+arrays": ("stages", ["--slurm-array-jobs=init"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--layouts", nargs="*", default=list(LAYOUTS))
    parser.add_argument("--settle", type=float, default=25.0, help="seconds without sbatch")
    args = parser.parse_args()
    print(f"{'layout':<15}{'runs':>6}{'sbatch calls':>14}{'records':>9}{'tasks':>7}{'s':>6}")
    for name in args.layouts:
        sbatch, records, tasks, seconds = measure(name, args.runs, args.settle)
        print(f"{name:<15}{args.runs:>6}{sbatch:>14}{records:>9}{tasks:>7}{seconds:>6.0f}")


def measure(layout: str, n_runs: int, settle: float) -> tuple[int, int, int, float]:
    jobs_layout, extra = LAYOUTS[layout]
    with tempfile.TemporaryDirectory(prefix="ntkpipe-sbatch-") as tmp:
        work = Path(tmp)
        calls = work / "sbatch-calls"
        shim = work / "bin"
        shim.mkdir()
        real = subprocess.run(["which", "sbatch"], capture_output=True, text=True).stdout.strip()
        (shim / "sbatch").write_text(f'#!/bin/sh\necho x >> {calls}\nexec {real} "$@"\n')
        (shim / "sbatch").chmod(0o755)
        config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
        config.update(name="submissions", sweep={"model.width": [16]})
        config["seeds"] = {"count": n_runs, "per_job": 1}
        config["kernels"] = {**config["kernels"], "analytic": False}
        config["resources"] = {"jobs": jobs_layout}
        (work / "sweep.yaml").write_text(yaml.safe_dump(config))
        sys.path.insert(0, str(REPO))
        from ntkpipe.slurm_profile import install_profile

        partition = _default_partition()
        site = install_profile(work / "site", cpu_partition=partition).folder
        prefix = f"sub{os.getpid()}{layout.replace('+', '')}"
        env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
        command = [
            sys.executable, "-m", "snakemake", "--workflow-profile",
            str(REPO / "workflow" / "profiles" / "slurm"), "--profile", str(site),
            "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
            "--configfile", str(work / "sweep.yaml"), "--slurm-jobname-prefix", prefix,
            "--slurm-init-seconds-before-status-checks", "5",
            "--set-resources", *[f"{r}:slurm_extra='--hold'" for r in
                                 ("run", "init", "kernel_init", "train", "kernel_final",
                                  "linear", "compare", "collect", "figures", "report")],
            "--jobs", str(n_runs + 10), *extra,
        ]  # fmt: skip
        started = time.monotonic()
        log = open(Path(tempfile.gettempdir()) / f"bench_slurm_submissions.{layout}.log", "w")
        process = subprocess.Popen(
            command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        last, seen = time.monotonic(), 0
        while time.monotonic() - last < settle and process.poll() is None:
            time.sleep(1)
            count = _count(calls)
            if count != seen:
                seen, last = count, time.monotonic()
        seconds = last - started
        records = _squeue(prefix, expand=False)
        tasks = _squeue(prefix, expand=True)
        # SIGTERM would wait for the held jobs: stop snakemake at once, cancel them here.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _cancel(prefix)
        log.close()
        return _count(calls), records, tasks, seconds


def _count(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def _squeue(prefix: str, expand: bool) -> int:
    out = subprocess.run(
        ["squeue", "-h", *(["-r"] if expand else []), "-o", "%j"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sum(1 for name in out.split() if name.startswith(prefix))


def _cancel(prefix: str) -> None:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout
    ids = [line.split()[0] for line in out.splitlines() if line.split()[1].startswith(prefix)]
    if ids:
        subprocess.run(["scancel", *{i.split("_")[0] for i in ids}], check=False)


def _default_partition() -> str:
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout
    return next(p[:-1] for p in out.split() if p.endswith("*"))


if __name__ == "__main__":
    main()
