"""A cost model that learns: fit each stage's constants to the benchmark files of finished jobs.

Snakemake writes one benchmark TSV per job of the heavy rules
(``results/<name>/benchmarks/<rule>/<run id>.tsv``: wall seconds ``s`` and peak resident memory
``max_rss`` in MB, among others). For each stage (``init``, ``kernels``, ``train``, ``linear``,
``compare``, ``analytic``; ``run`` for one-job-per-run sweeps) and device kind, :func:`fit`
finds, by least squares with non-negative coefficients,

    seconds ≈ t₀ + c_t · FLOPs        peak MB ≈ m₀ + c_m · bytes

with the FLOPs and bytes of the cost model (:mod:`ntkpipe.sweep.cost_model`) for each job's own
config (its ``run.json``). With a single job, or jobs of one size, only the intercept is fitted
and the slope is the a-priori one (:data:`ntkpipe.sweep.cost.RUNTIME_MARGIN` / FLOP rate,
:data:`ntkpipe.sweep.cost.MEM_MARGIN` per byte), so bigger jobs still get more.

The constants are stored in one JSON file per working directory (default
:data:`CALIBRATION_FILE`, ``results/calibration.json``), ``{"constants": {device kind: {stage:
{start_s, s_per_flop, base_mb, mb_per_byte, jobs}}}}``, merged with what it held (other stages
and device kinds are kept). The next sweep reads it (``resources.calibration``, see
:mod:`ntkpipe.sweep.cost_settings`) and asks :data:`ntkpipe.sweep.cost.CALIBRATED_SAFETY` × the
prediction, at least :data:`ntkpipe.sweep.cost.CALIBRATED_MIN_RUNTIME` minutes, doubled memory
and more time on each retry. On the jobs it was fitted to, each ask is then within
:data:`STATED_FACTOR` of what the job used (runtime: of its time or one minute;
tests/sweep/test_calibrate.py, on recorded and on generated benchmark files).

The device kind of a sweep's jobs is read from ``results/<name>/resources.json`` (written by the
workflow at start: which rules asked for GPUs), or given.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ntkpipe.errors import ConfigError
from ntkpipe.io import atomic
from ntkpipe.sweep import cost, cost_settings, stage_table
from ntkpipe.sweep.cost_settings import read_constants
from ntkpipe.sweep.layout import Layout

__all__ = [
    "asked_and_used",
    "CALIBRATION_FILE",
    "STATED_FACTOR",
    "Measured",
    "Calibration",
    "read_benchmarks",
    "fit",
    "calibrate",
    "asked_over_used",
    "ran_in_warm_workers",
]

CALIBRATION_FILE = cost_settings.DEFAULT_SETTINGS["calibration"]
"""Where ``ntkpipe calibrate`` writes, and the default ``resources.calibration``."""
STATED_FACTOR = 4.0
"""After calibration, a job's memory ask is at most this factor above its peak RSS, and its
runtime ask at most this factor above its time or one minute, whichever is longer (SLURM counts
whole minutes; a calibrated ask is at least ``CALIBRATED_MIN_RUNTIME``); never below either."""

_PER_RUN_RULES = tuple(row.rule for row in stage_table.STAGES if row.scope == "run")


@dataclass(frozen=True)
class Measured:
    """One finished job: its rule, its key (run id or analytic key), what it used."""

    rule: str
    key: str
    seconds: float
    max_rss_mb: float
    config: dict

    @property
    def stage(self) -> str:
        """The key of its constants: the rule's stage (``run`` for the run rule)."""
        return "run" if self.rule == "run" else cost.RULE_STAGES[self.rule]

    def modeled(self) -> cost.Cost:
        """FLOPs and bytes of the job in the cost model."""
        return cost.rule_cost(self.config, self.rule)


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` did: the file, the device kinds, per kind and stage the largest
    ratio ask / used before and after."""

    path: Path
    device: str
    stages: dict  # "kind/stage" -> {"jobs", "before", "after", "mem_before", "mem_after"}

    def summary(self) -> str:
        """A few lines for the terminal: per stage, asked vs used before and after."""
        lines = [
            f"wrote {self.path} ({self.device} constants); a calibrated runtime asks at least "
            f"{cost.CALIBRATED_MIN_RUNTIME} min"
        ]
        for stage, row in self.stages.items():
            lines.append(
                f"  {stage:<13} {row['jobs']:>4} jobs: runtime asked / used at most "
                f"{row['before']:.0f}× before, {row['after']:.1f}× after; memory "
                f"{row['mem_before']:.1f}× before, {row['mem_after']:.1f}× after"
            )
        return "\n".join(lines)


def read_benchmarks(results: str | Path) -> list[Measured]:
    """The finished jobs of a sweep that have a benchmark file and a config.

    Args:
        results: the sweep's folder, ``results/<name>``.
    """
    results = Path(results)
    found = []
    benchmarks = Layout(results).benchmarks
    for path in sorted(benchmarks.glob("*/**/*.tsv")):
        rule = path.relative_to(benchmarks).parts[0]
        key = str(path.relative_to(benchmarks / rule).with_suffix(""))
        config = _job_config(results, rule, key)
        row = _first_row(path)
        if config is None or row is None:
            continue
        found.append(Measured(rule, key, row[0], row[1], config))
    return found


def fit(jobs: list[Measured], device: str) -> dict:
    """The constants of each stage fitted to its jobs (module docstring)."""
    by_stage: dict[str, list[Measured]] = {}
    for job in jobs:
        by_stage.setdefault(job.stage, []).append(job)
    out = {}
    for stage, group in by_stage.items():
        costs = [job.modeled() for job in group]
        start_s, s_per_flop = _line(
            [c.flops for c in costs],
            [job.seconds for job in group],
            cost.RUNTIME_MARGIN / cost.FLOP_RATE[device],
        )
        base_mb, mb_per_byte = _line(
            [c.bytes for c in costs],
            [job.max_rss_mb for job in group],
            cost.MEM_MARGIN / 2**20,
        )
        out[stage] = {
            "start_s": start_s,
            "s_per_flop": s_per_flop,
            "base_mb": base_mb,
            "mb_per_byte": mb_per_byte,
            "jobs": len(group),
        }
    return out


def calibrate(
    results: str | Path, out: str | Path | None = None, device: str | None = None
) -> Calibration:
    """Fit the constants to a finished sweep's benchmarks and merge them into ``out``.

    Args:
        results: the sweep's folder, ``results/<name>``.
        out: the calibration file (default :data:`CALIBRATION_FILE`).
        device: ``cpu`` or ``gpu``, the kind the jobs ran on (default: from
            ``<results>/resources.json``, else ``cpu``).

    Raises:
        ConfigError: no finished job with a benchmark file, or GPU and CPU jobs mixed without
            a device given.
    """
    results = Path(results)
    if ran_in_warm_workers(results):
        raise ConfigError(
            [
                f"{results}: its jobs ran in warm workers (resources.warm_workers, a local "
                "sweep): their benchmark files time a job without its own process and measure "
                "the memory of the job's client, not of the job; to calibrate, run the sweep "
                "with resources.warm_workers: false, or on the cluster"
            ]
        )
    jobs = read_benchmarks(results)
    if not jobs:
        raise ConfigError(
            [f"{results}: no benchmark files with a run config under {results}/benchmarks"]
        )
    kinds = {job.rule: device or _device_of(results, job.rule) for job in jobs}
    out = Path(out or CALIBRATION_FILE)
    stored = read_constants(out) if out.is_file() else {}
    stages = {}
    for kind in sorted(set(kinds.values())):
        group = [job for job in jobs if kinds[job.rule] == kind]
        fitted = fit(group, kind)
        stored.setdefault(kind, {}).update(fitted)
        stages.update(_comparison(group, kind, fitted))
    text = json.dumps({"constants": stored}, indent=1, sort_keys=True, allow_nan=False) + "\n"
    try:
        atomic.atomic_write_text(out, text)  # a full disk leaves the old file, never a part
    except OSError as error:
        raise ConfigError(
            [f"{out}: cannot write the calibration ({error.strerror or error})"]
        ) from error
    return Calibration(out, ", ".join(sorted(set(kinds.values()))), stages)


def asked_over_used(job: Measured, settings: dict, resource: str) -> float:
    """A job's first-attempt ask divided by what it used (runtime in minutes, memory in MB)."""
    asks = cost.rule_resources(
        job.config, job.rule, 1, {**cost_settings.DEFAULT_SETTINGS, **settings}
    )
    used = job.seconds / 60 if resource == "runtime" else job.max_rss_mb
    return asks[resource] / max(used, 1e-9)


def asked_and_used(results: str | Path) -> dict[str, dict]:
    """Per rule of a sweep's finished jobs: what the workflow asked (first attempt, with the
    scheduling it recorded in ``resources.json``) next to what the jobs used, for the report.

    Returns:
        rule → {"jobs", "runtime_asked", "runtime_used" (minutes), "mem_asked", "mem_used"
        (MB)}, each the largest over the rule's jobs.
    """
    results = Path(results)
    settings = {**cost_settings.DEFAULT_SETTINGS, **_scheduling(results)}
    rows: dict[str, dict] = {}
    for job in read_benchmarks(results):
        asks = cost.rule_resources(job.config, job.rule, 1, settings)
        row = rows.setdefault(job.rule, dict.fromkeys(_ASKED_USED, 0.0) | {"jobs": 0})
        row["jobs"] += 1
        for key, value in zip(
            _ASKED_USED,
            (asks["runtime"], job.seconds / 60, asks["mem_mb"], job.max_rss_mb),
            strict=True,
        ):
            row[key] = max(row[key], float(value))
    return rows


_ASKED_USED = ("runtime_asked", "runtime_used", "mem_asked", "mem_used")


# ----------------------------------------------------------------------------- private


def _comparison(jobs: list[Measured], kind: str, fitted: dict) -> dict:
    """Per stage: the largest ask / used ratios before and after the calibration."""
    before = {"gpu": 1 if kind == "gpu" else 0, "gpu_rules": list(cost.GPU_RULES)}
    after = {**before, "constants": {kind: fitted}}
    rows = {}
    for stage in fitted:
        group = [job for job in jobs if job.stage == stage]
        rows[f"{kind}/{stage}"] = {
            "jobs": len(group),
            "before": _worst(group, before, "runtime"),
            "after": _worst(group, after, "runtime"),
            "mem_before": _worst(group, before, "mem_mb"),
            "mem_after": _worst(group, after, "mem_mb"),
        }
    return rows


def _worst(group: list[Measured], settings: dict, resource: str) -> float:
    return max(asked_over_used(job, settings, resource) for job in group)


def _line(x: list[float], y: list[float], prior_slope: float) -> tuple[float, float]:
    """Intercept and slope ≥ 0 of y ≈ a + b x covering every point (least squares, lifted to
    the largest residual).

    The slope is fitted only where the jobs differ enough in x for it to show: where the
    a-priori slope predicts a spread of at least half the mean y. Otherwise (one job, or jobs
    whose time is their start-up, as for small runs) the slope stays the prior one and only
    the intercept is fitted, so that a larger job still gets more, not the noise's slope.
    """
    n = len(x)
    mean_x, mean_y = sum(x) / n, sum(y) / n
    if n < 2 or prior_slope * (max(x) - min(x)) < 0.5 * mean_y:
        return max(0.0, max(yi - prior_slope * xi for xi, yi in zip(x, y, strict=True))), (
            prior_slope
        )
    spread = sum((v - mean_x) ** 2 for v in x)
    slope = sum((xi - mean_x) * (yi - mean_y) for xi, yi in zip(x, y, strict=True)) / spread
    slope = max(0.0, slope)  # no growth seen: a constant
    intercept = max(0.0, mean_y - slope * mean_x)
    lift = max(yi - (intercept + slope * xi) for xi, yi in zip(x, y, strict=True))
    return intercept + max(0.0, lift), slope


def _job_config(results: Path, rule: str, key: str) -> dict | None:
    """The config a job of `rule` ran with: a per-run job's full run.json (the train stage's
    config file), an analytic job's analytic.json; None for any other rule."""
    if rule in _PER_RUN_RULES:
        path = Layout(Path(results)).config_file("train", key)
    elif rule == "analytic":
        path = Layout(Path(results)).config_file("analytic", key)
    else:
        return None
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    if config.get("model", {}).get("width") is None:  # analytic: the width does not matter
        config["model"] = {**config["model"], "width": 1}
    return config


def _first_row(path: Path) -> tuple[float, float] | None:
    """Seconds and max_rss (MB) of a benchmark TSV's first row; None when unreadable or not a
    measurement (a job takes some time and some memory: 0 is Snakemake's "not measured")."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    try:
        seconds, rss = float(rows[0]["s"]), float(rows[0]["max_rss"])
    except (IndexError, KeyError, ValueError):
        return None
    measured = all(math.isfinite(v) and v > 0 for v in (seconds, rss))
    return (seconds, rss) if measured else None


def ran_in_warm_workers(results: str | Path) -> bool:
    """Whether the sweep's last start ran its JAX jobs in warm workers (:mod:`ntkpipe.workers`):
    their benchmark files then hold the client's memory and CPU, not the job's."""
    return bool(_scheduling(Path(results)).get("warm_workers"))


def _device_of(results: Path, rule: str) -> str:
    """The kind of device the rule's jobs ran on, from the workflow's resources.json."""
    scheduling = _scheduling(results)
    return "gpu" if scheduling.get("gpu") and rule in scheduling["gpu_rules"] else "cpu"


def _scheduling(results: Path) -> dict:
    """The scheduling the workflow recorded in ``resources.json`` (gpu, gpu_rules, jobs); {}
    when there is none (CPU only)."""
    path = results / "resources.json"
    return json.loads(path.read_text()) if path.is_file() else {}
