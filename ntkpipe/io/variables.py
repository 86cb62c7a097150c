"""The one table of every variable and coordinate the stores hold: long name, units, meaning.

`annotate` writes ``long_name``, ``units`` (CF: "1" for dimensionless) and ``description`` onto
every variable and coordinate of a dataset (``ntkpipe.io.stores.write_store`` does it for every
store); `order` puts dimensions and variables in the schema's order (sweep axes in config order,
then model, seed, member, step, sample, alpha, out, layer, wsample); `render_markdown` is the schema
reference ``docs/store-schema.md`` (``python -m ntkpipe.io.variables > docs/store-schema.md``;
tests/io/test_variables.py checks that the file is current).

Notation (Lee et al. 2019): f_t the network's outputs after t = η·step of gradient descent,
f^lin_t its linearization around θ_0 (Eq. 8), Θ̂ / K̂ the empirical NTK / NNGP kernel, Θ / K
their infinite-width (analytic) limits, n the width, |D| = n_train the training set size.
"""

from __future__ import annotations

from typing import NamedTuple

from ntkpipe.conventions import STATUSES

__all__ = [
    "VARIABLES",
    "SWEEP_AXES",
    "DIM_ORDER",
    "Variable",
    "describe",
    "annotate",
    "is_described",
    "order",
    "render_markdown",
]


class Variable(NamedTuple):
    long_name: str
    units: str
    description: str
    stores: str  # the stores holding it, for the schema reference


_RUN = "train, linear, metrics, summary"
_SUM = "metrics, summary"
_KER = "kernels (init/final), analytic"
_ENS = "ensemble, summary"


#: name → Variable, in the order the schema reference (and `order`) lists them.
VARIABLES: dict[str, Variable] = {
    # ---- coordinates
    "seed": Variable("random seed", "1", "Seed of the network's initialization θ_0.", "all"),
    "step": Variable(
        "optimizer step", "1", "Gradient-descent step i at which f was recorded.", _RUN
    ),
    "t": Variable(
        "training time t = η·step", "1", "Continuous time of the gradient flow (Eq. 3).", _RUN
    ),
    "model": Variable(
        "model",
        "1",
        "net: the network f; lin: its linearization f^lin evolved with Θ̂_0; lin_analytic: "
        "f^lin evolved with the analytic Θ.",
        _SUM,
    ),
    "sample": Variable(
        "sampled example",
        "1",
        "Index (into the train or test set) of the few fixed examples whose outputs are kept.",
        _SUM,
    ),
    "layer": Variable("layer", "1", "Name of a trainable layer of the network.", _RUN),
    "layer_role": Variable(
        "layer role", "1", "input (first layer), hidden, or output (readout).", _SUM
    ),
    "wsample": Variable(
        "sampled weight", "1", "A fixed trainable entry θ[i, j] of a layer (Fig. 3).", _RUN
    ),
    "member": Variable("ensemble member", "1", "Seed of one network of the ensemble.", _ENS),
    "gp": Variable(
        "NTK-GP factor column", "1", "Index of z in f = μ + F z, z ~ N(0, I) (n + n_alpha).", _ENS
    ),
    "alpha": Variable(
        "interpolation α", "1", "x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾ between two training inputs.", _ENS
    ),
    "train": Variable(
        "training example", "1", "Index into the training set.", "init, train, kernels"
    ),
    "test": Variable("test example", "1", "Index into the test set.", "init, train, kernels"),
    "train2": Variable("training example", "1", "Second index of a train×train kernel.", _KER),
    "test2": Variable("test example", "1", "Second index of a test×test kernel.", _KER),
    "out": Variable("output", "1", "Output unit (logit) of the network.", "init, train, ensemble"),
    "mc_partners": Variable(
        "Monte Carlo pair partners",
        "1",
        "Seeds of the same run paired with this one in *_mc_cross (run seeds − 1).",
        _SUM,
    ),
    # ---- training curves
    "loss_train": Variable("train loss", "1", "Loss L on the training set (MSE: ½ mean).", _RUN),
    "loss_test": Variable("test loss", "1", "Loss L on the test set.", _RUN),
    "acc_train": Variable("train accuracy", "1", "Fraction of training examples right.", _RUN),
    "acc_test": Variable("test accuracy", "1", "Fraction of test examples right.", _RUN),
    "fx_train": Variable(
        "outputs f_t(x) on the train set", "1", "Network outputs.", "train, linear"
    ),
    "fx_test": Variable("outputs f_t(x) on the test set", "1", "Network outputs.", "train, linear"),
    "f0_train": Variable("outputs f_0(x) on the train set", "1", "Outputs at init.", "init"),
    "f0_test": Variable("outputs f_0(x) on the test set", "1", "Outputs at init.", "init"),
    "weight_change": Variable(
        "relative weight change ‖W_t − W_0‖_F/‖W_0‖_F",
        "1",
        "Per layer; for f^lin ‖ω_t‖_F/‖W_0‖_F (Fig. 1: input/output ~ n^−½, hidden ~ n^−1).",
        _RUN,
    ),
    "weight_sample": Variable(
        "sampled weight change θ_t − θ_0",
        "1",
        "A few fixed trainable entries of f and f^lin at every record step (Fig. 3); NaN at and "
        "after a seed's diverged_step.",
        _RUN,
    ),
    "fx_sample_train": Variable(
        "sampled train output f_t(x)", "1", "Output 0 of a few fixed training examples.", _SUM
    ),
    "fx_sample_test": Variable(
        "sampled test output f_t(x)", "1", "Output 0 of a few fixed test examples.", _SUM
    ),
    "diverged_step": Variable(
        "first diverged step",
        "1",
        "First record step with a non-finite loss (of f or f^lin in the summary); −1: never.",
        _RUN,
    ),
    "diverged_step_net": Variable(
        "first diverged step of f", "1", "As diverged_step, of the network f alone.", _SUM
    ),
    "diverged_step_lin": Variable(
        "first diverged step of f^lin", "1", "As diverged_step, of f^lin (Θ̂_0) alone.", _SUM
    ),
    "sharpness": Variable(
        "sharpness λ_max(Θ̂_t)",
        "1",
        "Top eigenvalue of the full kernel [n·k, n·k] on the train set at each record step, "
        "exact for an MLP with n·k ≤ 512, else by warm-started power iteration on NTK-vector "
        "products (f^lin: Θ̂_0's); GD is linearly "
        "stable while η·sharpness/(n·k) < 2. Recorded with training.sharpness / lr_factor.",
        _RUN,
    ),
    "regime": Variable(
        "training regime",
        "1",
        "lazy, catapult or divergent from f's loss and sharpness (criteria: "
        'ntkpipe/analysis/regime.py); "": missing run.',
        _SUM,
    ),
    # ---- f against f_lin
    "rmse_train": Variable(
        "RMSE(f_t, f^lin_t) train",
        "1",
        "√mean over train examples and outputs of (f_t − f^lin_t)², absolute; the verdicts "
        "divide it by output_change_train (relative linearization error).",
        _SUM,
    ),
    "rmse_test": Variable(
        "RMSE(f_t, f^lin_t) test", "1", "As rmse_train, on the test set (Fig. 3, S5).", _SUM
    ),
    "rmse_train_analytic": Variable(
        "RMSE(f_t, f^lin_t) train, analytic Θ",
        "1",
        "As rmse_train with f^lin evolved by the analytic Θ (NaN without it).",
        _SUM,
    ),
    "rmse_test_analytic": Variable(
        "RMSE(f_t, f^lin_t) test, analytic Θ", "1", "As rmse_test, analytic Θ.", _SUM
    ),
    "output_change_train": Variable(
        "output change RMS(f_t − f_0) train",
        "1",
        "√mean of (f_t − f_0)² of the network: the scale RMSE(f, f^lin) is judged against.",
        _SUM,
    ),
    "output_change_test": Variable(
        "output change RMS(f_t − f_0) test", "1", "As output_change_train, test set.", _SUM
    ),
    # ---- kernels
    "ntk_train_train": Variable(
        "NTK Θ(x_train, x_train)", "1", "Tangent kernel [train, train2].", _KER
    ),
    "ntk_test_train": Variable(
        "NTK Θ(x_test, x_train)", "1", "Tangent kernel [test, train].", _KER
    ),
    "ntk_test_test": Variable("NTK Θ(x_test, x_test)", "1", "Tangent kernel [test, test2].", _KER),
    "nngp_train_train": Variable("NNGP K(x_train, x_train)", "1", "NNGP kernel.", _KER),
    "nngp_test_train": Variable("NNGP K(x_test, x_train)", "1", "NNGP kernel.", _KER),
    "nngp_test_test": Variable("NNGP K(x_test, x_test)", "1", "NNGP kernel.", _KER),
    "ntk_eigvals": Variable(
        "eigenvalues of Θ̂_0",
        "1",
        "Ascending eigenvalues on the train set of the stored [train, train2] kernel: with k > 1 "
        "outputs the traced Θ̄ = (1/k) Σ_j Θ̂_jj, not the full [n·k, n·k] kernel η_crit is "
        "computed from.",
        "kernels",
    ),
    "lr_critical": Variable(
        "critical learning rate η_crit",
        "1",
        "2·n·k/(λ_min + λ_max) of Θ̂_0 (Theorem 2.1, ½·mean loss), of the kernel f_lin evolves: "
        "with k > 1 outputs the full [n·k, n·k] Θ̂_0, whose eigenvalues are not ntk_eigvals "
        "(those of the traced kernel); the runs with η above it are flagged lr_above_critical. "
        "NaN: not computed.",
        "kernels, metrics, summary",
    ),
    "learning_rate": Variable(
        "learning rate η", "1", "The step size trained with (lr_factor × η_crit with it).", _RUN
    ),
    "lr_critical_traced": Variable(
        "η_crit of the traced Θ̂_0",
        "1",
        "From ntk_eigvals; above lr_critical (by up to k) for k > 1: lr_between_critical.",
        _SUM,
    ),
    "ntk_diag_init": Variable(
        "NTK diagonal Θ̂₀(x, x)",
        "1",
        "At init, for the first few training examples; its relative variance over seeds grows "
        "like e^{5β} − 1 (ReLU, Hanin & Nica 2020). NaN: Θ̂₀ not computed.",
        _SUM,
    ),
    "beta": Variable(
        "depth-to-width ratio β",
        "1",
        "β = Σ_l 1/n_l over the hidden layers (= depth/width for fc; Hanin & Nica 2020).",
        "summary",
    ),
    "ntk_change": Variable(
        "relative NTK change ‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F",
        "1",
        "On the training set; NaN if the final kernel was not computed (Fig. 1 / S6).",
        _SUM,
    ),
    "nngp_change": Variable(
        "relative NNGP change ‖K̂_T − K̂_0‖_F/‖K̂_0‖_F", "1", "As ntk_change, for K̂.", _SUM
    ),
    "ntk_analytic_error": Variable(
        "NTK error ‖Θ̂_0 − Θ‖_F/‖Θ‖_F",
        "1",
        "Empirical against analytic NTK at init; ~ n^−½ (Fig. S9–S10). NaN: not computed.",
        _SUM,
    ),
    "nngp_analytic_error": Variable(
        "NNGP error ‖K̂_0 − K‖_F/‖K‖_F", "1", "As ntk_analytic_error, for K̂.", _SUM
    ),
    "ntk_mc_sq": Variable(
        "squared NTK deviation ‖Θ̂_0 − Θ‖²_F/‖Θ‖²_F",
        "1",
        "Per seed; E = b² + v, the Monte Carlo bias² and variance (Fig. S9–S10).",
        _SUM,
    ),
    "ntk_mc_cross": Variable(
        "NTK deviation products Σ_s' ⟨Θ̂_s − Θ, Θ̂_s' − Θ⟩/‖Θ‖²_F",
        "1",
        "Over the other seeds s' of the run (mc_partners of them); each has E = b².",
        _SUM,
    ),
    "nngp_mc_sq": Variable(
        "squared NNGP deviation ‖K̂_0 − K‖²_F/‖K‖²_F", "1", "As ntk_mc_sq, for K̂.", _SUM
    ),
    "nngp_mc_cross": Variable(
        "NNGP deviation products Σ_s' ⟨K̂_s − K, K̂_s' − K⟩/‖K‖²_F",
        "1",
        "As ntk_mc_cross, for K̂.",
        _SUM,
    ),
    # ---- status
    "status": Variable(
        "run status",
        "1",
        "ok; lr_above_critical (η > η_crit); diverged (f's loss not finite or ending above its "
        "start); missing; catapult (f converges, f^lin diverges); lr_between_critical.",
        _SUM,
    ),
    "status_flag": Variable(
        "run status flag", "1", "status as CF flags (flag_values, flag_meanings).", "summary"
    ),
    # ---- ensemble (Fig. 2)
    "fx_alpha": Variable("ensemble outputs f_t(x(α))", "1", "Every member's outputs.", "ensemble"),
    "ensemble_fx": Variable("ensemble outputs f_t(x(α))", "1", "Output 0 of every member.", _ENS),
    "ensemble_loss_train": Variable("ensemble train loss", "1", "Per member.", _ENS),
    "ntkgp_mean": Variable("NTK-GP mean", "1", "Mean of the NTK-GP at time t (Eq. 14).", _ENS),
    "ntkgp_std": Variable("NTK-GP standard deviation", "1", "√diag of Eq. 15.", _ENS),
    "ntkgp_factor": Variable(
        "NTK-GP factor F",
        "1",
        "Cov(f_t(x(α)), f_s(x(α'))) = Σ_gp F F: the NTK-GP across times and α (Fig. 2 test).",
        _ENS,
    ),
    "nngp_mean": Variable("NNGP mean, readout only", "1", "Readout-only dynamics (Eq. S22).", _ENS),
    "nngp_std": Variable("NNGP standard deviation", "1", "√diag of Eq. S23.", _ENS),
    "nngp_posterior_mean": Variable("NNGP posterior mean", "1", "t → ∞ (Eq. 13).", _ENS),
    "nngp_posterior_std": Variable("NNGP posterior std", "1", "√diag of Eq. 13.", _ENS),
    "target_1": Variable("target y⁽¹⁾", "1", "Target of x⁽¹⁾ (α = 1).", "ensemble"),
    "target_2": Variable("target y⁽²⁾", "1", "Target of x⁽²⁾ (α = 0).", "ensemble"),
    "ensemble_target_1": Variable("target y⁽¹⁾", "1", "Target of x⁽¹⁾ (α = 1).", _ENS),
    "ensemble_target_2": Variable("target y⁽²⁾", "1", "Target of x⁽²⁾ (α = 0).", _ENS),
}

#: Short names of sweep axes (the last part of the config path) → Variable.
SWEEP_AXES: dict[str, Variable] = {
    "width": Variable("width n", "1", "Hidden units (channels) per layer.", "summary"),
    "depth": Variable("depth L", "1", "Number of hidden layers.", "summary"),
    "n_train": Variable("training set size |D|", "1", "Examples in the training set.", "summary"),
    "n_test": Variable("test set size", "1", "Examples in the test set.", "summary"),
    "activation": Variable("activation φ", "1", "Nonlinearity of the hidden layers.", "summary"),
    "w_std": Variable("weight std σ_w", "1", "Initialization scale of the weights.", "summary"),
    "b_std": Variable("bias std σ_b", "1", "Initialization scale of the biases.", "summary"),
    "parameterization": Variable("parameterization", "1", "ntk, standard or mup.", "summary"),
    "layer_rates": Variable(
        "layer rates", "1", "Per-tensor learning rates: uniform or ntk.", "summary"
    ),
    "optimizer": Variable("optimizer", "1", "gd, momentum or sgd.", "summary"),
    "loss": Variable("loss", "1", "mse or cross-entropy.", "summary"),
    "momentum": Variable("momentum", "1", "Momentum coefficient.", "summary"),
    "batch_size": Variable("batch size", "1", "Minibatch size of SGD.", "summary"),
    "steps": Variable("training steps T", "1", "Number of optimizer steps.", "summary"),
    "lr_factor": Variable("factor η/η_crit", "1", "η = lr_factor × the run's η_crit.", "summary"),
    "architecture": Variable("architecture", "1", "Network family.", "summary"),
}

#: Dimensions after the sweep axes, in this order; any other dimension comes last.
DIM_ORDER = (
    "model",
    "seed",
    "member",
    "step",
    "sample",
    "alpha",
    "gp",
    "train",
    "test",
    "train2",
    "test2",
    "out",
    "layer",
    "wsample",
)


def describe(name: str, axes=()) -> Variable:
    """The Variable of `name` (a sweep axis short name among `axes`, a name ending in
    ``_analytic`` from its base name), or a generic entry for a name not in the table."""
    if name in VARIABLES:
        return VARIABLES[name]
    if name in SWEEP_AXES:
        return SWEEP_AXES[name]
    if name.endswith("_analytic") and name[: -len("_analytic")] in VARIABLES:
        base = VARIABLES[name[: -len("_analytic")]]
        return base._replace(
            long_name=f"{base.long_name}, f^lin with analytic Θ",
            description=f"{base.description} Of f^lin evolved with the analytic Θ.",
        )
    if name in axes:
        return Variable(name.replace("_", " "), "1", f"Sweep axis {name}.", "summary")
    return Variable(name.replace("_", " "), "1", f"{name} (not in the schema table).", "")


def annotate(ds, axes=()):
    """`ds` with ``long_name``, ``units`` and ``description`` on every variable and coordinate;
    CF ``flag_values``/``flag_meanings`` on ``status_flag``.

    The table wins: attributes carried from the arrays a variable was computed from (xarray
    keeps them, e.g. ``rmse_test`` from ``fx_test``) are replaced by the variable's own entry.
    Only a name the table does not know (`is_described` false) keeps attributes it already has.
    """
    for name, var in ds.variables.items():
        entry = describe(str(name), axes)
        known = is_described(str(name), axes)
        for key, value in (
            ("long_name", entry.long_name),
            ("units", entry.units),
            ("description", entry.description),
        ):
            if known:
                var.attrs[key] = value
            else:
                var.attrs.setdefault(key, value)
        if name == "status":
            var.attrs["allowed_values"] = " ".join(STATUSES)
        if name == "status_flag":
            var.attrs["flag_values"] = list(range(len(STATUSES)))
            var.attrs["flag_meanings"] = " ".join(STATUSES)
        if name in ("diverged_step", "diverged_step_net", "diverged_step_lin"):
            var.attrs["missing_value_meaning"] = "-1: never diverged"
    return ds


def is_described(name: str, axes=()) -> bool:
    """Whether `name` has an entry of its own: in `VARIABLES`, `SWEEP_AXES`, among the sweep
    `axes`, or an ``_analytic`` variant of a `VARIABLES` name."""
    base = name.removesuffix("_analytic")
    return name in VARIABLES or name in SWEEP_AXES or name in axes or base in VARIABLES


def order(ds, axes=()):
    """`ds` with dimensions in the schema order (the sweep `axes` in config order, then
    `DIM_ORDER`, then any other) on every variable, and data variables in table order."""
    rank = {dim: i for i, dim in enumerate([*axes, *DIM_ORDER])}
    dims = sorted(ds.dims, key=lambda d: (rank.get(d, len(rank)), str(d)))
    ds = ds.transpose(*dims)
    names = list(VARIABLES)
    data = sorted(
        ds.data_vars, key=lambda n: (names.index(n) if n in names else len(names), str(n))
    )
    return ds[data]


def render_markdown() -> str:
    """The schema reference (docs/store-schema.md) from `VARIABLES` and `SWEEP_AXES`."""
    lines = [
        "# Store schema",
        "",
        "Generated from `ntkpipe/io/variables.py` by `python -m ntkpipe.io.variables`; do not",
        "edit by hand (tests/io/test_variables.py checks that it is current). Every variable",
        "and coordinate of every store carries these as `long_name`, `units` and `description`.",
        "",
        "Dimension order: the sweep axes in config order, then " + ", ".join(DIM_ORDER) + ".",
        "",
        "Sentinels: `diverged_step = -1` means the run never diverged; `status` is one of "
        + ", ".join(f"`{s}`" for s in STATUSES)
        + ", and `status_flag` the same as CF flags ("
        + ", ".join(f"{i} = {s}" for i, s in enumerate(STATUSES))
        + "). NaN: not computed (e.g. no Θ̂_0 with `kernels.initial: false`) or missing.",
        "",
        *_CUSTOM_MODELS,
        "## Variables and coordinates",
        "",
        "| name | long name | units | stores | description |",
        "|---|---|---|---|---|",
    ]
    lines += [_row(name, v) for name, v in VARIABLES.items()]
    lines += [
        "",
        "## Sweep axes (summary coordinates, by short name)",
        "",
        "| name | long name | units | stores | description |",
        "|---|---|---|---|---|",
    ]
    lines += [_row(name, v) for name, v in SWEEP_AXES.items()]
    return "\n".join(lines) + "\n"


_CUSTOM_MODELS = (
    "## Custom models and your own data",
    "",
    "Runs of `model.architecture: custom` (your Flax module, `model.factory`) have the same stores"
    " with these differences:",
    "",
    "- No `analytic.zarr`: an arbitrary module has no infinite-width kernels, so the analytic "
    "stage does not run (`kernels.analytic` is false), `ntk_analytic_error` / "
    "`nngp_analytic_error` and every `*_analytic` variable are NaN, and the summary's attribute "
    "`not_applicable` (JSON, {what: why}) holds `analytic_kernels` with the reason; the claims "
    "that need Θ or K read it and are not applicable.",
    "- `layer` (of `weight_change`, `weight_sample`'s `wsample` labels) names the module's own "
    "weight matrices, the leaves named `kernel` of its parameter tree, by their path "
    "(`block_0/query`, `readout`), in natural name order; the last is the readout (its tangent "
    "kernel is K̂). `layer_role` is by position (first `input`, last `output`), which for a "
    "custom module is only sure of the readout: `not_applicable` holds `layer_roles`.",
    "- `params/` groups hold the module's parameter tree as it is (every collection path), "
    "floating leaves in the run's precision.",
    "- A swept `model.options.<key>` is a summary axis named `<key>` (e.g. `heads`).",
    "",
    "`data.dataset: arrays` (an `.npz` of yours) gives the same stores; with real-valued targets "
    "(`data.classes: null`) `out` is the columns of `y_train`, and `acc_*` compare signs (one "
    "output) or argmaxes, which mean nothing for a regression task.",
    "",
)


def _row(name: str, v: Variable) -> str:
    cells = (f"`{name}`", v.long_name, v.units, v.stores, v.description)
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


if __name__ == "__main__":
    print(render_markdown(), end="")
