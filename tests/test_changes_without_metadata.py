"""End to end: changes are seen from the stores' own records, without Snakemake's metadata
(issue 10, failures 4–6: a fresh clone with moved results, a store of another run put at a run's
path, a hand-edited run.json, a deleted store).

One tiny sweep is run once; each test copies its results into a fresh working directory (no
`.snakemake/`, file times kept as `mv` keeps them), changes something, runs Snakemake on a cheap
target (ntkpipe checks the records when the workflow starts, before any job) and asks Snakemake
(dry run) what it would compute.
"""

from __future__ import annotations

import json
import shutil

import pytest

from ntkpipe import cli
from tests.workflow_helpers import CONFIGS, job_counts, snakemake, write_config

pytestmark = pytest.mark.slow
TINY = CONFIGS / "tiny.yaml"
CHEAP = "results/tiny/sweep.json"  # a target that runs no stage: the workflow's start only


@pytest.fixture(scope="module")
def finished(tiny_sweep):
    """The session's tiny sweep (tests/conftest.py); every test works on a copy of it."""
    return tiny_sweep[0]


@pytest.fixture
def clone(finished, tmp_path):
    """A fresh working directory holding the finished sweep's results (no .snakemake/)."""
    shutil.copytree(finished / "results", tmp_path / "results", copy_function=shutil.copy2)
    return tmp_path


def _run(workdir, config, *targets):
    return snakemake(workdir, config, *targets, cores=1)


def test_a_fresh_clone_sees_a_new_width(clone):
    """failure 4: results moved into a fresh clone, width 32 added: "Nothing to be done"."""
    # the user's own config file (tiny.yaml, next to the results as in the sweep's first start)
    wider = write_config(clone / "tiny.yaml", TINY, sweep={"model.width": [16, 32, 64]})
    started = _run(clone, wider, CHEAP)
    assert "results/tiny/summary.zarr: results/tiny/runs/width~32/seeds~0/metrics.zarr" in (
        started.stderr
    )
    counts = job_counts(_run(clone, wider, "-n").stdout)
    assert counts["init"] == 2 and counts["train"] == 2 and counts["collect"] == 1


def test_a_new_learning_rate_reruns_training_in_a_fresh_clone(clone):
    other = write_config(clone / "slower.yaml", TINY, training__learning_rate=0.5)
    refused = snakemake(clone, other, CHEAP, cores=1, check=False)
    assert refused.returncode == 1, refused.stderr
    assert "holds the results of another config (started from tiny.yaml; this start: " in (
        refused.stderr
    )
    assert "--config replace=true" in refused.stderr and "training.learning_rate: " in (
        refused.stderr
    )
    # the sweep's own change: its config file (tiny.yaml) edited
    slower = write_config(clone / "tiny.yaml", TINY, training__learning_rate=0.5)
    started = _run(clone, slower, CHEAP)
    assert "width~16/seeds~0/run.json: differs from the config; rewritten" in started.stderr
    counts = job_counts(_run(clone, slower, "-n").stdout)
    assert counts["train"] == 4 and counts["linear"] == 4 and counts["compare"] == 4
    assert "init" not in counts and "kernel_init" not in counts


def test_a_swapped_store_is_recomputed_and_never_used(clone):
    """failure 5: width~64's train.zarr at width~16's path flowed into the metrics."""
    runs = clone / "results" / "tiny" / "runs"
    small, large = runs / "width~16" / "seeds~0", runs / "width~64" / "seeds~0"
    shutil.rmtree(small / "train.zarr")
    shutil.copytree(large / "train.zarr", small / "train.zarr", copy_function=shutil.copy2)
    args = ["compare", "--run", small / "run.json", "--train", small / "train.zarr"]
    args += ["--linear", small / "linear.zarr", "--kernel-init", small / "kernel_init.zarr"]
    assert cli.main([str(a) for a in [*args, "--out", clone / "m.zarr"]]) == 1  # named below
    started = _run(clone, TINY, CHEAP)
    assert f"{small.relative_to(clone)}/train.zarr: computed from another config; moved aside" in (
        started.stderr
    )
    assert not (small / "train.zarr").exists() and not (small / "metrics.zarr").exists()


def test_a_hand_edited_run_json_is_rewritten(clone):
    """failure 6: a hand-edited run.json gave mixed results or was never regenerated."""
    run_json = clone / "results" / "tiny" / "runs" / "width~16" / "seeds~1" / "run.json"
    original = run_json.read_text()
    edited = json.loads(original)
    edited["training"]["learning_rate"] = 0.25
    run_json.write_text(json.dumps(edited))
    started = _run(clone, TINY, CHEAP)
    assert "width~16/seeds~1/run.json: differs from the config; rewritten" in started.stderr
    assert run_json.read_text() == original
    counts = job_counts(_run(clone, TINY, "-n").stdout)
    assert counts["train"] == 1 and counts["compare"] == 1 and "init" not in counts


@pytest.mark.parametrize("metadata", [False, True])
def test_a_deleted_store_is_recreated(finished, clone, metadata):
    """A deleted intermediate store: Snakemake alone keeps the outputs that follow it."""
    if metadata:
        shutil.copytree(finished / ".snakemake", clone / ".snakemake")
    shutil.rmtree(clone / "results" / "tiny" / "runs" / "width~64" / "seeds~1" / "init.zarr")
    started = _run(clone, TINY, CHEAP)
    assert "width~64/seeds~1/train.zarr: init.zarr is missing or computed again; moved aside" in (
        started.stderr
    )
    counts = job_counts(_run(clone, TINY, "-n").stdout)
    assert counts["init"] == 1 and counts["compare"] == 1 and counts["collect"] == 1
