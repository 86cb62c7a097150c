"""Faults: kill -9 at random points, checkpoint resume, divergence, bad stores, injection.

(a) A sweep killed at random points (the whole Snakemake process group, SIGKILL) leaves no store
    that looks complete unless it is; ``--rerun-incomplete`` then finishes it with stores that are
    bit-identical (every array, every parameter, the config) to an uninterrupted run.
(b) Training checkpoints every K steps and a rerun of the killed job resumes from the last
    checkpoint (its log says so) with a bit-identical result.
(c) A diverging run is recorded as diverged with its step, its stages succeed, and the summary
    and the HTML report show it.
(d) A missing or corrupted store stops a stage with exit code 1 and a message naming it.
(e) Config values that could reach a shell command or the HTML report are refused by the config
    validation before any job (wildcards and swept strings are constrained) or escaped.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ntkpipe import cli
from ntkpipe.errors import ConfigError
from ntkpipe.io import provenance
from ntkpipe.io import stores as storage
from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import validate
from tests.workflow_helpers import snakemake, snakemake_command

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("NTKPIPE_FAULT_SEED", "20190218"))
"""Seed of the kill delays (print it on failure to replay: NTKPIPE_FAULT_SEED=...)."""

ONE_RUN = {
    "name": "faults",
    "data": {"dataset": "digits", "classes": [3, 8], "n_train": 16, "n_test": 12},
    "model": {"depth": 1, "width": 32},
    "training": {"steps": 64, "records": 5, "checkpoint_every": 16},
    "kernels": {"block_size": 8, "final": False, "analytic": False},
    "seeds": {"count": 2, "per_job": 2},
}
STORES = ("init", "kernel_init", "train", "linear", "metrics")
UNSTABLE_ATTRS = {"wall_time_s", "git_commit"}  # the job's time; the checkout may move on


# ---------------------------------------------------------------- (a) kill -9 and rerun


@pytest.mark.parametrize("jobs", ["stages", "runs"])
def test_killed_sweep_reruns_to_bit_identical_stores(tmp_path, monkeypatch, jobs):
    """Both layouts: a job per stage, and one job per run (killed between or inside stages)."""
    config_path = tmp_path / "faults.yaml"
    config_path.write_text(yaml.safe_dump({**ONE_RUN, "resources": {"jobs": jobs}}))
    run_id = ntk_config.expand_runs(ONE_RUN)[0].run_id
    target = f"results/faults/runs/{run_id}/metrics.zarr"
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference_dir.mkdir()
    killed_dir.mkdir()
    # One compilation cache for both: the reruns use the reference's compiled programs.
    monkeypatch.setenv("NTKPIPE_JAX_CACHE", str(tmp_path / "jax_cache"))
    reference = _start(reference_dir, config_path, target)  # runs while we kill the other
    rng = random.Random(SEED)
    # Random kill points: once `done` stores are complete, a random fraction into the next jobs.
    for done in (rng.choice([1, 2]), rng.choice([3, 4])):
        delay = rng.uniform(0.0, 3.0)
        process = _start(killed_dir, config_path, target)
        _kill_when(process, killed_dir / "results", done, delay)
        checked = _check_no_store_looks_complete_unless_it_is(killed_dir / "results")
        print(f"killed {delay:.1f} s after {done} stores: {checked} complete stores verified")
        snakemake(killed_dir, config_path, "--unlock")
    assert reference.wait() == 0, _tail(reference_dir)
    snakemake(killed_dir, config_path, target)  # --rerun-incomplete is in the helper
    for name in STORES:
        ref = reference_dir / f"results/faults/runs/{run_id}/{name}.zarr"
        _assert_same_store(ref, killed_dir / ref.relative_to(reference_dir))


def _start(workdir: Path, config: Path, target: str) -> subprocess.Popen:
    command, env = snakemake_command(workdir, config, target)
    log = open(workdir / f"snakemake-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    return subprocess.Popen(
        command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _tail(workdir: Path) -> str:
    """The end of the last Snakemake log in `workdir` and of its jobs' logs (for failures)."""
    logs = sorted(workdir.glob("snakemake-*.log")) + sorted(workdir.glob("results/*/logs/**/*.log"))
    return "\n".join(f"== {log}\n{log.read_text()[-3000:]}" for log in logs[-6:])


def _kill_when(process: subprocess.Popen, results: Path, done: int, delay: float) -> None:
    """SIGKILL to Snakemake and every job it started (its process group), `delay` s after
    `done` stores are complete (or when it has finished by itself)."""
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        if _count_complete(results) >= done:
            break
        time.sleep(0.2)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _count_complete(results: Path) -> int:
    """Complete stores under `results` (Snakemake may be deleting folders meanwhile)."""
    try:
        stores = list(results.glob("*/runs/**/*.zarr")) if results.exists() else []
    except FileNotFoundError:  # a folder removed while we walked
        return 0
    return sum(storage.is_complete(path) for path in stores)


def _check_no_store_looks_complete_unless_it_is(results: Path) -> int:
    """Every store that claims completeness reads back whole; returns how many did."""
    complete = 0
    for path in sorted(results.glob("**/*.zarr")) if results.exists() else []:
        if storage.is_complete(path):
            storage.read_store(path)  # every array against its digest
            if (path / storage.PARAMS_GROUP).exists():
                storage.read_params(path)
            complete += 1
    for leftover in results.glob("**/.*.partial-*") if results.exists() else []:
        assert not storage.is_complete(leftover), leftover
    return complete


def _assert_same_store(expected: Path, actual: Path) -> None:
    a, b = storage.read_store(expected), storage.read_store(actual)
    assert set(a.variables) == set(b.variables), (expected.name, set(a.variables))
    for name in a.variables:
        x, y = a[name].values, b[name].values
        assert x.dtype == y.dtype and x.shape == y.shape, (expected.name, name)
        same = np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        assert same, f"{expected.name}: {name} differs after kill and rerun"
    stable = lambda attrs: {k: v for k, v in attrs.items() if k not in UNSTABLE_ATTRS}
    assert stable(a.attrs) == stable(b.attrs), expected.name
    if (expected / storage.PARAMS_GROUP).exists():
        pa, pb = _flat(storage.read_params(expected)), _flat(storage.read_params(actual))
        assert pa.keys() == pb.keys()
        for key in pa:
            assert np.array_equal(pa[key], pb[key]), f"{expected.name}: params/{key} differs"


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}/{key}").items()}
    return {prefix: tree}


# ---------------------------------------------------------------- (b) checkpoints


def test_training_resumes_from_its_last_checkpoint(tmp_path, float32, capsys, monkeypatch):
    # One compilation cache: the killed and the resumed job load the reference's programs, so
    # this also checks that cached programs compute bit-identically.
    monkeypatch.setenv("NTKPIPE_JAX_CACHE", str(tmp_path / "jax_cache"))
    run, init = checkpointed_run(tmp_path, every=400)
    reference = tmp_path / "reference.zarr"
    _cli("train", "--run", run, "--init", init, "--out", reference)
    assert not Path(f"{reference}.ckpt").exists(), "the checkpoint outlives a finished job"

    killed = tmp_path / "train.zarr"
    checkpoint = Path(f"{killed}.ckpt")
    saved = _kill_at_checkpoint(["train", "--run", run, "--init", init, "--out", killed])
    assert not killed.exists() and checkpoint.is_file()

    # A checkpoint of another config (here another learning rate) is never resumed.
    other = _run_json(
        tmp_path / "other.json",
        model={"depth": 2, "width": 256},
        data={"n_train": 64, "n_test": 32},
        training={"steps": 40, "records": 3, "checkpoint_every": 400, "learning_rate": 0.5},
    )
    stale = tmp_path / "stale.ckpt"
    stale.write_bytes(checkpoint.read_bytes())
    args = ["train", "--run", str(other), "--init", str(init), "--checkpoint", str(stale)]
    assert cli.main([*args, "--out", str(tmp_path / "other.zarr")]) == 0
    assert "resuming" not in capsys.readouterr().out

    log = _cli("train", "--run", run, "--init", init, "--out", killed)
    resumed = [line for line in log.splitlines() if "resuming from step" in line]
    assert resumed, log
    step = int(resumed[0].split("resuming from step")[1].split()[0])
    assert step >= saved and step % 400 == 0 and step < 4000, resumed
    assert "step 1/4000" not in log, "the steps before the checkpoint were trained again"
    _assert_same_store(reference, killed)
    assert not checkpoint.exists()

    # SIGTERM (SLURM's time limit or preemption): the job checkpoints at the end of its segment
    # and exits with a message; the rerun resumes there, bit-identical.
    stopped = tmp_path / "stopped.zarr"
    message = _signal_at_checkpoint(
        ["train", "--run", run, "--init", init, "--out", stopped], signal.SIGTERM
    )
    assert "SIGTERM at step" in message and "rerunning the job" in message, message
    step = int(message.split("SIGTERM at step")[1].split()[0])
    assert 0 < step < 4000 and not stopped.exists()
    log = _cli("train", "--run", run, "--init", init, "--out", stopped)
    assert f"resuming from step {step}" in log, log
    _assert_same_store(reference, stopped)


def _ntkpipe(args, env=None) -> subprocess.Popen:
    """An ntkpipe command started in the background, its output (stdout and stderr) a pipe."""
    command = [sys.executable, "-m", "ntkpipe.cli", *map(str, args)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env or _env()
    )


def _signal_at_checkpoint(args, number: int) -> str:
    """Runs an ntkpipe command, sends it ``number`` right after its first checkpoint; returns
    its output, asserting that it exited with status 1 (an error message, not the signal)."""
    output, status = signalled_at_checkpoint(args, number)
    assert status == 1, output
    return output


def signalled_at_checkpoint(args, number: int, env=None) -> tuple[str, int]:
    """Runs an ntkpipe command, sends it ``number`` right after its first checkpoint; (its
    output, its exit status)."""
    process = _ntkpipe(args, env)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("checkpoint: step"):
            process.send_signal(number)
            break
    lines += process.stdout.readlines()
    process.wait()
    return "".join(lines), process.returncode


def _kill_at_checkpoint(args, at_step: int | None = None) -> int:
    """Runs an ntkpipe command and SIGKILLs it right after it logs its first checkpoint."""
    process = _ntkpipe(args)
    saved = None
    for line in process.stdout:
        if line.startswith("checkpoint: step"):
            saved = int(line.split()[2])
            if at_step is None or saved >= at_step:
                process.kill()
                break
    process.wait()
    assert saved is not None and process.returncode == -signal.SIGKILL, "killed too late"
    return saved


# ---------------------------------------------------------------- (c) divergence


def test_diverging_run_is_recorded_and_reported(tmp_path, float32):
    sweep = {
        **ONE_RUN,
        "name": "diverge",
        "data": {**ONE_RUN["data"], "root": "</td><script>alert(1)</script>"},
        "training": {"steps": 64, "records": 5},
        "seeds": {"count": 1, "per_job": 1},
        # issue 10, failure 10: η = 1e30 stopped the sweep in kernel_final ("Eigenvalues did
        # not converge"); now its spectrum is NaN and the run is recorded as diverged
        "sweep": {"training.learning_rate": [1.0, 1.0e6, 1.0e30]},
    }
    loaded = validate.load_config(sweep)
    runs_dir = tmp_path / "runs"
    for run in ntk_config.expand_runs(loaded):
        _run_stages_in_process(runs_dir / run.run_id, run.config)
    sweep_json = tmp_path / "sweep.json"
    sweep_json.write_text(json.dumps(loaded))
    summary, report = tmp_path / "summary.zarr", tmp_path / "report.html"
    assert (
        cli.main(
            ["collect", "--sweep", str(sweep_json), "--runs", str(runs_dir)]
            + ["--out", str(summary)]
        )
        == 0
    )
    ds = storage.read_store(summary)
    for lr in (1.0e6, 1.0e30):
        status = ds.status.sel(learning_rate=lr).values.ravel()
        assert list(status) == ["diverged"], ds.status.values
    diverged_step = int(ds.diverged_step.sel(learning_rate=1.0e6).values.ravel()[0])
    assert 0 < diverged_step <= 64
    assert ds.status.sel(learning_rate=1.0).values.ravel()[0] in ("ok", "lr_above_critical")
    (tmp_path / "figures").mkdir()
    args = ["report", "--summary", str(summary), "--figures", str(tmp_path / "figures")]
    assert cli.main([*args, "--out", str(report)]) == 0
    html = report.read_text()
    assert "diverged" in html
    assert "<script>alert(1)</script>" not in html  # (e): config text is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _run_stages_in_process(run_dir: Path, config: dict) -> None:
    run_dir.mkdir(parents=True)
    run = run_dir / "run.json"
    run.write_text(ntk_config.to_json(config))
    names = ("init", "kernel_init", "train", "kernel_final", "linear")
    stores = {name: run_dir / f"{name}.zarr" for name in names}
    steps = [
        ["init", "--run", run, "--out", stores["init"]],
        ["kernels", "--run", run, "--rule", "kernel_init", "--params", stores["init"]]
        + ["--out", stores["kernel_init"]],
        ["train", "--run", run, "--init", stores["init"], "--out", stores["train"]],
        ["kernels", "--run", run, "--rule", "kernel_final", "--params", stores["train"]]
        + ["--out", stores["kernel_final"]],
        ["linear", "--run", run, "--init", stores["init"], "--kernel", stores["kernel_init"]]
        + ["--out", stores["linear"]],
        ["compare", "--run", run, "--train", stores["train"], "--linear", stores["linear"]]
        + ["--kernel-init", stores["kernel_init"], "--kernel-final", stores["kernel_final"]]
        + ["--out", run_dir / "metrics.zarr"],
    ]
    for args in steps:
        assert cli.main([str(a) for a in args]) == 0, args  # a diverged run is not a failure


# ---------------------------------------------------------------- (d) bad stores


def test_missing_and_corrupted_stores_are_named(tmp_path, capsys, float32):
    run = _run_json(tmp_path / "run.json")
    missing = tmp_path / "nowhere" / "init.zarr"
    args = [
        "kernels",
        "--run",
        str(run),
        "--rule",
        "kernel_init",
        "--out",
        str(tmp_path / "k.zarr"),
    ]
    args.append("--params")
    assert cli.main([*args, str(missing)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "Traceback" not in err

    init = tmp_path / "init.zarr"
    assert cli.main(["init", "--run", str(run), "--out", str(init)]) == 0
    chunk = next(
        p for p in sorted((init / "f0_train").rglob("*")) if p.is_file() and p.name != "zarr.json"
    )
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))
    capsys.readouterr()
    assert (
        cli.main(
            [
                "linear",
                "--run",
                str(run),
                "--init",
                str(init),
                "--kernel",
                str(init),
                "--out",
                str(tmp_path / "l.zarr"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert str(init) in err and "corrupted" in err

    (init / "zarr.json").write_text("{ not json")
    assert cli.main([*args, str(init)]) == 1
    err = capsys.readouterr().err
    assert str(init) in err and "corrupted" in err
    assert not (tmp_path / "k.zarr").exists() and not (tmp_path / "l.zarr").exists()


def test_a_partial_store_of_a_killed_job_is_not_taken_for_a_store(tmp_path, capsys, float32):
    run = _run_json(tmp_path / "run.json")
    init = tmp_path / "init.zarr"
    assert cli.main(["init", "--run", str(run), "--out", str(init)]) == 0
    attrs = json.loads((init / "zarr.json").read_text())
    attrs["attributes"].pop(provenance.COMPLETE_ATTR)  # as a job killed before its last write
    (init / "zarr.json").write_text(json.dumps(attrs))
    assert not storage.is_complete(init)
    args = ["kernels", "--run", str(run), "--rule", "kernel_init", "--params", str(init)]
    args += ["--out", str(tmp_path / "k.zarr")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert str(init) in err and "incomplete" in err and "--rerun-incomplete" in err


# ---------------------------------------------------------------- (e) injection


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "x; touch PWNED"}, "name"),
        ({"name": "$(touch PWNED)"}, "name"),
        ({"name": "<script>alert(1)</script>"}, "name"),
        ({"sweep": {"data.root": ["a;touch PWNED", "b"]}}, "sweep.data.root[0]"),
        ({"sweep": {"data.root": ["`touch PWNED`"]}}, "sweep.data.root[0]"),
        ({"sweep": {"model.width; touch PWNED": [16]}}, "sweep.model.width; touch PWNED"),
        ({"data": {"root": "a\nb"}}, "data.root"),
    ],
)
def test_injection_attempts_are_refused_by_the_validation(changes, field):
    with pytest.raises(ConfigError, match=re.escape(field)):
        validate.load_config({**ONE_RUN, **changes})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "$(touch PWNED)"}, "name"),
        ({"sweep": {"data.root": ["a;touch PWNED"]}}, "sweep.data.root[0]"),
    ],
)
def test_snakemake_stops_an_injection_before_any_job(tmp_path, changes, field):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**ONE_RUN, **changes}))
    result = snakemake(tmp_path, path, check=False)
    assert result.returncode != 0
    assert field in result.stdout + result.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "results").exists()


def test_a_run_config_param_reaches_the_job_quoted(tmp_path):
    """resources.jobs: runs passes the whole run config on the job's command line: a free
    string in it (data.root, unused by digits) is one quoted argument, never shell code."""
    hostile = 'it\'s $(touch PWNED); `touch PWNED2` "quoted" & > out'
    config = {**ONE_RUN, "data": {**ONE_RUN["data"], "root": hostile}}
    config["resources"] = {"jobs": "runs"}
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(config))
    run_id = ntk_config.expand_runs(ONE_RUN)[0].run_id
    snakemake(tmp_path, path, f"results/faults/runs/{run_id}/metrics.zarr")
    assert not list(tmp_path.glob("PWNED*")) and not (tmp_path / "out").exists()
    written = json.loads((tmp_path / "results/faults/runs" / run_id / "run.json").read_text())
    assert written["data"]["root"] == hostile


def test_run_ids_and_wildcards_are_constrained():
    pattern = re.compile(f"^(?:{ntk_config.RUN_ID_PATTERN})$")
    runs = ntk_config.expand_runs({**ONE_RUN, "sweep": {"model.width": [16, 32]}})
    assert all(pattern.match(run.run_id) for run in runs)
    for bad in (
        "width~16/seeds~0;rm -rf ~",
        "width~$(id)/seeds~0",
        "../../etc/seeds~0",
        "seeds~0 x",
    ):
        assert not pattern.match(bad), bad


# ---------------------------------------------------------------- helpers


@pytest.fixture
def float32():
    """Stages called in this process compute as the ntkpipe command does (float32, no x64)."""
    import jax

    enabled = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", enabled)


def checkpointed_run(tmp_path: Path, every: int) -> tuple[Path, Path]:
    """A run long enough to be stopped mid-way (2 × 256, n = 64, 4000 steps, a checkpoint every
    `every` steps) and its θ₀: (run.json, init.zarr) in `tmp_path`."""
    run = _run_json(
        tmp_path / "run.json",
        model={"depth": 2, "width": 256},
        data={"n_train": 64, "n_test": 32},
        training={"steps": 4000, "records": 6, "checkpoint_every": every},
    )
    init = tmp_path / "init.zarr"
    assert cli.main(["init", "--run", str(run), "--out", str(init)]) == 0
    return run, init


def _run_json(path: Path, **sections) -> Path:
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in ONE_RUN.items()}
    config["seeds"] = {"count": 1, "per_job": 1}
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path.write_text(ntk_config.to_json(ntk_config.expand_runs(config)[0].config))
    return path


def _cli(*args) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ntkpipe.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _env() -> dict:
    """The environment of ntkpipe subprocesses: no compilation cache unless a test sets one."""
    return {"NTKPIPE_JAX_CACHE": "off", **os.environ}


# ---------------------------------------------------------------- (f) full disks


def test_an_error_reaches_the_jobs_stderr_when_its_log_cannot_be_written(tmp_path):
    """issue 10, failure 13: on a full disk the job's log is lost, and with it the reason. The
    workflow's shell prefix keeps the job's stderr as descriptor 3; /dev/full stands for the log
    on a full disk."""
    missing = tmp_path / "nowhere" / "run.json"
    command = (
        "set -euo pipefail; export NTKPIPE_ERROR_FD=3; exec 3>&2; "
        f"{sys.executable} -m ntkpipe.cli init --run {missing} --out {tmp_path}/x.zarr "
        "> /dev/full 2>&1"
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=_env())
    assert result.returncode == 1
    assert result.stderr == f"ntkpipe init: error: --run: no run config at {missing}\n"
    rules = (Path(__file__).parents[1] / "workflow" / "rules" / "config.smk").read_text()
    assert 'shell.prefix("set -euo pipefail; export NTKPIPE_ERROR_FD=3; exec 3>&2; ")' in rules


def test_empty_jax_cache_entries_are_dropped_before_jax_starts(tmp_path):
    """A job stopped by a full disk leaves a 0-byte entry (JAX writes entries in place)."""
    (tmp_path / "abc-cache").write_bytes(b"")
    (tmp_path / "abc-atime").write_bytes(b"12345678")
    (tmp_path / "def-cache").write_bytes(b"x" * 10)
    env = {"NTKPIPE_JAX_CACHE": str(tmp_path)}
    assert cli.configure_compilation_cache(env) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["def-cache"]
