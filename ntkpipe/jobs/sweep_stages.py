"""Sweep-level workflow stages: the ensemble of a sweep point, the summary, figures and report.

Each public function here is one `ntkpipe <command>` (see :mod:`ntkpipe.cli`) and one Snakemake
rule, like the per-run stages of :mod:`ntkpipe.jobs.stages` (init, kernels, analytic, train, linear,
compare), whose job helpers (:class:`ntkpipe.jobs.stages.Job`, the run's precision, the dataset and
network of a run config) these use. This module imports
:mod:`ntkpipe.jobs.stages`, never the reverse.

``ensemble`` trains one ensemble per sweep point (Fig. 2 / S1); ``collect`` gathers every run's
metrics (and the ensembles) into summary.zarr; ``figures`` and ``report`` draw from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ntkpipe.core import train as ntk_train
from ntkpipe.errors import StageError
from ntkpipe.io import stores as storage
from ntkpipe.jobs import stages

__all__ = ["collect", "ensemble", "figures", "report"]


# ---------------------------------------------------------------- summary (summary.zarr)


def collect(
    sweep: Path, runs: Path, out: Path, ensembles: Path | None = None, overwrite: bool = False
) -> None:
    """Every run's metrics in one dataset with the sweep axes as dimensions (summary.zarr).

    Given `ensembles` (the folder holding ``<point>/ensemble.zarr``), the ensemble of every sweep
    point is added (:func:`ntkpipe.jobs.ensemble.summarize`).
    """
    from ntkpipe.analysis import metrics
    from ntkpipe.sweep import runs as ntk_config

    job = stages.Job(sweep, out, overwrite)
    sweep_config = job.config
    found = {}
    for one in ntk_config.expand_runs(sweep_config):
        path = Path(runs) / one.run_id / "metrics.zarr"
        ds = storage.read_store(path, stage="metrics") if path.exists() else None
        found[one.run_id] = (one, ds)
    ds = metrics.summarize(sweep_config, found)
    stages.log(f"collect: {sum(v is not None for _, v in found.values())}/{len(found)} runs")
    if ensembles is not None:
        ds = metrics.in_schema_order(_with_ensembles(ds, sweep_config, Path(ensembles)))
    job.write(ds, stage="summary")


# ---------------------------------------------------------------- ensemble (Fig. 2 / S1)


@stages.in_run_precision
def ensemble(run: Path, out: Path, overwrite: bool = False) -> None:
    """Train an ensemble of networks (members vmapped, in chunks of ensemble.batch) and record
    their outputs on x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾ over training, next to the NTK-GP (Eq. 14–15),
    the readout-only NNGP dynamics and the NNGP posterior (Eq. 13) of the analytic kernels.
    """
    from ntkpipe.jobs import ensemble as ntk_ensemble
    from ntkpipe.sweep import ensemble as ensemble_plan

    job = stages.Job(run, out, overwrite)
    config = job.config
    problems = ensemble_plan.check_config(config)
    if problems:
        raise StageError("; ".join(problems))
    data, net = stages.load_data_and_network(config)
    training, section = config["training"], config["ensemble"]
    i1, i2 = ntk_ensemble.interpolation_pair(data.labels_train)
    alphas = np.linspace(0.0, 1.0, section["alphas"])
    x_line = ntk_ensemble.interpolation_inputs(data.x_train[i1], data.x_train[i2], alphas)
    y_line = np.zeros((len(alphas), data.y_train.shape[1]), dtype=data.y_train.dtype)
    steps = stages.record_steps(config)
    fx, losses = [], []
    for chunk in ensemble_plan.member_chunks(config):
        trajectory = ntk_train.train(
            net.apply,
            stages.init_params(net, chunk, data.x_train),
            data.x_train,
            data.y_train,
            x_line,
            y_line,
            loss="mse",
            optimizer="gd",
            learning_rate=training["learning_rate"],
            steps=training["steps"],
            record_steps=steps,
            progress=stages.log_progress,
        )
        fx.append(np.asarray(trajectory.fx_test))
        losses.append(np.asarray(trajectory.loss_train))
        stages.log(f"ensemble: members {chunk[0]}-{chunk[-1]} done, elapsed {job.elapsed():.1f} s")
    gp = ntk_ensemble.gp_predictions(
        data.x_train,
        data.y_train,
        x_line,
        steps,
        model=config["model"],
        learning_rate=training["learning_rate"],
    )
    ds = ntk_ensemble.ensemble_dataset(
        np.concatenate(fx),
        np.concatenate(losses),
        gp,
        members=ensemble_plan.member_seeds(config),
        steps=steps,
        alphas=alphas,
        learning_rate=training["learning_rate"],
        targets=(data.y_train[i1], data.y_train[i2]),
        indices=(i1, i2),
    )
    job.write(ds, stage="ensemble")


# ---------------------------------------------------------------- figures and report


def figures(summary: Path, out: Path) -> None:
    """Every figure that applies to the sweep, as SVG files in `out`."""
    from ntkpipe.analysis import plots

    Path(out).mkdir(parents=True, exist_ok=True)
    for path in plots.make_figures(storage.read_store(summary, stage="summary"), Path(out)):
        stages.log(f"figure: {path}")


def report(summary: Path, figures: Path, out: Path) -> None:
    """The self-contained HTML report of the sweep."""
    from ntkpipe.analysis import report as ntk_report

    paths = sorted(Path(figures).glob("*.svg")) + sorted(Path(figures).glob("*.png"))
    ntk_report.write_report(storage.read_store(summary, stage="summary"), paths, Path(out))
    stages.log(f"report: {out}")


def _with_ensembles(summary, sweep_config, folder: Path):
    from ntkpipe.jobs import ensemble as ntk_ensemble
    from ntkpipe.sweep import ensemble as ensemble_plan
    from ntkpipe.sweep import runs as ntk_config

    axes = list(ntk_config.sweep_axes(sweep_config))
    found, seen = [], set()
    for one in ntk_config.expand_runs(sweep_config):
        point = ensemble_plan.point_id(one.run_id)
        if point in seen:
            continue
        seen.add(point)
        found.append(
            (one.axes, storage.read_store(folder / point / "ensemble.zarr", stage="ensemble"))
        )
    stages.log(f"collect: {len(found)} ensemble(s)")
    attrs = summary.attrs
    merged = xr.merge(
        [summary, ntk_ensemble.summarize(axes, found)], join="outer", compat="override"
    )
    merged.attrs = attrs
    return merged
