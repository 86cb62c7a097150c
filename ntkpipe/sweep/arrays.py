"""SLURM job arrays (``--slurm-array-jobs`` of snakemake-executor-plugin-slurm ≥ 2.6): for which
rules of a sweep they are safe.

The plugin submits the ready jobs of one rule as one array, ``sbatch --array=1-N``, built from
the first job's resources only (2.8.0, ``Executor.run_array_jobs``: "Note: all jobs have the same
resource requirement. Thus, we can simply take the first job to extract the relevant parameters
for the sbatch call", then ``get_submit_command(jobs[0], …)`` and ``set_gres_string(jobs[0])``),
and it groups the ready jobs by rule name only (``Executor.run_jobs``). ntkpipe's requests differ
from run to run (memory and time grow with the width, depth, examples, seeds and steps of each
run, :mod:`ntkpipe.sweep.cost`), so an array of runs of different sizes would give every task
the first run's memory and time: the larger runs killed, the smaller ones over-asking. And a
retried job (its ``attempt`` asks for more) may share an array with first attempts.

So arrays are safe for a rule exactly when all its jobs in the sweep ask for the same memory,
time and GPUs and none runs as segments (each segment is a retry): :func:`array_safe_rules`.
That is a property of the sweep, not of the site, and Snakemake fixes the plugin's settings
before the Snakefile can see them, so the workflow profile cannot turn arrays on only where they
are safe; instead the workflow names the safe rules at start (:func:`array_note`) and refuses,
before any submission, a sweep whose ``--slurm-array-jobs`` names a rule where they are not
(:func:`array_problems`).

Light: no JAX.
"""

from __future__ import annotations

__all__ = ["array_safe_rules", "requested_rules", "array_problems", "array_note", "check_arrays"]


def array_safe_rules(jobs) -> list[str]:
    """The rules with two jobs or more, all asking for the same ``mem_mb``, ``runtime`` and
    ``gpu``, none of them in segments (rows of :func:`ntkpipe.sweep.plan.sweep_jobs`)."""
    asks: dict[str, set] = {}
    for job in jobs:
        asks.setdefault(job.rule, set()).add(_ask(job))
    counts = _counts(jobs)
    return [
        rule
        for rule, distinct in asks.items()
        if counts[rule] >= 2 and len(distinct) == 1 and next(iter(distinct))[3] == 1
    ]


def requested_rules(setting: str | None) -> set[str]:
    """The rules ``--slurm-array-jobs`` names, as the plugin reads it (``,`` or ``;``)."""
    if not setting:
        return set()
    return {name.strip() for name in setting.replace(";", ",").split(",") if name.strip()}


def array_problems(setting: str | None, jobs) -> list[str]:
    """Why ``--slurm-array-jobs=<setting>`` is not safe for this sweep (empty: it is)."""
    requested = requested_rules(setting)
    counts = _counts(jobs)
    safe = array_safe_rules(jobs)
    arrayed = set(counts) if "all" in requested else requested & set(counts)
    problems = []
    for rule in sorted(arrayed - set(safe)):
        group = [job for job in jobs if job.rule == rule]
        if counts[rule] < 2:
            continue  # one job: the plugin submits it on its own
        problems.append(
            f"rule {rule}: its {counts[rule]} jobs ask for {_spread(group)}; "
            "snakemake-executor-plugin-slurm gives every task of an array its first job's "
            "resources"
        )
    if problems:
        way = f"--slurm-array-jobs={','.join(safe)}" if safe else "no --slurm-array-jobs"
        problems.append(f"safe for this sweep: {way} (nothing was submitted)")
    return problems


def array_note(setting: str | None, jobs) -> str | None:
    """One line for the start of a SLURM sweep without arrays whose rules could use them."""
    if requested_rules(setting):
        return None
    safe = array_safe_rules(jobs)
    if not safe:
        return None
    n = sum(_counts(jobs)[rule] for rule in safe)
    return (
        f"ntkpipe: {n} jobs of rule {', '.join(safe)} ask for the same resources: "
        f"--slurm-array-jobs={','.join(safe)} submits them as SLURM job arrays"
    )


def _ask(job) -> tuple:
    return (job.mem_mb, job.runtime, job.gpu, getattr(job, "segments", 1))


def _counts(jobs) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.rule] = counts.get(job.rule, 0) + 1
    return counts


def _spread(group) -> str:
    parts = []
    for field, unit in (("mem_mb", " MB"), ("runtime", " min"), ("gpu", " GPUs")):
        values = sorted({getattr(job, field) for job in group})
        if len(values) > 1:
            parts.append(f"{values[0]}–{values[-1]}{unit}")
    split = max(getattr(job, "segments", 1) for job in group)
    if split > 1:
        parts.append(f"up to {split} segments (retries)")
    return ", ".join(parts) or "the same resources"


def check_arrays(executor: str, executor_settings, jobs) -> tuple[str | None, str | None]:
    """At the start of a sweep (``onstart``): (why to stop, or None; a note, or None).

    Args:
        executor: the executor plugin's name (only ``slurm`` has arrays).
        executor_settings: its settings (``array_jobs``: the ``--slurm-array-jobs`` value).
        jobs: the plan (:func:`ntkpipe.sweep.plan.sweep_jobs`).
    """
    if executor != "slurm":
        return None, None
    setting = getattr(executor_settings, "array_jobs", None)
    problems = array_problems(setting, jobs)
    if problems:
        return "ntkpipe: SLURM job arrays are not safe here:\n" + "\n".join(problems), None
    return None, array_note(setting, jobs)
