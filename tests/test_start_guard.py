"""What a start checks before it replaces stores or lets jobs re-read them
(ntkpipe.start_guard, issue 21 item 7): another config's results are replaced only when asked;
a corrupted store that jobs would re-read is named with the command that recomputes it. Unit
tests on tmp folders, through ntkpipe.workflow_start as config.smk and stale.smk call it."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
import zarr

from ntkpipe import start, start_guard, workflow_start
from ntkpipe.io import provenance, stores
from ntkpipe.sweep import runs as ntk_runs
from tests.workflow_helpers import CONFIGS, write_config

TINY = CONFIGS / "tiny.yaml"


def _workflow(tmp_path, configfile, *, dry_run=False, config=None):
    return SimpleNamespace(
        output_settings=SimpleNamespace(dryrun=dry_run),
        is_main_process=True,
        config_settings=SimpleNamespace(configfiles=[configfile], config=config or {}),
        basedir=str(tmp_path),
        global_resources={},
    )


def _store(path, config, config_file, inputs=None):
    ds = xr.Dataset({"loss_train": (("seed", "step"), np.arange(2.0).reshape(1, 2))})
    return stores.write_store(
        ds, path, config=config, stage="x", inputs=inputs, overwrite=True, config_file=config_file
    )


def _start(tmp_path, configfile, argv=("snakemake", "-c1"), **kwargs):
    err = io.StringIO()
    started = workflow_start.begin(
        _workflow(tmp_path, configfile, **kwargs), list(argv), {}, err=err
    )
    workflow_start.refresh(started, err=err)
    return started, err.getvalue()


@pytest.fixture()
def finished_elsewhere(tmp_path, monkeypatch):
    """results/tiny as a start from mine.yaml left it: an init store per run, sweep.json, the
    report, origin.json; then mine.yaml's learning rate changed (the sweep's own change)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(start, "take_lock", lambda folder: None)  # one process, several starts
    mine = write_config(tmp_path / "mine.yaml", TINY)
    started, _ = _start(tmp_path, mine)
    layout = started.layout
    for run_id, run in started.runs.items():
        model = ntk_runs.file_config(run.config, "model.json")
        init = _store(layout.store("init", run_id), model, "model.json")
        config = ntk_runs.file_config(run.config, "run.json")
        digests = provenance.input_digests({"init.zarr": init})
        _store(layout.store("train", run_id), config, "run.json", digests)
    layout.sweep_json.write_text(start.sweep_json(started.sweep))
    layout.report.write_text("<html>mine</html>")
    return layout, mine


def test_the_origin_is_relative_to_the_working_directory_where_it_can_be(tmp_path):
    assert start_guard.origin_of([], tmp_path / "config" / "config.yaml", cwd=tmp_path) == [
        "config/config.yaml"
    ]
    assert start_guard.origin_of(["a.yaml"], None, cwd=tmp_path) == ["a.yaml"]
    assert start_guard.origin_of([TINY], None, cwd=tmp_path) == [str(TINY.resolve())]


def test_the_same_sweeps_own_change_is_an_ordinary_rerun(finished_elsewhere, tmp_path):
    layout, mine = finished_elsewhere
    assert json.loads(layout.origin.read_text()) == {"configfiles": ["mine.yaml"]}
    write_config(mine, TINY, training__learning_rate=0.25)  # the user's own file, edited
    _, said = _start(tmp_path, mine)
    assert "computed from another config; moved aside" in said
    assert "another config (started from" not in said


def test_another_config_under_the_same_name_is_refused_until_confirmed(
    finished_elsewhere, tmp_path
):
    layout, _ = finished_elsewhere
    other = write_config(tmp_path / "other.yaml", TINY, training__learning_rate=0.25)
    with pytest.raises(SystemExit) as stopped:
        _start(tmp_path, other)
    message = str(stopped.value)
    assert f"{layout.root} holds the results of another config (started from mine.yaml; " in (
        message
    )
    assert "4 stores of its runs and its report.html would be replaced" in message
    assert "training.learning_rate: " in message and "→ 0.25" in message
    assert "--config replace=true" in message and "--config name=<new name>" in message
    assert layout.report.read_text() == "<html>mine</html>"  # nothing changed
    assert not layout.replaced.exists()
    _, said = _start(tmp_path, other, argv=("snakemake", "-n"), dry_run=True)
    assert "a real run stops here" in said and not layout.replaced.exists()
    _, said = _start(tmp_path, other, config={"replace": True})
    assert "computed from another config; moved aside" in said
    assert not layout.report.exists() and len(list(layout.replaced.rglob("report.html"))) == 1
    assert json.loads(layout.origin.read_text()) == {"configfiles": ["other.yaml"]}


def _runs(layout):
    return [p.parent.relative_to(layout.runs).as_posix() for p in layout.runs.rglob("train.zarr")]


def test_a_forced_rules_corrupted_input_and_those_of_what_follows_are_named(
    finished_elsewhere, tmp_path
):
    """--forcerun train: train re-reads init.zarr (checked in onstart, before Snakemake deletes
    the forced outputs); a corrupted store nothing re-reads is not read."""
    layout, mine = finished_elsewhere
    started, _ = _start(tmp_path, mine)
    run_id = _runs(layout)[0]
    init = layout.store("init", run_id)
    workflow_start.check_forced_inputs(started, SimpleNamespace(forcerun=["train"]))
    zarr.open_array(init / "loss_train", mode="r+")[0, 1] = 7.0
    workflow_start.check_forced_inputs(
        started, SimpleNamespace(forcerun=["kernel_final"])
    )  # and compare: no init read
    with pytest.raises(SystemExit, match=f"(?s)corrupted: 1 store .*rm -r {init} &&"):
        workflow_start.check_forced_inputs(started, SimpleNamespace(forcerun=["train"]))
    assert start_guard.forced_stores(layout, started.runs, ["run"]) == {
        layout.store("compare", one) for one in started.runs
    }


def test_a_corrupted_input_of_a_store_computed_again_stops_the_start_naming_it(
    finished_elsewhere, tmp_path
):
    layout, mine = finished_elsewhere
    run_id = _runs(layout)[0]
    init = layout.store("init", run_id)
    zarr.open_array(init / "loss_train", mode="r+")[0, 1] = 7.0  # as a flipped chunk
    write_config(mine, TINY, training__learning_rate=0.25)  # train is computed again
    with pytest.raises(SystemExit) as stopped:
        _start(tmp_path, mine, argv=("snakemake", "--cores", "1"))
    message = str(stopped.value)
    assert f"  {init}: corrupted (stage x): array(s) loss_train differ from their digest" in (
        message
    )
    assert f"recompute it (and what reads it): rm -r {init} && snakemake --cores 1" in message
    assert layout.store("train", run_id).exists()  # nothing moved before the check
