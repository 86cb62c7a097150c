"""examples/explore_summary.py runs on a summary store and finds the exponents put in."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from ntkpipe.io import stores
from tests import summary_fixture

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "explore_summary.py"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    ds = summary_fixture.make_summary(n_trains=None, seeds=3, noise=0.02)
    path = tmp_path_factory.mktemp("example") / "summary.zarr"
    return stores.write_store(ds, path, config={}, stage="summary")


def test_example_fits_the_exponents_of_the_summary(store, tmp_path):
    main = runpy.run_path(str(SCRIPT))["main"]
    exponents = main(str(store), str(tmp_path / "fig.png"))
    assert exponents["hidden"] == pytest.approx(summary_fixture.PAPER_EXPONENTS["hidden"], abs=0.1)
    assert exponents["input"] == pytest.approx(summary_fixture.PAPER_EXPONENTS["input"], abs=0.1)
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_example_runs_as_a_script_without_warnings(store, tmp_path):
    out = tmp_path / "w.png"
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", str(SCRIPT), str(store), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "hidden" in result.stdout and "relative weight change" in result.stdout
    assert out.exists()
