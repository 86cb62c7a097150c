"""Analytic kernels (rule ``analytic``, ``ntkpipe analytic``): the infinite-width NNGP K and
NTK Θ of a (data, model) point, shared by every width under the NTK parameterization.

Writes ``analytic.zarr``: ``nngp_*`` and ``ntk_*`` on ``train_train (train, train2)``,
``test_train (test, train)`` and ``test_test (test, test2)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ntkpipe.core import analytic as ntk_analytic
from ntkpipe.errors import StageError
from ntkpipe.jobs._job import load_data, stage_job
from ntkpipe.sweep import facts

__all__ = ["analytic"]

_PAIRS = {  # variable suffix → its dimensions
    "train_train": ("train", "train2"),
    "test_train": ("test", "train"),
    "test_test": ("test", "test2"),
}


def analytic(run: Path, out: Path, overwrite: bool = False) -> None:
    """Infinite-width K and Θ on train and test inputs (MLP family only)."""
    with stage_job(run, out, overwrite, rule="analytic") as job:
        config = job.config
        model = config["model"]
        if model["architecture"] != "fc":
            raise StageError(
                f"model.architecture: analytic kernels exist for 'fc' only, got "
                f"{model['architecture']!r}; set kernels.analytic: false"
            )
        data = load_data(config)
        kwargs = facts.kernel_arguments(model)
        pairs = {
            "train_train": (data.x_train, None),
            "test_train": (data.x_test, data.x_train),
            "test_test": (data.x_test, None),
        }
        variables = {}
        for name, (x1, x2) in pairs.items():
            nngp, ntk = ntk_analytic.kernels(x1, x2, **kwargs)
            variables[f"nngp_{name}"] = (_PAIRS[name], np.asarray(nngp))
            variables[f"ntk_{name}"] = (_PAIRS[name], np.asarray(ntk))
        block = config["kernels"]["block_size"]
        job.write(
            xr.Dataset(variables),
            stage="analytic",
            chunks={"train": block, "train2": block, "test": block, "test2": block},
        )
