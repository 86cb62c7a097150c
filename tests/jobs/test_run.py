"""One job for every stage of a run (``ntkpipe run``, ``resources.jobs: runs``).

Its stores must be those of the per-stage jobs, array for array; a rerun keeps exactly the stores
that are complete, of the current stage config and newer than their inputs, and computes the rest.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from ntkpipe import cli
from ntkpipe.errors import StageError
from ntkpipe.io import stores as storage
from ntkpipe.jobs import run as run_job
from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import stage_table, validate
from tests.workflow_helpers import stage_commands

SWEEP = {
    "name": "runjob",
    "data": {"dataset": "digits", "classes": [3, 8], "n_train": 12, "n_test": 8},
    "model": {"depth": 1, "width": 16},
    "training": {"steps": 8, "records": 3},
    "kernels": {"block_size": 8},
    "seeds": {"count": 2, "per_job": 2},
}
STORES = tuple(row.store.removesuffix(".zarr") for row in stage_table.RUN_STAGES)
EVERY_STAGE = [row.rule for row in stage_table.RUN_STAGES]


@pytest.fixture(scope="module")
def run_config():
    (run,) = ntk_config.expand_runs(validate.load_config(SWEEP))
    return json.loads(ntk_config.to_json(ntk_config.stage_config(run.config, "train")))


@pytest.fixture(scope="module")
def analytic(tmp_path_factory, run_config):
    folder = tmp_path_factory.mktemp("analytic")
    config = folder / "analytic.json"
    config.write_text(ntk_config.to_json(ntk_config.stage_config(run_config, "analytic")))
    out = folder / "analytic.zarr"
    assert cli.main(["analytic", "--run", str(config), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def per_stage(tmp_path_factory, run_config, analytic):
    """The run computed as the per-stage workflow does: one `ntkpipe <stage>` per store."""
    folder = tmp_path_factory.mktemp("per-stage")
    run_job.write_config_files(run_config, folder)
    stores = {name: folder / f"{name}.zarr" for name in STORES}
    commands = stage_commands(folder / "model.json", folder / "run.json", stores, analytic)
    for command in commands:
        assert cli.main(command) == 0, command
    return folder


@pytest.fixture()
def one_job(tmp_path, run_config, analytic):
    """The run computed by one `ntkpipe run` job (a fresh folder per test)."""
    folder = tmp_path / "run"
    args = ["run", "--config", json.dumps(run_config), "--dir", str(folder)]
    assert cli.main([*args, "--analytic", str(analytic)]) == 0
    return folder


def _digests(store):
    return zarr.open_group(store, mode="r").attrs["ntkpipe_sha256"]


def _completed_at(store):
    return (store / "zarr.json").stat().st_mtime_ns


def test_one_job_writes_the_stores_of_the_per_stage_jobs(one_job, per_stage):
    for name in STORES:
        ours, theirs = (
            storage.read_attrs(one_job / f"{name}.zarr"),
            storage.read_attrs(per_stage / f"{name}.zarr"),
        )
        assert ours["stage"] == theirs["stage"] and ours["config"] == theirs["config"], name
        assert _digests(one_job / f"{name}.zarr") == _digests(per_stage / f"{name}.zarr"), name
    for name in ("model.json", "run.json"):
        assert (one_job / name).read_text() == (per_stage / name).read_text()


def test_every_store_records_the_config_file_of_its_stage_in_both_layouts(one_job, per_stage):
    """Issue 19: a store says which part of the run config it was computed from (the kernels job
    is told whether it computes kernel_init or kernel_final); nothing infers it."""
    for row in stage_table.RUN_STAGES:
        for folder in (one_job, per_stage):
            attrs = storage.read_attrs(folder / row.store)
            assert attrs["config_file"] == row.config_file, (folder, row.rule)


def test_an_old_store_without_its_config_file_is_kept_another_stages_is_not(
    one_job, run_config, analytic
):
    """A store written before stores recorded their config file is judged by its config alone
    (kept: recomputing would cost a finished sweep its compute); a store that records another
    stage's config file is computed again."""
    meta = json.loads((one_job / "kernel_init.zarr" / "zarr.json").read_text())
    del meta["attributes"]["config_file"]
    (one_job / "kernel_init.zarr" / "zarr.json").write_text(json.dumps(meta))
    root = zarr.open_group(one_job / "kernel_final.zarr", mode="r+")
    root.attrs["config_file"] = "model.json"
    plan = {stage.rule: why for stage, why in run_job.stage_plan(run_config, one_job, analytic)}
    assert plan["kernel_init"] is None and plan["train"] is None
    assert plan["kernel_final"] == "computed from another config file (model.json, not run.json)"
    assert (
        cli.main(
            ["train", "--run", str(one_job / "run.json"), "--init"]
            + [str(one_job / "init.zarr"), "--out", str(one_job / "t.zarr")]
        )
        == 0
    )
    args = ["kernels", "--run", str(one_job / "model.json"), "--rule", "kernel_init"]
    args += ["--params", str(one_job / "train.zarr"), "--out", str(one_job / "k.zarr")]
    assert cli.main(args) == 1  # train.zarr records run.json: not θ₀ of this model.json


def test_a_rerun_keeps_every_store_but_the_output(one_job, run_config, analytic):
    before = {name: _completed_at(one_job / f"{name}.zarr") for name in STORES}
    computed = run_job.run_all_stages(run_config, one_job, analytic, log=lambda _: None)
    assert computed == ["compare"]
    for name in STORES[:-1]:
        assert _completed_at(one_job / f"{name}.zarr") == before[name], name


def test_a_new_learning_rate_keeps_init_and_the_initial_kernels(
    one_job, run_config, analytic, per_stage
):
    changed = json.loads(json.dumps(run_config))
    changed["training"]["learning_rate"] = 0.5
    kept = {name: _completed_at(one_job / f"{name}.zarr") for name in ("init", "kernel_init")}
    computed = run_job.run_all_stages(changed, one_job, analytic, log=lambda _: None)
    assert computed == ["train", "kernel_final", "linear", "compare"]
    assert {name: _completed_at(one_job / f"{name}.zarr") for name in kept} == kept
    assert json.loads((one_job / "run.json").read_text())["training"]["learning_rate"] == 0.5
    attrs = storage.read_attrs(one_job / "train.zarr")
    assert json.loads(attrs["config"])["training"]["learning_rate"] == 0.5
    assert _digests(one_job / "train.zarr") != _digests(per_stage / "train.zarr")


def test_an_incomplete_store_is_computed_again_with_what_reads_it(one_job, run_config, analytic):
    root = zarr.open_group(one_job / "train.zarr", mode="r+")
    root.attrs["ntkpipe_complete"] = False  # as a job killed before its completion marker
    plan = dict(
        (stage.rule, reason) for stage, reason in run_job.stage_plan(run_config, one_job, analytic)
    )
    assert plan["init"] is None and plan["kernel_init"] is None and plan["linear"] is None
    assert plan["train"] == "incomplete or unreadable"
    assert plan["kernel_final"] == "train.zarr is missing or computed again"
    computed = run_job.run_all_stages(run_config, one_job, analytic, log=lambda _: None)
    assert computed == ["train", "kernel_final", "compare"]
    assert storage.is_complete(one_job / "train.zarr")


def test_an_input_changed_since_makes_its_readers_stale_a_touched_copy_does_not(
    one_job, run_config, analytic, per_stage
):
    """The freshness rule of both layouts (io.provenance.stale_reason): from the digests a store
    recorded of its inputs, not from file times."""
    shutil.rmtree(one_job / "init.zarr")
    # the same content, written now (copy, not copy2: new times): nothing to compute again
    shutil.copytree(per_stage / "init.zarr", one_job / "init.zarr", copy_function=shutil.copy)
    plan = dict(
        (stage.rule, reason) for stage, reason in run_job.stage_plan(run_config, one_job, analytic)
    )
    assert {rule: why for rule, why in plan.items() if why} == {"compare": "the job's output"}
    root = zarr.open_group(one_job / "train.zarr", mode="r+")
    root.attrs["inputs"] = {"init.zarr": "0" * 64}  # as if init.zarr had changed since
    plan = dict(
        (stage.rule, reason) for stage, reason in run_job.stage_plan(run_config, one_job, analytic)
    )
    assert plan["init"] is None and plan["kernel_init"] is None
    assert plan["train"] == "its input init.zarr has changed since"
    assert plan["kernel_final"] == "train.zarr is missing or computed again"


def test_without_final_kernels_none_is_computed(tmp_path, run_config, analytic):
    config = json.loads(json.dumps(run_config))
    config["kernels"]["final"] = False
    computed = run_job.run_all_stages(config, tmp_path, analytic, log=lambda _: None)
    assert computed == [s for s in EVERY_STAGE if s != "kernel_final"]
    assert not (tmp_path / "kernel_final.zarr").exists()
    assert storage.is_complete(tmp_path / "metrics.zarr")


@pytest.mark.parametrize(
    "config, message",
    [
        ('{"data": ', "--config: not valid JSON"),
        ('{"data": {}}', "--config: not a run config written by the workflow (no model, "),
    ],
)
def test_bad_config_is_refused_before_anything_is_written(tmp_path, capsys, config, message):
    folder = tmp_path / "run"
    assert cli.main(["run", "--config", config, "--dir", str(folder)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not folder.exists()


def test_missing_analytic_store_is_named(tmp_path, run_config):
    with pytest.raises(StageError, match="--analytic: .*nowhere.zarr is not a complete"):
        run_job.run_all_stages(run_config, tmp_path / "run", tmp_path / "nowhere.zarr")
    assert not (tmp_path / "run").exists()


def test_redo_computes_the_stage_and_what_reads_it_keeping_the_rest(one_job, run_config, analytic):
    """`ntkpipe run --redo train` (snakemake --forcerun train in this layout): train and the
    stages reading it again, though every store is current; init, Θ̂₀ and f_lin kept."""
    kept = {name: _completed_at(one_job / f"{name}.zarr") for name in ("init", "kernel_init")}
    args = ["run", "--config", json.dumps(run_config), "--dir", str(one_job)]
    assert cli.main([*args, "--analytic", str(analytic), "--redo", "train"]) == 0
    plan = run_job.stage_plan(run_config, one_job, analytic, redo=["train"])
    assert [stage.rule for stage, why in plan if why] == ["train", "kernel_final", "compare"]
    assert {n: _completed_at(one_job / f"{n}.zarr") for n in kept} == kept
    assert (
        run_job.run_all_stages(run_config, one_job, analytic, log=lambda _: None, redo=["init"])
        == EVERY_STAGE
    )


def test_until_computes_the_stage_and_what_it_reads_only(tmp_path, run_config, per_stage):
    """`ntkpipe run --until linear` (snakemake --until linear): init, Θ̂₀ and f_lin, not the
    training; the same stores as the per-stage jobs; its output is computed even when current."""
    folder = tmp_path / "run"
    log = []
    computed = run_job.run_all_stages(run_config, folder, until="kernel_init", log=log.append)
    assert computed == ["init", "kernel_init"]
    assert sorted(p.name for p in folder.glob("*.zarr")) == ["init.zarr", "kernel_init.zarr"]
    for name in ("init", "kernel_init"):
        assert _digests(folder / f"{name}.zarr") == _digests(per_stage / f"{name}.zarr"), name
    again = run_job.run_all_stages(run_config, folder, until="kernel_init", log=log.append)
    assert again == ["kernel_init"]  # the job's output; init kept
    plan = run_job.stage_plan(run_config, folder, until="linear")
    assert [(stage.rule, why) for stage, why in plan] == [
        ("init", None),
        ("kernel_init", None),
        ("linear", "the job's output"),
    ]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--until", "trian", "--until: 'trian' is not a stage of a run; one of init, kernel_init"),
        ("--redo", "run", "--redo: 'run' is not a stage of a run; one of init, kernel_init"),
    ],
)
def test_a_bad_stage_name_is_refused_before_anything_is_written(
    tmp_path, capsys, run_config, flag, value, message
):
    folder = tmp_path / "run"
    args = ["run", "--config", json.dumps(run_config), "--dir", str(folder), flag, value]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not folder.exists()


# ---------------------------------------------------------------- without Θ̂₀ (kernels.initial)

NO_THETA0 = {
    **SWEEP,
    "training": {**SWEEP["training"], "optimizer": "momentum"},
    "kernels": {**SWEEP["kernels"], "initial": False, "final": False, "analytic": False},
}


def test_without_initial_kernels_both_layouts_skip_them_and_eta_crit_is_nan(tmp_path):
    """kernels.initial false (momentum: f_lin optimized directly): the per-stage commands run
    without --kernel / --kernel-init, one job leaves kernel_init out, and both write the same
    stores; η_crit is NaN, so the status is ok (not lr_above_critical)."""
    (run,) = ntk_config.expand_runs(validate.load_config(NO_THETA0))
    config = json.loads(ntk_config.to_json(ntk_config.stage_config(run.config, "train")))
    per_stage = tmp_path / "per-stage"
    run_job.write_config_files(config, per_stage)
    stores = {name: per_stage / f"{name}.zarr" for name in ("init", "train", "linear", "metrics")}
    commands = stage_commands(per_stage / "model.json", per_stage / "run.json", stores)
    for command in commands:
        assert cli.main(command) == 0, command

    one_job = tmp_path / "one-job"
    computed = run_job.run_all_stages(config, one_job, log=lambda _: None)
    assert computed == ["init", "train", "linear", "compare"]
    for folder in (per_stage, one_job):
        assert not (folder / "kernel_init.zarr").exists()
        assert not (folder / "kernel_final.zarr").exists()
    for name in ("init", "train", "linear", "metrics"):
        assert _digests(one_job / f"{name}.zarr") == _digests(per_stage / f"{name}.zarr"), name
    metrics = storage.read_store(one_job / "metrics.zarr", stage="metrics")
    assert storage.read_attrs(one_job / "linear.zarr")["method"] == "optimized"
    assert metrics.lr_critical.isnull().all() and metrics.ntk_change.isnull().all()
    assert list(metrics.status.values) == ["ok", "ok"]
    assert np.isfinite(metrics.loss_train.values).all() and np.isfinite(metrics.rmse_test).all()
    # A rerun keeps every store but the output, without looking for kernel_init.zarr.
    assert run_job.run_all_stages(config, one_job, log=lambda _: None) == ["compare"]


def test_closed_form_without_initial_kernel_is_refused_before_any_work(tmp_path, capsys):
    (run,) = ntk_config.expand_runs(validate.load_config(SWEEP))  # mse with gd
    config = tmp_path / "run.json"
    config.write_text(ntk_config.to_json(run.config))
    out = tmp_path / "linear.zarr"
    args = ["linear", "--run", str(config), "--init", str(tmp_path / "absent.zarr")]
    assert cli.main([*args, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--kernel: missing; training.loss mse with training.optimizer gd" in err
    assert "Traceback" not in err and not out.exists()


def test_lr_factor_resolves_eta_from_kernel_init_and_records_sharpness_and_regime(tmp_path):
    """training.lr_factor through the one-job-per-run layout: train and linear train at η =
    factor × η_crit of kernel_init.zarr (stored as learning_rate), the sharpness is recorded
    (f_lin's constant, λ_max of Θ̂₀, equal to f's at step 0), and the metrics carry η, the
    regime and the status."""
    sweep = {**SWEEP, "training": {"steps": 8, "records": 4, "lr_factor": 0.5},
             "seeds": {"count": 1, "per_job": 1}, "kernels": {"block_size": 8, "final": False,
             "analytic": False}}  # fmt: skip
    (run,) = ntk_config.expand_runs(ntk_config.load_config(sweep))
    config = json.loads(ntk_config.to_json(ntk_config.stage_config(run.config, "train")))
    assert config["training"]["learning_rate"] is None
    run_job.run_all_stages(config, tmp_path, None, log=lambda _: None)
    critical = float(storage.read_store(tmp_path / "kernel_init.zarr").lr_critical[0])
    trained = storage.read_store(tmp_path / "train.zarr")
    linear = storage.read_store(tmp_path / "linear.zarr")
    metrics = storage.read_store(tmp_path / "metrics.zarr")
    for store in (trained, linear, metrics):
        np.testing.assert_allclose(float(store.learning_rate), 0.5 * critical, rtol=1e-6)
    np.testing.assert_allclose(trained.t.values, 0.5 * critical * trained.step.values, rtol=1e-6)
    lin_sharp = linear.sharpness.values[0]
    assert np.all(lin_sharp == lin_sharp[0])
    np.testing.assert_allclose(trained.sharpness.values[0, 0], lin_sharp[0], rtol=2e-2)
    assert str(metrics.regime.values[0]) == "lazy" and str(metrics.status.values[0]) == "ok"
