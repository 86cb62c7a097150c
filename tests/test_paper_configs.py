"""Every paper-scale config (config/paper/*.yaml) is valid and plans its whole workflow.

Each config is dry-run (`snakemake -n`) twice: as it is, without its data (a warning names the
missing files, the one-line plan is printed, and the jobs are those `ntkpipe plan` counts), and
with its MNIST / CIFAR-10 folder replaced by a temporary one holding tiny files in the original
formats (idx files, pickled python batches), so that the cross-field checks (files present,
dataset sizes, optimizer options) and the DAG of every stage are exercised. The small configs
(config/small/*.yaml) are validated too.
"""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import yaml

from ntkpipe import datasets, start
from ntkpipe.sweep import plan, validate
from ntkpipe.sweep import runs as ntk_config
from tests.sweep.test_plan import TOO_BIG
from tests.workflow_helpers import REPO, job_counts, snakemake

PAPER = sorted((REPO / "config" / "paper").glob("*.yaml"))
SMALL = sorted((REPO / "config" / "small").glob("*.yaml"))
#: The experiments of the paper that must have a paper-scale config.
EXPECTED = {
    "fig1",
    "fig2",
    "fig3",
    "fig4_wrn",
    "fig_s2_cnn",
    "fig_s3_xent",
    "fig_s4_xent",
    "fig_s5",
    "fig_s6_relu1",
    "fig_s6_tanh",
    "fig_s9",
}


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    """Folders holding tiny MNIST idx files and CIFAR-10 batches in the original formats."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    mnist = root / "mnist"
    mnist.mkdir()
    for split, n in (("train", 20), ("t10k", 10)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(mnist / f"{split}-images-idx3-ubyte", images)
        _write_idx(mnist / f"{split}-labels-idx1-ubyte", labels)
    cifar = root / "cifar10" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in (*datasets.CIFAR10_FILES["train"], *datasets.CIFAR10_FILES["test"]):
        batch = {
            b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
            b"labels": list(range(10)),
        }
        (cifar / name).write_bytes(pickle.dumps(batch, protocol=2))
    return root


def test_every_experiment_has_a_paper_and_a_small_config():
    assert {p.stem for p in PAPER} == EXPECTED
    assert {p.stem for p in SMALL} == EXPECTED


def test_fake_files_are_read_by_the_dataset_readers(fake_data):
    x_train, y_train, x_test, _ = datasets.read_mnist(fake_data / "mnist")
    assert x_train.shape == (20, 28, 28) and x_test.shape == (10, 28, 28)
    assert list(y_train[:3]) == [0, 1, 2]
    x_train, _, _, _ = datasets.read_cifar10(fake_data / "cifar10")
    assert x_train.shape[0] == 50


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.stem)
def test_small_configs_are_valid_and_run_on_digits(path):
    config = validate.load_config(path)
    assert config["data"]["dataset"] == "digits"
    assert ntk_config.expand_runs(config)


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_config_passes_a_dry_run(path, fake_data, tmp_path):
    raw = yaml.safe_load(path.read_text())
    raw["data"]["root"] = str(fake_data / raw["data"]["dataset"])
    config = tmp_path / path.name
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    if path.stem in TOO_BIG:  # refused before any job, naming the job (tests/sweep/test_plan.py)
        result = snakemake(tmp_path, config, "-n", check=False)
        assert result.returncode != 0 and TOO_BIG[path.stem] in result.stderr
        return
    counts = job_counts(snakemake(tmp_path, config, "-n", "--quiet", "rules").stdout)
    runs = len(start.resolve_sweep([config])[2])  # the sweep as the workflow reads it
    assert counts["train"] == counts["linear"] == counts["compare"] == runs
    assert counts["report"] == 1
    kernels = raw.get("kernels", {})
    assert counts.get("kernel_init", 0) == (runs if kernels.get("initial", True) else 0)
    if raw.get("ensemble", {}).get("members", 0):
        assert counts["ensemble"] >= 1
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_config_dry_runs_without_its_data(path, tmp_path):
    result = snakemake(tmp_path, path, "-n", "--quiet", "rules", check=False)
    dataset = yaml.safe_load(path.read_text())["data"]["dataset"]
    assert f"ntkpipe: warning (dry run): data.root: 'data/{dataset}' is not a folder" in (
        result.stderr
    )
    if path.stem in TOO_BIG:
        assert result.returncode != 0 and "nothing was submitted" in result.stderr
        return
    assert result.returncode == 0, result.stderr[-3000:]
    table, _ = plan.plan_config(path, tmp_path)
    line = next(row for row in result.stderr.splitlines() if row.startswith("ntkpipe plan: "))
    assert line.removeprefix("ntkpipe plan: ").startswith(table.splitlines()[-1])
    planned = {row.split()[0]: int(row.split()[1]) for row in table.splitlines()[2:-1]}
    counts = job_counts(result.stdout)
    assert {rule: counts[rule] for rule in planned} == planned  # the plan counts every job
    assert not (tmp_path / "results").exists()


def _write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.mark.slow
def test_an_ensemble_the_ntk_gp_cannot_describe_stops_before_any_job(tmp_path):
    raw = yaml.safe_load((REPO / "config" / "small" / "fig2.yaml").read_text())
    raw["training"].update(optimizer="momentum")
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = snakemake(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "training.optimizer: 'momentum'" in message and "ensemble.members" in message
    assert not (tmp_path / "results").exists()
