"""Every stage of one run in one job (``resources.jobs: runs``), for sweeps of thousands of runs.

The default layout gives each stage of a run its own Snakemake job (eight per run with the two
config files), so Snakemake reruns exactly the stages a change touches. A sweep of 10,000 runs is
then 80,000 jobs: Snakemake needs about a millisecond of CPU per job only to build its DAG, and
every job pays the start-up of a Python process with JAX (seconds). With ``resources.jobs: runs``
one job goes through the run's stages in order, in one process::

    init → kernel_init (Θ̂₀, K̂₀) → train → kernel_final (Θ̂_T, K̂_T) → linear (f_lin) → metrics

(``kernels.initial: false`` leaves out kernel_init, ``kernels.final: false`` kernel_final.)
Each stage is the same function (its module of :mod:`ntkpipe.jobs`, named by the stage table
:mod:`ntkpipe.sweep.stage_table`) on the same inputs as its own job would run, so the stores are
the same, array for array, in either layout, and a sweep can switch layouts without recomputing
anything. The job also writes the run's ``model.json`` and
``run.json`` (only when their content changes), so that any stage can be rerun by hand.

Stages already done are kept: a store in the run folder that is current by the one freshness
rule of both layouts (:func:`ntkpipe.io.provenance.stale_reason`: complete, computed from the
stage's current config, and from inputs whose content digests are the ones it recorded) is not
computed again. Changing the learning rate thus reruns the job, which keeps
``init.zarr`` and ``kernel_init.zarr`` and computes the rest; a job killed part-way leaves only
complete stores (:func:`ntkpipe.io.stores.write_store` is atomic) and its rerun goes on from the
last one. A store of another config is replaced. The job's output in the workflow
(``metrics.zarr``; Snakemake deletes it before the job runs) is always computed.

Stage reruns (:mod:`ntkpipe.stage_reruns`): ``until`` stops at one stage (it and the stages it
reads, transitively: ``snakemake --until kernel_init``), whose store is then the job's output;
``redo`` computes the named stages again even when current, and with them every stage that reads
them (``snakemake --forcerun train``: train, kernel_final, metrics; init, kernel_init and linear
kept).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from ntkpipe.errors import StageError
from ntkpipe.io import provenance
from ntkpipe.io import stores as storage
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep import stage_table

__all__ = ["RUN_STAGES", "given_run_config", "run_all_stages", "stage_plan", "write_config_files"]

RUN_STAGES = stage_table.RUN_STAGES
"""The stages of a run in the order one job computes them, with the stores each one reads
(a store of a stage the run leaves out, e.g. kernel_init.zarr with ``kernels.initial: false``,
is not read): rows of :data:`ntkpipe.sweep.stage_table.STAGES`."""

_CONFIG_STAGES = {}  # config file → the first stage reading it (its ntkpipe.sweep.runs stage)
for _row in RUN_STAGES:
    _CONFIG_STAGES.setdefault(_row.config_file, _row.rule)


def run_all_stages(
    run_config: dict,
    folder: Path,
    analytic: Path | None = None,
    log: Callable[[str], None] = print,
    *,
    until: str | None = None,
    redo: Iterable[str] = (),
) -> list[str]:
    """Computes every stage of one run that is not already done, in order, in this process.

    Args:
        run_config: the run's resolved configuration (the content of its ``run.json``: every
            later stage's config; ``model.json`` is derived from it).
        folder: the run folder, ``results/<sweep>/runs/<run_id>``; created if missing.
        analytic: the infinite-width kernels of the run (``analytic.zarr``), or None when the
            sweep has ``kernels.analytic: false``.
        log: where to say, per stage, whether it is computed or kept and why.
        until: a stage of the run: compute only it and the stages it reads (None: every stage).
        redo: stages to compute again even when current (and so every stage reading them).

    Returns:
        The names of the stages computed (the others were kept).

    Raises:
        StageError: the config is not a run config, ``analytic`` is missing, or ``until`` /
            ``redo`` names no stage of a run (or ``until`` one this run leaves out).
        StoreError: a stage's input store is corrupted (from the stage that reads it).
    """
    folder = Path(folder)
    _check_run_config(run_config)
    if analytic is not None and not storage.is_complete(analytic):
        raise StageError(f"--analytic: {analytic} is not a complete analytic store")
    plan = stage_plan(run_config, folder, analytic, until=until, redo=redo)
    configs = write_config_files(run_config, folder)
    paths = _store_paths(folder, analytic, {stage.rule for stage, _ in plan})
    computed = []
    for stage, reason in plan:
        out = folder / stage.store
        if reason is None:
            log(f"run: {stage.rule}: kept {out} (complete, same config, same inputs)")
            continue
        log(f"run: {stage.rule}: computing {out} ({reason})")
        _call(stage, configs[stage.config_file], paths, out)
        computed.append(stage.rule)
    return computed


def stage_plan(
    run_config: dict,
    folder: Path,
    analytic: Path | None = None,
    *,
    until: str | None = None,
    redo: Iterable[str] = (),
):
    """What :func:`run_all_stages` would do: ``[(stage, reason)]`` in order, where ``reason``
    says why the stage must be computed, or is None when its store is kept.

    The stages are the run's (:func:`ntkpipe.sweep.stage_table.wanted`), or with ``until`` that
    stage and those it reads (:func:`ntkpipe.sweep.stage_table.upstream`). The last one's store
    is the job's output (``metrics.zarr``, or ``until``'s): always computed, as the workflow
    asked for it. The others are computed when named in ``redo`` or when their store is not
    current (:func:`ntkpipe.io.provenance.stale_reason`: missing or incomplete, another config,
    a store it reads computed in this job or changed since).
    """
    folder = Path(folder)
    redo = set(redo)
    for flag, names in (("--until", [until] if until else []), ("--redo", sorted(redo))):
        _check_stage_names(flag, names)
    wanted = stage_table.upstream(until, run_config) if until else stage_table.wanted(run_config)
    if not wanted:
        raise StageError(
            f"--until {until}: this run leaves that stage out (kernels.initial or kernels.final "
            f"is false in its config)"
        )
    paths = _store_paths(folder, analytic, {stage.rule for stage in wanted})
    redone: set[str] = set()
    plan = []
    for stage in wanted:
        inputs = [paths[one.stage] for one in stage.inputs if paths[one.stage] is not None]
        if stage is wanted[-1]:
            reason = "the job's output"
        elif stage.rule in redo:
            reason = "asked to compute it again (--redo)"
        else:
            reason = _why_compute(stage, folder / stage.store, run_config, inputs, redone)
        if reason is not None:
            redone.add(stage.store)
        plan.append((stage, reason))
    return plan


def write_config_files(run_config: dict, folder: Path) -> dict[str, Path]:
    """The run folder's ``model.json`` and ``run.json``, as the per-stage workflow writes them
    (same text; rewritten only when it changes). Returns {file name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, stage in _CONFIG_STAGES.items():
        paths[name] = folder / name
        storage.write_if_changed(paths[name], _config_text(run_config, stage))
    return paths


def given_run_config(text: str | None, path: Path | None) -> dict:
    """The run config ``ntkpipe run`` is given: JSON text (``--config``, the workflow) or the
    run's run.json (``--run``).

    Raises:
        StageError: the text is not JSON, or the file is not a run config.
    """
    if text is None:
        from ntkpipe.jobs._job import load_run  # JAX: only for a run config read from a file

        return load_run(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise StageError(f"--config: not valid JSON ({error})") from error


# ----------------------------------------------------------------------------- private


def _call(stage, config_file: Path, paths: dict, out: Path) -> None:
    """Runs ``stage``'s function as its command would, with its input stores as keywords
    (None for a store of a stage the run leaves out)."""
    module = importlib.import_module(f"ntkpipe.jobs.{stage.module}")  # JAX starts here
    stores = {one.flag.lstrip("-").replace("-", "_"): paths[one.stage] for one in stage.inputs}
    if len(stage_table.COMMAND_RULES[stage.command]) > 1:  # the kernels job: which stage
        stores["rule"] = stage.rule
    getattr(module, stage.function)(run=config_file, **stores, out=out, overwrite=True)


def _why_compute(stage, out: Path, run_config, inputs, redone) -> str | None:
    """:func:`ntkpipe.io.provenance.stale_reason`: the freshness rule of both layouts."""
    config = ntk_runs.file_config(run_config, stage.config_file)
    return provenance.stale_reason(
        out, config, {p.name: p for p in inputs}, redone=redone, config_file=stage.config_file
    )


def _check_stage_names(flag: str, names) -> None:
    stages = [row.rule for row in RUN_STAGES]
    for name in names:
        if name not in stages:
            raise StageError(
                f"{flag}: {name!r} is not a stage of a run; one of {', '.join(stages)}"
            )


def _store_paths(folder: Path, analytic: Path | None, wanted) -> dict[str, Path | None]:
    """{stage: its store} for the stages of a run (None for those it leaves out), and the
    analytic store (None without one)."""
    paths = {s.rule: folder / s.store if s.rule in wanted else None for s in RUN_STAGES}
    return paths | {"analytic": analytic}


def _config_text(run_config: dict, stage: str) -> str:
    return ntk_runs.to_json(ntk_runs.stage_config(run_config, stage))


def _check_run_config(run_config) -> None:
    missing = [
        section
        for section in ("data", "model", "training", "kernels", "seeds", "run_id")
        if not isinstance(run_config, dict) or section not in run_config
    ]
    if missing:
        raise StageError(
            f"--config: not a run config written by the workflow (no {', '.join(missing)}); "
            f"pass the content of a run's run.json"
        )
