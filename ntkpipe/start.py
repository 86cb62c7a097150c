"""The workflow's start: what Snakemake's main process does before any job (config.smk and
stale.smk call it; tests/test_start.py tests it).

1. Read and check the sweep (:func:`read_sweep`): the config files and overrides
   (:mod:`ntkpipe.sweep.loading`), the schema and cross-field checks
   (:mod:`ntkpipe.sweep.validate`), the ``resources`` section (:mod:`ntkpipe.sweep.cost_settings`),
   the runs (:mod:`ntkpipe.sweep.runs`) and the plan (:mod:`ntkpipe.sweep.plan`); a dry run
   turns missing data files into warnings. :func:`resolve_sweep` is the same reading for
   ``ntkpipe validate``.
2. Check every job's memory (:func:`memory_check`) against ``--resources mem_mb`` or, when jobs
   run on this machine, its memory.
3. Take the results folder's lock (:func:`take_lock`) when the command runs jobs
   (:func:`command_writes`).
4. Rewrite config files that differ from the sweep and remove stale stores (:func:`refresh`),
   judged from the stores' own records (:func:`stale_stores`), not from .snakemake/.

Whether a command writes: Snakemake exposes a dry run (``workflow.output_settings.dryrun``) and
whether this is its main process at parse time, but not which DAG operation follows (``--touch``,
``--dag``, ``--lint``, ``--unlock``, … are chosen after the Snakefile is read): those come from
the command line. Likewise whether jobs may run elsewhere (``--profile``, ``--executor``).

Top-level and light: sweep and the light io modules (provenance, lock), no JAX, no xarray.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import NamedTuple

from ntkpipe import start_guard
from ntkpipe.errors import ConfigError
from ntkpipe.io import lock, provenance
from ntkpipe.io.atomic import write_if_changed
from ntkpipe.sweep import (
    cost_settings,
    gpu_placement,
    left_out,
    loading,
    plan,
    stage_table,
    validate,
    validate_checks,
)
from ntkpipe.sweep import ensemble as ensemble_plan
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep.layout import Layout

__all__ = [
    "NOT_A_RUN",
    "ELSEWHERE",
    "Start",
    "read_sweep",
    "resolve_sweep",
    "memory_check",
    "command_writes",
    "jobs_run_elsewhere",
    "take_lock",
    "dry_run_beside_a_writer",
    "placement_problem",
    "left_out_note",
    "ensemble_points",
    "LARGE_SWEEP_RUNS",
    "large_sweep_note",
    "record_scheduling",
    "sweep_json",
    "stage_json",
    "stale_config_files",
    "stale_stores",
    "refresh",
]

NOT_A_RUN = frozenset(
    {
        "--dry-run",
        "--dryrun",
        "--dry_run",
        "--touch",
        "--lint",
        "--unlock",
        "--dag",
        "--rulegraph",
        "--filegraph",
        "--summary",
        "--detailed-summary",
        "--list",
        "--list-rules",
        "--delete-all-output",
        "--delete-temp-output",
        "--cleanup-metadata",
        "--list-changes",
        "--lc",
        "--li",
        "--lp",
        "--report",
    }
)
"""Snakemake flags of a command that runs no job (it may neither lock nor remove anything)."""
_NOT_A_RUN_SHORT = set("ntSDl")  # -n, -t, -S, -D, -l, also within -np
ELSEWHERE = frozenset(
    {"--profile", "--executor", "-e", "--workflow-profile", "--slurm", "--cluster"}
)
"""Snakemake flags under which jobs may run on other machines (their memory is not ours)."""


class Start(NamedTuple):
    """The sweep as the workflow runs it."""

    sweep: dict  # the validated config (defaults filled in), without ``resources``
    settings: dict  # cost_settings.load_settings of ``resources``
    runs: dict  # run id → ntkpipe.sweep.runs.Run, in sweep order
    plan: list  # ntkpipe.sweep.plan.sweep_jobs ([] when not asked)
    notes: list  # warnings to print (a dry run's missing data files)


def read_sweep(configfiles, overrides, default, *, dry_run=False, with_plan=True) -> Start:
    """Reads, checks and expands the sweep of these config files and ``--config`` overrides.

    Args:
        configfiles, overrides, default: as for :func:`ntkpipe.sweep.loading.resolve`.
        dry_run: missing data files are a warning (a dry run plans without them), not an error.
        with_plan: also plan every job (Snakemake's main process; a job's own snakemake not).

    Raises:
        ConfigError: every problem of the config (the workflow prints it and stops).
    """
    optional = validate_checks.data_files_optional() if dry_run else contextlib.nullcontext()
    with warnings.catch_warnings(record=True) as warned, optional:
        warnings.simplefilter("always", validate_checks.MissingDataWarning)
        raw, _ = loading.resolve(configfiles, overrides, default, validate.load_schema())
        settings = cost_settings.load_settings(raw.pop("resources", None))
        sweep = validate.load_config(raw)
        runs = {run.run_id: run for run in ntk_runs.expand_runs(sweep)}
        jobs = plan.sweep_jobs(sweep, settings, runs.values()) if with_plan else []
    notes = [
        f"ntkpipe: warning (dry run): {message}; a real run stops here"
        for message in sorted({str(w.message) for w in warned})
    ]
    return Start(sweep, settings, runs, jobs, notes)


def resolve_sweep(configfiles=(), overrides=None, default=None, memory_mb=None):
    """What the workflow runs for these files and overrides: the validated sweep and its runs.

    Args:
        configfiles, overrides, default: as for :func:`ntkpipe.sweep.loading.resolve`.
        memory_mb: memory a job may use (MiB); None: nothing checked against memory.

    Returns:
        ``(sweep, settings, runs)``: ``ntkpipe.sweep.validate.load_config`` of the merged mapping,
        ``ntkpipe.sweep.cost_settings.load_settings`` of its ``resources`` and the expanded runs.

    Raises:
        ConfigError: every problem, as the workflow reports it before any job.
    """
    overrides, _ = start_guard.pop_replace(overrides)  # the workflow's confirmation, not config
    raw, files = loading.resolve(configfiles, overrides, default, validate.load_schema())
    origin = files[-1] if files else None
    settings = cost_settings.load_settings(raw.pop("resources", None))
    sweep = validate.load_config(raw)
    expanded = ntk_runs.expand_runs(sweep)
    problems = validate_checks.memory_problems(
        expanded, settings, memory_mb, "this machine's memory"
    )
    if problems:
        raise ConfigError(problems, source=origin)
    return sweep, settings, expanded


def jobs_run_elsewhere(argv, environ) -> bool:
    """Whether this Snakemake command may run jobs on other machines (a profile, an executor):
    at parse time Snakemake has not chosen its executor yet, so the command line tells."""
    return bool(environ.get("SNAKEMAKE_PROFILE")) or any(
        arg.split("=")[0] in ELSEWHERE for arg in argv[1:]
    )


def memory_check(runs, settings, *, mem_cap, dry_run, argv, environ) -> tuple[list, list]:
    """Every run's jobs, as the cost model estimates them, against ``--resources mem_mb``
    (`mem_cap`) or, when jobs run on this machine, its memory.

    Returns:
        ``(notes, problems)``: a dry run here of a sweep meant for elsewhere gets notes (warnings
        to print); otherwise the problems stop the workflow.
    """
    where = "--resources mem_mb"
    here = mem_cap is None and not jobs_run_elsewhere(argv, environ)
    if here:
        mem_cap, where = validate_checks.machine_memory_mb(), "this machine's memory"
    problems = validate_checks.memory_problems(runs, settings, mem_cap, where)
    if problems and dry_run and here:
        return [f"ntkpipe: warning (dry run): {p}; a real run here stops" for p in problems], []
    return [], problems


def command_writes(argv, *, dry_run: bool, main_process: bool) -> bool:
    """Whether this Snakemake command runs jobs, so that it may take the results folder's lock
    and remove stale stores: Snakemake's main process, not a dry run (Snakemake's own setting),
    and no flag of `NOT_A_RUN` (-n, --touch, --lint, --dag, …) on the command line."""
    if dry_run or not main_process:
        return False
    for arg in argv[1:]:
        if arg.split("=")[0] in NOT_A_RUN:
            return False
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha():
            if set(arg[1:]) & _NOT_A_RUN_SHORT:
                return False
    return True


def dry_run_beside_a_writer(folder, *, dry_run: bool, main_process: bool) -> str | None:
    """Why a dry run stops here (None: it goes on): another live process is writing the results
    folder, whose running jobs' outputs Snakemake would call incomplete (and advise
    ``--cleanup-metadata``, harmful then). Names the writer (:func:`ntkpipe.io.lock.writer`)."""
    if not (dry_run and main_process):
        return None
    owner = lock.writer(folder)
    return None if owner is None else f"ntkpipe: {lock.busy_message(folder, owner)}"


def placement_problem(settings: dict, executor: str, name: str) -> str | None:
    """Why a GPU sweep must not start with this executor on this machine (None: it may); for
    ``onstart``, once the executor is known (:mod:`ntkpipe.sweep.gpu_placement`)."""
    problem = gpu_placement.local_gpu_problem(
        settings, executor, gpu_placement.gpus_on_this_machine(), name
    )
    return None if problem is None else f"ntkpipe: {problem}"


def left_out_note(layout: Layout, runs) -> str | None:
    """The note naming the finished runs this config no longer has (:mod:`ntkpipe.sweep.left_out`):
    the report will leave them out, and how to keep them."""
    left = left_out.finished_runs_left_out(layout, runs)
    return left_out.left_out_message(layout.root, left, list(runs))


def take_lock(folder):
    """The results folder's lock (:func:`ntkpipe.io.lock.acquire`), held until the process
    exits; its note (a dead writer's lock taken over) or None.

    Raises:
        ntkpipe.io.lock.LockedError: another live process holds it (naming it).
    """
    return lock.acquire(folder).note


def ensemble_points(sweep, runs) -> tuple[dict, list]:
    """Fig. 2 / S1: one ensemble per sweep point, {point: the run of its first seed chunk}
    ({} when ``ensemble.members`` is 0), and the config problems of those ensembles."""
    points = {}
    if sweep["ensemble"]["members"] > 0:
        for run in runs.values():
            points.setdefault(ensemble_plan.point_id(run.run_id), run)
    problems = {p for run in points.values() for p in ensemble_plan.check_config(run.config)}
    return points, sorted(problems)


LARGE_SWEEP_RUNS = 2000
"""From here on, one job per stage costs minutes of DAG building."""


def large_sweep_note(n_runs: int, settings: dict) -> str | None:
    """The advice to use one job per run for a sweep of `LARGE_SWEEP_RUNS` runs or more."""
    if settings["jobs"] != "stages" or n_runs < LARGE_SWEEP_RUNS:
        return None
    return (
        f"ntkpipe: {n_runs} runs, one job per stage: about {8 * n_runs} jobs. For sweeps "
        "this large, `resources: {jobs: runs}` (one job per run) builds the DAG about 7 times "
        "faster and starts one process per run instead of six (README, 'Sweeps of thousands "
        "of runs')."
    )


def record_scheduling(layout: Layout, settings: dict, warm_workers: bool = False) -> None:
    """Writes which rules ran on GPUs and whether jobs ran in warm workers (``resources.json``:
    gpu, gpu_rules, jobs, warm_workers), for ``ntkpipe calibrate`` (the device kind of each
    benchmark file; a warm worker's job has no process of its own to measure) and the report;
    only when it changes."""
    layout.root.mkdir(parents=True, exist_ok=True)
    scheduling = {key: settings[key] for key in ("gpu", "gpu_rules", "jobs")}
    scheduling["warm_workers"] = bool(warm_workers)
    write_if_changed(layout.resources_json, json.dumps(scheduling) + "\n")


# ---------------------------------------------------------------- config files and stale stores


def sweep_json(sweep) -> str:
    """The content of sweep.json: the validated sweep (not sorted: the order of the axes
    matters)."""
    return json.dumps(sweep, indent=1)


def stage_json(run, stage) -> str:
    """The part of `run`'s resolved config that `stage` depends on, as its config file's JSON."""
    return ntk_runs.to_json(ntk_runs.stage_config(run.config, stage))


def stale_config_files(layout: Layout, sweep, runs, analytic) -> dict:
    """{config file: its content now} of the config files (sweep.json, each run's model.json
    and run.json, each analytic.json) that differ from the sweep (hand-edited, or from an older
    config); rewriting them makes Snakemake rerun what reads them (their time is newer), without
    .snakemake/ metadata. `analytic`: {analytic key: the run standing for it}."""
    found = {}
    for path, content in [(layout.sweep_json, sweep_json(sweep))] + [
        (layout.config_file("analytic", akey), stage_json(run, "analytic"))
        for akey, run in analytic.items()
    ]:
        if path.is_file() and path.read_text() != content:
            found[path] = content
    for run_id, run in runs.items():
        for stage in ("init", "train"):
            path = layout.config_file(stage, run_id)
            if path.is_file():
                content = stage_json(run, stage)
                if path.read_text() != content:
                    found[path] = content
    return found


def stale_stores(layout: Layout, runs) -> dict:
    """{store: why} of the stores that must be computed again, read from the stores' own records
    (:func:`ntkpipe.io.provenance.stale_reason`), not from .snakemake/: a store whose config is
    not its job's config now (a changed sweep, a hand-edited run.json, a store of another run put
    at its path) or whose inputs changed since; and the stores that follow a missing or removed
    one (Snakemake would keep them, as their outputs exist: so a deleted store is recreated)."""
    found = {}
    for run_id, run in runs.items():
        if not layout.run_dir(run_id).is_dir():
            continue
        gone = set()
        for row in stage_table.wanted(run.config):
            store = layout.store(row.rule, run_id)
            inputs = {}
            for one in stage_table.reads(row.rule, run.config):
                path = _input_store(layout, one.stage, run)
                inputs[path.name] = path
                if not path.exists():
                    gone.add(path.name)
            if not store.exists():
                gone.add(row.store)
                continue
            config = ntk_runs.file_config(run.config, row.config_file)
            why = provenance.stale_reason(
                store, config, inputs, redone=gone, config_file=row.config_file
            )
            if why:
                found[store] = why
                gone.add(row.store)
    return found


def refresh(
    layout: Layout,
    sweep,
    runs,
    analytic,
    ensemble_stores,
    *,
    writes: bool,
    stale=None,
    replacing: bool = False,
) -> list:
    """Rewrites the stale config files and, when a run's metrics or an ensemble is missing,
    makes the summary, figures and report again; stale stores and those outputs are moved aside
    to ``layout.replaced/<time>/`` (never deleted: a sweep started under the name of another
    with another config must not destroy its results). All only when `writes`; returns the
    lines to print (what was done, or what a run would do). `stale`: :func:`stale_stores`, if
    the caller has it already; `replacing`: this start replaces another config's results
    (``--config replace=true``, :mod:`ntkpipe.start_guard`), whose summary, figures and report
    are set aside too (else the jobs would overwrite them)."""
    if not layout.runs.is_dir():
        return []
    lines = []
    when = "" if writes else " (when the sweep runs; this command changes nothing)"
    aside = layout.replaced / time.strftime("%Y%m%d-%H%M%S")
    for path, content in stale_config_files(layout, sweep, runs, analytic).items():
        if writes:
            write_if_changed(path, content)
        lines.append(f"ntkpipe: {path}: differs from the config; rewritten{when}")
    stale = stale_stores(layout, runs) if stale is None else stale
    for store, why in stale.items():
        if not writes:
            lines.append(f"ntkpipe: {store}: {why}; it will be computed again")
            continue
        lines.append(f"ntkpipe: {store}: {why}; moved aside, it is computed again")
        _set_aside(layout, Path(store), aside)
    # Snakemake does not rerun a job whose output exists because an input is missing (a new
    # run, a removed store), nor what follows it: the summary, figures and report go, and are
    # made again from every run.
    metrics = [layout.store("compare", run_id) for run_id in runs]
    missing = [str(p) for p in [*metrics, *map(Path, ensemble_stores)] if not p.exists()]
    if replacing and any(p.exists() for p in layout.derived):
        for path in layout.derived if writes else ():
            _set_aside(layout, path, aside)
        lines.append(f"ntkpipe: {layout.summary}, figures, report: of another config{when}")
    elif missing and any(p.exists() for p in layout.derived):
        note = f"{missing[0]} and {len(missing) - 1} more" if len(missing) > 1 else missing[0]
        for path in layout.derived if writes else ():
            _set_aside(layout, path, aside)
        lines.append(f"ntkpipe: {layout.summary}: {note} missing; computed again{when}")
    if aside.exists():
        lines.append(
            f"ntkpipe: what was replaced is kept in {aside} (same layout as the sweep's folder): "
            f"copy a store back to look at it, or drop them all with: rm -r {layout.replaced}"
        )
    return lines


def _set_aside(layout: Layout, path: Path, aside: Path) -> None:
    """Moves `path` (inside the sweep's folder) to the same place under `aside` (a rename on
    the same file system: no copy, whatever the store's size)."""
    if not path.exists():
        return
    target = aside / path.resolve().relative_to(layout.root.resolve())
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # the same store twice within a second
        target = target.with_name(f"{target.name}.{len(list(target.parent.iterdir()))}")
    os.replace(path, target)


def _input_store(layout: Layout, stage: str, run) -> Path:
    """The store of `stage` that `run` reads (the analytic one is shared: its analytic key)."""
    key = ntk_runs.analytic_id(run) if stage == "analytic" else run.run_id
    return layout.store(stage, key)
