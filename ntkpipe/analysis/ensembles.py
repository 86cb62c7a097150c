"""Fig. 2 / S1: an ensemble of trained networks against the NTK-GP (Eq. 14–15) and the NNGP.

The summary holds ``ensemble_fx`` (axes…, member, step, alpha): f_t(x(α)) of M members, and
the predictions ``ntkgp_mean``/``ntkgp_std`` (μ_t, σ_t), ``ntkgp_factor`` (F: the NTK-GP's
covariance across t and α, Σ_gp F F) and ``nngp_mean``/``nngp_std`` (the readout-only
dynamics, Eq. S22–S23) on the same (step, alpha), ``nngp_posterior_mean`` (alpha).

The ensemble is tested against the NTK-GP with the GP's own correlations across (t, α) and a
finite-width margin that shrinks as 1/n (`ntkpipe.analysis.gp_test`).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import xarray as xr

from ntkpipe.analysis import gp_test
from ntkpipe.analysis.summary import as_scalar, sweep_axes

#: The GP variables the test needs.
GP_VARIABLES = ("ntkgp_mean", "ntkgp_factor", "nngp_mean", "nngp_std", "nngp_posterior_mean")


def ensemble_moments(ds: xr.Dataset) -> xr.Dataset:
    """Mean and standard deviation over the members of the ensemble's outputs on x(α).

    Returns:
        Dataset with ``mean`` and ``std`` (axes…, step, alpha).
    """
    if "ensemble_fx" not in ds:
        raise ValueError(f"the summary has no variable 'ensemble_fx'; it has {sorted(ds)}")
    fx = ds["ensemble_fx"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.Dataset({"mean": fx.mean("member"), "std": fx.std("member", ddof=1)})


def ensemble_agreement(ds: xr.Dataset) -> xr.Dataset:
    """How the ensemble compares with the NTK-GP (Eq. 14–15) and the NNGP, per sweep point.

    Returns:
        Dataset over the sweep axes: the verdicts ``band``, ``spread``, ``follows`` and the
        statistics of :func:`ntkpipe.analysis.gp_test.agreement` (``t_mu``, ``t_sigma``,
        ``q_mu``, ``q_sigma``, ``q``, ``t_nngp``), ``members`` (M), ``epsilon`` (ε_n, from
        the point's width and depth), ``std_error`` (median over (t > 0, α) of
        |σ_ens − σ_t| / s) and ``distance_ntkgp``, ``distance_nngp``, ``distance_posterior``:
        RMS over α at the last step of mean_ens − μ_T for the NTK-GP, the readout-only NNGP
        dynamics and the NNGP posterior.

    Raises:
        ValueError: a GP variable is missing (an ensemble store written before the NTK-GP's
            factor was stored: rerun the ensemble stage).
    """
    for name in ("ensemble_fx", *GP_VARIABLES):
        if name not in ds:
            raise ValueError(
                f"the summary has no variable {name!r} (rerun the ensemble stage: it stores "
                f"the NTK-GP's covariance across times since issue 18); it has {sorted(ds)}"
            )
    axes = [a for a in sweep_axes(ds) if a in ds["ensemble_fx"].dims]
    grid = ds["ensemble_fx"].isel(member=0, step=0, alpha=0, drop=True)
    if axes:
        grid = grid.transpose(*axes)
    found: dict[str, np.ndarray] = {}
    for index in np.ndindex(grid.shape):
        point = {a: ds[a].values[i] for a, i in zip(axes, index, strict=True)}
        for name, value in _at_point(ds.sel(point), point, ds.attrs).items():
            found.setdefault(name, np.full(grid.shape, np.nan, dtype=object))[index] = value
    out = {
        name: grid.copy(data=values.astype(str if name in _VERDICTS else float))
        for name, values in found.items()
    }
    moments = ensemble_moments(ds)
    last = moments["mean"].isel(step=-1)

    def rms(other):
        return np.sqrt(((last - other) ** 2).mean("alpha"))

    out["distance_ntkgp"] = rms(ds["ntkgp_mean"].isel(step=-1))
    out["distance_nngp"] = rms(ds["nngp_mean"].isel(step=-1))
    out["distance_posterior"] = rms(ds["nngp_posterior_mean"])
    return xr.Dataset(out, attrs=ds.attrs).drop_vars("step", errors="ignore")


_VERDICTS = ("band", "spread", "follows")


def _at_point(point: xr.Dataset, where: dict, attrs: dict) -> dict:
    later = point["step"].values > 0
    every = point["ensemble_fx"].transpose("member", "step", "alpha").values
    every = every[np.isfinite(every).all((1, 2))]
    fx = every[:, later].reshape(every.shape[0], -1)
    factor = point["ntkgp_factor"].transpose("step", "alpha", "gp").values
    sigma_grid = np.sqrt((factor**2).sum(-1))
    scale = float(sigma_grid[0].max())
    # the members' outputs and the prior on the line at t = 0: the control of the mean's test
    initial = (every[:, ~later][:, 0], factor[~later][0]) if (~later).any() else None
    factor = factor[later].reshape(-1, factor.shape[-1])
    mu_grid = point["ntkgp_mean"].transpose("step", "alpha").values
    mu = mu_grid[later].ravel()
    nngp_mu, nngp_sigma = (
        point[name].transpose("step", "alpha").values[later].ravel()
        for name in ("nngp_mean", "nngp_std")
    )
    width, depth = (_setting(name, where, attrs) for name in ("width", "depth"))
    epsilon = gp_test.finite_width_epsilon(width, depth if depth is not None else 0)
    if fx.shape[0] < 3 or not np.isfinite(mu).all():
        return {"members": fx.shape[0], "epsilon": epsilon}
    delta = gp_test.margins(mu_grid, sigma_grid, point["step"].values, epsilon)
    found = gp_test.agreement(fx, mu, factor, nngp_mu, nngp_sigma, scale, delta, initial=initial)
    sigma = np.sqrt((factor**2).sum(-1))
    std_error = np.median(np.abs(fx.std(0, ddof=1) - sigma)) / scale
    return {
        **{k: (str(v) if k in _VERDICTS else float(v)) for k, v in found.items()},
        "members": fx.shape[0],
        "epsilon": epsilon,
        "std_error": std_error,
    }


def _setting(name: str, where: dict, attrs: dict):
    """model.<name> at the point: its sweep coordinate, else the sweep's fixed setting."""
    if name in where:
        return as_scalar(where[name])
    if f"model.{name}" in attrs:
        return attrs[f"model.{name}"]
    config = attrs.get("config")
    parsed = json.loads(config) if isinstance(config, str) else (config or {})
    return parsed.get("model", {}).get(name)
