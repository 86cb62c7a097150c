"""The plan before launch and the caps a partition accepts (ntkpipe.sweep.plan, cost_settings).

The paper configs are planned without their data (MNIST / CIFAR-10 are not in the repository):
the shapes of each dataset are known. Dry runs of every paper config are in
tests/test_paper_configs.py, the real SLURM submissions in tests/test_slurm.py.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ntkpipe import cli
from ntkpipe.errors import ConfigError
from ntkpipe.sweep import cost, cost_settings, plan, validate
from ntkpipe.sweep.runs import expand_runs as runs_of
from tests.workflow_helpers import REPO

PAPER = sorted((REPO / "config" / "paper").glob("*.yaml"))
TINY = REPO / "tests" / "configs" / "tiny.yaml"
LIGHT_RULES = ("compare", "analytic", "collect", "figures", "report")
#: Paper configs whose init is GPU work (f₀ of a WRN-1024 on 60,000 CIFAR-10 images, in blocks).
GPU_INIT = {"fig4_wrn"}
TOO_BIG: dict[str, str] = {}  # paper config → the refusal its plan must print (none today)


def _paper(path: Path, root: Path) -> tuple[str, list[str]]:
    return plan.plan_config(path, root)


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_every_paper_config_plans_without_its_data(path, tmp_path):
    table, notes = _paper(path, tmp_path)
    assert "GPU-hours" in table and "writes" in table
    missing = [note for note in notes if note.startswith("data files missing")]
    assert missing and all("data.root" in note for note in missing)  # said, not refused
    refused = [note for note in notes if note.startswith("refused")]
    if path.stem in TOO_BIG:
        assert refused and TOO_BIG[path.stem] in refused[0]
    else:  # no job of a paper config asks more than the default caps
        assert refused == [], refused


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_configs_put_heavy_rules_on_gpus_and_light_ones_on_cpus(path, tmp_path):
    jobs = _jobs(path, tmp_path)
    on_gpu = {job.rule for job in jobs if job.gpu}
    assert "train" in on_gpu
    assert not on_gpu & set(LIGHT_RULES)
    assert ("init" in on_gpu) == (path.stem in GPU_INIT)
    assert all(job.gpu == 1 for job in jobs if job.gpu)


def test_default_caps_are_two_days_and_a_nodes_memory():
    settings = cost_settings.load_settings(None)
    assert settings["max_runtime"] == {"cpu": 2880, "gpu": 2880}
    assert settings["max_mem_mb"] == {"cpu": 240000, "gpu": 240000}
    one = cost_settings.load_settings({"max_runtime": 600, "max_mem_mb": {"gpu": 80000}})
    assert one["max_runtime"] == {"cpu": 600, "gpu": 600}
    assert one["max_mem_mb"] == {"cpu": 240000, "gpu": 80000}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_runtime": 0}, "resources.max_runtime: 0 must be a positive integer (minutes)"),
        ({"max_mem_mb": "lots"}, "resources.max_mem_mb: 'lots' must be a positive integer (MB)"),
        ({"max_mem_mb": {"gpu": 1.5}}, "resources.max_mem_mb.gpu: 1.5 must be a positive"),
        ({"max_runtime": {"tpu": 5}}, "resources.max_runtime: 'tpu' is not a partition kind"),
        ({"calibration": 3}, "resources.calibration: 3 must be a file path"),
        ({"warm_workers": "yes"}, "resources.warm_workers: 'yes' must be true or false"),
    ],
)
def test_bad_caps_are_named(section, message):
    with pytest.raises(ConfigError) as info:
        cost_settings.load_settings(section)
    assert message in str(info.value)


def test_a_job_above_a_cap_is_named_with_its_estimate_and_the_ways_out(tmp_path):
    path = _config(tmp_path, {"max_runtime": {"cpu": 4}})
    _, notes = plan.plan_config(path, tmp_path)
    refused = [note for note in notes if note.startswith("refused")]
    train = next(note for note in refused if "rule train" in note)
    sweep, settings = _loaded(path)
    first = plan.sweep_jobs(sweep, settings)[2]  # the first run's train job
    assert first.rule == "train" and first.runtime > 4
    assert f"run 'width~16/seeds~0', rule train on a CPU: asks {first.runtime} min" in train
    assert "above resources.max_runtime.cpu = 4 min" in train
    assert "run it on a GPU (resources.gpu: 1" in train and "seeds.per_job" in train
    assert "segments of one job at the cap" in train  # a cap below start-up: no segments
    # With GPUs, the heavy rules go to the GPU partition, whose cap is not the CPU one's.
    _, on_gpu = plan.plan_config(_config(tmp_path, {"max_runtime": {"cpu": 4}, "gpu": 1}), tmp_path)
    assert on_gpu and not any("rule train" in note for note in on_gpu)


@pytest.mark.slow
def test_a_sweep_above_a_cap_is_refused_before_any_job(tmp_path):
    path = _config(tmp_path, {"max_mem_mb": 700})
    for dry in (["-n"], ["--cores", "1"]):
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
             "--configfile", str(path), "--directory", str(tmp_path), *dry],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        assert result.returncode != 0
        assert "jobs a partition would refuse (nothing was submitted)" in result.stderr
        assert "above resources.max_mem_mb.cpu = 700 MB" in result.stderr
        assert not (tmp_path / "results").exists()


def test_plan_counts_every_job_of_the_workflow(tmp_path):
    jobs = plan.sweep_jobs(*_loaded(_config(tmp_path, {})))
    counts = {row.rule: row.jobs for row in plan.plan_rows(jobs)}
    # tiny: 2 widths x 2 seed chunks; kernels.final defaults to true; one analytic key.
    per_run = dict.fromkeys(("init", "kernel_init", "train", "kernel_final", "linear"), 4)
    assert counts == {**per_run, "compare": 4, "analytic": 1, "collect": 1, "figures": 1,
                      "report": 1}  # fmt: skip
    by_run = plan.sweep_jobs(*_loaded(_config(tmp_path, {"jobs": "runs"})))
    assert {row.rule: row.jobs for row in plan.plan_rows(by_run)}["run"] == 4


def test_plan_command_prints_a_table_and_refuses_with_status_1(tmp_path, capsys):
    assert cli.main(["plan", "--configfile", str(PAPER[0])]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:2] == ["rule", "jobs"]
    assert "train" in out and "GPU-hours" in out
    assert cli.main(["plan", "--configfile", str(_config(tmp_path, {"max_mem_mb": 700}))]) == 1
    assert "refused (above a cap)" in capsys.readouterr().err


def _config(folder: Path, resources: dict) -> Path:
    raw = yaml.safe_load(TINY.read_text())
    raw["resources"] = resources
    path = folder / f"tiny-{len(list(folder.glob('tiny-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _loaded(path: Path) -> tuple[dict, dict]:

    raw = yaml.safe_load(path.read_text())
    settings = cost_settings.load_settings(raw.pop("resources", None), path.parent)
    return validate.load_config(raw), settings


def _jobs(path: Path, root: Path) -> list[plan.Job]:
    from ntkpipe.sweep import validate

    raw = yaml.safe_load(path.read_text())
    settings = cost_settings.load_settings(raw.pop("resources", None), root)
    with validate.data_files_optional(), pytest.warns(validate.MissingDataWarning):
        return plan.sweep_jobs(validate.load_config(raw), settings)


def test_the_sweep_modules_import_neither_jax_nor_xarray():
    """The Snakefile imports them at every start (and on every SLURM node): they stay light."""
    modules = ("cost", "cost_model", "cost_settings", "plan", "calibrate", "validate", "runs")
    code = (
        "import sys\n"
        + "".join(f"import ntkpipe.sweep.{name}\n" for name in modules)
        + "print(sorted(m for m in ('jax', 'xarray', 'zarr') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_training_job_above_the_cap_runs_as_segments_that_each_ask_for_the_cap(tmp_path):
    # 10^8 steps of the tiny network: hours at the a-priori rate, against a 30-minute cap.
    path = _config(tmp_path, {"max_runtime": {"cpu": 30}})
    raw = yaml.safe_load(path.read_text())
    raw["training"]["steps"] = 10**8
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    sweep, settings = _loaded(path)
    jobs = plan.sweep_jobs(sweep, settings)
    assert plan.limit_problems(jobs, settings) == []  # not refused
    train = [job for job in jobs if job.rule == "train"]
    config = next(iter(runs_of(sweep))).config
    alone = cost.rule_resources(config, "train", 1, cost_settings.load_settings({}))
    count = cost.rule_segments(config, "train", settings)
    # usable time per segment: the cap less its reserve (3 min) and the start-up (5 min)
    work = cost._seconds(cost.rule_cost(config, "train"), None, 0) - 60 * cost.START_MIN
    assert count == math.ceil(work / (30 * 60 - 180 - 60 * cost.START_MIN)) > 1
    assert train[0].segments == count and all(job.runtime == 30 for job in train)
    most = max(job.segments for job in train)  # the wider runs need more
    assert alone["runtime"] > 30 * count / 2  # the uncapped ask: about count segments long
    # Every planned segment asks for the cap and the first attempt's memory; a retry beyond
    # them (a real failure) doubles the memory, as without segments.
    asks = [cost.rule_resources(config, "train", a, settings) for a in (1, count, count + 1)]
    assert [a["runtime"] for a in asks] == [30, 30, 30]
    assert asks[0]["mem_mb"] == asks[1]["mem_mb"] == alone["mem_mb"]
    assert asks[2]["mem_mb"] == 2 * alone["mem_mb"]
    # The plan shows the segments, counts every segment's hours, and raises the rule's retries.
    table = plan.format_plan(jobs, sweep["name"])
    assert f"in up to {most} segments of 30 min (wall-time cap)" in table
    (row,) = [row for row in plan.plan_rows(jobs) if row.rule == "train"]
    assert row.total_min == 30 * sum(job.segments for job in train)
    assert f"{len(train)} jobs above the wall-time cap run as up to {most} segments" in table
    assert plan.segment_retries(jobs, 2) == {"train": most - 1 + 2}
    # Not split: a closed-form linear stage, and a cap shorter than start-up plus reserve.
    assert cost.rule_segments(config, "linear", settings) == 1
    short = cost_settings.load_settings({"max_runtime": {"cpu": 5}})
    assert cost.rule_segments(config, "train", short) == 1
    assert cost.rule_resources(config, "train", 1, short)["runtime"] > 5  # refused, as before
