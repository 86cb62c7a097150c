"""The schema table: self-describing stores, and docs/store-schema.md generated from it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ntkpipe.io import stores, variables

DOC = Path(__file__).resolve().parents[2] / "docs" / "store-schema.md"


def test_schema_reference_is_generated_from_the_table():
    assert DOC.read_text(encoding="utf-8") == variables.render_markdown(), (
        "docs/store-schema.md is stale: python -m ntkpipe.io.variables > docs/store-schema.md"
    )


def test_every_entry_has_a_long_name_units_and_a_one_line_description():
    for name, entry in {**variables.VARIABLES, **variables.SWEEP_AXES}.items():
        assert entry.long_name and entry.units and entry.description, name
        assert "\n" not in entry.description, name


def test_analytic_variants_are_described_from_their_base_name():
    entry = variables.describe("loss_test_analytic")
    assert entry.long_name.startswith("test loss") and "analytic" in entry.long_name


def test_a_written_store_is_described_and_opens_without_warnings(tmp_path):
    ds = xr.Dataset(
        {"loss_train": (("step", "seed"), np.ones((3, 2))), "odd_name": ("seed", [1.0, 2.0])},
        coords={"seed": [0, 1], "step": [0, 1, 2]},
    )
    path = stores.write_store(ds, tmp_path / "train.zarr", config={}, stage="train")
    (path / ".snakemake_timestamp").write_text("")  # what Snakemake puts in directory() outputs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opened = xr.open_zarr(path)
        again = stores.read_store(path, stage="train")
    assert opened["loss_train"].attrs["long_name"] == "train loss"
    assert opened["seed"].attrs["units"] == "1"
    assert opened["odd_name"].attrs["long_name"] == "odd name"
    assert again["step"].attrs["long_name"] == "optimizer step"


def test_order_puts_sweep_axes_first_then_the_fixed_dimensions():
    ds = xr.Dataset({"x": (("layer", "step", "seed", "depth", "width"), np.zeros((1, 2, 3, 4, 5)))})
    assert variables.order(ds, ["width", "depth"])["x"].dims == (
        "width",
        "depth",
        "seed",
        "step",
        "layer",
    )


def test_the_status_flags_are_the_one_list_of_statuses():
    """io may not import sweep: both read ntkpipe.conventions, so the list lives once."""
    from ntkpipe import conventions
    from ntkpipe.sweep import facts

    ds = variables.annotate(xr.Dataset({"status_flag": ("seed", np.zeros(2, dtype=np.int8))}))
    assert ds["status_flag"].attrs["flag_meanings"].split() == list(conventions.STATUSES)
    assert set(facts.USABLE_STATUSES) < set(conventions.STATUSES)
