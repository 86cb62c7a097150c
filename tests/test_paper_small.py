"""The paper's qualitative facts on shrunk versions of the small configs (config/small/).

Each test loads a small config, shrinks it (fewer widths, steps and examples: a test-only
override, so that the whole module runs in a minute or two on two cores), runs every stage of
every run in this process (the same stage functions the Snakemake rules call: init, kernels,
analytic, train, linear, compare, ensemble, collect), and checks the paper's facts on the summary
with room for noise. The full small configs' numbers are in the report of `snakemake
--configfile config/small/<name>.yaml`.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import yaml

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis import claims
from ntkpipe.io import stores as storage
from ntkpipe.jobs.analysis import collect
from ntkpipe.jobs.analytic import analytic as analytic_stage
from ntkpipe.jobs.compare import compare
from ntkpipe.jobs.ensemble import ensemble
from ntkpipe.jobs.init import init
from ntkpipe.jobs.kernels import kernels
from ntkpipe.jobs.linear import linear
from ntkpipe.jobs.train import train
from ntkpipe.sweep import ensemble as ensemble_plan
from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import validate
from tests.workflow_helpers import REPO

pytestmark = pytest.mark.slow
SMALL = REPO / "config" / "small"


def _shrunk(name: str, widths=None, **changes) -> dict:
    """config/small/<name>.yaml with the width axis set to `widths` (when given) and dotted-path
    `changes` (e.g. training__steps=64)."""
    raw = yaml.safe_load((SMALL / f"{name}.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw.setdefault(section, {})[key] = value
    if widths is not None:
        raw["sweep"]["model.width"] = list(widths)
    return validate.load_config(raw)


def _run_sweep(sweep: dict, root):
    """Every stage of every run of `sweep` under `root`; returns the summary dataset.

    JAX runs in its default 32-bit mode, as in the `ntkpipe` command (conftest turns on float64
    for the unit tests).
    """
    with jax.enable_x64(False):
        return _stages(sweep, root)


def _stages(sweep: dict, root):
    runs_dir = root / "runs"
    for one in ntk_config.expand_runs(sweep):
        folder = runs_dir / one.run_id
        folder.mkdir(parents=True)
        run = folder / "run.json"
        run.write_text(ntk_config.to_json(one.config))
        init(run, folder / "init.zarr")
        kernels(run, folder / "init.zarr", folder / "kernel_init.zarr", rule="kernel_init")
        analytic = None
        if sweep["kernels"]["analytic"]:
            analytic = folder / "analytic.zarr"
            analytic_stage(run, analytic)
        train(run, folder / "init.zarr", folder / "train.zarr")
        final = None
        if sweep["kernels"]["final"]:
            final = folder / "kernel_final.zarr"
            kernels(run, folder / "train.zarr", final, rule="kernel_final")
        linear(
            run, folder / "init.zarr", folder / "kernel_init.zarr", folder / "linear.zarr", analytic
        )
        compare(
            run,
            folder / "train.zarr",
            folder / "linear.zarr",
            folder / "kernel_init.zarr",
            folder / "metrics.zarr",
            kernel_final=final,
            analytic=analytic,
        )
    ensembles = None
    if sweep["ensemble"]["members"]:
        ensembles = root / "ensembles"
        done = set()
        for one in ntk_config.expand_runs(sweep):
            point = ensemble_plan.point_id(one.run_id)
            if point in done:
                continue
            done.add(point)
            (ensembles / point).mkdir(parents=True)
            config = {k: v for k, v in one.config.items() if k not in ("seeds", "run_id")}
            run = ensembles / point / "ensemble.json"
            run.write_text(json.dumps(config))
            ensemble(run, ensembles / point / "ensemble.zarr")
    (root / "sweep.json").write_text(json.dumps(sweep))
    collect(root / "sweep.json", runs_dir, root / "summary.zarr", ensembles=ensembles)
    return storage.read_store(root / "summary.zarr", stage="summary")


@pytest.fixture(scope="module")
def fig1(tmp_path_factory):
    """config/small/fig1.yaml shrunk: widths 32 … 256, |D| = 64, T = 256, two seeds."""
    sweep = _shrunk(
        "fig1",
        widths=(32, 64, 128, 256),
        data__n_train=64,
        data__n_test=32,
        training__steps=256,
        training__records=6,
        seeds__count=2,
    )
    return _run_sweep(sweep, tmp_path_factory.mktemp("fig1"))


@pytest.fixture(scope="module")
def fig2(tmp_path_factory):
    """config/small/fig2.yaml shrunk: width 256, |D| = 32, 24 members, T = 64."""
    sweep = _shrunk(
        "fig2",
        data__n_train=32,
        data__n_test=16,
        model__width=256,
        training__steps=64,
        training__records=5,
        ensemble__members=24,
        ensemble__batch=12,
        ensemble__alphas=9,
    )
    return _run_sweep(sweep, tmp_path_factory.mktemp("fig2"))


def test_weight_changes_fall_with_width_and_hidden_weights_fastest(fig1):
    fits = {f.label: f.fit for f in analysis.weight_change_exponents(fig1)}
    assert set(fits) == {"input", "hidden", "output"}
    assert all(fit.ci_high < 0 for fit in fits.values()), fits
    assert fits["hidden"].exponent < fits["input"].exponent
    assert fits["hidden"].exponent < fits["output"].exponent
    assert -1.5 < fits["hidden"].exponent < -0.6  # the paper: −1
    for role in ("input", "output"):
        assert -0.9 < fits[role].exponent < -0.2  # the paper: −½


def test_rmse_between_network_and_linearization_falls_with_width(fig1):
    (fit,) = analysis.rmse_exponents(fig1, "test")
    assert fit.fit.ci_high < 0, fit.fit.describe()
    rmse = analysis.rmse_final(fig1, "test").mean("seed")
    assert float(rmse.isel(width=-1)) < 0.5 * float(rmse.isel(width=0))


def test_kernels_approach_the_analytic_ones_and_move_less_with_width(fig1):
    for fit in analysis.analytic_error_exponents(fig1) + analysis.kernel_change_exponents(fig1):
        assert fit.fit.ci_high < 0, (fit.quantity, fit.fit.describe())
    (error,) = [f for f in analysis.analytic_error_exponents(fig1) if f.quantity.startswith("ntk")]
    assert -0.8 < error.fit.exponent < -0.25  # the paper: −½


def test_empirical_kernel_gives_the_closer_linearization(fig1):
    both = analysis.empirical_vs_analytic(fig1, "test")
    closer = (both["rmse"] < both["rmse_analytic"]).values
    assert closer.mean() >= 0.75, both


def test_network_tracks_its_linearization_at_the_widest_width(fig1):
    relative = analysis.relative_rmse_final(fig1, "test").mean("seed")
    assert float(relative.isel(width=-1)) < 0.1
    assert float(relative.isel(width=-1)) < float(relative.isel(width=0))


def test_ensemble_mean_lies_in_the_ntk_gp_band(fig2):
    agreement = analysis.ensemble_agreement(fig2)
    # real networks of width 256 against the NTK-GP's correlated test (ε_n = 3·4/256)
    assert str(agreement["band"].values) == "consistent", agreement
    assert str(agreement["spread"].values) != "inconsistent", agreement
    assert float(agreement["std_error"]) <= 0.35
    band = [c for c in claims.paper_claims(fig2) if "NTK-GP band" in c.statement]
    assert [c.experiment for c in band] == ["fig2"]


def test_ensemble_summary_holds_every_member_and_the_gps(fig2):
    assert fig2["ensemble_fx"].sizes["member"] == 24
    assert fig2["ensemble_fx"].sizes["alpha"] == 9
    late = fig2.isel(step=-1)
    # both GPs are pulled toward the training targets at the ends of the line
    assert float(late["ntkgp_mean"].isel(alpha=0)) < 0 < float(late["ntkgp_mean"].isel(alpha=-1))
    assert np.isfinite(fig2["nngp_posterior_std"]).all()


def test_claims_at_laptop_scale_are_never_inconsistent(fig1, fig2):
    """Where the paper's effect is clear at widths 32–256 with 2 seeds (and 24 members) the
    verdict is consistent; the rest may be inconclusive (intervals too wide), never wrong."""
    found = claims.paper_claims(fig1) + claims.paper_claims(fig2)
    assert "inconsistent" not in {c.verdict for c in found}, found
    clear = ("hidden weights ‖", "change faster", "falls with the width", "NTK-GP", "spread")
    for c in found:
        if any(text in c.statement for text in clear):
            assert c.verdict == "consistent", c
