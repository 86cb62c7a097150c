"""Per-run quantities added for the paper's experiments: sampled weights (Fig. 3), the running
Monte Carlo kernel error (Fig. S9–S10), the relative output change and the RMSE against f_lin
evolved with the analytic kernel (metrics.run_metrics)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from ntkpipe import conventions, datasets
from ntkpipe.analysis import metrics
from ntkpipe.core import dynamics, kernels, models
from ntkpipe.core import train as ntk_train
from ntkpipe.jobs import linear
from tests import combined_summary


def _net(width=8, depth=2):
    return models.mlp(depth=depth, width=width, out_dim=1, activation="relu", w_std=1.4, b_std=0.1)


def _stacked(net, seeds, x):
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    return jax.vmap(net.init, in_axes=(0, None))(keys, x[:1])


def test_sampled_weights_are_the_same_entries_at_every_width():
    x = jnp.ones((1, 5))
    labels = [linear.weight_sample_labels(_net(w).init(jax.random.PRNGKey(0), x)) for w in (4, 64)]
    assert labels[0] == labels[1] == sorted(labels[0])
    assert labels[0] == [
        "dense_0[1,0]",  # input rows spread over the d_in = 5 features: ⌊5/3⌋, ⌊10/3⌋
        "dense_0[3,1]",
        "dense_1[0,0]",
        "dense_1[1,1]",
        "dense_2[0,0]",
        "dense_2[1,0]",
    ]


def test_sampled_input_weights_see_pixels_that_vary():
    """On the digits, corner pixels are constant (pixel 0 is always 0): their input weights get
    no gradient, so the sampled input rows lie inside the image."""
    digits = datasets.load_dataset(dataset="digits", classes=[3, 8], n_train=64, n_test=8)
    theta = _net(16).init(jax.random.PRNGKey(0), jnp.asarray(digits.x_train[:1]))
    rows = [entry[0] for name, entry in linear.weight_sample_index(theta) if name == "dense_0"]
    assert np.asarray(digits.x_train).std(axis=0)[0] == 0
    assert (np.asarray(digits.x_train).std(axis=0)[rows] > 0.5).all()


def test_endpoint_weight_samples_are_zero_at_start_and_the_change_at_the_end():
    net, x = _net(), jnp.linspace(-1, 1, 10).reshape(2, 5)
    params0 = _stacked(net, [0, 1], x)
    params_t = jax.tree.map(lambda a: a + 0.5 * jnp.sin(a), params0)
    out = linear.endpoint_weight_samples(params0, params_t, np.array([0, 3, 9]))
    assert out.dims == ("seed", "step", "wsample")
    np.testing.assert_array_equal(out.isel(step=0), 0.0)
    assert np.isnan(out.isel(step=1)).all()
    w0 = params0["params"]["dense_1"]["kernel"]
    expected = 0.5 * np.sin(np.asarray(w0[:, 1, 1]))
    np.testing.assert_allclose(out.sel(wsample="dense_1[1,1]").isel(step=-1), expected, rtol=1e-6)


def test_closed_form_weight_samples_equal_gradient_descent_on_f_lin():
    """ω_i from Eq. 8 (discrete) at the sampled entries = θ_i − θ_0 of GD on f_lin."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    y = np.sign(rng.standard_normal((6, 1)))
    net = _net(width=16)
    theta0 = net.init(jax.random.PRNGKey(3), x[:1])
    ntk = kernels.empirical_ntk(net.apply, theta0, x)
    omega = dynamics.weights_mse(net.apply, theta0, x, ntk, y, 0.5, discrete=True)
    steps = np.array([0, 20])
    _, samples = linear.omega_records(omega, theta0, steps)
    np.testing.assert_array_equal(samples[0], 0.0)
    params0 = jax.tree.map(lambda a: a[None], theta0)
    trained = ntk_train.train(
        net.apply, params0, x, y, x, y, learning_rate=0.5, steps=20, linearized=True
    )
    direct = linear.endpoint_weight_samples(params0, trained.params, steps)
    assert np.abs(samples[-1]).max() > 1e-2  # the weights did move (a dead ReLU unit may not)
    np.testing.assert_allclose(samples[-1], direct.values[0, -1], rtol=1e-8, atol=1e-12)


def test_mc_statistics_are_the_gram_of_the_relative_deviations_of_the_run():
    rng = np.random.default_rng(1)
    exact = rng.standard_normal((4, 4))
    draws = exact + 0.3 * rng.standard_normal((5, 4, 4))
    kernel = xr.DataArray(draws, dims=("seed", "train", "train2"))
    exact_store = xr.Dataset({"k": xr.DataArray(exact, dims=("train", "train2"))})
    sq, cross, partners = metrics._mc_statistics({"k": kernel}, exact_store, "k", kernel.seed)
    d = (draws - exact).reshape(5, -1) / np.linalg.norm(exact)
    for s in range(5):
        assert float(sq[s]) == pytest.approx(d[s] @ d[s], rel=1e-12)
        others = sum(d[s] @ d[o] for o in range(5) if o != s)
        assert float(cross[s]) == pytest.approx(others, rel=1e-12)
    assert set(partners.values) == {4.0}


def test_output_change_and_rmse_against_the_analytic_linearization():
    steps, n, k = 3, 4, 1
    fx = np.arange(2 * steps * n * k, dtype=float).reshape(2, steps, n, k)
    dims = ("seed", "step", "train", "out")
    fx_da = xr.DataArray(fx, dims=dims)
    change = metrics._output_change(fx_da)
    np.testing.assert_allclose(change.isel(step=0), 0.0)
    np.testing.assert_allclose(change.isel(step=2), 2 * n * k)  # every entry moved by 8
    rmse = metrics._rmse(fx_da, xr.DataArray(fx + 0.25, dims=dims))
    np.testing.assert_allclose(rmse, 0.25)


def _metrics(depth, seeds=(0, 1)):
    layers = [f"dense_{i}" for i in range(depth + 1)]
    labels = sorted(f"{name}[{i},{i}]" for name in layers for i in range(2))
    n = len(seeds)
    return xr.Dataset(
        {
            "weight_change": (("model", "seed", "step", "layer"), np.ones((2, n, 3, depth + 1))),
            "weight_sample": (
                ("model", "seed", "step", "wsample"),
                np.ones((2, n, 3, len(labels))),
            ),
            "status": (("seed",), ["ok"] * n),
        },
        coords={
            "model": ["net", "lin"],
            "seed": list(seeds),
            "step": [0, 1, 2],
            "layer": layers,
            "wsample": labels,
        },
    )


def test_summary_of_a_depth_sweep_has_the_union_of_layers_and_roles_per_depth():
    from ntkpipe.sweep.runs import Run

    sweep = {"name": "d", "sweep": {"model.depth": [1, 3]}}
    found = {
        f"depth~{d}": (Run(f"depth~{d}/seeds~0-1", {"depth": d}, (0, 1), {}), _metrics(d))
        for d in (1, 3)
    }
    summary = combined_summary.summarize(sweep, found)
    assert summary["weight_change"].dims == ("depth", "model", "seed", "step", "layer")
    assert list(summary["layer"].values) == ["dense_0", "dense_1", "dense_2", "dense_3"]
    assert summary.sizes["wsample"] == 8 and "layer" not in summary["status"].dims
    roles = summary["layer_role"]
    assert roles.dims == ("depth", "layer")
    assert list(roles.sel(depth=1).values) == ["input", "output", "", ""]
    assert list(roles.sel(depth=3).values) == ["input", "hidden", "hidden", "output"]
    assert np.isnan(summary["weight_change"].sel(depth=1, layer="dense_3")).all()


def test_summary_of_one_depth_keeps_the_roles_on_the_layers_alone():
    from ntkpipe.sweep.runs import Run

    sweep = {"name": "w", "sweep": {"model.width": [8, 16]}}
    found = {
        f"width~{w}": (Run(f"width~{w}/seeds~0-1", {"width": w}, (0, 1), {}), _metrics(2))
        for w in (8, 16)
    }
    summary = combined_summary.summarize(sweep, found)
    assert summary["layer_role"].dims == ("layer",)
    assert list(summary["layer_role"].values) == ["input", "hidden", "output"]


def _run_metrics_of(width, n_train, lr=0.5, seeds=(0, 1), transposed=False):
    """A metrics store as run_metrics writes it (with η, samples and time), one run."""
    ds = _metrics(2, seeds)
    n = len(seeds)
    ds["learning_rate"] = lr
    ds["rmse_test"] = (("seed", "step"), np.full((n, 3), width * 1.0))
    ds["fx_sample_test"] = (("model", "seed", "step", "sample"), np.zeros((2, n, 3, 4)))
    ds["diverged_step"] = (("seed",), [-1] * n)
    ds = ds.assign_coords(t=("step", lr * ds.step.values))
    return ds.transpose(*reversed(list(ds.dims))) if transposed else ds


def _summary_of(order, lrs=None, transposed=False):
    from ntkpipe.sweep.runs import Run

    sweep = {
        "name": "s",
        "sweep": {"model.width": [8, 16], "data.n_train": [4, 8]},
        "training": {"steps": 2, "optimizer": "gd", "record": [0, 1, 2]},
        "model": {"depth": 2, "activation": "relu"},
    }
    found = {}
    for w, n in order:
        lr = (lrs or {}).get(w, 0.5)
        axes = {"width": w, "n_train": n}
        run = Run(f"width~{w}/n_train~{n}/seeds~0-1", axes, (0, 1), {})
        found[run.run_id] = (run, _run_metrics_of(w, n, lr, transposed=transposed))
    return combined_summary.summarize(sweep, found)


def test_summary_dimension_order_is_the_schema_order_whatever_the_run_order_and_layout():
    points = [(8, 4), (8, 8), (16, 4), (16, 8)]
    a = _summary_of(points)
    b = _summary_of(list(reversed(points)), transposed=True)
    assert a["weight_change"].dims == ("width", "n_train", "model", "seed", "step", "layer")
    for name in a.variables:
        assert a[name].dims == b[name].dims, name
    assert a["rmse_test"].dims == ("width", "n_train", "seed", "step")
    assert a["fx_sample_test"].dims == ("width", "n_train", "model", "seed", "step", "sample")
    assert list(a.data_vars) == list(b.data_vars)


def test_summary_describes_every_variable_and_coordinate_and_keeps_t_and_sample():

    ds = _summary_of([(8, 4), (8, 8), (16, 4), (16, 8)])
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name") and var.attrs.get("units"), name
        assert "not in the schema table" not in var.attrs["description"], name
    assert ds["t"].dims == ("step",) and list(ds["t"].values) == [0.0, 0.5, 1.0]
    assert list(ds["sample"].values) == [0, 1, 2, 3]
    flags = ds["status_flag"]
    assert flags.attrs["flag_meanings"].split() == list(conventions.STATUSES)
    assert flags.attrs["flag_values"] == list(range(len(conventions.STATUSES)))
    assert (flags == 0).all() and (ds["status"] == "ok").all()
    assert ds.attrs["training.steps"] == 2 and ds.attrs["model.activation"] == "relu"
    assert "model.width" not in ds.attrs and ds.attrs["training.record"] == [0, 1, 2]


def test_summary_time_is_per_run_when_the_learning_rate_is_swept():
    ds = _summary_of([(8, 4), (8, 8), (16, 4), (16, 8)], lrs={8: 0.5, 16: 2.0})
    assert ds["t"].dims == ("width", "n_train", "step")
    assert list(ds["t"].sel(width=16, n_train=4).values) == [0.0, 2.0, 4.0]


def test_summary_flags_missing_runs():
    from ntkpipe.sweep.runs import Run

    ds = _summary_of([(8, 4), (8, 8), (16, 4), (16, 8)])
    sweep = {"name": "s", "sweep": {"model.width": [8, 16], "data.n_train": [4, 8]}}
    found = {}
    for w, n in [(8, 4), (8, 8), (16, 4), (16, 8)]:
        run = Run(f"width~{w}/n_train~{n}/seeds~0-1", {"width": w, "n_train": n}, (0, 1), {})
        found[run.run_id] = (run, None if w == 16 and n == 8 else _run_metrics_of(w, n))
    ds = combined_summary.summarize(sweep, found)
    assert (ds["status_flag"].sel(width=16, n_train=8) == 3).all()
    assert (ds["status_flag"].sel(width=8) == 0).all()
