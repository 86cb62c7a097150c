"""Tests of sweep.loading: one reading of the config files, overlays and overrides (issue 10,
failures 1–3; issue 13, item 4), by the library, `ntkpipe validate` and the workflow."""

import subprocess
import sys
from pathlib import Path

import pytest

from ntkpipe import cli, start
from ntkpipe.errors import ConfigError
from ntkpipe.sweep import loading, validate

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "config" / "config.yaml"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SCHEMA = validate.load_schema()


def _write(path, text):
    path.write_text(text)
    return path


def _sweep(files=(), overrides=None):
    return start.resolve_sweep(files, overrides, default=DEFAULT)


def test_a_config_without_name_is_refused_not_merged_with_the_default(tmp_path):
    """failure 1: a file without name: got the default sweep's axes (40 runs instead of 4)."""
    config = _write(tmp_path / "c.yaml", "model: {width: 16}\nsweep: {model.depth: [1, 2]}\n")
    with pytest.raises(ConfigError) as err:
        _sweep([config])
    (message,) = err.value.errors
    assert message.startswith("name: missing (") and "c.yaml" in message
    sweep, _, expanded = _sweep([config], {"name": "named"})
    assert sweep["sweep"] == {"model.depth": [1, 2]} and len(expanded) == 2


def test_overrides_alone_change_the_default_sweep():
    """failure 2: --config name=x alone switched to the schema defaults (one run)."""
    default, _, default_runs = _sweep()
    sweep, _, expanded = _sweep(overrides={"name": "x"})
    assert sweep["name"] == "x" and sweep["sweep"] == default["sweep"]
    assert len(expanded) == len(default_runs) == 10


def test_yaml_1_2_numbers_duplicate_keys_and_syntax_errors(tmp_path):
    """failure 3: 1e-2 was text, duplicates were merged, syntax errors had no line."""
    good = _write(tmp_path / "g.yaml", "name: g\ntraining: {learning_rate: 1e-2, steps: 1e3}\n")
    assert _sweep([good])[0]["training"]["learning_rate"] == 0.01
    assert _sweep([good])[0]["training"]["steps"] == 1000
    twice = _write(tmp_path / "d.yaml", "name: d\nmodel: {width: 8}\nmodel: {depth: 2}\n")
    with pytest.raises(ConfigError) as err:
        _sweep([twice])
    assert err.value.errors[0].startswith(f"{twice}:3:1: not valid YAML")
    assert "'model' given twice" in err.value.errors[0]
    broken = _write(tmp_path / "b.yaml", "name: b\nmodel: {width: 8\ndata: [\n")
    with pytest.raises(ConfigError) as err:
        _sweep([broken])
    assert err.value.errors[0].startswith(f"{broken}:3:5: not valid YAML")
    bad_json = _write(tmp_path / "j.json", '{"name": "j",\n "model": }')
    with pytest.raises(ConfigError) as err:
        _sweep([bad_json])
    assert err.value.errors[0].startswith(f"{bad_json}:2:11: not valid JSON")


def test_overlays_merge_in_the_order_given(tmp_path):
    base = _write(tmp_path / "base.yaml", "name: base\nmodel: {width: 16, depth: 3}\n")
    overlay = _write(tmp_path / "o.yaml", "name: variant\nmodel: {width: 32}\n")
    sweep = _sweep([base, overlay], {"model": {"depth": "1"}})[0]
    assert (sweep["name"], sweep["model"]["width"], sweep["model"]["depth"]) == ("variant", 32, 1)
    assert _sweep([overlay, base])[0]["model"]["width"] == 16


@pytest.mark.parametrize(
    "overrides, expected",
    [
        # issue 13, item 4: '0.1' is not a number
        ({"training": {"learning_rate": "0.1"}}, {"training": {"learning_rate": 0.1}}),
        ({"training.learning_rate": "1e-2"}, {"training": {"learning_rate": 0.01}}),
        ({"data": {"classes": ["3", "5"]}}, {"data": {"classes": [3, 5]}}),
        ({"data.classes": "[3, 5]"}, {"data": {"classes": [3, 5]}}),
        ({"kernels": {"final": "false"}}, {"kernels": {"final": False}}),
        ({"kernels.final": "False"}, {"kernels": {"final": False}}),
        ({"model": {"b_std": "null"}}, {"model": {"b_std": None}}),
        ({"data": {"root": "null"}}, {"data": {"root": None}}),
        ({"data": {"root": "/data/mnist"}}, {"data": {"root": "/data/mnist"}}),
        ({"model": {"activation": "erf"}}, {"model": {"activation": "erf"}}),
        ({"name": 2024}, {"name": "2024"}),
        ({"sweep": {"model.width": ["16", "32"]}}, {"sweep": {"model.width": [16, 32]}}),
        ({"sweep.model.width": "[16, 32]"}, {"sweep": {"model.width": [16, 32]}}),
        ({"resources": {"gpu": "1"}}, {"resources": {"gpu": 1}}),
        ({"trainng": {"lr": "0.1"}}, {"trainng": {"lr": "0.1"}}),  # unknown: the checks name it
    ],
)
def test_override_text_is_coerced_through_the_schema(overrides, expected):
    assert loading.coerce_overrides(overrides, SCHEMA) == expected


def test_ntkpipe_validate_prints_the_resolved_config_and_the_run_count(tmp_path, capsys):
    overlay = _write(tmp_path / "o.yaml", "name: o\nsweep: {model.width: [16, 32, 64]}\n")
    args = [str(TINY), str(overlay), "--config", "training.learning_rate=0.25", "seeds.count=1"]
    assert cli.main(["validate", *args]) == 0
    out = capsys.readouterr().out
    assert '"learning_rate": 0.25' in out and '"name": "o"' in out
    assert out.strip().endswith("3 runs; results in results/o/")
    assert cli.main(["validate", str(TINY), "--config", "data.n_test=3"]) == 1
    assert "data.n_test: 3 is too few examples" in capsys.readouterr().err


def test_the_workflow_reads_the_config_as_ntkpipe_does(tmp_path):
    """The Snakefile's reading, in a real snakemake dry run: numbers from text, overrides
    coerced, a config without name refused."""
    config = _write(
        tmp_path / "e.yaml",
        TINY.read_text().replace("learning_rate: 1.0", "learning_rate: 1e-1"),
    )
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    command += ["--directory", str(tmp_path), "-n", "--cores", "1", "--configfile", str(config)]
    override = ["--config", "training={learning_rate: 0.5, steps: 8}", "sweep={model.width: [8]}"]
    result = subprocess.run(command + override, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "results/tiny/runs/width~8/seeds~0/train.zarr" in result.stdout
    assert "width~16" not in result.stdout
    run_json = "results/tiny/runs/width~8/seeds~0/run.json"
    assert run_json in result.stdout
    noname = _write(tmp_path / "n.yaml", TINY.read_text().replace("name: tiny", ""))
    result = subprocess.run(command[:-1] + [str(noname)], capture_output=True, text=True)
    assert result.returncode != 0 and "name: missing (" in result.stderr
