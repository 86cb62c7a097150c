"""What every claim module shares: the `Claim` record, the paper's experiments, and the
exponent claim (an interval against the paper's range widened by a finite-width margin)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ntkpipe.analysis import summary
from ntkpipe.analysis.fits import ExponentFit
from ntkpipe.analysis.summary import format_number
from ntkpipe.analysis.verdicts import INCONCLUSIVE, interval_needs, range_verdict

#: The paper's experiments: key → (its figures, title). The report has a section per key present.
EXPERIMENTS = {
    "fig1": ("Fig. 1 / S6", "Parameters and kernels move little"),
    "fig2": ("Fig. 2 / S1", "Output distribution: an ensemble against the NTK-GP and the NNGP"),
    "fig3": ("Fig. 3", "The network against its linearization"),
    "fig4": ("Fig. 4 / S2–S4", "Beyond full-batch gradient descent on MSE"),
    "figS5": ("Fig. S5", "Where linearization breaks"),
    "figS9": ("Fig. S9–S10", "The empirical kernels converge"),
    "beyond": ("Beyond the paper", "where the lazy regime ends (learning rate against η_crit)"),
}

ANALYTIC_SYMBOLS = {"ntk": "Θ", "nngp": "K"}


@dataclass(frozen=True)
class Claim:
    """A claim of the paper next to what this sweep measured.

    Attributes:
        figure: the paper's figure, e.g. ``Fig. 1``.
        statement: the claim as the paper makes it.
        measured: the measured number(s), as text.
        verdict: one of `ntkpipe.analysis.verdicts.VERDICTS`, computed from the data.
        criterion: how the verdict was decided (the test, in words).
        group: values of the other sweep axes the claim was tested on ({} when there are none).
        needs: for an inconclusive claim, what would decide it (e.g. ``needs ≥ 3 widths``).
    """

    figure: str
    statement: str
    measured: str
    verdict: str
    criterion: str
    group: dict = field(default_factory=dict)
    needs: str = ""

    @property
    def experiment(self) -> str:
        """The key of `EXPERIMENTS` this claim belongs to (from its figure)."""
        return experiment_of(self.figure)


def experiment_of(figure: str) -> str:
    """The key of `EXPERIMENTS` of a figure label such as ``Fig. 1 / S6`` or ``Fig. S9–S10``."""
    head = figure.split("/")[0].strip()
    for key, (figures, _) in EXPERIMENTS.items():
        if head == figures.split("/")[0].strip():
            return key
    raise ValueError(f"figure={figure!r}: not one of the experiments {list(EXPERIMENTS)}")


def exponent_claim(figure, statement, f: ExponentFit, allowed, criterion, what="widths") -> Claim:
    """An exponent claim: consistent when the CI lies inside `allowed` (the paper's range
    widened by its finite-width margin), inconsistent when it lies outside, else inconclusive;
    inconclusive ("needs ≥ 3 …") without a fit."""
    if f.fit is None:
        needs = f"needs ≥ 3 {what} with data ({f.reason})"
        return Claim(figure, statement, "no fit", INCONCLUSIVE, criterion, f.group, needs)
    verdict = str(range_verdict(f.fit.ci_low, f.fit.ci_high, allowed))
    needs = ""
    if verdict == INCONCLUSIVE:
        needs = interval_needs(f.fit.ci_low, f.fit.ci_high, allowed, f"seeds or {what}")
    measured = f"exponent {f.fit.describe()}"
    return Claim(figure, statement, measured, verdict, criterion, f.group, needs)


def range_text(allowed) -> str:
    """E.g. ``[−0.70, −0.30]``."""
    return f"[{format_number(allowed[0])}, {format_number(allowed[1])}]"


def widest(ds: xr.Dataset, name: str) -> tuple[xr.Dataset, object]:
    """`ds` at the widest width where `name` has a finite value (and that width); `ds` itself
    (and None) without a width axis."""
    if "width" not in ds.dims:
        return ds, None
    ordered = ds.sortby("width")
    other = [d for d in ordered[name].dims if d != "width"]
    finite = np.isfinite(ordered[name]).any(other) if other else np.isfinite(ordered[name])
    index = int(np.flatnonzero(finite.values)[-1]) if finite.any() else ordered.sizes["width"] - 1
    return ordered.isel(width=index), summary.as_scalar(ordered["width"].values[index])


def at_width(group: dict, width) -> dict:
    """`group` with the width the claim was tested at (unchanged without one)."""
    return {**group, "width": width} if width is not None else group


def power(value: float) -> str:
    """The paper's exponents as written there: −½, −1."""
    return {-0.5: "−½", -1.0: "−1", 0.5: "½"}.get(value, format_number(value))
