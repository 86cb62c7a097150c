"""The results layout: every path of a sweep from one object, as the workflow writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ntkpipe.sweep import stage_table
from ntkpipe.sweep.layout import Layout, summary_rows_cache

LAYOUT = Layout.of("tiny")
RUN = "width~16/seeds~0"


def test_every_stage_store_is_in_its_scope_folder():
    root = Path("results/tiny")
    assert LAYOUT.root == root
    assert LAYOUT.store("train", RUN) == root / "runs" / RUN / "train.zarr"
    assert LAYOUT.store("run", RUN) == LAYOUT.store("compare", RUN)  # one job per run: metrics
    assert LAYOUT.store("analytic", "all") == root / "analytic" / "all" / "analytic.zarr"
    assert LAYOUT.store("ensemble", "width~16") == root / "ensembles/width~16/ensemble.zarr"
    assert LAYOUT.derived == (root / "summary.zarr", root / "figures", root / "report.html")
    for row in stage_table.STAGES:
        key = None if row.scope == "sweep" else "k"
        assert LAYOUT.store(row.rule, key).name == row.store, row.rule


def test_config_files_logs_and_benchmarks():
    root = Path("results/tiny")
    assert LAYOUT.config_file("init", RUN) == root / "runs" / RUN / "model.json"
    assert LAYOUT.config_file("kernel_final", RUN) == root / "runs" / RUN / "run.json"
    assert LAYOUT.sweep_json == root / "sweep.json"
    assert LAYOUT.log("train", "{run}") == root / "logs/train/{run}.log"
    assert LAYOUT.log("collect") == root / "logs/collect.log"
    assert LAYOUT.config_log("model.json", RUN) == root / "logs/config" / RUN / "model.log"
    assert LAYOUT.benchmark("analytic", "all") == root / "benchmarks/analytic/all.tsv"
    assert LAYOUT.jax_cache == Path("results/.jax_cache")
    assert LAYOUT.summary_rows_cache == summary_rows_cache(LAYOUT.summary)
    assert LAYOUT.summary_rows_cache == root / ".summary-rows.npz"
    with pytest.raises(ValueError, match="reads no config file"):
        LAYOUT.config_file("figures")
