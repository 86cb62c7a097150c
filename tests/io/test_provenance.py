"""Tests of io.provenance: what a store was computed from, checked before it is used or kept
(issue 10, failures 4–6: a fresh clone, moved results, a swapped store, a hand-edited run.json)."""

import numpy as np
import pytest
import xarray as xr

from ntkpipe.errors import StoreError
from ntkpipe.io import provenance
from ntkpipe.io import stores as storage


def _config(width, lr=0.5):
    return {
        "run_id": f"width~{width}/seeds~0",
        "model": {"width": width},
        "training": {"learning_rate": lr},
        "kernels": {"block_size": 4},
    }


def _store(path, config, value=1.0, inputs=None):
    ds = xr.Dataset({"f": (("seed", "train"), np.full((1, 3), value))}, coords={"seed": [0]})
    digests = provenance.input_digests(inputs)
    return storage.write_store(ds, path, config=config, stage="train", inputs=digests)


def test_a_store_records_the_digests_of_its_inputs(tmp_path):
    init = _store(tmp_path / "init.zarr", _config(16))
    train = _store(tmp_path / "train.zarr", _config(16), inputs={"init.zarr": init})
    record = provenance.read_record(train)
    assert record["inputs"] == (
        '{"init.zarr": "' + provenance.content_digest(provenance.read_record(init)) + '"}'
    )
    same = _store(tmp_path / "again.zarr", _config(16))  # equal arrays: equal digest
    assert provenance.content_digest(provenance.read_record(same)) == provenance.content_digest(
        provenance.read_record(init)
    )
    other = _store(tmp_path / "other.zarr", _config(16), value=2.0)
    assert provenance.content_digest(provenance.read_record(other)) != provenance.content_digest(
        provenance.read_record(init)
    )


def test_a_store_of_another_config_is_stale(tmp_path):
    train = _store(tmp_path / "train.zarr", _config(16))
    assert provenance.stale_reason(train, _config(16)) is None
    assert provenance.stale_reason(train, _config(16, lr=0.1)) == "computed from another config"
    assert provenance.stale_reason(tmp_path / "missing.zarr", _config(16)) == "missing"


def test_a_store_whose_input_changed_is_stale(tmp_path):
    init = _store(tmp_path / "init.zarr", _config(16))
    train = _store(tmp_path / "train.zarr", _config(16), inputs={"init.zarr": init})
    assert provenance.stale_reason(train, _config(16), {"init.zarr": init}) is None
    storage.write_store(
        xr.Dataset({"f": (("seed", "train"), np.full((1, 3), 3.0))}, coords={"seed": [0]}),
        init,
        config=_config(16),
        stage="train",
        overwrite=True,
    )
    why = provenance.stale_reason(train, _config(16), {"init.zarr": init})
    assert why == "its input init.zarr has changed since"


def test_a_swapped_store_is_refused_naming_it(tmp_path):
    """failure 5: width~64's train.zarr at width~16's path flowed into the metrics."""
    swapped = _store(tmp_path / "width~16" / "train.zarr", _config(64))
    provenance.check_input(swapped, [_config(64)])
    with pytest.raises(StoreError) as err:
        provenance.check_input(swapped, [_config(16), {"model": {"width": 16}}])
    message = str(err.value)
    assert message.startswith(f"{swapped}: computed from another config (run width~64/seeds~0)")
    assert "(run width~16/seeds~0)" in message and "delete it" in message


def test_an_incomplete_input_is_not_recorded(tmp_path):
    (tmp_path / "init.zarr").mkdir()
    with pytest.raises(StoreError, match="not a complete store"):
        provenance.input_digests({"init.zarr": tmp_path / "init.zarr"})
    assert provenance.read_record(tmp_path / "init.zarr") is None


def test_a_store_records_its_config_file_and_freshness_and_readers_check_it(tmp_path):
    init = tmp_path / "init.zarr"
    ds = xr.Dataset({"f": (("seed", "train"), np.ones((1, 3)))}, coords={"seed": [0]})
    storage.write_store(ds, init, config=_config(16), stage="init", config_file="model.json")
    assert provenance.read_record(init)["config_file"] == "model.json"
    assert provenance.stale_reason(init, _config(16), config_file="model.json") is None
    assert provenance.stale_reason(init, _config(16), config_file="run.json") == (
        "computed from another config file (model.json, not run.json)"
    )
    provenance.check_input(init, [_config(16)], config_file="model.json")
    with pytest.raises(StoreError, match=r"from a run's model.json, where .* from its run.json"):
        provenance.check_input(init, [_config(16)], config_file="run.json")
    old = _store(tmp_path / "old.zarr", _config(16))  # written before config_file was recorded
    assert "config_file" not in provenance.read_record(old)
    assert provenance.stale_reason(old, _config(16), config_file="run.json") is None
    assert provenance.stale_reason(old, _config(8), config_file="run.json") == (
        "computed from another config"
    )
    provenance.check_input(old, [_config(16)], config_file="run.json")
