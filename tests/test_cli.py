"""The `ntkpipe` command: every stage on a tiny run, refusals, bad paths, help, the cache setting.

The stages are run in this process through ``ntkpipe.cli.main`` (as the rules run them, with
float32 as the command computes), in the order of the workflow: init → kernels → analytic →
train → linear → compare → collect → figures → report. One test starts the console script itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ntkpipe import cli
from ntkpipe.io import stores as storage
from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import stage_table, validate
from tests.workflow_helpers import stage_commands

SWEEP = {
    "name": "cli",
    "data": {"dataset": "digits", "classes": [3, 8], "n_train": 12, "n_test": 8},
    "model": {"depth": 1, "width": 16},
    "training": {"steps": 8, "records": 3},
    "kernels": {"block_size": 8},
    "seeds": {"count": 2, "per_job": 2},
}
RUN_STORES = tuple(row.store.removesuffix(".zarr") for row in stage_table.RUN_STAGES)


@pytest.fixture(scope="module")
def float32():
    """Compute as the ntkpipe command does: float32 (the test suite enables x64)."""
    import jax

    enabled = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", enabled)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, float32):
    """A tiny sweep run stage by stage through the CLI, as the workflow lays it out."""
    root = tmp_path_factory.mktemp("cli")
    sweep = validate.load_config(SWEEP)
    (run,) = ntk_config.expand_runs(sweep)
    out = root / "results" / "cli"
    run_dir, analytic_dir = out / "runs" / run.run_id, out / "analytic" / "all"
    run_dir.mkdir(parents=True)
    analytic_dir.mkdir(parents=True)
    files = {
        "sweep": out / "sweep.json",
        "model": run_dir / "model.json",
        "run": run_dir / "run.json",
        "analytic_json": analytic_dir / "analytic.json",
        "analytic": analytic_dir / "analytic.zarr",
        **{name: run_dir / f"{name}.zarr" for name in RUN_STORES},
        "summary": out / "summary.zarr",
        "figures": out / "figures",
        "report": out / "report.html",
    }
    files["sweep"].write_text(json.dumps(sweep))
    files["model"].write_text(ntk_config.to_json(ntk_config.stage_config(run.config, "init")))
    files["run"].write_text(ntk_config.to_json(run.config))
    analytic_config = ntk_config.stage_config(run.config, "analytic")
    files["analytic_json"].write_text(ntk_config.to_json(analytic_config))
    f = {k: str(v) for k, v in files.items()}
    commands = [
        ["analytic", "--run", f["analytic_json"], "--out", f["analytic"]],
        *stage_commands(
            files["model"], files["run"], {n: files[n] for n in RUN_STORES}, files["analytic"]
        ),
        ["collect", "--sweep", f["sweep"], "--runs", str(out / "runs"), "--out", f["summary"]],
        ["figures", "--summary", f["summary"], "--out", f["figures"]],
        ["report", "--summary", f["summary"], "--figures", f["figures"], "--out", f["report"]],
    ]
    for command in commands:
        assert cli.main(command) == 0, command
    return files, run


def test_every_stage_writes_its_store(sweep_dir):
    files, run = sweep_dir
    stages = {"kernel_init": "kernels", "kernel_final": "kernels"}
    for name in (*RUN_STORES, "analytic"):
        attrs = storage.read_attrs(files[name])
        assert attrs["stage"] == stages.get(name, name), name
        if name != "analytic":
            assert json.loads(attrs["config"])["seeds"] == [0, 1], name
    train = storage.read_store(files["train"], stage="train")
    assert train.fx_train.dims == ("seed", "step", "train", "out")
    assert train.fx_train.shape[:3] == (2, 3, 12) and list(train.step.values) == [0, 1, 8]
    init = storage.read_store(files["init"], stage="init")
    np.testing.assert_array_equal(train.fx_train.values[:, 0], init.f0_train.values)
    kernel = storage.read_store(files["kernel_init"], stage="kernels")
    ntk = kernel.ntk_train_train.values
    np.testing.assert_allclose(ntk, np.swapaxes(ntk, 1, 2), rtol=1e-5, atol=1e-6)
    assert (kernel.ntk_eigvals.values > -1e-4).all()  # Θ̂ is positive semi-definite
    final = storage.read_store(files["kernel_final"], stage="kernels")
    assert not np.array_equal(final.ntk_train_train.values, ntk)  # θ moved during training
    assert storage.read_store(files["linear"], stage="linear").attrs["method"] == "closed_form"


def test_sweep_level_stages_write_summary_figures_and_report(sweep_dir):
    files, run = sweep_dir
    summary = storage.read_store(files["summary"], stage="summary")
    assert summary.sizes["seed"] == 2 and "status" in summary
    assert list(files["figures"].glob("*.svg")), "no figure was drawn"
    html = files["report"].read_text()
    assert html.lstrip().lower().startswith("<!doctype html>") and "cli" in html


def test_existing_store_is_refused_without_overwrite(sweep_dir, capsys):
    files, _ = sweep_dir
    before = storage.read_attrs(files["init"])
    assert cli.main(["init", "--run", str(files["model"]), "--out", str(files["init"])]) == 1
    err = capsys.readouterr().err
    assert str(files["init"]) in err and "--overwrite" in err and "Traceback" not in err
    assert storage.read_attrs(files["init"]) == before  # untouched
    args = ["init", "--run", str(files["model"]), "--out", str(files["init"]), "--overwrite"]
    assert cli.main(args) == 0
    again = storage.read_store(files["init"], stage="init")
    np.testing.assert_array_equal(
        again.f0_train.values, storage.read_store(files["train"]).fx_train.values[:, 0]
    )


@pytest.mark.parametrize("kind", ["missing", "not json", "not a run config"])
def test_bad_run_path_is_named(tmp_path, capsys, kind):
    run = tmp_path / "run.json"
    if kind == "not json":
        run.write_text("{ data: ")
    elif kind == "not a run config":
        run.write_text(json.dumps({"width": 3}))
    out = tmp_path / "init.zarr"
    assert cli.main(["init", "--run", str(run), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ntkpipe init: error: --run:") and str(run) in err
    assert not out.exists()


def test_missing_required_argument_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--run", "x.json"])
    assert exit_info.value.code == 2
    assert "--init" in capsys.readouterr().err


def test_help_lists_every_stage():
    script = shutil.which("ntkpipe")
    command = [script] if script else [sys.executable, "-m", "ntkpipe.cli"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for stage in ("init", "kernels", "analytic", "train", "linear", "compare", "collect"):
        assert stage in result.stdout
    assert "figures" in result.stdout and "report" in result.stdout
    bare = subprocess.run(
        [sys.executable, "-m", "ntkpipe.cli"], capture_output=True, text=True, timeout=120
    )
    assert bare.returncode == 2 and "COMMAND" in bare.stdout


def test_console_script_runs_a_stage_with_pinned_threads(sweep_dir, tmp_path):
    files, _ = sweep_dir
    out = tmp_path / "init.zarr"
    cache = tmp_path / "jax_cache"
    _console_init(files["model"], out, {"NTKPIPE_JAX_CACHE": str(cache)})
    # The same numbers as the in-process run, and the compilation cache was filled.
    np.testing.assert_array_equal(
        storage.read_store(out).f0_train.values,
        storage.read_store(files["init"]).f0_train.values,
    )
    assert any(cache.iterdir())


def _console_init(model: Path, out: Path, env: dict) -> None:
    """`python -m ntkpipe.cli init` in a fresh process of this checkout, one thread."""
    import ntkpipe

    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(Path(ntkpipe.__file__).resolve().parents[1]),  # this checkout
        **env,
    }
    command = [sys.executable, "-m", "ntkpipe.cli", "init", "--run", str(model), "--out", str(out)]
    result = subprocess.run(
        [*command, "--threads", "1"], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- precision


@pytest.fixture(scope="module")
def float64_dir(tmp_path_factory):
    """The tiny run with ``precision: float64``, stage by stage through the CLI, with x64 off in
    this process as in the command: the stages must turn it on themselves, and off again."""
    import jax

    root = tmp_path_factory.mktemp("cli64")
    (run,) = ntk_config.expand_runs(validate.load_config({**SWEEP, "precision": "float64"}))
    files = {
        "model": root / "model.json",
        "run": root / "run.json",
        "analytic_json": root / "analytic.json",
        **{name: root / f"{name}.zarr" for name in ("init", "kernel_init", "analytic")},
        **{name: root / f"{name}.zarr" for name in ("train", "linear")},
    }
    for name, stage in (("model", "init"), ("run", "train"), ("analytic_json", "analytic")):
        files[name].write_text(ntk_config.to_json(ntk_config.stage_config(run.config, stage)))
    stores = {name: files[name] for name in ("init", "kernel_init", "train", "linear")}
    commands = [
        ["analytic", "--run", str(files["analytic_json"]), "--out", str(files["analytic"])],
        *stage_commands(files["model"], files["run"], stores, files["analytic"]),
    ]
    with jax.enable_x64(False):
        for command in commands:
            assert cli.main(command) == 0, command
            assert not jax.config.jax_enable_x64, f"{command[0]} left x64 on"
    return files, run


def _float_dtypes(path) -> set[str]:
    """The dtypes of a store's floating variables."""
    ds = storage.read_store(path)
    return {str(ds[name].dtype) for name in ds.data_vars if ds[name].dtype.kind == "f"}


def _params_dtypes(path) -> set[str]:
    """The dtypes of the leaves of a store's params/."""

    def leaves(tree):
        return [x for v in tree.values() for x in leaves(v)] if isinstance(tree, dict) else [tree]

    return {str(leaf.dtype) for leaf in leaves(storage.read_params(path))}


def test_float64_run_stores_float64_arrays(float64_dir):
    files, _ = float64_dir
    for name in ("init", "kernel_init", "analytic", "train", "linear"):
        assert _float_dtypes(files[name]) == {"float64"}, name
    for name in ("init", "train"):  # θ₀ and θ_T
        assert _params_dtypes(files[name]) == {"float64"}, name


def test_float64_closed_form_is_gradient_descent_to_float64_accuracy(float64_dir):
    """f_lin in closed form (Eq. 9–11, discrete) equals the function-space gradient-descent
    iteration f ← f − η/(n·k) Θ̂₀ (f − Y), in numpy float64, to ~1e-13 (float32 gives ~1e-6)."""
    from ntkpipe import datasets

    files, run = float64_dir
    init = storage.read_store(files["init"], stage="init")
    kernel = storage.read_store(files["kernel_init"], stage="kernels")
    linear = storage.read_store(files["linear"], stage="linear")
    assert linear.attrs["method"] == "closed_form"
    y = datasets.from_config(run.config).y_train
    assert y.dtype == np.float64
    eta, steps = run.config["training"]["learning_rate"], list(linear.step.values)
    for i in range(len(run.seeds)):
        ntk, ntk_st = kernel.ntk_train_train.values[i], kernel.ntk_test_train.values[i]
        f, g = init.f0_train.values[i], init.f0_test.values[i]
        rate = eta / y.size
        for step in range(steps[-1] + 1):
            if step in steps:
                at = steps.index(step)
                np.testing.assert_allclose(linear.fx_train.values[i, at], f, rtol=0, atol=1e-13)
                np.testing.assert_allclose(linear.fx_test.values[i, at], g, rtol=0, atol=1e-13)
            f, g = f - rate * ntk @ (f - y), g - rate * ntk_st @ (f - y)


def test_float64_kernel_is_the_float64_jacobian_gram(float64_dir):
    """Θ̂₀(X, X) of the float64 run equals J Jᵀ of an explicit float64 Jacobian to ~1e-14."""
    import jax
    from jax.flatten_util import ravel_pytree

    from ntkpipe.jobs import _job

    files, run = float64_dir
    kernel = storage.read_store(files["kernel_init"], stage="kernels")
    with _job.run_precision(run.config):
        data, net = _job.load_data_and_network(run.config)
        params = _job.read_params(files["init"], run.config)
        theta = jax.tree.map(lambda leaf: leaf[0], params)
        flat, unravel = ravel_pytree(theta)
        jac = np.asarray(jax.jacrev(lambda p: net.apply(unravel(p), data.x_train)[:, 0])(flat))
    assert jac.dtype == np.float64
    np.testing.assert_allclose(kernel.ntk_train_train.values[0], jac @ jac.T, rtol=1e-12)


def test_float32_run_stores_float32_whatever_the_x64_mode(sweep_dir, tmp_path):
    """The default precision, float32, stays float32 even when the caller has x64 on."""
    import jax

    files, _ = sweep_dir
    assert _float_dtypes(files["init"]) == {"float32"}
    assert _params_dtypes(files["init"]) == _params_dtypes(files["train"]) == {"float32"}
    train, linear = storage.read_store(files["train"]), storage.read_store(files["linear"])
    for var in (train.fx_train, train.fx_test, train.loss_train, linear.fx_train, linear.fx_test):
        assert var.dtype == np.float32, var.name
    assert storage.read_store(files["kernel_init"]).ntk_train_train.dtype == np.float32
    out = tmp_path / "init.zarr"
    with jax.enable_x64(True):
        assert cli.main(["init", "--run", str(files["model"]), "--out", str(out)]) == 0
        assert jax.config.jax_enable_x64  # restored
    again = storage.read_store(out).f0_train
    assert again.dtype == np.float32
    np.testing.assert_array_equal(again.values, storage.read_store(files["init"]).f0_train.values)


def test_console_script_honours_float64(float64_dir, tmp_path):
    """A fresh `ntkpipe init` process (x64 off at start, threads pinned) stores float64."""
    files, _ = float64_dir
    out = tmp_path / "init.zarr"
    _console_init(files["model"], out, {"NTKPIPE_JAX_CACHE": "off"})
    assert _float_dtypes(out) == {"float64"}
    np.testing.assert_allclose(
        storage.read_store(out).f0_train.values,
        storage.read_store(files["init"]).f0_train.values,
        rtol=1e-13,
    )


# ---------------------------------------------------------------- the compilation cache


def test_cache_folder_precedence(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert cli.configure_compilation_cache(env) == str(tmp_path / "xdg" / "ntkpipe" / "jax")
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "xdg" / "ntkpipe" / "jax")
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"

    env = {"JAX_COMPILATION_CACHE_DIR": "/jax/own", "NTKPIPE_JAX_CACHE": ""}
    assert cli.configure_compilation_cache(env) == "/jax/own"

    env = {"JAX_COMPILATION_CACHE_DIR": "/jax/own", "NTKPIPE_JAX_CACHE": "/shared/results/cache"}
    assert cli.configure_compilation_cache(env) == "/shared/results/cache"
    assert env["JAX_COMPILATION_CACHE_DIR"] == "/shared/results/cache"

    env = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2.5", "NTKPIPE_JAX_CACHE": "/c"}
    cli.configure_compilation_cache(env)
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "2.5"  # a user's choice stays


@pytest.mark.parametrize("off", ["off", "OFF", "0", "false"])
def test_cache_can_be_turned_off(off):
    env = {"NTKPIPE_JAX_CACHE": off, "JAX_COMPILATION_CACHE_DIR": "/jax/own"}
    assert cli.configure_compilation_cache(env) is None
    assert "JAX_COMPILATION_CACHE_DIR" not in env


def test_cache_is_left_alone_once_jax_runs(monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("NTKPIPE_JAX_CACHE", "/somewhere")
    assert "jax" in sys.modules  # conftest imported it
    assert cli.configure_compilation_cache() is None
    assert "JAX_COMPILATION_CACHE_DIR" not in os.environ
