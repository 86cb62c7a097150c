"""When the paper's claims apply: the conditions a claim row names in `ClaimRow.requires`.

A paper's statement holds under conditions (networks trained, η below η_crit, wide enough, …);
a sweep that does not meet them cannot test it, and its verdict is "not applicable" with the
reason, not "inconclusive" (which says the experiment tests the claim but cannot decide).

Each condition is a function (summary, row, scope) → `Finding`, evaluated by
`ntkpipe.analysis.claims.paper_claims` on the whole sweep (``level == "sweep"``) or on each
claim's scope (the runs at the claim's values of the other sweep axes, ``level == "scope"``):

- ``widths`` (sweep): an exponent against width needs ≥ `MIN_WIDTHS` widths;
- ``seeds`` (sweep): an interval needs replicates: ≥ 2 seeds per sweep point (a claim on one
  seed per point is not applicable, not inconclusive);
- ``fluctuation_seeds`` (sweep): a variance over seeds (Hanin & Nica's Var Θ̂₀/E²) needs ≥
  `MIN_FLUCTUATION_SEEDS` seeds per point for its bootstrap interval;
- ``analytic`` (sweep): the model has analytic kernels Θ, K (a custom model,
  ``model.architecture: custom``, has none);
- ``layer_roles`` (sweep): the layers' roles (input, hidden, output) are known: a custom
  module's layers are its parameter tree's ``kernel`` leaves, whose roles are not (the summary's
  ``not_applicable`` attribute says so, ``ntkpipe.sweep.facts.not_applicable``);
- ``trained`` (scope): the network's training loss fell to at most `TRAINED_LOSS_RATIO` of its
  value at step 0 (runs that did not are left out, named in the claim's reason; with none
  left the claim is not applicable, with the steps it would need);
- ``lazy`` (scope): the run is in the lazy regime the linearization theorem is about: η at
  most the run's η_crit (Theorem 2.1), not a catapult run, and, where the summary has the
  variable ``regime``, ``regime == "lazy"`` (other runs are left out, with the reason).

To add a condition: write a function (ds, row, group) → `Finding`, add it to `CHECKS` with
its level and its wording, and name it in the rows' ``requires``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.summary import format_number

#: The widths an exponent against width needs (two points always fit a line exactly).
MIN_WIDTHS = 3
#: Seeds per sweep point an interval over replicates needs.
MIN_SEEDS = 2
#: Seeds per sweep point the Hanin–Nica fluctuation Var_seed Θ̂₀(x, x)/(E Θ̂₀(x, x))² needs. Its
#: interval is a percentile bootstrap over each point's seeds; on real ReLU kernels
#: (tests/analysis/data/relu_ntk_diag.npz, 40 subsamples per S) the interval of c covered the c
#: of all 96 seeds in 8% of subsamples at S = 2 (and never held its own estimate: with 2 seeds
#: half the resamples repeat one seed, variance 0), 65% at 8, 68% at 16, 85% at 32.
#: config/small/fig_s5.yaml (depth × width, 2 seeds) was called "inconsistent" from it.
MIN_FLUCTUATION_SEEDS = 32
#: A run counts as trained when the network's training loss at the last record is at most this
#: fraction of its value at step 0, per loss. MSE: L_T/L_0 ≤ 0.1 means ‖f_T − y‖ ≤ 0.32‖f_0 − y‖
#: on the training set, the outputs have gone at least two thirds of the way to the targets, so
#: the changes the claims measure (W_T − W_0, Θ̂_T − Θ̂_0, f_T − f_0) are those of training, not
#: of its first steps. The sharper test, the slowest kernel mode relaxed (η·t·λ_min/(n·k) ≥ 1),
#: needs λ_min, which the summary does not carry (η_crit mixes λ_min and λ_max). Cross-entropy
#: falls only like e^(−margin) once an example is classified, so half its initial value already
#: means logits moved by O(1) on most examples.
TRAINED_LOSS_RATIO = {"mse": 0.1, "xent": 0.5}
#: Statuses of runs outside the lazy regime (the summary's `status`; ``catapult``: the network
#: converged while f_lin diverged, η between η_crit of f_lin and the catapult bound).
NOT_LAZY_STATUSES = ("lr_above_critical", "catapult")
#: The architecture value of a model without analytic kernels.
CUSTOM_ARCHITECTURE = "custom"


@dataclass(frozen=True)
class Finding:
    """What a condition found on a sweep or a claim's scope.

    Attributes:
        reason: why the claim does not apply ("" when it does).
        keep: bool per run (axes…, seed): the runs that meet the condition, or None (all).
        note: runs left out while the claim still applies, in words ("" when none).
    """

    reason: str = ""
    keep: xr.DataArray | None = None
    note: str = ""


@dataclass(frozen=True)
class Check:
    """An applicability condition: its function, level (``sweep`` or ``scope``) and wording."""

    function: Callable
    level: str
    wording: str


def widths(ds: xr.Dataset, row, group: dict) -> Finding:
    """An exponent against width needs ≥ `MIN_WIDTHS` widths."""
    n = ds.sizes["width"] if "width" in analysis.sweep_axes(ds) else 1
    if n >= MIN_WIDTHS:
        return Finding()
    values = ", ".join(str(v) for v in ds["width"].values) if "width" in ds.coords else "one"
    return Finding(
        f"an exponent against width needs ≥ {MIN_WIDTHS} widths; the sweep has {n} ({values}): "
        "add widths to sweep: model.width"
    )


def seeds(ds: xr.Dataset, row, group: dict) -> Finding:
    """An interval needs ≥ `MIN_SEEDS` seeds per sweep point."""
    return _seeds_at_least(
        ds,
        MIN_SEEDS,
        f"{{n}} seed per sweep point: no replicate to estimate the interval from; set "
        f"seeds.count ≥ {MIN_SEEDS}",
    )


def fluctuation_seeds(ds: xr.Dataset, row, group: dict) -> Finding:
    """A variance over seeds needs ≥ `MIN_FLUCTUATION_SEEDS` seeds per sweep point."""
    return _seeds_at_least(
        ds,
        MIN_FLUCTUATION_SEEDS,
        "{n} seeds per sweep point: the fluctuation Var Θ̂₀/(E Θ̂₀)² is a variance over seeds, "
        f"whose bootstrap interval needs ≥ {MIN_FLUCTUATION_SEEDS} (set seeds.count; "
        "config/beyond/depth_width_small.yaml has 64)",
    )


def _seeds_at_least(ds: xr.Dataset, minimum: int, reason: str) -> Finding:
    """Not applicable, with `reason` (``{n}``: the seeds per point), below `minimum` seeds."""
    n = ds.sizes.get("seed", 1)
    return Finding() if n >= minimum else Finding(reason.format(n=n))


def analytic(ds: xr.Dataset, row, group: dict) -> Finding:
    """The model has analytic kernels (not a custom model) and the sweep computed them."""
    arch = analysis.training_setting(ds, group, "model.architecture")
    if arch == CUSTOM_ARCHITECTURE:
        return Finding(
            "a custom model (model.architecture: custom) has no analytic kernel Θ, K to "
            "compare with"
        )
    missing = [m for m in row.metrics if not analysis.has_data(ds, m)]
    if missing:
        return Finding(f"the sweep has no analytic-kernel data ({', '.join(missing)})")
    return Finding()


def layer_roles(ds: xr.Dataset, row, group: dict) -> Finding:
    """The layers' roles (input, hidden, output) are known (not a custom module's)."""
    try:
        unknown = json.loads(ds.attrs.get("not_applicable") or "{}")
    except (TypeError, ValueError):
        unknown = {}
    reason = unknown.get("layer_roles") if isinstance(unknown, dict) else None
    return Finding(reason) if reason else Finding()


def trained(ds: xr.Dataset, row, group: dict) -> Finding:
    """The network's training loss fell to ≤ `TRAINED_LOSS_RATIO` of its initial value."""
    if "loss_train" not in ds or "step" not in ds["loss_train"].dims or ds.sizes["step"] < 2:
        return Finding()
    loss = analysis.usable_runs(ds[["loss_train", "status"]] if "status" in ds else ds)
    curve = loss["loss_train"]
    if "model" in curve.dims:
        curve = curve.sel(model="net")
    curve = curve.sortby("step")
    setting = analysis.training_setting(ds, group, "training.loss") or "mse"
    threshold = TRAINED_LOSS_RATIO.get(setting, TRAINED_LOSS_RATIO["mse"])
    start, end = curve.isel(step=0), curve.isel(step=-1)
    ratio = end / start
    finite = np.isfinite(ratio) & (start > 0)
    n = int(finite.sum())
    if not n:
        return Finding()
    keep = (ratio <= threshold) | ~finite
    n_trained = int((finite & (ratio <= threshold)).sum())
    steps = int(curve["step"].values[-1])
    if n_trained == 0:
        median = float(np.median(ratio.values[finite.values]))
        return Finding(
            keep=keep,
            reason=f"training stopped at loss ratio {format_number(median)} (L_T/L_0 of the "
            f"network at step {steps}, median of {n} runs); the claim is about trained networks, "
            f"L_T/L_0 ≤ {threshold:g} ({setting}); {_steps_needed(curve, threshold)}",
        )
    note = ""
    if n_trained < n:
        note = (
            f"{n - n_trained} of {n} runs left out: not trained (L_T/L_0 > {threshold:g} at "
            f"step {steps})"
        )
    return Finding(keep=keep, note=note)


def _steps_needed(curve: xr.DataArray, threshold: float) -> str:
    """The steps to reach L_T/L_0 = threshold, extrapolating the decay rate of the loss over
    the last two records (the slowest recent rate: the fast modes have relaxed first, so this
    is a lower bound more often than not)."""
    if curve.sizes["step"] < 2:
        return "record more steps"
    s1, s2 = (float(v) for v in curve["step"].values[-2:])
    l0 = curve.isel(step=0).values.ravel()
    l1, l2 = curve.isel(step=-2).values.ravel(), curve.isel(step=-1).values.ravel()
    ok = np.isfinite(l0) & np.isfinite(l1) & np.isfinite(l2) & (l2 < l1) & (l2 > 0)
    if not ok.any():
        return "the loss no longer falls: train longer or with a larger η (below η_crit)"
    rate = np.log(l1[ok] / l2[ok]) / (s2 - s1)
    need = s2 + np.log(l2[ok] / (threshold * l0[ok])) / rate
    value = float(np.median(need))
    return f"needs ≈ {_round(value)} steps (training.steps)" if math.isfinite(value) else ""


def _round(value: float) -> str:
    """Two significant digits: 870 → 870, 12345 → 12000."""
    if value < 100:
        return f"{math.ceil(value):d}"
    digits = 10 ** (int(math.log10(value)) - 1)
    return f"{int(math.ceil(value / digits) * digits):d}"


def lazy(ds: xr.Dataset, row, group: dict) -> Finding:
    """η at most the run's η_crit, no catapult, and ``regime == "lazy"`` where recorded."""
    if "status" not in ds:
        return Finding()
    status = ds["status"]
    usable = status.isin(list(analysis.USABLE_STATUSES) + list(NOT_LAZY_STATUSES))
    reasons: dict[str, xr.DataArray] = {}
    above = status == "lr_above_critical"
    if "lr_critical" in ds and "learning_rate" in ds:
        rate, critical = xr.broadcast(ds["learning_rate"], ds["lr_critical"])
        above = above | (np.isfinite(critical) & (rate > critical))
    reasons["η above η_crit (Theorem 2.1 needs η < η_crit)"] = above
    reasons["catapult: the network converged while f_lin diverged"] = status == "catapult"
    if "regime" in ds:
        regime = ds["regime"].astype(object).astype(str)  # StringDType from Zarr: via object
        reasons["regime not lazy"] = (regime != "lazy") & (regime != "") & (regime != "nan")
    out = None
    for bad in reasons.values():
        bad = bad.broadcast_like(status)
        out = bad if out is None else (out | bad)
    out = out & usable
    n = int(usable.sum())
    n_out = int(out.sum())
    if not n_out:
        return Finding(note=_unchecked(ds, usable))
    parts = [f"{int((bad & usable).sum())} {why}" for why, bad in reasons.items()]
    parts = [p for p in parts if not p.startswith("0 ")]
    detail = _eta_text(ds, out)
    if n_out == n:
        return Finding(
            keep=~out,
            reason=f"every run is outside the lazy regime the claim is about ({'; '.join(parts)}"
            f"{detail}): lower training.learning_rate below η_crit",
        )
    return Finding(
        keep=~out,
        note=f"{n_out} of {n} runs left out, outside the lazy regime ({'; '.join(parts)}{detail})",
    )


def _unchecked(ds: xr.Dataset, usable: xr.DataArray) -> str:
    """A note when no usable run has an η_crit (kernels.initial: false): η ≤ η_crit unchecked."""
    if "lr_critical" not in ds or not int(usable.sum()):
        return ""
    critical = ds["lr_critical"].broadcast_like(usable).where(usable)
    if bool(np.isfinite(critical).any()):
        return ""
    return "η_crit not computed (kernels.initial: false): η ≤ η_crit not checked"


def _eta_text(ds: xr.Dataset, out: xr.DataArray) -> str:
    if "lr_critical" not in ds or "learning_rate" not in ds:
        return ""
    critical = ds["lr_critical"].broadcast_like(out).where(out).values
    critical = critical[np.isfinite(critical)]
    rate = np.unique(np.asarray(ds["learning_rate"].broadcast_like(out).where(out).values))
    rate = rate[np.isfinite(rate)]
    if not critical.size or not rate.size:
        return ""
    etas = ", ".join(format_number(float(r), 3) for r in rate[:3])
    return f"; η = {etas}, η_crit ≈ {format_number(float(np.median(critical)), 3)}"


#: The conditions by name, as rows name them in ``requires``.
CHECKS = {
    "widths": Check(widths, "sweep", f"≥ {MIN_WIDTHS} widths"),
    "seeds": Check(seeds, "sweep", f"≥ {MIN_SEEDS} seeds per point"),
    "fluctuation_seeds": Check(
        fluctuation_seeds, "sweep", f"≥ {MIN_FLUCTUATION_SEEDS} seeds per point (a variance)"
    ),
    "analytic": Check(analytic, "sweep", "analytic kernels Θ, K"),
    "layer_roles": Check(layer_roles, "sweep", "layer roles known (not a custom module)"),
    "trained": Check(
        trained,
        "scope",
        "networks trained: L_T/L_0 ≤ "
        + ", ".join(f"{v:g} ({k})" for k, v in TRAINED_LOSS_RATIO.items()),
    ),
    "lazy": Check(lazy, "scope", "lazy regime: η ≤ η_crit, no catapult"),
}


def conditions_text(requires) -> str:
    """The conditions of a row in words, e.g. ``applies when: ≥ 3 widths; …``."""
    return "applies when: " + "; ".join(CHECKS[name].wording for name in requires)


def mask_runs(ds: xr.Dataset, keep: xr.DataArray) -> xr.Dataset:
    """`ds` with every per-run floating-point value of runs not in `keep` set to NaN (as
    `summary.usable_runs` does for statuses)."""
    masked = {
        name: var.where(keep)
        for name, var in ds.data_vars.items()
        if name != "status"
        and np.issubdtype(var.dtype, np.floating)
        and set(keep.dims) <= set(var.dims)
    }
    return ds.assign(masked)
