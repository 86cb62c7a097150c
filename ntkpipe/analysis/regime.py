"""Where a run trained: its regime (lazy, catapult, divergent) and its status, per seed.

Gradient descent on the MSE loss L = ½ · mean over the n·k entries moves the training outputs by
f_{i+1} − f_i ≈ −η/(n·k) · Θ̂_i (f_i − y). Its linearization (f_lin, constant Θ̂₀) converges iff
η·λ_max(Θ̂₀)/(n·k) < 2 (:mod:`ntkpipe.core.sharpness`), i.e. η < 2·n·k/λ_max; the run's
η_crit = 2·n·k/(λ_min + λ_max) is at most that threshold. Above it f_lin diverges, while the
network may still converge: its loss first grows, the kernel's top eigenvalue falls until
η·λ_max/(n·k) < 2, and training converges in that flatter region — the catapult phase of
Lewkowycz et al. 2020 ("The large learning rate phase of deep learning: the catapult
mechanism", arXiv:2003.02218), which they find up to η ≈ 4/λ₀ for two-layer linear networks
and up to ≈ 12/λ₀ for wide ReLU networks in their normalization (η_crit = 2/λ₀ there), i.e. up
to 2× and ≈ 6× the threshold 2·n·k/λ_max here.

**Regime criterion** (:func:`classify`), from the network's training loss L_t at the record
steps and its sharpness λ_t = λ_max(Θ̂_t) (when recorded):

- ``divergent``: L_t is not finite at some record, or the last L_T > L_0 (training did not
  bring the loss below its start within the run);
- ``catapult``: not divergent, and either the run started above the stability edge,
  η·λ_0/(n·k) > 2 (f_lin diverges there: a network that converges must have left Θ̂₀'s
  region), or the loss rose above :data:`SPIKE_FACTOR` × L_0 at some record (the spike; GD
  below the edge decreases every mode of the linear model, so its loss never rises);
- ``lazy``: otherwise (converged, started below the edge, no spike).

The stability edge is the MSE loss's; for cross-entropy (whose Hessian is not Θ̂/(n·k)) the
regime is read from the loss alone.

The claim that catapult runs *end* flatter, η·λ_T/(n·k) < 2, is not part of the criterion
(which reads λ only at step 0), so it is a test, not a tautology.

**Status** (:func:`statuses`): ``diverged`` when the network's loss is not finite or ends
above its start; ``catapult`` when the network converges while f_lin diverges (non-finite or
ending above its start) — these runs are listed, never silently dropped, and left out of the
lazy-regime fits; ``lr_above_critical`` when η > η_crit (Θ̂₀'s, the full kernel when k > 1),
``lr_between_critical`` when k > 1 and η lies between the full kernel's η_crit and the traced
kernel's (the traced kernel's is higher, by up to a factor k: only the full one is the
threshold); ``ok`` otherwise.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ntkpipe.conventions import STATUSES

__all__ = [
    "REGIMES",
    "SPIKE_FACTOR",
    "STABILITY_EDGE",
    "classify",
    "diverges",
    "regimes",
    "run_state",
    "as_text",
    "statuses",
    "traced_lr_critical",
]

REGIMES = ("lazy", "catapult", "divergent")
"""The values of the summary variable ``regime`` ("" for a missing run)."""

SPIKE_FACTOR = 2.0
"""A loss above this many times its start at some record is a catapult spike. Below the
stability edge GD on the linear model decreases the loss monotonically, and a wide network's
loss stays within a few percent of f_lin's; a factor 2 leaves room for the finite-width
nonlinearity of narrow nets and is far below the spikes of the catapult phase (10²–10⁴)."""

STABILITY_EDGE = 2.0
"""η·λ_max/(n·k) above which the linear dynamics diverge (|1 − ηλ/(n·k)| > 1)."""

STATUS_OK, STATUS_HIGH_LR, STATUS_DIVERGED, STATUS_MISSING, STATUS_CATAPULT, STATUS_BETWEEN = (
    STATUSES
)


def as_text(values: xr.DataArray) -> np.ndarray:
    """A text variable (``regime``, ``status``) as an object array of str of its shape, whatever
    dtype the store gave it (numpy's StringDType from Zarr, fixed-width or object)."""
    raw = np.asarray(values.values, dtype=object)
    return np.array([str(v) for v in raw.ravel()], dtype=object).reshape(raw.shape)


def diverges(loss: np.ndarray) -> bool:
    """A loss trajectory [step] that is not finite at some record or ends above its start."""
    loss = np.asarray(loss, dtype=float)
    return bool(not np.isfinite(loss).all() or loss[-1] > loss[0])


def classify(loss, sharpness, learning_rate: float, n_k: int) -> str:
    """The regime of one seed (module docstring).

    Args:
        loss: the network's training loss L_t at the record steps [step], step 0 first.
        sharpness: λ_max(Θ̂_t) at the same steps [step], or None (not recorded: the criterion
            then reads the loss alone).
        learning_rate: η.
        n_k: n·k, training examples times outputs.

    Returns:
        "lazy", "catapult" or "divergent".
    """
    loss = np.asarray(loss, dtype=float)
    if diverges(loss):
        return "divergent"
    unstable = False
    if sharpness is not None and np.isfinite(sharpness[0]):
        unstable = learning_rate * float(sharpness[0]) / n_k > STABILITY_EDGE
    spiked = loss.size > 1 and float(np.max(loss[1:])) > SPIKE_FACTOR * loss[0]
    return "catapult" if unstable or spiked else "lazy"


def regimes(loss_train, sharpness, learning_rate: float, n_k: int) -> xr.DataArray:
    """:func:`classify` of every seed: loss_train, sharpness [seed, step] (sharpness may be
    None) → [seed] of str."""
    values = [
        classify(
            loss_train.isel(seed=i).values,
            None if sharpness is None else sharpness.isel(seed=i).values,
            learning_rate,
            n_k,
        )
        for i in range(loss_train.sizes["seed"])
    ]
    return xr.DataArray(np.asarray(values, dtype=object).astype(str), dims="seed")


def statuses(net_loss, lin_loss, learning_rate, lr_critical, lr_critical_traced, n_out):
    """The status of every seed (module docstring).

    Args:
        net_loss, lin_loss: training losses of f and f_lin [seed, step].
        learning_rate: η.
        lr_critical: η_crit of the kernel the dynamics evolve [seed] (NaN: not computed).
        lr_critical_traced: η_crit of the traced kernel [seed] (NaN: not computed).
        n_out: k.

    Returns:
        [seed] of str, values of :data:`ntkpipe.conventions.STATUSES`.
    """
    out = []
    for i in range(net_loss.sizes["seed"]):
        critical, traced = float(lr_critical[i]), float(lr_critical_traced[i])
        if diverges(net_loss.isel(seed=i).values):
            out.append(STATUS_DIVERGED)
        elif diverges(lin_loss.isel(seed=i).values):
            out.append(STATUS_CATAPULT)
        elif np.isnan(critical) or learning_rate <= critical:
            out.append(STATUS_OK)
        elif n_out > 1 and not np.isnan(traced) and learning_rate <= traced:
            out.append(STATUS_BETWEEN)
        else:
            out.append(STATUS_HIGH_LR)
    return xr.DataArray(np.asarray(out, dtype=object).astype(str), dims="seed")


def traced_lr_critical(kernel_init, n_out: int) -> xr.DataArray:
    """2·n·k/(max(λ_min, 0) + λ_max) of the traced Θ̂₀ (``ntk_eigvals``, ascending) per seed:
    the η_crit one would read off the traced kernel; above the full kernel's when k > 1."""
    eig = kernel_init["ntk_eigvals"]
    n = eig.sizes[eig.dims[-1]]
    low = eig.isel({eig.dims[-1]: 0}).clip(min=0.0)
    return 2.0 * n * n_out / (low + eig.isel({eig.dims[-1]: -1}))


def run_state(config, trained, linear, kernel_init, seeds) -> dict:
    """The per-seed run state of ``metrics.zarr`` from a run's stores: η (resolved: the
    train store's own with training.lr_factor), η_crit of the full and the traced Θ̂₀,
    divergence of f and f_lin apart and together, status and regime per seed."""
    lr = float(trained["learning_rate"]) if "learning_rate" in trained else None
    lr = config["training"]["learning_rate"] if lr is None else lr
    n_out = trained.sizes["out"]
    critical = _nan_per_seed(seeds) if kernel_init is None else kernel_init.lr_critical
    traced = (
        _nan_per_seed(seeds)
        if kernel_init is None or "ntk_eigvals" not in kernel_init
        else traced_lr_critical(kernel_init, n_out)
    )
    # the edge η·λ_max/(n·k) = 2 is the MSE loss's; cross-entropy runs are judged by the loss
    mse = config["training"].get("loss", "mse") == "mse"
    sharpness = trained["sharpness"] if "sharpness" in trained and mse else None
    n_k = trained.sizes["train"] * n_out
    return {
        "lr_critical": critical,
        "lr_critical_traced": traced,
        "diverged_step": _first_divergence(trained.diverged_step, linear.diverged_step),
        "diverged_step_net": trained.diverged_step,
        "diverged_step_lin": linear.diverged_step,
        "learning_rate": lr,
        "status": statuses(
            trained.loss_train, linear.loss_train, lr, critical.values, traced.values, n_out
        ),
        "regime": regimes(trained.loss_train, sharpness, lr, n_k),
    }


def _first_divergence(net_step, lin_step) -> xr.DataArray:
    """The first step at which f or f_lin diverged (−1: neither did)."""
    steps = np.stack([np.asarray(net_step, dtype=int), np.asarray(lin_step, dtype=int)])
    first = np.where(steps < 0, np.iinfo(int).max, steps).min(axis=0)
    return xr.DataArray(np.where(first == np.iinfo(int).max, -1, first), dims="seed")


def _nan_per_seed(seeds) -> xr.DataArray:
    return xr.full_like(seeds, np.nan, dtype=float)
