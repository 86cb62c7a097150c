"""The workflow's start: the sweep as Snakemake runs it, read and checked before any job.

``resolve_sweep`` reads the config files and overrides (:mod:`ntkpipe.sweep.loading`), checks
them (:mod:`ntkpipe.sweep.validate`), reads the ``resources`` section
(:mod:`ntkpipe.sweep.cost_settings`), expands the runs (:mod:`ntkpipe.sweep.runs`) and checks
their memory (:mod:`ntkpipe.sweep.validate_checks`). It sits above all of them: none of them
imports it.

Light: no JAX, no xarray (the Snakefile imports it at every start).
"""

from __future__ import annotations

from ntkpipe.errors import ConfigError
from ntkpipe.sweep import cost_settings, loading, validate, validate_checks
from ntkpipe.sweep import runs as ntk_runs

__all__ = ["resolve_sweep"]


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
