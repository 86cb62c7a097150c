"""Fig. 2 / S1: the output distribution of trained networks against the NTK-GP and the NNGP.

An ensemble of M networks (seeds s₀ … s₀ + M − 1, trained together with ``jax.vmap``) is trained by
full-batch gradient descent on MSE, and evaluated over training on inputs interpolated between two
training points of different classes,

    x(α) = α x⁽¹⁾ + (1 − α) x⁽²⁾,   α ∈ [0, 1]   (x⁽¹⁾: target +1, x⁽²⁾: target −1).

Over random initializations the infinitely wide linearized network is Gaussian at every time t,
with the mean and covariance of Eq. 14–15 (the NTK-GP,
:func:`ntkpipe.core.analytic.ntk_gp_predictive`).
Training only the readout layer instead replaces Θ by K (Eq. S22–S23), which tends to the exact
NNGP posterior of Eq. 13 as t → ∞
(:func:`ntkpipe.core.analytic.nngp_posterior`). The ensemble's mean
and ±2σ band are compared with both.

The stage (rule ``ensemble``, ``ntkpipe ensemble``: :func:`ensemble`) reads the sweep point's
``ensemble.json`` and writes ``ensemble.zarr``; the other functions are pure (arrays and configs
in, an ``xarray.Dataset`` out). The ``ensemble.zarr`` store (one per sweep point) holds:

- ``fx_alpha (member, step, alpha, out)``: f_t(x(α)) of every member;
- ``loss_train (member, step)``: the members' training loss;
- ``ntkgp_mean``, ``ntkgp_std`` (step, alpha, out): Eq. 14 and √diag of Eq. 15 for gradient
  descent, (I − cΘ)^t in place of e^{−cΘt} (:mod:`ntkpipe.core.gp_trajectory`);
- ``ntkgp_factor`` (step, alpha, gp): F with Cov(f_t(x(α)), f_s(x(α'))) = Σ_gp F F, the
  NTK-GP's correlations across times and α (the test of Fig. 2, `ntkpipe.analysis.gp_test`);
- ``nngp_mean``, ``nngp_std`` (step, alpha, out): readout-only gradient descent (Eq. S22–S23);
- ``nngp_posterior_mean``, ``nngp_posterior_std`` (alpha, out): the NNGP posterior (Eq. 13);
- ``target_1``, ``target_2`` (out): the targets of x⁽¹⁾ and x⁽²⁾;
- coordinates ``member`` (the seeds), ``step``, ``t`` = η·step, ``alpha``; attributes
  ``index_1``, ``index_2`` (rows of x⁽¹⁾, x⁽²⁾ in the training set).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ntkpipe.core import train as ntk_train
from ntkpipe.errors import StageError
from ntkpipe.jobs import _job, progress
from ntkpipe.sweep import ensemble as ensemble_plan
from ntkpipe.sweep import facts

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "ensemble",
    "interpolation_pair",
    "interpolation_inputs",
    "gp_predictions",
    "ensemble_dataset",
    "SUMMARY_NAMES",
    "summarize",
]


def ensemble(run: Path, out: Path, overwrite: bool = False) -> None:
    """Train an ensemble of networks (members vmapped, in chunks of ensemble.batch) and record
    their outputs on x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾ over training, next to the NTK-GP (Eq. 14–15),
    the readout-only NNGP dynamics and the NNGP posterior (Eq. 13) of the analytic kernels.
    """
    with _job.stage_job(run, out, overwrite, rule="ensemble") as job:
        config = job.config
        problems = ensemble_plan.check_config(config)
        if problems:
            raise StageError("; ".join(problems))
        data, net = _job.load_data_and_network(config)
        training, section = config["training"], config["ensemble"]
        i1, i2 = interpolation_pair(data.labels_train)
        alphas = np.linspace(0.0, 1.0, section["alphas"])
        x_line = interpolation_inputs(data.x_train[i1], data.x_train[i2], alphas)
        steps = _job.record_steps(config)
        fx, losses = _train_members(job, net, data, x_line, steps)
        gp = gp_predictions(
            data.x_train,
            data.y_train,
            x_line,
            steps,
            model=config["model"],
            learning_rate=training["learning_rate"],
        )
        ds = ensemble_dataset(
            fx,
            losses,
            gp,
            members=ensemble_plan.member_seeds(config),
            steps=steps,
            alphas=alphas,
            learning_rate=training["learning_rate"],
            targets=(data.y_train[i1], data.y_train[i2]),
            indices=(i1, i2),
        )
        job.write(ds, stage="ensemble")


def _train_members(job, net, data, x_line, steps) -> tuple[np.ndarray, np.ndarray]:
    """f_t(x(α)) [member, step, alpha, out] and the training loss [member, step] of every
    member, trained by full-batch GD on MSE in chunks of ensemble.batch members."""
    training = job.config["training"]
    y_line = np.zeros((len(x_line), data.y_train.shape[1]), dtype=data.y_train.dtype)
    fx, losses = [], []
    for chunk in ensemble_plan.member_chunks(job.config):
        with progress.Progress(_job.log) as on_progress:  # by time; stops even on an error
            trajectory = ntk_train.train(
                net.apply,
                _job.init_params(net, chunk, data.x_train),
                data.x_train,
                data.y_train,
                x_line,
                y_line,
                loss="mse",
                optimizer="gd",
                learning_rate=training["learning_rate"],
                steps=training["steps"],
                record_steps=steps,
                progress=on_progress,
            )
        fx.append(np.asarray(trajectory.fx_test))
        losses.append(np.asarray(trajectory.loss_train))
        _job.log(f"ensemble: members {chunk[0]}-{chunk[-1]} done, elapsed {job.elapsed():.1f} s")
    return np.concatenate(fx), np.concatenate(losses)


def interpolation_pair(labels_train: np.ndarray) -> tuple[int, int]:
    """Rows (i₁, i₂) of x⁽¹⁾ and x⁽²⁾: the first training example of the second class (target
    +1 in a binary task) and the first of the first class (target −1).

    Args:
        labels_train: int [n_train], the index into the task's classes of every example.

    Raises:
        ValueError: fewer than two classes among the training examples.
    """
    labels = np.asarray(labels_train)
    first, second = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    if first.size == 0 or second.size == 0:
        raise ValueError(
            f"labels_train: the interpolation needs training examples of classes 0 and 1; "
            f"found classes {sorted(set(labels.tolist()))}"
        )
    return int(second[0]), int(first[0])


def interpolation_inputs(x1: np.ndarray, x2: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """x(α) = α x⁽¹⁾ + (1 − α) x⁽²⁾ for every α: [n_alpha, d_in].

    Args:
        x1: x⁽¹⁾ [d_in].
        x2: x⁽²⁾ [d_in].
        alphas: α [n_alpha].
    """
    x1, x2 = np.asarray(x1), np.asarray(x2)
    if x1.shape != x2.shape or x1.ndim != 1:
        raise ValueError(f"x1 and x2 must be two inputs [d_in]; got {x1.shape} and {x2.shape}")
    a = np.asarray(alphas, dtype=x1.dtype)[:, None]
    return a * x1[None, :] + (1 - a) * x2[None, :]


def gp_predictions(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_line: np.ndarray,
    steps: np.ndarray,
    *,
    model: dict,
    learning_rate: float,
) -> xr.Dataset:
    """The NTK-GP (Eq. 14–15), readout-only NNGP dynamics (Eq. S22–S23) and NNGP posterior
    (Eq. 13) on the interpolation inputs, from the analytic kernels (in float64).

    Readout-only training is Eq. 14–15 with Θ replaced by the readout layer's tangent kernel
    G (:func:`ntkpipe.core.readout.readout_gram_affine`): G = K in the NTK
    parameterization, G = n_L(K − σ_b²)/σ_w² (+ 1 with a bias) in the standard one, where it
    sets the time scale (its t → ∞ limit is then the posterior of the kernel G, not of K,
    when the network has a bias); the prior covariance is K in both.

    Time: t = optimizer steps of gradient descent, as the members are trained (the train
    residual decays as (I − ηΘ/(n·k))^t; :func:`ntkpipe.core.gp_trajectory.ntk_gp_trajectory`).

    Args:
        x_train: X [n, d_in].
        y_train: Y [n, k].
        x_line: x(α) [n_alpha, d_in].
        steps: record steps [n_steps].
        model: the run config's ``model`` section (depth, activation, w_std, b_std,
            parameterization, width).
        learning_rate: η.

    Returns:
        Dataset with ``ntkgp_mean``, ``ntkgp_std``, ``nngp_mean``, ``nngp_std`` (step, alpha,
        out), ``ntkgp_factor`` (step, alpha, gp) and ``nngp_posterior_mean``,
        ``nngp_posterior_std`` (alpha, out).
    """
    import jax
    import jax.numpy as jnp
    import xarray as xr

    from ntkpipe.core import analytic as ntk_analytic
    from ntkpipe.core import gp_trajectory
    from ntkpipe.core.readout import readout_gram_affine

    with jax.enable_x64(True):
        x_train64, x_line64 = (jnp.asarray(a, dtype=jnp.float64) for a in (x_train, x_line))
        y = jnp.asarray(y_train, dtype=jnp.float64)
        kwargs = facts.kernel_arguments(model)
        k_tt, th_tt = ntk_analytic.kernels(x_train64, **kwargs)
        k_st, th_st = ntk_analytic.kernels(x_line64, x_train64, **kwargs)
        k_ss, _ = ntk_analytic.kernels(x_line64, **kwargs)
        steps = np.asarray(steps)
        ntk_mean, ntk_factor = gp_trajectory.ntk_gp_trajectory(
            th_tt, th_st, k_tt, k_st, k_ss, y, steps, learning_rate=learning_rate
        )
        # readout-only training evolves with the readout layer's tangent kernel G = a·K + b
        # (G = K in the NTK parameterization; n_L(K − σ_b²)/σ_w² [+ 1] in the standard one)
        a, b = readout_gram_affine(model, fan_in=None if model["depth"] else x_train.shape[1])
        nngp_mean, nngp_factor = gp_trajectory.ntk_gp_trajectory(
            a * k_tt + b, a * k_st + b, k_tt, k_st, k_ss, y, steps, learning_rate=learning_rate
        )
        post_mean, post_cov = ntk_analytic.nngp_posterior(k_tt, k_st, k_ss, y)
        out = {
            "ntkgp_mean": _per_output(ntk_mean),
            "ntkgp_std": _factor_std(ntk_factor, y.shape[1]),
            "ntkgp_factor": xr.DataArray(np.asarray(ntk_factor), dims=("step", "alpha", "gp")),
            "nngp_mean": _per_output(nngp_mean),
            "nngp_std": _factor_std(nngp_factor, y.shape[1]),
            "nngp_posterior_mean": _per_output(post_mean),
            "nngp_posterior_std": _std(post_cov, y.shape[1]),
        }
    return xr.Dataset(out)


def ensemble_dataset(
    fx_alpha: np.ndarray,
    loss_train: np.ndarray,
    gp: xr.Dataset,
    *,
    members: list[int],
    steps: np.ndarray,
    alphas: np.ndarray,
    learning_rate: float,
    targets: tuple[np.ndarray, np.ndarray],
    indices: tuple[int, int],
) -> xr.Dataset:
    """The ``ensemble.zarr`` dataset (module docstring) from the members' records and the GPs.

    Args:
        fx_alpha: f_t(x(α)) [member, step, alpha, out].
        loss_train: [member, step].
        gp: :func:`gp_predictions`.
        members: the member seeds.
        steps: record steps.
        alphas: α.
        learning_rate: η (for the coordinate t = η·step).
        targets: (y⁽¹⁾, y⁽²⁾), each [out].
        indices: (i₁, i₂), the rows of x⁽¹⁾ and x⁽²⁾ in the training set.
    """
    steps = np.asarray(steps)
    ds = gp.copy()
    ds["fx_alpha"] = (("member", "step", "alpha", "out"), np.asarray(fx_alpha))
    ds["loss_train"] = (("member", "step"), np.asarray(loss_train))
    ds["target_1"] = (("out",), np.asarray(targets[0]))
    ds["target_2"] = (("out",), np.asarray(targets[1]))
    ds = ds.assign_coords(
        member=list(members),
        step=steps,
        t=("step", learning_rate * steps.astype(float)),
        alpha=np.asarray(alphas, dtype=float),
    )
    ds.attrs.update(index_1=int(indices[0]), index_2=int(indices[1]))
    return ds


#: Variable of ensemble.zarr → its name in the sweep summary (output 0 only).
SUMMARY_NAMES = {
    "fx_alpha": "ensemble_fx",
    "loss_train": "ensemble_loss_train",
    "ntkgp_mean": "ntkgp_mean",
    "ntkgp_std": "ntkgp_std",
    "nngp_mean": "nngp_mean",
    "nngp_std": "nngp_std",
    "ntkgp_factor": "ntkgp_factor",
    "nngp_posterior_mean": "nngp_posterior_mean",
    "nngp_posterior_std": "nngp_posterior_std",
    "target_1": "ensemble_target_1",
    "target_2": "ensemble_target_2",
}


def summarize(axes: list[str], found: list[tuple[dict, xr.Dataset]]) -> xr.Dataset:
    """The ensembles of a sweep as summary variables over the sweep axes (output 0).

    Args:
        axes: the sweep's short axis names, in sweep order.
        found: (the point's axis values, its ensemble.zarr dataset) per sweep point.

    Returns:
        Dataset with the `SUMMARY_NAMES` variables, dims (axes…, member, step, alpha); the
        coordinate ``t`` is dropped (η may differ between points; the summary keeps
        ``learning_rate``).
    """
    import xarray as xr

    if not found:
        raise ValueError("found: no ensemble store to summarize")
    pieces = []
    for values, ds in found:
        missing = [axis for axis in axes if axis not in values]
        if missing:
            raise ValueError(f"the values of sweep axes {missing} are missing for a point")
        part = ds[list(SUMMARY_NAMES)].isel(out=0, drop=True).rename(SUMMARY_NAMES)
        part = part.drop_vars("t", errors="ignore")
        part.attrs = {}
        pieces.append(part.expand_dims({axis: [values[axis]] for axis in reversed(axes)}))
    return xr.combine_by_coords(pieces, join="outer", combine_attrs="drop")


# ---------------------------------------------------------------- private helpers


def _per_output(mean) -> xr.DataArray:
    import xarray as xr

    dims = ("step", "alpha", "out") if mean.ndim == 3 else ("alpha", "out")
    return xr.DataArray(np.asarray(mean), dims=dims)


def _factor_std(factor, n_out: int) -> xr.DataArray:
    """√diag(F Fᵀ) per (step, alpha), broadcast to [step, alpha, out]."""
    import xarray as xr

    std = np.sqrt((np.asarray(factor) ** 2).sum(-1))
    return xr.DataArray(np.repeat(std[..., None], n_out, axis=-1), dims=("step", "alpha", "out"))


def _std(cov, n_out: int) -> xr.DataArray:
    """√diag Σ, the same for every output (Θ ⊗ I), broadcast to [..., alpha, out]."""
    import xarray as xr

    variance = np.clip(np.diagonal(np.asarray(cov), axis1=-2, axis2=-1), 0.0, None)
    std = np.repeat(np.sqrt(variance)[..., None], n_out, axis=-1)
    dims = ("step", "alpha", "out") if std.ndim == 3 else ("alpha", "out")
    return xr.DataArray(std, dims=dims)
