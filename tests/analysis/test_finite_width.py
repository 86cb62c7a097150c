"""Beyond the paper (ntkpipe.analysis.beyond): Hanin–Nica on real kernels, which scaling law.

The fluctuation data are real: Θ̂₀(x, x) of ReLU MLPs (He init, no bias) over many seeds,
computed here with the library's kernels. The checks can fail: relabelled depths (the same
networks claimed to be deeper) break the collapse, and exponents of −½ and −1 are told apart
only with the seeds the power calculation asks for.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ntkpipe.analysis import finite_width
from ntkpipe.analysis.plots_fluctuation import plot_kernel_fluctuation
from tests.analysis.data import make_relu_ntk_diag

DATA = Path(__file__).with_name("data") / "relu_ntk_diag.npz"


@pytest.fixture(scope="module")
def real_fluctuations():
    """The summary part the fit reads, ntk_diag_init (depth, width, seed, sample) and beta, from
    real kernels (tests/analysis/data/make_relu_ntk_diag.py; one cell is recomputed below)."""
    data = np.load(DATA)
    return _summary(data["ntk_diag"], data["depths"].tolist(), data["widths"].tolist())


def test_the_stored_kernels_are_the_librarys():
    stored = np.load(DATA)["ntk_diag"][0, 0, :8]  # depth 2, width 16, the first 8 seeds
    np.testing.assert_allclose(make_relu_ntk_diag.ntk_diagonals(2, 16, 8), stored, rtol=1e-10)


def test_real_relu_kernels_fit_a_constant_near_hanin_nica_and_depths_collapse(real_fluctuations):
    (fit,) = finite_width.fit_hanin_nica(real_fluctuations)
    assert fit.ci_low < fit.constant < fit.ci_high
    assert 2.0 < fit.constant < 6.0, fit  # e^{5β} is asymptotic; finite depths give ≈ 3–4
    assert abs(fit.collapse) < np.log(1.5), fit  # depths 2 and 4 at equal β: one curve
    ratio = finite_width.kernel_fluctuation(real_fluctuations)
    assert ratio.sel(depth=4, width=32) > ratio.sel(depth=2, width=32)  # deeper: larger β


def test_the_fit_does_not_depend_on_the_sweeps_axis_order(real_fluctuations):
    # config/small/fig_s9.yaml sweeps model.width before model.depth: the summary is (width,
    # depth, …) and β a (width, depth) coordinate (the figures job failed on it)
    swapped = real_fluctuations.transpose("width", "depth", ...)
    swapped = swapped.assign_coords(beta=swapped["beta"].transpose("width", "depth"))
    (fit,) = finite_width.fit_hanin_nica(real_fluctuations)
    (again,) = finite_width.fit_hanin_nica(swapped)
    assert again.constant == pytest.approx(fit.constant)


def test_relabelled_depths_do_not_collapse(real_fluctuations):
    """The depth-2 networks claimed to be depth 8 (β four times too large): the constants of
    the two 'depths' differ by ≈ 4, outside the collapse band, with a tight interval."""
    shallow = real_fluctuations["ntk_diag_init"].sel(depth=[2]).values
    widths = real_fluctuations["width"].values.tolist()
    wrong = _summary(np.concatenate([shallow, shallow[:, :, ::-1]], axis=0), (2, 8), widths)
    (fit,) = finite_width.fit_hanin_nica(wrong)
    assert fit.collapse_high < -np.log(1.5), fit


def test_real_kernel_deviation_supports_inverse_square_root_only(real_fluctuations):
    """|Θ̂₀(x, x) − mean|/mean over seeds falls like n^−½ at fixed depth: the check says so."""
    diag = real_fluctuations["ntk_diag_init"].sel(depth=2)
    deviation = (np.abs(diag - diag.mean("seed")) / diag.mean("seed")).mean("sample")
    check = finite_width.which_scaling_law(deviation)
    assert check.supported == ("n^−1/2",), check.fit
    assert check.describe() == "supports n^−1/2 only"


def test_the_power_calculation_gives_seeds_that_separate_the_laws():
    """Exponent −0.75 (between the two) with 2 seeds: both supported, and the seeds the check
    asks for separate them in most fresh sweeps (the interval then holds at most one)."""
    widths = np.array([64, 128, 256, 512])
    rng = np.random.default_rng(5)

    def sweep(seeds):
        noise = np.exp(rng.normal(0, 0.5, (len(widths), seeds)))
        y = 3.0 * widths[:, None] ** -0.75 * noise
        return xr.DataArray(y, dims=("width", "seed"), coords={"width": widths})

    check = finite_width.which_scaling_law(sweep(2))
    assert len(check.supported) == 2 and "seeds per width" in check.needs
    needed = int(check.needs.split("≥ ")[1].split(" seeds")[0])
    assert needed > 2
    laws = [finite_width.which_scaling_law(sweep(needed)).supported for _ in range(40)]
    separated = [len(supported) < 2 for supported in laws]
    assert np.mean(separated) >= 0.8


def _summary(diag, depths, widths):
    da = xr.DataArray(
        diag,
        dims=("depth", "width", "seed", "sample"),
        coords={"depth": list(depths), "width": list(widths)},
    )
    beta = (da["depth"] / da["width"]).astype(float)
    ds = xr.Dataset({"ntk_diag_init": da}).assign_coords(beta=beta)
    ds.attrs["sweep_axes"] = json.dumps(["depth", "width"])
    return ds


def test_the_fluctuation_figure_draws_every_depth_and_both_curves(real_fluctuations):
    fig = plot_kernel_fluctuation(real_fluctuations)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert [lab for lab in labels if lab.startswith("depth")] == ["depth L = 2", "depth L = 4"]
    assert any("Hanin" in lab for lab in labels) and any("fit" in lab for lab in labels)
    with pytest.raises(ValueError, match="depth and width swept"):
        plot_kernel_fluctuation(real_fluctuations.sel(depth=[2]))
