"""Writes relu_ntk_diag.npz: Θ̂₀(x, x) of ReLU MLPs (He init σ_w² = 2, no bias, NTK
parameterization, float64) at depths DEPTHS × widths WIDTHS for SEEDS seeds and 3 inputs x of
norm 3 in d = 8, the data of tests/analysis/test_beyond.py (which recomputes one cell live).

Run: python tests/analysis/data/make_relu_ntk_diag.py
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.core import kernels, models

jax.config.update("jax_enable_x64", True)

DEPTHS, WIDTHS, SEEDS = (2, 4), (16, 32, 64), 96


def inputs() -> jax.Array:
    x = jax.random.normal(jax.random.PRNGKey(11), (3, 8))
    return 3.0 * x / jnp.linalg.norm(x, axis=1, keepdims=True)


def ntk_diagonals(depth: int, width: int, seeds: int) -> np.ndarray:
    """Θ̂₀(x, x) [seed, 3] of the first `seeds` seeds (keys split from PRNGKey(0) into SEEDS)."""
    x = inputs()
    net = models.mlp(depth, width, 1, "relu", "ntk", 2**0.5, None)
    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)[:seeds]
    one = lambda key: jnp.diag(kernels.empirical_ntk(net, net.init(key, x), x))  # noqa: E731
    return np.asarray(jax.jit(jax.vmap(one))(keys))


if __name__ == "__main__":
    diag = np.stack([np.stack([ntk_diagonals(d, n, SEEDS) for n in WIDTHS]) for d in DEPTHS])
    np.savez_compressed(
        Path(__file__).with_name("relu_ntk_diag.npz"),
        ntk_diag=diag,
        depths=np.asarray(DEPTHS),
        widths=np.asarray(WIDTHS),
    )
