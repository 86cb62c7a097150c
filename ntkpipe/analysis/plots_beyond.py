"""Beyond the paper: the learning rate against η_crit (sweeps with a ``lr_factor`` axis).

- :func:`plot_lr_phase`: the phase diagram, width × lr_factor, each run coloured by its regime
  (lazy, catapult, divergent; :mod:`ntkpipe.analysis.regime`), with the boundaries between
  regimes drawn at the midpoints between neighbouring factors of different regimes;
- :func:`plot_sharpness_curves`: the sharpness λ_max(Θ̂_t) of f against step, one colour per
  lr_factor, with the linear stability line 2·n·k/η of each run (dashed, same colour);
- :func:`plot_rmse_vs_lr_factor`: RMSE(f_T, f^lin_T) at the end of training against lr_factor,
  one line per width; runs whose f^lin diverged are marked at the top edge.

Every run is drawn, whatever its status (catapult and divergent runs are the point here).
"""

from __future__ import annotations

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ntkpipe.analysis.plots_common import (
    STEP_LABEL,
    finish,
    new_figure,
    plain_log_ticks,
    styled,
)
from ntkpipe.analysis.regime import REGIMES, STABILITY_EDGE, as_text

__all__ = ["plot_lr_phase", "plot_sharpness_curves", "plot_rmse_vs_lr_factor", "LR_AXIS"]

LR_AXIS = "lr_factor"
_REGIME_COLORS = dict(zip(REGIMES, ("#4c72b0", "#dd8452", "#c44e52"), strict=True))
_FACTOR_LABEL = r"learning rate factor $\eta / \eta_{\mathrm{crit}}$"


@styled
def plot_lr_phase(ds: xr.Dataset) -> Figure:
    """Width (x, log) × lr_factor (y, log), each (width, factor) coloured by the regime of
    most of its seeds, with the boundaries between regimes.

    Args:
        ds: the summary with ``regime`` (width, lr_factor, seed) for one value of every other
            axis.
    """
    fig = new_figure(1, 1, legend=True)
    ax = fig.subplots()
    widths, factors = _values(ds, "width"), _values(ds, LR_AXIS)
    majority = _majority_regime(ds)  # [width, factor]
    for regime, color in _REGIME_COLORS.items():
        wi, fi = np.nonzero(majority == regime)
        ax.scatter(widths[wi], factors[fi], s=90, color=color, label=regime, zorder=3)
    for lower, upper in (("lazy", "catapult"), ("catapult", "divergent")):
        edge = [_boundary(majority[i], factors, lower, upper) for i in range(len(widths))]
        ax.plot(widths, edge, color="0.2", lw=1.2, ls="--" if lower == "lazy" else ":")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xticks(widths, [str(int(w)) for w in widths])
    ax.set_xlabel(r"width $n$")
    ax.set_ylabel(_FACTOR_LABEL)
    handles = [Line2D([], [], marker="o", ls="", color=c, label=r) for r, c in
               _REGIME_COLORS.items()]  # fmt: skip
    handles += [
        Line2D([], [], color="0.2", ls="--", label="lazy | catapult"),
        Line2D([], [], color="0.2", ls=":", label="catapult | divergent"),
        Line2D([], [], color="0.5", label=r"$\eta = \eta_{\mathrm{crit}}$"),
    ]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
    finish(fig, ds, "lr_phase")
    return fig


@styled
def plot_sharpness_curves(ds: xr.Dataset) -> Figure:
    """λ_max(Θ̂_t) of f against step at the widest width, first seed, one colour per factor,
    with each run's 2·n·k/η (dashed).

    Args:
        ds: the summary with ``sharpness`` (width?, lr_factor, model, seed, step), η in
            ``learning_rate`` and the train-set size and outputs in its attributes.
    """
    fig = new_figure(1, 1, legend=True)
    ax = fig.subplots()
    sub = ds.isel(width=-1) if "width" in ds.dims else ds
    factors = _values(sub, LR_AXIS)
    colors = sns.color_palette("viridis", len(factors))
    n_k = n_times_k(ds)
    edges = []
    for factor, color in zip(factors, colors, strict=True):
        run = sub.sel({LR_AXIS: factor}).isel(seed=0)
        sharp = run["sharpness"].sel(model="net") if "model" in run.dims else run["sharpness"]
        steps = run["step"].values
        ax.plot(steps, sharp.values, color=color, label=f"{factor:g}")
        eta = float(run["learning_rate"])
        if np.isfinite(eta) and n_k:
            edges.append(STABILITY_EDGE * n_k / eta)
            ax.axhline(edges[-1], color=color, ls="--", lw=0.9)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set_yscale("log")
    # diverging runs leave for 10^15: keep the lines of every run and the converging curves
    start = sub["sharpness"].isel(step=0).values
    finite = np.asarray([*edges, *start.ravel()], dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size:
        ax.set_ylim(finite.min() / 4, finite.max() * 4)
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(r"sharpness $\lambda_{\max}(\hat\Theta_t)$")
    ax.legend(title=r"$\eta/\eta_{\mathrm{crit}}$ (dashed: $2nk/\eta$)", loc="center left",
              bbox_to_anchor=(1.02, 0.5), fontsize=9)  # fmt: skip
    finish(fig, sub, "sharpness_curves")
    return fig


@styled
def plot_rmse_vs_lr_factor(ds: xr.Dataset) -> Figure:
    """RMSE(f_T, f^lin_T) on the test set (mean over seeds) against lr_factor, one line per
    width; × at the top edge where f^lin diverged (no finite RMSE).

    Args:
        ds: the summary with ``rmse_test`` (width?, lr_factor, seed, step).
    """
    fig = new_figure(1, 1, legend=True)
    ax = fig.subplots()
    factors = _values(ds, LR_AXIS)
    widths = _values(ds, "width") if "width" in ds.dims else [None]
    colors = sns.color_palette("crest", len(widths))
    end = ds["rmse_test"].isel(step=-1)
    finite_max = float(np.nanmax(np.where(np.isfinite(end.values), end.values, np.nan)))
    for width, color in zip(widths, colors, strict=True):
        curve = end.sel(width=width) if width is not None else end
        values = curve.mean("seed", skipna=False).values
        ok = np.isfinite(values)
        label = f"n = {int(width)}" if width is not None else "f − f_lin"
        ax.plot(factors[ok], values[ok], marker="o", color=color, label=label)
        ax.scatter(factors[~ok], np.full((~ok).sum(), finite_max * 3), marker="x", color=color)
    ax.axvline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel(_FACTOR_LABEL)
    ax.set_ylabel(r"RMSE$(f_T, f^{\mathrm{lin}}_T)$ test")
    ax.legend(title="× : f_lin diverged", loc="center left", bbox_to_anchor=(1.02, 0.5),
              fontsize=9)  # fmt: skip
    finish(fig, ds, "rmse_vs_lr_factor")
    return fig


def n_times_k(ds: xr.Dataset) -> int | None:
    """n·k of the figure's runs: n_train (a fixed setting, or the value this figure is drawn
    for) times the outputs k (from ``data.classes`` and ``training.loss``)."""
    fixed = ds.attrs.get("_fixed", {})
    n = fixed.get("n_train", ds.attrs.get("data.n_train"))
    classes = ds.attrs.get("data.classes")
    loss = ds.attrs.get("training.loss", "mse")
    if n is None or classes is None:
        return None
    k = 1 if len(classes) == 2 and loss == "mse" else len(classes)
    return int(n) * k


def _values(ds: xr.Dataset, axis: str) -> np.ndarray:
    return np.asarray(ds[axis].values, dtype=float)


def _majority_regime(ds: xr.Dataset) -> np.ndarray:
    """[width, lr_factor] of str: the regime most seeds of the point have ("" if none)."""
    regime = as_text(ds["regime"].transpose("width", LR_AXIS, "seed"))
    out = np.full(regime.shape[:2], "", dtype=object)
    for index in np.ndindex(*regime.shape[:2]):
        found = [r for r in regime[index] if r in REGIMES]
        if found:
            out[index] = max(REGIMES, key=found.count)
    return out


def _boundary(regimes_at_width, factors, lower: str, upper: str) -> float:
    """The geometric midpoint between the largest factor of regime ≤ `lower` and the next
    factor of regime ≥ `upper` (NaN when the width has no such pair)."""
    rank = {r: i for i, r in enumerate(REGIMES)}
    below = [i for i, r in enumerate(regimes_at_width) if r in rank and rank[r] <= rank[lower]]
    above = [i for i, r in enumerate(regimes_at_width) if r in rank and rank[r] >= rank[upper]]
    if not below or not above or max(below) + 1 not in above:
        return np.nan
    i = max(below)
    return float(np.sqrt(factors[i] * factors[i + 1]))
