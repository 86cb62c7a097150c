"""Tests of io.stores: round trips, atomic writes, partial and corrupted stores."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from ntkpipe.errors import StoreError
from ntkpipe.io import provenance
from ntkpipe.io import stores as storage

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"run_id": "width~8/seeds~0-1", "kernels": {"block_size": 4}, "model": {"width": 8}}


def _dataset(n_seed=2, n_train=10, n_test=6):
    rng = np.random.default_rng(0)
    ntk = rng.normal(size=(n_seed, n_train, n_train))
    return xr.Dataset(
        {
            "ntk_train_train": (("seed", "train", "train2"), ntk),
            "ntk_test_train": (
                ("seed", "test", "train"),
                rng.normal(size=(n_seed, n_test, n_train)),
            ),
            "lr_critical": (("seed",), np.array([1.5, np.nan])[:n_seed]),
            "weight_change": (("seed", "step", "layer"), rng.random((n_seed, 3, 3), np.float32)),
            "diverged": (("seed",), np.array([False, True])[:n_seed]),
        },
        coords={"layer": ["input", "hidden", "output"], "t": ("step", [0.0, 0.5, 1.0])},
        attrs={"note": "kept"},
    )


def _params(n_seed=2):
    rng = np.random.default_rng(1)
    return {
        "params": {
            "dense_0": {"kernel": rng.normal(size=(n_seed, 64, 8)), "bias": np.zeros((n_seed, 8))},
            "dense_1": {"kernel": rng.normal(size=(n_seed, 8, 1)).astype(np.float32)},
        }
    }


def _write(path, **kwargs):
    args = dict(config=CONFIG, stage="kernel_init", wall_time=12.5)
    return storage.write_store(_dataset(), path, **{**args, **kwargs})


def _assert_tree_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_tree_equal(a[key], b[key])
        else:
            assert a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key])


# ----------------------------------------------------------------------------- round trips


def test_round_trip_of_values_and_attributes(tmp_path):
    path = tmp_path / "width~8" / "seeds~0-1" / "kernel_init.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. no unstable-dtype warning for string coords
        _write(path)
    ds = storage.read_store(path, stage="kernel_init")
    ref = _dataset()
    for name in ref.variables:
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
        assert ds[name].dims == ref[name].dims
    assert ds["weight_change"].dtype == np.float32 and ds["diverged"].dtype == bool
    assert json.loads(ds.attrs["config"]) == CONFIG
    assert ds.attrs["stage"] == "kernel_init" and ds.attrs["wall_time_s"] == 12.5
    assert ds.attrs["note"] == "kept" and ds.attrs[provenance.COMPLETE_ATTR] is True
    for key in ("ntkpipe_version", "git_commit", "jax_version", "jax_device"):
        assert isinstance(ds.attrs[key], str) and ds.attrs[key]
    assert storage.read_attrs(path)["config"] == ds.attrs["config"]
    assert storage.is_complete(path)


def test_kernels_are_chunked_by_block_size(tmp_path):
    path = _write(tmp_path / "k.zarr")
    assert zarr.open_array(path / "ntk_train_train", mode="r").chunks == (1, 4, 4)
    assert zarr.open_array(path / "ntk_test_train", mode="r").chunks == (1, 4, 4)
    assert zarr.open_array(path / "weight_change", mode="r").chunks == (1, 3, 3)
    path = _write(tmp_path / "k2.zarr", chunks={"train": 5, "seed": 2})
    assert zarr.open_array(path / "ntk_train_train", mode="r").chunks == (2, 5, 4)
    assert json.loads((path / "zarr.json").read_text())["zarr_format"] == 3


def test_params_round_trip(tmp_path):
    path = _write(tmp_path / "init.zarr", params=_params())
    params = storage.read_params(path)
    _assert_tree_equal(params, _params())
    assert list(params["params"]) == ["dense_0", "dense_1"]  # written order


def test_params_need_a_leading_seed_axis_and_nothing_is_written_otherwise(tmp_path):
    bad = _params()
    bad["params"]["dense_1"]["kernel"] = np.ones((3, 8, 1))
    with pytest.raises(StoreError, match=r"params/params/dense_1/kernel: shape \(3, 8, 1\)"):
        _write(tmp_path / "init.zarr", params=bad)
    with pytest.raises(StoreError, match="nested mappings"):
        _write(tmp_path / "init.zarr", params={"layers": [np.ones((2, 3))]})
    assert list(tmp_path.iterdir()) == []


def test_store_without_params(tmp_path):
    path = _write(tmp_path / "k.zarr")
    with pytest.raises(StoreError, match="holds no parameters"):
        storage.read_params(path)


# ----------------------------------------------------------------------------- overwriting


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = _write(tmp_path / "k.zarr")
    with pytest.raises(StoreError, match="already exists; refusing to overwrite"):
        _write(path, wall_time=1.0)
    assert storage.read_store(path).attrs["wall_time_s"] == 12.5
    _write(path, wall_time=1.0, overwrite=True)
    assert storage.read_store(path).attrs["wall_time_s"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.zarr"]


def test_an_empty_directory_is_replaced(tmp_path):
    (tmp_path / "k.zarr").mkdir()  # e.g. made by a workflow engine before the job
    _write(tmp_path / "k.zarr")
    assert storage.is_complete(tmp_path / "k.zarr")


# ----------------------------------------------------------------------------- partial stores


def test_a_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(storage, "_mark_complete", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        _write(tmp_path / "init.zarr", params=_params())
    assert list(tmp_path.iterdir()) == []


def test_a_store_without_completion_marker_is_not_readable(tmp_path):
    path = _write(tmp_path / "k.zarr")
    meta = json.loads((path / "zarr.json").read_text())
    del meta["attributes"][provenance.COMPLETE_ATTR]
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="incomplete: the job writing it stopped"):
        storage.read_store(path)
    assert not storage.is_complete(path)


def test_kill_9_while_writing_leaves_no_complete_looking_store(tmp_path):
    path = tmp_path / "init.zarr"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"},
    )
    try:
        assert child.stdout.readline().strip() == "arrays written"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(".init.zarr.partial-")
    assert not path.exists() and not storage.is_complete(path)
    with pytest.raises(StoreError, match="an interrupted job left .init.zarr.partial-"):
        storage.read_store(path)
    with pytest.raises(StoreError, match="leftover of an interrupted job"):
        storage.read_store(partial)
    _write(path, params=_params())  # the rerun cleans up the dead job's leftover
    assert [p.name for p in tmp_path.iterdir()] == ["init.zarr"]
    _assert_tree_equal(storage.read_params(path), _params())


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, xarray as xr
    from ntkpipe.io import stores as storage

    def hang(*args):
        print("arrays written", flush=True)
        time.sleep(120)

    storage._mark_complete = hang
    ds = xr.Dataset({"f0_train": (("seed", "train", "out"), np.ones((2, 5, 1)))})
    params = {"params": {"dense_0": {"kernel": np.ones((2, 3, 4))}}}
    storage.write_store(ds, sys.argv[1], config={}, stage="init", params=params)
    """
)


# ----------------------------------------------------------------------------- corrupted stores


def _chunk_files(array_dir):
    return sorted(p for p in (array_dir / "c").rglob("*") if p.is_file())


def test_missing_store(tmp_path):
    with pytest.raises(StoreError, match="does not exist; run the stage that writes it"):
        storage.read_store(tmp_path / "nope.zarr")


def test_wrong_stage(tmp_path):
    path = _write(tmp_path / "k.zarr")
    with pytest.raises(StoreError, match="holds stage 'kernel_init', expected 'train'"):
        storage.read_store(path, stage="train")


def test_garbled_metadata(tmp_path):
    path = _write(tmp_path / "k.zarr")
    (path / "zarr.json").write_text("{ not json")
    with pytest.raises(StoreError) as err:
        storage.read_store(path)
    assert str(path) in str(err.value) and "corrupted" in str(err.value)
    assert "snakemake --forcerun" in str(err.value)


def test_garbled_chunk(tmp_path):
    path = _write(tmp_path / "k.zarr")
    chunk = _chunk_files(path / "ntk_train_train")[0]
    chunk.write_bytes(b"garbage" * 10)
    with pytest.raises(StoreError, match="corrupted"):
        storage.read_store(path)


def test_deleted_chunk_is_detected_by_the_digest(tmp_path):
    path = _write(tmp_path / "k.zarr")
    _chunk_files(path / "ntk_test_train")[-1].unlink()  # reads back as fill values
    with pytest.raises(StoreError, match="ntk_test_train differ from their digest"):
        storage.read_store(path)
    assert storage.read_store(path, verify=False)["ntk_test_train"].shape == (2, 6, 10)


def test_corrupted_params(tmp_path):
    path = _write(tmp_path / "init.zarr", params=_params())
    storage.read_store(path)  # the dataset itself is fine
    kernel = path / "params" / "params" / "dense_0" / "kernel"
    _chunk_files(kernel)[0].unlink()
    with pytest.raises(StoreError, match="params/params/dense_0/kernel differ"):
        storage.read_params(path)


# ----------------------------------------------------------------------------- text files


def test_atomic_write_text_and_write_if_changed(tmp_path):
    path = tmp_path / "runs" / "a" / "config.json"
    assert storage.write_if_changed(path, "one\n") is True
    assert path.read_text() == "one\n"
    os.utime(path, (1_000_000, 1_000_000))
    assert storage.write_if_changed(path, "one\n") is False
    assert path.stat().st_mtime == 1_000_000  # untouched: no rerun triggered
    assert storage.write_if_changed(path, "two\n") is True
    assert path.read_text() == "two\n" and path.stat().st_mtime > time.time() - 60
    storage.atomic_write_text(path, "three\n")
    assert path.read_text() == "three\n"
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_fingerprint_and_corruption(tmp_path, capsys):
    from typing import NamedTuple

    class State(NamedTuple):
        step: int
        params: dict
        records: dict

    state = State(step=7, params=_params(), records={"loss_train": np.array([[0.5, np.nan]])})
    path = tmp_path / "train.zarr.ckpt"
    assert storage.load_checkpoint(path, fingerprint="abc") is None
    storage.save_checkpoint(path, state, fingerprint="abc")
    loaded = storage.load_checkpoint(path, fingerprint="abc")
    assert loaded.step == 7
    kernel = _params()["params"]["dense_1"]["kernel"]
    np.testing.assert_array_equal(loaded[".params['params']['dense_1']['kernel']"], kernel)
    assert loaded[".params['params']['dense_1']['kernel']"].dtype == np.float32
    np.testing.assert_array_equal(loaded[".records['loss_train']"], [[0.5, np.nan]])
    assert storage.load_checkpoint(path, fingerprint="other run") is None
    assert loaded.extra == {}
    partial = np.array([[0.0, 0.25, np.nan]])  # e.g. sampled weights recorded up to the step
    storage.save_checkpoint(path, state, fingerprint="abc", extra={"weight_sample": partial})
    loaded = storage.load_checkpoint(path, fingerprint="abc")
    np.testing.assert_array_equal(loaded.extra["weight_sample"], partial)
    assert loaded.step == 7 and not [key for key in loaded if "weight_sample" in key]
    assert [p.name for p in tmp_path.iterdir()] == ["train.zarr.ckpt"]
    saved = path.read_bytes()
    path.write_bytes(saved[: len(saved) // 2])  # truncated, as by a full disk or a cut copy
    assert storage.load_checkpoint(path, fingerprint="abc") is None  # training starts over
    assert "unreadable checkpoint" in capsys.readouterr().err
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("train.zarr.ckpt.unreadable-")]
    assert aside.read_bytes() == saved[: len(saved) // 2] and not path.exists()
    storage.save_checkpoint(path, state, fingerprint="abc")  # the retry's next checkpoint
    assert storage.load_checkpoint(path, fingerprint="abc").step == 7


def test_a_full_disk_names_the_store_and_the_checkpoint_and_leaves_no_part(tmp_path):
    from tests.full_disk import full_disk

    with full_disk(tmp_path / "disk", size_kb=48) as disk:
        store = disk / "train.zarr"
        with pytest.raises(StoreError, match=f"{store}: cannot write the store .No space left"):
            storage.write_store(_dataset(n_train=40), store, config=CONFIG, stage="kernel_init")
        assert list(disk.iterdir()) == []
        checkpoint = disk / "train.zarr.ckpt"
        big = {"w": np.ones((64, 1024))}  # 512 KB: more than the disk holds
        with pytest.raises(StoreError, match=f"{checkpoint}: cannot write the checkpoint"):
            storage.save_checkpoint(checkpoint, big, fingerprint="abc")
        assert list(disk.iterdir()) == []
