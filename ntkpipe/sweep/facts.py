"""Facts about a run that several parts of ntkpipe need, each stated once.

Light (no JAX, no xarray): read by the validation and cost model before any job, and by the
jobs and the analysis. Each reads a resolved config (the schema's defaults filled in,
:func:`ntkpipe.sweep.validate.load_config`).
"""

from __future__ import annotations

from ntkpipe import conventions

__all__ = [
    "USABLE_STATUSES",
    "n_outputs",
    "closed_form",
    "lr_from_factor",
    "records_sharpness",
    "init_scales",
    "kernel_arguments",
    "NO_ANALYTIC_KERNELS",
    "not_applicable",
]

NO_ANALYTIC_KERNELS = (
    "model.architecture custom: an arbitrary module has no infinite-width kernels Θ and K "
    "(the analytic stage does not run; analytic errors are NaN)"
)
"""Why a custom model's sweep has no analytic kernels (the claims that need them are not
applicable)."""

USABLE_STATUSES = ("ok", "lr_above_critical", "lr_between_critical")
"""Runs whose values enter fits and figures: finished, neither diverged nor catapulted."""


def n_outputs(n_classes: int, loss: str) -> int:
    """k, the number of network outputs: 1 for a binary MSE task (±1 targets), else one per
    class (one-hot targets; cross-entropy always has one logit per class)."""
    return 1 if n_classes == 2 and loss == "mse" else n_classes


def closed_form(training: dict) -> bool:
    """Whether f_lin evolves in closed form (Eq. 8–11): MSE with full-batch gradient descent.

    Args:
        training: a run config's ``training`` section (``loss``, ``optimizer``).
    """
    return training["loss"] == "mse" and training["optimizer"] == "gd"


def lr_from_factor(training: dict) -> bool:
    """Whether the run's η is ``training.lr_factor`` × its η_crit (read from kernel_init.zarr by
    train and linear) rather than ``training.learning_rate``."""
    return training.get("lr_factor") is not None


def records_sharpness(training: dict) -> bool:
    """Whether training records the sharpness λ_max(Θ̂_t): ``training.sharpness``, or when it
    is null, exactly when η comes from ``lr_factor`` (the runs whose regime is needed)."""
    chosen = training.get("sharpness")
    return lr_from_factor(training) if chosen is None else bool(chosen)


def init_scales(model: dict) -> dict:
    """σ_w and σ_b of a run config's ``model`` section as the library takes them (``b_std``
    null: no bias variance, 0)."""
    return {"w_std": model["w_std"], "b_std": model["b_std"] or 0.0}


def kernel_arguments(model: dict) -> dict:
    """The keywords of :func:`ntkpipe.core.analytic.kernels` for a run config's ``model``
    section (fc): depth L, activation φ, σ_w, σ_b, parameterization and width."""
    return dict(
        depth=model["depth"],
        activation=model["activation"],
        **init_scales(model),
        parameterization=conventions.kernel_parameterization(model),
        width=model["width"],
    )


def not_applicable(config: dict) -> dict[str, str]:
    """What a sweep cannot measure by construction, {what: why}: ``analytic_kernels`` when
    every run is a custom model (:data:`NO_ANALYTIC_KERNELS`), ``layer_roles`` when the layers
    are a custom module's (named by its parameter tree, in natural name order: the first is not
    known to be the input layer, the last is the readout). The summary stores it as its
    ``not_applicable`` attribute (JSON) for the claims and the report.

    Args:
        config: a resolved sweep config (``sweep`` may vary ``model.architecture``).
    """
    swept = config.get("sweep", {}).get("model.architecture")
    architectures = set(swept) if swept else {config["model"]["architecture"]}
    if architectures != {"custom"}:
        return {}
    return {
        "analytic_kernels": NO_ANALYTIC_KERNELS,
        "layer_roles": (
            "model.architecture custom: layers are the module's 'kernel' leaves in natural name "
            "order; which is the input layer (and which are hidden) is not known, only that the "
            "last is the readout"
        ),
    }
