"""A custom model's and an .npz dataset's config is refused before any job, naming the field:
the factory is built in the probe subprocess (ntkpipe.sweep.custom_model), the arrays read by
ntkpipe.datasets.arrays. Without JAX in this process's config path."""

import json
import textwrap

import numpy as np
import pytest

from ntkpipe.errors import ConfigError
from ntkpipe.sweep import cost_model, custom_model, points, runs

BAD_FACTORIES = textwrap.dedent(
    """
    import flax.linen as nn
    import jax.numpy as jnp

    class Net(nn.Module):
        out: int
        int_param: bool = False

        @nn.compact
        def __call__(self, x):
            if self.int_param:
                self.param("count", lambda key, shape: jnp.zeros(shape, jnp.int32), (2,))
            return nn.Dense(self.out, name="readout")(x)

    def make(model):
        kind = model["options"]["kind"]
        if kind == "none":
            return "not a module"
        if kind == "raises":
            raise RuntimeError("width too small")
        if kind == "wide":
            return Net(model["out_dim"] + 2)
        return Net(model["out_dim"], int_param=kind == "ints")
    """
)


def _config(tmp_path, **model):
    return {
        "name": "custom",
        "data": {"dataset": "digits", "classes": [3, 8], "n_train": 8, "n_test": 8},
        "model": {"architecture": "custom", "width": 8, "depth": 1, **model},
        "training": {"steps": 4, "records": 2},
    }


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NTKPIPE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "bad.py").write_text(BAD_FACTORIES)
    return tmp_path


def test_bad_factories_are_refused_with_model_factory_named(workdir):
    config = _config(workdir, factory="bad.py:make", options={"kind": "ok"})
    config["sweep"] = {"model.options.kind": ["ok", "none", "raises", "wide", "ints"]}
    with pytest.raises(ConfigError) as err:
        runs.load_config(config)
    text = str(err.value)
    assert "returned str 'not a module'; it must return a flax.linen.Module" in text
    assert "raised RuntimeError: width too small" in text
    assert "must return f(x) [n, 1] for this task" in text and "(4, 3)" in text
    assert "parameters must be floating point" in text and "count (int32)" in text
    assert len(err.value.errors) == 4  # kind ok is fine
    assert all(e.startswith("model.factory:") for e in err.value.errors)
    assert "options kind='wide'" in text  # the sweep point is named


def test_a_factory_module_that_cannot_be_imported_or_found(workdir):
    with pytest.raises(ConfigError, match=r"model\.factory: 'nowhere\.models:net' cannot be"):
        runs.load_config(_config(workdir, factory="nowhere.models:net"))
    with pytest.raises(ConfigError, match=r"model\.factory: 'gone\.py:net': the file gone\.py"):
        runs.load_config(_config(workdir, factory="gone.py:net"))
    with pytest.raises(ConfigError, match=r"model\.factory: 'bad\.py:nothing'.*no function"):
        runs.load_config(_config(workdir, factory="bad.py:nothing"))
    with pytest.raises(ConfigError, match=r"model\.factory: null, but model.architecture custom"):
        runs.load_config(_config(workdir))
    fc = _config(workdir, factory="bad.py:make")
    fc["model"]["architecture"] = "fc"
    with pytest.raises(ConfigError, match=r"model\.factory: 'bad.py:make' is set, but"):
        runs.load_config(fc)


def test_a_good_factory_is_probed_once_then_read_from_the_cache(workdir):
    config = _config(workdir, factory="bad.py:make", options={"kind": "ok"})
    config["sweep"] = {"model.width": [8, 16], "model.options.kind": ["ok", "plain"]}
    loaded = runs.load_config(config)
    assert loaded["kernels"]["analytic"] is False  # no infinite-width kernels for custom
    cached = sorted((workdir / "cache" / "probes").glob("*.json"))
    assert len(cached) == 4  # one probe subprocess, one answer per model point
    expanded = runs.expand_runs(loaded)
    assert [r.run_id for r in expanded][:2] == [
        "width~8/kind~ok/seeds~0-1",
        "width~8/kind~plain/seeds~0-1",
    ]
    assert expanded[1].config["model"]["options"] == {"kind": "plain"}
    assert runs.analytic_id(expanded[1]) == "kind~plain"
    answer = json.loads(cached[0].read_text())
    assert answer["errors"] == [] and answer["layers"] == ["readout"]
    # the digits rows have 64 features, one output: P = 64 + 1; a Dense forward ≈ 2·64 FLOPs
    assert answer["params"] == 65 and 100 <= answer["forward_flops"] <= 300
    run = runs.expand_runs(loaded)[0]
    net = cost_model.network(run.config)
    assert net.params == 65 and net.feature_width == 0.0
    (workdir / "bad.py").write_text(BAD_FACTORIES + "\n# edited\n")  # a new source: probed again
    assert custom_model._digest(custom_model.probe_spec(run.config, (8, 8, 1))) not in {
        p.stem for p in cached
    }


def test_analytic_kernels_asked_of_a_custom_model_are_refused(workdir):
    config = _config(workdir, factory="bad.py:make", options={"kind": "ok"})
    config["kernels"] = {"analytic": True}
    with pytest.raises(ConfigError, match=r"kernels\.analytic: true, but a custom module"):
        runs.load_config(config)


def _npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = {
        "x_train": rng.normal(size=(20, 6)),
        "y_train": np.arange(20) % 3,
        "x_test": rng.normal(size=(10, 6)),
        "y_test": np.arange(10) % 3,
    }
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return str(path)


def _arrays_config(path, **data):
    return {
        "name": "arrays",
        "data": {
            "dataset": "arrays",
            "path": path,
            "classes": [0, 2],
            "n_train": 8,
            "n_test": 4,
            **data,
        },
        "training": {"steps": 4, "records": 2},
        "model": {"width": 8},
    }


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y_test": None}, r"data\.path: .*d\.npz: key\(s\) y_test missing"),
        ({"y_train": np.arange(19) % 3}, r"x_train has 20 rows but y_train has 19"),
        ({"x_test": np.full((10, 6), np.nan)}, r"x_test has 60 non-finite value\(s\)"),
        ({"y_test": np.ones(10, int)}, r"data\.classes: \[0, 2\] not among the labels of y_test"),
        ({"x_test": np.zeros((10, 5))}, r"x_train \(20, 6\) and x_test \(10, 5\)"),
    ],
)
def test_bad_arrays_are_refused_with_the_file_and_key(tmp_path, arrays, message):
    path = _npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(ConfigError, match=message):
        runs.load_config(_arrays_config(path))


def test_arrays_fields_are_checked_against_the_file(tmp_path):
    path = _npz(tmp_path / "d.npz")
    with pytest.raises(ConfigError, match=r"data\.path: .*nope\.npz: no such file"):
        runs.load_config(_arrays_config(str(tmp_path / "nope.npz")))
    with pytest.raises(ConfigError, match=r"data\.n_train: 16 needs 8 example\(s\) of class 0"):
        runs.load_config(_arrays_config(path, n_train=16))
    with pytest.raises(ConfigError, match=r"data\.input_shape: \[2, 2\] has 4 entries"):
        runs.load_config(_arrays_config(path, input_shape=[2, 2]))
    with pytest.raises(ConfigError, match=r"data\.classes: null \(real-valued targets\), but"):
        runs.load_config(_arrays_config(path, classes=None))
    with pytest.raises(ConfigError, match=r"data\.path: .* is set, but it is used only with"):
        runs.load_config({**_arrays_config(path), "data": {"path": path}})
    real = _npz(tmp_path / "r.npz", y_train=np.ones((20, 3)), y_test=np.ones((10, 3)))
    loaded = runs.load_config(_arrays_config(real, classes=None, input_shape=[3, 2, 1]))
    assert points.output_dim(loaded) == 3
