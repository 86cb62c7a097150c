"""The cost model as Snakemake resources: ``mem_mb``, ``runtime`` (and ``gpu``) of every job.

Every rule declares ``resources: mem_mb, runtime`` (and ``gpu`` for the heavy rules when the
sweep config asks for GPUs) computed here from the run's configuration, so that a site profile
only has to supply the account and partitions (docs/architecture.md, "How rules call the
library"). The
FLOPs and peak bytes of each stage are closed forms in the sizes of the config
(:mod:`ntkpipe.sweep.cost_model`, with the notation and the memory terms of each stage).

Peak memory of a job = fixed part (Python, JAX/XLA, xarray, zarr: :data:`BASE_MB`; the dataset
read from disk: :data:`DATASET_MB`; the compiled programs, :data:`PROGRAM_MB_PER_LAYER` per
layer) + :data:`MEM_MARGIN` × the variable part
(:func:`memory_bytes`), doubled on every retry (``attempt``), so a job killed for running out of
memory comes back bigger. :func:`runtime_min` turns :func:`flops` into minutes at a
conservative rate (:data:`FLOP_RATE`) plus a fixed start-up allowance, times ``attempt``. The
memory model is checked against the peak resident memory measured on CPU
(tests/sweep/test_cost_measured.py).

Calibrated constants (:mod:`ntkpipe.sweep.calibrate`, ``ntkpipe calibrate``) replace the
a-priori rates where a stage has been measured on the job's device kind: then
runtime = :data:`CALIBRATED_SAFETY` × (t₀ + c_t · FLOPs) and
mem_mb = :data:`CALIBRATED_SAFETY` × (m₀ + c_m · bytes), with the same retry growth.

GPUs and limits: the ``resources`` section of a sweep config (read by the workflow, never part
of a run config, so changing it reruns nothing) sets ``gpu``, the GPUs of each job of the rules
in ``gpu_rules``, and the caps ``max_runtime`` / ``max_mem_mb`` a partition accepts
(:mod:`ntkpipe.sweep.cost_settings`, :mod:`ntkpipe.sweep.plan`). Host memory of a GPU job has
a larger fixed part (CUDA libraries): :data:`BASE_MB` ``["gpu"]``.
"""

from __future__ import annotations

import math

from ntkpipe.sweep import cost_settings, facts, segments, stage_table
from ntkpipe.sweep.cost_model import (
    EVAL_BUDGET_BYTES,
    LIVE_TILES,
    Cost,
    Sizes,
    network,
    stage_cost_of,
    written_bytes,
)

__all__ = [
    "BASE_MB",
    "DATASET_MB",
    "MEM_MARGIN",
    "FLOP_RATE",
    "START_MIN",
    "LIVE_TILES",
    "EVAL_BUDGET_BYTES",
    "CALIBRATED_SAFETY",
    "STAGES",
    "RULE_STAGES",
    "GPU_RULES",
    "RUN_JOB_STAGES",
    "Cost",
    "n_params",
    "eval_block_size",
    "program_mb",
    "PROGRAM_MB_PER_LAYER",
    "flops",
    "memory_bytes",
    "stage_cost",
    "rule_cost",
    "ensemble_resources",
    "job_seconds",
    "ensemble_seconds",
    "rule_written_bytes",
    "mem_mb",
    "runtime_min",
    "rule_resources",
    "rule_segments",
    "sweep_resources",
]

BASE_MB = {"cpu": 650, "gpu": 3000}
"""Fixed memory of a job (MB): interpreter, JAX/XLA, xarray, zarr; a GPU job also maps the CUDA
libraries into host memory. Measured on CPU: about 350 MB (benchmarks/README.md; 358 MB for the
tiny train job of tests/sweep/test_cost_measured.py, which the ask must cover within 2×)."""
DATASET_MB = {"digits": 20, "mnist": 150, "cifar10": 500}
"""Memory (MB) of the dataset as read from disk, before the subset is selected."""
PROGRAM_MB_PER_LAYER = 1.5
"""Memory (MB) per layer of the compiled programs (XLA's compilation and executables grow with
the depth: measured ~1.3 MB per layer for a 100-layer MLP's train job, test_cost_measured.py)."""
MEM_MARGIN = 1.5
"""Factor on the variable part of the memory (allocator slack, temporaries of XLA)."""
FLOP_RATE = {"cpu": 2e9, "gpu": 1e13}
"""Conservative sustained FLOP/s of one job (small matrices, 1–2 CPU threads; one GPU). The GPU
rate is an a-priori estimate, not a measurement: half of an A100's 19.5 TFLOP/s float32 peak on
the matrix products of networks ≥ 512 wide (it was 2e12 before, which asked 2–3 days for the
Fig. 2 ensemble). ``ntkpipe calibrate`` on a GPU sweep replaces it (benchmarks/gpu/)."""
START_MIN = 5
"""Minutes allowed for start-up, imports, compilation and writing the store."""
RUNTIME_MARGIN = 3.0
"""Factor on the computing time of :func:`flops` at :data:`FLOP_RATE`."""
CALIBRATED_SAFETY = 2.0
"""Factor on the calibrated prediction of a job's time and memory (jobs of one stage vary)."""
CALIBRATED_MIN_RUNTIME = 2
"""Minutes a calibrated runtime asks at least (queueing, node start-up, filesystem lag)."""
STAGES = stage_table.COST_STAGES
"""Stages the model knows (one ``ntkpipe`` subcommand each)."""
RULE_STAGES = stage_table.RULE_COST_STAGES
"""Snakemake rule → the stage whose cost it has."""
GPU_RULES = stage_table.GPU_RULES
"""Rules that may run on a GPU (the heavy ones)."""
RUN_JOB_STAGES = tuple(row.cost_stage for row in stage_table.RUN_STAGES)
"""The stages one job of the ``run`` rule (``resources.jobs: runs``) goes through, in order
(the first ``kernels`` is Θ̂₀, left out when ``kernels.initial`` is false; the second is Θ̂_T,
left out when ``kernels.final`` is false)."""
_MB = 2**20


def n_params(config: dict) -> int:
    """P: the number of parameters of one network of the run (weights and biases)."""
    return network(config).params


def flops(config: dict, stage: str) -> float:
    """Floating point operations of one job of ``stage`` for the run (order of magnitude)."""
    return stage_cost(config, stage).flops


def memory_bytes(config: dict, stage: str) -> float:
    """Peak bytes of one job of ``stage`` beyond the fixed part (module docstring)."""
    return stage_cost(config, stage).bytes


def stage_cost(config: dict, stage: str) -> Cost:
    """FLOPs and peak variable bytes of one job of ``stage`` for a run configuration.

    Args:
        config: a run's resolved configuration (``ntkpipe.sweep.runs.Run.config``: ``seeds`` is
            the list of the job's seeds), or for ``collect``/``figures``/``report`` the sweep
            configuration with ``n_runs`` (the number of runs) added.
        stage: one of :data:`STAGES`.

    Raises:
        ValueError: an unknown stage.
    """
    return _cost(Sizes.of(config), stage)


def mem_mb(config: dict, stage: str, attempt: int = 1, gpu: int = 0) -> int:
    """Snakemake ``mem_mb`` of one job of ``stage``: fixed part + margin × model, doubled on
    each retry.

    Args:
        config: as for :func:`stage_cost`.
        stage: one of :data:`STAGES`.
        attempt: Snakemake's attempt number (1 for the first run).
        gpu: GPUs of the job (a GPU job has a larger fixed host memory).
    """
    sizes = Sizes.of(config)
    return _mem_mb(sizes, _cost(sizes, stage), attempt, gpu)


def runtime_min(config: dict, stage: str, attempt: int = 1, gpu: int = 0) -> int:
    """Snakemake ``runtime`` (minutes) of one job of ``stage``: start-up plus the FLOPs at a
    conservative rate, with room to spare, times ``attempt``.

    Args:
        config: as for :func:`stage_cost`.
        stage: one of :data:`STAGES`.
        attempt: Snakemake's attempt number (a job killed at its time limit gets more).
        gpu: GPUs of the job (FLOPs at the GPU rate).
    """
    return _runtime_min(stage_cost(config, stage), attempt, gpu)


def program_mb(config: dict) -> float:
    """Memory (MB) of a job's compiled programs: :data:`PROGRAM_MB_PER_LAYER` per layer."""
    return PROGRAM_MB_PER_LAYER * Sizes.of(config).depth


def eval_block_size(config: dict) -> int | None:
    """Examples per block when a job evaluates the network on all its inputs (init, train).

    As many as keep the activations of one block, for all the job's seeds, under
    :data:`EVAL_BUDGET_BYTES`; None (all at once) when every split fits, which is the case for
    the MLPs of the paper, so their outputs do not depend on this. Wide conv nets on CIFAR-10
    need blocks (a WRN with 1024 channels keeps ~30 MB of activations per image).
    """
    z = Sizes.of(config)
    per_example = z.element * z.seeds * z.net.activations
    block = max(1, int(EVAL_BUDGET_BYTES // per_example))
    return None if block >= max(z.n_train, z.n_test) else block


def rule_resources(config: dict, rule: str, attempt: int = 1, settings: dict | None = None):
    """The Snakemake resources of one job of ``rule``: ``mem_mb``, ``runtime`` and, for the
    rules in ``settings["gpu_rules"]`` when ``settings["gpu"]`` > 0, ``gpu``.

    Args:
        config: as for :func:`stage_cost`.
        rule: a rule of :data:`RULE_STAGES`, or ``run`` (every stage of the run in one job,
            :data:`RUN_JOB_STAGES`).
        attempt: Snakemake's attempt number.
        settings: :func:`ntkpipe.sweep.cost_settings.load_settings` of the sweep's
            ``resources`` section (None: CPU only).
    """
    settings = settings or cost_settings.DEFAULT_SETTINGS
    gpu = settings["gpu"] if rule in settings["gpu_rules"] else 0
    sizes = Sizes.of(config)
    cost = rule_cost(config, rule)
    constants = _calibrated(settings, gpu, _cost_key(rule))
    count = _segments(config, rule, sizes, cost, constants, gpu, settings)
    if count > 1:  # the first `count` attempts are the planned segments, each asking the cap
        out = _asks(sizes, cost, constants, max(1, _attempt(attempt) - count + 1), gpu)
        out["runtime"] = settings["max_runtime"]["gpu" if gpu else "cpu"]
    else:
        out = _asks(sizes, cost, constants, attempt, gpu)
    if gpu:
        out["gpu"] = gpu
    return out


def rule_segments(config: dict, rule: str, settings: dict | None = None) -> int:
    """How many consecutive jobs (segments) one job of ``rule`` runs as: 1 when its time
    request fits ``resources.max_runtime``, or when it cannot be split (it is then refused,
    :func:`ntkpipe.sweep.plan.limit_problems`); more for a training job above the cap
    (:mod:`ntkpipe.sweep.segments`). Each segment asks for the cap; memory grows with the
    attempts beyond the planned segments only.

    Args:
        config, rule, settings: as for :func:`rule_resources`.
    """
    settings = settings or cost_settings.DEFAULT_SETTINGS
    gpu = settings["gpu"] if rule in settings["gpu_rules"] else 0
    sizes = Sizes.of(config)
    constants = _calibrated(settings, gpu, _cost_key(rule))
    return max(1, _segments(config, rule, sizes, rule_cost(config, rule), constants, gpu, settings))


def job_seconds(config: dict, rule: str, settings: dict | None = None) -> float:
    """The seconds one job of ``rule`` is predicted to take (the time request before its
    rounding to minutes and its retries: a-priori, or from the calibration).

    The workflow ranks jobs by it (:meth:`ntkpipe.rules.RuleFunctions.priority_of`): the
    longest first, so that the last job to finish is a short one.

    Args:
        config, rule, settings: as for :func:`rule_resources`.
    """
    settings = settings or cost_settings.DEFAULT_SETTINGS
    gpu = settings["gpu"] if rule in settings["gpu_rules"] else 0
    constants = _calibrated(settings, gpu, _cost_key(rule))
    return _seconds(rule_cost(config, rule), constants, gpu)


def ensemble_resources(
    config: dict, ensemble: dict, attempt: int = 1, settings: dict | None = None
) -> dict:
    """Resources of an ensemble job (Fig. 2): the memory of ``ensemble.batch`` members trained
    at once, the time of all ``ensemble.members``.

    Args:
        config: the run config standing for the sweep point (its seeds are replaced).
        ensemble: the sweep's ``ensemble`` section (``members``, ``batch``).
        attempt: Snakemake's attempt number.
        settings: :func:`ntkpipe.sweep.cost_settings.load_settings` of the sweep's
            ``resources`` section.
    """
    batch = {**config, "seeds": list(range(ensemble["batch"]))}
    out = rule_resources(_members(config, ensemble), "ensemble", attempt, settings)
    out["mem_mb"] = rule_resources(batch, "ensemble", attempt, settings)["mem_mb"]
    return out


def ensemble_seconds(config: dict, ensemble: dict, settings: dict | None = None) -> float:
    """:func:`job_seconds` of an ensemble job: all ``ensemble.members`` trained (arguments as
    for :func:`ensemble_resources`)."""
    return job_seconds(_members(config, ensemble), "ensemble", settings)


def _members(config: dict, ensemble: dict) -> dict:
    """The run config standing for a sweep point with the ensemble's members as its seeds."""
    return {**config, "seeds": list(range(ensemble["members"]))}


def rule_cost(config: dict, rule: str) -> Cost:
    """FLOPs and peak variable bytes of one job of ``rule`` (``run``: every stage of the run,
    :data:`RUN_JOB_STAGES`; the FLOPs add up, the peak is the largest stage's)."""
    if rule not in RULE_STAGES and rule != "run":
        raise ValueError(f"rule: {rule!r} is not one of {', '.join(RULE_STAGES)}, run")
    sizes = Sizes.of(config)
    return _run_job_cost(sizes, config) if rule == "run" else _cost(sizes, RULE_STAGES[rule])


def rule_written_bytes(config: dict, rule: str) -> float:
    """Bytes of the stores one job of ``rule`` writes (order of magnitude)."""
    sizes = Sizes.of(config)
    if rule == "run":
        return sum(written_bytes(sizes, stage) for stage in _run_job_stages(config))
    if rule == "ensemble":  # the members' outputs at the record steps, no params
        return 2.0 * sizes.seeds * sizes.records * sizes.n * sizes.k * sizes.element
    return written_bytes(sizes, RULE_STAGES[rule])


def sweep_resources(
    sweep: dict, n_runs: int, rule: str, attempt: int = 1, settings: dict | None = None
) -> dict:
    """``mem_mb`` and ``runtime`` of a sweep-level rule (collect, figures, report).

    Args:
        sweep: the sweep configuration (``ntkpipe.sweep.validate.load_config``).
        n_runs: the number of runs (jobs) of the sweep.
        rule: ``collect``, ``figures`` or ``report``.
        attempt: Snakemake's attempt number.
        settings: :func:`ntkpipe.sweep.cost_settings.load_settings` of the sweep's
            ``resources`` section (calibration).
    """
    if rule not in ("collect", "figures", "report"):
        raise ValueError(f"rule: {rule!r} is not one of collect, figures, report")
    config = {**sweep, "n_runs": int(n_runs)}
    sizes = Sizes.of(config)
    constants = _calibrated(settings or cost_settings.DEFAULT_SETTINGS, 0, rule)
    return _asks(sizes, _cost(sizes, rule), constants, attempt, 0)


# ----------------------------------------------------------------------------- private

_Sizes = Sizes  # the names of the formulas before they moved to cost_model


def _cost(sizes: Sizes, stage: str) -> Cost:
    return stage_cost_of(sizes, stage)


def _run_job_stages(config: dict) -> list[str]:
    """The cost stages of one job of the run rule (the stage table's rows the run wants)."""
    return [row.cost_stage for row in stage_table.wanted(config)]


def _run_job_cost(sizes: Sizes, config: dict) -> Cost:
    """One job doing every stage of a run: the FLOPs add up, the peak is the largest stage's
    (each stage's arrays are freed before the next starts)."""
    costs = [_cost(sizes, stage) for stage in _run_job_stages(config)]
    return Cost(flops=sum(c.flops for c in costs), bytes=max(c.bytes for c in costs))


def _cost_key(rule: str) -> str:
    """The key of a rule's calibrated constants: its stage, or ``run`` for the run rule."""
    return "run" if rule == "run" else RULE_STAGES[rule]


def _calibrated(settings: dict, gpu: int, key: str) -> dict | None:
    """The calibrated constants of ``key`` on the job's device kind, or None."""
    return (settings.get("constants") or {}).get("gpu" if gpu else "cpu", {}).get(key)


def _asks(sizes: Sizes, cost: Cost, constants: dict | None, attempt: int, gpu: int) -> dict:
    """``mem_mb`` and ``runtime`` of a job: a-priori, or from calibrated constants."""
    if constants is None:
        return {
            "mem_mb": _mem_mb(sizes, cost, attempt, gpu),
            "runtime": _runtime_min(cost, attempt, gpu),
        }
    seconds = constants["start_s"] + constants["s_per_flop"] * cost.flops
    megabytes = constants["base_mb"] + constants["mb_per_byte"] * cost.bytes
    minutes = max(CALIBRATED_MIN_RUNTIME, math.ceil(CALIBRATED_SAFETY * seconds / 60))
    return {
        "mem_mb": int(math.ceil(CALIBRATED_SAFETY * megabytes)) * 2 ** (_attempt(attempt) - 1),
        "runtime": int(minutes * _attempt(attempt)),
    }


def _segments(config, rule, sizes, cost, constants, gpu, settings) -> int:
    """The segments of a job above the cap (:func:`ntkpipe.sweep.segments.segment_count`);
    1 when it fits, 0 when it cannot be split."""
    cap = settings["max_runtime"]["gpu" if gpu else "cpu"]
    if (
        rule not in segments.SEGMENTED_RULES
        or _asks(sizes, cost, constants, 1, gpu)["runtime"] <= cap
    ):
        return 1
    stoppable = {"train"} | (set() if facts.closed_form(config["training"]) else {"linear"})
    stages = _run_job_stages(config) if rule == "run" else [RULE_STAGES[rule]]
    if not stoppable & set(stages):
        return 0
    start = _seconds(Cost(0.0, 0.0), constants, gpu)
    unstoppable = [
        _seconds(_cost(sizes, s), constants, gpu) - start for s in stages if s not in stoppable
    ]
    work = _seconds(cost, constants, gpu) - start
    return segments.segment_count(work, start, max(unstoppable, default=0.0), cap)


def _seconds(cost: Cost, constants: dict | None, gpu: int) -> float:
    """The seconds a job's time request stands for (before rounding to minutes), with the
    model's margin: a-priori or calibrated (:func:`_asks`)."""
    if constants is None:
        rate = FLOP_RATE["gpu" if gpu else "cpu"]
        return 60.0 * START_MIN + RUNTIME_MARGIN * cost.flops / rate
    return CALIBRATED_SAFETY * (constants["start_s"] + constants["s_per_flop"] * cost.flops)


def _mem_mb(sizes: Sizes, cost: Cost, attempt: int, gpu: int) -> int:
    fixed = BASE_MB["gpu" if gpu else "cpu"] + DATASET_MB.get(sizes.dataset, DATASET_MB["mnist"])
    fixed += PROGRAM_MB_PER_LAYER * sizes.depth
    variable = MEM_MARGIN * cost.bytes / _MB
    return int(math.ceil((fixed + variable) * 2 ** (_attempt(attempt) - 1)))


def _runtime_min(cost: Cost, attempt: int, gpu: int) -> int:
    rate = FLOP_RATE["gpu" if gpu else "cpu"]
    minutes = START_MIN + RUNTIME_MARGIN * cost.flops / rate / 60
    return int(math.ceil(minutes * _attempt(attempt)))


def _attempt(attempt) -> int:
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError(f"attempt: {attempt!r} must be an integer ≥ 1 (Snakemake's attempt)")
    return attempt
