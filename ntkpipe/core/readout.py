"""The readout layer's tangent kernel against the NNGP kernel K (§2.3.1, Eq. S22–S23).

Pure arithmetic on a model description (no arrays, no JAX): the stored empirical NNGP K̂
(``nngp_*`` of kernel_init.zarr) is the readout layer's Gram G = a·K + b; the compare job maps
it to the scale of K before comparing it with the analytic K, and the ensemble job evolves the
readout-only dynamics with it.
"""

from __future__ import annotations

from ntkpipe.conventions import kernel_parameterization

__all__ = ["readout_gram_affine"]


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
