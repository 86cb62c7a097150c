"""The sampled weights of Fig. 3: which entries of each layer are recorded, and their
trajectory θ − θ₀ (every step for the closed-form f_lin, the two ends of training otherwise).
Shared by :mod:`ntkpipe.jobs.train` and :mod:`ntkpipe.jobs.linear`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ntkpipe.core import models

#: Entries of each layer's weight matrix whose trajectory is recorded (Fig. 3).
WEIGHTS_PER_LAYER = 2


def weight_sample_index(theta) -> list[tuple[str, tuple[int, ...]]]:
    """The sampled weight entries of one network: (layer, multi-index), WEIGHTS_PER_LAYER a layer.

    Entry m of a layer kernel of shape (s₁, …, s_d) is (m mod s₁, …, m mod s_d): the diagonal
    entries (0, 0), (1, 1), … of a dense layer. They exist at every width, so the entries, and
    the ``wsample`` coordinate, are the same for every run of a width sweep (the summary combines
    runs by their coordinates); at initialization they are i.i.d. N(0, 1) like any other entry.
    Listed in the text order of their labels (:func:`weight_sample_labels`).

    Args:
        theta: the parameters of one network (no seed axis).
    """
    picks = []
    for name, kernel in models.kernel_leaves(theta).items():
        shape = tuple(kernel.shape)
        count = min(WEIGHTS_PER_LAYER, max(shape))
        entries = {tuple(m % size for size in shape) for m in range(count)}
        picks += [(name, entry) for entry in entries]
    return sorted(picks, key=_weight_label)


def weight_sample_labels(theta) -> list[str]:
    """Labels ``layer[i,j]`` of :func:`weight_sample_index` (the ``wsample`` coordinate)."""
    return [_weight_label(pick) for pick in weight_sample_index(theta)]


def _weight_label(pick) -> str:
    name, entry = pick
    return f"{name}[{','.join(map(str, entry))}]"


def endpoint_weight_samples(params0, params_t, steps) -> xr.DataArray:
    """θ − θ₀ of the sampled entries at step 0 (zero) and at the last step, NaN in between.

    Real training keeps only the final parameters, so its sampled weights are known at the two
    ends of training; the closed-form f_lin records them at every step (Eq. 8).

    Args:
        params0: θ₀ of every seed (leading seed axis).
        params_t: θ_T of every seed (leading seed axis).
        steps: the record steps [n_steps].

    Returns:
        DataArray (seed, step, wsample).
    """
    first = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], params0)
    picks = weight_sample_index(first)
    start, end = models.kernel_leaves(params0), models.kernel_leaves(params_t)
    n_seed = next(iter(start.values())).shape[0]
    final_change = np.stack(
        [
            np.asarray(end[name])[(slice(None), *entry)]
            - np.asarray(start[name])[(slice(None), *entry)]
            for name, entry in picks
        ],
        axis=-1,
    )
    values = np.full((n_seed, len(steps), len(picks)), np.nan)
    values[:, 0] = 0.0
    values[:, -1] = final_change
    return xr.DataArray(
        values,
        dims=("seed", "step", "wsample"),
        coords={"wsample": weight_sample_labels(first)},
    )


def omega_records(omega, theta0, steps) -> tuple[np.ndarray, np.ndarray]:
    """‖ω_t‖_F/‖W_0‖_F per layer [n_steps, n_layers] and the sampled entries of ω_t
    [n_steps, n_wsample] (see :func:`weight_sample_index`) at each step."""
    w0 = models.kernel_leaves(theta0)
    picks = weight_sample_index(theta0)
    rows, samples = [], []
    for step in steps:
        moved = models.kernel_leaves(omega(step))
        rows.append(
            [float(jnp.linalg.norm(moved[name]) / jnp.linalg.norm(w0[name])) for name in w0]
        )
        samples.append([float(moved[name][entry]) for name, entry in picks])
    return np.asarray(rows), np.asarray(samples)
