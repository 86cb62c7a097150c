"""Calibration of the cost model on benchmark files (ntkpipe.sweep.calibrate).

Two kinds of benchmark files: recorded ones (tests/sweep/data/tiny_results: the benchmark TSVs
and run configs of one run of the tiny config, `snakemake --cores 2 --until compare`, on a
2-core machine under load from other work: 20-100 s and 210-420 MB per job), and generated ones,
written as Snakemake writes them (the same columns) for a sweep of runs whose jobs take a
start-up time plus a time proportional to their FLOPs and a base memory plus their arrays,
with ±25 % scatter, up to width 4096 (where the FLOPs, not the start-up, set the time).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ntkpipe import cli
from ntkpipe.errors import ConfigError
from ntkpipe.sweep import calibrate, cost, cost_settings
from ntkpipe.sweep import runs as ntk_runs

SWEEP = {
    "name": "cal",
    "data": {"dataset": "digits", "classes": [3, 8], "n_train": 64, "n_test": 32},
    "model": {"depth": 2, "width": 16},
    "training": {"steps": 64, "records": 4},
    "kernels": {"block_size": 32, "final": False, "analytic": False},
    "seeds": {"count": 2, "per_job": 2},
    "sweep": {"model.width": [16, 128, 1024, 4096], "data.n_train": [64, 256]},
}
RULES = ("init", "kernel_init", "train", "linear", "compare")
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _recorded_sweep(folder: Path, start_s=20.0, rate=4e9, base_mb=330.0, seed=0) -> Path:
    """results/<name> with run.json files and one benchmark TSV per job (module docstring)."""
    results = folder / "results" / "cal"
    rng = np.random.default_rng(seed)
    for run in ntk_runs.expand_runs(SWEEP):
        run_dir = results / "runs" / run.run_id
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(
            ntk_runs.to_json(ntk_runs.stage_config(run.config, "train"))
        )
        for rule in RULES:
            modeled = cost.rule_cost(run.config, rule)
            scatter = rng.uniform(0.8, 1.25, size=2)
            seconds = (start_s + modeled.flops / rate) * scatter[0]
            rss = (base_mb + 1.1 * modeled.bytes / 2**20) * scatter[1]
            tsv = results / "benchmarks" / rule / f"{run.run_id}.tsv"
            tsv.parent.mkdir(parents=True, exist_ok=True)
            tsv.write_text(HEADER + f"{seconds:.2f}\t0:00:00\t{rss:.2f}\t0\t0\t0\t0\t0\t50\t1\n")
    return results


RECORDED = Path(__file__).parent / "data" / "tiny_results"


def test_recorded_benchmarks_of_the_tiny_config_calibrate_within_the_stated_factor(tmp_path):
    jobs = calibrate.read_benchmarks(RECORDED)
    assert len(jobs) == 21 and {job.rule for job in jobs} >= {"init", "train", "analytic"}
    # Before: jobs of 20-100 s asked for 6 min each.
    assert max(_ratios(jobs, {}, "runtime")) > calibrate.STATED_FACTOR
    out = tmp_path / "calibration.json"
    calibrate.calibrate(RECORDED, out=out)  # CPU: resources.json says gpu: 0
    settings = cost_settings.load_settings({"calibration": str(out)})
    for job in jobs:
        asks = cost.rule_resources(job.config, job.rule, 1, settings)
        used_min = job.seconds / 60
        assert used_min <= asks["runtime"] <= calibrate.STATED_FACTOR * max(used_min, 1), job
        assert job.max_rss_mb <= asks["mem_mb"] <= calibrate.STATED_FACTOR * job.max_rss_mb, job


def _ratios(jobs, settings, resource):
    return [calibrate.asked_over_used(job, settings, resource) for job in jobs]


def test_calibration_brings_every_ask_within_the_stated_factor(tmp_path):
    results = _recorded_sweep(tmp_path)
    jobs = calibrate.read_benchmarks(results)
    assert len(jobs) == 8 * len(RULES)
    # Before: the a-priori model asks ≥ 5 min for jobs of seconds (the check can fail).
    assert max(_ratios(jobs, {}, "runtime")) > calibrate.STATED_FACTOR
    out = tmp_path / "calibration.json"
    done = calibrate.calibrate(results, out=out)
    settings = cost_settings.load_settings({"calibration": str(out)})
    assert set(settings["constants"]["cpu"]) == {"init", "kernels", "train", "linear", "compare"}
    for job in jobs:
        asks = cost.rule_resources(job.config, job.rule, 1, settings)
        used_min = job.seconds / 60
        assert used_min <= asks["runtime"] <= calibrate.STATED_FACTOR * max(used_min, 1), job
        assert job.max_rss_mb <= asks["mem_mb"] <= calibrate.STATED_FACTOR * job.max_rss_mb
    assert "cpu/train" in done.summary() and "before" in done.summary()


def test_calibrated_asks_keep_the_retry_growth_and_grow_with_the_job(tmp_path):
    out = tmp_path / "calibration.json"
    calibrate.calibrate(_recorded_sweep(tmp_path), out=out)
    settings = cost_settings.load_settings({"calibration": str(out)})
    config = ntk_runs.expand_runs(SWEEP)[0].config
    first, second = (cost.rule_resources(config, "train", a, settings) for a in (1, 2))
    assert second["mem_mb"] == 2 * first["mem_mb"] and second["runtime"] == 2 * first["runtime"]
    wide = ntk_runs.expand_runs({**SWEEP, "sweep": {"model.width": [16384]}})[0].config
    assert cost.rule_resources(wide, "train", 1, settings)["mem_mb"] > first["mem_mb"]


def test_a_slower_machine_calibrates_to_longer_asks(tmp_path):
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    calibrate.calibrate(_recorded_sweep(fast), out=fast / "c.json")
    calibrate.calibrate(_recorded_sweep(slow, start_s=200, rate=4e8), out=slow / "c.json")
    config = ntk_runs.expand_runs(SWEEP)[-1].config
    asks = [
        cost.rule_resources(
            config, "train", 1, cost_settings.load_settings({"calibration": str(p)})
        )
        for p in (fast / "c.json", slow / "c.json")
    ]
    assert asks[1]["runtime"] > 5 * asks[0]["runtime"]


def test_constants_are_stored_per_device_kind_and_merged(tmp_path):
    results = _recorded_sweep(tmp_path)
    out = tmp_path / "calibration.json"
    calibrate.calibrate(results, out=out, device="gpu")
    (results / "resources.json").write_text(json.dumps({"gpu": 0, "gpu_rules": [], "jobs": "x"}))
    calibrate.calibrate(results, out=out)  # CPU, from resources.json
    constants = json.loads(out.read_text())["constants"]
    assert set(constants) == {"cpu", "gpu"} and constants["cpu"]["train"]["jobs"] == 8
    settings = cost_settings.load_settings({"calibration": str(out), "gpu": 1})
    config = ntk_runs.expand_runs(SWEEP)[0].config
    on_gpu = cost.rule_resources(config, "train", 1, settings)
    uncalibrated = cost.rule_resources(config, "train", 1, cost_settings.load_settings({"gpu": 1}))
    assert on_gpu["gpu"] == 1 and on_gpu["runtime"] != uncalibrated["runtime"]


def test_start_up_dominated_jobs_fit_the_intercept_with_the_prior_slope():
    start, slope = calibrate._line([1e9], [30.0], 1e-9)
    assert slope == 1e-9 and start == pytest.approx(29.0)
    # Small jobs (tiny config, measured on a loaded machine): 20-40 s of start-up whatever
    # their FLOPs; a least-squares slope would be the noise's (~1e-5 s/FLOP, 10⁴ x the prior).
    flops, seconds = [1e5, 2e5, 1e6, 2e6], [31.0, 41.0, 39.0, 42.0]
    start, slope = calibrate._line(flops, seconds, 1.5e-9)
    assert slope == 1.5e-9 and start == pytest.approx(42.0, abs=0.01)
    start, slope = calibrate._line([1.0, 2.0, 3.0], [5.0, 5.0, 5.0], 7.0)
    assert (start, slope) == (5.0, 0.0)


def test_calibrate_command_and_its_errors(tmp_path, capsys):
    results = _recorded_sweep(tmp_path)
    out = tmp_path / "c.json"
    assert cli.main(["calibrate", str(results), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert cli.main(["calibrate", str(tmp_path / "none"), "--out", str(out)]) == 1
    assert "no benchmark files" in capsys.readouterr().err
    out.write_text('{"constants": {"cpu": {"train": {"start_s": -1}}}}')
    with pytest.raises(ConfigError, match="constants.cpu.train must hold exactly start_s"):
        cost_settings.load_settings({"calibration": str(out)})


def test_asked_and_used_gives_each_rules_largest_ask_next_to_its_largest_use():
    rows = calibrate.asked_and_used(RECORDED)
    jobs = calibrate.read_benchmarks(RECORDED)
    assert set(rows) == {job.rule for job in jobs}
    for rule, row in rows.items():
        own = [job for job in jobs if job.rule == rule]
        assert row["jobs"] == len(own)
        assert row["runtime_used"] == pytest.approx(max(job.seconds for job in own) / 60)
        assert row["mem_used"] == pytest.approx(max(job.max_rss_mb for job in own))
        asks = [
            cost.rule_resources(job.config, rule, 1, cost_settings.DEFAULT_SETTINGS) for job in own
        ]
        assert row["runtime_asked"] == max(a["runtime"] for a in asks)
        assert row["mem_asked"] == max(a["mem_mb"] for a in asks)
        assert row["mem_asked"] >= row["mem_used"]  # the uncalibrated model asks enough


def test_the_report_shows_asked_against_used_per_stage(tmp_path):
    from ntkpipe.analysis import report
    from tests.summary_fixture import make_summary

    results = tmp_path / "tiny"
    shutil.copytree(RECORDED, results)  # the report reads the folder it is written into
    page = report.write_report(make_summary(), [], results / "report.html")
    text = page.read_text(encoding="utf-8")
    assert "<th>asked / used</th>" in text
    train = calibrate.asked_and_used(RECORDED)["train"]
    assert f"{train['runtime_asked']:.0f} min / " in text
    assert f"{train['mem_asked']:.0f} / {train['mem_used']:.0f} MB" in text


@pytest.mark.parametrize(
    "train, message",
    [
        ({"start_s": 0, "s_per_flop": 0, "base_mb": 0, "mb_per_byte": 0, "jobs": 3}, "both 0"),
        ({"start_s": 1, "s_per_flop": 0, "base_mb": 0, "mb_per_byte": 0, "jobs": 3}, "no memory"),
        ({"start_s": 1e308, "s_per_flop": 0, "base_mb": 9, "mb_per_byte": 0, "jobs": 3}, "start_s"),
        ({"start_s": 1, "s_per_flop": 1e-9, "base_mb": 9, "mb_per_byte": 0, "jobs": 0}, "jobs"),
        ({"start_s": 1, "s_per_flop": 1e-9, "base_mb": 9}, "must hold exactly"),
    ],
)
def test_damaged_calibration_constants_are_refused_naming_file_and_field(tmp_path, train, message):
    out = tmp_path / "calibration.json"
    out.write_text(json.dumps({"constants": {"cpu": {"train": train}}}))
    with pytest.raises(ConfigError, match=message) as error:
        cost_settings.load_settings({"calibration": str(out)})
    assert str(out) in str(error.value) and "constants.cpu.train" in str(error.value)


def test_infinite_constants_and_unknown_stages_are_refused(tmp_path):
    out = tmp_path / "calibration.json"
    good = {"start_s": 1, "s_per_flop": 1e-9, "base_mb": 200, "mb_per_byte": 1e-6, "jobs": 2}
    out.write_text(
        '{"constants": {"cpu": {"train": {"start_s": Infinity, "s_per_flop": 1e-9, '
        '"base_mb": 200, "mb_per_byte": 1e-6, "jobs": 2}}}}'
    )
    with pytest.raises(ConfigError, match=r"constants.cpu.train.start_s: inf must be a finite"):
        cost_settings.load_settings({"calibration": str(out)})
    out.write_text(json.dumps({"constants": {"cpu": {"trian": good}}}))
    with pytest.raises(ConfigError, match="unknown stage 'trian'"):
        cost_settings.load_settings({"calibration": str(out)})


def test_calibrate_writes_atomically_and_keeps_the_old_file_when_the_disk_is_full(tmp_path):
    from tests.full_disk import fill, full_disk

    results = _recorded_sweep(tmp_path)
    with full_disk(tmp_path / "disk") as disk:
        out = disk / "c.json"
        calibrate.calibrate(results, out=out)
        before = out.read_text()
        fill(disk)
        with pytest.raises(ConfigError, match=f"{out}: cannot write the calibration"):
            calibrate.calibrate(results, out=out, device="gpu")
        assert out.read_text() == before
        assert sorted(p.name for p in disk.iterdir()) == ["c.json", "filler", "filler-tail"]


def test_a_sweep_run_in_warm_workers_is_not_calibrated(tmp_path):
    """Its benchmark files hold the CPU and memory of each job's client (ntkpipe.workers), far
    below the job's: constants fitted to them would make cluster jobs ask too little."""
    results = _recorded_sweep(tmp_path)
    scheduling = {"gpu": 0, "gpu_rules": [], "jobs": "runs", "warm_workers": True}
    (results / "resources.json").write_text(json.dumps(scheduling))
    out = tmp_path / "calibration.json"
    with pytest.raises(ConfigError, match=r"ran in warm workers .* resources.warm_workers: false"):
        calibrate.calibrate(results, out=out)
    assert not out.exists()
    (results / "resources.json").write_text(json.dumps({**scheduling, "warm_workers": False}))
    calibrate.calibrate(results, out=out)
    assert out.is_file()
