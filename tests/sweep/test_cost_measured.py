"""The cost model's memory against the peak resident memory of real jobs on CPU (slow).

Each job runs as the workflow runs it (`python -m ntkpipe.cli <stage>` in a subprocess, all at
once); its inputs are prepared in this process first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from ntkpipe import cli
from ntkpipe.sweep import cost
from ntkpipe.sweep import runs as ntk_config
from tests.sweep.test_cost import run_config

MEASURED = {
    # name: (stage, changes); prepared inputs are written in this process first.
    "train_tiny": ("train", {}),
    "train_wide": (
        "train",
        dict(
            model__depth=2,
            model__width=2048,
            data__n_train=64,
            data__n_test=64,
            training__steps=2,
            training__records=2,
            seeds__count=2,
            seeds__per_job=2,
        ),
    ),
    "train_deep": (
        "train",
        dict(
            model__depth=4,
            model__width=512,
            data__classes=list(range(10)),
            data__n_train=1000,
            data__n_test=500,
            training__steps=2,
            training__records=2,
            seeds__count=2,
            seeds__per_job=2,
        ),
    ),
    "train_depth_100": (
        "train",
        dict(
            model__depth=100,
            model__width=64,
            data__n_train=64,
            data__n_test=64,
            training__steps=2,
            training__records=2,
        ),
    ),  # fmt: skip
    "train_width_16k": (
        "train",
        dict(
            model__width=16384,
            data__n_train=128,
            data__n_test=64,
            training__steps=2,
            training__records=2,
        ),
    ),  # fmt: skip
    "linear_ten_classes": (
        "linear",
        dict(
            model__width=64,
            data__classes=list(range(10)),
            data__n_train=120,
            data__n_test=60,
            kernels__block_size=60,
        ),
    ),
}


@pytest.mark.slow
def test_model_bounds_measured_peak_memory(tmp_path):
    """mem_mb ≥ the measured peak RSS of the real job and at most twice it, for depths up to 100
    and widths up to 16384 (issue 10), and the model's variable part is not wildly off.

    Each job runs as the workflow runs it (`python -m ntkpipe.cli <stage>` in a subprocess, four
    at once); the peak resident memory comes from getrusage(RUSAGE_CHILDREN) of a wrapper process
    per job. The variable part of the measurement (peak − the tiny job's peak) must lie within
    [model / 4 − 64 MB, MEM_MARGIN × model + 64 MB], the model counting the arrays and the
    per-layer program memory (cost.program_mb).
    """
    commands = {}
    for name, (stage, changes) in MEASURED.items():
        commands[name] = _prepare(tmp_path / name, stage, run_config(**changes))
    processes = {name: _measure(command) for name, command in commands.items()}
    peak_mb = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
        peak_mb[name] = json.loads(out.strip().splitlines()[-1])["maxrss_mb"]
    base = peak_mb["train_tiny"]
    rows, failures = [], []
    for name, (stage, changes) in MEASURED.items():
        config = run_config(**changes)
        model_mb = cost.memory_bytes(config, stage) / 2**20 + cost.program_mb(config)
        requested = cost.mem_mb(config, stage)
        measured = peak_mb[name]
        rows.append(
            f"{name}: measured {measured:.0f} MB, model +{model_mb:.0f}, mem_mb {requested}"
        )
        variable = measured - base
        if not measured <= requested <= 2 * measured:
            failures.append(f"mem_mb not within [1, 2] x measured: {rows[-1]}")
        if not model_mb / 4 - 64 <= variable <= cost.MEM_MARGIN * model_mb + 64:
            failures.append(f"variable part {variable:.0f} MB off the model: {rows[-1]}")
    print("\n".join(rows))
    assert not failures, "\n".join(failures)


def _prepare(folder: Path, stage: str, config: dict) -> list[str]:
    """Writes the job's run config and input stores; returns its ntkpipe command."""
    folder.mkdir()
    run = folder / "run.json"
    run.write_text(ntk_config.to_json(config))
    init, kernel = folder / "init.zarr", folder / "kernel_init.zarr"
    with _float32():
        assert cli.main(["init", "--run", str(run), "--out", str(init)]) == 0
        if stage == "linear":
            assert (
                cli.main(
                    ["kernels", "--run", str(run), "--rule", "kernel_init", "--params", str(init)]
                    + ["--out", str(kernel)]
                )
                == 0
            )
    command = [stage, "--run", str(run), "--init", str(init), "--out", str(folder / "out.zarr")]
    if stage == "linear":
        command += ["--kernel", str(kernel)]
    return command


def _measure(command: list[str]) -> subprocess.Popen:
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'maxrss_mb': peak}))\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "NTKPIPE_JAX_CACHE": "off"}
    return subprocess.Popen(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "ntkpipe.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


class _float32:
    """Inputs are prepared as the ntkpipe command computes: float32 (the tests enable x64)."""

    def __enter__(self):
        self.enabled = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", False)

    def __exit__(self, *exc):
        jax.config.update("jax_enable_x64", self.enabled)
