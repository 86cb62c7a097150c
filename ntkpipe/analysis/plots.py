"""The paper's figures drawn from a sweep summary (seaborn styles on matplotlib; SVG, PNG, PDF).

Each ``plot_*`` function takes the summary (see `ntkpipe.analysis.aggregate`) and returns a
`matplotlib.figure.Figure` (built on the Agg canvas, without pyplot, so no global figure state
is left behind); `make_figures` writes every figure that applies to a sweep, and
`figure_notes` says, in one line each, which figures a sweep cannot support and why.

The figures live by family: `plots_curves` (over training), `plots_width` (against width),
`plots_run` (one run, one ensemble); `plots_common` holds the catalogue (`FIGURES`), the
house style and the helpers. Layout: the width n is the hue (or the x-axis of the "against
width" figures), and each dataset size |D| = n_train gets a panel. Any sweep axis a figure
cannot show (for the curves: all but the hue and n_train; for the others: all but width and
n_train) gets one figure per value, so every set of sweep axes works: no width axis, one seed,
one run. Runs that diverged or are missing are left out (`analysis.usable_runs`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import matplotlib
import xarray as xr
from matplotlib.figure import Figure

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis import finite_width
from ntkpipe.analysis.plots_beyond import (
    LR_AXIS,
    plot_lr_phase,
    plot_rmse_vs_lr_factor,
    plot_sharpness_curves,
)
from ntkpipe.analysis.plots_common import (
    FIGURE_EXPERIMENTS,
    FIGURES,
    LINEARIZATION_WITHOUT_ANALYTIC,
    MIN_POINTS,
    PANEL_AXIS,
    RMSE_VS_WIDTH_ONE_SIZE,
    combinations,
    hue_axis,
    load_summary,
)
from ntkpipe.analysis.plots_curves import plot_loss_curves, plot_rmse_curves
from ntkpipe.analysis.plots_fluctuation import plot_kernel_fluctuation
from ntkpipe.analysis.plots_run import plot_ensemble, plot_linearization
from ntkpipe.analysis.plots_width import (
    plot_kernel_change,
    plot_kernel_error,
    plot_kernel_mc,
    plot_rmse_vs_width,
    plot_weight_change,
)

__all__ = [
    "FIGURES",
    "FIGURE_EXPERIMENTS",
    "FORMATS",
    "PLOTS",
    "figure_caption",
    "figure_notes",
    "figure_order",
    "load_summary",
    "make_figures",
    "plot_ensemble",
    "plot_kernel_change",
    "plot_kernel_error",
    "plot_kernel_fluctuation",
    "plot_kernel_mc",
    "plot_linearization",
    "plot_lr_phase",
    "plot_rmse_vs_lr_factor",
    "plot_sharpness_curves",
    "plot_loss_curves",
    "plot_rmse_curves",
    "plot_rmse_vs_width",
    "plot_weight_change",
]

#: File formats written for every figure: SVG for the report, PNG and PDF for papers.
FORMATS = ("svg", "png", "pdf")
_SAVE = {
    "svg": {"metadata": {"Date": None}},
    "png": {"dpi": 200, "metadata": {"Software": None}},
    "pdf": {"metadata": {"CreationDate": None, "ModDate": None}},
}


_NO_DATA = "no data"


class Plot(NamedTuple):
    """A figure: its function, the summary variables it needs (any one), whether it is drawn
    against width, and the sweep axes it can show (the rest get one figure per value)."""

    function: Callable[[xr.Dataset], Figure]
    names: tuple[str, ...]
    needs_width: bool
    free: str  # "hue": the hue axis and n_train; "width": width and n_train; "lr": width and
    # lr_factor (the figures beyond the paper, drawn only for a sweep over lr_factor);
    # "depth_width": depth and width (the kernel fluctuation against β)


#: Figure stem → Plot, in the order of `FIGURES`.
PLOTS: dict[str, Plot] = {
    "loss_curves": Plot(plot_loss_curves, ("loss_train", "loss_test"), False, "hue"),
    "rmse_curves": Plot(plot_rmse_curves, ("rmse_train", "rmse_test"), False, "hue"),
    "weight_change": Plot(plot_weight_change, ("weight_change",), True, "width"),
    "kernel_change": Plot(plot_kernel_change, ("ntk_change", "nngp_change"), True, "width"),
    "rmse_vs_width": Plot(plot_rmse_vs_width, ("rmse_train", "rmse_test"), True, "width"),
    "kernel_error": Plot(
        plot_kernel_error, ("ntk_analytic_error", "nngp_analytic_error"), True, "width"
    ),
    "kernel_mc": Plot(plot_kernel_mc, ("ntk_mc_sq", "nngp_mc_sq"), False, "width"),
    "linearization": Plot(plot_linearization, ("fx_sample_test",), False, "width"),
    "ensemble": Plot(plot_ensemble, ("ensemble_fx",), False, "width"),
    "lr_phase": Plot(plot_lr_phase, ("learning_rate",), False, "lr"),
    "sharpness_curves": Plot(plot_sharpness_curves, ("sharpness",), False, "lr"),
    "rmse_vs_lr_factor": Plot(plot_rmse_vs_lr_factor, ("rmse_test",), False, "lr"),
    "kernel_fluctuation": Plot(plot_kernel_fluctuation, ("ntk_diag_init",), False, "depth_width"),
}


def make_figures(
    summary: xr.Dataset | str | Path, outdir: str | Path, *, formats=FORMATS, workers: int = 1
) -> list[Path]:
    """Write every figure that applies to the sweep into `outdir`, as SVG, PNG and PDF.

    A figure is skipped when its variables are absent or all NaN, or when it would be
    degenerate (`figure_notes` says why): the figures against width need ≥ `MIN_POINTS`
    widths, the Monte Carlo figure ≥ `MIN_POINTS` seeds at a sweep point. Sweep axes a figure cannot
    show get one file per value, named ``<figure>__<axis>~<value>….svg``. The files carry no
    date (and SVGs a fixed hash salt), so the same summary gives byte-identical files.

    Args:
        summary: the summary Dataset or the path of ``summary.zarr``.
        outdir: folder to write into (created if needed).
        formats: the file formats to write, among `FORMATS` (SVG always).
        workers: processes drawing the figures at once (forked from this one, Linux only;
            elsewhere one). Each figure is drawn and saved in all its formats by one process,
            as with one, so the files are the same bytes; saving is most of the work (three
            formats, each drawn twice for its tight bounding box), so two workers nearly halve
            the figures job (benchmarks/README.md, "The first experience").

    Returns:
        The written SVG paths (the PNG and PDF lie next to them), in `FIGURES` order, then by
        combination.
    """
    ds = load_summary(summary)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    drawings = [
        (plot, sub, outdir / f"{stem}{suffix}")
        for stem, plot in PLOTS.items()
        for suffix, sub in combinations(ds, _free_axes(ds, plot))
        if _skip_reason(stem, plot, sub) is None
    ]
    fmts = ("svg", *(f for f in formats if f != "svg"))
    _in_processes(functools.partial(_draw, fmts=fmts), drawings, workers)
    return [base.with_name(base.name + ".svg") for _, _, base in drawings]


def _draw(drawing, fmts) -> None:
    """Draws one figure and saves it in every format, in this order (one figure object)."""
    plot, sub, base = drawing
    fig = plot.function(sub)
    for fmt in fmts:
        with matplotlib.rc_context({"svg.hashsalt": "ntkpipe"}):
            # tight: the legends below the panels are part of the figure
            fig.savefig(
                base.with_name(f"{base.name}.{fmt}"), format=fmt, bbox_inches="tight", **_SAVE[fmt]
            )


def _in_processes(function: Callable, items: list, workers: int) -> None:
    """``function(item)`` for every item, in ``workers`` forked processes (the imports are
    inherited; the items are pickled: small subsets of the summary); in this process with one
    worker or one item, or off Linux (fork is unsafe with macOS frameworks)."""
    workers = min(workers, len(items))
    if workers <= 1 or not sys.platform.startswith("linux"):
        for item in items:
            function(item)
        return
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(function, items))  # raises the first failure of a worker


def figure_notes(summary: xr.Dataset | str | Path) -> dict[str, str]:
    """{figure stem: one line saying why it is not drawn} for the figures whose data the sweep
    has but which would be degenerate (too few widths or seeds), e.g. for the report."""
    ds = load_summary(summary)
    notes = {}
    for stem, plot in PLOTS.items():
        reasons = {
            reason
            for _, sub in combinations(ds, _free_axes(ds, plot))
            if (reason := _skip_reason(stem, plot, sub)) not in (None, _NO_DATA)
        }
        if reasons:
            notes[stem] = sorted(reasons)[0]
    return notes


def figure_order(path: str | Path) -> tuple[int, str]:
    """Sort key that puts figure files in `FIGURES` order (unknown stems last), then by name."""
    stem = Path(path).stem.split("__")[0]
    stems = list(FIGURES)
    return (stems.index(stem) if stem in stems else len(stems), Path(path).name)


def figure_caption(path: str | Path, ds: xr.Dataset | None = None) -> tuple[str, str]:
    """(title, caption) of a file written by `make_figures`, from its name.

    The part of the stem after ``__`` (fixed values of further sweep axes) is appended to the
    title; an unknown stem gets its name as title and an empty caption. Given the summary, the
    curves' captions say what their colours and panels are where the sweep has them (a colour
    per width, a panel per dataset size) and nothing where it has not, and the linearization's
    caption names the analytic Θ only where the sweep has it, and RMSE against width speaks of
    one line per |D| only where |D| is swept.
    """
    stem, *fixed = Path(path).stem.split("__")
    title, caption = FIGURES.get(stem, (stem.replace("_", " "), ""))
    if fixed:
        title = f"{title} ({', '.join(part.replace('~', ' = ') for part in fixed)})"
    if ds is not None and stem in ("loss_curves", "rmse_curves"):
        caption = f"{caption} {_curve_encoding(ds)}".strip()
    if (
        ds is not None
        and stem == "linearization"
        and not analysis.has_data(ds, "rmse_test_analytic")
    ):
        caption = caption.replace(*LINEARIZATION_WITHOUT_ANALYTIC)  # panel (d) has no Θ line
    if ds is not None and stem == "rmse_vs_width" and PANEL_AXIS not in ds.dims:
        caption = caption.replace(*RMSE_VS_WIDTH_ONE_SIZE)  # one line, labelled "all runs"
    return title, caption


def _curve_encoding(ds: xr.Dataset) -> str:
    """What colour and panels of the curves figures stand for in this sweep."""
    axes = analysis.sweep_axes(ds)
    parts = []
    hue = hue_axis(ds)
    if hue is not None and ds.sizes.get(hue, 1) > 1:
        parts.append(f"Colour: {'the width n' if hue == 'width' else hue}.")
    if PANEL_AXIS in axes and ds.sizes[PANEL_AXIS] > 1:
        parts.append("One panel per dataset size |D|.")
    return " ".join(parts)


def _free_axes(ds: xr.Dataset, plot: Plot) -> tuple:
    if plot.free == "lr":
        return ("width", LR_AXIS)
    if plot.free == "hue":
        return (hue_axis(ds), PANEL_AXIS)
    if plot.free == "depth_width":
        return ("depth", "width")
    return ("width", PANEL_AXIS)


def _skip_reason(stem: str, plot: Plot, sub: xr.Dataset) -> str | None:
    """Why `stem` is not drawn for `sub` ("no data …" when it has nothing to show), or None."""
    if plot.free == "lr":  # every run counts here, catapult and divergent ones included
        lr_sweep = LR_AXIS in analysis.sweep_axes(sub) and sub.sizes[LR_AXIS] >= 2
        has = lr_sweep and any(analysis.has_data(sub, name) for name in plot.names)
        return None if has and (stem != "lr_phase" or "regime" in sub) else _NO_DATA
    usable = analysis.usable_runs(sub)
    if not any(analysis.has_data(usable, name) for name in plot.names):
        return _NO_DATA
    title = FIGURES[stem][0]
    if plot.needs_width:
        widths = int(sub.sizes["width"]) if "width" in analysis.sweep_axes(sub) else 0
        if widths < MIN_POINTS:
            return (
                f"{title}: not drawn, the sweep has {widths or 'no'} width"
                f"{'' if widths == 1 else 's'} (an exponent against width needs ≥ {MIN_POINTS})."
            )
    if stem == "kernel_fluctuation" and not finite_width.has_depth_width(usable):
        return f"{title}: not drawn, it needs depth and width swept (≥ 2 values each)."
    if stem == "kernel_mc" and not analysis.has_mc_samples(usable, at_least=MIN_POINTS):
        return (
            f"{title}: not drawn, fewer than {MIN_POINTS} seeds per job (seeds.per_job) to "
            "average (an exponent against M needs ≥ 3)."
        )
    return None
