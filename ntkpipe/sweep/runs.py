"""Sweep configuration: expansion into runs, run identity, per-stage subsets.

A user writes one YAML file naming a base run (sections ``data``, ``model``,
``training``, ``kernels``, ``seeds``, ``precision``) and a ``sweep``: dotted config
paths mapped to lists of values. ``load_config`` reads it, checks it and fills in the
defaults (:mod:`ntkpipe.sweep.validate`; every problem is reported together in one
``ConfigError`` naming the field, the value and what is allowed).

``expand_runs`` turns a sweep into runs: one per grid point and chunk of
``seeds.per_job`` seeds. A run's id is a readable, stable relative path built from the
swept values only, in the order of the sweep section, then the seeds, e.g.
``width~1024/n_train~128/seeds~0-1``; it is a directory name and a Snakemake wildcard,
so swept strings may only use letters, digits and ``_ . -``.

``stage_config`` gives the part of a run's configuration a stage depends on, so that
changing, e.g., the learning rate reruns training but not init-sampling.

Which module holds what:

* :mod:`ntkpipe.sweep.sources`: reading one YAML / JSON file or mapping (``read_source``,
  ``deep_update``); :mod:`ntkpipe.sweep.loading`: files and overrides merged;
  :mod:`ntkpipe.sweep.validate`: the JSON schema and its defaults, the cross-field checks, the
  error messages (``load_config``, ``load_schema``, ``SCHEMA_PATH``, ``sweepable_fields``);
  :mod:`ntkpipe.sweep.points`: one sweep point's values (``output_dim``, ``axis_name``, …).
* this module: runs and their identity (``Run``, ``expand_runs``, ``load_run_config``,
  ``sweep_axes``, ``seed_chunks``, ``analytic_id``, the run-id patterns), stage subsets
  (``STAGES``, ``STAGE_LEAVES_OUT``, ``stage_config``) and the file helpers of the workflow
  (``to_json``, ``write_if_changed``). It re-exports nothing of those modules: import each
  name from its own module.
"""

import copy
import itertools
import json
import re
from dataclasses import dataclass

from ntkpipe import conventions
from ntkpipe.conventions import DEFAULT_MOMENTUM
from ntkpipe.errors import ConfigError
from ntkpipe.io import atomic
from ntkpipe.sweep import stage_table
from ntkpipe.sweep.points import assign, axis_name, format_value
from ntkpipe.sweep.sources import read_source
from ntkpipe.sweep.validate import VALUE_PATTERN, load_config, sweepable_fields

__all__ = [
    "STAGES",
    "STAGE_LEAVES_OUT",
    "run_id_pattern",
    "RUN_ID_PATTERN",
    "ANALYTIC_ID_PATTERN",
    "Run",
    "load_run_config",
    "expand_runs",
    "sweep_axes",
    "seed_chunks",
    "stage_config",
    "file_config",
    "analytic_id",
    "write_if_changed",
    "to_json",
]

# Sections a stage depends on. init-sampling and the kernels at θ₀ (empirical and
# analytic) do not depend on training: changing the learning rate must not rerun them.
# The analytic kernels are narrower still (see stage_config): no seeds, and no width
# under the NTK parameterization, so one analytic store serves every width and seed.
# The ensemble section is read by the ensemble rule only (one job per sweep point, Fig. 2):
# no per-run stage depends on it, so changing ensemble.members reruns no training job.
_INIT_SECTIONS = ("data", "model", "kernels", "seeds", "precision")
_CONFIG_SECTIONS = {
    "model.json": _INIT_SECTIONS,
    "analytic.json": ("data", "model", "kernels", "precision"),
    "run.json": None,
    "ensemble.json": None,
}
_CONFIG_LEAVES_OUT = {
    "run.json": ("ensemble",),
    "ensemble.json": ("seeds", "run_id"),  # the members have their own seeds (ensemble.seed)
}
STAGES = {
    row.rule: _CONFIG_SECTIONS[row.config_file]
    for row in stage_table.STAGES
    if row.config_file in _CONFIG_SECTIONS
}
"""Stage name → sections of the run config it depends on (None: all of them but
``STAGE_LEAVES_OUT[stage]``), from the config file the stage reads
(:data:`ntkpipe.sweep.stage_table.STAGES`)."""
STAGE_LEAVES_OUT = {
    row.rule: _CONFIG_LEAVES_OUT[row.config_file]
    for row in stage_table.STAGES
    if row.config_file in _CONFIG_LEAVES_OUT
}
"""Stage name → keys of the run config left out of its stage config (where STAGES is None)."""
_FILE_STAGES: dict = {}  # config file → the first stage reading it
for _row in stage_table.STAGES:
    if _row.config_file in _CONFIG_SECTIONS:
        _FILE_STAGES.setdefault(_row.config_file, _row.rule)

_AXIS = r"[A-Za-z0-9_]+"
_VALUE = VALUE_PATTERN
_SEEDS = r"seeds~[0-9]+(?:-[0-9]+|(?:_[0-9]+)*)"
run_id_pattern = rf"(?:{_AXIS}~{_VALUE}/)*{_SEEDS}"
"""Regex matching a run id (no anchors, no groups): a Snakemake wildcard constraint."""
RUN_ID_PATTERN = run_id_pattern
ANALYTIC_ID_PATTERN = rf"all|{_AXIS}~{_VALUE}(?:/{_AXIS}~{_VALUE})*"
"""Regex matching an ``analytic_id`` (a Snakemake wildcard constraint)."""

_AXIS_RE = re.compile(rf"^{_AXIS}$")
_RUN_ID_RE = re.compile(rf"^{run_id_pattern}$")
_RUN_KEYS = ("run_id", "seeds", "axes")


@dataclass(frozen=True)
class Run:
    """One job of a sweep: a grid point and a chunk of seeds.

    Attributes:
        run_id: readable stable relative path, e.g. "width~1024/n_train~128/seeds~0-1".
        axes: short axis name (last component of the dotted path) → value, in the
            order of the sweep section.
        seeds: the network seeds of this job (vmapped together).
        config: the fully resolved configuration of this run: the sweep section
            removed, the swept values set, ``seeds`` replaced by the list of this
            job's seeds, and ``run_id`` and ``axes`` added. JSON-serializable.
    """

    run_id: str
    axes: dict
    seeds: tuple
    config: dict


def load_run_config(source):
    """Reads and validates one run's resolved configuration (as written for a stage).

    Args:
        source: path of the run's JSON file, or the mapping itself (``Run.config``).

    Returns:
        The run configuration, normalized like ``load_config`` does.

    Raises:
        ConfigError: a missing or malformed run id, seeds or field.
    """
    raw, origin = read_source(source)
    missing = [k for k in _RUN_KEYS if k not in raw]
    errors = [f"{k}: missing; a run config has {', '.join(_RUN_KEYS)}" for k in missing]
    run_id = raw.get("run_id")
    if "run_id" in raw and not (isinstance(run_id, str) and _RUN_ID_RE.match(run_id)):
        errors.append(f"run_id: {run_id!r} does not match {run_id_pattern}")
    seeds = raw.get("seeds")
    if "seeds" in raw and not (isinstance(seeds, list) and seeds):
        errors.append(f"seeds: {seeds!r} must be a non-empty list of seeds")
    if errors:
        raise ConfigError(errors, source=origin)
    base = {k: v for k, v in raw.items() if k not in _RUN_KEYS}
    base["seeds"] = {"list": seeds, "per_job": len(seeds)}
    config = load_config(base)
    if config["sweep"]:
        raise ConfigError(["sweep: a run config has no sweep section"], source=origin)
    return _run_config(config, run_id, raw["axes"], config["seeds"]["list"])


def expand_runs(config):
    """Expands a sweep into runs: one per grid point × chunk of ``seeds.per_job`` seeds.

    Grid points are the product of the sweep lists, the first key varying slowest;
    within a point, seed chunks in order.

    Args:
        config: a path, a raw mapping or a configuration from ``load_config``.

    Returns:
        A list of ``Run``, with unique run ids.
    """
    config = load_config(config)
    axes = sweep_axes(config)
    runs = []
    for point in itertools.product(*config["sweep"].values()):
        values = dict(zip(axes, point, strict=True))
        point_config = assign(config, dict(zip(config["sweep"], point, strict=True)))
        prefix = "".join(f"{a}~{format_value(v)}/" for a, v in values.items())
        for seeds in seed_chunks(config):
            run_id = f"{prefix}seeds~{_format_seeds(seeds)}"
            runs.append(
                Run(run_id, dict(values), seeds, _run_config(point_config, run_id, values, seeds))
            )
    return runs


def sweep_axes(config):
    """Short axis name → list of values, in the order of the sweep section.

    The short name is the last component of the dotted path (``model.width`` →
    ``width``); it names the axis in run ids and in the summary dataset.
    """
    return {axis_name(key): list(values) for key, values in config["sweep"].items()}


def seed_chunks(config):
    """The seeds of a sweep point cut into jobs of ``seeds.per_job`` (the last may be short).

    Returns:
        A list of tuples of ints: ``seeds.list`` if given, else ``seeds.start`` …
        ``seeds.start + seeds.count − 1``, in order.
    """
    seeds = config["seeds"]
    if isinstance(seeds, list):  # a run config: its own seeds, one job
        return [tuple(seeds)]
    if seeds["list"] is not None:
        all_seeds = list(seeds["list"])
    else:
        all_seeds = list(range(seeds["start"], seeds["start"] + seeds["count"]))
    size = seeds["per_job"]
    return [tuple(all_seeds[i : i + size]) for i in range(0, len(all_seeds), size)]


def stage_config(run_config, stage):
    """The part of a run configuration that a stage's results depend on.

    init / kernel_init depend on data, model, kernels, seeds and precision only, not
    on training; train / linear / kernel_final / compare on everything but the ``ensemble``
    section (read by the ensemble rule only), so that changing ``ensemble.members`` reruns
    no training job. The ensemble (one job per sweep point) depends on everything but the
    run's ``seeds`` and ``run_id`` (its members have their own seeds). The analytic
    (infinite-width) kernels depend on data, model, precision and kernels.block_size,
    not on the seeds, and not on model.width under the NTK parameterization (there it
    is set to None: the infinite-width limit). Writing this subset (not the whole
    config) as a stage's input means that changing, e.g., ``training.learning_rate``
    reruns training but not init-sampling.

    Args:
        run_config: a run's configuration (``Run.config``).
        stage: one of ``STAGES``.

    Returns:
        A new dict (a deep copy of the selected sections).
    """
    if stage not in STAGES:
        raise ValueError(f"stage: {stage!r} is not one of {', '.join(STAGES)}")
    sections = STAGES[stage]
    if sections is None:
        left_out = STAGE_LEAVES_OUT[stage]
        return {k: copy.deepcopy(v) for k, v in run_config.items() if k not in left_out}
    subset = {k: copy.deepcopy(run_config[k]) for k in sections if k in run_config}
    if "training" in run_config and "training" not in sections and stage != "analytic":
        # The loss sets the number of outputs k (one logit per class for cross-entropy).
        subset["training"] = {"loss": run_config["training"]["loss"]}
    if stage == "analytic":
        subset["kernels"] = {"block_size": run_config["kernels"]["block_size"]}
        if not _analytic_uses_width(run_config):
            subset["model"]["width"] = None
    return subset


def file_config(run_config, config_file):
    """The content of a stage's config file (``model.json``, ``run.json``, ``analytic.json``,
    ``ensemble.json``) for a run: :func:`stage_config` of the first stage reading it.

    Raises:
        ValueError: no stage reads `config_file`.
    """
    if config_file not in _FILE_STAGES:
        raise ValueError(f"config_file: {config_file!r} is not one of {', '.join(_FILE_STAGES)}")
    return stage_config(run_config, _FILE_STAGES[config_file])


def analytic_id(run):
    """Key of the analytic kernels a run needs, shared by runs whose analytic stage
    config (``stage_config(..., "analytic")``) is equal.

    Built like a run id from the run's swept values that the analytic kernels depend
    on (data and model axes, precision, kernels.block_size; not the width under the
    NTK parameterization, not seeds or training), e.g. "n_train~128"; "all" when none
    is swept. Matches ``ANALYTIC_ID_PATTERN``.

    Args:
        run: a ``Run`` or its ``config``.
    """
    config = run.config if isinstance(run, Run) else run
    paths = {axis_name(p): p for p in sweepable_fields()}
    parts = [
        f"{axis}~{format_value(value)}"
        for axis, value in config["axes"].items()
        if _analytic_depends_on(paths.get(axis, f"model.options.{axis}"), config)
    ]
    return "/".join(parts) or "all"


def write_if_changed(path, text):
    """:func:`ntkpipe.io.atomic.write_if_changed` (here for Snakemake rules that import only
    the sweep; io.atomic needs the standard library alone)."""
    return atomic.write_if_changed(path, text)


def to_json(config):
    """Canonical JSON text of a configuration (sorted keys), ending in a newline.

    Equal configurations give equal text, whatever the key order of the YAML file, so a
    file written with ``storage.write_if_changed`` changes only when the content does.
    """
    return json.dumps(config, indent=2, sort_keys=True, allow_nan=False) + "\n"


# ----------------------------------------------------------------------------- private


def _run_config(point_config, run_id, axes, seeds):
    config = {k: copy.deepcopy(v) for k, v in point_config.items() if k != "sweep"}
    training = config.get("training", {})
    if training.get("optimizer") == "momentum" and training.get("momentum") is None:
        training["momentum"] = DEFAULT_MOMENTUM
    config["seeds"] = list(seeds)
    config["run_id"] = run_id
    config["axes"] = copy.deepcopy(dict(axes))
    return config


def _analytic_uses_width(config):
    # Under the standard parameterization the infinite-width kernels still scale with
    # the width (W ~ N(0, σ_w²/n_in) in the readout's tangent); under NTK (and μP, and the
    # standard one with ntk layer rates, whose kernels are NTK's) they do not.
    return conventions.kernel_parameterization(config["model"]) != "ntk"


def _analytic_depends_on(path, config):
    if path == "model.width":
        return _analytic_uses_width(config)
    section = path.split(".")[0]
    return section in ("data", "model", "precision") or path == "kernels.block_size"


def _format_seeds(seeds):
    seeds = list(seeds)
    if len(seeds) == 1:
        return str(seeds[0])
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return "_".join(map(str, seeds))
