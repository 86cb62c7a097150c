"""What every claim module shares: the `Claim` record (a verdict), the `ClaimRow` (one row of
the declarative claim table, `ntkpipe.analysis.claims_table`), the paper's experiments, and the
exponent claim (an interval against the paper's range widened by a finite-width margin)."""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
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

#: Figures that belong to an experiment whose label names them in a range (Fig. 4 / S2–S4).
FIGURE_EXPERIMENT = {"Fig. S2": "fig4", "Fig. S3": "fig4", "Fig. S4": "fig4"}

ANALYTIC_SYMBOLS = {"ntk": "Θ", "nngp": "K"}


@dataclass(frozen=True)
class Claim:
    """A claim of the paper next to what this sweep measured.

    Attributes:
        figure: the paper's figure, e.g. ``Fig. 1``.
        statement: the claim as the paper makes it (the row's wording).
        measured: the measured number(s), as text.
        verdict: one of `ntkpipe.analysis.verdicts.VERDICTS`, computed from the data.
        criterion: how the verdict was decided (the test, in words).
        group: values of the other sweep axes the claim was tested on ({} when there are none):
            its scope.
        reason: why the verdict is what it is where a reader needs to know: for "inconclusive"
            what would decide it (e.g. ``needs ≥ 3 widths``), for "not applicable" which
            condition failed and what would meet it; runs left out of the test (above η_crit,
            not trained far enough) are named here for any verdict.
        label: which part of a test's output this is (a layer role, a kernel's variable, …):
            the claim table's rows pick their claim by it.
        estimate, ci_low, ci_high: the tested number and its interval (NaN where none).
        n_points: the number of points (runs, fitted pairs, (t, α) points) the test used.
        key: the claim table's row (`ClaimRow.key`).
    """

    figure: str
    statement: str
    measured: str
    verdict: str
    criterion: str
    group: dict = field(default_factory=dict)
    reason: str = ""
    label: str = ""
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n_points: int = 0
    key: str = ""

    @property
    def needs(self) -> str:
        """`reason` (its name before "not applicable" existed: what would decide the claim)."""
        return self.reason

    @property
    def experiment(self) -> str:
        """The key of `EXPERIMENTS` this claim belongs to (from its figure)."""
        return experiment_of(self.figure)


#: A row's test: (summary, row, confidence) → the claims it decides (one per scope).
ClaimTest = Callable[["xr.Dataset", "ClaimRow", float], list[Claim]]


@dataclass(frozen=True)
class ClaimRow:
    """One claim of the paper as one row of the claim table (`ntkpipe.analysis.claims_table`).

    The evaluator (`ntkpipe.analysis.claims.paper_claims`) lists the row when `present` holds,
    checks the conditions `requires` names (`ntkpipe.analysis.claims_applicability.CHECKS`)
    and either says "not applicable" with the failed condition's reason or runs `test` on the
    runs that meet them.

    Attributes:
        key: unique id, ``<section>.<name>`` (e.g. ``fig1.input_weights``); the section is a key
            of `EXPERIMENTS`.
        figure: the paper's figure, e.g. ``Fig. 1``.
        wording: the claim as the paper makes it (the report's and claims.tsv's text).
        metric: the summary variable(s) tested, comma-separated; the row is listed when the
            first has data (unless `present` says otherwise).
        axis: what the metric is tested against (``width``, ``n_train``, ``mc_samples``,
            ``runs``, ``(t, α)``).
        paper: the paper's value or band (a number, (low, high), or a comparison as text).
        margin: the allowance around `paper` (finite-width margin, smallest effect); a dict by
            loss where it depends on it.
        test: the statistical test (`ClaimTest`).
        label: which of the test's claims are this row's (`Claim.label`); "" takes all.
        requires: names of the applicability conditions (``widths``, ``seeds``, ``trained``,
            ``lazy``, ``analytic``).
        present: (summary) → whether the sweep has this row's data; None: the first metric has
            finite values.
    """

    key: str
    figure: str
    wording: str
    metric: str
    axis: str
    paper: object
    margin: object
    test: ClaimTest
    label: str = ""
    requires: tuple[str, ...] = ()
    present: Callable | None = None

    @property
    def section(self) -> str:
        """The key of `EXPERIMENTS` (the report's section) of this row."""
        return self.key.split(".")[0]

    @property
    def metrics(self) -> tuple[str, ...]:
        """`metric` as a tuple of variable names."""
        return tuple(m.strip() for m in self.metric.split(","))


def experiment_of(figure: str) -> str:
    """The key of `EXPERIMENTS` of a figure label such as ``Fig. 1 / S6`` or ``Fig. S9–S10``."""
    head = figure.split("/")[0].strip()
    if head in FIGURE_EXPERIMENT:
        return FIGURE_EXPERIMENT[head]
    for key, (figures, _) in EXPERIMENTS.items():
        if head == figures.split("/")[0].strip():
            return key
    raise ValueError(f"figure={figure!r}: not one of the experiments {list(EXPERIMENTS)}")


def exponent_claim(figure, statement, f: ExponentFit, allowed, criterion, what="widths") -> Claim:
    """An exponent claim: consistent when the CI lies inside `allowed` (the paper's range
    widened by its finite-width margin), inconsistent when it lies outside, else inconclusive;
    inconclusive ("needs ≥ 3 …") without a fit."""
    label = f.quantity if not f.label or f.label in ("Θ̂", "K̂") else f.label
    if f.fit is None:
        needs = f"needs ≥ 3 {what} with data ({f.reason})"
        return Claim(figure, statement, "no fit", INCONCLUSIVE, criterion, f.group, needs, label)
    verdict = str(range_verdict(f.fit.ci_low, f.fit.ci_high, allowed))
    needs = ""
    if verdict == INCONCLUSIVE:
        needs = interval_needs(f.fit.ci_low, f.fit.ci_high, allowed, f"seeds or {what}")
    measured = f"exponent {f.fit.describe()}"
    return Claim(
        figure, statement, measured, verdict, criterion, f.group, needs, label, *fit_numbers(f.fit)
    )


def fit_numbers(fit) -> tuple[float, float, float, int]:
    """(estimate, ci_low, ci_high, n_points) of a `PowerLawFit` (NaN, 0 without one)."""
    if fit is None:
        return math.nan, math.nan, math.nan, 0
    return fit.exponent, fit.ci_low, fit.ci_high, fit.n_points


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


#: Fits already made during one evaluation of the claim table ({(function, id(summary),
#: confidence): result}); None outside one. Several rows read one fit (a row per layer role or
#: kernel), and the summaries it is keyed on stay alive until the evaluation ends.
_FITS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("claim_fits", default=None)


@contextlib.contextmanager
def shared_fits() -> Iterator[None]:
    """Within the block, `fitted` computes each (function, summary, confidence) once."""
    token = _FITS.set({})
    try:
        yield
    finally:
        _FITS.reset(token)


def fitted(function: Callable, ds: xr.Dataset, confidence: float):
    """``function(ds, confidence=confidence)`` (an aggregate's fits), once per `shared_fits`
    block for the same summary object."""
    cache = _FITS.get()
    if cache is None:
        return function(ds, confidence=confidence)
    key = (function, id(ds), confidence)
    if key not in cache:
        cache[key] = (ds, function(ds, confidence=confidence))  # ds kept: its id stays unique
    return cache[key][1]
