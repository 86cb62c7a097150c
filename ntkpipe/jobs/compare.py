"""Per-run comparison (rule ``compare``, ``ntkpipe compare``): f against f_lin.

Writes ``metrics.zarr`` (:func:`ntkpipe.analysis.metrics.run_metrics`).
"""

from __future__ import annotations

from pathlib import Path

from ntkpipe.core.readout import readout_gram_affine
from ntkpipe.io import stores as storage
from ntkpipe.jobs._job import stage_job

__all__ = ["compare"]


def compare(
    run: Path,
    train: Path,
    linear: Path,
    kernel_init: Path | None,
    out: Path,
    kernel_final: Path | None = None,
    analytic: Path | None = None,
    overwrite: bool = False,
) -> None:
    """Metrics of one run: f against f_lin, weight changes, kernel changes and errors.

    `kernel_init` is None without Θ̂₀ (``kernels.initial: false``): its metrics (η_crit, kernel
    changes and errors) are then NaN (:func:`ntkpipe.analysis.metrics.run_metrics`).
    """
    from ntkpipe.analysis import metrics

    stores = dict(train=train, linear=linear, kernel_init=kernel_init, kernel_final=kernel_final)
    stores["analytic"] = analytic
    with stage_job(run, out, overwrite, rule="compare", inputs=stores) as job:
        ds = metrics.run_metrics(
            job.config,
            trained=storage.read_store(train, stage="train"),
            linear=storage.read_store(linear, stage="linear"),
            kernel_init=_read(kernel_init, "kernels"),
            kernel_final=_read(kernel_final, "kernels"),
            analytic=_read(analytic, "analytic"),
            nngp_affine=_nngp_affine(job.config["model"]),
        )
        job.write(ds, stage="metrics")


def _nngp_affine(model: dict) -> tuple[float, float] | None:
    """(a, b) with the readout Gram K̂ = a·K + b (:func:`readout_gram_affine`); None for a
    non-MLP (no analytic K) or a standard network of depth 0 (its readout fan-in d_in is not in
    the config)."""
    if model.get("architecture", "fc") != "fc":
        return None
    try:
        return readout_gram_affine(model)
    except ValueError:
        return None


def _read(path: Path | None, stage: str):
    return storage.read_store(path, stage=stage) if path else None
