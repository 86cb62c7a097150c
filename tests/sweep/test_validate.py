"""Tests of sweep.validate: schema validation, defaults, cross-field checks, sweep values."""

import copy
from pathlib import Path

import pytest
import yaml

from ntkpipe.errors import ConfigError
from ntkpipe.sweep import validate as validation

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def _errors(config):
    with pytest.raises(ConfigError) as err:
        validation.load_config(config)
    return err.value.errors


def _schema_defaults(node):
    if node.get("type") == "object" and "properties" in node:
        return {k: _schema_defaults(v) for k, v in node["properties"].items()}
    return node["default"]


# ----------------------------------------------------------------------------- schema and defaults


def test_every_schema_field_has_a_default_and_a_description():
    schema = validation.load_schema()
    for section, node in schema["properties"].items():
        assert "description" in node and "default" in node, section
        for key, leaf in node.get("properties", {}).items():
            assert "description" in leaf and "default" in leaf, f"{section}.{key}"


def test_empty_config_is_the_schema_defaults():
    assert validation.load_config({}) == _schema_defaults(validation.load_schema())


def test_default_sweep_config_loads_with_defaults_filled():
    config = validation.load_config(DEFAULT_CONFIG)
    assert config["name"] == "digits-binary"
    assert config["training"]["momentum"] is None  # default from the schema (gd: no β)
    assert config["training"]["batch_size"] is None
    assert config["precision"] == "float32"
    assert config["sweep"] == {"model.width": [64, 128, 256, 512, 1024], "data.n_train": [32, 128]}


def test_loading_is_idempotent_and_does_not_modify_its_input():
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    before = copy.deepcopy(raw)
    once = validation.load_config(raw)
    assert raw == before
    assert validation.load_config(once) == once


def test_the_resources_section_is_checked_and_left_out():
    """A sweep file's scheduling section is no part of any run; a bad one is still refused."""
    config = validation.load_config({"name": "x", "resources": {"jobs": "runs", "gpu": 1}})
    assert "resources" not in config
    assert config == validation.load_config({"name": "x"})
    with pytest.raises(ConfigError, match="resources.jobs: 'chunks' is not one of stages, runs"):
        validation.load_config({"name": "x", "resources": {"jobs": "chunks"}})


def test_numbers_are_normalized():
    config = validation.load_config(
        {"model": {"width": 512.0, "w_std": 2}, "training": {"learning_rate": 1}}
    )
    assert type(config["model"]["width"]) is int
    assert type(config["model"]["w_std"]) is float
    assert type(config["training"]["learning_rate"]) is float


def test_yaml_reads_exponent_floats_and_refuses_duplicate_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: 1e-3\n")
    assert validation.load_config(path)["training"]["learning_rate"] == 1e-3
    path.write_text("model:\n  width: 8\nmodel:\n  width: 16\n")
    (message,) = _errors(path)
    assert "'model' given twice" in message


def test_missing_config_file_is_a_config_error(tmp_path):
    (message,) = _errors(tmp_path / "nope.yaml")
    assert "nope.yaml" in message


def test_output_dim():
    assert validation.output_dim(validation.load_config({})) == 1
    assert validation.output_dim(validation.load_config({"training": {"loss": "xent"}})) == 2
    assert validation.output_dim(validation.load_config({"data": {"classes": [0, 1, 2]}})) == 3


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
        ({"name": "calibration.json"}, "name: 'calibration.json' is the name of a file results/"),
        ({"name": "README.md"}, "name: 'README.md' is the name of a file results/ holds"),
        ({"name": "résumé"}, "name: 'résumé' may only contain ASCII letters (A-Z, a-z)"),
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
    config = validation.load_config({"training": {"optimizer": "momentum", "batch_size": 16}})
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


def test_analytic_kernels_only_for_fc():
    (message,) = _errors({"model": {"architecture": "cnn"}})
    assert message.startswith("kernels.analytic: true, but the analytic kernels exist only for")
    validation.load_config({"model": {"architecture": "cnn"}, "kernels": {"analytic": False}})


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
    config = validation.load_config({"training": training, "kernels": NO_THETA0})
    assert config["kernels"]["initial"] is False
    assert validation.load_config({})["kernels"]["initial"] is True  # the default


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


def test_axis_names_must_be_unique():
    schema = validation.load_schema()
    keys = [
        k
        for s in ("data", "model", "training", "kernels")
        for k in schema["properties"][s]["properties"]
    ]
    assert len(keys) == len(set(keys))  # so every sweepable field has a unique short name


# ----------------------------------------------------------------------------- what jobs need


@pytest.mark.parametrize(
    "config, expected",
    [
        # issue 10, failure 8: n ≤ 3 passed, then compare failed inside xarray
        ({"data": {"n_train": 3}}, "data.n_train: 3 is too few examples; at least 4"),
        ({"data": {"n_test": 1}}, "data.n_test: 1 is too few examples; at least 4"),
        ({"sweep": {"data.n_test": [3, 8]}}, "data.n_test: 3 is too few examples"),
        # one example per class of each split
        (
            {"data": {"classes": [0, 1, 2, 3, 4, 5], "n_train": 5}},
            "data.n_train: 5 is too few examples; at least 6 are needed (one per class",
        ),
        # issue 10, failure 11: seeds.start 2^64 gave a traceback in init; ≥ 2^32 repeats seeds
        ({"seeds": {"start": 2**64}}, "seeds.start: 18446744073709551616 must be ≤ 4294967295"),
        ({"seeds": {"start": 2**32 - 1, "count": 2}}, "seeds.start: the seeds reach 4294967296"),
        ({"seeds": {"list": [0, 2**32]}}, "seeds.list[1]: 4294967296 must be ≤ 4294967295"),
        (
            {"ensemble": {"members": 4, "seed": 2**32 - 2}},
            "ensemble.seed: 4294967294 + ensemble.members 4 − 1 is more than 4294967295",
        ),
    ],
)
def test_sizes_and_seeds_jobs_cannot_handle_are_refused(config, expected):
    messages = _errors(config)
    assert any(m.startswith(expected) for m in messages), messages


def test_the_fewest_examples_are_what_the_comparison_keeps():
    from ntkpipe.analysis import metrics
    from ntkpipe.sweep import validate_checks

    assert validate_checks.MIN_EXAMPLES == metrics.N_SAMPLES
    config = validation.load_config({"data": {"n_train": 4, "n_test": 4}})
    assert config["data"]["n_test"] == 4


def test_the_largest_seed_gives_its_own_key_and_the_next_would_not():
    import jax

    from ntkpipe.sweep import validate_checks

    top = validate_checks.MAX_SEED
    validation.load_config({"seeds": {"start": top, "count": 1}})
    with jax.enable_x64(False):  # float32 runs
        assert (jax.random.PRNGKey(top) != jax.random.PRNGKey(0)).any()
        assert (jax.random.PRNGKey(top + 1) == jax.random.PRNGKey(0)).all()  # why it is refused


@pytest.mark.parametrize(
    "model", [{"width": 10**30}, {"width": 10**7}, {"depth": 1000, "width": 4096}]
)
def test_sizes_the_cost_model_puts_beyond_memory_are_refused(model):
    """issue 10, failure 11: width 10^30 and 10^7 ran out of memory or crashed in init."""
    from ntkpipe.sweep import cost_settings, runs, validate_checks

    runs_ = runs.expand_runs(validation.load_config({"model": model}))
    settings = cost_settings.load_settings(None)
    (message,) = validate_checks.memory_problems(runs_, settings, 16_000, "this machine's memory")
    assert message.startswith("model: 1 run(s) need more memory than this machine's memory")
    assert "seeds~0-1 (" in message and "ntkpipe.sweep.cost" in message
    small = runs.expand_runs(validation.load_config({"model": {"width": 64}}))
    assert validate_checks.memory_problems(small, settings, 16_000, "x") == []
    assert validate_checks.memory_problems(runs_, settings, None, "x") == []


def test_machine_memory_is_read_from_the_system():
    from ntkpipe.sweep import validate_checks

    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    assert abs(validate_checks.machine_memory_mb() - total_kb // 1024) <= 1


def test_lr_factor_resolves_eta_later_and_is_exclusive_with_learning_rate():
    """lr_factor (fixed or swept) leaves learning_rate null; with learning_rate, with
    kernels.initial false, with an ensemble or with a null in its sweep, a clear error."""

    def _joined(config):
        return "\n".join(_errors(config))

    config = validation.load_config({"name": "x", "sweep": {"training.lr_factor": [0.5, 1.5]}})
    assert config["training"]["learning_rate"] is None
    assert validation.load_config(config) == config  # idempotent
    fixed = validation.load_config({"name": "x", "training": {"lr_factor": 2.0}})
    assert fixed["training"]["learning_rate"] is None and fixed["training"]["lr_factor"] == 2.0
    both = _joined({"name": "x", "training": {"learning_rate": 0.1, "lr_factor": 2.0}})
    assert "training.learning_rate: 0.1 and training.lr_factor: 2.0 are exclusive" in both
    swept = _joined(
        {"name": "x", "training": {"lr_factor": 2.0}, "sweep": {"training.learning_rate": [1, 2]}}
    )
    assert "training.learning_rate: [1, 2] and training.lr_factor" in swept
    assert "kernels.initial: false, but training.lr_factor" in _joined(
        {"name": "x", "training": {"lr_factor": 2.0}, "kernels": {"initial": False}}
    )
    assert "ensemble.members: 4, but the Fig. 2 ensembles" in _joined(
        {"name": "x", "training": {"lr_factor": 2.0}, "ensemble": {"members": 4}}
    )
    assert "training.lr_factor: a sweep of it takes numbers > 0" in _joined(
        {"name": "x", "sweep": {"training.lr_factor": [None, 2.0]}}
    )
    assert "training.lr_factor" in _joined({"name": "x", "training": {"lr_factor": -1}})
