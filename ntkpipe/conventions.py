"""Constants (and one pure fact about a model dict) that several layers state the same way, each
defined here once.

Like :mod:`ntkpipe.errors`, every part of ntkpipe may import it (core, sweep, io, jobs,
analysis): it imports nothing. A constant belongs here only when parts that may not import each
other need it (the light ``sweep`` never imports ``core``; ``io`` never imports ``sweep``).
"""

from __future__ import annotations

__all__ = ["DEFAULT_MOMENTUM", "STATUSES", "kernel_parameterization"]

DEFAULT_MOMENTUM = 0.9
"""β of the ``momentum`` optimizer when none is given (the paper's value, Fig. 4, S3): the
library's default (:func:`ntkpipe.core.train.train` with ``momentum=None``) and the value the
sweep writes into the run config of a momentum run whose ``training.momentum`` is null."""

STATUSES = ("ok", "lr_above_critical", "diverged", "missing", "catapult", "lr_between_critical")
"""Run statuses recorded by ``ntkpipe collect``, in this order (the summary's ``status_flag``
codes 0–5): finished, learning rate above η_crit (its values are kept), diverged (the network's
loss not finite or ending above its start), missing, catapult (the network converges while f_lin
diverges: listed, left out of fits), η between the full kernel's η_crit and the traced kernel's
(k > 1; values kept). New statuses are appended, so that the codes keep their meaning
(:mod:`ntkpipe.analysis.regime` states the criteria)."""


def kernel_parameterization(model: dict) -> str:
    """The parameterization whose tangent kernel and readout Gram a run's network has at
    initialization: ``ntk`` for μP and for the standard one with ``layer_rates: ntk`` (their
    kernels of the trained leaves equal the NTK parameterization's; see
    ``ntkpipe.core.models.DenseSpec.layer_scale``), else the run's own. Read by the sweep (which
    analytic kernels a run shares) and by ``ntkpipe.core.readout`` (the readout Gram)."""
    parameterization = model.get("parameterization", "ntk")
    if parameterization == "mup" or model.get("layer_rates", "uniform") == "ntk":
        return "ntk"
    return parameterization
