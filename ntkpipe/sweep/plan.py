"""The plan of a sweep before launch: every job's request, per rule and in total, and the caps.

:func:`sweep_jobs` lists the jobs the workflow submits (the same rules, the same resources as
``workflow/rules/config.smk`` computes from :mod:`ntkpipe.sweep.cost`), without the data files:
the shapes of each dataset are known (``ntkpipe.datasets.INPUT_SHAPES``). :func:`plan_rows`
sums them per rule, :func:`format_plan` prints the table of ``ntkpipe plan``, and
:func:`summary_line` the one line the workflow prints at start. :func:`limit_problems` names
every job whose request a partition would refuse (``resources.max_runtime`` /
``resources.max_mem_mb``); the workflow stops on them before any submission. A training job
longer than ``resources.max_runtime`` is not refused: it runs as consecutive segments of at most
the cap (:mod:`ntkpipe.sweep.segments`); the plan shows how many, and
:func:`segment_retries` gives its rule the retries they take.

Times are the requests (``runtime``, minutes, what SLURM reserves), not predictions: the
a-priori model asks with a margin (:data:`ntkpipe.sweep.cost.RUNTIME_MARGIN`), a calibrated one
with :data:`ntkpipe.sweep.cost.CALIBRATED_SAFETY`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

from ntkpipe.sweep import cost, cost_settings, stage_table, validate
from ntkpipe.sweep import ensemble as ensemble_plan
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep.sources import read_source
from ntkpipe.sweep.validate_checks import MissingDataWarning, data_files_optional

__all__ = [
    "plan_config",
    "Job",
    "RuleRow",
    "sweep_jobs",
    "plan_rows",
    "format_plan",
    "summary_line",
    "limit_problems",
    "segment_retries",
]

_SWEEP_RULES = tuple(row.rule for row in stage_table.STAGES if row.scope == "sweep")


class Job(NamedTuple):
    """One job of the sweep and what it asks for."""

    rule: str
    name: str  # run id, analytic key, sweep point, or the sweep's name
    mem_mb: int
    runtime: int  # minutes
    gpu: int
    written: float  # bytes of its stores
    segments: int = 1  # consecutive jobs it runs as (above the wall-time cap: > 1)


class RuleRow(NamedTuple):
    """One rule's jobs summed: the line of the plan table."""

    rule: str
    jobs: int
    device: str  # cpu or gpu
    total_min: int
    largest_min: int
    largest_mem_mb: int
    written: float
    segments: int  # the most segments of one of its jobs (1: none is split)


def plan_config(path: str | Path, root: str | Path = ".") -> tuple[str, list[str]]:
    """The plan table of a sweep config file, and its warnings (missing data files, jobs
    above the caps); works without the data files.

    Args:
        path: the sweep config (YAML), as given to ``snakemake --configfile``.
        root: the working directory the workflow would run in (data and calibration paths).

    Raises:
        ConfigError: an invalid config (every problem, as the workflow reports it).
    """
    raw, _ = read_source(Path(path))
    raw = dict(raw)
    with warnings.catch_warnings(record=True) as warned, data_files_optional():
        warnings.simplefilter("always", MissingDataWarning)
        settings = cost_settings.load_settings(raw.pop("resources", None), root)
        sweep = validate.load_config(raw)
        jobs = sweep_jobs(sweep, settings)
    notes = [
        f"data files missing (a real run stops): {m}" for m in {str(w.message) for w in warned}
    ]
    notes += [f"refused (above a cap): {problem}" for problem in limit_problems(jobs, settings)]
    return format_plan(jobs, sweep["name"]), notes


def sweep_jobs(sweep: dict, settings: dict, runs: list | None = None) -> list[Job]:
    """Every job the workflow submits for a sweep (local config rules left out).

    Args:
        sweep: the sweep configuration (``ntkpipe.sweep.validate.load_config``; no ``resources``).
        settings: :func:`ntkpipe.sweep.cost_settings.load_settings` of its ``resources`` section.
        runs: ``expand_runs(sweep)`` where the caller has it (the workflow).
    """
    runs = ntk_runs.expand_runs(sweep) if runs is None else list(runs)
    jobs = []
    for run in runs:
        for rule in _run_rules(run.config, settings):
            jobs.append(_job(rule, run.run_id, run.config, settings))
    analytic = {}
    for run in runs:
        if run.config["kernels"]["analytic"]:
            analytic.setdefault(ntk_runs.analytic_id(run), run.config)
    jobs += [_job("analytic", key, config, settings) for key, config in analytic.items()]
    if sweep["ensemble"]["members"] > 0:
        points = {}
        for run in runs:
            points.setdefault(ensemble_plan.point_id(run.run_id), run.config)
        jobs += [_ensemble_job(point, config, sweep, settings) for point, config in points.items()]
    for rule in _SWEEP_RULES:
        asks = cost.sweep_resources(sweep, len(runs), rule, 1, settings)
        written = cost.rule_written_bytes({**sweep, "n_runs": len(runs)}, rule)
        jobs.append(Job(rule, sweep["name"], asks["mem_mb"], asks["runtime"], 0, written))
    return jobs


def plan_rows(jobs: list[Job]) -> list[RuleRow]:
    """The jobs summed per rule, in the order the rules first appear."""
    by_rule: dict[str, list[Job]] = {}
    for job in jobs:
        by_rule.setdefault(job.rule, []).append(job)
    return [
        RuleRow(
            rule=rule,
            jobs=len(group),
            device="gpu" if any(j.gpu for j in group) else "cpu",
            total_min=sum(j.runtime * j.segments for j in group),
            largest_min=max(j.runtime for j in group),
            largest_mem_mb=max(j.mem_mb for j in group),
            written=sum(j.written for j in group),
            segments=max(j.segments for j in group),
        )
        for rule, group in by_rule.items()
    ]


def format_plan(jobs: list[Job], name: str) -> str:
    """The table of ``ntkpipe plan``: one line per rule, then the totals."""
    head = f"{'rule':<13}{'jobs':>6}  {'on':<4}{'total':>11}{'largest':>11}{'memory':>10}"
    lines = [f"plan of sweep {name!r} (requests: time asked per job, peak memory)", head]
    for row in plan_rows(jobs):
        split = (
            f"  in up to {row.segments} segments of {_hours(row.largest_min)} (wall-time cap)"
            if row.segments > 1
            else ""
        )
        lines.append(
            f"{row.rule:<13}{row.jobs:>6}  {row.device:<4}{_hours(row.total_min):>11}"
            f"{_hours(row.largest_min):>11}{_size(row.largest_mem_mb * 2**20):>10}"
            f"  writes {_size(row.written)}{split}"
        )
    lines.append(summary_line(jobs))
    return "\n".join(lines)


def summary_line(jobs: list[Job]) -> str:
    """One line: jobs, GPU-hours and CPU-hours asked, the largest memory, the bytes written,
    and the jobs split into segments at the wall-time cap (hours: every segment's ask)."""
    gpu_hours = sum(j.runtime * j.segments * j.gpu for j in jobs) / 60
    cpu_hours = sum(j.runtime * j.segments for j in jobs if not j.gpu) / 60
    largest = max(j.mem_mb for j in jobs)
    written = sum(j.written for j in jobs)
    split = [j for j in jobs if j.segments > 1]
    segmented = (
        f"; {len(split)} jobs above the wall-time cap run as up to "
        f"{max(j.segments for j in split)} segments each"
        if split
        else ""
    )
    return (
        f"{len(jobs)} jobs, {gpu_hours:.1f} GPU-hours and {cpu_hours:.1f} CPU-hours asked, "
        f"at most {_size(largest * 2**20)} per job, {_size(written)} written{segmented}"
    )


def limit_problems(jobs: list[Job], settings: dict) -> list[str]:
    """Every job whose request exceeds ``resources.max_runtime`` / ``max_mem_mb`` of its
    partition kind, naming the job, its rule, the request, the cap and the ways out."""
    problems = []
    for job in jobs:
        kind = "gpu" if job.gpu else "cpu"
        max_runtime, max_mem_mb = settings["max_runtime"][kind], settings["max_mem_mb"][kind]
        over = []
        if job.runtime > max_runtime:
            over.append(
                f"asks {job.runtime} min ({_days(job.runtime)}), above "
                f"resources.max_runtime.{kind} = {max_runtime} min"
            )
        if job.mem_mb > max_mem_mb:
            over.append(
                f"asks {job.mem_mb} MB, above resources.max_mem_mb.{kind} = {max_mem_mb} MB"
            )
        if over:
            problems.append(
                f"{_what(job)} on a {kind.upper()}: {'; '.join(over)}. {_ways_out(job)}"
            )
    return problems


def segment_retries(jobs: list[Job], retries: int) -> dict[str, int]:
    """{rule: its retries} for the rules some of whose jobs run as segments: each segment after
    the first is a retry of the job, so the most segments of the rule's jobs − 1, plus
    ``retries`` (the profile's or ``--retries``, for real failures). Empty when no job is split.

    Args:
        jobs: the plan (:func:`sweep_jobs`).
        retries: Snakemake's global ``retries`` (``workflow.execution_settings.retries``, known
            in ``onstart``: the workflow sets each rule's ``restart_times`` there).
    """
    most: dict[str, int] = {}
    for job in jobs:
        if job.segments > 1:
            most[job.rule] = max(most.get(job.rule, 1), job.segments)
    return {rule: count - 1 + int(retries or 0) for rule, count in most.items()}


# ----------------------------------------------------------------------------- private


def _run_rules(config: dict, settings: dict) -> list[str]:
    if settings["jobs"] == "runs":
        return ["run"]
    return [row.rule for row in stage_table.wanted(config)]


def _job(rule: str, name: str, config: dict, settings: dict) -> Job:
    asks = cost.rule_resources(config, rule, 1, settings)
    written = cost.rule_written_bytes(config, rule)
    split = cost.rule_segments(config, rule, settings)
    return Job(rule, name, asks["mem_mb"], asks["runtime"], asks.get("gpu", 0), written, split)


def _ensemble_job(point: str, config: dict, sweep: dict, settings: dict) -> Job:
    asks = cost.ensemble_resources(config, sweep["ensemble"], 1, settings)
    members = {**config, "seeds": list(range(sweep["ensemble"]["members"]))}
    written = cost.rule_written_bytes(members, "ensemble")
    return Job("ensemble", point, asks["mem_mb"], asks["runtime"], asks.get("gpu", 0), written)


def _what(job: Job) -> str:
    if job.rule in _SWEEP_RULES:
        return f"rule {job.rule} of sweep {job.name!r}"
    if job.rule == "analytic":
        return f"rule analytic, analytic kernels {job.name!r}"
    if job.rule == "ensemble":
        return f"rule ensemble, sweep point {job.name!r}"
    return f"run {job.name!r}, rule {job.rule}"


def _ways_out(job: Job) -> str:
    ways = []
    if not job.gpu and job.rule in cost.GPU_RULES:
        ways.append("run it on a GPU (resources.gpu: 1; the rule is in resources.gpu_rules)")
    if job.rule not in _SWEEP_RULES and job.rule != "analytic":
        ways.append(
            "split its seeds over more jobs (a smaller seeds.per_job: each job vmaps its seeds)"
        )
    if job.rule in ("train", "run", "linear", "ensemble"):
        ways.append(
            "shorten training (training.steps). Only training runs as segments of one job at "
            "the cap (ntkpipe.sweep.segments): not an ensemble, a closed-form linear stage, a "
            "run job whose other stages do not fit one segment, nor a cap shorter than the "
            "job's start-up and its reserve"
        )
    ways.append("or raise the cap where the partition allows more")
    return "Ways out: " + "; ".join(ways) + "."


def _days(minutes: int) -> str:
    return f"{minutes / 1440:.1f} days" if minutes >= 1440 else f"{minutes / 60:.1f} h"


def _hours(minutes: float) -> str:
    return f"{minutes / 60:.1f} h" if minutes >= 60 else f"{minutes:.0f} min"


def _size(n_bytes: float) -> str:
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 2**10:.0f} KB"
