"""Writes a small regression task as an .npz for ``data.dataset: arrays``:
y = sin(3 u·x) + ½ cos(2 v·x) for x ~ N(0, I_16), 256 training and 256 test examples.

    python examples/custom/make_arrays.py examples/custom/wave.npz
"""

import sys

import numpy as np


def make(path, n=256, d=16, seed=0):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(2, d)) / np.sqrt(d)
    x = rng.normal(size=(2 * n, d))
    y = np.sin(3 * x @ u) + 0.5 * np.cos(2 * x @ v)
    np.savez(path, x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:])


if __name__ == "__main__":
    make(sys.argv[1] if len(sys.argv) > 1 else "examples/custom/wave.npz")
