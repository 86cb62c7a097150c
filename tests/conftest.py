"""Shared test setup: float64 for precise mathematical checks, one XLA thread pool per test run."""

import os
import shutil
import signal

import pytest

# A test run started in the background by a non-interactive shell (`cmd &`, nohup) inherits
# SIGINT ignored, and so would every command it starts: the tests of Ctrl-C reaching a job
# (tests/test_workers.py) need it as at a terminal. Children of a process that handles SIGINT
# start with its default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


@pytest.fixture(scope="session")
def tiny_custom_sweep(tmp_path_factory):
    """tests/configs/tiny_custom.yaml: the attention model of examples/custom (copied into the
    working directory, as a user keeps it next to the config) run once to its report, one job
    per run, for the whole session. Its probe cache lives in the working directory. Returns
    (working directory, its copy of the config)."""
    from tests.workflow_helpers import CONFIGS, REPO, snakemake

    workdir = tmp_path_factory.mktemp("tiny-custom-sweep")
    shutil.copytree(REPO / "examples" / "custom", workdir / "examples" / "custom")
    config = shutil.copy(CONFIGS / "tiny_custom.yaml", workdir / "tiny_custom.yaml")
    before = os.environ.get("NTKPIPE_CACHE_DIR")
    os.environ["NTKPIPE_CACHE_DIR"] = str(workdir / "cache")
    try:
        snakemake(workdir, config)
    finally:
        if before is None:
            os.environ.pop("NTKPIPE_CACHE_DIR")
        else:
            os.environ["NTKPIPE_CACHE_DIR"] = before
    return workdir, config
