"""ntkpipe: wide neural networks evolve as linear models (Lee et al., NeurIPS 2019), at scale.

The library's public modules (docs/architecture.md, "Public library API")::

    from ntkpipe import models, kernels, analytic, linearize, dynamics, train

    net = models.mlp(depth=3, width=1024, out_dim=1, activation="relu")
    params = net.init(key, x)
    ntk = kernels.empirical_ntk(net.apply, params, x)            # [n, n]
    nngp, ntk_inf = analytic.kernels(x, depth=3, activation="relu", w_std=1.4, b_std=0.1)
    predict = dynamics.gradient_descent_mse(ntk, y, learning_rate=1.0)

These six live in :mod:`ntkpipe.core` (the pure math) and are re-exported here, imported on first
use, so that `import ntkpipe` (and the `ntkpipe` command, which must pin XLA's threads before JAX
starts) stays cheap.

Subpackages, and what each may import (enforced by tests/test_architecture.py):

- ``core``: the pure math — arrays and keys in, arrays out. Imports nothing of ntkpipe but
  ``errors`` and ``conventions``.
- ``sweep``: everything before any job (schema, validation, run expansion and ids, the stage
  table, the cost model). No JAX, no xarray: the Snakefile imports it at every start. Imports
  ``errors``, ``conventions``, ``datasets``' light facts, ``io.atomic`` (standard library only)
  and itself.
- ``io``: stores, checkpoints, atomic files. Stores a config as provenance, never interprets it.
  Imports ``errors`` and ``conventions``.
- ``analysis``: xarray in; xarray, figures and HTML out. Never imports ``core`` or ``jobs``.
- ``jobs``: one module per rule file; the only place that reads run configs and stores and calls
  ``core``. May import everything above.
- top level: ``errors``, ``conventions`` (constants shared by parts that may not import each
  other; imports nothing), ``datasets`` (numpy readers of the shipped and local data), ``start``
  (the workflow's start: sweep, plan, memory, lock, stale stores), ``cli`` and ``process`` (XLA
  threads and the compilation cache, set before JAX starts). Every part may import the package
  root itself (its version).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: The public library modules, re-exported from :mod:`ntkpipe.core`.
PUBLIC_MODULES = ("models", "kernels", "analytic", "linearize", "dynamics", "train")

__all__ = [*PUBLIC_MODULES, "datasets"]


def __getattr__(name: str):
    if name in PUBLIC_MODULES:
        module = importlib.import_module(f"ntkpipe.core.{name}")
    elif name == "datasets":
        module = importlib.import_module("ntkpipe.datasets")
    else:
        raise AttributeError(f"module 'ntkpipe' has no attribute {name!r}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
