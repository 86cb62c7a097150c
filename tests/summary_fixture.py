"""Synthetic sweep summaries with known power laws, following the schema of `ntkpipe collect`.

dims: the sweep axes (here `width`, `n_train`, optionally more) + `model`, `seed`, `step`,
`layer`; every per-run quantity follows c · width^p (· n_train^q) times log-normal noise, so
that tests can check fitted exponents and verdicts against the exponents put in.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

PAPER_EXPONENTS = {
    "input": -0.5,
    "hidden": -1.0,
    "output": -0.5,
    "ntk_change": -0.75,
    "nngp_change": -0.8,
    "ntk_analytic_error": -0.5,
    "nngp_analytic_error": -0.5,
    "rmse_width": -0.5,
    "rmse_n_train": 0.5,
}

#: Runs flagged in the summaries of the analysis, claims and report tests: (point, seed, status).
FLAGGED = [
    ({"width": 128, "n_train": 32}, 1, "missing"),
    ({"width": 64, "n_train": 128}, 0, "diverged"),
    ({"width": 256, "n_train": 32}, 0, "lr_above_critical"),
]


def make_summary(
    widths=(64, 128, 256, 512, 1024),
    n_trains=(32, 128),
    seeds=2,
    depth=3,
    exponents=None,
    noise=0.05,
    extra_axes=None,
    name="digits-binary",
    statuses=None,
    steps=(0, 1, 4, 16, 64, 256, 512),
    rng_seed=0,
):
    """A summary Dataset with known power laws.

    Args:
        widths, n_trains: values of the `width` and `n_train` sweep axes (None: not an axis).
        seeds: number of seeds.
        depth: hidden layers L (layers dense_0 … dense_L).
        exponents: overrides of `PAPER_EXPONENTS`.
        noise: σ of the multiplicative log-normal noise.
        extra_axes: {name: values} further sweep axes (after width, n_train).
        name: the sweep name (attrs).
        statuses: [(point dict, seed, status)] overrides; "missing" empties the run, "diverged"
            makes it blow up after the third record.
        steps: recorded optimizer steps.
        rng_seed: noise seed.
    """
    exps = {**PAPER_EXPONENTS, **(exponents or {})}
    rng = np.random.default_rng(rng_seed)
    axes = {}
    if widths is not None:
        axes["width"] = list(widths)
    if n_trains is not None:
        axes["n_train"] = list(n_trains)
    axes.update(extra_axes or {})
    coords = {
        **axes,
        "model": ["net", "lin"],
        "seed": np.arange(seeds),
        "step": np.asarray(steps),
        "layer": [f"dense_{i}" for i in range(depth + 1)],
    }
    roles = ["input"] + ["hidden"] * (depth - 1) + ["output"]
    shape_dims = [*axes, "seed"]

    width = xr.DataArray(axes.get("width", [256]), dims="width" if "width" in axes else "_w")
    n_train = xr.DataArray(axes.get("n_train", [64]), dims="n_train" if "n_train" in axes else "_n")
    width, n_train = width.squeeze(drop=True), n_train.squeeze(drop=True)
    seed = xr.DataArray(np.arange(seeds), dims="seed")
    step = xr.DataArray(np.asarray(steps, dtype=float), dims="step")
    ramp = 1.0 - np.exp(-step / 100.0)
    ramp = ramp / ramp.isel(step=-1)  # 0 at step 0, 1 at the last step
    grid = _grid(axes, seed)

    def noisy(da):
        da = da * grid
        return da * np.exp(noise * rng.standard_normal(da.shape))

    def power(key, scale, w=width):
        return scale * (w / 64.0) ** exps[key]

    per_layer = xr.concat(
        [power(role, 0.2 if role == "hidden" else 0.3) for role in roles], dim="layer"
    )
    weight_net = noisy(per_layer) * ramp
    weight_lin = weight_net * 1.01
    weight_change = xr.concat([weight_net, weight_lin], dim="model")

    rmse_end = 0.1 * (width / 64.0) ** exps["rmse_width"] * (n_train / 32.0) ** exps["rmse_n_train"]
    rmse_test_end = noisy(rmse_end)
    rmse_train_end = noisy(rmse_end * 0.5)
    loss_net = 0.5 * np.exp(-step / 50.0) + 0.01
    loss_test_net = 0.3 + 0.2 * np.exp(-step / 50.0)
    loss_train = noisy(xr.concat([loss_net, loss_net * 1.02], dim="model"))
    loss_test = noisy(xr.concat([loss_test_net, loss_test_net * 1.01], dim="model"))
    acc_train = grid * 0 + xr.concat([1 - loss_net, 1 - loss_net], dim="model")
    acc_test = grid * 0 + xr.concat([1 - loss_test_net, 1 - loss_test_net], dim="model")

    data = {
        "loss_train": loss_train,
        "loss_test": loss_test,
        "acc_train": acc_train,
        "acc_test": acc_test,
        "rmse_train": rmse_train_end * ramp,
        "rmse_test": rmse_test_end * ramp,
        "weight_change": weight_change,
        "ntk_change": noisy(power("ntk_change", 0.2)),
        "nngp_change": noisy(power("nngp_change", 0.1)),
        "ntk_analytic_error": noisy(power("ntk_analytic_error", 0.3)),
        "nngp_analytic_error": noisy(power("nngp_analytic_error", 0.2)),
        # η_crit above η = 1 in every run (a run above it is set through `statuses`)
        "lr_critical": grid * 0 + 1.6,
        "diverged_step": (grid * 0 - 1).astype(int),
    }
    order = {
        name: [d for d in [*axes, "model", "seed", "step", "layer"] if d in da.dims]
        for name, da in data.items()
    }
    ds = xr.Dataset(
        {name: da.transpose(*order[name]) for name, da in data.items()},
        coords=coords,
    )
    ds = ds.assign_coords(layer_role=("layer", roles))
    if "learning_rate" not in axes:  # else the sweep axis is the learning rate's coordinate
        ds["learning_rate"] = xr.DataArray(1.0)
    ds["status"] = xr.full_like(grid, "ok", dtype="<U17").transpose(*shape_dims)
    for point, seed_index, status in statuses or ():
        _set_status(ds, {**point, "seed": seed_index}, status)
    config = {
        "name": name,
        "data": {"dataset": "digits", "classes": [3, 8]},
        "model": {"architecture": "fc", "depth": depth, "activation": "relu"},
        "training": {"learning_rate": 1.0, "steps": int(max(steps))},
        "sweep": {f"model.{a}" if a == "width" else f"data.{a}": v for a, v in axes.items()},
    }
    ds.attrs = {"config": json.dumps(config), "sweep_axes": json.dumps(list(axes)), "name": name}
    return ds


def _grid(axes, seed):
    grid = seed * 0.0 + 1.0
    for axis, values in axes.items():
        grid = grid * xr.DataArray(np.ones(len(values)), dims=axis)
    return grid


def _set_status(ds, point, status):
    ds["status"].loc[point] = status
    if status == "missing":
        for var in ds.data_vars.values():
            if np.issubdtype(var.dtype, np.floating) and set(point) <= set(var.dims):
                var.loc[point] = np.nan
        ds["lr_critical"].loc[point] = np.nan
    elif status == "diverged":
        ds["diverged_step"].loc[point] = int(ds["step"][3])
        for name in ("loss_train", "loss_test", "rmse_train", "rmse_test", "weight_change"):
            var = ds[name]
            after = {**point, "step": ds["step"].values[4:]}
            if "model" in var.dims:
                after["model"] = "net"
            var.loc[after] = np.inf


# ---------------------------------------------------------------- further experiments


def add_linearization(ds, *, ratio_analytic=5.0, relative=0.03, samples=3, rng_seed=1):
    """Fig. 3 variables: output change, RMSE with the analytic Θ, sampled outputs and weights.

    RMSE(f, f_lin with Θ) = `ratio_analytic` × RMSE(f, f_lin with Θ̂); the output change is
    rmse_test / `relative`, so the relative linearization error at the end is `relative`.
    """
    rng = np.random.default_rng(rng_seed)
    ds = ds.copy()
    ramp_end = ds["rmse_test"].isel(step=-1)
    ds["rmse_test_analytic"] = ds["rmse_test"] * ratio_analytic
    ds["rmse_train_analytic"] = ds["rmse_train"] * ratio_analytic
    ds["output_change_test"] = ds["rmse_test"] * 0 + ramp_end / relative
    ds["output_change_train"] = ds["output_change_test"]
    step = ds["step"].astype(float)
    curve = 1 - np.exp(-step / 100.0)
    fx = xr.DataArray(rng.standard_normal(samples), dims="sample") * curve
    per_model = xr.concat([fx, fx * 1.01], dim="model") * (ds["status"] == ds["status"])
    ds["fx_sample_train"] = per_model.transpose(..., "model", "seed", "step", "sample")
    ds["fx_sample_test"] = ds["fx_sample_train"] * 0.9
    labels = [f"dense_{i}[{3 * i}]" for i in range(2)]
    weights = xr.DataArray(0.01 * rng.standard_normal(2), dims="wsample") * curve
    lin = weights * (ds["status"] == ds["status"])
    net = lin * 1.02  # recorded at every step, like f^lin (NaN only where a seed diverged)
    ds["weight_sample"] = xr.concat([net, lin], dim="model").transpose(
        ..., "model", "seed", "step", "wsample"
    )
    return ds.assign_coords(wsample=labels)


def add_mc(ds, *, seeds_per_chunk=None, exponent=-0.5, bias=0.0, noise=0.03, rng_seed=2):
    """Fig. S9–S10 variables: the error of the mean of M kernels ~ c · M^exponent / √n + bias.

    mc_samples counts the seeds 1, 2, … within each chunk of `seeds_per_chunk` seeds (one chunk
    of all seeds by default).
    """
    rng = np.random.default_rng(rng_seed)
    ds = ds.copy()
    n_seed = ds.sizes["seed"]
    chunk = seeds_per_chunk or n_seed
    counts = xr.DataArray([i % chunk + 1 for i in range(n_seed)], dims="seed")
    width = ds["width"] if "width" in ds.dims else 256
    grid = ds["status"] == ds["status"]
    for kernel, scale in (("ntk", 0.3), ("nngp", 0.2)):
        value = scale * (width / 64.0) ** -0.5 * counts.astype(float) ** exponent + bias
        jitter = grid.copy(data=np.exp(noise * rng.standard_normal(grid.shape)))
        value = (value * jitter).transpose(*grid.dims)
        ds[f"{kernel}_mc_error"] = value.where(ds["status"] != "missing")
    ds["mc_samples"] = (counts * grid).astype(int)
    return ds


def add_ensemble(ds, *, members=64, alphas=9, offset=0.0, std_scale=1.0, rng_seed=3):
    """Fig. 2 variables: an ensemble drawn from the NTK-GP itself (shifted by `offset`, spread
    scaled by `std_scale`), with NNGP bands that differ from it."""
    rng = np.random.default_rng(rng_seed)
    ds = ds.copy()
    alpha = xr.DataArray(np.linspace(0, 1, alphas), dims="alpha")
    step = ds["step"].astype(float)
    progress = 1 - np.exp(-step / 100.0)
    mu = (2 * alpha - 1) * progress
    sigma = 0.3 * (1 - 0.8 * progress * (4 * alpha * (1 - alpha) < 0.5)) + 0 * alpha
    grid = _grid({a: ds[a].values for a in json.loads(ds.attrs["sweep_axes"])}, xr.DataArray(1.0))
    member = xr.DataArray(np.arange(members), dims="member")
    draws = xr.DataArray(
        rng.standard_normal((members, ds.sizes["step"], alphas)), dims=("member", "step", "alpha")
    )
    draws = (draws - draws.mean("member")) / draws.std("member", ddof=1)
    ds["ensemble_fx"] = (grid * (mu + offset + std_scale * sigma * draws)).assign_coords(
        member=member
    )
    ds["ensemble_loss_train"] = grid * 0.5 * np.exp(-step / 50.0) * (member * 0 + 1)
    ds["ntkgp_mean"], ds["ntkgp_std"] = grid * mu, grid * sigma
    ds["nngp_mean"], ds["nngp_std"] = grid * mu * 0.6, grid * sigma * 0.8
    ds["nngp_posterior_mean"] = grid * (2 * alpha - 1) * 0.6
    ds["nngp_posterior_std"] = grid * 0.1 * (alpha * 0 + 1)
    ds["ensemble_target_1"], ds["ensemble_target_2"] = grid * 1.0, grid * -1.0
    return ds.assign_coords(alpha=alpha.values, member=np.arange(members))
