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
  ``null`` to ignore calibration.

The section is read by the workflow and never part of a run config: changing it changes how
jobs are scheduled, never what they compute, so it reruns nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from ntkpipe.errors import ConfigError
from ntkpipe.sweep.stage_table import GPU_RULES

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
    "gpu_rules": ["kernel_init", "kernel_final", "train", "linear", "ensemble", "run"],
    "jobs": "stages",
    "max_runtime": {"cpu": 2880, "gpu": 2880},
    "max_mem_mb": {"cpu": 240000, "gpu": 240000},
    "calibration": "results/calibration.json",
}
"""The ``resources`` section of a sweep config when it is absent (CPU only; caps of a typical
partition: 2 days, the memory of a 256 GB node; the calibration file ``ntkpipe calibrate``
writes, read when it exists)."""

DEVICE_KINDS = ("cpu", "gpu")
"""Kinds of partition (and of calibrated constants)."""
CONSTANT_KEYS = ("start_s", "s_per_flop", "base_mb", "mb_per_byte", "jobs")
"""Fields of one stage's calibrated constants (:mod:`ntkpipe.sweep.calibrate`)."""
_CAPS = {"max_runtime": "minutes", "max_mem_mb": "MB"}


def load_settings(section: dict | None, root: str | Path = ".") -> dict:
    """Validates the ``resources`` section of a sweep config and fills in its defaults.

    Args:
        section: the section as written (None: absent).
        root: the folder the ``calibration`` path is relative to (the working directory).

    Returns:
        ``gpu``, ``gpu_rules``, ``jobs``, ``max_runtime`` and ``max_mem_mb`` (each a mapping
        ``{cpu: …, gpu: …}``), ``calibration`` (the path or None) and ``constants`` (the
        calibrated constants per device kind and stage; empty without a calibration file).

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
    for kind, stages in constants.items():
        for stage, values in (stages or {}).items():
            good = isinstance(values, dict) and all(
                isinstance(values.get(key), int | float) and values[key] >= 0
                for key in CONSTANT_KEYS
            )
            if not good:
                raise ConfigError(
                    [f"{where}: constants.{kind}.{stage} must hold {', '.join(CONSTANT_KEYS)} ≥ 0"]
                )
    return constants


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
