"""A small cost model of each stage: FLOPs and bytes from the run, turned into Snakemake resources.

Notation: n = n_train + n_test examples, d = input dimension, w = width, L = depth (hidden layers),
k = outputs, S = seeds in the job, T = optimizer steps, P = parameters of one network. The counts
are for the MLP; convolutional networks are charged by a factor (see :data:`CONV_FACTOR`).

Memory (bytes, float32):
- train:   S · (4 P  [params, gradient, optimizer state, θ₀]  +  3 n L w  [activations])
- kernels: blocks of Θ̂ (b² k² L) with the layer Grams, plus the stored kernels (6 n² per seed)
- linear:  kernels as above plus the eigendecomposition (3 n² k²)
plus a fixed overhead for Python, JAX and XLA (:data:`BASE_MB`). A retry after an out-of-memory
failure doubles the request (`attempt`).
"""

from __future__ import annotations

import math

BASE_MB = 1200
BYTES = 4
CONV_FACTOR = 9.0
INPUT_DIMS = {"digits": 64, "mnist": 784, "cifar10": 3072}


def n_params(config: dict) -> int:
    """P: parameters of one network (MLP count; conv nets scaled by CONV_FACTOR)."""
    model, d, k = config["model"], _input_dim(config), _outputs(config)
    w, depth = model["width"], model["depth"]
    dense = d * w + (depth - 1) * w * w + w * k + depth * w + k
    return int(dense * (CONV_FACTOR if model["architecture"] != "fc" else 1))


def flops(config: dict, stage: str) -> float:
    """Floating point operations of one job of `stage` (order of magnitude)."""
    n = config["data"]["n_train"] + config["data"]["n_test"]
    seeds = len(config.get("seeds", [0]))
    p, k, w = n_params(config), _outputs(config), config["model"]["width"]
    if stage == "train":
        return 6.0 * p * config["data"]["n_train"] * config["training"]["steps"] * seeds
    if stage in ("kernels", "linear"):
        return seeds * (4.0 * p * n * k + 2.0 * n * n * w * k * (config["model"]["depth"] + 1))
    if stage == "analytic":
        return 50.0 * n * n * (config["model"]["depth"] + 1)
    return 1e6 * n


def memory_bytes(config: dict, stage: str) -> float:
    """Peak bytes of one job of `stage` beyond the fixed overhead."""
    n = config["data"]["n_train"] + config["data"]["n_test"]
    seeds = len(config.get("seeds", [0]))
    p, k = n_params(config), _outputs(config)
    w, depth = config["model"]["width"], config["model"]["depth"]
    block = min(config.get("kernels", {}).get("block_size", 256), n)
    activations = 3.0 * n * depth * w * k
    if stage == "train":
        return BYTES * seeds * (4.0 * p + activations)
    if stage == "kernels":
        return BYTES * (2.0 * p + 2 * block * depth * w * k + 6.0 * n * n * seeds + activations)
    if stage == "linear":
        return BYTES * (2.0 * p + activations + 3.0 * (n * k) ** 2 + 6.0 * n * n * seeds)
    if stage == "analytic":
        return 8.0 * 8 * n * n
    return BYTES * 10.0 * n * n * seeds


def mem_mb(config: dict, stage: str, attempt: int = 1) -> int:
    """Snakemake `mem_mb` for `stage`: the model's peak, doubled on each retry."""
    return int(
        math.ceil((BASE_MB + 1.5 * memory_bytes(config, stage) / 2**20) * 2 ** (attempt - 1))
    )


def runtime_min(config: dict, stage: str, attempt: int = 1, flop_rate: float = 2e10) -> int:
    """Snakemake `runtime` (minutes) at a conservative `flop_rate`, with room to spare."""
    minutes = 5 + 3 * flops(config, stage) / flop_rate / 60
    return int(math.ceil(minutes * attempt))


def _input_dim(config: dict) -> int:
    return INPUT_DIMS.get(config["data"]["dataset"], 784)


def _outputs(config: dict) -> int:
    classes = config["data"].get("classes") or list(range(10))
    loss = config.get("training", {}).get("loss", "mse")
    return 1 if len(classes) == 2 and loss == "mse" else len(classes)
