"""Titles and captions of the figures of :mod:`ntkpipe.analysis.plots_fluctuation` (depth
against width), part of the figure catalogue :data:`ntkpipe.analysis.plots_common.FIGURES`."""

from __future__ import annotations

#: Figure file stem → (title, caption).
FINITE_WIDTH_FIGURES = {
    "kernel_fluctuation": (
        "Depth against width: the NTK's fluctuation against β",
        "Relative variance over seeds of the tangent kernel's diagonal at initialization, "
        "Var Θ̂₀(x, x)/(E Θ̂₀(x, x))² (mean over a few training x), against β = Σ_l 1/n_l "
        "(depth/width; log-log), one colour per depth, with Hanin & Nica's e^{5β} − 1 for ReLU "
        "(dashed) and the fitted e^{cβ} − 1 (grey; c and its bootstrap 95% CI in the legend). "
        "Depths at equal β fall on one curve when depth and width trade off as β says.",
    ),
}
