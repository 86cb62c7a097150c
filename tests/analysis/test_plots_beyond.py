"""Tests of the figures beyond the paper (analysis.plots_beyond) on a constructed summary."""

import json

import numpy as np
import xarray as xr

from ntkpipe.analysis import plots, plots_beyond

WIDTHS, FACTORS = [64, 256, 1024], [0.5, 1.5, 2.5, 40.0]
# lazy below 1, catapult at 1.5 (at 2.5 too for the widest), divergent above
REGIMES = [
    ["lazy", "catapult", "divergent", "divergent"],
    ["lazy", "catapult", "divergent", "divergent"],
    ["lazy", "catapult", "catapult", "divergent"],
]


def _summary():
    steps = np.array([0, 1, 2, 4, 8])
    shape = (len(WIDTHS), len(FACTORS), 2, 2, len(steps))  # width, lr_factor, model, seed, step
    sharp = np.broadcast_to(np.linspace(20.0, 10.0, len(steps)), shape).copy()
    lr = np.outer(np.ones(len(WIDTHS)), FACTORS)
    rmse = np.broadcast_to(np.geomspace(1e-3, 1e-2, len(steps)), (3, 4, 2, 5)).copy()
    rmse[:, 1:] = np.inf  # f_lin diverged above η_crit
    regime = np.repeat(np.array(REGIMES, dtype=object)[:, :, None], 2, axis=2).astype(str)
    ds = xr.Dataset(
        {
            "sharpness": (("width", "lr_factor", "model", "seed", "step"), sharp),
            "learning_rate": (("width", "lr_factor"), lr),
            "rmse_test": (("width", "lr_factor", "seed", "step"), rmse),
            "regime": (("width", "lr_factor", "seed"), regime),
            "status": (("width", "lr_factor", "seed"), np.full((3, 4, 2), "ok")),
        },
        coords={"width": WIDTHS, "lr_factor": FACTORS, "model": ["net", "lin"], "seed": [0, 1],
                "step": steps},
    )  # fmt: skip
    ds.attrs = {"name": "t", "sweep_axes": json.dumps(["width", "lr_factor"]),
                "data.n_train": 16, "data.classes": [3, 8], "training.loss": "mse"}  # fmt: skip
    return ds


def test_the_phase_boundaries_lie_between_the_factors_where_the_regime_changes():
    majority = plots_beyond._majority_regime(_summary())
    factors = np.asarray(FACTORS)
    lazy_edge = [plots_beyond._boundary(m, factors, "lazy", "catapult") for m in majority]
    div_edge = [plots_beyond._boundary(m, factors, "catapult", "divergent") for m in majority]
    np.testing.assert_allclose(lazy_edge, np.sqrt(0.5 * 1.5))
    np.testing.assert_allclose(div_edge, [np.sqrt(1.5 * 2.5)] * 2 + [np.sqrt(2.5 * 40.0)])


def test_the_three_figures_are_drawn_for_an_lr_factor_sweep_and_not_otherwise():
    ds = _summary()
    stems = ("lr_phase", "sharpness_curves", "rmse_vs_lr_factor")
    for stem in stems:
        plot = plots.PLOTS[stem]
        assert plots._skip_reason(stem, plot, ds) is None
        figure = plot.function(ds)
        assert (
            figure.axes and stem in plots.FIGURES and plots.FIGURE_EXPERIMENTS[stem] == ("beyond",)
        )
    assert plots_beyond.n_times_k(ds) == 16
    plain = ds.isel(lr_factor=0, drop=True)
    plain.attrs = {**ds.attrs, "sweep_axes": json.dumps(["width"])}
    for stem in stems:
        assert plots._skip_reason(stem, plots.PLOTS[stem], plain) == plots._NO_DATA
