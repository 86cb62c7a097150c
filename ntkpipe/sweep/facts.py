"""Facts about a run that several parts of ntkpipe need, each stated once.

Light (no JAX, no xarray): read by the validation and cost model before any job, and by the
jobs and the analysis. Each reads a resolved config (the schema's defaults filled in,
:func:`ntkpipe.sweep.validate.load_config`).
"""

from __future__ import annotations

__all__ = [
    "STATUSES",
    "USABLE_STATUSES",
    "n_outputs",
    "closed_form",
    "init_scales",
    "kernel_arguments",
    "kernel_parameterization",
]

STATUSES = ("ok", "lr_above_critical", "diverged", "missing")
"""Run statuses recorded by ``ntkpipe collect``: finished, learning rate above η_crit (its
values are kept), diverged, missing."""
USABLE_STATUSES = STATUSES[:2]
"""Runs whose values enter fits and figures: finished and not diverged."""


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
        parameterization=kernel_parameterization(model),
        width=model["width"],
    )


def kernel_parameterization(model: dict) -> str:
    """The parameterization whose tangent kernel and readout Gram a run's network has at
    initialization: ``ntk`` for μP and for the standard one with ``layer_rates: ntk``
    (their kernels of the trained leaves equal the NTK parameterization's; see
    ``ntkpipe.core.models.DenseSpec.layer_scale``), else the run's own."""
    parameterization = model["parameterization"]
    if parameterization == "mup" or model.get("layer_rates", "uniform") == "ntk":
        return "ntk"
    return parameterization
