"""The workflow's start as one call: the steps of :mod:`ntkpipe.start` in the order Snakemake's
parse of ``workflow/rules/config.smk`` runs them, with their messages and exits.

``config.smk`` calls :func:`begin` once and binds the names the rules use (``SWEEP``, ``RUNS``,
``LAYOUT``, …) to the fields of the :class:`Started` it returns; ``stale.smk`` calls
:func:`refresh`. A problem stops the workflow with ``SystemExit(message)`` (as ``sys.exit`` in a
``.smk`` file did: Snakemake prints the message and exits 1); notes go to stderr. Unit tests:
tests/test_workflow_start.py, with a stand-in for Snakemake's ``workflow`` object.

What ``begin`` reads of Snakemake's ``workflow``: ``output_settings.dryrun``,
``is_main_process``, ``config_settings.configfiles`` and ``.config``, ``basedir``,
``global_resources``. Light: no JAX, no xarray.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

from ntkpipe import start, start_guard, workers
from ntkpipe.errors import ConfigError
from ntkpipe.io.lock import LockedError
from ntkpipe.sweep import arrays, plan
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep.layout import Layout
from ntkpipe.workers import pool as workers_pool

__all__ = ["Started", "begin", "refresh", "check_forced_inputs", "on_start"]


class Started(NamedTuple):
    """The sweep as the workflow runs it, and how this command runs."""

    sweep: dict  # the validated config (defaults filled in), without ``resources``
    settings: dict  # its ``resources`` section, loaded (cost_settings.load_settings)
    runs: dict  # run id → ntkpipe.sweep.runs.Run, in sweep order
    plan: list  # ntkpipe.sweep.plan.sweep_jobs ([] in a job's own snakemake)
    layout: Layout  # the sweep's results folder
    analytic: dict  # analytic key → the run standing for it
    ensembles: dict  # sweep point → the run of its first seed chunk ({}: no ensembles)
    dry_run: bool  # Snakemake's dry-run setting
    main: bool  # Snakemake's main process (not a job's own snakemake)
    writes: bool  # this command runs jobs: it holds the lock and may move stores aside
    origin: list  # the config files of this start (ntkpipe.start_guard.origin_of)
    replace: bool  # --config replace=true: it may replace another config's results
    argv: tuple  # the command line

    @property
    def jobs_per_stage(self) -> bool:
        """One job per stage of a run (else one job per run: run.smk)."""
        return self.settings["jobs"] == "stages"


def begin(workflow, argv, environ, *, err=None) -> Started:
    """Reads and checks the sweep, prints the plan line and notes, checks every job's memory,
    takes the results folder's lock when the command writes, and stops a dry run beside a
    running sweep.

    Args:
        workflow: Snakemake's ``workflow`` object (or a stand-in with the same attributes).
        argv: the command line (``sys.argv``): what Snakemake does not expose at parse time.
        environ: the environment (``os.environ``): the profile's variable is read, and
            ``NTKPIPE_JAX_CACHE`` set (if unset) to the sweep's compilation cache for the jobs.
        err: where notes go (default ``sys.stderr``).

    Raises:
        SystemExit: with the message, for a bad config, a job over a partition's caps or this
            machine's memory, a results folder another live process holds, a dry run beside it.
    """
    err = sys.stderr if err is None else err
    dry_run, main = bool(workflow.output_settings.dryrun), bool(workflow.is_main_process)
    settings = workflow.config_settings
    default = Path(workflow.basedir) / "config" / "config.yaml"
    overrides, replace = start_guard.pop_replace(settings.config)
    try:
        sweep, resources, runs, jobs, notes = start.read_sweep(
            settings.configfiles,
            overrides,
            default,
            dry_run=dry_run,
            with_plan=main,
        )
    except ConfigError as error:
        raise SystemExit(f"ntkpipe: invalid config\n{error}") from None
    _say(notes, err)
    if over := plan.limit_problems(jobs, resources):
        raise SystemExit(
            "ntkpipe: jobs a partition would refuse (nothing was submitted):\n" + "\n".join(over)
        )
    if jobs:
        _say([f"ntkpipe plan: {plan.summary_line(jobs)} (ntkpipe plan: per rule)"], err)
    layout = Layout.of(sweep["name"])
    # One JAX compilation cache for every job (ntkpipe.cli); jobs inherit it (SLURM: --export=ALL).
    environ.setdefault("NTKPIPE_JAX_CACHE", str(layout.jax_cache.resolve()))
    analytic = {ntk_runs.analytic_id(run): run for run in runs.values()}
    _say([start.large_sweep_note(len(runs), resources)], err)
    cap = workflow.global_resources.get("mem_mb")
    notes, problems = start.memory_check(
        runs.values(),
        resources,
        mem_cap=getattr(cap, "value", cap),
        dry_run=dry_run,
        argv=argv,
        environ=environ,
    )
    _say(notes, err)
    if problems:
        raise SystemExit("ntkpipe: invalid config\n" + "\n".join(problems))
    root = str(layout.root)
    writes = start.command_writes(argv, dry_run=dry_run, main_process=main)
    try:
        _say([start.take_lock(root) if writes else None], err)
    except LockedError as error:
        raise SystemExit(f"ntkpipe: {error}") from None
    if busy := start.dry_run_beside_a_writer(root, dry_run=dry_run, main_process=main):
        raise SystemExit(busy)
    if main:
        _say([start.left_out_note(layout, runs)], err)
    ensembles, problems = start.ensemble_points(sweep, runs)
    if problems:
        raise SystemExit("ntkpipe: invalid config\n" + "\n".join(problems))
    origin = start_guard.origin_of(settings.configfiles, default)
    return Started(
        sweep, resources, runs, jobs, layout, analytic, ensembles, dry_run, main, writes, origin,
        replace, tuple(argv),
    )  # fmt: skip


def refresh(started: Started, *, err=None) -> None:
    """In Snakemake's main process: rewrites stale config files and moves stale stores aside
    (:func:`ntkpipe.start.refresh`; only a command that writes changes anything), printing what
    it did or what a run would do; records the config files of the start.

    First (:mod:`ntkpipe.start_guard`): a start that would replace another config's results
    without ``--config replace=true`` stops (a dry run says so); a run whose jobs would re-read
    a corrupted store stops, naming it with the command that recomputes it (a dry run does not
    read the stores).

    Raises:
        SystemExit: with the message, for either.
    """
    if not started.main:
        return
    err = sys.stderr if err is None else err
    layout, runs = started.layout, started.runs
    stale = start.stale_stores(layout, runs) if layout.runs.is_dir() else {}
    problem = start_guard.replacement_problem(layout, started.sweep, stale, started.origin)
    replacing = bool(problem) and started.replace
    if problem and started.writes and not replacing:
        raise SystemExit(problem)
    if problem and not replacing:
        _say([f"{problem}\nntkpipe: warning (dry run): a real run stops here"], err)
    if started.writes and stale:
        corrupted = start_guard.corrupted_inputs(layout, runs, stale)
        if stop := start_guard.corruption_problem(layout, corrupted, started.argv):
            raise SystemExit(stop)
    stores = [layout.store("ensemble", point) for point in started.ensembles]
    lines = start.refresh(
        layout,
        started.sweep,
        runs,
        started.analytic,
        stores,
        writes=started.writes,
        stale=stale,
        replacing=replacing,
    )
    _say(lines, err)
    if started.writes:
        start_guard.record_origin(layout, started.origin)


def check_forced_inputs(started: Started, dag_settings) -> None:
    """``onstart`` (the DAG is built, no job has run, no output is deleted yet): the stores that
    jobs of rules forced with ``--forcerun`` (and of what follows them) will re-read are checked
    against their digests, as :func:`refresh` checks those of stale stores (Snakemake exposes
    ``--forcerun`` only after the Snakefile is read: ``dag_settings`` is Snakemake's
    ``workflow.dag_settings``, or any object with ``forcerun``, the forced rules).

    Raises:
        SystemExit: a corrupted store, named with the command that recomputes it.
    """
    forcerun = getattr(dag_settings, "forcerun", None)
    if not (started.main and started.writes and forcerun):
        return
    redone = start_guard.forced_stores(started.layout, started.runs, forcerun)
    corrupted = start_guard.corrupted_inputs(started.layout, started.runs, redone)
    if stop := start_guard.corruption_problem(started.layout, corrupted, started.argv):
        raise SystemExit(stop)


def on_start(started: Started, workflow, *, err=None, environ=None) -> None:
    """``onstart`` (the DAG is built and the executor known, no job has run): every check that
    needs them, in order, then the settings the jobs' scheduling needs.

    1. A sweep whose rules ask for GPUs, on an executor that cannot give them, stops
       (:func:`ntkpipe.start.placement_problem`).
    2. Stores that ``--forcerun`` jobs will re-read are checked (:func:`check_forced_inputs`).
    3. ``--slurm-array-jobs`` naming a rule whose jobs ask differently stops
       (:func:`ntkpipe.sweep.arrays.check_arrays`); otherwise a note says which rules could go
       as arrays.
    4. The scheduling settings are recorded for ``ntkpipe calibrate``.
    5. Each rule with jobs above ``resources.max_runtime`` gets one retry per extra segment
       (:func:`ntkpipe.sweep.plan.segment_retries`: Snakemake knows the global retries only
       now, so the rules' ``restart_times`` are set here).
    6. A local sweep without GPUs starts its pool of warm workers (:mod:`ntkpipe.workers`) and
       points the jobs at it (``$NTKPIPE_WORKERS`` in `environ`, default ``os.environ``: the
       local executor's jobs inherit it), unless ``resources.warm_workers: false``.

    Raises:
        SystemExit: with the message, for 1–3.
    """
    err = sys.stderr if err is None else err
    executor = workflow.executor_plugin.name
    if gpu := start.placement_problem(started.settings, executor, started.sweep["name"]):
        raise SystemExit(gpu)
    check_forced_inputs(started, workflow.dag_settings)
    stop, note = arrays.check_arrays(executor, workflow.executor_settings, started.plan)
    if stop:
        raise SystemExit(stop)
    _say([note], err)
    # resources.json says whether the jobs ran in warm workers: only if the pool did start
    warm = _uses_workers(started, executor, workflow) and _start_workers(
        started, workflow, environ, err
    )
    start.record_scheduling(started.layout, started.settings, warm_workers=warm)
    retries = plan.segment_retries(started.plan, workflow.execution_settings.retries)
    for rule, count in retries.items():
        workflow.get_rule(rule).restart_times = count
        _say(
            [
                f"ntkpipe: rule {rule}: {count} retries (its jobs above "
                "resources.max_runtime run as segments, each a retry)"
            ],
            err,
        )


def _start_workers(started: Started, workflow, environ, err) -> bool:
    """Start the pool and point the jobs at it (``$NTKPIPE_WORKERS`` in `environ`, default
    ``os.environ``); whether it started."""
    log = started.layout.logs / "workers.log"
    environ = os.environ if environ is None else environ
    try:
        environ[workers.SOCKET_ENV] = workers_pool.start(getattr(workflow, "cores", 1), log)
    except OSError as error:  # e.g. a $TMPDIR too long for a Unix socket's path
        _say([f"ntkpipe: no warm workers ({error}): every job runs in its own process"], err)
        return False
    return True


def _uses_workers(started: Started, executor: str, workflow) -> bool:
    """Whether this run's jobs go to warm workers: Snakemake's own executor, the jobs in
    Snakemake's own environment (no --use-conda or containers), no GPU, a command that runs
    jobs, and ``resources.warm_workers`` on."""
    settings = started.settings
    deployment = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", ())
    return (
        executor == "local"
        and not deployment
        and started.main
        and started.writes
        and settings.get("warm_workers", True)
        and not settings["gpu"]
    )


def _say(lines, err) -> None:
    for line in lines:
        if line:
            print(line, file=err)
