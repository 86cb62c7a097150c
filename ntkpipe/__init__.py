"""ntkpipe: wide neural networks evolve as linear models (Lee et al., NeurIPS 2019), at scale.

The library's public modules (DESIGN.md, "Public library API")::

    from ntkpipe import models, kernels, analytic, linearize, dynamics, train

    net = models.mlp(depth=3, width=1024, out_dim=1, activation="relu")
    params = net.init(key, x)
    ntk = kernels.empirical_ntk(net.apply, params, x)            # [n, n]
    nngp, ntk_inf = analytic.kernels(x, depth=3, activation="relu", w_std=1.4, b_std=0.1)
    predict = dynamics.gradient_descent_mse(ntk, y, learning_rate=1.0)

Submodules are imported on first use, so that `import ntkpipe` (and the `ntkpipe` command, which
must pin XLA's threads before JAX starts) stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = [
    "analysis",
    "analytic",
    "claims",
    "config",
    "cost",
    "datasets",
    "dynamics",
    "kernels",
    "linearize",
    "metrics",
    "models",
    "plots",
    "report",
    "storage",
    "train",
    "validation",
]


def __getattr__(name: str):
    if name in __all__:
        module = importlib.import_module(f"ntkpipe.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'ntkpipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
