"""The shipped SLURM profile against a real slurmctld (marker `slurm`).

Needs a SLURM cluster whose controller answers, e.g. the one-node cluster of `.ci/slurm-up` (run
as root; `.ci/slurm-down` stops it). Without one the tests skip, saying why; with
NTKPIPE_REQUIRE_SLURM=1 (CI) they fail instead, and with NTKPIPE_SLURM_UP=1 the fixture starts
the cluster itself with `.ci/slurm-up` and stops it afterwards.

Every job goes through the profiles as a cluster user runs them: the design card's `snakemake
--profile slurm` after `ntkpipe install-profile` in a fresh home (the tiny sweep), or the layered
`snakemake --workflow-profile workflow/profiles/slurm --profile <profile>` (with a CPU partition
`debug`, a GPU partition `gpu` and a one-minute partition `short`, added by .ci/slurm-up):
sbatch, the plugin's squeue status queries (there is no accounting database), retries with
`attempt`-dependent memory, the plugin's choice of partition per job, job arrays, a job longer
than its partition's MaxTime as segments, and the jobs' `python -m snakemake` on the node. What
SLURM allocated is read back with `scontrol show job` (finished jobs stay visible for MinJobAge
= 300 s).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ntkpipe.io import stores as storage
from ntkpipe.slurm_profile import install_profile
from ntkpipe.start import resolve_sweep
from ntkpipe.sweep import cost, cost_settings, stage_table
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep.cost_settings import load_settings
from tests.test_reliability import _assert_same_store
from tests.workflow_helpers import CONFIGS, write_config

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
# One snakemake run: about 1-2 min on 2 idle cores, several times that on a loaded machine.
TIMEOUT_S = 480
_RUNS = itertools.count()
# The segmented run: steps of the tiny network (about 250k a second on one idle core, 90k on a
# loaded machine: 60-170 s of training, more than one one-minute segment holds after its
# start-up and its 15 s reserve; 5M steps took 20 s on an idle machine and fitted in one
# segment), and the seconds of work its calibration predicts (8 segments planned: room for a
# loaded machine).
SEGMENTED_STEPS = 15_000_000
SEGMENTED_SECONDS = 320.0
SWEEP_STAGES = tuple(
    row.rule
    for row in stage_table.STAGES
    if row.scope in ("run", "analytic") and row.layout != "runs"
)

# Two rules, each a separate SLURM job that records what SLURM allocated to it. `first` asks for
# GPUS GPUs (1 where the default partition has a GPU, e.g. the pretend one of .ci/slurm-up).
# `second` fails on its first attempt: the profile's retries resubmit it, asking for memory that
# grows with `attempt`.
TWO_RULES = textwrap.dedent(
    """
    RECORD = "scontrol show job --oneliner $SLURM_JOB_ID"

    rule all:
        input: "second.txt"

    rule first:
        output: "first.txt"
        threads: 1
        resources: mem_mb=300, runtime=5, gpu=GPUS
        shell: RECORD + " > {output}"

    rule second:
        input: "first.txt"
        output: "second.txt"
        threads: 2
        resources: mem_mb=lambda wildcards, attempt: 200 * attempt, runtime=7
        shell:
            "echo $SLURM_JOB_ID >> attempts.txt; "
            "if [ $(wc -l < attempts.txt) -lt 2 ]; then exit 3; fi; "
            + RECORD + " > {output}"
    """
)


@pytest.fixture(scope="module")
def cluster():
    """A SLURM controller that answers (skip, or fail in CI, when there is none)."""
    problem = _cluster_problem()
    started = False
    if problem and os.environ.get("NTKPIPE_SLURM_UP") == "1":
        subprocess.run([str(REPO / ".ci" / "slurm-up")], check=True, timeout=600)
        started = True
        problem = _cluster_problem()
    if problem:
        if os.environ.get("NTKPIPE_REQUIRE_SLURM") == "1":
            pytest.fail(f"NTKPIPE_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)
    yield
    if started:
        subprocess.run([str(REPO / ".ci" / "slurm-down")], check=False, timeout=120)


def test_two_rule_workflow_runs_as_slurm_jobs_through_the_shipped_profile(cluster, tmp_path):
    gpus = min(_default_partition_gpus(), 1)
    (tmp_path / "Snakefile").write_text(TWO_RULES.replace("GPUS", str(gpus)))
    started = time.monotonic()
    _snakemake_on_slurm(tmp_path, "--snakefile", str(tmp_path / "Snakefile"))
    elapsed = time.monotonic() - started

    first = _record(tmp_path / "first.txt")
    second = _record(tmp_path / "second.txt")
    attempts = (tmp_path / "attempts.txt").read_text().split()
    # Each rule ran in its own SLURM job, on the cluster's default partition.
    assert first["JobId"] != second["JobId"]
    assert first["Partition"] == second["Partition"] == _default_partition()
    # The rules' resources reached sbatch: threads -> --cpus-per-task, mem_mb -> --mem,
    # runtime (minutes) -> --time, gpu -> --gpus.
    allocated = (first["CPUs/Task"], first["MinMemoryNode"], first["TimeLimit"])
    assert allocated == ("1", "300M", "00:05:00")
    assert first.get("TresPerJob") == ("gres:gpu:1" if gpus else None)
    assert "TresPerJob" not in second
    # `second` failed once and was resubmitted (a new job) with the memory of attempt 2.
    assert len(attempts) == 2 and attempts[1] == second["JobId"] != attempts[0]
    allocated = (second["CPUs/Task"], second["MinMemoryNode"], second["TimeLimit"])
    assert allocated == ("2", "400M", "00:07:00")
    print(f"two-rule workflow through SLURM: {elapsed:.0f} s")


def test_tiny_sweep_routes_gpu_jobs_to_the_gpu_partition(cluster, tmp_path):
    # One sweep point, one seed, resources.gpu: 1: every per-run stage once, each its own SLURM
    # job; the plugin sends the jobs that ask for a GPU to `gpu`, the others to `debug`. The
    # summary, figures and report (three more serial jobs) are left to tests/test_workflow.py.
    # The design card's command, `snakemake --profile slurm`, after the README's one set-up step
    # (`ntkpipe install-profile`) in a fresh home: no --workflow-profile.
    home = tmp_path / "home"
    env = {
        **_job_environment(tmp_path),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }
    setup = [
        sys.executable, "-m", "ntkpipe.cli", "install-profile", "--cpu-partition",
        _default_partition(), "--gpu-partition", "gpu", "--gpus-per-node", "1",
    ]  # fmt: skip
    installed = subprocess.run(setup, env=env, capture_output=True, text=True, check=True)
    assert "use it with: snakemake --profile slurm " in installed.stdout
    config = write_config(
        tmp_path / "sweep.yaml", CONFIGS / "tiny.yaml", name="slurm", sweep={"model.width": [16]},
        seeds__count=1, seeds__per_job=1, resources__gpu=1,
    )  # fmt: skip
    started = time.monotonic()
    result = _snakemake_on_slurm(
        tmp_path, "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
        "--until", "compare", "--slurm-keep-successful-logs", profile="slurm", env=env,
        workflow_profile=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert "ntkpipe plan: " in result.stderr  # the one-line plan at start

    out = tmp_path / "results" / "slurm"
    (run,) = [p.parent for p in out.glob("runs/**/run.json")]
    run_id = str(run.relative_to(out / "runs"))
    for row in stage_table.RUN_STAGES:
        # Complete (the completion marker), every array matching its digest, the right stage.
        dataset = storage.read_store(run / row.store, stage=row.attribute)
        assert dataset.attrs["config_file"] == row.config_file, row.store
        if row.config_file == "run.json":  # model.json: the model config only, no run id
            assert json.loads(dataset.attrs["config"])["run_id"] == run_id, row.store
    jobs = _slurm_jobs(result.prefix)
    partitions = {job["rule"]: job["Partition"] for job in jobs}
    assert sorted(job["rule"] for job in jobs) == sorted(SWEEP_STAGES)  # one submission each
    gpu_rules = set(cost_settings.DEFAULT_SETTINGS["gpu_rules"])
    assert {r for r, p in partitions.items() if p == "gpu"} == set(SWEEP_STAGES) & gpu_rules
    assert {r for r, p in partitions.items() if p == "debug"} == set(SWEEP_STAGES) - gpu_rules
    for job in jobs:  # the GPU request reached sbatch exactly for the GPU partition's jobs
        assert (job.get("TresPerJob") == "gres:gpu:1") == (job["Partition"] == "gpu"), job
    print(f"tiny sweep through SLURM: {elapsed:.0f} s, partitions {partitions}")


def test_many_small_runs_share_allocations(cluster, tmp_path):
    # Four runs, one job per run (resources.jobs: runs), bundled four to an allocation with
    # Snakemake's groups: two submissions in all (the bundle and the shared analytic kernels)
    # instead of 4 x 6 + 1 = 25 with one job per stage. --cores caps a group job's request (its
    # four runs could otherwise ask for more CPUs than the node has: SLURM holds it as
    # PartitionConfig forever); within the allocation the runs then go one after another. Each
    # run asks for a GPU (resources.gpu: 1): the bundle asks for one GPU, not the sum of four
    # (the node has one: the sum would never be scheduled).
    site = _site_profile(tmp_path)
    config = write_config(
        tmp_path / "sweep.yaml", CONFIGS / "tiny.yaml", name="slurm",
        sweep={"model.width": [16, 24]}, seeds__count=2, seeds__per_job=1,
        resources__gpu=1, resources__jobs="runs",
    )  # fmt: skip
    result = _snakemake_on_slurm(
        tmp_path, "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
        "--until", "run", "--groups", "run=runs", "--group-components", "runs=4",
        "--cores", "2",  # what one group job may ask for: the CPUs of a node (its runs queue)
        profile=site,
    )  # fmt: skip
    runs = [p.parent for p in (tmp_path / "results" / "slurm").glob("runs/**/run.json")]
    assert len(runs) == 4
    for run in runs:
        for row in stage_table.RUN_STAGES:
            store = row.store.removesuffix(".zarr")
            assert storage.is_complete(run / f"{store}.zarr"), (run, store)
    jobs = _slurm_jobs(result.prefix)
    per_run = len(jobs) / len(runs)
    assert len(jobs) == 2, jobs
    (analytic,) = [job for job in jobs if job["rule"] == "analytic"]
    (bundle,) = [job for job in jobs if job["rule"] != "analytic"]  # the group "runs" of 4 runs
    assert analytic["Partition"] == "debug" and "gpu" not in analytic.get("TresPerJob", "")
    assert bundle["Partition"] == "gpu", bundle
    assert bundle.get("TresPerJob") == "gres:gpu:1", bundle  # one GPU, not 4 × 1
    print(f"many small runs: {len(jobs)} submissions for {len(runs)} runs ({per_run:.2f} per run)")


def test_sweep_of_identical_runs_goes_as_one_job_array(cluster, tmp_path):
    # Two runs of one size (two seed chunks), one job per run: their requests are identical, so
    # the plugin may submit them as one array (--slurm-array-jobs=run): one sbatch, one record
    # while pending, a task per run. (Arrays of a rule whose jobs differ are refused:
    # tests/sweep/test_arrays.py.)
    site = _site_profile(tmp_path)
    config = write_config(
        tmp_path / "sweep.yaml", CONFIGS / "tiny.yaml", name="arrays", sweep={"model.width": [16]},
        seeds__count=2, seeds__per_job=1, kernels__analytic=False, kernels__final=False,
        resources__jobs="runs",
    )  # fmt: skip
    result = _snakemake_on_slurm(
        tmp_path, "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
        "--until", "run", "--slurm-array-jobs=run", profile=site,
    )  # fmt: skip
    runs = [p.parent for p in (tmp_path / "results" / "arrays").glob("runs/**/run.json")]
    assert len(runs) == 2
    for run in runs:
        for store in ("init", "kernel_init", "train", "linear", "metrics"):
            assert storage.is_complete(run / f"{store}.zarr"), (run, store)
    jobs = _slurm_jobs(result.prefix)
    assert len(jobs) == 2 and all(job["rule"] == "run" for job in jobs), jobs
    assert len({job["ArrayJobId"] for job in jobs}) == 1, jobs  # one submission
    assert sorted(job["ArrayTaskId"] for job in jobs) == ["1", "2"]
    print(f"arrays: {len(runs)} runs in one array job {jobs[0]['ArrayJobId']}")


def test_a_training_job_longer_than_the_cap_runs_as_segments(cluster, tmp_path):
    # The partition `short` (.ci/slurm-up) ends jobs after one minute. It stands here for the
    # GPU partition (GPU partitions have the tight wall-time caps; the jobs use the CPU): the
    # run job (every stage of the run, resources.jobs: runs) asks for a GPU and is calibrated to
    # need several minutes, so the plan splits it into segments that each ask for the cap.
    # Each segment trains until 15 s before its SLURM time limit, saves its checkpoint and
    # stops; the rule's retries (raised by the plan's segment count) resume it. The stores
    # are bit-identical to one uninterrupted job.
    site = install_profile(
        tmp_path / "site", cpu_partition=_default_partition(), gpu_partition="short",
        gpus_per_node=1,
    ).folder  # fmt: skip
    section = {"jobs": "runs", "gpu": 1, "gpu_rules": ["run"], "max_runtime": {"gpu": 1},
               "calibration": "calibration.json"}  # fmt: skip
    config = write_config(
        tmp_path / "sweep.yaml", CONFIGS / "tiny.yaml", name="segments",
        sweep={"model.width": [16]}, seeds__count=1, seeds__per_job=1,
        training__steps=SEGMENTED_STEPS, training__checkpoint_every=SEGMENTED_STEPS // 40,
        kernels__final=False, kernels__analytic=False,
        resources=section,
    )  # fmt: skip
    _, _, (run,) = resolve_sweep([str(config)])
    _write_calibration(tmp_path / "calibration.json", cost.rule_cost(run.config, "run"))
    planned = cost.rule_segments(run.config, "run", load_settings(section, tmp_path))
    assert planned >= 3, planned
    # The uninterrupted job, side by side: the same function on the same run config.
    reference = tmp_path / "reference"
    uninterrupted = subprocess.Popen(
        [sys.executable, "-m", "ntkpipe.cli", "run", "--config", _run_json(run), "--dir",
         str(reference), "--threads", "1"],
        env=_job_environment(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    started = time.monotonic()
    result = _snakemake_on_slurm(
        tmp_path, "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
        "--until", "run", profile=site,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert uninterrupted.wait(timeout=TIMEOUT_S) == 0, uninterrupted.stderr.read()
    assert f"1 jobs above the wall-time cap run as up to {planned} segments" in result.stderr

    jobs = [job for job in _slurm_jobs(result.prefix) if job["rule"] == "run"]
    assert 2 <= len(jobs) <= planned, len(jobs)  # several segments, within the planned count
    for job in jobs:  # each asked for the cap and ran on `short`, within its limit
        assert job["Partition"] == "short" and job["TimeLimit"] == "00:01:00", job
        assert job.get("TresPerJob") == "gres:gpu:1", job
        assert job["JobState"] in ("COMPLETED", "FAILED"), job
    stopped = [job for job in jobs if job["JobState"] == "FAILED"]
    assert len(stopped) == len(jobs) - 1 and all(job["ExitCode"] == "1:0" for job in stopped)
    log = (tmp_path / "results" / "segments" / "logs" / "run").glob("**/*.log")
    said = "\n".join(path.read_text() for path in log)
    assert "resuming from step" in said, said[-3000:]

    folder = tmp_path / "results" / "segments" / "runs" / run.run_id
    assert not list(folder.glob("*.ckpt"))  # the finished job dropped its checkpoint
    for store in ("init", "kernel_init", "train", "linear", "metrics"):
        _assert_same_store(reference / f"{store}.zarr", folder / f"{store}.zarr")
    print(f"segments: {len(jobs)} SLURM jobs of at most 1 min for one run, {elapsed:.0f} s")


# ---------------------------------------------------------------- helpers


def _run_json(run) -> str:
    """A run's full config as the `run` rule passes it (ntkpipe.rules.run_config_param)."""
    return json.dumps(ntk_runs.stage_config(run.config, "train"), sort_keys=True)


def _write_calibration(path: Path, run_cost) -> None:
    """Calibrated constants that make the run job take SEGMENTED_SECONDS of work on its GPU
    (and little memory): above the one-minute cap of `short`."""
    constants = {"start_s": 5.0, "s_per_flop": SEGMENTED_SECONDS / run_cost.flops,
                 "base_mb": 600.0, "mb_per_byte": 1e-6, "jobs": 1}  # fmt: skip
    path.write_text(json.dumps({"constants": {"gpu": {"run": constants}}}))


def _cluster_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None when a controller answers."""
    missing = [tool for tool in ("sinfo", "sbatch", "squeue", "scontrol") if not shutil.which(tool)]
    if missing:
        return (
            f"SLURM client commands not found ({', '.join(missing)}): install slurm-client "
            "(Debian: apt-get install slurmctld slurmd munge) and start a cluster with "
            ".ci/slurm-up (as root)"
        )
    try:
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return (
            "no SLURM controller answers `scontrol ping` within 20 s: start one with .ci/slurm-up"
        )
    if "UP" not in ping.stdout:
        said = (ping.stdout + ping.stderr).strip().splitlines() or ["scontrol ping: no answer"]
        return f"no SLURM controller answers ({said[-1]}): start one with .ci/slurm-up"
    if _default_partition() is None:
        return "the SLURM cluster has no default partition with a usable node (sinfo)"
    return None


def _default_partition() -> str | None:
    """The partition sinfo marks as default ('*'), if one of its nodes is idle or mixed."""
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True, timeout=20, check=False
    ).stdout
    for line in out.splitlines():
        name, _, state = line.partition(" ")
        if name.endswith("*") and state.strip() in {"idle", "mix", "alloc"}:
            return name[:-1]
    return None


def _default_partition_gpus() -> int:
    """GPUs of the default partition's first node (sinfo's GRES column, e.g. `gpu:1`)."""
    out = subprocess.run(
        ["sinfo", "-h", "-p", _default_partition(), "-o", "%G"],
        capture_output=True, text=True, timeout=20, check=False,
    ).stdout  # fmt: skip
    for gres in out.split()[0].split(",") if out.split() else []:
        name, _, count = gres.partition("(")[0].partition(":")
        if name == "gpu":
            return int(count.rpartition(":")[2] or 1)
    return 0


def _site_profile(tmp_path: Path) -> Path:
    """A site profile as `ntkpipe install-profile` writes it: CPU partition `debug` (the
    default), GPU partition `gpu` (.ci/slurm-up), one GPU per node."""
    installed = install_profile(
        tmp_path / "site", cpu_partition=_default_partition(), gpu_partition="gpu", gpus_per_node=1
    )
    return installed.folder


def _slurm_jobs(prefix: str) -> list[dict[str, str]]:
    """Every SLURM job of this test (job name `<prefix>_<uuid>`), with `rule` from its comment."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True, check=False
    ).stdout
    jobs = []
    for line in out.splitlines():
        job = _fields(line)
        if job.get("JobName", "").startswith(prefix):
            job["rule"] = job.get("Comment", "").removeprefix("rule_").partition("_wildcards")[0]
            jobs.append(job)
    return jobs


def _snakemake_on_slurm(
    workdir: Path,
    *args: str,
    profile: Path | str | None = None,
    env: dict | None = None,
    workflow_profile: bool = True,
) -> subprocess.CompletedProcess:
    """`snakemake [--workflow-profile workflow/profiles/slurm] [--profile <profile>]` in
    `workdir`; on failure, the tail of its output and logs. The result's `prefix` is the job
    name prefix of its SLURM jobs."""
    prefix = f"ntkpipetest{os.getpid()}n{next(_RUNS)}"
    site = ["--profile", str(profile)] if profile is not None else []
    layered = ["--workflow-profile", str(PROFILE)] if workflow_profile else []
    command = [
        sys.executable, "-m", "snakemake", *layered, *site,
        "--directory", str(workdir),
        # First status query after 2 s (the profile waits 20 s, for large sweeps).
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-jobname-prefix", prefix, *args,
    ]  # fmt: skip
    env = env or _job_environment(workdir)
    try:
        result = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired as error:
        _cancel_jobs(prefix)
        pytest.fail(f"snakemake on SLURM did not finish in {TIMEOUT_S} s:\n{_tail(error.stderr)}")
    if result.returncode != 0:
        logs = "\n".join(
            f"--- {log}\n{log.read_text()[-2000:]}"
            for log in sorted(workdir.glob(".snakemake/slurm_logs/**/*.log"))
        )
        pytest.fail(
            f"snakemake on SLURM failed ({result.returncode}):\n{_tail(result.stderr)}\n{logs}"
        )
    result.prefix = prefix
    return result


def _job_environment(workdir: Path) -> dict:
    """The environment of snakemake and of its jobs (sbatch --export=ALL): `ntkpipe` on PATH.

    Where ntkpipe is not installed (a source checkout), a small `ntkpipe` script runs
    `python -m ntkpipe.cli` from the repository.
    """
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path}
    if shutil.which("ntkpipe", path=path) is None:
        bin_dir = workdir / "bin"
        bin_dir.mkdir(exist_ok=True)
        shim = bin_dir / "ntkpipe"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ntkpipe.cli "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{path}"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _cancel_jobs(prefix: str) -> None:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True, check=False
    ).stdout
    ids = [line.split()[0] for line in out.splitlines() if line.split()[1].startswith(prefix)]
    if ids:
        subprocess.run(["scancel", *ids], check=False)


def _record(path: Path) -> dict[str, str]:
    """The `key=value` fields of `scontrol show job --oneliner` written by a job (TWO_RULES)."""
    return _fields(path.read_text())


def _fields(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


def _tail(text: str | bytes | None, size: int = 6000) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-size:]
