"""Fig. 2 / S1: an ensemble of trained networks against the NTK-GP (Eq. 14–15) and the NNGP.

The summary holds ``ensemble_fx`` (axes…, member, step, alpha): f_t(x(α)) of M members, and
the predictions ``ntkgp_mean``/``ntkgp_std`` (μ_t, σ_t) and ``nngp_mean``/``nngp_std`` (the
readout-only dynamics, Eq. S22–S23) on the same (step, alpha), ``nngp_posterior_mean`` (alpha).

The ensemble mean of M members scatters around the true mean with the standard error
σ_t/√M, so it is judged against μ_t ± 2σ_t/√M, not against the band μ_t ± 2σ_t of a single
network. The NTK-GP is the infinite-width prediction; a network of width n deviates from it
by O(n^−½) of the output scale, so every tolerance is widened by a finite-width margin
`FINITE_WIDTH_MARGIN` × s, with s = max over (t, α) of σ_t (the prior's output scale).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import stats

#: Finite-width margin of the Fig. 2 tests, in units of the prior's output scale max σ_t.
FINITE_WIDTH_MARGIN = 0.1
#: Standard errors by which the NTK-GP and NNGP means must differ for a point (t, α) to tell
#: the two apart.
SEPARATION_ERRORS = 3.0


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


def band_statistics(mean, std, members, mu, sigma, nngp_mu, nngp_sigma, *, later):
    """The Fig. 2 statistics over the points (t, α) with t > 0, batched over leading axes.

    Args:
        mean, std: the ensemble's mean and standard deviation (ddof 1) [..., step, alpha].
        members: M, the number of members (a number or an array [...]).
        mu, sigma: the NTK-GP mean and standard deviation [..., step, alpha].
        nngp_mu, nngp_sigma: the readout-only NNGP mean and standard deviation, same shape.
        later: bool [step], the recorded steps t > 0.

    Returns:
        dict of arrays [...]:

        - ``band_fraction``: fraction of points with |mean − μ_t| ≤ 2σ_t/√M + margin;
        - ``spread_fraction``: fraction with σ_ens inside the 95% interval of a sample standard
          deviation of M draws of N(·, σ_t²) (χ²_{M−1} quantiles), ± margin;
        - ``std_error``: median of |σ_ens − σ_t| / s;
        - ``separated``: number of points where |μ_NTK − μ_NNGP| > `SEPARATION_ERRORS` ×
          max(σ_NTK, σ_NNGP)/√M + margin;
        - ``ntkgp_closer``: fraction of the separated points where the ensemble mean is closer
          to μ_NTK than to μ_NNGP (NaN when none is separated);
        - ``z_ntkgp``, ``z_nngp``: RMS over the separated points of (mean − μ)/(σ/√M) of each.
        margin = `FINITE_WIDTH_MARGIN` × s, s = max over (t, α) of σ_t.
    """
    mean, std, mu, sigma, nngp_mu, nngp_sigma = (
        np.asarray(a, dtype=float) for a in (mean, std, mu, sigma, nngp_mu, nngp_sigma)
    )
    m = np.asarray(members, dtype=float)[..., None, None]
    scale = np.nanmax(sigma, axis=(-2, -1), keepdims=True)
    margin = FINITE_WIDTH_MARGIN * scale
    later = np.asarray(later, dtype=bool)[:, None] & np.isfinite(mean) & np.isfinite(mu)
    error = sigma / np.sqrt(m)
    inside = np.abs(mean - mu) <= 2 * error + margin
    q_low, q_high = (np.sqrt(stats.chi2.ppf(q, m - 1) / (m - 1)) for q in (0.025, 0.975))
    spread_ok = (std >= sigma * q_low - margin) & (std <= sigma * q_high + margin)
    both_error = np.maximum(sigma, nngp_sigma) / np.sqrt(m)
    apart = later & (np.abs(mu - nngp_mu) > SEPARATION_ERRORS * both_error + margin)
    n_apart = apart.sum((-2, -1))
    closer = np.abs(mean - mu) < np.abs(mean - nngp_mu)
    nngp_error = nngp_sigma / np.sqrt(m)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "band_fraction": _fraction(inside, later),
            "spread_fraction": _fraction(spread_ok, later),
            "std_error": np.nanmedian(
                np.where(later, np.abs(std - sigma) / scale, np.nan), axis=(-2, -1)
            ),
            "separated": n_apart,
            "ntkgp_closer": _fraction(closer, apart),
            "z_ntkgp": _rms(np.where(error > 0, (mean - mu) / error, np.inf), apart),
            "z_nngp": _rms(np.where(nngp_error > 0, (mean - nngp_mu) / nngp_error, np.inf), apart),
        }


def ensemble_agreement(ds: xr.Dataset) -> xr.Dataset:
    """How the ensemble compares with the NTK-GP (Eq. 14–15) and the NNGP, per sweep point.

    The variables of `band_statistics` over the sweep axes, plus ``members`` (M) and
    ``distance_ntkgp``, ``distance_nngp``, ``distance_posterior``: RMS over α at the last step
    of mean_ens − μ_T for the NTK-GP, the readout-only NNGP dynamics and the NNGP posterior.
    """
    for name in ("ntkgp_mean", "ntkgp_std", "nngp_mean", "nngp_std", "nngp_posterior_mean"):
        if name not in ds:
            raise ValueError(f"the summary has no variable {name!r}; it has {sorted(ds)}")
    moments = ensemble_moments(ds)
    members = np.isfinite(ds["ensemble_fx"]).sum("member").max(("step", "alpha"))
    core = ("step", "alpha")
    arrays = [
        a.transpose(..., *core)
        for a in xr.broadcast(
            moments["mean"],
            moments["std"],
            ds["ntkgp_mean"],
            ds["ntkgp_std"],
            ds["nngp_mean"],
            ds["nngp_std"],
        )
    ]
    outer = arrays[0].isel(step=0, alpha=0, drop=True)
    m = members.broadcast_like(outer).transpose(*outer.dims)
    found = band_statistics(
        arrays[0].values,
        arrays[1].values,
        m.values,
        *(a.values for a in arrays[2:]),
        later=(ds["step"] > 0).values,
    )
    out = {name: outer.copy(data=value) for name, value in found.items()}
    out["members"] = m
    last = moments["mean"].isel(step=-1)

    def rms(other):
        return np.sqrt(((last - other) ** 2).mean("alpha"))

    out["distance_ntkgp"] = rms(ds["ntkgp_mean"].isel(step=-1))
    out["distance_nngp"] = rms(ds["nngp_mean"].isel(step=-1))
    out["distance_posterior"] = rms(ds["nngp_posterior_mean"])
    return xr.Dataset(out, attrs=ds.attrs).drop_vars("step", errors="ignore")


def _fraction(hit, where):
    count = where.sum((-2, -1))
    share = (hit & where).sum((-2, -1)) / np.where(count > 0, count, 1)
    return np.where(count > 0, share, np.nan)


def _rms(z, where):
    count = where.sum((-2, -1))
    total = np.where(where, z**2, 0.0).sum((-2, -1))
    return np.where(count > 0, np.sqrt(total / np.where(count > 0, count, 1)), np.nan)
