"""The sampled weights of Fig. 3: which entries of each layer are recorded, and their
trajectory θ_t − θ₀ at the record steps (the closed-form f_lin from Eq. 8, trained networks from
their parameters after every recorded segment, carried through checkpoints). Shared by
:mod:`ntkpipe.jobs.train` and :mod:`ntkpipe.jobs.linear`."""

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
    The input layer of a dense network (a 2-d first kernel, rows = the d_in input features) takes
    its rows spread over the input instead, row ⌊(m + 1)·d_in/(M + 1)⌋ for M samples: the first
    features of an image are its corner pixels, often constant (pixel 0 of the digits is always 0),
    and their weights get no gradient. d_in is fixed by the dataset, so these rows are the same at
    every width too. Listed in the text order of their labels (:func:`weight_sample_labels`).

    Args:
        theta: the parameters of one network (no seed axis).
    """
    picks = []
    for layer, (name, kernel) in enumerate(models.kernel_leaves(theta).items()):
        shape = tuple(kernel.shape)
        count = min(WEIGHTS_PER_LAYER, max(shape))
        entries = {tuple(m % size for size in shape) for m in range(count)}
        if layer == 0 and len(shape) == 2 and shape[0] > count:
            entries = {((m + 1) * shape[0] // (count + 1), m % shape[1]) for m in range(count)}
        picks += [(name, entry) for entry in entries]
    return sorted(picks, key=_weight_label)


def weight_sample_labels(theta) -> list[str]:
    """Labels ``layer[i,j]`` of :func:`weight_sample_index` (the ``wsample`` coordinate)."""
    return [_weight_label(pick) for pick in weight_sample_index(theta)]


def _weight_label(pick) -> str:
    name, entry = pick
    return f"{name}[{','.join(map(str, entry))}]"


def endpoint_weight_samples(params0, params_t, steps) -> xr.DataArray:
    """θ − θ₀ of the sampled entries at step 0 (zero) and at the last step, NaN in between: what
    is known of a run from its two ends (a :class:`WeightTrajectory` with no segment recorded).

    Args:
        params0: θ₀ of every seed (leading seed axis).
        params_t: θ_T of every seed (leading seed axis).
        steps: the record steps [n_steps].

    Returns:
        DataArray (seed, step, wsample).
    """
    return WeightTrajectory(params0, steps).finish(params_t)


class WeightTrajectory:
    """θ_t − θ₀ of the sampled entries (:func:`weight_sample_index`) at the record steps of a
    training run, filled as training passes them (the ``on_segment`` callback of
    :func:`ntkpipe.core.train.train`): zero at step 0, NaN at steps not reached.

    ``values`` [seed, step, wsample] (float64) is what a checkpoint carries next to the
    TrainState; :meth:`restore` puts it back when training resumes from that checkpoint, so a
    resumed run records the same trajectory as an uninterrupted one, bit for bit.

    Args:
        params0: θ₀ of every seed (leading seed axis).
        steps: the record steps [n_steps], sorted, 0 first.
    """

    def __init__(self, params0, steps):
        first = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], params0)
        self._picks = weight_sample_index(first)
        self._labels = weight_sample_labels(first)
        self._start = self._sample(params0)
        self._steps = np.asarray(steps)
        self.values = np.full((self._start.shape[0], len(self._steps), len(self._picks)), np.nan)
        self.values[:, self._steps == 0] = 0.0

    def record(self, step: int, params) -> None:
        """Keeps θ_step − θ₀ if ``step`` is a record step (other segment ends are ignored)."""
        index = np.searchsorted(self._steps, step)
        if index < len(self._steps) and self._steps[index] == step:
            self.values[:, index] = self._sample(params) - self._start

    def restore(self, values) -> None:
        """Takes back the ``values`` of an earlier run of the same training (a checkpoint)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != self.values.shape:
            raise ValueError(
                f"weight samples: shape {values.shape} does not match this run's "
                f"{self.values.shape} (seed, step, wsample)"
            )
        self.values = values.copy()

    def finish(self, params_t, diverged_step=None) -> xr.DataArray:
        """The trajectory (seed, step, wsample) with θ_T − θ₀ at the last step; a seed's
        records at and after its ``diverged_step`` (≥ 0) are NaN, as :func:`train` records."""
        self.record(int(self._steps[-1]), params_t)
        values = self.values.copy()
        if diverged_step is not None:
            for seed, at in enumerate(np.asarray(diverged_step)):
                if at >= 0:
                    values[seed, self._steps >= at] = np.nan
        return xr.DataArray(
            values, dims=("seed", "step", "wsample"), coords={"wsample": self._labels}
        )

    def _sample(self, params) -> np.ndarray:
        """The sampled entries [seed, wsample] in float64, indexed on the device (few numbers)."""
        leaves = models.kernel_leaves(params)
        picked = [leaves[name][(slice(None), *entry)] for name, entry in self._picks]
        return np.stack([np.asarray(value, dtype=np.float64) for value in picked], axis=-1)


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
