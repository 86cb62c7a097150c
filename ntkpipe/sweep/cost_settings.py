"""The ``resources`` section of a sweep config: GPUs, job layout, partition caps, calibration.

Keys (defaults :data:`DEFAULT_SETTINGS`):

- ``gpu``: GPUs per job of the rules in ``gpu_rules`` (0: everything on CPUs);
- ``gpu_rules``: the rules that ask for them, a subset of
  :data:`ntkpipe.sweep.stage_table.GPU_RULES`;
- ``jobs``: ``stages`` (one job per stage of a run) or ``runs`` (one job per run);
- ``max_runtime`` (minutes) and ``max_mem_mb`` (MB): the largest job the partitions accept, one
  number for both kinds or ``{cpu: …, gpu: …}`` (CPU and GPU partitions differ). A sweep with a
  job above them is refused before any submission (:func:`ntkpipe.sweep.plan.limit_problems`);
- ``calibration``: the file of calibrated constants written by ``ntkpipe calibrate``
  (:mod:`ntkpipe.sweep.calibrate`), relative to the working directory; read when it exists,
  ``null`` to ignore calibration;
- ``warm_workers``: whether a local sweep (Snakemake's own executor, no GPU) runs its one-thread
  JAX jobs in warm worker processes that keep their imports and compiled programs
  (:mod:`ntkpipe.workers`); ``true`` by default.

The section is read by the workflow and never part of a run config: changing it changes how
jobs are scheduled, never what they compute, so it reruns nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ntkpipe.errors import ConfigError
from ntkpipe.sweep.stage_table import COST_STAGES, DEFAULT_GPU_RULES, GPU_RULES

__all__ = [
    "DEFAULT_SETTINGS",
    "JOB_LAYOUTS",
    "DEVICE_KINDS",
    "CONSTANT_KEYS",
    "load_settings",
    "read_constants",
]

JOB_LAYOUTS = ("stages", "runs")
"""``resources.jobs``: one job per stage of a run, or one job per run (every stage in it)."""
DEFAULT_SETTINGS = {
    "gpu": 0,
    "gpu_rules": list(DEFAULT_GPU_RULES),
    "jobs": "stages",
    "max_runtime": {"cpu": 2880, "gpu": 2880},
    "max_mem_mb": {"cpu": 240000, "gpu": 240000},
    "calibration": "results/calibration.json",
    "warm_workers": True,
}
"""The ``resources`` section of a sweep config when it is absent (CPU only; caps of a typical
partition: 2 days, the memory of a 256 GB node; the calibration file ``ntkpipe calibrate``
writes, read when it exists)."""

DEVICE_KINDS = ("cpu", "gpu")
"""Kinds of partition (and of calibrated constants)."""
CONSTANT_KEYS = ("start_s", "s_per_flop", "base_mb", "mb_per_byte", "jobs")
"""Fields of one stage's calibrated constants (:mod:`ntkpipe.sweep.calibrate`)."""
CONSTANT_RANGES = {
    "start_s": (0.0, 1e6),  # a job's fixed cost: at most ≈ 12 days
    "s_per_flop": (0.0, 1e-3),  # at least 1 kFLOP/s
    "base_mb": (0.0, 1e8),  # at most 100 TB
    "mb_per_byte": (0.0, 1e3),  # at most 1 kB resident per modelled byte
}
"""The plausible range of each calibrated constant; a value outside (``Infinity``, ``1e308``,
a negative number) is a damaged or hand-edited file, refused before it reaches a job's ask."""
_CAPS = {"max_runtime": "minutes", "max_mem_mb": "MB"}


def load_settings(section: dict | None, root: str | Path = ".") -> dict:
    """Validates the ``resources`` section of a sweep config and fills in its defaults.

    Args:
        section: the section as written (None: absent).
        root: the folder the ``calibration`` path is relative to (the working directory).

    Returns:
        ``gpu``, ``gpu_rules``, ``jobs``, ``max_runtime`` and ``max_mem_mb`` (each a mapping
        ``{cpu: …, gpu: …}``), ``calibration`` (the path or None), ``constants`` (the
        calibrated constants per device kind and stage; empty without a calibration file) and
        ``warm_workers``.

    Raises:
        ConfigError: every problem, naming the field, the value and what is allowed.
    """
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(
            [f"resources: {section!r} is not a mapping (keys {', '.join(DEFAULT_SETTINGS)})"]
        )
    errors = [
        f"resources.{key}: unknown key; allowed keys: {', '.join(DEFAULT_SETTINGS)}"
        for key in section
        if key not in DEFAULT_SETTINGS
    ]
    settings = {**DEFAULT_SETTINGS, **section}
    errors += _gpu_errors(settings)
    if settings["jobs"] not in JOB_LAYOUTS:
        errors.append(
            f"resources.jobs: {settings['jobs']!r} is not one of {', '.join(JOB_LAYOUTS)} "
            "(stages: one job per stage of a run; runs: one job per run, for sweeps of "
            "thousands of runs)"
        )
    caps = {}
    for key, unit in _CAPS.items():
        caps[key], problems = _cap(key, settings[key], unit)
        errors += problems
    calibration = settings["calibration"]
    if calibration is not None and not isinstance(calibration, str):
        errors.append(
            f"resources.calibration: {calibration!r} must be a file path (or null: no calibration)"
        )
    if not isinstance(settings["warm_workers"], bool):
        errors.append(
            f"resources.warm_workers: {settings['warm_workers']!r} must be true or false (true: "
            "a local sweep runs its one-thread JAX jobs in warm worker processes)"
        )
    if errors:
        raise ConfigError(errors)
    constants = {}
    if calibration is not None and (Path(root) / calibration).is_file():
        constants = read_constants(Path(root) / calibration)
    return {
        "gpu": settings["gpu"],
        "gpu_rules": list(settings["gpu_rules"]),
        "jobs": settings["jobs"],
        **caps,
        "calibration": calibration,
        "constants": constants,
        "warm_workers": settings["warm_workers"],
    }


def read_constants(path: str | Path) -> dict:
    """The calibrated constants of a file written by ``ntkpipe calibrate``.

    Returns:
        ``{device kind: {stage: {start_s, s_per_flop, base_mb, mb_per_byte, jobs}}}``.

    Raises:
        ConfigError: the file is not such a mapping (naming the file and the entry).
    """
    where = f"resources.calibration: {path}"
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError([f"{where}: not readable as JSON ({error})"]) from error
    constants = data.get("constants") if isinstance(data, dict) else None
    if not isinstance(constants, dict) or not set(constants) <= set(DEVICE_KINDS):
        raise ConfigError([f"{where}: no 'constants' mapping of {', '.join(DEVICE_KINDS)}"])
    errors = []
    for kind, stages in constants.items():
        if not isinstance(stages, dict):
            errors.append(f"{where}: constants.{kind} must map stages to constants, not {stages!r}")
            continue
        for stage, values in stages.items():
            errors += _constant_errors(f"{where}: constants.{kind}.{stage}", stage, values)
    if errors:
        raise ConfigError(errors + [f"{where}: rerun `ntkpipe calibrate`, or delete the file"])
    return constants


def _constant_errors(where: str, stage: str, values) -> list[str]:
    """What is wrong with one stage's calibrated constants (empty: nothing).

    Each constant is a finite number in its plausible range (:data:`CONSTANT_RANGES`), ``jobs``
    a count ≥ 1, and the constants predict some time and some memory for every job: with
    ``start_s = s_per_flop = 0`` or ``base_mb = mb_per_byte = 0`` every job would ask for
    nothing, and SLURM would give it the partition's default instead.
    """
    known = (*COST_STAGES, "run")
    if stage not in known:
        return [f"{where}: unknown stage {stage!r}; calibrated stages are {', '.join(known)}"]
    if not isinstance(values, dict) or set(values) != set(CONSTANT_KEYS):
        return [f"{where} must hold exactly {', '.join(CONSTANT_KEYS)}, not {values!r}"]
    errors = []
    for key, (low, high) in CONSTANT_RANGES.items():
        value = values[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not low <= value <= high:
            errors.append(
                f"{where}.{key}: {value!r} must be a finite number in [{low:g}, {high:g}]"
            )
    jobs = values["jobs"]
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        errors.append(f"{where}.jobs: {jobs!r} must be a whole number ≥ 1 (jobs fitted)")
    if not errors and values["start_s"] == 0 and values["s_per_flop"] == 0:
        errors.append(f"{where}: start_s and s_per_flop are both 0 (jobs would take no time)")
    if not errors and values["base_mb"] == 0 and values["mb_per_byte"] == 0:
        errors.append(
            f"{where}: base_mb and mb_per_byte are both 0 (every job would need no memory)"
        )
    return errors


def _gpu_errors(settings: dict) -> list[str]:
    errors = []
    gpu = settings["gpu"]
    if not isinstance(gpu, int) or isinstance(gpu, bool) or not 0 <= gpu <= 16:
        errors.append(f"resources.gpu: {gpu!r} must be an integer in 0 … 16 (GPUs per job)")
    rules = settings["gpu_rules"]
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        errors.append(f"resources.gpu_rules: {rules!r} must be a list of rule names")
    else:
        errors += [
            f"resources.gpu_rules: {rule!r} is not one of {', '.join(GPU_RULES)}"
            for rule in rules
            if rule not in GPU_RULES
        ]
    return errors


def _cap(key: str, value, unit: str) -> tuple[dict, list[str]]:
    """A cap as ``{cpu: …, gpu: …}`` from one number or a mapping, and its problems."""
    if isinstance(value, dict):
        unknown = [kind for kind in value if kind not in DEVICE_KINDS]
        if unknown:
            return {}, [
                f"resources.{key}: {unknown[0]!r} is not a partition kind; allowed: "
                f"{', '.join(DEVICE_KINDS)}"
            ]
        value = {**DEFAULT_SETTINGS[key], **value}
    else:
        value = dict.fromkeys(DEVICE_KINDS, value)
    problems = [
        f"resources.{key}{'' if len(set(map(str, value.values()))) == 1 else '.' + kind}: "
        f"{number!r} must be a positive integer ({unit})"
        for kind, number in value.items()
        if not isinstance(number, int) or isinstance(number, bool) or number < 1
    ]
    return value, sorted(set(problems))
