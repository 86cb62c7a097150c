"""The studies beyond the paper that config/beyond/ ships for parameterizations and depth against
width (issue 20): every one is valid, the small ones run on digits, and the full ones plan
within the default caps (`ntkpipe plan`, no data needed)."""

from __future__ import annotations

import pytest
import yaml

from ntkpipe.sweep import plan
from ntkpipe.sweep import runs as ntk_config
from tests.workflow_helpers import REPO

STUDIES = ("sp_fig1", "sp_fig2", "sp_fig3", "param", "depth_width")
BEYOND = REPO / "config" / "beyond"


@pytest.mark.parametrize("study", STUDIES)
def test_small_and_full_versions_exist_and_are_valid(study, tmp_path):
    small = ntk_config.load_config(BEYOND / f"{study}_small.yaml")
    assert small["data"]["dataset"] == "digits" and ntk_config.expand_runs(small)
    table, notes = plan.plan_config(BEYOND / f"{study}.yaml", tmp_path)
    assert "GPU-hours" in table
    assert [note for note in notes if note.startswith("refused")] == []


def test_the_sp_studies_train_the_standard_parameterization_with_ntk_rates():
    for fig in ("sp_fig1", "sp_fig2", "sp_fig3"):
        for name in (f"{fig}_small", fig):
            model = yaml.safe_load((BEYOND / f"{name}.yaml").read_text())["model"]
            assert (model["parameterization"], model["layer_rates"]) == ("standard", "ntk")
