"""Curves over training: losses of f and f_lin, RMSE(f, f_lin) (Fig. 3), one panel per |D|."""

from __future__ import annotations

import warnings

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.plots_common import (
    PANEL_AXIS,
    STEP_LABEL,
    axis_values,
    by_value,
    check_extra_axes,
    finish,
    hue_axis,
    panel_figure,
    panels,
    plain,
    plain_log_ticks,
    styled,
)


@styled
def plot_loss_curves(ds: xr.Dataset) -> Figure:
    """Train (top) and test (bottom) loss of f (solid) and f_lin (dashed) against step (Fig. 3).

    Args:
        ds: the summary with ``loss_train``, ``loss_test`` (axes…, model, seed, step).
    """
    return _curves(
        ds,
        [("loss_train", r"train loss $\mathcal{L}$"), ("loss_test", r"test loss $\mathcal{L}$")],
        "loss_curves",
        models=True,
    )


@styled
def plot_rmse_curves(ds: xr.Dataset) -> Figure:
    """RMSE(f_t, f^lin_t) on the train (top) and test (bottom) sets against step (Fig. 3).

    Args:
        ds: the summary with ``rmse_train``, ``rmse_test`` (axes…, seed, step).
    """
    rows = [
        ("rmse_train", r"RMSE$(f_t, f^{\mathrm{lin}}_t)$ train"),
        ("rmse_test", r"RMSE$(f_t, f^{\mathrm{lin}}_t)$ test"),
    ]
    return _curves(ds, rows, "rmse_curves", models=False)


def _curves(ds: xr.Dataset, rows, stem: str, *, models: bool) -> Figure:
    hue = hue_axis(ds)
    check_extra_axes(ds, exclude=(hue, PANEL_AXIS))
    present = [(name, label) for name, label in rows if name in ds]
    if not present:
        raise ValueError(f"the summary has none of {[n for n, _ in rows]} for {stem!r}")
    usable = analysis.usable_runs(ds)
    hues = axis_values(ds, hue)
    palette = sns.color_palette("viridis", max(len(hues), 1))
    fig, axes = panel_figure(ds, rows=len(present))
    for row, (name, label) in enumerate(present):
        for ax, (title, sub) in zip(axes[row], panels(usable), strict=True):
            for color, (_, line) in zip(palette, by_value(sub, hue), strict=True):
                _plot_curve(ax, line[name], color, models)
            ax.set_xscale("symlog", linthresh=1.0)
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            plain_log_ticks(ax.yaxis)
            ax.set_ylabel(label)
            ax.set_title(title if row == 0 else "")
            ax.set_xlabel(STEP_LABEL if row == len(present) - 1 else "")
    handles = [
        Line2D([], [], color=c, label=f"{hue} = {plain(v)}")
        for c, v in zip(palette, hues, strict=False)
    ]
    if models:
        handles += [
            Line2D([], [], color="0.3", ls="-", label=r"network $f$"),
            Line2D([], [], color="0.3", ls="--", label=r"linearized $f^{\mathrm{lin}}$"),
        ]
    if handles:
        # below the panels: never across the title, whatever the number of columns
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4))
    finish(fig, ds, stem)
    return fig


def _plot_curve(ax, da: xr.DataArray, color, models: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = da.where(np.isfinite(da)).mean("seed", skipna=True) if "seed" in da.dims else da
    steps = mean["step"].values
    if models:
        for model, style in (("net", "-"), ("lin", "--")):
            if model in mean["model"].values:
                ax.plot(steps, mean.sel(model=model).values, color=color, ls=style, lw=1.4)
    else:  # step 0: f_0 = f^lin_0 by construction, the RMSE there is float round-off
        later = steps > 0
        ax.plot(steps[later], mean.values[later], color=color, lw=1.4)
