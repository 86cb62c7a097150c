"""A small cost model of each stage: FLOPs and bytes from the run, as Snakemake resources.

Every rule declares ``resources: mem_mb, runtime`` (and ``gpu`` for the heavy rules when the
sweep config asks for GPUs) computed here from the run's configuration, so that a site profile
only has to supply the account and partition (DESIGN.md, "How rules call the library").

Notation (one job): n_tr, n_te training / test examples, n = n_tr + n_te, k outputs, S seeds
in the job (vmapped), T optimizer steps, R record steps, b = min(kernels.block_size, n), P
parameters of one network, A floats of activations per example kept for backpropagation, F
FLOPs of one forward pass on one example, E bytes per float (4 for float32, 8 for float64).

Peak memory of a job = fixed part (Python, JAX/XLA, xarray, zarr: :data:`BASE_MB`; the dataset
read from disk: :data:`DATASET_MB`) + the variable part :func:`memory_bytes`, in which each
array the stage holds at its peak is counted once:

- init:    S · (3 P + n A / 2) E                          params, their host copy, the forward
- train:   S · (7 P + 2 n_tr A + 2 R (n k + L)) E + evaluation  params, gradient, optimizer
  state, θ₀, the next params, host copies; the activations of the full-batch step and their
  gradients; records (SGD / minibatch momentum: n_tr → batch size); the evaluation of the
  outputs at the record steps, S · max(n_tr, n_te) · A · E, in blocks that keep it under
  :data:`EVAL_BUDGET_BYTES` (:func:`eval_block_size`)
- kernels: 2 P E + t · b · W · (k + 2) E + b² k² E + 3 S · (2 n_tr² + 2 n_te n_tr) E + 3 n_tr² · 8
  with W = d_in + L · width: the layer features of the t tiles alive at once (JAX dispatches
  ahead of the tile loop, :data:`LIVE_TILES`), a tile, the kernels (per seed, concatenated,
  written) and the float64 eigendecomposition; conv nets: per-example Jacobians t · b · k · P E
- linear:  closed form (MSE, full-batch GD): the input stores, Θ̂₀ [n_tr k, n_tr k] and
  [n_te k, n_tr k] (for k > 1 computed here as the full kernel, with the kernels stage's
  features), two eigendecompositions of it (12 (n_tr k)² E) and the weights ω_t; otherwise
  f_lin is trained: twice the train stage (primal and tangent)
- analytic, compare, collect, figures, report: the arrays they read, three times (loaded,
  computed on, written with checksums)

:func:`mem_mb` multiplies the variable part by :data:`MEM_MARGIN` and doubles the whole request
on every retry (``attempt``), so a job killed for running out of memory comes back bigger.
:func:`runtime_min` turns :func:`flops` into minutes at a conservative rate (:data:`FLOP_RATE`)
plus a fixed start-up allowance, times ``attempt``. The model is checked against the peak
resident memory measured on CPU (tests/test_cost.py).

GPUs: the ``resources`` section of a sweep config (read by the workflow, never part of a run
config, so changing it reruns nothing) sets ``gpu``, the GPUs of each job of the rules in
``gpu_rules``; :func:`load_settings` validates it and :func:`rule_resources` adds ``gpu`` to
those rules. Host memory of a GPU job has a larger fixed part (CUDA libraries):
:data:`BASE_MB` ``["gpu"]``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ntkpipe.errors import ConfigError
from ntkpipe.sweep import facts, stage_table

__all__ = [
    "BASE_MB",
    "DATASET_MB",
    "MEM_MARGIN",
    "FLOP_RATE",
    "START_MIN",
    "LIVE_TILES",
    "EVAL_BUDGET_BYTES",
    "STAGES",
    "RULE_STAGES",
    "GPU_RULES",
    "JOB_LAYOUTS",
    "RUN_JOB_STAGES",
    "DEFAULT_SETTINGS",
    "Cost",
    "n_params",
    "eval_block_size",
    "flops",
    "memory_bytes",
    "stage_cost",
    "mem_mb",
    "runtime_min",
    "load_settings",
    "rule_resources",
    "sweep_resources",
]

BASE_MB = {"cpu": 700, "gpu": 3000}
"""Fixed memory of a job (MB): interpreter, JAX/XLA, xarray, zarr; a GPU job also maps the CUDA
libraries into host memory. Measured on CPU: about 350 MB (benchmarks/README.md)."""
DATASET_MB = {"digits": 20, "mnist": 150, "cifar10": 500}
"""Memory (MB) of the dataset as read from disk, before the subset is selected."""
MEM_MARGIN = 1.5
"""Factor on the variable part of the memory (allocator slack, temporaries of XLA)."""
FLOP_RATE = {"cpu": 2e9, "gpu": 2e12}
"""Conservative sustained FLOP/s of one job (small matrices, 1–2 CPU threads; one GPU)."""
START_MIN = 5
"""Minutes allowed for start-up, imports, compilation and writing the store."""
EVAL_BUDGET_BYTES = 2**30
"""Activations of one block of examples evaluated at once (see :func:`eval_block_size`)."""
LIVE_TILES = {"dense": 16, "jacobian": 4}
"""Tiles of the empirical kernels whose features are in memory at once (measured: JAX's
asynchronous dispatch runs ahead of the tile loop; up to ~15 small MLP tiles, ~3 large tiles of
per-example Jacobians). Memory of the kernels stage is O(live · block · features), not O(block²)."""
RUNTIME_MARGIN = 3.0
"""Factor on the computing time of :func:`flops` at :data:`FLOP_RATE`."""

STAGES = stage_table.COST_STAGES
"""Stages the model knows (one ``ntkpipe`` subcommand each)."""
RULE_STAGES = stage_table.RULE_COST_STAGES
"""Snakemake rule → the stage whose cost it has."""
GPU_RULES = stage_table.GPU_RULES
"""Rules that may run on a GPU (the heavy ones)."""
JOB_LAYOUTS = ("stages", "runs")
"""``resources.jobs``: one job per stage of a run, or one job per run (every stage in it)."""
RUN_JOB_STAGES = tuple(row.cost_stage for row in stage_table.RUN_STAGES)
"""The stages one job of the ``run`` rule (``resources.jobs: runs``) goes through, in order
(the first ``kernels`` is Θ̂₀, left out when ``kernels.initial`` is false; the second is Θ̂_T,
left out when ``kernels.final`` is false)."""
DEFAULT_SETTINGS = {
    "gpu": 0,
    "gpu_rules": ["kernel_init", "kernel_final", "train", "linear", "ensemble", "run"],
    "jobs": "stages",
}
"""The ``resources`` section of a sweep config when it is absent (CPU only)."""

_ELEMENT_BYTES = {"float32": 4, "float64": 8}
_INPUT_SHAPES = {"digits": (8, 8, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
_KERNEL = 3  # spatial size of the conv filters (ntkpipe.core.convnets default)
_MB = 2**20


class Cost(NamedTuple):
    """What one job of a stage costs."""

    flops: float  # floating point operations (order of magnitude)
    bytes: float  # peak memory beyond the fixed part (BASE_MB, DATASET_MB)


class _Net(NamedTuple):
    """Sizes of one network on one example."""

    params: int  # P
    activations: float  # A: floats kept per example for backpropagation
    forward_flops: float  # F: FLOPs of a forward pass on one example
    feature_width: float  # Σ over layers of the layer widths (dense kernel features)


def n_params(config: dict) -> int:
    """P: the number of parameters of one network of the run (weights and biases)."""
    return _network(config).params


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
    return _cost(_Sizes.of(config), stage)


def mem_mb(config: dict, stage: str, attempt: int = 1, gpu: int = 0) -> int:
    """Snakemake ``mem_mb`` of one job of ``stage``: fixed part + margin × model, doubled on
    each retry.

    Args:
        config: as for :func:`stage_cost`.
        stage: one of :data:`STAGES`.
        attempt: Snakemake's attempt number (1 for the first run).
        gpu: GPUs of the job (a GPU job has a larger fixed host memory).
    """
    sizes = _Sizes.of(config)
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


def eval_block_size(config: dict) -> int | None:
    """Examples per block when a job evaluates the network on all its inputs (train stage).

    As many as keep the activations of one block, for all the job's seeds, under
    :data:`EVAL_BUDGET_BYTES`; None (all at once) when every split fits, which is the case for
    the MLPs of the paper, so their outputs do not depend on this. Wide conv nets on CIFAR-10
    need blocks (a WRN with 1024 channels keeps ~30 MB of activations per image).
    """
    z = _Sizes.of(config)
    per_example = z.element * z.seeds * z.net.activations
    block = max(1, int(EVAL_BUDGET_BYTES // per_example))
    return None if block >= max(z.n_train, z.n_test) else block


def load_settings(section: dict | None) -> dict:
    """Validates the ``resources`` section of a sweep config and fills in its defaults.

    Keys: ``gpu`` (integer ≥ 0: GPUs per job of the GPU rules; 0 runs everything on CPUs),
    ``gpu_rules`` (the rules that ask for them, a subset of :data:`GPU_RULES`) and ``jobs``
    (:data:`JOB_LAYOUTS`: ``stages``, one job per stage of a run, or ``runs``, one job per run).

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
    if settings["jobs"] not in JOB_LAYOUTS:
        errors.append(
            f"resources.jobs: {settings['jobs']!r} is not one of {', '.join(JOB_LAYOUTS)} "
            "(stages: one job per stage of a run; runs: one job per run, for sweeps of "
            "thousands of runs)"
        )
    if errors:
        raise ConfigError(errors)
    return {"gpu": gpu, "gpu_rules": list(rules), "jobs": settings["jobs"]}


def rule_resources(config: dict, rule: str, attempt: int = 1, settings: dict | None = None):
    """The Snakemake resources of one job of ``rule``: ``mem_mb``, ``runtime`` and, for the
    rules in ``settings["gpu_rules"]`` when ``settings["gpu"]`` > 0, ``gpu``.

    Args:
        config: as for :func:`stage_cost`.
        rule: a rule of :data:`RULE_STAGES`, or ``run`` (every stage of the run in one job,
            :data:`RUN_JOB_STAGES`).
        attempt: Snakemake's attempt number.
        settings: :func:`load_settings` of the sweep's ``resources`` section (None: CPU only).
    """
    if rule not in RULE_STAGES and rule != "run":
        raise ValueError(f"rule: {rule!r} is not one of {', '.join(RULE_STAGES)}, run")
    settings = settings or DEFAULT_SETTINGS
    gpu = settings["gpu"] if rule in settings["gpu_rules"] else 0
    sizes = _Sizes.of(config)
    cost = _run_job_cost(sizes, config) if rule == "run" else _cost(sizes, RULE_STAGES[rule])
    out = {
        "mem_mb": _mem_mb(sizes, cost, attempt, gpu),
        "runtime": _runtime_min(cost, attempt, gpu),
    }
    if gpu:
        out["gpu"] = gpu
    return out


def sweep_resources(sweep: dict, n_runs: int, rule: str, attempt: int = 1) -> dict:
    """``mem_mb`` and ``runtime`` of a sweep-level rule (collect, figures, report).

    Args:
        sweep: the sweep configuration (``ntkpipe.sweep.runs.load_config``).
        n_runs: the number of runs (jobs) of the sweep.
        rule: ``collect``, ``figures`` or ``report``.
        attempt: Snakemake's attempt number.
    """
    if rule not in ("collect", "figures", "report"):
        raise ValueError(f"rule: {rule!r} is not one of collect, figures, report")
    config = {**sweep, "n_runs": int(n_runs)}
    return {"mem_mb": mem_mb(config, rule, attempt), "runtime": runtime_min(config, rule, attempt)}


# ----------------------------------------------------------------------------- private


def _cost(sizes: _Sizes, stage: str) -> Cost:
    if stage not in _STAGE_COSTS:
        raise ValueError(f"stage: {stage!r} is not one of {', '.join(STAGES)}")
    return _STAGE_COSTS[stage](sizes)


def _run_job_cost(sizes: _Sizes, config: dict) -> Cost:
    """One job doing every stage of a run: the FLOPs add up, the peak is the largest stage's
    (each stage's arrays are freed before the next starts)."""
    costs = [_cost(sizes, row.cost_stage) for row in stage_table.wanted(config)]
    return Cost(flops=sum(c.flops for c in costs), bytes=max(c.bytes for c in costs))


def _mem_mb(sizes: _Sizes, cost: Cost, attempt: int, gpu: int) -> int:
    fixed = BASE_MB["gpu" if gpu else "cpu"] + DATASET_MB.get(sizes.dataset, DATASET_MB["mnist"])
    variable = MEM_MARGIN * cost.bytes / _MB
    return int(math.ceil((fixed + variable) * 2 ** (_attempt(attempt) - 1)))


def _runtime_min(cost: Cost, attempt: int, gpu: int) -> int:
    rate = FLOP_RATE["gpu" if gpu else "cpu"]
    minutes = START_MIN + RUNTIME_MARGIN * cost.flops / rate / 60
    return int(math.ceil(minutes * _attempt(attempt)))


class _Sizes(NamedTuple):
    """The numbers of the module docstring, read from a configuration."""

    dataset: str
    n_train: int
    n_test: int
    k: int
    seeds: int
    steps: int
    records: int
    batch: int  # examples per optimizer step
    block: int
    depth: int
    element: int  # E
    net: _Net
    closed_form: bool  # linear stage: MSE with full-batch GD
    analytic_factor: float  # FLOPs per kernel entry and layer of the analytic recursion
    n_runs: int

    @classmethod
    def of(cls, config: dict) -> _Sizes:
        data, model = config["data"], config["model"]
        training = config.get("training", {})
        n_train, n_test = int(data["n_train"]), int(data["n_test"])
        n = n_train + n_test
        batch = training.get("batch_size") or n_train
        block = int((config.get("kernels") or {}).get("block_size") or n)
        return cls(
            dataset=data["dataset"],
            n_train=n_train,
            n_test=n_test,
            k=_outputs(config),
            seeds=_seed_count(config.get("seeds")),
            steps=int(training.get("steps", 1)),
            records=int(training.get("records", 24)),
            batch=int(batch),
            block=max(1, min(block, n)),
            depth=int(model["depth"]),
            element=_ELEMENT_BYTES.get(config.get("precision", "float32"), 4),
            net=_network(config),
            closed_form=training.get("loss", "mse") == "mse"
            and training.get("optimizer", "gd") == "gd",
            analytic_factor=30.0 if model.get("activation") in ("relu", "identity") else 3000.0,
            n_runs=int(config.get("n_runs", 1)),
        )

    @property
    def n(self) -> int:
        return self.n_train + self.n_test


def _init_cost(z: _Sizes) -> Cost:
    p, a = z.net.params, z.net.activations
    return Cost(
        flops=z.seeds * z.n * z.net.forward_flops,
        bytes=z.element * z.seeds * (3.0 * p + z.n * a / 2),
    )


def _train_cost(z: _Sizes) -> Cost:
    p, a, f = z.net.params, z.net.activations, z.net.forward_flops
    records = 2.0 * z.records * (z.n * z.k + z.depth + 1)
    return Cost(
        flops=z.seeds * (3.0 * f * z.batch * z.steps + f * z.n * z.records),
        bytes=z.element * z.seeds * (7.0 * p + 2.0 * z.batch * a + records) + _eval_bytes(z),
    )


def _kernels_cost(z: _Sizes) -> Cost:
    p, f, b, k = z.net.params, z.net.forward_flops, z.block, z.k
    pairs = z.n_train * (z.n_train + 1) / 2 + z.n_test * z.n_train
    stored = 3.0 * z.seeds * (2.0 * z.n_train**2 + 2.0 * z.n_test * z.n_train)
    eigen = 3.0 * z.n_train**2 * 8
    tiles = _tiles(z) + 1  # JAX dispatches ahead: features of several tiles are alive at once
    if z.net.feature_width:  # the dense path of ntkpipe.core.kernels (MLPs)
        live = min(tiles, LIVE_TILES["dense"])
        work = 2.0 * p + live * b * z.net.feature_width * (k + 2) + b * b * k * k
        gram, extra = 2.0 * pairs * z.net.feature_width * (k + 1), 3.0 * f * z.n
    else:  # per-example Jacobians
        live = min(tiles, LIVE_TILES["jacobian"])
        work = 2.0 * p + live * b * k * p + b * k * z.net.activations
        gram, extra = 2.0 * pairs * k * p, 3.0 * f * k * z.n
    return Cost(
        flops=z.seeds * (gram + extra + 4.0 * z.n_train**3),
        bytes=z.element * (work + stored) + eigen,
    )


def _eval_bytes(z: _Sizes) -> float:
    """Activations of the evaluation at the record steps: all examples, or a block of them."""
    rows = max(z.n_train, z.n_test)
    return min(float(EVAL_BUDGET_BYTES), z.element * z.seeds * rows * z.net.activations)


def _tiles(z: _Sizes) -> int:
    """Tiles of Θ̂(X, X) (upper triangle) and Θ̂(X_T, X) computed by ntkpipe.core.kernels."""
    rows, cols = -(-z.n_train // z.block), -(-z.n_test // z.block)
    return rows * (rows + 1) // 2 + cols * rows


def _linear_cost(z: _Sizes) -> Cost:
    if not z.closed_form:
        trained = _train_cost(z)
        return Cost(flops=3.0 * trained.flops, bytes=2.0 * trained.bytes)
    p, f, k, e = z.net.params, z.net.forward_flops, z.k, z.element
    m = z.n_train * k  # rows of Θ̂₀ as the closed form uses it
    inputs = z.seeds * (p + 2.0 * z.n_train**2 + 2.0 * z.n_test * z.n_train + z.n * k)
    full = _kernels_cost(z) if k > 1 else Cost(0.0, 0.0)  # k > 1: the full kernel [n, n, k, k]
    kernels = (m * m + z.n_test * k * m) * (1 if k == 1 else 2)
    eigen = 12.0 * m * m  # two eigendecompositions (outputs, weights): copies, vectors, work
    outputs = 4.0 * z.seeds * z.records * z.n * k
    omega = 2.0 * p + z.n_train * z.net.activations
    return Cost(
        flops=z.seeds * (10.0 * m**3 + 2.0 * z.records * m * z.n * k)
        + z.seeds * z.records * 3.0 * f * z.n_train
        + full.flops * k,
        bytes=e * (inputs + kernels + eigen + outputs + omega) + full.bytes,
    )


def _analytic_cost(z: _Sizes) -> Cost:
    entries = z.n_train**2 + z.n_test * z.n_train + z.n_test**2
    largest = max(z.n_train, z.n_test) ** 2
    return Cost(
        flops=z.analytic_factor * entries * (z.depth + 1),
        bytes=8.0 * (12.0 * largest + 2.0 * entries),
    )


def _compare_cost(z: _Sizes) -> Cost:
    trajectories = 2.0 * z.seeds * z.records * (2 * z.n * z.k + 10 + z.depth)
    kernels = 2.0 * z.seeds * (2.0 * z.n_train**2 + 2.0 * z.n_test * z.n_train)
    analytic = 2.0 * (z.n_train**2 + z.n_test * z.n_train + z.n_test**2)
    elements = trajectories + kernels + analytic
    return Cost(flops=50.0 * elements, bytes=3.0 * 8 * elements)


def _summary_elements(z: _Sizes) -> float:
    """Floats of the sweep's metrics (3 models × seeds × records × ~(12 + 2 layers) per run)."""
    return z.n_runs * 3.0 * z.seeds * z.records * (12 + 2 * (z.depth + 1) + 16)


def _collect_cost(z: _Sizes) -> Cost:
    elements = _summary_elements(z)
    return Cost(flops=100.0 * elements + 1e6 * z.n_runs, bytes=3.0 * 8 * elements)


def _figures_cost(z: _Sizes) -> Cost:
    elements = _summary_elements(z)
    return Cost(flops=1000.0 * elements + 1e9, bytes=4.0 * 8 * elements + 200 * _MB)


_STAGE_COSTS = {
    "init": _init_cost,
    "kernels": _kernels_cost,
    "analytic": _analytic_cost,
    "train": _train_cost,
    "linear": _linear_cost,
    "compare": _compare_cost,
    "collect": _collect_cost,
    "figures": _figures_cost,
    "report": _figures_cost,
}


def _network(config: dict) -> _Net:
    model = config["model"]
    arch, width, depth = model["architecture"], int(model["width"]), int(model["depth"])
    height, wide, channels = _INPUT_SHAPES.get(config["data"]["dataset"], (28, 28, 1))
    k, bias = _outputs(config), bool(model.get("b_std"))
    if arch == "fc":
        return _mlp(height * wide * channels, width, depth, k, bias)
    if arch == "cnn":
        return _cnn(height * wide, channels, width, depth, k, bias)
    return _wrn(height * wide, channels, width, depth, k, bias)


def _mlp(d_in: int, width: int, depth: int, k: int, bias: bool) -> _Net:
    weights = d_in * width + (depth - 1) * width * width + width * k
    biases = (depth * width + k) if bias else 0
    return _Net(
        params=weights + biases,
        activations=2.0 * depth * width + k,
        forward_flops=2.0 * weights,
        feature_width=float(d_in + depth * width),
    )


def _cnn(pixels: int, channels: int, width: int, depth: int, k: int, bias: bool) -> _Net:
    taps = _KERNEL * _KERNEL
    conv = taps * channels * width + max(depth - 1, 0) * taps * width * width
    biases = (depth * width + k) if bias else 0
    return _Net(
        params=conv + width * k + biases,
        activations=2.0 * depth * pixels * width + k,
        forward_flops=2.0 * pixels * conv + 2.0 * width * k,
        feature_width=0.0,
    )


def _wrn(pixels: int, channels: int, width: int, blocks: int, k: int, bias: bool) -> _Net:
    taps = _KERNEL * _KERNEL
    resolution = 1 + 1 / 4 + 1 / 16  # three groups, the last two at half the resolution each
    conv = taps * channels * width + 3 * 2 * blocks * taps * width * width + 2 * width * width
    convs = 1 + 3 * 2 * blocks + 2
    return _Net(
        params=conv + width * k + ((convs * width + k) if bias else 0),
        activations=2.0 * pixels * width * (1 + 2 * blocks * resolution) + k,
        forward_flops=2.0 * pixels * taps * width * (channels + 2 * blocks * width * resolution),
        feature_width=0.0,
    )


def _outputs(config: dict) -> int:
    classes = config["data"].get("classes") or list(range(10))
    loss = (config.get("training") or {}).get("loss", "mse")
    return facts.n_outputs(len(classes), loss)


def _seed_count(seeds) -> int:
    if isinstance(seeds, list | tuple):
        return max(1, len(seeds))
    if isinstance(seeds, dict):  # a sweep config: one job's seeds
        return int(seeds.get("per_job") or 1)
    return 1


def _attempt(attempt) -> int:
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError(f"attempt: {attempt!r} must be an integer ≥ 1 (Snakemake's attempt)")
    return attempt
