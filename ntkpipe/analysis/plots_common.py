"""Shared parts of the figures (`ntkpipe.analysis.plots`): catalogue, style, sizes, axis helpers.

Sizes: a panel is 5.2 × 3.8 in and a figure at most two panels wide (or a 2 × 2 grid), so that the
report shows every figure at its native size with readable fonts. Legends go outside the axes
(below a panel, or right of the figure) under constrained layout, so they never cover data or
titles. Log-log panels against width carry the paper's reference slopes n^−½ (dark grey, dashed)
and n^−1 (magenta, dash-dotted) through the data at the smallest width. A panel of 5.2 in (499 px
in the report) leaves a plot area of ≥ 400 px next to its axis labels; ticks are 9.4 pt (12.5 px).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import warnings
from pathlib import Path

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.captions_beyond import BEYOND_FIGURES
from ntkpipe.analysis.captions_finite_width import FINITE_WIDTH_FIGURES

#: Figure file stem → (title, caption), in the order the report shows them.
FIGURES = {
    "loss_curves": (
        "f against f_lin over training",
        "Train and test loss of the network f (solid) and of its linearization f_lin (dashed) "
        "against the optimizer step (symmetric-log axis, so step 0 is shown), mean over seeds "
        "(cf. Fig. 3).",
    ),
    "rmse_curves": (
        "RMSE(f, f_lin) over training",
        "Root mean squared difference between the outputs of the network and of its "
        "linearization on the train and test sets, mean over seeds, from step 1 (at step 0 "
        "f_0 = f^lin_0 by construction) (cf. Fig. 3).",
    ),
    "weight_change": (
        "Relative weight change against width",
        "‖W_T − W_0‖_F/‖W_0‖_F after T steps for the input, hidden (mean over hidden layers) and "
        "output layers against the width n (log-log; one dot per seed), with the fitted power "
        "law and its exponent (95% CI) in the legend. The paper: input/output ~ n^−½, hidden "
        "~ n^−1 (Fig. 1).",
    ),
    "kernel_change": (
        "Relative kernel change against width",
        "‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F and ‖K̂_T − K̂_0‖_F/‖K̂_0‖_F against the width n (log-log; "
        "one dot per seed) with fitted exponents. The paper: between n^−1 and n^−½ "
        "(Fig. 1 / S6).",
    ),
    "rmse_vs_width": (
        "Where linearization breaks: RMSE(f_T, f_lin_T) against width",
        "RMSE between the network and its linearization at the end of training against the "
        "width n, one line per dataset size |D|, with fitted exponents. The paper: it falls "
        "with width and grows with |D| (Fig. S5).",
    ),
    "kernel_error": (
        "Empirical against analytic kernels",
        "‖Θ̂_0 − Θ‖_F/‖Θ‖_F and ‖K̂_0 − K‖_F/‖K‖_F at initialization against the width n "
        "(log-log; one dot per seed) with fitted exponents. The paper: ~ n^−½ (Fig. S9–S10).",
    ),
    "kernel_mc": (
        "Monte Carlo estimates of the kernels",
        "Error of the mean of M empirical kernels (M seeds), ‖mean_M Θ̂_0 − Θ‖_F/‖Θ‖_F (left) "
        "and the same for K̂ (right), against M (log-log), one line per width n, with the "
        "exponent fitted against M at each width. The paper: the error falls as M^−½ until the "
        "finite-width bias O(1/n) is reached (Fig. S9–S10).",
    ),
    "linearization": (
        "The network and its linearization, run by run",
        "Widest network of the sweep, first seed. (a) Outputs f_t(x) (solid) and f^lin_t(x) "
        "(dashed) of a few fixed train (blue) and test (orange) points; (b) θ_t − θ_0 of a few "
        "fixed weights, one colour per weight: the trained network f (solid) and its "
        "linearization f^lin (dashed) at every record step; (c) train (blue) and test (orange) "
        "loss of f (solid) and f^lin (dashed); (d) RMSE between f and f^lin on the test set, "
        "with f^lin evolved by the empirical Θ̂_0 (solid) and by the analytic Θ (dashed). The "
        "paper: the two agree, and Θ̂_0 is closer at finite width (Fig. 3; Fig. 4 / S2–S4 for "
        "other optimizers, losses and architectures).",
    ),
    "ensemble": (
        "Output distribution: ensemble against NTK-GP and NNGP",
        "Outputs on x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾ between two training points (black dots) at four "
        "record steps: ensemble of trained networks, mean (black line) ± 2 standard deviations "
        "(dotted); the NTK-GP of Eq. 14–15 (blue band, mean ± 2σ); readout-only training, the "
        "NNGP (Eq. S22–S23, red band), and at the last step its t → ∞ limit, the NNGP posterior "
        "of Eq. 13 (red dashed). The paper: the ensemble follows the NTK-GP (Fig. 2 / S1).",
    ),
    **BEYOND_FIGURES,
    **FINITE_WIDTH_FIGURES,
}

#: The linearization caption's panel (d) where the sweep has no analytic kernels (kernels.analytic:
#: false, e.g. conv nets, WRN): (old, new), replaced by `plots.figure_caption`.
LINEARIZATION_WITHOUT_ANALYTIC = (
    "with f^lin evolved by the empirical Θ̂_0 (solid) and by the analytic Θ (dashed). The "
    "paper: the two agree, and Θ̂_0 is closer at finite width (Fig. 3;",
    "f^lin linearized around θ_0 (the empirical Θ̂_0; no analytic Θ in this sweep). The "
    "paper: the two agree (Fig. 3;",
)

#: The caption of RMSE against width where the sweep does not vary |D| (one line, "all runs"):
#: (old, new), replaced by `plots.figure_caption`.
RMSE_VS_WIDTH_ONE_SIZE = (
    "one line per dataset size |D|",
    "one line for all runs (the sweep does not vary |D|)",
)

#: Figure stem → the experiments (keys of `claims.EXPERIMENTS`) it illustrates; the report shows
#: it in the section of the first one present in the sweep.
FIGURE_EXPERIMENTS = {
    "loss_curves": ("fig3", "fig4"),
    "rmse_curves": ("fig3", "fig4"),
    "linearization": ("fig3", "fig4"),
    "weight_change": ("fig1",),
    "kernel_change": ("fig1",),
    "rmse_vs_width": ("figS5",),
    "kernel_error": ("figS9",),
    "kernel_mc": ("figS9",),
    "ensemble": ("fig2",),
    **{stem: ("beyond",) for stem in BEYOND_FIGURES},
    **{stem: ("beyond",) for stem in FINITE_WIDTH_FIGURES},
}

STEP_LABEL = r"step $i$  (time $t = \eta\, i$)"
_WIDTH_LABEL = r"width $n$"
ROLE_COLORS = dict(zip(analysis.LAYER_ROLES, sns.color_palette("deep", 3), strict=True))
KERNEL_COLORS = dict(zip(("ntk", "nngp"), sns.color_palette("deep")[3:5], strict=True))
KERNEL_TEX = {"ntk": r"\hat\Theta", "nngp": r"\hat K"}
ANALYTIC_TEX = {"ntk": r"\Theta", "nngp": r"K"}
KERNEL_CHANGE_LABEL = (
    r"$\|\hat\Theta_T - \hat\Theta_0\|_F \,/\, \|\hat\Theta_0\|_F$  (and for $\hat K$)"
)
KERNEL_ERROR_LABEL = r"$\|\hat\Theta_0 - \Theta\|_F \,/\, \|\Theta\|_F$  (and for $\hat K$)"
PANEL_AXIS = "n_train"
_PANEL_SIZE = (5.2, 3.8)
#: Fewer widths (or Monte Carlo sample counts) than this: the figure is not drawn.
MIN_POINTS = 3
#: The paper's reference slopes on the panels against width.
REFERENCE_SLOPES = (-0.5, -1.0)
#: Colour and line style of each reference slope: told apart by both.
REFERENCE_STYLES = {-0.5: ("0.25", "--"), -1.0: ("#b5179e", "-.")}


def styled(plot):
    """Run a plot function under the house style (seaborn whitegrid, compact fonts)."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
            return plot(*args, **kwargs)

    return wrapper


def load_summary(summary: xr.Dataset | str | Path) -> xr.Dataset:
    """The summary as an in-memory Dataset: `summary` itself, or the Zarr store at that path
    (FileNotFoundError when the path does not exist)."""
    if isinstance(summary, xr.Dataset):
        return summary
    path = Path(summary)
    if not path.exists():
        raise FileNotFoundError(f"summary={str(path)!r}: no such Zarr store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.open_zarr(path).load()


GP_COLORS = {"ntkgp": sns.color_palette("deep")[0], "nngp": sns.color_palette("deep")[3]}
SPLIT_COLORS = {"train": sns.color_palette("deep")[0], "test": sns.color_palette("deep")[1]}


def largest_point(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """`ds` at the widest width and the largest n_train (when swept), and a label saying so."""
    parts = []
    for axis in ("width", PANEL_AXIS):
        if axis in ds.dims:
            value = _scalar(ds[axis].max().values)
            ds = ds.sel({axis: value})
            parts.append(f"{axis} = {value}")
    other = [a for a in analysis.sweep_axes(ds) if a in ds.dims]
    if other:
        ds = ds.isel({a: 0 for a in other})
    return ds, ", ".join(parts)


def one_run(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """The widest, largest-|D| point and its first seed with finite outputs."""
    point, label = largest_point(ds)
    finite = np.isfinite(point["fx_sample_test"]).any(
        [d for d in point["fx_sample_test"].dims if d != "seed"]
    )
    index = int(np.flatnonzero(finite.values)[0]) if finite.any() else 0
    seed = _scalar(point["seed"].values[index])
    return point.isel(seed=index), ", ".join(p for p in (label, f"seed {seed}") if p)


def band(ax, x, mean, std, color, label: str) -> None:
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    ax.fill_between(x, mean - 2 * std, mean + 2 * std, color=color, alpha=0.22, lw=0)
    ax.plot(x, mean, color=color, lw=1.3, label=label)


def squeeze_other_axes(da: xr.DataArray, keep) -> xr.DataArray:
    other = [d for d in da.dims if d not in keep]
    return da.isel({d: 0 for d in other}) if other else da


def scatter_fit(ax, da: xr.DataArray, fit: analysis.ExponentFit | None, color, label: str):
    x_b, y_b = xr.broadcast(da["width"].astype(float), da)
    x, y = x_b.values.ravel(), y_b.values.ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
    if not ok.any():
        return
    ax.scatter(x[ok], y[ok], color=color, s=16, alpha=0.6, linewidths=0)
    power = fit.fit if fit is not None else None
    if power is None:
        ax.plot([], [], color=color, marker="o", ls="", label=f"{label}: too few widths to fit")
        return
    grid = np.geomspace(x[ok].min(), x[ok].max(), 50)
    ax.plot(grid, power(grid), color=color, lw=1.6, label=f"{label}: {_exponent_tex(power)}")


def _exponent_tex(fit: analysis.PowerLawFit) -> str:
    return rf"$\propto n^{{{fit.exponent:.2f}}}$, CI [{_num(fit.ci_low)}, {_num(fit.ci_high)}]"


def plain_log_ticks(axis) -> None:
    """Log scale with plain-number tick labels (faster and easier to read than 10^k text)."""
    axis.axes.set_yscale("log", nonpositive="mask")
    axis.set_major_formatter(_LogTicks())
    axis.set_minor_formatter(_LogTicks())


class _LogTicks(ticker.Formatter):
    """Labels on a log axis: every decade; within it 2·10^k and 5·10^k when the axis spans less
    than two decades, and also 3·10^k when it spans less than one (never every minor tick:
    they would overlap)."""

    def __call__(self, x, pos=None):
        if not x > 0:
            return ""
        low, high = self.axis.get_view_interval()
        span = math.log10(high / low) if low > 0 else math.inf
        mantissa = round(x / 10 ** math.floor(math.log10(x) + 1e-9), 6)
        if mantissa == 1 or (span < 2 and mantissa in (2, 5)) or (span < 1 and mantissa == 3):
            return f"{x:g}"
        return ""


def style_width_axis(ax, title: str, ylabel: str) -> None:
    """Log-log axes against width with the reference slopes and the legend below the panel."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    plain_log_ticks(ax.yaxis)
    _reference_slopes(ax)
    ax.set_xlabel(_WIDTH_LABEL)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        legend_below(ax, title="fit (95% CI)")


def legend_below(ax, **kwargs) -> None:
    """The axes' legend under it (outside the data, clear of the title)."""
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.3),
        fontsize="small",
        title_fontsize="small",
        frameon=False,
        **kwargs,
    )


def _reference_slopes(ax, slopes=REFERENCE_SLOPES) -> None:
    """Lines ∝ n^p (p in `slopes`, styles `REFERENCE_STYLES`) through the geometric mean of the
    data at the smallest width, over the panel's width range (the paper's n^−½ and n^−1)."""
    points = [c.get_offsets() for c in ax.collections if len(c.get_offsets())]
    if not points:
        return
    xy = np.concatenate([np.asarray(p, dtype=float) for p in points])
    xy = xy[np.isfinite(xy).all(axis=1) & (xy > 0).all(axis=1)]
    if len(np.unique(xy[:, 0])) < 2:
        return
    x0 = xy[:, 0].min()
    y0 = float(np.exp(np.log(xy[xy[:, 0] == x0, 1]).mean()))
    grid = np.geomspace(x0, xy[:, 0].max(), 20)
    for slope in slopes:
        label = {-0.5: r"$n^{-1/2}$", -1.0: r"$n^{-1}$"}.get(slope, rf"$n^{{{slope:g}}}$")
        color, style = REFERENCE_STYLES.get(slope, ("0.55", ":"))
        ax.plot(grid, y0 * (grid / x0) ** slope, color=color, ls=style, lw=1.3, label=label)


def panel_figure(ds: xr.Dataset, rows: int, legend: bool = False):
    n_panels = max(len(axis_values(ds, PANEL_AXIS)), 1)
    fig = new_figure(rows, n_panels, legend=legend)
    axes = fig.subplots(rows, n_panels, squeeze=False, sharex=True)
    return fig, axes


def new_figure(rows: int, cols: int, legend: bool = False) -> Figure:
    """A figure of rows × cols panels of `_PANEL_SIZE` (plus room for a legend on the right)."""
    width, height = _PANEL_SIZE
    extra_width = 1.7 if legend else 0.2
    fig = Figure(figsize=(width * cols + extra_width, height * rows + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def finish(fig: Figure, ds: xr.Dataset, stem: str) -> None:
    """The figure's title: what it shows, T and the fixed values of further sweep axes (the
    sweep's name is the report's heading, not repeated on every figure)."""
    title = FIGURES[stem][0]
    fixed = analysis.format_group(_fixed_axes(ds))
    steps = int(ds["step"].max()) if "step" in ds.coords and ds.sizes.get("step") else None
    parts = [title]
    if steps is not None and stem not in ("kernel_error", "kernel_mc", "kernel_fluctuation"):
        parts.append(f"T = {steps} steps")
    if fixed:
        parts.append(plain(fixed))
    fig.suptitle(" · ".join(p for p in parts if p))


def panels(ds: xr.Dataset):
    """(title, sub-dataset) per value of the panel axis (one panel when it is not swept)."""
    return [
        (rf"$|\mathcal{{D}}| = {value}$" if value is not None else "", sub)
        for value, sub in by_value(ds, PANEL_AXIS)
    ]


def by_value(ds, axis):
    if axis is None or axis not in ds.dims:
        return [(None, ds)]
    return [(_scalar(v), ds.sel({axis: v})) for v in ds[axis].values]


def axis_values(ds, axis) -> list:
    if axis is None or axis not in ds.dims:
        return []
    return [_scalar(v) for v in ds[axis].values]


def hue_axis(ds: xr.Dataset) -> str | None:
    axes = [a for a in analysis.sweep_axes(ds) if a != PANEL_AXIS]
    if "width" in axes:
        return "width"
    return axes[0] if axes else None


def _extra_axes(ds: xr.Dataset, exclude) -> list[str]:
    return [a for a in analysis.sweep_axes(ds) if a not in exclude and ds.sizes[a] > 1]


def check_extra_axes(ds: xr.Dataset, exclude) -> None:
    extra = _extra_axes(ds, exclude)
    if extra:
        raise ValueError(
            f"sweep axes {extra} have several values; select one value of each "
            f"(e.g. ds.sel({extra[0]}=...)) or use make_figures, which draws one figure per "
            "combination"
        )


def check_width_figure(ds: xr.Dataset, names) -> None:
    if not analysis.is_width_sweep(ds):
        raise ValueError(
            f"this figure is against width: 'width' must be a sweep axis with ≥ 2 values; the "
            f"sweep axes are {analysis.sweep_axes(ds)}"
        )
    if not any(analysis.has_data(ds, name) for name in names):
        raise ValueError(f"the summary has no finite values of {names}")
    check_extra_axes(ds, exclude=("width", PANEL_AXIS))


def combinations(ds: xr.Dataset, free):
    """('' or '__axis~value…', sub-dataset) per combination of the sweep axes with several
    values that a figure cannot show (all but `free`); an axis of one value is fixed in every
    sub-dataset (named in the title, not in the file name)."""
    extra = _extra_axes(ds, exclude=free)
    single = {a: ds[a].values[0] for a in analysis.sweep_axes(ds) if a not in free}
    single = {a: v for a, v in single.items() if ds.sizes[a] == 1}
    for values in itertools.product(*(ds[a].values for a in extra)):
        point = dict(zip(extra, values, strict=True))
        suffix = "".join(f"__{a}~{_safe(_scalar(v))}" for a, v in point.items())
        sub = ds.sel(point).isel({a: 0 for a in single})
        sub.attrs = {**ds.attrs, "_fixed": {**single, **point}}
        yield suffix, sub


def _fixed_axes(ds: xr.Dataset) -> dict:
    return {a: _scalar(v) for a, v in ds.attrs.get("_fixed", {}).items()}


def _scalar(value):
    return value.item() if hasattr(value, "item") else value


def _num(value: float) -> str:
    return f"{value:.2f}".replace("-", "−")


def _safe(value) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(value))


def plain(text) -> str:
    """User text shown literally by matplotlib (no mathtext)."""
    return str(text).replace("$", r"\$")
