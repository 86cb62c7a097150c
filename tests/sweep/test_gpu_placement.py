"""A sweep that asks for GPUs is not run on a machine without one by Snakemake's local executor
(a login node): refused before any job, with the ways out (issue 21)."""

from __future__ import annotations

import pytest

from ntkpipe.sweep import cost_settings
from ntkpipe.sweep.gpu_placement import gpus_on_this_machine, local_gpu_problem
from tests.workflow_helpers import CONFIGS, snakemake, write_config

GPU = cost_settings.load_settings({"gpu": 1})


@pytest.mark.parametrize(
    "settings, executor, gpus, refused",
    [
        (GPU, "local", 0, True),  # a login node: refused
        (GPU, "slurm", 0, False),  # the cluster gives the GPUs
        (GPU, "local", 2, False),  # a GPU workstation
        (cost_settings.load_settings({}), "local", 0, False),  # a CPU sweep
        (cost_settings.load_settings({"gpu": 1, "gpu_rules": []}), "local", 0, False),
    ],
)
def test_gpu_sweeps_are_refused_only_where_no_gpu_can_be_had(settings, executor, gpus, refused):
    problem = local_gpu_problem(settings, executor, gpus, "fig1")
    assert (problem is not None) == refused
    if refused:
        assert "'fig1' asks for 1 GPU(s)" in problem and "snakemake --profile slurm" in problem
        assert "--config 'resources={gpu: 0}'" in problem


def test_device_files_are_counted_without_starting_jax():
    assert gpus_on_this_machine() >= 0


def test_a_gpu_sweep_started_locally_without_a_gpu_runs_no_job(tmp_path):
    if gpus_on_this_machine():
        pytest.skip("this machine has a GPU: the sweep may run here")
    config = write_config(tmp_path / "gpu.yaml", CONFIGS / "tiny.yaml", resources__gpu=1)
    result = snakemake(tmp_path, config, check=False, cores=1)
    assert result.returncode != 0
    assert "but Snakemake runs its jobs on this machine, which has no GPU" in result.stderr
    assert not list(tmp_path.glob("results/*/runs/**/*.zarr"))
    # The way out the message gives: the same sweep on this machine's CPUs (one cheap target).
    target = "results/tiny/sweep.json"
    allowed = snakemake(tmp_path, config, target, "--config", "resources={gpu: 0}", check=False)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert (tmp_path / target).is_file()
