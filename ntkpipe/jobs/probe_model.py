"""The probe of custom models (``python -m ntkpipe.jobs.probe_model``), run by
:func:`ntkpipe.sweep.custom_model.probe` in a subprocess before any job.

Reads a JSON list of specs on stdin (``factory``, ``section``: the mapping the factory receives,
``nngp``), and prints one JSON line: for each spec ``{"errors": [...]}`` and, where there are
none, the parameters P, the FLOPs of a forward pass per example F (XLA's ``cost_analysis`` of
the compiled forward pass on :data:`~ntkpipe.sweep.custom_model.PROBE_BATCH` examples, divided
by it), the floats kept per example for backpropagation A (``memory_analysis``: the temporary
bytes of the compiled gradient of Σ f(x), per example and per float), the readout layer and
the layers. Everything is traced with abstract shapes: nothing of the run's width is allocated.
"""

from __future__ import annotations

import json
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.errors import StageError
from ntkpipe.jobs.custom_model import build_custom, custom_problems
from ntkpipe.sweep.custom_model import PROBE_BATCH

__all__ = ["probe_one", "main"]


def probe_one(factory: str, section: dict, nngp: bool) -> dict:
    """The probe's answer for one factory and model section (see the module docstring)."""
    dtype = np.float64 if section["precision"] == "float64" else np.float32
    model = {**section, "factory": factory, "architecture": "custom"}
    with jax.enable_x64(dtype == np.float64):
        try:
            net = build_custom(model, section["input_shape"], section["out_dim"], dtype)
        except StageError as err:
            return {"errors": [str(err)]}
        errors, params = custom_problems(
            net, section["input_shape"], section["out_dim"], dtype, nngp
        )
        if errors:
            return {"errors": errors}
        return {"errors": [], **_costs(net, params, section["input_shape"], dtype)}


def main() -> None:
    specs = json.loads(sys.stdin.read())
    answers = [probe_one(s["factory"], s["section"], s["nngp"]) for s in specs]
    print(json.dumps(answers), flush=True)


def _costs(net, params, input_shape, dtype) -> dict:
    x = jax.ShapeDtypeStruct((PROBE_BATCH, math.prod(input_shape)), dtype)
    forward = jax.jit(net.apply).lower(params, x).compile()
    backward = jax.jit(jax.grad(lambda p, xb: jnp.sum(net.apply(p, xb)))).lower(params, x)
    memory = backward.compile().memory_analysis()
    temp = float(getattr(memory, "temp_size_in_bytes", 0) or 0)
    from ntkpipe.core.models import kernel_leaves

    return {
        "params": int(sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))),
        "forward_flops": _flops(forward) / PROBE_BATCH,
        "activations": temp / PROBE_BATCH / np.dtype(dtype).itemsize,
        "layers": list(kernel_leaves(params)),
    }


def _flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list | tuple):  # older JAX: one dict per computation
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


if __name__ == "__main__":
    main()
