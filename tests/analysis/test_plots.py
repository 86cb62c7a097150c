"""Tests of analysis.plots: figures show the summary's data and fits; make_figures writes SVGs."""

import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis import plots
from tests.summary_fixture import add_ensemble, add_linearization, add_mc, make_summary

FLAGGED = [
    ({"width": 128, "n_train": 32}, 1, "missing"),
    ({"width": 64, "n_train": 128}, 0, "diverged"),
]


@pytest.fixture(scope="module")
def summary():
    """A summary with the data of every figure (Fig. 1, 2, 3, S5, S9–S10)."""
    return add_ensemble(add_mc(add_linearization(make_summary(statuses=FLAGGED))))


@pytest.fixture(scope="module")
def written(summary, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("figures")
    return outdir, plots.make_figures(summary, outdir)  # SVG, PNG, PDF


def _line(ax, prefix):
    (line,) = [line for line in ax.get_lines() if line.get_label().startswith(prefix)]
    return line


# Figures the width × n_train summary cannot show, tested on their own data: the learning-rate
# figures need a sweep over lr_factor (test_plots_beyond.py), the kernel fluctuation a depth axis
# (test_finite_width.py).
PAPER_PLOTS = [stem for stem, plot in plots.PLOTS.items() if plot.free not in ("lr", "depth_width")]


@pytest.mark.parametrize("stem", PAPER_PLOTS)
def test_every_plot_function_returns_a_figure_with_data(summary, stem):
    plot = plots.PLOTS[stem][0]
    fig = plot(summary)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes and all(ax.get_lines() or ax.collections for ax in axes)
    assert "digits-binary" not in fig.get_suptitle()  # the report's heading, not every title
    assert all(ax.get_ylabel() for ax in axes)


def test_loss_curves_show_seed_means_of_f_and_f_lin_without_diverged_runs(summary):
    fig = plots.plot_loss_curves(summary)
    grid = np.array(fig.axes).reshape(2, 2)  # rows: train, test; columns: n_train 32, 128
    assert len(grid[0, 0].get_lines()) == 5 * 2  # widths × (net, lin)
    net_64 = grid[0, 0].get_lines()[0]
    expected = summary["loss_train"].sel(width=64, n_train=32, model="net").mean("seed")
    np.testing.assert_allclose(net_64.get_ydata(), expected.values)
    assert net_64.get_linestyle() == "-" and grid[0, 0].get_lines()[1].get_linestyle() == "--"
    diverged_width = grid[0, 1].get_lines()[0]  # width 64, n_train 128: one seed diverged
    assert np.isfinite(diverged_width.get_ydata()).all()
    kept = summary["loss_train"].sel(width=64, n_train=128, model="net", seed=1)
    np.testing.assert_allclose(diverged_width.get_ydata(), kept.values)
    assert grid[0, 0].get_xscale() == "symlog" and grid[0, 0].get_yscale() == "log"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "width = 1024" in legend and any("linearized" in t for t in legend)


def test_weight_change_lines_are_the_fitted_power_laws(summary):
    fig = plots.plot_weight_change(summary)
    assert len(fig.axes) == 2
    for ax, n_train in zip(fig.axes, (32, 128), strict=True):
        fits = analysis.weight_change_exponents(summary.sel(n_train=n_train))
        for fit in fits:
            line = _line(ax, fit.label)
            x, y = line.get_xdata(), line.get_ydata()
            slope = np.polyfit(np.log(x), np.log(y), 1)[0]
            assert slope == pytest.approx(fit.fit.exponent, rel=1e-9)
            assert f"{fit.fit.exponent:.2f}" in line.get_label()
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    hidden = _line(fig.axes[0], "hidden")
    assert "-1.0" in hidden.get_label() or "-0.9" in hidden.get_label()


def test_rmse_vs_width_has_one_line_per_dataset_size(summary):
    fig = plots.plot_rmse_vs_width(summary)
    test_ax = fig.axes[1]
    labels = [line.get_label() for line in test_ax.get_lines()]
    references = [label for label in labels if label.startswith("$n^")]
    assert references == ["$n^{-1/2}$", "$n^{-1}$"]  # the paper's slopes, for the eye
    labels = [label for label in labels if label not in references]
    assert len(labels) == 2 and "32" in labels[0] and "128" in labels[1]
    (fit,) = [f for f in analysis.rmse_exponents(summary, "test") if f.group == {"n_train": 128}]
    assert f"{fit.fit.exponent:.2f}" in labels[1]


def test_plot_functions_reject_data_they_cannot_draw(summary):
    with pytest.raises(ValueError, match="'width' must be a sweep axis"):
        plots.plot_weight_change(summary.isel(width=[0]))
    wide = make_summary(widths=(64, 128, 256), extra_axes={"depth": [1, 3]}, depth=1)
    with pytest.raises(ValueError, match=r"\['depth'\] have several values"):
        plots.plot_kernel_change(wide)
    with pytest.raises(ValueError, match="no finite values"):
        plots.plot_kernel_error(
            summary.assign(ntk_analytic_error=summary.ntk_analytic_error * np.nan).drop_vars(
                "nngp_analytic_error"
            )
        )


def test_make_figures_writes_every_applicable_figure_as_svg(written):
    outdir, paths = written
    # two seeds per job: too few Monte Carlo sample counts for kernel_mc
    expected = [s for s in plots.FIGURES if s in PAPER_PLOTS and s != "kernel_mc"]
    assert [p.name for p in paths] == [f"{s}.svg" for s in expected]
    for path in paths:
        assert path.with_suffix(".png").stat().st_size > 10_000
        assert path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
        root = ET.parse(path).getroot()
        assert root.tag.endswith("svg") and path.stat().st_size > 10_000
        assert b"<dc:date>" not in path.read_bytes()


def test_svg_files_are_byte_identical_for_the_same_summary(summary, written, tmp_path):
    outdir, _ = written
    fig = plots.plot_kernel_error(summary)
    with matplotlib.rc_context({"svg.hashsalt": "ntkpipe"}):
        fig.savefig(
            tmp_path / "again.svg", format="svg", bbox_inches="tight", metadata={"Date": None}
        )
    assert (tmp_path / "again.svg").read_bytes() == (outdir / "kernel_error.svg").read_bytes()


def test_figures_drawn_by_two_processes_are_the_same_files(summary, written, tmp_path):
    """The figures job draws with forked workers (issue 23): the same bytes as in one process,
    the PNG drawn after the SVG from the same figure as there."""
    outdir, paths = written
    again = plots.make_figures(summary, tmp_path, formats=("svg", "png"), workers=2)
    assert [p.name for p in again] == [p.name for p in paths]
    for path in again:
        for suffix in (".svg", ".png"):
            one = (outdir / path.name).with_suffix(suffix).read_bytes()
            assert path.with_suffix(suffix).read_bytes() == one, path.with_suffix(suffix).name


@pytest.mark.filterwarnings("ignore:The data type")  # zarr v3 has no fixed-length strings yet
def test_make_figures_reads_a_zarr_store_and_skips_figures_without_data(tmp_path):
    ds = make_summary(widths=(64, 256), n_trains=(32,), seeds=1, depth=1)
    ds = ds.drop_vars(["ntk_change", "nngp_change"])
    ds["ntk_analytic_error"][:] = np.nan
    ds["nngp_analytic_error"][:] = np.nan
    store = tmp_path / "summary.zarr"
    ds.to_zarr(store, mode="w", consolidated=False)
    names = [p.name for p in plots.make_figures(store, tmp_path / "a", formats=("svg",))]
    assert names == ["loss_curves.svg", "rmse_curves.svg"]  # two widths: no exponent drawn
    notes = plots.figure_notes(store)
    assert set(notes) == {"weight_change", "rmse_vs_width"}
    assert "the sweep has 2 widths" in notes["weight_change"]
    wider = make_summary(widths=(64, 128, 256), n_trains=(32,), seeds=1, depth=1)
    names = [p.name for p in plots.make_figures(wider, tmp_path / "d", formats=("svg",))]
    assert "weight_change.svg" in names and "rmse_vs_width.svg" in names
    only_curves = [
        p.name for p in plots.make_figures(ds.isel(width=[0]), tmp_path / "b", formats=("svg",))
    ]
    assert only_curves == ["loss_curves.svg", "rmse_curves.svg"]
    with pytest.raises(FileNotFoundError, match="no such Zarr store"):
        plots.make_figures(tmp_path / "absent.zarr", tmp_path / "c", formats=("svg",))


def test_make_figures_draws_one_file_per_combination_of_further_axes(tmp_path):
    ds = make_summary(
        widths=(64, 128, 256),
        n_trains=(32,),
        seeds=1,
        depth=1,
        name="cost $5",
        extra_axes={"activation": ["relu", "<b>tanh</b>"]},
    )
    keep = ["loss_train", "loss_test", "weight_change", "status"]
    names = sorted(p.name for p in plots.make_figures(ds[keep], tmp_path, formats=("svg",)))
    assert names == [
        "loss_curves__activation~_b_tanh__b_.svg",
        "loss_curves__activation~relu.svg",
        "weight_change__activation~_b_tanh__b_.svg",
        "weight_change__activation~relu.svg",
    ]
    title, caption = plots.figure_caption(tmp_path / "weight_change__activation~relu.svg")
    assert title.endswith("(activation = relu)") and "Fig. 1" in caption


# ---------------------------------------------------------------- Fig. 2, 3, S9–S10


def test_ensemble_panels_show_the_ensemble_mean_and_both_gp_bands(summary):
    fig = plots.plot_ensemble(summary)
    axes = fig.axes
    assert len(axes) == 4 and "1024" in fig.get_suptitle() and "64 members" in fig.get_suptitle()
    point = summary.sel(width=1024, n_train=128)
    last = axes[-1]
    assert last.get_title() == f"step {int(summary.step[-1])}"
    mean = point["ensemble_fx"].isel(step=-1).mean("member").values
    np.testing.assert_allclose(_line(last, "ensemble mean").get_ydata(), mean)
    np.testing.assert_allclose(
        _line(last, "NTK-GP").get_ydata(), point["ntkgp_mean"].isel(step=-1).values
    )
    assert _line(last, "NNGP posterior")  # the t → ∞ limit, on the last panel only
    assert not [line for line in axes[0].get_lines() if line.get_label() == "NNGP posterior"]
    assert len(last.collections) == 3  # two bands and the two training points


def test_kernel_mc_has_one_line_per_width_with_the_fitted_exponent(summary):
    fig = plots.plot_kernel_mc(summary)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert [label.split(":")[0] for label in labels] == [f"n = {w}" for w in summary.width.values]
    curve = analysis.mc_error_curve(summary, "ntk").sel(n_train=128, width=256)
    np.testing.assert_allclose(_line(ax, "n = 256").get_ydata(), curve.values)


def test_linearization_draws_the_weight_trajectories_of_f_and_f_lin_as_lines(summary):
    steps = summary.step.values
    ds = summary.copy()
    ds["weight_sample"] = summary.weight_sample.where(summary.step != steps[2])  # e.g. diverged
    fig = plots.plot_linearization(ds)
    assert len(fig.axes) == 4 and "seed 0" in fig.get_suptitle()
    lines = fig.axes[1].get_lines()
    net = [line for line in lines if line.get_linestyle() == "-"]
    lin = [line for line in lines if line.get_linestyle() == "--"]
    n_samples = summary.sizes["wsample"]
    assert len(net) == len(lin) == n_samples and not [x for x in lines if x.get_marker() == "o"]
    assert all(len(line.get_xdata()) == len(steps) - 1 for line in net)  # NaN steps left out
    assert all(len(line.get_xdata()) == len(steps) for line in lin)
    rmse = fig.axes[3]
    assert {line.get_linestyle() for line in rmse.get_lines()} == {"-", "--"}  # Θ̂_0 and Θ


def test_kernel_mc_figure_needs_three_sample_counts():
    two_seeds = add_mc(make_summary(widths=(64, 128, 256), n_trains=(32,), seeds=2))
    assert "fewer than 3 seeds" in plots.figure_notes(two_seeds)["kernel_mc"]
    three = add_mc(make_summary(widths=(64, 128, 256), n_trains=(32,), seeds=3))
    assert plots.figure_notes(three) == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"widths": None},  # no width axis
        {"widths": None, "n_trains": None, "extra_axes": {"learning_rate": [0.1, 1.0]}},
        {"widths": None, "n_trains": None, "extra_axes": {"depth": [1, 2]}, "seeds": 1},
        {"widths": (64,), "n_trains": None, "seeds": 1},  # one run
    ],
)
def test_make_figures_works_for_any_set_of_sweep_axes(tmp_path, kwargs):
    ds = add_linearization(make_summary(**kwargs))
    names = sorted(p.name for p in plots.make_figures(ds, tmp_path, formats=("svg",)))
    assert names and all(name.split("__")[0].split(".")[0] in plots.FIGURES for name in names)
    stems = {name.split("__")[0].split(".")[0] for name in names}
    assert {"loss_curves", "linearization"} <= stems
    assert not stems & {"weight_change", "kernel_change", "rmse_vs_width", "kernel_error"}
    assert "weight_change" in plots.figure_notes(ds)


def test_make_figures_with_a_sweep_axis_of_one_value(tmp_path):
    """`sweep: {training.learning_rate: [0.5]}` is a valid sweep: the one-valued axis is fixed
    (named in the figures' own titles), not left as a dimension the curves would carry."""
    ds = make_summary(
        widths=(64, 128, 256), n_trains=(32,), seeds=1, extra_axes={"learning_rate": [0.5]}
    )
    names = {p.name for p in plots.make_figures(ds, tmp_path, formats=("svg",))}
    assert {"loss_curves.svg", "rmse_curves.svg", "weight_change.svg"} <= names, names


#: The report's content column at a 1500 px wide window (page 1500 px, contents 15em, gaps).
REPORT_COLUMN_PX = 1180


@pytest.mark.parametrize("stem", ["weight_change", "loss_curves", "linearization"])
def test_figures_are_readable_at_the_report_width(summary, stem):
    """Issue 18: plot areas ≥ 400 px wide and tick labels ≥ 10 px at native size (1 pt = 4/3
    CSS px), the figure no wider than the report's column; n^−½ and n^−1 differ in colour and
    in dash pattern."""
    ds = add_linearization(summary)
    fig = plots.PLOTS[stem].function(ds)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_px = 4 / 3 * 72 / fig.dpi
    assert fig.get_figwidth() * 96 <= REPORT_COLUMN_PX
    for ax in fig.axes:
        assert ax.get_window_extent(renderer).width * to_px >= 400, ax.get_title()
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            assert label.get_fontsize() * 4 / 3 >= 10
    if stem == "weight_change":
        half, one = (_line(fig.axes[0], text) for text in (r"$n^{-1/2}$", r"$n^{-1}$"))
        assert half.get_color() != one.get_color()
        assert half.get_linestyle() != one.get_linestyle()


def test_curve_captions_name_colours_and_panels_only_where_the_sweep_has_them(summary):
    _, caption = plots.figure_caption("loss_curves.svg", summary)
    assert "Colour: the width n." in caption and "One panel per dataset size |D|." in caption
    one_point = make_summary(widths=(512,), n_trains=None, seeds=1)  # e.g. a Fig. 2 sweep
    _, caption = plots.figure_caption("loss_curves.svg", one_point)
    assert "Colour" not in caption and "panel" not in caption and "width" not in caption
    _, caption = plots.figure_caption("linearization.svg", summary)
    assert "dots" not in caption  # panel (b) draws lines for f and f^lin


def test_linearization_caption_names_the_analytic_kernel_only_where_the_sweep_has_it(summary):
    """Panel (d) draws f^lin with the analytic Θ only where the summary has it; a conv net or
    WRN sweep (kernels.analytic: false, config/small/fig_s2_cnn.yaml) has none, and its caption
    must not speak of a dashed Θ line."""
    _, caption = plots.figure_caption("linearization.svg", summary)
    assert "analytic Θ (dashed)" in caption and "Θ̂_0 is closer" in caption
    without = summary.drop_vars("rmse_test_analytic")
    _, caption = plots.figure_caption("linearization.svg", without)
    assert "analytic Θ (dashed)" not in caption and "Θ̂_0 is closer" not in caption
    assert "no analytic Θ in this sweep" in caption and "(Fig. 3; Fig. 4 / S2–S4" in caption


def test_rmse_vs_width_caption_speaks_of_lines_per_dataset_size_only_where_it_is_swept(summary):
    """A width-only sweep (config/small/fig_s6_relu1.yaml) draws one line, "all runs"."""
    _, caption = plots.figure_caption("rmse_vs_width.svg", summary)
    assert "one line per dataset size |D|" in caption
    width_only = make_summary(widths=(64, 128, 256), n_trains=None)
    _, caption = plots.figure_caption("rmse_vs_width.svg", width_only)
    assert "one line per dataset size" not in caption and "one line for all runs" in caption
