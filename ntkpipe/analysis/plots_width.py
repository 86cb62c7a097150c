"""Quantities against width n on log-log axes with fitted exponents (Fig. 1, S5, S6, S9–S10)."""

from __future__ import annotations

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib import ticker
from matplotlib.figure import Figure

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.plots_common import (
    ANALYTIC_TEX,
    KERNEL_CHANGE_LABEL,
    KERNEL_COLORS,
    KERNEL_ERROR_LABEL,
    KERNEL_TEX,
    PANEL_AXIS,
    ROLE_COLORS,
    axis_values,
    by_value,
    check_extra_axes,
    check_width_figure,
    finish,
    legend_below,
    new_figure,
    panel_figure,
    panels,
    plain_log_ticks,
    scatter_fit,
    squeeze_other_axes,
    style_width_axis,
    styled,
)


@styled
def plot_weight_change(ds: xr.Dataset, *, model: str = "net") -> Figure:
    """‖W_T − W_0‖_F/‖W_0‖_F per layer role against width, with fitted exponents (Fig. 1).

    Args:
        ds: the summary with ``weight_change`` (axes…, model, seed, step, layer) and the
            ``layer_role`` coordinate.
        model: "net" (the network) or "lin" (the linearized network).
    """
    check_width_figure(ds, ["weight_change"])
    fig, axes = panel_figure(ds, rows=1)
    for ax, (title, sub) in zip(axes[0], panels(ds), strict=True):
        end = analysis.final(analysis.usable_runs(sub))["weight_change"].sel(model=model)
        fits = {f.label: f for f in analysis.weight_change_exponents(sub, model=model)}
        for role in analysis.LAYER_ROLES:
            if role in fits:
                per_seed = analysis.layer_role_mean(end, role)
                scatter_fit(ax, per_seed, fits[role], ROLE_COLORS[role], role)
        style_width_axis(ax, title, r"$\|W_T - W_0\|_F \,/\, \|W_0\|_F$")
    finish(fig, ds, "weight_change")
    return fig


@styled
def plot_kernel_change(ds: xr.Dataset) -> Figure:
    """‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F and ‖K̂_T − K̂_0‖_F/‖K̂_0‖_F against width (Fig. 1 / S6)."""
    return _kernel_width_figure(
        ds,
        ["ntk_change", "nngp_change"],
        analysis.kernel_change_exponents,
        lambda kernel: rf"${KERNEL_TEX[kernel]}$",
        KERNEL_CHANGE_LABEL,
        "kernel_change",
    )


@styled
def plot_kernel_error(ds: xr.Dataset) -> Figure:
    """‖Θ̂_0 − Θ‖_F/‖Θ‖_F and ‖K̂_0 − K‖_F/‖K‖_F against width (Fig. S9–S10)."""
    return _kernel_width_figure(
        ds,
        ["ntk_analytic_error", "nngp_analytic_error"],
        analysis.analytic_error_exponents,
        lambda kernel: rf"${KERNEL_TEX[kernel]}_0$ vs ${ANALYTIC_TEX[kernel]}$",
        KERNEL_ERROR_LABEL,
        "kernel_error",
    )


def _kernel_width_figure(ds, names, exponents, label_of, y_label, figure_name) -> Figure:
    """A kernel quantity (``ntk_*`` and ``nngp_*`` in ``names``) at the end of training against
    width, one panel per sub-sweep, with the fitted power law of each (``exponents(sub)``)."""
    check_width_figure(ds, names)
    fig, axes = panel_figure(ds, rows=1)
    for ax, (title, sub) in zip(axes[0], panels(ds), strict=True):
        fits = {f.quantity: f for f in exponents(sub)}
        end = analysis.final(analysis.usable_runs(sub))
        for name, fit in fits.items():
            kernel = name.split("_")[0]
            scatter_fit(ax, end[name], fit, KERNEL_COLORS[kernel], label_of(kernel))
        style_width_axis(ax, title, y_label)
    finish(fig, ds, figure_name)
    return fig


@styled
def plot_rmse_vs_width(ds: xr.Dataset) -> Figure:
    """RMSE(f_T, f^lin_T) at the end of training against width, one line per |D| (Fig. S5).

    Two panels (train, test); each dataset size gets a colour and its fitted exponent.
    """
    check_width_figure(ds, ["rmse_train", "rmse_test"])
    sizes = axis_values(ds, PANEL_AXIS)
    palette = sns.color_palette("rocket", max(len(sizes), 1) + 1)[:-1] if sizes else ["C0"]
    fig = new_figure(1, 2)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    for ax, split in zip(axes, ("train", "test"), strict=True):
        if not analysis.has_data(ds, f"rmse_{split}"):
            ax.set_axis_off()
            continue
        rmse = analysis.rmse_final(ds, split)
        for color, (value, sub) in zip(palette, by_value(ds, PANEL_AXIS), strict=True):
            fit = analysis.rmse_exponents(sub, split)[0]
            end = rmse.sel({PANEL_AXIS: value}) if value is not None else rmse
            label = rf"$|\mathcal{{D}}| = {value}$" if value is not None else "all runs"
            scatter_fit(ax, end, fit, color, label)
        style_width_axis(ax, f"{split} set", rf"RMSE$(f_T, f^{{\mathrm{{lin}}}}_T)$ {split}")
    finish(fig, ds, "rmse_vs_width")
    return fig


@styled
def plot_kernel_mc(ds: xr.Dataset) -> Figure:
    """Expected error of the mean of M empirical kernels, √(b̂² + v̂/M), against M (all seeds
    of a point pooled, `ntkpipe.analysis.montecarlo`), one line per width (Fig. S9–S10).

    Args:
        ds: the summary with ``ntk_mc_sq`` / ``nngp_mc_sq``, ``*_mc_cross`` and
            ``mc_partners`` (axes…, seed); further axes besides width must have one value.
    """
    kernels = [k for k in ("ntk", "nngp") if analysis.has_data(ds, f"{k}_mc_sq")]
    if not kernels:
        raise ValueError("the summary has no finite values of ntk_mc_sq / nngp_mc_sq")
    check_extra_axes(ds, exclude=("width", PANEL_AXIS))
    if PANEL_AXIS in ds.dims:  # the largest dataset size
        ds = ds.sel({PANEL_AXIS: ds[PANEL_AXIS].max()})
    fig = new_figure(1, len(kernels))
    axes = fig.subplots(1, len(kernels), squeeze=False)[0]
    fits = {(f.quantity, f.group.get("width")): f for f in analysis.mc_exponents(ds)}
    for ax, kernel in zip(axes, kernels, strict=True):
        curve = analysis.mc_error_curve(ds, kernel)
        curve = squeeze_other_axes(curve, keep=("width", "mc_samples"))
        widths = axis_values(curve, "width") or [None]
        palette = sns.color_palette("viridis", len(widths))
        for color, width in zip(palette, widths, strict=True):
            line = curve.sel(width=width) if width is not None else curve
            ok = np.isfinite(line.values) & (line.values > 0)
            m = line["mc_samples"].values
            fit = fits.get((f"{kernel}_mc_error", width))
            power = fit.fit if fit is not None else None
            label = f"n = {width}" if width is not None else "all runs"
            if power is not None:
                label += rf": $\propto M^{{{power.exponent:.2f}}}$"
            ax.plot(m[ok], line.values[ok], color=color, marker="o", ms=3.5, lw=1.4, label=label)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        plain_log_ticks(ax.yaxis)
        ax.set_xlabel(r"Monte Carlo samples $M$ (seeds averaged)")
        tex, exact = KERNEL_TEX[kernel], ANALYTIC_TEX[kernel]
        ax.set_ylabel(rf"$\sqrt{{E\|\overline{{{tex}}}_M - {exact}\|_F^2}} \,/\, \|{exact}\|_F$")
        legend_below(ax, title="width (fit)", ncol=2)
    finish(fig, ds, "kernel_mc")
    return fig
