"""Shared test setup: float64 for precise mathematical checks, one XLA thread pool per test run."""

import os
import shutil

import pytest

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory):
    """tests/configs/tiny.yaml (one job per stage) run once to its report, for the whole session.

    Shared by the end-to-end modules (test_workflow.py, test_changes_without_metadata.py): they
    only read it, ask Snakemake dry runs in it (which write nothing) or copy its results, never
    change it in place. Returns (working directory, its copy of the config).
    """
    from tests.workflow_helpers import CONFIGS, snakemake

    workdir = tmp_path_factory.mktemp("tiny-sweep")
    config = shutil.copy(CONFIGS / "tiny.yaml", workdir / "tiny.yaml")
    snakemake(workdir, config)
    return workdir, config
