"""The cost model: parameter counts, scaling laws, Snakemake resources, plus the GPU request of a
grouped SLURM submission (the measured peak memory of real jobs: test_cost_measured.py)."""

from __future__ import annotations

import math
import subprocess
import sys

import jax
import numpy as np
import pytest
import yaml

from ntkpipe import datasets
from ntkpipe.errors import ConfigError
from ntkpipe.jobs import _job
from ntkpipe.sweep import cost, cost_settings, validate
from ntkpipe.sweep import runs as ntk_config
from tests.workflow_helpers import REPO

BASE = {
    "name": "cost",
    "data": {"dataset": "digits", "classes": [3, 8], "n_train": 16, "n_test": 12},
    "model": {"depth": 1, "width": 16},
    "training": {"steps": 4, "records": 3},
    "kernels": {"block_size": 8, "final": False, "analytic": False},
    "seeds": {"count": 1, "per_job": 1},
}


def run_config(**changes) -> dict:
    """The resolved config of the first run of BASE with dotted `changes` (section__key=value)."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    return ntk_config.expand_runs(config)[0].config


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize(
    ("architecture", "depth", "width", "b_std", "dataset"),
    [
        ("fc", 1, 16, 0.1, "digits"),
        ("fc", 3, 32, 0.0, "digits"),
        ("cnn", 2, 8, 0.1, "digits"),
        ("cnn", 1, 4, 0.0, "digits"),
        ("wrn", 1, 8, 0.1, "digits"),
        ("wrn", 2, 4, 0.0, "digits"),
    ],
)
def test_parameter_count_is_exact(architecture, depth, width, b_std, dataset):
    config = run_config(
        model__architecture=architecture,
        model__depth=depth,
        model__width=width,
        model__b_std=b_std,
        data__dataset=dataset,
        kernels__analytic=False,
    )
    data = datasets.from_config(config)
    net = _job.build_network(config["model"], data)
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), data.x_train[:1])
    expected = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))
    assert cost.n_params(config) == expected


def test_mlp_parameter_count_formula():
    # d_in = 64 (8 × 8 digits), k = 1: P = 64 w + (L − 1) w² + w + L w + 1 with biases.
    config = run_config(model__depth=3, model__width=100)
    assert cost.n_params(config) == 64 * 100 + 2 * 100 * 100 + 100 + 3 * 100 + 1


def test_train_cost_is_linear_in_seeds_and_steps():
    one = run_config(seeds__count=1, seeds__per_job=1, training__steps=100)
    four = run_config(seeds__count=4, seeds__per_job=4, training__steps=100)
    longer = run_config(seeds__count=1, seeds__per_job=1, training__steps=1000)
    assert cost.memory_bytes(four, "train") == pytest.approx(4 * cost.memory_bytes(one, "train"))
    assert cost.flops(four, "train") == pytest.approx(4 * cost.flops(one, "train"))
    assert cost.memory_bytes(longer, "train") == cost.memory_bytes(one, "train")
    # FLOPs: 3 F B T for the steps plus F n R for the records.
    step_flops = cost.flops(longer, "train") - cost.flops(one, "train")
    forward = 2.0 * (64 * 16 + 16 * 1)  # F of the 1-hidden-layer MLP, weights only
    assert step_flops == pytest.approx(3 * forward * 16 * 900)


def test_memory_grows_with_width_squared_for_deep_nets():
    narrow = cost.memory_bytes(run_config(model__depth=3, model__width=1000), "train")
    wide = cost.memory_bytes(run_config(model__depth=3, model__width=4000), "train")
    assert 14 < wide / narrow < 16.1  # P ≈ 2 w² dominates


def test_closed_form_memory_grows_with_the_square_of_n_times_k():
    ten = dict(data__classes=list(range(10)), kernels__block_size=64)
    small = cost.memory_bytes(run_config(data__n_train=100, **ten), "linear")
    large = cost.memory_bytes(run_config(data__n_train=400, **ten), "linear")
    assert 14 < large / small < 16.5  # the (n_tr k)² eigendecompositions dominate


def test_evaluation_is_blocked_only_for_big_networks():
    assert cost.eval_block_size(run_config(model__width=4096, data__n_train=300)) is None
    wrn = run_config()  # the paper's Fig. 4 WRN on all of CIFAR-10 (the cost needs no files)
    wrn["data"] = {**wrn["data"], "dataset": "cifar10", "n_train": 50000, "n_test": 10000}
    wrn["data"]["classes"] = list(range(10))
    wrn["model"] = {**wrn["model"], "architecture": "wrn", "depth": 1, "width": 1024}
    wrn["training"] = {**wrn["training"], "optimizer": "sgd", "batch_size": 8}
    per_image = 2 * 32 * 32 * 1024 * (1 + 2 * (1 + 1 / 4 + 1 / 16)) + 10  # A, floats
    block = cost.eval_block_size(wrn)
    assert block == int(cost.EVAL_BUDGET_BYTES // (4 * per_image))
    assert 16 < block < 64
    unblocked = 4 * 50000 * per_image
    assert cost.memory_bytes(wrn, "train") < unblocked / 100  # the blocks bound the evaluation


def test_every_stage_has_a_cost():
    config = run_config()
    for stage in cost.STAGES:
        if stage in ("collect", "figures", "report"):
            one = cost.sweep_resources(validate.load_config(BASE), 1, stage)
        else:
            one = {"mem_mb": cost.mem_mb(config, stage), "runtime": cost.runtime_min(config, stage)}
        assert one["mem_mb"] >= cost.BASE_MB["cpu"] and one["runtime"] >= cost.START_MIN, stage
    with pytest.raises(ValueError, match="stage: 'fit' is not one of"):
        cost.flops(config, "fit")


def test_a_retry_asks_for_more():
    config = run_config(model__width=2048)
    first = cost.rule_resources(config, "train", attempt=1)
    second = cost.rule_resources(config, "train", attempt=2)
    third = cost.rule_resources(config, "train", attempt=3)
    assert second["mem_mb"] in (
        2 * first["mem_mb"] - 1,
        2 * first["mem_mb"],
        2 * first["mem_mb"] + 1,
    )
    assert third["mem_mb"] >= 2 * second["mem_mb"] - 1
    assert first["runtime"] < second["runtime"] < third["runtime"]
    with pytest.raises(ValueError, match="attempt"):
        cost.mem_mb(config, "train", attempt=0)


def test_sweep_rules_grow_with_the_number_of_runs():
    sweep = validate.load_config(BASE)
    small = cost.sweep_resources(sweep, 10, "collect")
    large = cost.sweep_resources(sweep, 100_000, "collect")
    assert large["mem_mb"] > small["mem_mb"] and large["runtime"] >= small["runtime"]


# ---------------------------------------------------------------- GPU settings


def test_gpu_is_asked_only_for_the_gpu_rules():
    config = run_config()
    settings = cost_settings.load_settings({"gpu": 1})
    assert cost.rule_resources(config, "train", settings=settings)["gpu"] == 1
    assert cost.rule_resources(config, "kernel_final", settings=settings)["gpu"] == 1
    assert "gpu" not in cost.rule_resources(config, "init", settings=settings)
    assert "gpu" not in cost.rule_resources(config, "compare", settings=settings)
    assert "gpu" not in cost.rule_resources(config, "train")  # default: CPU only
    only_train = cost_settings.load_settings({"gpu": 2, "gpu_rules": ["train"]})
    assert "gpu" not in cost.rule_resources(config, "linear", settings=only_train)
    on_gpu = cost.rule_resources(config, "train", settings=only_train)
    assert on_gpu["mem_mb"] > cost.rule_resources(config, "train")["mem_mb"]  # CUDA's host memory


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"gpu": -1}, "resources.gpu: -1 must be an integer in 0 … 16"),
        ({"gpu": 1.5}, "resources.gpu: 1.5"),
        ({"gpu": True}, "resources.gpu: True"),
        ({"gpu_rules": ["train", "plots"]}, "resources.gpu_rules: 'plots' is not one of"),
        ({"gpu_rules": "train"}, "resources.gpu_rules: 'train' must be a list"),
        ({"gpus": 1}, "resources.gpus: unknown key; allowed keys: gpu, gpu_rules, jobs"),
        ({"jobs": "points"}, "resources.jobs: 'points' is not one of stages, runs"),
        ([1], "resources: [1] is not a mapping"),
    ],
)
def test_bad_resources_section_is_named(section, message):
    with pytest.raises(ConfigError) as info:
        cost_settings.load_settings(section)
    assert message in str(info.value)


def test_defaults_are_cpu_only():
    loaded = cost_settings.load_settings(None, root="/nonexistent")  # no calibration file there
    assert loaded == cost_settings.load_settings({}, root="/nonexistent")
    assert loaded.pop("constants") == {}
    assert loaded == cost_settings.DEFAULT_SETTINGS and loaded["gpu"] == 0
    assert cost_settings.DEFAULT_SETTINGS["jobs"] == "stages"


def test_one_job_per_run_asks_for_its_largest_stage_and_all_their_time():
    """resources.jobs: runs: the peak memory is the largest stage's (each stage frees its arrays
    before the next starts), the FLOPs, and so the time, add up; a GPU when run is a GPU rule."""
    config = run_config()
    stages = ["init", "kernel_init", "train", "kernel_final", "linear", "compare"]
    each = {rule: cost.rule_resources(config, rule) for rule in stages}
    whole = cost.rule_resources(config, "run")
    assert whole["mem_mb"] == max(r["mem_mb"] for r in each.values())
    assert max(r["runtime"] for r in each.values()) <= whole["runtime"]
    assert whole["runtime"] <= sum(r["runtime"] for r in each.values())
    bigger = run_config(training__steps=10**6, model__width=4096)
    assert cost.rule_resources(bigger, "run")["runtime"] > whole["runtime"]  # training's FLOPs
    without_final = {**config, "kernels": {**config["kernels"], "final": False}}
    assert cost.rule_resources(without_final, "run")["runtime"] <= whole["runtime"]
    assert (
        cost.rule_resources(config, "run", settings=cost_settings.load_settings({"gpu": 1}))["gpu"]
        == 1
    )


def test_one_job_per_run_without_initial_kernels_leaves_out_their_cost():
    """kernels.initial false: the run job's FLOPs are those of every stage but Θ̂₀'s."""
    with_theta0 = run_config(training__optimizer="momentum", data__n_train=300, data__n_test=40)
    without = run_config(
        training__optimizer="momentum", data__n_train=300, data__n_test=40, kernels__initial=False
    )
    sizes = cost._Sizes.of(with_theta0)
    kernels = cost.stage_cost(with_theta0, "kernels").flops
    assert kernels > 0
    flops = cost._run_job_cost(sizes, with_theta0).flops - cost._run_job_cost(sizes, without).flops
    assert flops == pytest.approx(kernels)


def test_job_seconds_is_the_time_request_before_rounding_and_ranks_bigger_runs_first():
    """cost.job_seconds: what a job's runtime request rounds up (a-priori and calibrated), so
    the workflow's priorities (longest first) rank a wider or longer run above a smaller one."""
    config = run_config()
    seconds = cost.job_seconds(config, "run")
    assert seconds > 0
    assert cost.rule_resources(config, "run")["runtime"] == math.ceil(seconds / 60)
    wider, longer = run_config(model__width=512), run_config(training__steps=4000)
    assert cost.job_seconds(wider, "run") > seconds
    assert cost.job_seconds(longer, "run") > seconds
    assert cost.job_seconds(config, "train") < seconds  # one stage of the run's job
    constants = {"start_s": 3.0, "s_per_flop": 1e-9, "base_mb": 100.0, "mb_per_byte": 1.0}
    settings = cost_settings.DEFAULT_SETTINGS | {"constants": {"cpu": {"run": constants}}}
    flops = cost.rule_cost(config, "run").flops
    assert cost.job_seconds(config, "run", settings) == pytest.approx(
        cost.CALIBRATED_SAFETY * (3.0 + 1e-9 * flops)
    )


@pytest.mark.slow
def test_priorities_rank_the_longest_runs_first_in_both_layouts(tmp_path):
    """Every per-run job's priority is its run's predicted seconds (all stages, so each stage
    of the longest run ranks first in the per-stage layout), the analytic job's its own; the
    dry run shows them, in the order of the widths."""
    config = {**BASE, "name": "ranks", "sweep": {"model.width": [16, 1024]}}
    config["training"] = {"steps": 10**5, "records": 3}  # minutes of training: ranks differ
    priorities = {}
    for layout in ("runs", "stages"):
        path = tmp_path / f"{layout}.yaml"
        path.write_text(yaml.safe_dump({**config, "resources": {"jobs": layout}}))
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
            + ["--configfile", str(path), "-n", "--directory", str(tmp_path / layout)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        for job in result.stdout.split("\nrule ")[1:]:
            fields = dict(
                line.strip().split(": ", 1) for line in job.splitlines()[1:] if ": " in line
            )
            if "priority" in fields:
                name = (layout, job.split(":", 1)[0], fields["wildcards"].split("=", 1)[1])
                priorities[name] = float(fields["priority"])
    runs = {run.run_id: run.config for run in ntk_config.expand_runs(config)}
    assert len(runs) == 2
    for (layout, rule, key), priority in priorities.items():
        kind = "analytic" if rule == "analytic" else "run"
        expected = cost.job_seconds(runs[key] if kind == "run" else next(iter(runs.values())), kind)
        assert priority == pytest.approx(expected, abs=0.05), (layout, rule, key)
    small, wide = sorted(runs, key=lambda run_id: runs[run_id]["model"]["width"])
    for layout, rules in (("runs", ["run"]), ("stages", ["init", "train", "linear", "compare"])):
        for rule in rules:
            assert priorities[(layout, rule, wide)] > priorities[(layout, rule, small)]


# ---------------------------------------------------------------- grouped GPU jobs (slow)


@pytest.mark.slow
def test_resources_reach_the_rules(tmp_path):
    """The dry run shows the cost model's resources, and gpu only on the GPU rules."""
    config = {**BASE, "name": "res", "resources": {"gpu": 1, "gpu_rules": ["train"]}}
    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
        + ["--configfile", str(path), "-n", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = result.stdout.split("\nrule ")
    resources = {job.split(":", 1)[0]: job for job in jobs[1:]}
    run = run_config()
    assert "gpu=1" in resources["train"]
    on_gpu = cost.rule_resources(run, "train", settings=cost_settings.load_settings({"gpu": 1}))
    assert f"mem_mb={on_gpu['mem_mb']}" in resources["train"]
    assert "gpu=" not in resources["linear"] and "gpu=" not in resources["init"]
    assert f"mem_mb={cost.mem_mb(run, 'linear')}" in resources["linear"]
    assert "runtime=" in resources["collect"] and "mem_mb=" in resources["report"]
