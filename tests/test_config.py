"""Tests of ntkpipe.config: schema validation, defaults, cross-field checks, sweep expansion."""

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from ntkpipe import config as cfg
from ntkpipe.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def _errors(config):
    with pytest.raises(ConfigError) as err:
        cfg.load_config(config)
    return err.value.errors


def _schema_defaults(node):
    if node.get("type") == "object" and "properties" in node:
        return {k: _schema_defaults(v) for k, v in node["properties"].items()}
    return node["default"]


# ----------------------------------------------------------------------------- schema and defaults


def test_every_schema_field_has_a_default_and_a_description():
    schema = cfg.load_schema()
    for section, node in schema["properties"].items():
        assert "description" in node and "default" in node, section
        for key, leaf in node.get("properties", {}).items():
            assert "description" in leaf and "default" in leaf, f"{section}.{key}"


def test_empty_config_is_the_schema_defaults():
    assert cfg.load_config({}) == _schema_defaults(cfg.load_schema())


def test_default_sweep_config_loads_with_defaults_filled():
    config = cfg.load_config(DEFAULT_CONFIG)
    assert config["name"] == "digits-binary"
    assert config["training"]["momentum"] is None  # default from the schema (gd: no β)
    assert config["training"]["batch_size"] is None
    assert config["precision"] == "float32"
    assert config["sweep"] == {"model.width": [64, 128, 256, 512, 1024], "data.n_train": [32, 128]}


def test_loading_is_idempotent_and_does_not_modify_its_input():
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    before = copy.deepcopy(raw)
    once = cfg.load_config(raw)
    assert raw == before
    assert cfg.load_config(once) == once


def test_numbers_are_normalized():
    config = cfg.load_config(
        {"model": {"width": 512.0, "w_std": 2}, "training": {"learning_rate": 1}}
    )
    assert type(config["model"]["width"]) is int
    assert type(config["model"]["w_std"]) is float
    assert type(config["training"]["learning_rate"]) is float


def test_yaml_reads_exponent_floats_and_refuses_duplicate_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: 1e-3\n")
    assert cfg.load_config(path)["training"]["learning_rate"] == 1e-3
    path.write_text("model:\n  width: 8\nmodel:\n  width: 16\n")
    (message,) = _errors(path)
    assert "'model' given twice" in message


def test_missing_config_file_is_a_config_error(tmp_path):
    (message,) = _errors(tmp_path / "nope.yaml")
    assert "nope.yaml" in message


# ----------------------------------------------------------------------------- validation errors


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"trainng": {}}, "trainng: unknown key (did you mean training?)"),
        ({"data": {"foo": 1}}, "data.foo: unknown key; allowed keys at data: dataset, root,"),
        ({"model": {"widht": 8}}, "model.widht: unknown key (did you mean width?)"),
        ({"training": {"lr": 1.0}}, "training.lr: unknown key"),
        (
            {"kernels": {"blocksize": 8}},
            "kernels.blocksize: unknown key (did you mean block_size?)",
        ),
        ({"seeds": {"n": 3}}, "seeds.n: unknown key"),
    ],
)
def test_unknown_key_at_every_level(config, expected):
    (message,) = _errors(config)
    assert message.startswith(expected)


def test_unknown_activation_names_field_value_and_allowed():
    assert _errors({"model": {"activation": "softplus"}}) == [
        "model.activation: 'softplus' is not one of relu, erf, tanh, identity"
    ]


@pytest.mark.parametrize("width", [0, -3])
def test_width_must_be_positive(width):
    assert _errors({"model": {"width": width}}) == [f"model.width: {width} must be ≥ 1"]


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"model": {"width": "wide"}}, "model.width: 'wide' is not an integer"),
        ({"model": {"depth": 2.5}}, "model.depth: 2.5 is not an integer"),
        ({"training": {"learning_rate": 0}}, "training.learning_rate: 0 must be > 0"),
        ({"training": {"learning_rate": float("inf")}}, "training.learning_rate: inf is not a"),
        ({"training": {"momentum": 1.0}}, "training.momentum: 1.0 must be < 1"),
        ({"data": {"classes": [3, 12]}}, "data.classes[1]: 12 must be ≤ 9"),
        ({"data": {"classes": [3]}}, "data.classes: [3] has 1 item(s); at least 2"),
        ({"data": {"classes": [3, 3]}}, "data.classes: [3, 3] repeats an item"),
        (
            {"data": {"dataset": "svhn"}},
            "data.dataset: 'svhn' is not one of digits, mnist, cifar10",
        ),
        ({"precision": "float16"}, "precision: 'float16' is not one of float32, float64"),
        ({"model": {"b_std": "none"}}, "model.b_std: 'none' is not a number or null"),
        ({"data": "digits"}, "data: 'digits' is not a mapping"),
    ],
)
def test_bad_values_name_field_value_and_allowed(config, expected):
    (message,) = _errors(config)
    assert message.startswith(expected)


def test_n_train_too_large_for_digits():
    (message,) = _errors({"data": {"classes": [3, 8], "n_train": 300, "n_test": 100}})
    assert message.startswith("data.n_train: 300 with data.n_test: 100 needs 200 examples")
    assert "digits has 183" in message and "at most about 349" in message


def test_mnist_missing_files_name_folder_and_files(tmp_path):
    (message,) = _errors({"data": {"dataset": "mnist", "root": str(tmp_path)}})
    assert message.startswith(f"data.root: {str(tmp_path)!r} lacks the mnist file(s)")
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message
    (message,) = _errors({"data": {"dataset": "cifar10"}})
    assert message.startswith("data.root: null, but data.dataset cifar10 needs the folder")


def test_mnist_sizes_use_the_official_split_counts(tmp_path):
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        (tmp_path / f"{name}-idx{3 if 'images' in name else 1}-ubyte").touch()
    (message,) = _errors(
        {"data": {"dataset": "mnist", "root": str(tmp_path), "classes": [5, 1], "n_train": 20000}}
    )
    assert "data.n_train: 20000" in message and "5421" in message  # fives in the train split


@pytest.mark.parametrize(
    "training, expected",
    [
        ({"optimizer": "sgd"}, "training.batch_size: null, but optimizer sgd needs"),
        ({"optimizer": "sgd", "batch_size": 500}, "training.batch_size: 500 is larger than"),
        ({"optimizer": "gd", "batch_size": 16}, "training.batch_size: 16 is not used by"),
        ({"steps": 10, "records": 12}, "training.records: 12 is more than the 11 steps"),
    ],
)
def test_training_cross_checks(training, expected):
    (message,) = _errors({"training": training})
    assert message.startswith(expected)


def test_minibatch_options_that_are_fine():
    config = cfg.load_config({"training": {"optimizer": "momentum", "batch_size": 16}})
    assert config["training"]["batch_size"] == 16


@pytest.mark.parametrize(
    "config",
    [
        {"training": {"optimizer": "sgd", "batch_size": 8, "momentum": 0.9}},
        {"training": {"momentum": 0.5}},  # gd, the default
        {"training": {"optimizer": "sgd", "batch_size": 8}, "sweep": {"training.momentum": [0.5]}},
    ],
)
def test_momentum_no_run_uses_is_refused(config):
    """gd and sgd have no momentum term: a β that no run uses would be silently ignored."""
    (message,) = _errors(config)
    assert message.startswith("training.momentum: ") and "is set, but no run uses" in message
    assert "training.optimizer: momentum with a training.batch_size" in message


def test_momentum_runs_get_the_default_beta_and_others_none():
    sweep = {"training": {"batch_size": 8}, "sweep": {"training.optimizer": ["sgd", "momentum"]}}
    runs = cfg.expand_runs(sweep)
    assert [r.config["training"]["momentum"] for r in runs] == [None, cfg.DEFAULT_MOMENTUM]
    mixed = {"training": {"momentum": 0.5}, "sweep": {"training.optimizer": ["gd", "momentum"]}}
    assert [r.config["training"]["momentum"] for r in cfg.expand_runs(mixed)] == [0.5, 0.5]
    loaded = cfg.load_config(sweep)
    assert cfg.load_config(loaded) == loaded and loaded["training"]["momentum"] is None


def test_analytic_kernels_only_for_fc():
    (message,) = _errors({"model": {"architecture": "cnn"}})
    assert message.startswith("kernels.analytic: true, but the analytic kernels exist only for")
    cfg.load_config({"model": {"architecture": "cnn"}, "kernels": {"analytic": False}})


NO_THETA0 = {"initial": False, "final": False, "analytic": False}


@pytest.mark.parametrize(
    "training",
    [
        {"optimizer": "momentum"},
        {"optimizer": "sgd", "batch_size": 16},
        {"optimizer": "gd", "loss": "xent"},
    ],
)
def test_initial_kernels_can_be_skipped_where_f_lin_is_optimized_directly(training):
    config = cfg.load_config({"training": training, "kernels": NO_THETA0})
    assert config["kernels"]["initial"] is False
    assert cfg.load_config({})["kernels"]["initial"] is True  # the default


@pytest.mark.parametrize(
    "kernels, training, expected",
    [
        (
            NO_THETA0,
            {"optimizer": "gd", "loss": "mse"},
            "kernels.initial: false (no Θ̂₀, K̂₀ at θ₀), but training.loss mse with "
            "training.optimizer gd evolves f_lin in closed form from Θ̂₀",
        ),
        (
            {**NO_THETA0, "final": True},
            {"optimizer": "momentum"},
            "kernels.initial: false (no Θ̂₀, K̂₀ at θ₀), but kernels.final: true is only used for "
            "the kernel change",
        ),
        (
            {**NO_THETA0, "analytic": True},
            {"optimizer": "momentum"},
            "kernels.initial: false (no Θ̂₀, K̂₀ at θ₀), but kernels.analytic: true is only used "
            "to compare Θ̂₀ with Θ",
        ),
    ],
)
def test_initial_kernels_cannot_be_skipped_where_they_are_needed(kernels, training, expected):
    (message,) = _errors({"training": training, "kernels": kernels})
    assert message.startswith(expected)
    assert "set kernels." in message  # the fix


def test_skipping_initial_kernels_is_checked_at_every_sweep_point():
    (message,) = _errors(
        {"kernels": NO_THETA0, "sweep": {"training.optimizer": ["momentum", "gd"]}}
    )
    assert message.startswith("kernels.initial: false")
    assert message.endswith("(at sweep point optimizer~gd)")


def test_seeds_list_excludes_start_and_count():
    (message,) = _errors({"seeds": {"list": [1, 5], "count": 2}})
    assert message.startswith("seeds.list: [1, 5] given together with seeds.count")


def test_all_problems_are_reported_together():
    errors = _errors(
        {
            "name": "../x",
            "data": {"n_train": 5000},
            "model": {"activation": "softplus", "width": 0},
            "training": {"optimizer": "sgd"},
            "sweep": {"model.widht": [1]},
        }
    )
    fields = [e.split(":")[0] for e in errors]
    assert sorted(fields) == sorted(
        [
            "name",
            "model.activation",
            "model.width",
            "sweep.model.widht",
            "data.n_train",
            "training.batch_size",
        ]
    )
    assert str(ConfigError(errors)).startswith("invalid configuration (6 problems):")


# ----------------------------------------------------------------------------- sweep validation


@pytest.mark.parametrize(
    "sweep, expected",
    [
        (
            {"model.widht": [8]},
            "sweep.model.widht: unknown config field (did you mean model.width?)",
        ),
        ({"seeds.count": [1, 2]}, "sweep.seeds.count: seeds is not a sweep axis"),
        ({"model": [1, 2]}, "sweep.model: unknown config field (did you mean model.width?)"),
        ({"width": [8]}, "sweep.width: unknown config field (did you mean model.width?)"),
        ({"model.width": [64, 0]}, "sweep.model.width[1]: 0 must be ≥ 1"),
        ({"model.width": 64}, "sweep.model.width: 64 is not a list"),
        ({"model.width": []}, "sweep.model.width: [] has 0 item(s)"),
        ({"model.width": [64, 64]}, "sweep.model.width: [64, 64] repeats an item"),
        ({"model.activation": ["relu", "gelu"]}, "sweep.model.activation[1]: 'gelu' is not one of"),
    ],
)
def test_bad_sweeps(sweep, expected):
    messages = _errors({"sweep": sweep})
    assert any(m.startswith(expected) for m in messages), messages


@pytest.mark.parametrize(
    "config",
    [
        {"name": "a; rm -rf /"},
        {"name": "../x"},
        {"sweep": {"model.activation": ["a; rm -rf /"]}},
        {"sweep": {"data.root": ["../x"]}},
        {"sweep": {"data.root": ["$(touch pwned)"]}},
        {"data": {"root": "ok\nrm -rf /"}},
    ],
)
def test_injection_attempts_are_refused(config):
    messages = _errors(config)
    assert any("may only contain" in m or "control characters" in m for m in messages), messages


def test_cross_checks_run_at_every_sweep_point():
    (message,) = _errors({"sweep": {"data.n_train": [32, 300], "model.width": [8, 16]}})
    assert message.startswith("data.n_train: 300 with data.n_test: 128")
    assert message.endswith("(at sweep point n_train~300/width~8 and 1 more)")


def test_a_swept_field_overrides_its_base_value():
    config = cfg.load_config({"data": {"n_train": 5000}, "sweep": {"data.n_train": [16, 32]}})
    assert [r.config["data"]["n_train"] for r in cfg.expand_runs(config)] == [16, 32]


# ----------------------------------------------------------------------------- expansion


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


def test_axis_names_must_be_unique():
    schema = cfg.load_schema()
    keys = [
        k
        for s in ("data", "model", "training", "kernels")
        for k in schema["properties"][s]["properties"]
    ]
    assert len(keys) == len(set(keys))  # so every sweepable field has a unique short name


def test_output_dim():
    assert cfg.output_dim(cfg.load_config({})) == 1
    assert cfg.output_dim(cfg.load_config({"training": {"loss": "xent"}})) == 2
    assert cfg.output_dim(cfg.load_config({"data": {"classes": [0, 1, 2]}})) == 3


def test_to_json_does_not_depend_on_key_order():
    a = cfg.load_config({"model": {"width": 8, "depth": 3}, "name": "x"})
    b = cfg.load_config({"name": "x", "model": {"depth": 3, "width": 8}})
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

    config = {"sweep": {"model.width": list(range(1, 101)), "data.n_train": list(range(2, 52))}}
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
    assert cfg.deep_update(base, {"model": {"width": 16}, "name": "b"}) == {
        "model": {"width": 16, "depth": 2},
        "name": "b",
    }


def test_write_if_changed_is_reachable_from_config(tmp_path):
    assert cfg.write_if_changed(tmp_path / "a.json", "{}\n") is True
    assert cfg.write_if_changed(tmp_path / "a.json", "{}\n") is False
