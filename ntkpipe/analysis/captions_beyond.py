"""Titles and captions of the figures beyond the paper (:mod:`ntkpipe.analysis.plots_beyond`),
part of the figure catalogue :data:`ntkpipe.analysis.plots_common.FIGURES`."""

from __future__ import annotations

#: Figure file stem → (title, caption), in the order the report shows them.
BEYOND_FIGURES = {
    "lr_phase": (
        "Phase diagram: the regime against width and η/η_crit",
        "Each (width n, learning rate factor η/η_crit) of the sweep coloured by the regime of "
        "most of its seeds: lazy (f tracks f_lin), catapult (the loss spikes, the kernel's "
        "top eigenvalue falls, and f converges while f_lin diverges) or divergent; dashed and "
        "dotted: the boundaries (geometric midpoints between neighbouring factors); grey: η = "
        "η_crit. Lewkowycz et al. 2020: lazy below 2·n·k/λ_max, catapult up to ≈ 2× (two-layer "
        "linear) to ≈ 6× (deep ReLU) that edge.",
    ),
    "sharpness_curves": (
        "Sharpness λ_max(Θ̂_t) over training",
        "Top eigenvalue of the network's full tangent kernel on the training set against the "
        "step, widest width, first seed, one colour per η/η_crit; dashed, same colour: that "
        "run's linear stability line 2·n·k/η. A catapult run starts above its line and ends "
        "below it; a lazy run stays flat below it.",
    ),
    "rmse_vs_lr_factor": (
        "‖f − f_lin‖ against η/η_crit",
        "RMSE(f_T, f^lin_T) on the test set at the end of training (mean over seeds) against "
        "the learning rate factor, one line per width n; × at the top: f^lin diverged (above "
        "its stability edge), so the network cannot track it. Below η_crit the RMSE falls "
        "with width (Theorem 2.1).",
    ),
}
