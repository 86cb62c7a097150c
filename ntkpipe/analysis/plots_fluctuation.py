"""Figures beyond the paper: the NTK's fluctuation against β = Σ_l 1/n_l (Hanin & Nica)."""

from __future__ import annotations

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from ntkpipe.analysis import finite_width
from ntkpipe.analysis.plots_common import finish, legend_below, new_figure, styled


@styled
def plot_kernel_fluctuation(ds: xr.Dataset) -> Figure:
    """R = Var Θ̂₀(x, x)/(E Θ̂₀(x, x))² over seeds against β, one colour per depth, with
    Hanin & Nica's e^{5β} − 1 and the fitted e^{cβ} − 1 (c and its bootstrap CI in the legend).

    Args:
        ds: the summary with ``ntk_diag_init`` (depth, width, seed, sample) and ``beta``.
    """
    if not finite_width.has_depth_width(ds):
        raise ValueError(
            "the fluctuation figure needs depth and width swept (≥ 2 values each) and "
            "ntk_diag_init (kernels.initial: true, an fc model)"
        )
    fig = new_figure(1, 1)
    ax = fig.subplots(1, 1)
    ratio = finite_width.kernel_fluctuation(ds)
    beta = ds["beta"].broadcast_like(ratio)
    depths = [int(d) for d in ds["depth"].values]
    colors = dict(zip(depths, sns.color_palette("viridis", len(depths)), strict=True))
    for depth in depths:
        x = beta.sel(depth=depth).values.ravel()
        y = ratio.sel(depth=depth).values.ravel()
        order = np.argsort(x)
        ax.plot(x[order], y[order], "o-", color=colors[depth], label=f"depth L = {depth}")
    finite = beta.values[np.isfinite(ratio.values)]
    grid = np.geomspace(finite.min(), finite.max(), 100) if finite.size else np.array([])
    if grid.size:
        ax.plot(grid, np.expm1(finite_width.HANIN_NICA_CONSTANT * grid), "k--",
                label=r"Hanin–Nica $e^{5\beta} - 1$")  # fmt: skip
        fits = finite_width.fit_hanin_nica(ds)
        if len(fits) == 1:
            fit = fits[0]
            label = (
                rf"fit $e^{{c\beta}} - 1$, $c = {fit.constant:.2f}$ "
                rf"$[{fit.ci_low:.2f}, {fit.ci_high:.2f}]$"
            )
            ax.plot(grid, np.expm1(fit.constant * grid), color="0.5", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\beta = \sum_l 1/n_l$ (depth / width)")
    ax.set_ylabel(r"$\mathrm{Var}\,\hat\Theta_0(x,x) \,/\, (\mathrm{E}\,\hat\Theta_0(x,x))^2$")
    legend_below(ax)
    finish(fig, ds, "kernel_fluctuation")
    return fig
