"""Tests of sweep.runs: sweep expansion, run ids, stage subsets (checks: test_validation.py)."""

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from ntkpipe import conventions
from ntkpipe.errors import ConfigError
from ntkpipe.sweep import runs as cfg
from ntkpipe.sweep import sources
from ntkpipe.sweep import validate as validation

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


# ----------------------------------------------------------------------------- expansion


def test_momentum_runs_get_the_default_beta_and_others_none():
    sweep = {"training": {"batch_size": 8}, "sweep": {"training.optimizer": ["sgd", "momentum"]}}
    runs = cfg.expand_runs(sweep)
    assert [r.config["training"]["momentum"] for r in runs] == [None, conventions.DEFAULT_MOMENTUM]
    mixed = {"training": {"momentum": 0.5}, "sweep": {"training.optimizer": ["gd", "momentum"]}}
    assert [r.config["training"]["momentum"] for r in cfg.expand_runs(mixed)] == [0.5, 0.5]
    loaded = validation.load_config(sweep)
    assert validation.load_config(loaded) == loaded and loaded["training"]["momentum"] is None


def test_a_swept_field_overrides_its_base_value():
    config = validation.load_config(
        {"data": {"n_train": 5000}, "sweep": {"data.n_train": [16, 32]}}
    )
    assert [r.config["data"]["n_train"] for r in cfg.expand_runs(config)] == [16, 32]


def test_default_sweep_expands_to_the_expected_run_ids():
    runs = cfg.expand_runs(DEFAULT_CONFIG)
    assert [r.run_id for r in runs] == [
        f"width~{w}/n_train~{n}/seeds~0-1" for w in (64, 128, 256, 512, 1024) for n in (32, 128)
    ]
    run = runs[3]
    assert run.axes == {"width": 128, "n_train": 128} and run.seeds == (0, 1)
    assert run.config["model"]["width"] == 128 and run.config["data"]["n_train"] == 128
    assert run.config["run_id"] == run.run_id and run.config["seeds"] == [0, 1]
    assert run.config["axes"] == run.axes and "sweep" not in run.config
    json.loads(cfg.to_json(run.config))  # JSON-serializable


def test_seed_chunks_and_their_names():
    runs = cfg.expand_runs({"seeds": {"count": 5, "per_job": 2, "start": 10}})
    assert [r.run_id for r in runs] == ["seeds~10-11", "seeds~12-13", "seeds~14"]
    assert [r.seeds for r in runs] == [(10, 11), (12, 13), (14,)]
    runs = cfg.expand_runs({"seeds": {"list": [3, 7, 8], "per_job": 2}})
    assert [r.run_id for r in runs] == ["seeds~3_7", "seeds~8"]


def test_value_formatting_is_stable():
    config = {
        "sweep": {
            "training.learning_rate": [0.5, 1, 1e-3, 1e-5, 1e20],
            "model.b_std": [None, 0.1],
            "data.classes": [[3, 8], [0, 1, 2]],
            "kernels.final": [True],
            "model.activation": ["erf"],
            "precision": ["float64"],
        }
    }
    ids = [r.run_id for r in cfg.expand_runs(config)]
    assert ids[0] == (
        "learning_rate~0.5/b_std~null/classes~3_8/final~true/activation~erf/precision~float64/"
        "seeds~0-1"
    )
    values = {i.split("/")[0] for i in ids}
    assert values == {f"learning_rate~{v}" for v in ("0.5", "1.0", "0.001", "1e-05", "1e20")}
    assert len(set(ids)) == len(ids) == 20
    assert all(re.fullmatch(cfg.run_id_pattern, i) for i in ids)


def test_run_id_pattern_rejects_paths_that_escape_or_inject():
    for bad in ["../seeds~0", "width~1/../seeds~0", "width~a;b/seeds~0", "seeds~0/x", "seeds~-1"]:
        assert re.fullmatch(cfg.run_id_pattern, bad) is None, bad
    assert re.fullmatch(cfg.run_id_pattern, "width~1024/n_train~128/seeds~0-1")


def test_to_json_does_not_depend_on_key_order():
    a = validation.load_config({"model": {"width": 8, "depth": 3}, "name": "x"})
    b = validation.load_config({"name": "x", "model": {"depth": 3, "width": 8}})
    assert cfg.to_json(a) == cfg.to_json(b)


def test_run_config_round_trip(tmp_path):
    run = cfg.expand_runs(DEFAULT_CONFIG)[5]
    assert cfg.load_run_config(run.config) == run.config
    path = tmp_path / "run.json"
    path.write_text(cfg.to_json(run.config))
    assert cfg.load_run_config(path) == run.config
    bad = {**run.config, "run_id": "../../etc"}
    with pytest.raises(ConfigError, match="run_id: '../../etc' does not match"):
        cfg.load_run_config(bad)


# ----------------------------------------------------------------------------- stage subsets


def test_init_stages_ignore_training_changes():
    base = yaml.safe_load(DEFAULT_CONFIG.read_text())
    changed = copy.deepcopy(base)
    changed["training"]["learning_rate"] = 0.25
    run_a, run_b = cfg.expand_runs(base)[0], cfg.expand_runs(changed)[0]
    for stage in ("init", "kernel_init", "analytic"):
        assert cfg.stage_config(run_a.config, stage) == cfg.stage_config(run_b.config, stage)
    for stage in ("init", "kernel_init"):
        # only the loss of training reaches them: it sets the number of outputs
        assert cfg.stage_config(run_a.config, stage)["training"] == {"loss": "mse"}
    assert cfg.stage_config(run_a.config, "train") != cfg.stage_config(run_b.config, "train")


@pytest.mark.parametrize("key, value", [("members", 8), ("seed", 3), ("batch", 4), ("alphas", 9)])
def test_per_run_stages_ignore_the_ensemble_section(key, value):
    """Changing ensemble.* changes the ensemble's config only: no per-run stage reruns."""
    base = yaml.safe_load(DEFAULT_CONFIG.read_text())
    changed = copy.deepcopy(base)
    changed.setdefault("ensemble", {})[key] = value
    runs_a, runs_b = cfg.expand_runs(base), cfg.expand_runs(changed)
    assert [r.run_id for r in runs_a] == [r.run_id for r in runs_b]
    per_run = ("init", "kernel_init", "analytic", "train", "linear", "kernel_final", "compare")
    assert set(cfg.STAGES) == {*per_run, "ensemble"}
    for run_a, run_b in zip(runs_a, runs_b, strict=True):
        assert run_a.config["ensemble"] != run_b.config["ensemble"]
        for stage in per_run:
            subset = cfg.stage_config(run_a.config, stage)
            assert subset == cfg.stage_config(run_b.config, stage), stage
            assert "ensemble" not in subset, stage
        everything_else = {k: v for k, v in run_a.config.items() if k != "ensemble"}
        assert cfg.stage_config(run_a.config, "train") == everything_else
        ensemble_a = cfg.stage_config(run_a.config, "ensemble")
        ensemble_b = cfg.stage_config(run_b.config, "ensemble")
        assert ensemble_a != ensemble_b and ensemble_b["ensemble"][key] == value
        # The ensemble's members have their own seeds: the run's seeds are left out.
        assert ensemble_a == {k: v for k, v in run_a.config.items() if k not in ("seeds", "run_id")}


def test_init_stage_changes_with_the_model():
    a = cfg.expand_runs({})[0].config
    b = cfg.expand_runs({"model": {"depth": 3}})[0].config
    assert cfg.stage_config(a, "init") != cfg.stage_config(b, "init")


def test_init_stage_changes_with_the_loss():
    a = cfg.expand_runs({})[0].config
    b = cfg.expand_runs({"training": {"loss": "xent"}})[0].config
    assert cfg.stage_config(a, "init") != cfg.stage_config(b, "init")


def test_unknown_stage():
    with pytest.raises(ValueError, match="stage: 'trian' is not one of init, kernel_init"):
        cfg.stage_config({}, "trian")


def test_large_sweep_expands_quickly():
    import time

    config = {"sweep": {"model.width": list(range(1, 101)), "data.n_train": list(range(4, 54))}}
    start = time.perf_counter()
    runs = cfg.expand_runs(config)
    assert len(runs) == 5000
    assert time.perf_counter() - start < 10  # about 0.5 s here; a 10,000-run DAG needs ≤ 30 s


def test_analytic_kernels_are_shared_across_widths_and_seeds_under_ntk():
    sweep = {"model.width": [8, 16], "data.n_train": [16, 32]}
    runs = cfg.expand_runs({"sweep": sweep, "seeds": {"count": 4, "per_job": 2}})
    ids = [cfg.analytic_id(r) for r in runs]
    assert ids[:4] == ["n_train~16", "n_train~16", "n_train~32", "n_train~32"]
    assert set(ids) == {"n_train~16", "n_train~32"}
    assert all(re.fullmatch(cfg.ANALYTIC_ID_PATTERN, i) for i in ids)
    shared = [cfg.stage_config(r.config, "analytic") for r in runs if ids[runs.index(r)] == ids[0]]
    assert all(s == shared[0] for s in shared) and shared[0]["model"]["width"] is None
    assert "seeds" not in shared[0] and "training" not in shared[0]
    standard = cfg.expand_runs({"sweep": sweep, "model": {"parameterization": "standard"}})
    assert cfg.analytic_id(standard[0]) == "width~8/n_train~16"
    assert cfg.stage_config(standard[0].config, "analytic")["model"]["width"] == 8
    assert cfg.analytic_id(cfg.expand_runs({})[0]) == "all"


def test_deep_update_merges_nested_sections():
    base = {"model": {"width": 8, "depth": 2}, "name": "a"}
    assert sources.deep_update(base, {"model": {"width": 16}, "name": "b"}) == {
        "model": {"width": 16, "depth": 2},
        "name": "b",
    }


def test_write_if_changed_is_reachable_from_config(tmp_path):
    assert cfg.write_if_changed(tmp_path / "a.json", "{}\n") is True
    assert cfg.write_if_changed(tmp_path / "a.json", "{}\n") is False


def test_runs_re_exports_no_name_of_the_modules_below_it():
    """Each name has one home: sweep.runs lists only its own names (no load_config, which is
    sweep.validate's), so a name is never reached by two paths."""
    for name in cfg.__all__:
        value = getattr(cfg, name)
        assert getattr(value, "__module__", cfg.__name__) == cfg.__name__, name
    for name in ("SCHEMA_PATH", "load_schema", "load_config", "output_dim", "deep_update"):
        assert name not in cfg.__all__, name
