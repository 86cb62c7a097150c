"""Figures of one run or one ensemble: Fig. 3 (outputs, weights, losses, RMSE) and Fig. 2."""

from __future__ import annotations

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.plots_common import (
    GP_COLORS,
    PANEL_AXIS,
    SPLIT_COLORS,
    STEP_LABEL,
    band,
    check_extra_axes,
    finish,
    largest_point,
    legend_below,
    new_figure,
    one_run,
    plain,
    plain_log_ticks,
    styled,
)


@styled
def plot_linearization(ds: xr.Dataset) -> Figure:
    """Fig. 3 for one run: sampled outputs and weights, losses, RMSE with Θ̂_0 and Θ.

    The widest width and the largest dataset size of the sweep, the first usable seed.

    Args:
        ds: the summary with ``fx_sample_train``, ``fx_sample_test`` (axes…, model, seed, step,
            sample), and optionally ``weight_sample`` (…, wsample), ``loss_*``, ``rmse_test``
            and ``rmse_test_analytic``; further axes besides width and n_train must have one
            value.
    """
    if not analysis.has_data(ds, "fx_sample_test"):
        raise ValueError("the summary has no finite values of fx_sample_test")
    check_extra_axes(ds, exclude=("width", PANEL_AXIS))
    run, label = one_run(analysis.usable_runs(ds))
    fig = new_figure(2, 2)
    axes = fig.subplots(2, 2, squeeze=False).ravel()  # a 2 × 2 grid: (a) (b) / (c) (d)
    _panel_outputs(axes[0], run)
    _panel_weights(axes[1], run)
    _panel_losses(axes[2], run)
    _panel_rmse(axes[3], run)
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel(STEP_LABEL)
    finish(fig, ds, "linearization")
    fig.suptitle("\n".join(part for part in (fig.get_suptitle(), plain(label)) if part))
    return fig


@styled
def plot_ensemble(ds: xr.Dataset) -> Figure:
    """Fig. 2: the ensemble on x(α) against the NTK-GP and NNGP bands at four record steps.

    The widest width and the largest dataset size of the sweep.

    Args:
        ds: the summary with ``ensemble_fx`` (axes…, member, step, alpha), ``ntkgp_mean``,
            ``ntkgp_std``, ``nngp_mean``, ``nngp_std`` (axes…, step, alpha),
            ``nngp_posterior_mean``, ``nngp_posterior_std`` (axes…, alpha) and the endpoint
            targets ``ensemble_target_1``, ``ensemble_target_2``.
    """
    if not analysis.has_data(ds, "ensemble_fx"):
        raise ValueError("the summary has no finite values of ensemble_fx")
    check_extra_axes(ds, exclude=("width", PANEL_AXIS))
    names = [n for n in ds.data_vars if n.startswith(("ensemble_", "ntkgp_", "nngp_"))]
    point, label = largest_point(ds[names])
    moments = analysis.ensemble_moments(point)
    steps = point["step"].values
    chosen = sorted({int(i) for i in np.linspace(1 if len(steps) > 1 else 0, len(steps) - 1, 4)})
    rows, cols = (2, 2) if len(chosen) == 4 else (1, len(chosen))
    fig = new_figure(rows, cols)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    alpha = point["alpha"].values
    for ax, index in zip(axes, chosen, strict=True):
        at = point.isel(step=index)
        band(ax, alpha, at["nngp_mean"], at["nngp_std"], GP_COLORS["nngp"], "NNGP (readout only)")
        band(ax, alpha, at["ntkgp_mean"], at["ntkgp_std"], GP_COLORS["ntkgp"], "NTK-GP")
        mean, std = moments["mean"].isel(step=index), moments["std"].isel(step=index)
        ax.plot(alpha, mean, color="black", lw=1.6, label="ensemble mean")
        for sign in (-1, 1):
            ax.plot(alpha, mean + sign * 2 * std, color="black", lw=1.0, ls=":")
        if index == chosen[-1]:
            post, post_std = point["nngp_posterior_mean"], point["nngp_posterior_std"]
            ax.plot(alpha, post, color=GP_COLORS["nngp"], ls="--", lw=1.2, label="NNGP posterior")
            for sign in (-1, 1):
                ax.plot(alpha, post + sign * 2 * post_std, color=GP_COLORS["nngp"], ls="--", lw=0.7)
        targets = [float(point["ensemble_target_2"]), float(point["ensemble_target_1"])]
        ax.scatter([0.0, 1.0], targets, color="black", s=28, zorder=5)
        ax.set_title(f"step {int(steps[index])}")
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel(r"$f_t(x(\alpha))$")
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
    members = int(point.sizes.get("member", 0))
    finish(fig, ds, "ensemble")
    point_text = " · ".join(part for part in (plain(label), f"{members} members") if part)
    fig.suptitle(f"{fig.get_suptitle()}\n{point_text}")
    return fig


def _panel_outputs(ax, run: xr.Dataset) -> None:
    steps = run["step"].values
    for split in ("train", "test"):
        name = f"fx_sample_{split}"
        if name not in run:
            continue
        for model, style in (("net", "-"), ("lin", "--")):
            if model not in run["model"].values:
                continue
            lines = run[name].sel(model=model).transpose("step", ...).values
            ax.plot(steps, lines, color=SPLIT_COLORS[split], ls=style, lw=1.1)
    legend_below(
        ax,
        ncol=2,
        handles=[
            Line2D([], [], color=SPLIT_COLORS["train"], label="train points"),
            Line2D([], [], color=SPLIT_COLORS["test"], label="test points"),
            Line2D([], [], color="0.3", ls="-", label=r"$f$"),
            Line2D([], [], color="0.3", ls="--", label=r"$f^{\mathrm{lin}}$"),
        ],
    )
    ax.set_ylabel(r"output $f_t(x)$")
    ax.set_title("(a) sampled outputs")


def _panel_weights(ax, run: xr.Dataset) -> None:
    ax.set_title(r"(b) sampled weights $\theta_t - \theta_0$")
    if not analysis.has_data(run, "weight_sample"):
        ax.text(0.5, 0.5, "no sampled weights recorded", ha="center", transform=ax.transAxes)
        return
    steps = run["step"].values
    samples = run["weight_sample"]
    palette = sns.color_palette("husl", samples.sizes["wsample"])
    for color, label in zip(palette, samples["wsample"].values, strict=True):
        one = samples.sel(wsample=label)
        if "lin" in one["model"].values:
            ax.plot(steps, one.sel(model="lin").values, color=color, ls="--", lw=1.1)
        if "net" in one["model"].values:
            net = one.sel(model="net").values
            ok = np.isfinite(net)  # a diverged seed's records are NaN
            ax.plot(steps[ok], net[ok], color=color, ls="-", lw=1.4, label=str(label))
    ax.set_ylabel(r"$\theta_t - \theta_0$ (trainable entry)")
    legend_below(ax, ncol=3, title=r"$f$ (solid), $f^{\mathrm{lin}}$ (dashed)")


def _panel_losses(ax, run: xr.Dataset) -> None:
    steps = run["step"].values
    for split in ("train", "test"):
        name = f"loss_{split}"
        if name not in run:
            continue
        for model, style in (("net", "-"), ("lin", "--")):
            if model in run["model"].values:
                values = run[name].sel(model=model).values
                ax.plot(steps, values, color=SPLIT_COLORS[split], ls=style, lw=1.4)
    plain_log_ticks(ax.yaxis)
    ax.set_ylabel(r"loss $\mathcal{L}$ (train blue, test orange)")
    ax.set_title("(c) loss")


def _panel_rmse(ax, run: xr.Dataset) -> None:
    steps = run["step"].values
    pairs = (("rmse_test", "-", r"$f^{\mathrm{lin}}$ with $\hat\Theta_0$"),)
    pairs += (("rmse_test_analytic", "--", r"$f^{\mathrm{lin}}$ with $\Theta$"),)
    for name, style, label in pairs:
        if analysis.has_data(run, name):
            values = run[name].values
            ok = np.isfinite(values) & (values > 0) & (steps > 0)  # f_0 = f^lin_0
            ax.plot(steps[ok], values[ok], color="0.2", ls=style, lw=1.4, label=label)
    plain_log_ticks(ax.yaxis)
    ax.set_ylabel(r"RMSE$(f_t, f^{\mathrm{lin}}_t)$ test")
    ax.set_title("(d) network against linearization")
    if ax.get_legend_handles_labels()[0]:
        legend_below(ax, ncol=2)
