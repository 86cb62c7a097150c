"""The paper's figures drawn from a sweep summary (seaborn styles on matplotlib, SVG files).

Each ``plot_*`` function takes the summary (see `ntkpipe.analysis.aggregate`) and returns a
`matplotlib.figure.Figure` (built on the Agg canvas, without pyplot, so no global figure state
is left behind); `make_figures` writes every figure that applies to a sweep.

Layout: the width n is the hue (or the x-axis of the "against width" figures), and each dataset
size |D| = n_train gets a panel. Any further sweep axis with several values (depth, activation,
…) must be fixed before calling a ``plot_*`` function; `make_figures` draws one figure per
combination of them. Runs that diverged or are missing are left out (`analysis.usable_runs`).
The figures of one run or one ensemble (``linearization``, Fig. 3; ``ensemble``, Fig. 2) show
the widest network and the largest |D| of the sweep. `FIGURE_EXPERIMENTS` says which of the
paper's experiments (`claims.EXPERIMENTS`) each figure illustrates.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ntkpipe.analysis import aggregate as analysis

#: Figure file stem → (title, caption), in the order the report shows them.
FIGURES = {
    "loss_curves": (
        "f against f_lin over training",
        "Train and test loss of the network f (solid) and of its linearization f_lin (dashed) "
        "against the optimizer step (symmetric-log axis, so step 0 is shown), mean over seeds; "
        "colour = width n, one panel per dataset size |D| (cf. Fig. 3).",
    ),
    "rmse_curves": (
        "RMSE(f, f_lin) over training",
        "Root mean squared difference between the outputs of the network and of its "
        "linearization on the train and test sets, mean over seeds (cf. Fig. 3).",
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
        "fixed weights: the closed-form f^lin at every step (lines, Eq. 8) and the trained "
        "network at the end (dots); (c) train and test loss of f and f^lin; (d) RMSE between f "
        "and f^lin on the test set, with f^lin evolved by the empirical Θ̂_0 (solid) and by the "
        "analytic Θ (dashed). The paper: the two agree, and Θ̂_0 is closer at finite width "
        "(Fig. 3; Fig. 4 / S2–S4 for other optimizers, losses and architectures).",
    ),
    "ensemble": (
        "Output distribution: ensemble against NTK-GP and NNGP",
        "Outputs on x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾ between two training points (black dots) at four "
        "record steps: ensemble of trained networks, mean (black line) ± 2 standard deviations "
        "(dotted); the NTK-GP of Eq. 14–15 (blue band, mean ± 2σ); readout-only training, the "
        "NNGP (Eq. S22–S23, red band), and at the last step its t → ∞ limit, the NNGP posterior "
        "of Eq. 13 (red dashed). The paper: the ensemble follows the NTK-GP (Fig. 2 / S1).",
    ),
}

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
}

_STEP_LABEL = r"step $i$  (time $t = \eta\, i$)"
_WIDTH_LABEL = r"width $n$"
_ROLE_COLORS = dict(zip(analysis.LAYER_ROLES, sns.color_palette("deep", 3), strict=True))
_KERNEL_COLORS = dict(zip(("ntk", "nngp"), sns.color_palette("deep")[3:5], strict=True))
_KERNEL_TEX = {"ntk": r"\hat\Theta", "nngp": r"\hat K"}
_ANALYTIC_TEX = {"ntk": r"\Theta", "nngp": r"K"}
_KERNEL_CHANGE_LABEL = (
    r"$\|\hat\Theta_T - \hat\Theta_0\|_F \,/\, \|\hat\Theta_0\|_F$  (and for $\hat K$)"
)
_KERNEL_ERROR_LABEL = r"$\|\hat\Theta_0 - \Theta\|_F \,/\, \|\Theta\|_F$  (and for $\hat K$)"
_PANEL_AXIS = "n_train"
_PANEL_SIZE = (4.2, 3.3)


# A decorator must exist before the functions it wraps; the other helpers are at the bottom.
def _styled(plot):
    """Run a plot function under the house style (seaborn whitegrid, compact fonts)."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
            return plot(*args, **kwargs)

    return wrapper


def load_summary(summary: xr.Dataset | str | Path) -> xr.Dataset:
    """The summary as an in-memory Dataset: `summary` itself, or the Zarr store at that path.

    Raises:
        FileNotFoundError: the path does not exist.
    """
    if isinstance(summary, xr.Dataset):
        return summary
    path = Path(summary)
    if not path.exists():
        raise FileNotFoundError(f"summary={str(path)!r}: no such Zarr store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return xr.open_zarr(path).load()


@_styled
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


@_styled
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


@_styled
def plot_weight_change(ds: xr.Dataset, *, model: str = "net") -> Figure:
    """‖W_T − W_0‖_F/‖W_0‖_F per layer role against width, with fitted exponents (Fig. 1).

    Args:
        ds: the summary with ``weight_change`` (axes…, model, seed, step, layer) and the
            ``layer_role`` coordinate.
        model: "net" (the network) or "lin" (the linearized network).
    """
    _check_width_figure(ds, ["weight_change"])
    fig, axes = _panel_figure(ds, rows=1)
    for ax, (title, sub) in zip(axes[0], _panels(ds), strict=True):
        end = analysis.final(analysis.usable_runs(sub))["weight_change"].sel(model=model)
        fits = {f.label: f for f in analysis.weight_change_exponents(sub, model=model)}
        for role in analysis.LAYER_ROLES:
            if role in fits:
                per_seed = analysis.layer_role_mean(end, role)
                _scatter_fit(ax, per_seed, fits[role], _ROLE_COLORS[role], role)
        _style_width_axis(ax, title, r"$\|W_T - W_0\|_F \,/\, \|W_0\|_F$")
    _finish(fig, ds, "weight_change")
    return fig


@_styled
def plot_kernel_change(ds: xr.Dataset) -> Figure:
    """‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F and ‖K̂_T − K̂_0‖_F/‖K̂_0‖_F against width (Fig. 1 / S6)."""
    return _kernel_width_figure(
        ds,
        ["ntk_change", "nngp_change"],
        analysis.kernel_change_exponents,
        lambda kernel: rf"${_KERNEL_TEX[kernel]}$",
        _KERNEL_CHANGE_LABEL,
        "kernel_change",
    )


@_styled
def plot_kernel_error(ds: xr.Dataset) -> Figure:
    """‖Θ̂_0 − Θ‖_F/‖Θ‖_F and ‖K̂_0 − K‖_F/‖K‖_F against width (Fig. S9–S10)."""
    return _kernel_width_figure(
        ds,
        ["ntk_analytic_error", "nngp_analytic_error"],
        analysis.analytic_error_exponents,
        lambda kernel: rf"${_KERNEL_TEX[kernel]}_0$ vs ${_ANALYTIC_TEX[kernel]}$",
        _KERNEL_ERROR_LABEL,
        "kernel_error",
    )


def _kernel_width_figure(ds, names, exponents, label_of, y_label, figure_name) -> Figure:
    """A kernel quantity (``ntk_*`` and ``nngp_*`` in ``names``) at the end of training against
    width, one panel per sub-sweep, with the fitted power law of each (``exponents(sub)``)."""
    _check_width_figure(ds, names)
    fig, axes = _panel_figure(ds, rows=1)
    for ax, (title, sub) in zip(axes[0], _panels(ds), strict=True):
        fits = {f.quantity: f for f in exponents(sub)}
        end = analysis.final(analysis.usable_runs(sub))
        for name, fit in fits.items():
            kernel = name.split("_")[0]
            _scatter_fit(ax, end[name], fit, _KERNEL_COLORS[kernel], label_of(kernel))
        _style_width_axis(ax, title, y_label)
    _finish(fig, ds, figure_name)
    return fig


@_styled
def plot_rmse_vs_width(ds: xr.Dataset) -> Figure:
    """RMSE(f_T, f^lin_T) at the end of training against width, one line per |D| (Fig. S5).

    Two panels (train, test); each dataset size gets a colour and its fitted exponent.
    """
    _check_width_figure(ds, ["rmse_train", "rmse_test"])
    sizes = _axis_values(ds, _PANEL_AXIS)
    palette = sns.color_palette("rocket", max(len(sizes), 1) + 1)[:-1] if sizes else ["C0"]
    fig = _new_figure(1, 2)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    for ax, split in zip(axes, ("train", "test"), strict=True):
        if not analysis.has_data(ds, f"rmse_{split}"):
            ax.set_axis_off()
            continue
        rmse = analysis.rmse_final(ds, split)
        for color, (value, sub) in zip(palette, _by_value(ds, _PANEL_AXIS), strict=True):
            fit = analysis.rmse_exponents(sub, split)[0]
            end = rmse.sel({_PANEL_AXIS: value}) if value is not None else rmse
            label = rf"$|\mathcal{{D}}| = {value}$" if value is not None else "all runs"
            _scatter_fit(ax, end, fit, color, label)
        _style_width_axis(ax, f"{split} set", rf"RMSE$(f_T, f^{{\mathrm{{lin}}}}_T)$ {split}")
    _finish(fig, ds, "rmse_vs_width")
    return fig


@_styled
def plot_kernel_mc(ds: xr.Dataset) -> Figure:
    """Error of the mean of M empirical kernels against M, one line per width (Fig. S9–S10).

    Args:
        ds: the summary with ``ntk_mc_error`` / ``nngp_mc_error`` and ``mc_samples`` (axes…,
            seed); further axes besides width must have one value.
    """
    kernels = [k for k in ("ntk", "nngp") if analysis.has_data(ds, f"{k}_mc_error")]
    if not kernels:
        raise ValueError("the summary has no finite values of ntk_mc_error / nngp_mc_error")
    _check_extra_axes(ds, exclude=("width", _PANEL_AXIS))
    if _PANEL_AXIS in ds.dims:  # the largest dataset size
        ds = ds.sel({_PANEL_AXIS: ds[_PANEL_AXIS].max()})
    fig = _new_figure(1, len(kernels))
    axes = fig.subplots(1, len(kernels), squeeze=False)[0]
    fits = {(f.quantity, f.group.get("width")): f for f in analysis.mc_exponents(ds)}
    for ax, kernel in zip(axes, kernels, strict=True):
        curve = analysis.mc_error_curve(ds, kernel)
        curve = _squeeze_other_axes(curve, keep=("width", "mc_samples"))
        widths = _axis_values(curve, "width") or [None]
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
        _plain_log_ticks(ax.yaxis)
        ax.set_xlabel(r"Monte Carlo samples $M$ (seeds averaged)")
        tex, exact = _KERNEL_TEX[kernel], _ANALYTIC_TEX[kernel]
        ax.set_ylabel(rf"$\|\overline{{{tex}}}_M - {exact}\|_F \,/\, \|{exact}\|_F$")
        ax.legend(fontsize="small", title="width (fit)", title_fontsize="small")
    _finish(fig, ds, "kernel_mc")
    return fig


@_styled
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
    _check_extra_axes(ds, exclude=("width", _PANEL_AXIS))
    run, label = _one_run(analysis.usable_runs(ds))
    fig = _new_figure(1, 4)
    axes = fig.subplots(1, 4, squeeze=False)[0]
    _panel_outputs(axes[0], run)
    _panel_weights(axes[1], run)
    _panel_losses(axes[2], run)
    _panel_rmse(axes[3], run)
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel(_STEP_LABEL)
    _finish(fig, ds, "linearization")
    fig.suptitle(" · ".join(part for part in (fig.get_suptitle(), _plain(label)) if part))
    return fig


@_styled
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
    _check_extra_axes(ds, exclude=("width", _PANEL_AXIS))
    names = [n for n in ds.data_vars if n.startswith(("ensemble_", "ntkgp_", "nngp_"))]
    point, label = _largest_point(ds[names])
    moments = analysis.ensemble_moments(point)
    steps = point["step"].values
    chosen = sorted({int(i) for i in np.linspace(1 if len(steps) > 1 else 0, len(steps) - 1, 4)})
    fig = _new_figure(1, len(chosen))
    axes = fig.subplots(1, len(chosen), squeeze=False, sharey=True)[0]
    alpha = point["alpha"].values
    for ax, index in zip(axes, chosen, strict=True):
        at = point.isel(step=index)
        _band(ax, alpha, at["nngp_mean"], at["nngp_std"], _GP_COLORS["nngp"], "NNGP (readout only)")
        _band(ax, alpha, at["ntkgp_mean"], at["ntkgp_std"], _GP_COLORS["ntkgp"], "NTK-GP")
        mean, std = moments["mean"].isel(step=index), moments["std"].isel(step=index)
        ax.plot(alpha, mean, color="black", lw=1.6, label="ensemble mean")
        for sign in (-1, 1):
            ax.plot(alpha, mean + sign * 2 * std, color="black", lw=1.0, ls=":")
        if index == chosen[-1]:
            post, post_std = point["nngp_posterior_mean"], point["nngp_posterior_std"]
            ax.plot(alpha, post, color=_GP_COLORS["nngp"], ls="--", lw=1.2, label="NNGP posterior")
            for sign in (-1, 1):
                ax.plot(
                    alpha, post + sign * 2 * post_std, color=_GP_COLORS["nngp"], ls="--", lw=0.7
                )
        targets = [float(point["ensemble_target_2"]), float(point["ensemble_target_1"])]
        ax.scatter([0.0, 1.0], targets, color="black", s=28, zorder=5)
        ax.set_title(f"step {int(steps[index])}")
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel(r"$f_t(x(\alpha))$")
    axes[-1].legend(fontsize="small", loc="best")
    members = int(point.sizes.get("member", 0))
    _finish(fig, ds, "ensemble")
    parts = (fig.get_suptitle(), _plain(label), f"{members} members")
    fig.suptitle(" · ".join(part for part in parts if part))
    return fig


#: Figure stem → (plot function, the summary variables it needs (any one), needs a width axis).
PLOTS: dict[str, tuple[Callable[[xr.Dataset], Figure], tuple[str, ...], bool]] = {
    "loss_curves": (plot_loss_curves, ("loss_train", "loss_test"), False),
    "rmse_curves": (plot_rmse_curves, ("rmse_train", "rmse_test"), False),
    "weight_change": (plot_weight_change, ("weight_change",), True),
    "kernel_change": (plot_kernel_change, ("ntk_change", "nngp_change"), True),
    "rmse_vs_width": (plot_rmse_vs_width, ("rmse_train", "rmse_test"), True),
    "kernel_error": (plot_kernel_error, ("ntk_analytic_error", "nngp_analytic_error"), True),
    "kernel_mc": (plot_kernel_mc, ("ntk_mc_error", "nngp_mc_error"), False),
    "linearization": (plot_linearization, ("fx_sample_test",), False),
    "ensemble": (plot_ensemble, ("ensemble_fx",), False),
}


def make_figures(summary: xr.Dataset | str | Path, outdir: str | Path) -> list[Path]:
    """Write every figure that applies to the sweep as SVG into `outdir`.

    A figure is skipped when its variables are absent or all NaN, or (for the figures against
    width) when the width is not a sweep axis with ≥ 2 values. When the sweep has further axes
    with several values (beyond width and n_train), one file per combination is written, named
    ``<figure>__<axis>~<value>….svg``. SVGs carry no date and a fixed hash salt, so the same
    summary gives byte-identical files.

    Args:
        summary: the summary Dataset or the path of ``summary.zarr``.
        outdir: folder to write into (created if needed).

    Returns:
        The written paths, in `FIGURES` order (then by combination).
    """
    ds = load_summary(summary)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    combinations = [(suffix, sub, analysis.usable_runs(sub)) for suffix, sub in _combinations(ds)]
    for stem, (plot, names, needs_width) in PLOTS.items():
        for suffix, sub, usable in combinations:
            if needs_width and not analysis.is_width_sweep(sub):
                continue
            if not any(analysis.has_data(usable, name) for name in names):
                continue
            if stem == "kernel_mc" and not analysis.has_mc_samples(usable, at_least=2):
                continue
            fig = plot(sub)
            path = outdir / f"{stem}{suffix}.svg"
            with matplotlib.rc_context({"svg.hashsalt": "ntkpipe"}):
                fig.savefig(path, format="svg", metadata={"Date": None})
            paths.append(path)
    return paths


def figure_order(path: str | Path) -> tuple[int, str]:
    """Sort key that puts figure files in `FIGURES` order (unknown stems last), then by name."""
    stem = Path(path).stem.split("__")[0]
    stems = list(FIGURES)
    return (stems.index(stem) if stem in stems else len(stems), Path(path).name)


def figure_caption(path: str | Path) -> tuple[str, str]:
    """(title, caption) of a file written by `make_figures`, from its name.

    The part of the stem after ``__`` (fixed values of further sweep axes) is appended to the
    title; an unknown stem gets its name as title and an empty caption.
    """
    stem, *fixed = Path(path).stem.split("__")
    title, caption = FIGURES.get(stem, (stem.replace("_", " "), ""))
    if fixed:
        title = f"{title} ({', '.join(part.replace('~', ' = ') for part in fixed)})"
    return title, caption


# ---------------------------------------------------------------- private helpers

_GP_COLORS = {"ntkgp": sns.color_palette("deep")[0], "nngp": sns.color_palette("deep")[3]}
_SPLIT_COLORS = {"train": sns.color_palette("deep")[0], "test": sns.color_palette("deep")[1]}


def _largest_point(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """`ds` at the widest width and the largest n_train (when swept), and a label saying so."""
    parts = []
    for axis in ("width", _PANEL_AXIS):
        if axis in ds.dims:
            value = _scalar(ds[axis].max().values)
            ds = ds.sel({axis: value})
            parts.append(f"{axis} = {value}")
    other = [a for a in analysis.sweep_axes(ds) if a in ds.dims]
    if other:
        ds = ds.isel({a: 0 for a in other})
    return ds, ", ".join(parts)


def _one_run(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """The widest, largest-|D| point and its first seed with finite outputs."""
    point, label = _largest_point(ds)
    finite = np.isfinite(point["fx_sample_test"]).any(
        [d for d in point["fx_sample_test"].dims if d != "seed"]
    )
    index = int(np.flatnonzero(finite.values)[0]) if finite.any() else 0
    seed = _scalar(point["seed"].values[index])
    return point.isel(seed=index), ", ".join(p for p in (label, f"seed {seed}") if p)


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
            ax.plot(steps, lines, color=_SPLIT_COLORS[split], ls=style, lw=1.1)
    ax.legend(
        handles=[
            Line2D([], [], color=_SPLIT_COLORS["train"], label="train points"),
            Line2D([], [], color=_SPLIT_COLORS["test"], label="test points"),
            Line2D([], [], color="0.3", ls="-", label=r"$f$"),
            Line2D([], [], color="0.3", ls="--", label=r"$f^{\mathrm{lin}}$"),
        ],
        fontsize="small",
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
            ok = np.isfinite(net)
            ax.plot(steps[ok], net[ok], color=color, ls="", marker="o", ms=4, label=str(label))
    ax.set_ylabel(r"$\theta_t - \theta_0$ (trainable entry)")
    ax.legend(
        fontsize="x-small", ncol=2, title="f (dots), f^lin (dashed)", title_fontsize="x-small"
    )


def _panel_losses(ax, run: xr.Dataset) -> None:
    steps = run["step"].values
    for split in ("train", "test"):
        name = f"loss_{split}"
        if name not in run:
            continue
        for model, style in (("net", "-"), ("lin", "--")):
            if model in run["model"].values:
                values = run[name].sel(model=model).values
                ax.plot(steps, values, color=_SPLIT_COLORS[split], ls=style, lw=1.4)
    _plain_log_ticks(ax.yaxis)
    ax.set_ylabel(r"loss $\mathcal{L}$ (train blue, test orange)")
    ax.set_title("(c) loss")


def _panel_rmse(ax, run: xr.Dataset) -> None:
    steps = run["step"].values
    pairs = (("rmse_test", "-", r"$f^{\mathrm{lin}}$ with $\hat\Theta_0$"),)
    pairs += (("rmse_test_analytic", "--", r"$f^{\mathrm{lin}}$ with $\Theta$"),)
    for name, style, label in pairs:
        if analysis.has_data(run, name):
            values = run[name].values
            ok = np.isfinite(values) & (values > 0)
            ax.plot(steps[ok], values[ok], color="0.2", ls=style, lw=1.4, label=label)
    _plain_log_ticks(ax.yaxis)
    ax.set_ylabel(r"RMSE$(f_t, f^{\mathrm{lin}}_t)$ test")
    ax.set_title("(d) network against linearization")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _band(ax, x, mean, std, color, label: str) -> None:
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    ax.fill_between(x, mean - 2 * std, mean + 2 * std, color=color, alpha=0.22, lw=0)
    ax.plot(x, mean, color=color, lw=1.3, label=label)


def _squeeze_other_axes(da: xr.DataArray, keep) -> xr.DataArray:
    other = [d for d in da.dims if d not in keep]
    return da.isel({d: 0 for d in other}) if other else da


def _curves(ds: xr.Dataset, rows, stem: str, *, models: bool) -> Figure:
    hue = _hue_axis(ds)
    _check_extra_axes(ds, exclude=(hue, _PANEL_AXIS))
    present = [(name, label) for name, label in rows if name in ds]
    if not present:
        raise ValueError(f"the summary has none of {[n for n, _ in rows]} for {stem!r}")
    usable = analysis.usable_runs(ds)
    hues = _axis_values(ds, hue)
    palette = sns.color_palette("viridis", max(len(hues), 1))
    fig, axes = _panel_figure(ds, rows=len(present))
    for row, (name, label) in enumerate(present):
        for ax, (title, sub) in zip(axes[row], _panels(usable), strict=True):
            for color, (_, line) in zip(palette, _by_value(sub, hue), strict=True):
                _plot_curve(ax, line[name], color, models)
            ax.set_xscale("symlog", linthresh=1.0)
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            _plain_log_ticks(ax.yaxis)
            ax.set_ylabel(label)
            ax.set_title(title if row == 0 else "")
            ax.set_xlabel(_STEP_LABEL if row == len(present) - 1 else "")
    handles = [
        Line2D([], [], color=c, label=f"{hue} = {_plain(v)}")
        for c, v in zip(palette, hues, strict=False)
    ]
    if models:
        handles += [
            Line2D([], [], color="0.3", ls="-", label=r"network $f$"),
            Line2D([], [], color="0.3", ls="--", label=r"linearized $f^{\mathrm{lin}}$"),
        ]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", frameon=False)
    _finish(fig, ds, stem)
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
    else:
        ax.plot(steps, mean.values, color=color, lw=1.4)


def _scatter_fit(ax, da: xr.DataArray, fit: analysis.ExponentFit | None, color, label: str):
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


def _plain_log_ticks(axis) -> None:
    """Log scale with plain-number tick labels (faster and easier to read than 10^k text)."""
    axis.axes.set_yscale("log", nonpositive="mask")
    axis.set_major_formatter(_LogTicks())
    axis.set_minor_formatter(_LogTicks())


class _LogTicks(ticker.Formatter):
    """Labels on a log axis: every decade; within it 2·10^k and 5·10^k when the axis spans less
    than two decades, and every tick when it spans less than one."""

    def __call__(self, x, pos=None):
        if not x > 0:
            return ""
        low, high = self.axis.get_view_interval()
        span = math.log10(high / low) if low > 0 else math.inf
        mantissa = round(x / 10 ** math.floor(math.log10(x) + 1e-9), 6)
        if mantissa == 1 or span < 1 or (span < 2 and mantissa in (2, 5)):
            return f"{x:g}"
        return ""


def _style_width_axis(ax, title: str, ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel(_WIDTH_LABEL)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", title="fit (95% CI)", title_fontsize="small")


def _panel_figure(ds: xr.Dataset, rows: int):
    n_panels = max(len(_axis_values(ds, _PANEL_AXIS)), 1)
    fig = _new_figure(rows, n_panels)
    axes = fig.subplots(rows, n_panels, squeeze=False, sharex=True)
    return fig, axes


def _new_figure(rows: int, cols: int) -> Figure:
    width, height = _PANEL_SIZE
    fig = Figure(figsize=(width * cols + 1.8, height * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, ds: xr.Dataset, stem: str) -> None:
    title = FIGURES[stem][0]
    name = ds.attrs.get("name", "")
    fixed = analysis.format_group(_fixed_axes(ds))
    steps = int(ds["step"].max()) if "step" in ds.coords and ds.sizes.get("step") else None
    parts = [_plain(name), title]
    if steps is not None and stem not in ("kernel_error", "kernel_mc"):
        parts.append(f"T = {steps} steps")
    if fixed:
        parts.append(_plain(fixed))
    fig.suptitle(" · ".join(p for p in parts if p))


def _panels(ds: xr.Dataset):
    """(title, sub-dataset) per value of the panel axis (one panel when it is not swept)."""
    return [
        (rf"$|\mathcal{{D}}| = {value}$" if value is not None else "", sub)
        for value, sub in _by_value(ds, _PANEL_AXIS)
    ]


def _by_value(ds, axis):
    if axis is None or axis not in ds.dims:
        return [(None, ds)]
    return [(_scalar(v), ds.sel({axis: v})) for v in ds[axis].values]


def _axis_values(ds, axis) -> list:
    if axis is None or axis not in ds.dims:
        return []
    return [_scalar(v) for v in ds[axis].values]


def _hue_axis(ds: xr.Dataset) -> str | None:
    axes = [a for a in analysis.sweep_axes(ds) if a != _PANEL_AXIS]
    if "width" in axes:
        return "width"
    return axes[0] if axes else None


def _extra_axes(ds: xr.Dataset, exclude) -> list[str]:
    return [a for a in analysis.sweep_axes(ds) if a not in exclude and ds.sizes[a] > 1]


def _check_extra_axes(ds: xr.Dataset, exclude) -> None:
    extra = _extra_axes(ds, exclude)
    if extra:
        raise ValueError(
            f"sweep axes {extra} have several values; select one value of each "
            f"(e.g. ds.sel({extra[0]}=...)) or use make_figures, which draws one figure per "
            "combination"
        )


def _check_width_figure(ds: xr.Dataset, names) -> None:
    if not analysis.is_width_sweep(ds):
        raise ValueError(
            f"this figure is against width: 'width' must be a sweep axis with ≥ 2 values; the "
            f"sweep axes are {analysis.sweep_axes(ds)}"
        )
    if not any(analysis.has_data(ds, name) for name in names):
        raise ValueError(f"the summary has no finite values of {names}")
    _check_extra_axes(ds, exclude=("width", _PANEL_AXIS))


def _combinations(ds: xr.Dataset):
    """('' or '__axis~value…', sub-dataset) per combination of the further sweep axes."""
    extra = _extra_axes(ds, exclude=("width", _PANEL_AXIS))
    if "width" not in analysis.sweep_axes(ds):
        extra = _extra_axes(ds, exclude=(_hue_axis(ds), _PANEL_AXIS))
    for values in itertools.product(*(ds[a].values for a in extra)):
        point = dict(zip(extra, values, strict=True))
        suffix = "".join(f"__{a}~{_safe(_scalar(v))}" for a, v in point.items())
        sub = ds.sel(point)
        sub.attrs = {**ds.attrs, "_fixed": point}
        yield suffix, sub


def _fixed_axes(ds: xr.Dataset) -> dict:
    return {a: _scalar(v) for a, v in ds.attrs.get("_fixed", {}).items()}


def _scalar(value):
    return value.item() if hasattr(value, "item") else value


def _num(value: float) -> str:
    return f"{value:.2f}".replace("-", "−")


def _safe(value) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(value))


def _plain(text) -> str:
    """User text shown literally by matplotlib (no mathtext)."""
    return str(text).replace("$", r"\$")
