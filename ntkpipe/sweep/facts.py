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
    "readout_gram_affine",
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


def readout_gram_affine(model: dict, fan_in: int | None = None) -> tuple[float, float]:
    """(a, b) with the readout layer's tangent kernel G = a·K + b (§2.3.1, Eq. S22–S23).

    G(x, x') = Σ over the readout parameters of ∂f(x)·∂f(x') is the kernel of readout-only
    training and the stored empirical NNGP K̂ (``nngp_*`` of kernel_init.zarr). With
    K = σ_w² E[φφ] + σ_b² the output NNGP kernel (Eq. 12):

    - NTK parameterization: ∂f/∂ω_L = σ_w/√n_L · φ, ∂f/∂β_L = σ_b, so G = K (a = 1, b = 0);
    - standard: ∂f/∂W_L = φ and ∂f/∂b_L = 1, so G = n_L (K − σ_b²)/σ_w² + [1 with a bias],
      which grows with the readout fan-in n_L;
    - μP, and standard with ``layer_rates: ntk``: the readout leaves are the NTK ones, G = K.

    Args:
        model: the run config's ``model`` section (parameterization, depth, width, w_std, b_std).
        fan_in: n_L, the readout's fan-in; None: the width (depth ≥ 1).

    Raises:
        ValueError: standard parameterization of depth 0 without `fan_in` (then n_L = d_in).
    """
    if kernel_parameterization(model) != "standard":  # μP, standard with ntk rates: NTK's
        return 1.0, 0.0
    if fan_in is None:
        if int(model["depth"]) < 1:
            raise ValueError(
                "model.depth=0 with parameterization='standard': the readout fan-in is the "
                "input dimension d_in; pass fan_in=d_in"
            )
        fan_in = int(model["width"])
    w_var, b_std = float(model["w_std"]) ** 2, float(model.get("b_std") or 0.0)
    bias = 1.0 if b_std > 0 else 0.0
    return fan_in / w_var, bias - fan_in * b_std**2 / w_var


def kernel_parameterization(model: dict) -> str:
    """The parameterization whose tangent kernel and readout Gram a run's network has at
    initialization: ``ntk`` for μP and for the standard one with ``layer_rates: ntk``
    (their kernels of the trained leaves equal the NTK parameterization's; see
    ``ntkpipe.core.models.DenseSpec.layer_scale``), else the run's own."""
    parameterization = model.get("parameterization", "ntk")
    if parameterization == "mup" or model.get("layer_rates", "uniform") == "ntk":
        return "ntk"
    return parameterization
