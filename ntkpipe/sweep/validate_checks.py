"""Cross-field checks of a sweep configuration: what a schema cannot say, checked at every
grid point before any job (dataset sizes, files, optimizer options, seeds), and the memory the
cost model estimates for each run against the machine or the ``--resources mem_mb`` cap.

Part of :mod:`ntkpipe.sweep.validate` (``load_config`` runs :func:`grid_errors` and
:func:`momentum_errors`); the workflow and ``ntkpipe validate`` run :func:`memory_problems`
on the expanded runs.
"""

import contextlib
import functools
import itertools
import math
import os
import warnings
from pathlib import Path

from ntkpipe import datasets
from ntkpipe.datasets import arrays
from ntkpipe.sweep import facts
from ntkpipe.sweep import points as _v
from ntkpipe.sweep.cost_settings import DEFAULT_SETTINGS

__all__ = [
    "MissingDataWarning",
    "data_files_optional",
    "MIN_EXAMPLES",
    "MAX_SEED",
    "grid_errors",
    "momentum_errors",
    "lr_factor_errors",
    "resolve_lr_factor",
    "seed_range_errors",
    "custom_model_errors",
    "RESERVED_NAMES",
    "name_errors",
    "machine_memory_mb",
    "memory_problems",
]

MIN_EXAMPLES = 4
"""Fewest examples of a split (n_train, n_test): the per-run comparison keeps the outputs of the
first ``ntkpipe.analysis.metrics.N_SAMPLES`` (4) examples of each split in one ``sample``
dimension, so both splits must hold that many (tests check the two numbers agree)."""

MAX_SEED = 2**32 - 1
"""Largest network seed: ``jax.random.PRNGKey(s)`` keeps only the low 32 bits of s without x64
(float32 runs), so seed 2^32 would silently give seed 0's networks."""


class MissingDataWarning(UserWarning):
    """A dataset's files are missing where they are only needed later (a dry run, a plan)."""


_DATA_FILES_REQUIRED = [True]


@contextlib.contextmanager
def data_files_optional():
    """Within this block missing data files are a :class:`MissingDataWarning`, not an error
    (``snakemake -n``, ``ntkpipe plan``: the shapes of each dataset are known without them)."""
    _DATA_FILES_REQUIRED.append(False)
    try:
        yield
    finally:
        _DATA_FILES_REQUIRED.pop()


def grid_errors(config, axes, invalid):
    """Cross-field checks of every grid point; each problem once, with a point it occurs at."""
    seen, n_points = {}, math.prod(len(v) for v in axes.values())
    for point in itertools.product(*axes.values()):
        assignment = dict(zip(axes, point, strict=True))
        point_config = _v.assign(config, assignment)
        for message in _cross_errors(point_config, invalid - set(assignment)):
            seen.setdefault(message, []).append(assignment)
    return [_with_point(message, points, n_points) for message, points in seen.items()]


RESERVED_NAMES = ("README.md", Path(DEFAULT_SETTINGS["calibration"]).name)
"""Files that ``results/`` itself holds (its README; ``ntkpipe calibrate``'s shared constants,
``results/calibration.json``): a sweep of that name would turn the file into its folder."""


def name_errors(config, invalid):
    """``name`` that is one of :data:`RESERVED_NAMES` (compared without case: macOS and Windows
    file systems ignore it)."""
    name = config.get("name")
    if "name" in invalid or not isinstance(name, str):
        return []
    if name.casefold() in {reserved.casefold() for reserved in RESERVED_NAMES}:
        return [
            f"name: {name!r} is the name of a file results/ holds ({', '.join(RESERVED_NAMES)}); "
            f"give the sweep another name"
        ]
    return []


def momentum_errors(config, invalid):
    """training.momentum set (in the base config or as a sweep axis) where no run uses the
    momentum optimizer: gd and sgd would silently ignore it."""
    if {"training.momentum", "training.optimizer", "training", "sweep"} & set(invalid):
        return []
    sweep, training = config["sweep"], config["training"]
    given = sweep.get("training.momentum", [training["momentum"]])
    optimizers = sweep.get("training.optimizer", [training["optimizer"]])
    if all(value is None for value in given) or "momentum" in optimizers:
        return []
    return [
        f"training.momentum: {given[0] if len(given) == 1 else given} is set, but no run uses "
        f"training.optimizer momentum ({', '.join(sorted(set(optimizers)))} has no momentum "
        f"term, so it would be ignored); for SGD with momentum set training.optimizer: "
        f"momentum with a training.batch_size, else remove training.momentum"
    ]


def lr_factor_errors(raw, config, invalid):
    """training.lr_factor (η = factor × the run's η_crit) against what it needs: not together
    with training.learning_rate, Θ̂₀ computed (kernels.initial), no Fig. 2 ensemble (which
    trains at a fixed η without Θ̂₀), and numbers in a sweep of it."""
    if {"training", "sweep", "kernels", "ensemble"} & set(invalid):
        return []
    raw_training, raw_sweep = raw.get("training") or {}, raw.get("sweep") or {}
    factors = config["sweep"].get("training.lr_factor", [config["training"]["lr_factor"]])
    if all(value is None for value in factors):
        return []
    errors = []
    if None in factors:
        errors.append(
            f"training.lr_factor: a sweep of it takes numbers > 0; got {factors} (null would "
            "mean training.learning_rate, which is exclusive with lr_factor)"
        )
    rates = raw_sweep.get("training.learning_rate", [raw_training.get("learning_rate")])
    if any(rate is not None for rate in rates):
        errors.append(
            f"training.learning_rate: {rates[0] if len(rates) == 1 else rates} and "
            f"training.lr_factor: {factors[0] if len(factors) == 1 else factors} are exclusive "
            "(lr_factor gives each run η = lr_factor × its own η_crit); remove one of them"
        )
    initial = config["sweep"].get("kernels.initial", [config["kernels"]["initial"]])
    if not all(initial):
        errors.append(
            "kernels.initial: false, but training.lr_factor resolves η from η_crit of Θ̂₀ "
            "(kernel_init.zarr); set kernels.initial: true, or give training.learning_rate"
        )
    members = config["sweep"].get("ensemble.members", [config["ensemble"]["members"]])
    if any(members):
        errors.append(
            f"ensemble.members: {max(members)}, but the Fig. 2 ensembles train at one fixed "
            "training.learning_rate without Θ̂₀, and training.lr_factor gives none; set "
            "ensemble.members: 0 in an lr_factor sweep"
        )
    return errors


def resolve_lr_factor(config) -> None:
    """With training.lr_factor (fixed or swept) set, training.learning_rate is null in the
    loaded config: each run's η is resolved by its train and linear jobs from its η_crit."""
    factors = config["sweep"].get("training.lr_factor", [config["training"]["lr_factor"]])
    if any(value is not None for value in factors):
        config["training"]["learning_rate"] = None


def _with_point(message, points, n_points):
    if not points[0] or len(points) == n_points:
        return message  # no sweep, or a problem of every point
    label = "/".join(f"{_v.axis_name(k)}~{_v.format_value(v)}" for k, v in points[0].items())
    more = f" and {len(points) - 1} more" if len(points) > 1 else ""
    return f"{message} (at sweep point {label}{more})"


def _cross_errors(c, invalid):
    errors = []
    for fields, check in _CROSS_CHECKS:
        if not any(f in invalid or f.split(".")[0] in invalid for f in fields):
            errors += check(c)
    return errors


def _check_sizes(c):
    d = c["data"]
    if d["classes"] is None and d["dataset"] != "arrays":
        return [
            f"data.classes: null is only for data.dataset arrays with real-valued targets; "
            f"{d['dataset']} is a classification task: list its classes, e.g. [3, 8]"
        ]
    above = [(i, cls) for i, cls in enumerate(d["classes"] or ()) if cls > 9]
    if above and d["dataset"] != "arrays":  # any label ≥ 0 is allowed in an arrays file
        return [
            f"data.classes[{i}]: {cls} must be ≤ 9 (the classes of {d['dataset']} are 0 … 9)"
            for i, cls in above
        ]
    fewest = max(MIN_EXAMPLES, len(d["classes"] or ()))
    small = [
        f"data.{field}: {d[field]} is too few examples; at least {fewest} are needed (one per "
        f"class of data.classes {d['classes']}, and the comparison keeps the outputs of "
        f"{MIN_EXAMPLES} examples of each split)"
        for field in ("n_train", "n_test")
        if d[field] < fewest
    ]
    return small or datasets.size_problems(d["dataset"], d["classes"], d["n_train"], d["n_test"])


@functools.cache
def _missing_files_cached(dataset, root):
    return datasets.missing_files(dataset, root)


def _check_files(c):
    problem = _missing_files_cached(c["data"]["dataset"], c["data"]["root"])
    if problem and not _DATA_FILES_REQUIRED[-1]:
        warnings.warn(problem, MissingDataWarning, stacklevel=2)
        return []
    return [problem] if problem else []


def _check_batch(c):
    t, n_train = c["training"], c["data"]["n_train"]
    if t["optimizer"] == "sgd" and t["batch_size"] is None:
        return ["training.batch_size: null, but optimizer sgd needs a minibatch size ≤ n_train"]
    if t["optimizer"] == "gd" and t["batch_size"] is not None:
        return [
            f"training.batch_size: {t['batch_size']} is not used by optimizer gd (full "
            f"batch); set it to null, or choose optimizer sgd or momentum"
        ]
    if t["batch_size"] is not None and t["batch_size"] > n_train:
        return [
            f"training.batch_size: {t['batch_size']} is larger than data.n_train {n_train}; "
            f"allowed: 1 … {n_train}"
        ]
    return []


def _check_records(c):
    t = c["training"]
    if t["records"] > t["steps"] + 1:
        return [
            f"training.records: {t['records']} is more than the {t['steps'] + 1} steps "
            f"0 … training.steps; allowed: 2 … {t['steps'] + 1}"
        ]
    return []


def _check_analytic(c):
    arch = c["model"]["architecture"]
    if c["kernels"]["analytic"] and arch == "custom":
        return [
            "kernels.analytic: true, but a custom module has no infinite-width kernels (the "
            "analytic stage and the claims that need Θ and K are not applicable to it); leave "
            "kernels.analytic out (it is then false for custom models) or set it to false"
        ]
    if c["kernels"]["analytic"] and arch != "fc":
        return [
            f"kernels.analytic: true, but the analytic kernels exist only for "
            f"model.architecture fc (here {arch}); set kernels.analytic: false"
        ]
    return []


def _check_parameterization(c):
    """μP and per-tensor rates are defined for MLPs (ntkpipe.core.models.DenseSpec.layer_scale);
    ntk rates rescale the standard parameterization only; a μP ensemble's GP prior is not K."""
    m, errors = c["model"], []
    p, rates, arch = m["parameterization"], m["layer_rates"], m["architecture"]
    if arch != "fc" and (p == "mup" or rates != "uniform"):
        field = "parameterization: mup" if p == "mup" else f"layer_rates: {rates}"
        errors.append(
            f"model.{field} is defined for model.architecture fc only (here {arch}); use "
            "parameterization ntk or standard with layer_rates uniform for conv nets"
        )
    if rates == "ntk" and p != "standard":
        errors.append(
            f"model.layer_rates: ntk rescales the standard parameterization's rates to the NTK "
            f"parameterization's; with model.parameterization {p} set layer_rates: uniform"
        )
    if p == "mup" and c["ensemble"]["members"]:
        errors.append(
            "model.parameterization: mup with ensemble.members > 0: the ensemble's GP prior "
            "(Eq. 13) assumes f₀ ~ GP(0, K), but μP's f₀ has variance O(1/n); set "
            "ensemble.members: 0"
        )
    return errors


def _check_initial(c):
    """kernels.initial: false only where nothing reads Θ̂₀ (kernel_init.zarr)."""
    k, t = c["kernels"], c["training"]
    if k["initial"]:
        return []
    why = "kernels.initial: false (no Θ̂₀, K̂₀ at θ₀)"
    errors = []
    if facts.closed_form(t):
        errors.append(
            f"{why}, but training.loss mse with training.optimizer gd evolves f_lin in closed "
            f"form from Θ̂₀ (Eq. 8–11); set kernels.initial: true, or choose training.optimizer "
            f"momentum or sgd, or training.loss xent (f_lin is then optimized directly)"
        )
    if k["final"]:
        errors.append(
            f"{why}, but kernels.final: true is only used for the kernel change "
            f"‖Θ̂_T − Θ̂₀‖/‖Θ̂₀‖, which needs Θ̂₀; set kernels.final: false, or kernels.initial: true"
        )
    if k["analytic"]:
        errors.append(
            f"{why}, but kernels.analytic: true is only used to compare Θ̂₀ with Θ (analytic and "
            f"Monte Carlo errors) and by the closed form; set kernels.analytic: false, or "
            f"kernels.initial: true"
        )
    return errors


def _check_arrays(c):
    """data.dataset arrays: the .npz file (ntkpipe.datasets.arrays); its fields unused else."""
    d = c["data"]
    if d["dataset"] == "arrays":
        return arrays.problems(d, c["training"]["loss"])
    return [
        f"data.{field}: {d[field]!r} is set, but it is used only with data.dataset arrays "
        f"(here {d['dataset']}); remove it"
        for field in ("path", "input_shape")
        if d[field] is not None
    ]


def _check_outputs(c):
    if c["data"]["dataset"] == "arrays" and arrays.problems(c["data"], c["training"]["loss"]):
        return []  # reported by _check_arrays; k is not known
    if c["training"]["loss"] == "xent" and _v.output_dim(c) < 2:
        return ["training.loss: 'xent' needs at least 2 outputs (2 or more data.classes)"]
    return []


_CROSS_CHECKS = (
    (("data.dataset", "data.classes", "data.n_train", "data.n_test"), _check_sizes),
    (("data.dataset", "data.root"), _check_files),
    (("training.optimizer", "training.batch_size", "data.n_train"), _check_batch),
    (("training.records", "training.steps"), _check_records),
    (("model.architecture", "kernels.analytic"), _check_analytic),
    (
        ("model.architecture", "model.parameterization", "model.layer_rates", "ensemble.members"),
        _check_parameterization,
    ),
    (("training.loss", "data.classes"), _check_outputs),
    (
        ("data.dataset", "data.path", "data.input_shape", "data.classes", "data.n_train"),
        _check_arrays,
    ),
    (
        (
            "kernels.initial",
            "kernels.final",
            "kernels.analytic",
            "training.loss",
            "training.optimizer",
        ),
        _check_initial,
    ),
)


def custom_model_errors(config, axes):
    """The custom models of every grid point, checked by the probe (one subprocess for the
    points not cached; :mod:`ntkpipe.sweep.custom_model`); nothing for built-in models."""
    points = [
        _v.assign(config, dict(zip(axes, point, strict=True)))
        for point in itertools.product(*axes.values())
    ]
    if all(
        p["model"]["architecture"] != "custom"
        and p["model"]["factory"] is None
        and not p["model"]["options"]
        for p in points
    ):
        return []
    from ntkpipe.sweep import custom_model

    return custom_model.problems(points, _v.data_input_shape)


def seed_range_errors(config, invalid):
    """Seeds beyond :data:`MAX_SEED` (start + count − 1, list items, the ensemble's members)."""
    if {"seeds", "ensemble"} & {f.split(".")[0] for f in invalid}:
        return []
    seeds, errors = config["seeds"], []
    last = max(seeds["list"]) if seeds["list"] else seeds["start"] + seeds["count"] - 1
    field = "seeds.list" if seeds["list"] else "seeds.start"
    if last > MAX_SEED:
        errors.append(
            f"{field}: the seeds reach {last}, but seeds must be at most 2^32 − 1 = {MAX_SEED} "
            f"(JAX's PRNGKey keeps 32 bits: seed 2^32 would repeat seed 0)"
        )
    ensemble = config["ensemble"]
    if ensemble["members"] and ensemble["seed"] + ensemble["members"] - 1 > MAX_SEED:
        errors.append(
            f"ensemble.seed: {ensemble['seed']} + ensemble.members {ensemble['members']} − 1 "
            f"is more than {MAX_SEED} (2^32 − 1, JAX's PRNGKey keeps 32 bits)"
        )
    return errors


def machine_memory_mb():
    """This machine's physical memory in MiB (``os.sysconf``), or None where it is unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError, AttributeError):
        return None


def memory_problems(runs, settings, cap_mb, where):
    """Runs whose jobs the cost model estimates beyond ``cap_mb``, as messages (at most 3 named).

    Args:
        runs: the sweep's ``ntkpipe.sweep.runs.Run`` objects.
        settings: ``ntkpipe.sweep.cost_settings.load_settings`` of the ``resources`` section.
        cap_mb: the memory a job may use (MiB), or None: nothing checked.
        where: what the cap is, for the message ("this machine's memory", …).
    """
    if not cap_mb:
        return []
    from ntkpipe.sweep import cost

    rules = ["run"] if settings["jobs"] == "runs" else list(cost.RULE_STAGES)
    over = {}
    for run in runs:
        for rule in rules:
            if rule == "analytic" and not run.config["kernels"]["analytic"]:
                continue
            need = cost.rule_resources(run.config, rule, 1, settings)["mem_mb"]
            if need > cap_mb:
                over.setdefault(run.run_id, (rule, need))
                break
    if not over:
        return []
    named = [f"{run_id} ({rule}: {need} MB)" for run_id, (rule, need) in list(over.items())[:3]]
    more = f" and {len(over) - 3} more" if len(over) > 3 else ""
    return [
        f"model: {len(over)} run(s) need more memory than {where} ({cap_mb} MB), as estimated "
        f"by ntkpipe.sweep.cost: {', '.join(named)}{more}; reduce model.width / model.depth / "
        f"data.n_train / seeds.per_job / kernels.block_size, or run them on a larger machine"
    ]
