"""The cost model's formulas: FLOPs and peak bytes of one job of each stage, from a run's config.

Notation (one job): n_tr, n_te training / test examples, n = n_tr + n_te, k outputs, S seeds
in the job (vmapped), T optimizer steps, R record steps, b = min(kernels.block_size, n), P
parameters of one network, A floats of activations per example kept for backpropagation, F
FLOPs of one forward pass on one example, E bytes per float (4 for float32, 8 for float64).

Peak memory of a job = a fixed part (:mod:`ntkpipe.sweep.cost`: ``BASE_MB``, ``DATASET_MB``) +
the variable part computed here, in which each array the stage holds at its peak is counted once:

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

Bytes written (:func:`written_bytes`, the stores of the job, order of magnitude): init
S (P + n k) E; kernels 2 S (n_tr² + n_te n_tr) E (Θ̂ and K̂); train S (2 P + 2 R (n k + L + 1)) E
(final params, the last checkpoint, the records); linear S (2 R n k + P) E; analytic
2 (n_tr² + n_te n_tr + n_te²) · 8; compare the metrics; collect the summary; figures and report
a few MB.

Nothing here imports JAX: every count is a closed form in the sizes of the config.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ntkpipe.datasets import INPUT_SHAPES
from ntkpipe.sweep import facts

__all__ = [
    "EVAL_BUDGET_BYTES",
    "LIVE_TILES",
    "Cost",
    "Net",
    "Sizes",
    "STAGE_COSTS",
    "stage_cost_of",
    "written_bytes",
    "network",
    "outputs",
    "seed_count",
]

EVAL_BUDGET_BYTES = 2**30
"""Activations of one block of examples evaluated at once (see :func:`eval_block_size`)."""
LIVE_TILES = {"dense": 16, "jacobian": 4}
"""Tiles of the empirical kernels whose features are in memory at once (measured: JAX's
asynchronous dispatch runs ahead of the tile loop; up to ~15 small MLP tiles, ~3 large tiles of
per-example Jacobians). Memory of the kernels stage is O(live · block · features), not O(block²)."""

_ELEMENT_BYTES = {"float32": 4, "float64": 8}
_KERNEL = 3  # spatial size of the conv filters (ntkpipe.core.convnets default)
_MB = 2**20


def stage_cost_of(sizes: Sizes, stage: str) -> Cost:
    """FLOPs and peak variable bytes of one job of ``stage`` (one of :data:`STAGE_COSTS`)."""
    if stage not in STAGE_COSTS:
        raise ValueError(f"stage: {stage!r} is not one of {', '.join(STAGE_COSTS)}")
    return STAGE_COSTS[stage](sizes)


def written_bytes(sizes: Sizes, stage: str) -> float:
    """Bytes of the stores one job of ``stage`` writes (module docstring; order of magnitude)."""
    z, e = sizes, sizes.element
    pairs = z.n_train**2 + z.n_test * z.n_train
    records = z.records * (z.n * z.k + z.depth + 1)
    written = {
        "init": z.seeds * (z.net.params + z.n * z.k) * e,
        "kernels": 2.0 * z.seeds * pairs * e,
        "train": z.seeds * (2.0 * z.net.params + 2.0 * records) * e,
        "linear": z.seeds * (2.0 * z.records * z.n * z.k + z.net.params) * e,
        "analytic": 2.0 * (pairs + z.n_test**2) * 8,
        "compare": 8.0 * z.seeds * z.records * (2 * z.n * z.k + 10 + z.depth),
        "collect": 8.0 * _summary_elements(z),
        "figures": 5.0 * _MB,
        "report": 5.0 * _MB,
    }
    if stage not in written:
        raise ValueError(f"stage: {stage!r} is not one of {', '.join(written)}")
    return float(written[stage])


class Cost(NamedTuple):
    """What one job of a stage costs."""

    flops: float  # floating point operations (order of magnitude)
    bytes: float  # peak memory beyond the fixed part (BASE_MB, DATASET_MB)


class Net(NamedTuple):
    """Sizes of one network on one example."""

    params: int  # P
    activations: float  # A: floats kept per example for backpropagation
    forward_flops: float  # F: FLOPs of a forward pass on one example
    feature_width: float  # Σ over layers of the layer widths (dense kernel features)


class Sizes(NamedTuple):
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
    net: Net
    closed_form: bool  # linear stage: MSE with full-batch GD
    analytic_factor: float  # FLOPs per kernel entry and layer of the analytic recursion
    n_runs: int
    kernel_stores: int  # Θ̂₀ and Θ̂_T stores compare reads (kernels.initial, kernels.final)
    analytic: bool  # kernels.analytic: compare reads the analytic kernels

    @classmethod
    def of(cls, config: dict) -> Sizes:
        data, model = config["data"], config["model"]
        training = config.get("training", {})
        n_train, n_test = int(data["n_train"]), int(data["n_test"])
        n = n_train + n_test
        batch = training.get("batch_size") or n_train
        kernels = config.get("kernels") or {}
        block = int(kernels.get("block_size") or n)
        return cls(
            dataset=data["dataset"],
            n_train=n_train,
            n_test=n_test,
            k=outputs(config),
            seeds=seed_count(config.get("seeds")),
            steps=int(training.get("steps", 1)),
            records=int(training.get("records", 24)),
            batch=int(batch),
            block=max(1, min(block, n)),
            depth=int(model["depth"]),
            element=_ELEMENT_BYTES.get(config.get("precision", "float32"), 4),
            net=network(config),
            closed_form=training.get("loss", "mse") == "mse"
            and training.get("optimizer", "gd") == "gd",
            analytic_factor=30.0 if model.get("activation") in ("relu", "identity") else 3000.0,
            n_runs=int(config.get("n_runs", 1)),
            kernel_stores=sum(bool(kernels.get(key, True)) for key in ("initial", "final")),
            analytic=bool(kernels.get("analytic", True)),
        )

    @property
    def n(self) -> int:
        return self.n_train + self.n_test


def _init_cost(z: Sizes) -> Cost:
    p = z.net.params
    return Cost(
        flops=z.seeds * z.n * z.net.forward_flops,
        bytes=z.element * z.seeds * 3.0 * p + _eval_bytes(z),  # f₀ in blocks, as in training
    )


def _train_cost(z: Sizes) -> Cost:
    p, a, f = z.net.params, z.net.activations, z.net.forward_flops
    records = 2.0 * z.records * (z.n * z.k + z.depth + 1)
    return Cost(
        flops=z.seeds * (3.0 * f * z.batch * z.steps + f * z.n * z.records),
        bytes=z.element * z.seeds * (7.0 * p + 2.0 * z.batch * a + records) + _eval_bytes(z),
    )


def _kernels_cost(z: Sizes) -> Cost:
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


def _eval_bytes(z: Sizes) -> float:
    """Activations of the evaluation at the record steps: all examples, or a block of them."""
    rows = max(z.n_train, z.n_test)
    return min(float(EVAL_BUDGET_BYTES), z.element * z.seeds * rows * z.net.activations)


def _tiles(z: Sizes) -> int:
    """Tiles of Θ̂(X, X) (upper triangle) and Θ̂(X_T, X) computed by ntkpipe.core.kernels."""
    rows, cols = -(-z.n_train // z.block), -(-z.n_test // z.block)
    return rows * (rows + 1) // 2 + cols * rows


def _linear_cost(z: Sizes) -> Cost:
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


def _analytic_cost(z: Sizes) -> Cost:
    entries = z.n_train**2 + z.n_test * z.n_train + z.n_test**2
    largest = max(z.n_train, z.n_test) ** 2
    return Cost(
        flops=z.analytic_factor * entries * (z.depth + 1),
        bytes=8.0 * (12.0 * largest + 2.0 * entries),
    )


def _compare_cost(z: Sizes) -> Cost:
    trajectories = 2.0 * z.seeds * z.records * (2 * z.n * z.k + 10 + z.depth)
    pairs = z.n_train**2 + z.n_test * z.n_train
    kernels = z.kernel_stores * z.seeds * 2.0 * pairs  # Θ̂ and K̂ of each store read
    analytic = 2.0 * (pairs + z.n_test**2) if z.analytic else 0.0
    elements = trajectories + kernels + analytic
    return Cost(flops=50.0 * elements, bytes=3.0 * 8 * elements)


def _summary_elements(z: Sizes) -> float:
    """Floats of the sweep's metrics (3 models × seeds × records × ~(12 + 2 layers) per run)."""
    return z.n_runs * 3.0 * z.seeds * z.records * (12 + 2 * (z.depth + 1) + 16)


def _collect_cost(z: Sizes) -> Cost:
    elements = _summary_elements(z)
    return Cost(flops=100.0 * elements + 1e6 * z.n_runs, bytes=3.0 * 8 * elements)


def _figures_cost(z: Sizes) -> Cost:
    elements = _summary_elements(z)
    return Cost(flops=1000.0 * elements + 1e9, bytes=4.0 * 8 * elements + 200 * _MB)


STAGE_COSTS = {
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


def network(config: dict) -> Net:
    model = config["model"]
    arch, width, depth = model["architecture"], int(model["width"]), int(model["depth"])
    if arch == "custom":
        return _custom(config)
    height, wide, channels = _image_shape(config["data"])
    k, bias = outputs(config), bool(model.get("b_std"))
    if arch == "fc":
        return _mlp(height * wide * channels, width, depth, k, bias)
    if arch == "cnn":
        return _cnn(height * wide, channels, width, depth, k, bias)
    return _wrn(height * wide, channels, width, depth, k, bias)


def _custom(config: dict) -> Net:
    """A custom module's sizes from XLA's cost analysis of its compiled forward and backward
    pass on a few examples (:mod:`ntkpipe.sweep.custom_model`, cached): F and A per example, the
    cost formulas scale them to the run's examples, seeds and steps. Its kernels take the
    generic Jacobian path (feature_width 0)."""
    from ntkpipe.sweep import custom_model
    from ntkpipe.sweep.points import data_input_shape

    sizes = custom_model.net_sizes(config, data_input_shape(config))
    return Net(
        params=int(sizes["params"]),
        activations=float(sizes["activations"]),
        forward_flops=float(sizes["forward_flops"]),
        feature_width=0.0,
    )


def _image_shape(data: dict) -> tuple[int, int, int]:
    """(H, W, C) of a dataset's example; an arrays file's shape, padded with ones."""
    if data["dataset"] != "arrays":
        return INPUT_SHAPES.get(data["dataset"], (28, 28, 1))
    from ntkpipe.datasets import arrays

    shape = (*arrays.input_shape(data), 1, 1, 1)
    return (shape[0], shape[1], math.prod(shape[2:]))


def _mlp(d_in: int, width: int, depth: int, k: int, bias: bool) -> Net:
    weights = d_in * width + (depth - 1) * width * width + width * k
    biases = (depth * width + k) if bias else 0
    return Net(
        params=weights + biases,
        activations=2.0 * depth * width + k,
        forward_flops=2.0 * weights,
        feature_width=float(d_in + depth * width),
    )


def _cnn(pixels: int, channels: int, width: int, depth: int, k: int, bias: bool) -> Net:
    taps = _KERNEL * _KERNEL
    conv = taps * channels * width + max(depth - 1, 0) * taps * width * width
    biases = (depth * width + k) if bias else 0
    return Net(
        params=conv + width * k + biases,
        activations=2.0 * depth * pixels * width + k,
        forward_flops=2.0 * pixels * conv + 2.0 * width * k,
        feature_width=0.0,
    )


def _wrn(pixels: int, channels: int, width: int, blocks: int, k: int, bias: bool) -> Net:
    taps = _KERNEL * _KERNEL
    resolution = 1 + 1 / 4 + 1 / 16  # three groups, the last two at half the resolution each
    conv = taps * channels * width + 3 * 2 * blocks * taps * width * width + 2 * width * width
    convs = 1 + 3 * 2 * blocks + 2
    return Net(
        params=conv + width * k + ((convs * width + k) if bias else 0),
        activations=2.0 * pixels * width * (1 + 2 * blocks * resolution) + k,
        forward_flops=2.0 * pixels * taps * width * (channels + 2 * blocks * width * resolution),
        feature_width=0.0,
    )


def outputs(config: dict) -> int:
    if config["data"].get("dataset") == "arrays" and config["data"].get("classes") is None:
        from ntkpipe.sweep.points import output_dim

        return output_dim(config)
    classes = config["data"].get("classes") or list(range(10))
    loss = (config.get("training") or {}).get("loss", "mse")
    return facts.n_outputs(len(classes), loss)


def seed_count(seeds) -> int:
    if isinstance(seeds, list | tuple):
        return max(1, len(seeds))
    if isinstance(seeds, dict):  # a sweep config: one job's seeds
        return int(seeds.get("per_job") or 1)
    return 1
