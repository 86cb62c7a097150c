"""The streamed collect: run stores read as plain arrays, stacked into the summary, cached.

Real metrics stores, written as the compare stage writes them (``metrics.run_metrics`` on
train/linear/kernel datasets, ``write_store``), for sweeps that exercise the stacking rules: seed
chunks, a missing run, a diverged seed, float32 values promoted by a missing run, the learning
rate as a sweep axis (per-run t), axis values out of order, depths with different layers, a
string axis, runs without Θ̂₀, and a sweep whose runs differ in their variables (stacked by
xarray). The streamed summary must be identical (values, dims, dtypes, attributes) to the one
``tests.combined_summary.summarize`` combines from ``read_store`` Datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from ntkpipe.analysis import metrics, summary_rows
from ntkpipe.errors import StoreError
from ntkpipe.io import arrays, stores
from ntkpipe.jobs import analysis as jobs_analysis
from ntkpipe.sweep import layout, validate
from ntkpipe.sweep import runs as ntk_runs
from tests import combined_summary

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
STEPS = (0, 1, 3)

SWEEPS = {
    # seed chunks, η as an axis listed out of order, analytic kernels, a missing run
    "chunks": (
        {"model.width": [16, 64], "training.learning_rate": [1.0, 0.5]},
        {"seeds": {"count": 4, "per_job": 2}},
        {"width~64/learning_rate~0.5/seeds~2-3"},
    ),
    # depths with different layers, a string axis, no Θ̂₀ (NaN kernel metrics), seed chunks
    "depths": (
        {"model.depth": [3, 1], "model.activation": ["relu", "erf"]},
        {
            "seeds": {"count": 2, "per_job": 1},
            "kernels": {"initial": False, "final": False, "analytic": False},
            "training": {"optimizer": "momentum"},
        },
        set(),
    ),
    # one seed chunk per point: η keeps the dims of the axes alone
    "one_chunk": ({"model.width": [32, 16]}, {"seeds": {"count": 2, "per_job": 2}}, set()),
    # stores of width 16 written before weight_sample existed: the runs differ in their
    # variables, which xarray stacks (combine_by_coords by variable set, then merged)
    "older": ({"model.width": [16, 64]}, {"seeds": {"count": 2, "per_job": 1}}, set()),
}
OLDER = "width~16/"  # runs whose stores lack weight_sample


def _sweep_config(sweep, changes) -> dict:
    raw = yaml.safe_load(TINY.read_text())
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values}
    raw["sweep"] = sweep
    return validate.load_config(raw)


def _stage_datasets(run, rng):
    """train, linear, kernel_init, kernel_final, analytic Datasets of one run (random values)."""
    config, seeds = run.config, list(run.seeds)
    n, m, s = config["data"]["n_train"], config["data"]["n_test"], len(seeds)
    layers = [f"dense_{i}" for i in range(config["model"]["depth"] + 1)]
    samples = sorted(f"{layer}[{i},{i}]" for layer in layers for i in range(2))
    lr = config["training"]["learning_rate"]
    coords = {"seed": seeds, "step": list(STEPS), "layer": layers, "wsample": samples}

    def curves(diverged):
        f32 = np.float32
        # falling losses (regime lazy), not finite from the step a seed diverged at, as recorded
        gone = (
            np.asarray(STEPS)[None, :] >= np.where(np.asarray(diverged) < 0, 1e9, diverged)[:, None]
        )
        losses = {
            name: np.where(gone, np.nan, -np.sort(-rng.random((s, len(STEPS))), 1)).astype(f32)
            for name in ("loss_train", "loss_test")
        }
        return {
            **{
                name: (("seed", "step"), rng.random((s, len(STEPS))).astype(f32))
                for name in ("acc_train", "acc_test")
            },
            **{name: (("seed", "step"), values) for name, values in losses.items()},
            "fx_train": (
                ("seed", "step", "train", "out"),
                rng.normal(size=(s, 3, n, 1)).astype(f32),
            ),
            "fx_test": (("seed", "step", "test", "out"), rng.normal(size=(s, 3, m, 1)).astype(f32)),
            "weight_change": (("seed", "step", "layer"), rng.random((s, 3, len(layers)))),
            "weight_sample": (("seed", "step", "wsample"), rng.normal(size=(s, 3, len(samples)))),
            "diverged_step": (("seed",), diverged),
        }

    def with_t(variables):
        ds = xr.Dataset(variables, coords=coords)
        return ds.assign_coords(t=("step", lr * np.asarray(STEPS, dtype=float)))

    diverged = [2 if seed == 1 else -1 for seed in seeds]  # seed 1 diverged in every run
    trained = with_t(curves(diverged))
    linear_vars = curves([-1] * s)
    kernels, analytic = config["kernels"], None
    if kernels["analytic"]:
        extra = curves([-1] * s)
        linear_vars.update({f"{k}_analytic": v for k, v in extra.items() if k != "diverged_step"})
        gram = rng.normal(size=(n, n))
        analytic = xr.Dataset({name: (("train", "train2"), gram @ gram.T) for name in KERNELS})

    def kernel():
        return xr.Dataset(
            {
                **{name: (("seed", "train", "train2"), rng.random((s, n, n))) for name in KERNELS},
                "lr_critical": (("seed",), np.full(s, 0.75)),  # η = 1 is above it: flagged
            },
            coords={"seed": seeds},
        )

    initial = kernel() if kernels["initial"] else None
    final = kernel() if kernels["final"] else None
    return trained, with_t(linear_vars), initial, final, analytic


KERNELS = ("ntk_train_train", "nngp_train_train")


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """{name: (sweep config, runs folder)} with every run's metrics.zarr but the missing ones."""
    rng = np.random.default_rng(0)
    out = {}
    for name, (sweep, changes, missing) in SWEEPS.items():
        config = _sweep_config(sweep, changes)
        folder = tmp_path_factory.mktemp(name)
        for run in ntk_runs.expand_runs(config):
            if run.run_id in missing:
                continue
            trained, linear, initial, final, analytic = _stage_datasets(run, rng)
            ds = metrics.run_metrics(
                run.config,
                trained=trained,
                linear=linear,
                kernel_init=initial,
                kernel_final=final,
                analytic=analytic,
            )
            if name == "older" and run.run_id.startswith(OLDER):
                ds = ds.drop_vars(["weight_sample", "wsample"])
            path = folder / "runs" / run.run_id / "metrics.zarr"
            stores.write_store(ds, path, config=run.config, stage="metrics")
        (folder / "sweep.json").write_text(ntk_runs.to_json(config))
        out[name] = (config, folder)
    return out


def _combined(config, folder) -> xr.Dataset:
    """The summary built the way collect built it before: read_store, then
    tests.combined_summary.summarize."""
    found = {}
    for run in ntk_runs.expand_runs(config):
        path = folder / "runs" / run.run_id / "metrics.zarr"
        found[run.run_id] = (
            run,
            stores.read_store(path, stage="metrics") if path.exists() else None,
        )
    return combined_summary.summarize(config, found)


def _streamed(config, folder) -> xr.Dataset:
    rows = []
    for run in ntk_runs.expand_runs(config):
        path = folder / "runs" / run.run_id / "metrics.zarr"
        row = summary_rows.row(arrays.read_arrays(path, stage="metrics")) if path.exists() else None
        rows.append((run, row))
    return summary_rows.summarize(config, rows)


def _assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a, b)
    assert a.attrs == b.attrs
    assert list(a.data_vars) == list(b.data_vars)
    for name in a.variables:
        assert (a[name].dims, a[name].dtype) == (b[name].dims, b[name].dtype), name
        assert a[name].attrs == b[name].attrs, name


@pytest.mark.parametrize("name", [name for name in SWEEPS if name != "older"])
def test_streamed_summary_is_identical_to_the_combined_one(sweeps, name):
    config, folder = sweeps[name]
    combined = _combined(config, folder)
    _assert_same(_streamed(config, folder), combined)
    if name == "chunks":  # the cases the sweep was made for are really in it
        assert combined["learning_rate"].dims == ("learning_rate",)
        assert combined["t"].dims == ("learning_rate", "step")
        assert list(combined["learning_rate"].values) == [0.5, 1.0]
        assert combined["rmse_test"].dtype == np.float64  # float32, promoted by the missing run
        assert set(np.unique(combined["status"].values)) == {
            "diverged",
            "lr_above_critical",
            "missing",
            "ok",
        }
    if name == "depths":
        assert combined["layer_role"].dims == ("depth", "layer")
        assert combined["rmse_test"].dtype == np.float32
        assert list(combined["activation"].values) == ["erf", "relu"]
        # combine_by_coords concatenates every variable along seed when a point has several
        # seed chunks; η, a setting of the run, is then taken off seed again (as one_chunk)
        assert combined["learning_rate"].dims == ("depth", "activation")
    if name == "one_chunk":
        assert combined["learning_rate"].dims == ("width",)


def test_runs_that_cannot_be_stacked_are_refused_by_name(sweeps):
    """Runs that differ in their variables (here stores older than weight_sample), which
    combine_by_coords cannot stack either, are refused naming the runs and the difference."""
    config, folder = sweeps["older"]
    with pytest.raises(
        ValueError,
        match=r"run width~64/seeds~0 cannot be stacked with run "
        r"width~16/seeds~0 .*variables only in one of them: weight_sample",
    ):
        _streamed(config, folder)


def test_plain_arrays_are_those_of_read_store(sweeps, tmp_path, monkeypatch):
    """read_arrays decodes as xarray does: values, dtypes, attributes; a metrics store without
    xarray, a store it does not decode itself (here one with a params/ group) by read_store."""
    config, folder = sweeps["chunks"]
    path = next((folder / "runs").glob("*/*/*/metrics.zarr"))
    with_params = tmp_path / "init.zarr"
    ds = stores.read_store(path, stage="metrics")
    params = {"dense_0": {"w": np.ones((ds.sizes["seed"], 2, 2))}}
    stores.write_store(ds, with_params, config={}, stage="metrics", params=params)
    for store in (path, with_params):
        expected = stores.read_store(store, stage="metrics")
        with monkeypatch.context() as patch:
            if store == path:  # decoded here: read_store is not used
                patch.setattr(arrays, "read_store", _refused)
            plain = arrays.read_arrays(store, stage="metrics")
        assert set(plain) == set(expected.variables)
        for name, (dims, values, attrs) in plain.items():
            var = expected[name]
            assert (dims, values.dtype, attrs) == (var.dims, var.dtype, var.attrs), name
            np.testing.assert_array_equal(values, var.values)


def _refused(*args, **kwargs):
    raise AssertionError("read_store was used for a store read_arrays decodes itself")


def test_plain_arrays_refuse_a_corrupted_or_foreign_store(sweeps, tmp_path):
    config, folder = sweeps["chunks"]
    path = next((folder / "runs").glob("*/*/*/metrics.zarr"))
    with pytest.raises(StoreError, match="holds stage 'metrics', expected 'train'"):
        arrays.read_arrays(path, stage="train")
    copy = tmp_path / "metrics.zarr"
    _copy(path, copy)
    chunk = copy / "rmse_test" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    chunk.write_bytes(_recompressed(data, flip=True))
    with pytest.raises(StoreError, match="rmse_test differ from their digest"):
        arrays.read_arrays(copy, stage="metrics")
    chunk.write_bytes(b"not zstd")
    with pytest.raises(StoreError, match=r"corrupted \(stage metrics\)"):
        arrays.read_arrays(copy, stage="metrics")


def _copy(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target)


def _recompressed(data: bytearray, flip: bool) -> bytes:
    import numcodecs

    codec = numcodecs.Zstd()
    raw = bytearray(codec.decode(bytes(data)))
    if flip:
        raw[0] ^= 0xFF
    return codec.encode(bytes(raw))


# ---------------------------------------------------------------- the collect job and its cache


def _collect(folder: Path, out: Path, capsys) -> str:
    jobs_analysis.collect(folder / "sweep.json", folder / "runs", out, overwrite=True)
    return capsys.readouterr().out


def test_collect_writes_the_summary_of_today_and_rereads_only_new_or_changed_runs(
    sweeps, tmp_path, capsys
):
    config, source = sweeps["chunks"]
    folder = tmp_path / "sweep"
    _copy(source, folder)
    out = folder / "summary.zarr"
    first = _collect(folder, out, capsys)
    assert "collect: 7/8 runs (7 read, 0 cached)" in first
    assert layout.summary_rows_cache(out).is_file()

    # the missing run arrives: only it is read; the rows from the cache stack as read ones do
    missing = "width~64/learning_rate~0.5/seeds~2-3"
    neighbour = folder / "runs" / "width~64/learning_rate~0.5/seeds~0-1" / "metrics.zarr"
    ds = stores.read_store(neighbour, stage="metrics").assign_coords(seed=[2, 3])
    run = {r.run_id: r for r in ntk_runs.expand_runs(config)}[missing]
    stores.write_store(
        ds, folder / "runs" / missing / "metrics.zarr", config=run.config, stage="metrics"
    )
    assert "collect: 8/8 runs (1 read, 7 cached)" in _collect(folder, out, capsys)
    _assert_same(
        stores.read_store(out, stage="summary").drop_attrs(deep=False),
        _written(_combined(config, folder), tmp_path / "combined.zarr"),
    )

    # a run store written again with other values is read again, never taken from the cache
    changed = folder / "runs" / missing / "metrics.zarr"
    ds = stores.read_store(changed, stage="metrics")
    ds["rmse_test"] = ds["rmse_test"] + 1
    stores.write_store(ds, changed, config=run.config, stage="metrics", overwrite=True)
    assert "collect: 8/8 runs (1 read, 7 cached)" in _collect(folder, out, capsys)
    summary = stores.read_store(out, stage="summary")
    point = dict(width=64, learning_rate=0.5, seed=[2, 3])
    np.testing.assert_array_equal(summary["rmse_test"].sel(point), ds["rmse_test"])

    # nothing changed: nothing read; a broken cache is ignored (everything read again)
    assert "(0 read, 8 cached)" in _collect(folder, out, capsys)
    layout.summary_rows_cache(out).write_bytes(b"not a cache")
    assert "(8 read, 0 cached)" in _collect(folder, out, capsys)


def _written(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """`ds` as a summary store holds it (written with a config, read back), without the
    store-level attributes (provenance differs between the two writes)."""
    stores.write_store(ds, path, config=json.loads(ds.attrs["config"]), stage="summary")
    return stores.read_store(path, stage="summary").drop_attrs(deep=False)
