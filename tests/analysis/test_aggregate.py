"""Tests of analysis.aggregate: power-law fits, final values, exponents, run table, MC curves."""

import math

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis import fits
from tests.summary_fixture import FLAGGED, PAPER_EXPONENTS, add_mc, make_summary

WIDTHS = np.array([64.0, 128.0, 256.0, 512.0, 1024.0])


@pytest.fixture(scope="module")
def summary():
    return make_summary(statuses=FLAGGED)


def _by(fits, label=None, **group):
    return [f for f in fits if (label is None or f.label == label) and f.group == group]


# ---------------------------------------------------------------- fit_power_law


def test_fit_recovers_exact_power_law():
    fit = analysis.fit_power_law(WIDTHS, 3.0 * WIDTHS**-0.7)
    assert fit.exponent == pytest.approx(-0.7, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.0, rel=1e-10)
    assert fit.ci_high - fit.ci_low == pytest.approx(0.0, abs=1e-10)
    assert (fit.n_points, fit.n_x) == (5, 5)
    np.testing.assert_allclose(fit(WIDTHS), 3.0 * WIDTHS**-0.7, rtol=1e-10)


def test_fit_matches_scipy_linregress_on_log_axes():
    rng = np.random.default_rng(1)
    x = np.repeat(WIDTHS, 3)
    y = 0.5 * x**-0.5 * np.exp(0.1 * rng.standard_normal(x.size))
    fit = analysis.fit_power_law(x, y)
    ref = stats.linregress(np.log(x), np.log(y))
    t = stats.t.ppf(0.975, x.size - 2)
    assert fit.exponent == pytest.approx(ref.slope, rel=1e-12)
    assert fit.stderr == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.ci_low == pytest.approx(ref.slope - t * ref.stderr, rel=1e-10)
    assert math.log(fit.prefactor) == pytest.approx(ref.intercept, rel=1e-12)


def test_confidence_interval_covers_true_exponent_at_its_nominal_rate():
    """Under log-normal noise the 95% interval covers the true exponent in ~95% of trials."""
    rng = np.random.default_rng(0)
    trials, covered, widths = 400, 0, []
    x = WIDTHS[:, None]
    for _ in range(trials):
        y = 2.0 * x**-1.0 * np.exp(0.2 * rng.standard_normal((WIDTHS.size, 3)))
        fit = analysis.fit_power_law(x, y)  # seeds as replicates: 15 points
        covered += fit.covers(-1.0)
        widths.append(fit.ci_high - fit.ci_low)
    assert 0.92 <= covered / trials <= 0.98
    narrower = analysis.fit_power_law(x, 2.0 * x**-1.0 * np.exp(0.02 * rng.standard_normal((5, 3))))
    assert narrower.ci_high - narrower.ci_low < 0.2 * np.median(widths)


def test_fit_drops_nan_and_nonpositive_pairs():
    rng = np.random.default_rng(2)
    x = np.repeat(WIDTHS, 2)
    y = x**-0.5 * np.exp(0.05 * rng.standard_normal(x.size))
    clean = analysis.fit_power_law(x, y)
    x_dirty = np.concatenate([x, [np.nan, 32.0, 2048.0, 4096.0, 0.0]])
    y_dirty = np.concatenate([y, [1.0, np.nan, 0.0, -1.0, 1.0]])
    dirty = analysis.fit_power_law(x_dirty, y_dirty)
    assert dirty.exponent == pytest.approx(clean.exponent, rel=1e-12)
    assert dirty.n_points == clean.n_points == 10


def test_fit_needs_three_distinct_x():
    with pytest.raises(analysis.FitError, match="at least 3 distinct"):
        analysis.fit_power_law([64, 64, 128, 128], [1.0, 1.1, 0.7, 0.8])
    with pytest.raises(ValueError, match="got 2 distinct x"):  # NaN leaves only two widths
        analysis.fit_power_law(WIDTHS[:3], [1.0, 0.7, np.nan])


def test_fit_rejects_bad_arguments():
    with pytest.raises(ValueError, match="confidence=1.5"):
        analysis.fit_power_law(WIDTHS, WIDTHS, confidence=1.5)
    with pytest.raises(ValueError, match="do not broadcast"):
        analysis.fit_power_law(WIDTHS, np.ones(3))


def test_fit_along_uses_other_dims_as_replicates():
    da = xr.DataArray(
        np.stack([0.3 * WIDTHS**-0.5, 0.33 * WIDTHS**-0.5], axis=1),
        dims=("width", "seed"),
        coords={"width": WIDTHS},
    )
    fit = analysis.fit_along(da, "width")
    assert fit.exponent == pytest.approx(-0.5, abs=1e-12)
    assert fit.n_points == 10
    with pytest.raises(ValueError, match="dim='depth'"):
        analysis.fit_along(da, "depth")


# ---------------------------------------------------------------- summary access


def test_final_takes_last_finite_value_per_run():
    da = xr.DataArray(
        [[1.0, 2.0, 3.0], [1.0, 5.0, np.nan], [np.nan, np.nan, np.nan]],
        dims=("run", "step"),
        coords={"step": [0, 10, 20]},
    )
    end = analysis.final(xr.Dataset({"loss": da, "label": ("run", ["a", "b", "c"])}))
    assert "step" not in end.dims
    np.testing.assert_array_equal(end["loss"].values, [3.0, 5.0, np.nan])
    assert list(end["label"].values) == ["a", "b", "c"]


def test_final_with_a_time_coordinate_and_runs_that_end_early():
    """Variables whose last finite steps differ (a run recorded fewer steps) do not carry
    conflicting t = η·step coordinates into the result (the default sweep's figures failed)."""
    step = [0, 10, 20]
    coords = {"step": step, "t": ("step", [0.0, 5.0, 10.0])}
    loss = xr.DataArray([[1.0, 2.0, 3.0], [1.0, 5.0, np.nan]], dims=("run", "step"), coords=coords)
    change = xr.DataArray([[0.0, 0.1, np.nan], [0, 0.2, 0.3]], dims=("run", "step"), coords=coords)
    end = analysis.final(xr.Dataset({"loss": loss, "weight_change": change}))
    np.testing.assert_array_equal(end["loss"].values, [3.0, 5.0])
    np.testing.assert_array_equal(end["weight_change"].values, [0.1, 0.3])
    assert "t" not in end.coords and "step" not in end.dims


def test_final_on_summary_is_the_last_step_for_complete_runs(summary):
    end = analysis.final(summary)
    ok = summary["status"] == "ok"
    last = summary["weight_change"].isel(step=-1)
    xr.testing.assert_allclose(
        end["weight_change"].where(ok),
        last.drop_vars("step").where(ok).transpose(*end["weight_change"].dims),
    )
    assert np.isnan(end["rmse_test"].sel(width=128, n_train=32, seed=1))  # missing run


def test_usable_runs_masks_missing_and_diverged(summary):
    kept = analysis.usable_runs(summary)
    diverged = kept["loss_train"].sel(width=64, n_train=128, seed=0)
    assert np.isnan(diverged).all()
    above = kept["loss_train"].sel(width=256, n_train=32, seed=0)
    assert np.isfinite(above).all()  # lr above η_crit: flagged but kept
    assert list(kept["status"].values.ravel()) == list(summary["status"].values.ravel())
    with pytest.raises(ValueError, match="unknown \\['finished'\\]"):
        analysis.usable_runs(summary, statuses=["ok", "finished"])


def test_sweep_axes_from_attrs_and_fallback(summary):
    assert analysis.sweep_axes(summary) == ["width", "n_train"]
    bare = summary.copy()
    bare.attrs = {}
    assert analysis.sweep_axes(bare) == ["width", "n_train"]
    assert analysis.sweep_axes(summary.isel(n_train=0)) == ["width"]


def test_layer_role_mean_with_a_role_coordinate_per_depth():
    """With a swept depth a layer's role depends on the depth (dense_1: hidden or output)."""
    change = xr.DataArray(
        [[1.0, 3.0, np.nan], [2.0, 4.0, 6.0]],
        dims=("depth", "layer"),
        coords={"depth": [1, 2], "layer": ["dense_0", "dense_1", "dense_2"]},
    )
    role = xr.DataArray(
        [["input", "output", "none"], ["input", "hidden", "output"]], dims=("depth", "layer")
    )
    change = change.assign_coords(layer_role=role)
    np.testing.assert_array_equal(analysis.layer_role_mean(change, "output").values, [3.0, 6.0])
    np.testing.assert_array_equal(analysis.layer_role_mean(change, "hidden").values, [np.nan, 4.0])
    with pytest.raises(ValueError, match="role='middle'"):
        analysis.layer_role_mean(change, "middle")


# ---------------------------------------------------------------- exponents


def test_weight_change_exponents_recover_the_put_in_laws(summary):
    fits = analysis.weight_change_exponents(summary)
    assert len(fits) == 2 * 3  # per n_train, per role
    for n_train in (32, 128):
        for role in ("input", "hidden", "output"):
            (fit,) = _by(fits, role, n_train=n_train)
            assert (
                fit.fit.covers(PAPER_EXPONENTS[role])
                or abs(fit.fit.exponent - PAPER_EXPONENTS[role]) < 0.03
            )
            assert fit.fit.ci_high - fit.fit.ci_low < 0.2
    (masked,) = _by(fits, "input", n_train=32)
    assert masked.fit.n_points == 9  # 10 runs, one missing


def test_weight_change_without_hidden_layers_and_with_a_length_one_axis():
    ds = make_summary(depth=1, n_trains=(128,))
    fits = analysis.weight_change_exponents(ds)
    assert [f.label for f in fits] == ["input", "output"]
    assert all(f.group == {} for f in fits)


def test_kernel_and_analytic_error_exponents(summary):
    kernel = analysis.kernel_change_exponents(summary)
    analytic = analysis.analytic_error_exponents(summary)
    assert {f.quantity for f in kernel} == {"ntk_change", "nngp_change"}
    for f in kernel + analytic:
        assert abs(f.fit.exponent - PAPER_EXPONENTS[f.quantity]) < 0.08, f


def test_exponents_per_group_of_a_further_axis():
    ds = make_summary(extra_axes={"activation": ["relu", "tanh"]}, n_trains=(32, 64))
    fits = analysis.kernel_change_exponents(ds)
    groups = {tuple(sorted(f.group.items())) for f in fits}
    assert len(groups) == 4 and len(fits) == 8
    assert {"n_train": 64, "activation": "tanh"} in [f.group for f in fits]


def test_a_fully_missing_width_is_left_out_and_too_few_widths_is_reported():
    missing = [({"width": 1024, "n_train": 32}, s, "missing") for s in (0, 1)]
    ds = make_summary(statuses=missing)
    (fit,) = _by(analysis.kernel_change_exponents(ds), "Θ̂", n_train=32)
    assert fit.fit.n_x == 4
    few = make_summary(widths=(64, 128))
    (fit,) = _by(analysis.kernel_change_exponents(few), "Θ̂", n_train=32)
    assert fit.fit is None and "3 distinct" in fit.reason


def test_rmse_trends(summary):
    (f32,) = _by(analysis.rmse_exponents(summary), n_train=32)
    assert f32.fit.exponent == pytest.approx(PAPER_EXPONENTS["rmse_width"], abs=0.08)
    (trend,) = analysis.rmse_dataset_trends(summary)
    (_, _, ratio) = trend.pairs[0]
    assert ratio == pytest.approx(4.0**0.5, rel=0.1)  # (128 / 32)^½
    assert trend.grows and trend.increasing_fraction == 1.0
    assert trend.fit.exponent == pytest.approx(PAPER_EXPONENTS["rmse_n_train"], abs=0.05)
    assert trend.fit.ci_low > 0
    assert analysis.rmse_dataset_trends(summary.isel(n_train=[0])) == []
    with pytest.raises(ValueError, match="split='val'"):
        analysis.rmse_final(summary, "val")


def test_fixed_effects_fit_equals_least_squares_with_one_intercept_per_group():
    rng = np.random.default_rng(5)
    x = np.tile([32.0, 64.0, 128.0], 4)
    labels = np.repeat(np.arange(4), 3)
    y = np.exp(rng.standard_normal(4))[labels] * x**0.4 * np.exp(0.1 * rng.standard_normal(12))
    fit = fits.fit_power_law(x, y, intercepts=labels)
    design = np.column_stack([np.log(x), np.eye(4)[labels]])
    coef, rss, *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
    dof = 12 - 5
    cov = rss[0] / dof * np.linalg.inv(design.T @ design)
    assert fit.exponent == pytest.approx(coef[0], abs=1e-12)
    assert fit.stderr == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-10)
    half = stats.t.ppf(0.975, dof) * fit.stderr
    assert fit.ci_high - fit.exponent == pytest.approx(half, rel=1e-12)


def test_batched_slopes_and_means_equal_scipy():
    rng = np.random.default_rng(6)
    x = np.log(np.repeat(WIDTHS, 3))
    y = -0.5 * x + 0.2 * rng.standard_normal((4, x.size))
    y[1, 2] = np.nan  # a missing run is dropped
    slope, stderr, dof, _ = fits.ols_slopes(x, y)
    for i in range(4):
        keep = np.isfinite(y[i])
        ref = stats.linregress(x[keep], y[i][keep])
        assert slope[i] == pytest.approx(ref.slope) and stderr[i] == pytest.approx(ref.stderr)
    assert list(dof) == [13, 12, 13, 13]
    mean, half, n = fits.mean_intervals(y)
    low, high = stats.t.interval(0.95, n[0] - 1, loc=np.mean(y[0]), scale=stats.sem(y[0]))
    assert (mean[0] - half[0], mean[0] + half[0]) == pytest.approx((low, high))
    assert np.isinf(fits.mean_intervals([0.1])[1])  # one value: no interval


def test_value_interval_of_the_fitted_line_equals_the_least_squares_covariance():
    rng = np.random.default_rng(7)
    x = np.log(np.repeat(WIDTHS, 2))
    y = 1.0 - 0.5 * x + 0.1 * rng.standard_normal(x.size)
    value, low, high = fits.value_intervals(x, y, np.log(2048.0))
    design = np.column_stack([np.ones_like(x), x])
    coef, rss, *_ = np.linalg.lstsq(design, y, rcond=None)
    cov = rss[0] / (x.size - 2) * np.linalg.inv(design.T @ design)
    row = np.array([1.0, np.log(2048.0)])
    assert value == pytest.approx(row @ coef)
    half = stats.t.ppf(0.975, x.size - 2) * math.sqrt(row @ cov @ row)
    assert (low, high) == pytest.approx((value - half, value + half))


# ---------------------------------------------------------------- run table


def test_run_table_has_one_row_per_run(summary):
    table = analysis.run_table(summary)
    assert len(table) == 5 * 2 * 2
    assert list(table.columns[:4]) == ["width", "n_train", "seed", "status"]
    row = table[(table.width == 64) & (table.n_train == 128) & (table.seed == 0)].iloc[0]
    assert row.status == "diverged" and row.diverged_step == 16
    assert np.isinf(row["loss_train (net)"])  # the last record, not the last finite one
    assert analysis.status_counts(summary) == {
        "ok": 17,
        "lr_above_critical": 1,
        "diverged": 1,
        "missing": 1,
    }


def test_run_table_with_the_learning_rate_as_a_sweep_axis():
    ds = make_summary(widths=(64, 128, 256), n_trains=None, extra_axes={"learning_rate": [0.5, 1]})
    table = analysis.run_table(ds)
    assert list(table.columns[:4]) == ["width", "learning_rate", "seed", "status"]
    assert table.columns.is_unique and len(table) == 3 * 2 * 2


# ---------------------------------------------------------------- Fig. S9–S10: Monte Carlo


def test_mc_error_curve_pools_the_runs_of_a_point():
    ds = add_mc(make_summary(seeds=4), seeds_per_chunk=2, dims=200_000)
    curve = analysis.mc_error_curve(ds, "ntk")
    assert list(curve["mc_samples"].values) == [1, 2, 3, 4]  # two runs of 2 seeds: M up to 4
    expected = 0.3 * (ds.width / 64.0) ** -0.5 * 4.0**-0.5  # no plateau: √(v/M)
    np.testing.assert_allclose(
        curve.sel(mc_samples=4), expected.broadcast_like(curve.sel(mc_samples=4)), rtol=0.02
    )
    with pytest.raises(ValueError, match="kernel='x'"):
        analysis.mc_error_curve(ds, "x")
