"""The paper's claims tested on a sweep, with verdicts computed from the data.

Works on the sweep summary described in `ntkpipe.analysis.summary`, from whose aggregates
and fitted power laws (`ntkpipe.analysis.aggregate`) every verdict is computed. Pure:
nothing here touches a file.

The quantities tested against Lee et al. 2019:

- Fig. 1 / S6: relative weight change ‖W_T − W_0‖_F/‖W_0‖_F ~ n^−½ for the input and output
  layers and ~ n^−1 for hidden layers (hidden steeper); relative kernel change
  ‖Θ̂_T − Θ̂_0‖_F/‖Θ̂_0‖_F (and the same for K̂) between n^−1 and n^−½.
- Fig. S5: RMSE(f_T, f^lin_T) falls with the width n and grows with the dataset size |D|.
- Fig. S9–S10: ‖Θ̂_0 − Θ‖_F/‖Θ‖_F and ‖K̂_0 − K‖_F/‖K‖_F ~ n^−½; the error of the mean of M
  empirical kernels (M seeds, Monte Carlo) ~ M^−½ while M ≪ n.
- Fig. 3: the network follows its linearization (RMSE(f_T, f^lin_T) small against the change of
  the outputs f_T − f_0), and f^lin evolved with the empirical Θ̂_0 is closer to f than with the
  analytic Θ at finite width.
- Fig. 4 / S2–S4: the same tracking with momentum, minibatch SGD, cross-entropy and conv nets.
- Fig. 2 / S1: the mean of an ensemble of trained networks on x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾
  follows the NTK-GP (Eq. 14–15) within its standard error σ_t/√M, its spread matches σ_t,
  and it follows the NTK-GP rather than the NNGP where the two differ.

Verdicts (`ntkpipe.analysis.verdicts`): consistent, inconsistent, inconclusive (then
`Claim.reason` says what would decide it), not applicable (the sweep does not meet the
conditions of the paper's statement; `Claim.reason` says which), and "not tested" for a claim
without data. Every claim is one row of the declarative table
`ntkpipe.analysis.claims_table.CLAIM_TABLE` (metric, axis, the paper's value, margin,
wording, conditions), read by the one evaluator here, `paper_claims`; the conditions are in
`ntkpipe.analysis.claims_applicability`, the statistical tests in
`ntkpipe.analysis.claims_width` (Fig. 1, S5, S9–S10) and `ntkpipe.analysis.claims_outputs`
(Fig. 2, 3, 4), each stated in `Claim.criterion`.

Every claim belongs to one of the paper's experiments (`EXPERIMENTS`); the report has one
section per experiment present in the sweep.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import xarray as xr

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.claims_applicability import (
    CHECKS,
    Finding,
    conditions_text,
    mask_runs,
)
from ntkpipe.analysis.claims_base import (  # noqa: F401  (re-exported)
    ANALYTIC_SYMBOLS,
    EXPERIMENTS,
    Claim,
    ClaimRow,
    experiment_of,
    shared_fits,
)
from ntkpipe.analysis.claims_outputs import (  # noqa: F401  (re-exported)
    CLOSER_MARGIN,
    TRACKING_TOLERANCE,
)
from ntkpipe.analysis.claims_table import CLAIM_TABLE
from ntkpipe.analysis.claims_width import (  # noqa: F401  (re-exported)
    ANALYTIC_ERROR_CLAIM,
    KERNEL_CHANGE_BOUNDS,
    KERNEL_CHANGE_TOLERANCE,
    MC_ERROR_CLAIM,
    RMSE_TREND_MARGIN,
    STEEPER_MARGIN,
    WEIGHT_CHANGE_CLAIMS,
)
from ntkpipe.analysis.verdicts import NOT_APPLICABLE, VERDICTS  # noqa: F401  (re-exported)


def paper_claims(
    ds: xr.Dataset, *, confidence: float = 0.95, table: Sequence[ClaimRow] = CLAIM_TABLE
) -> list[Claim]:
    """The paper's claims tested on this sweep, with verdicts computed from the data.

    For every row of `table` (`ntkpipe.analysis.claims_table.CLAIM_TABLE`) whose data are in
    the sweep (`ClaimRow.present`):

    1. the sweep-level conditions the row requires (widths, seeds, analytic kernels): one
       that fails makes the row one "not applicable" claim with its reason;
    2. the run-level conditions (trained, lazy regime) mark the runs that meet them; the test
       runs on those alone (`claims_applicability.mask_runs`);
    3. per scope of a claim (its values of the other sweep axes), a scope none of whose runs
       meets a condition is "not applicable" with the reason (e.g. ``training stopped at loss
       ratio 0.47 …; needs ≈ 900 steps``); runs left out are named in the claim's reason.

    The criteria are stated in each `Claim.criterion` (with `confidence` the level of every
    interval) followed by the row's conditions.

    Returns:
        The claims, in the order of `EXPERIMENTS` and then of the table.
    """
    claims: list[Claim] = []
    runner = _Runner(ds, confidence)
    with shared_fits():
        for row in table:
            if _present(ds, row):
                claims += _row_claims(runner, row)
    order = list(EXPERIMENTS)
    return sorted(claims, key=lambda c: order.index(c.experiment))


def _present(ds: xr.Dataset, row: ClaimRow) -> bool:
    if row.present is not None:
        return bool(row.present(ds))
    return analysis.has_data(ds, row.metrics[0])


#: The summary variables the run-level conditions read.
_CHECKED = ("status", "loss_train", "lr_critical", "learning_rate", "regime")


class _Runner:
    """Runs the rows' tests on the summary, each (row, kept runs) once; a test that does not
    read its row (``test.row_independent``, e.g. Fig. 2's, which decides three rows at once)
    once for all its rows."""

    def __init__(self, ds: xr.Dataset, confidence: float):
        self.ds, self.confidence, self._done, self._kept, self._found = ds, confidence, {}, {}, {}
        #: the variables the run-level conditions read (selecting a scope of these is cheap)
        self.checked = ds[[name for name in _CHECKED if name in ds]]

    def keep(self, row: ClaimRow, names: tuple[str, ...]) -> xr.DataArray | None:
        """The runs that meet the conditions `names` (None: all), and the summary of those."""
        return self._masked(row, names)[0]

    def finding(self, name: str, row: ClaimRow, group: dict) -> Finding:
        """The run-level condition `name` on the runs of a scope (it does not read the row)."""
        key = (name, _scope_key(group))
        if key not in self._found:
            sub = self.checked.sel(group) if group else self.checked
            self._found[key] = CHECKS[name].function(sub, row, group)
        return self._found[key]

    def notes(self, names: tuple[str, ...], row: ClaimRow, group: dict) -> list[str]:
        """The notes of the run-level conditions on a claim's scope (its group, width aside)."""
        scope = {k: v for k, v in group.items() if k != "width" and k in self.checked.dims}
        return [f.note for name in names if (f := self.finding(name, row, scope)).note]

    def _masked(self, row: ClaimRow, names: tuple[str, ...]):
        if names not in self._kept:
            keep = _keep(self.ds, row, [CHECKS[n] for n in names])
            self._kept[names] = (keep, self.ds if keep is None else mask_runs(self.ds, keep))
        return self._kept[names]

    def test(self, row: ClaimRow, names: tuple[str, ...] = ()) -> list[Claim]:
        key = (row.test, "" if getattr(row.test, "row_independent", False) else row.key, names)
        if key not in self._done:
            ds = self._masked(row, names)[1] if names else self.ds
            self._done[key] = row.test(ds, row, self.confidence)
        return _own(row, self._done[key])


def _row_claims(runner: _Runner, row: ClaimRow) -> list[Claim]:
    ds = runner.ds
    checks = [(name, CHECKS[name]) for name in row.requires]
    for _, check in checks:
        if check.level == "sweep":
            found = check.function(ds, row, {})
            if found.reason:
                return [_not_applicable(row, {}, found.reason)]
    names = tuple(name for name, check in checks if check.level == "scope")
    keep = runner.keep(row, names)
    tested = runner.test(row, names if keep is not None else ())
    if keep is None:  # every run meets the conditions (notes may still say what was not checked)
        return [_with_row(c, row, runner.notes(names, row, c.group)) for c in tested]
    if not tested and not runner.test(row):
        return []  # no data for the row even with every run
    by_scope = {_scope_key(c.group): c for c in tested}
    out = []
    for group in _scopes(runner.checked, tested):
        findings = [runner.finding(name, row, group) for name in names]
        reasons = [f.reason for f in findings if f.reason]
        claim = by_scope.get(_scope_key(group))
        if reasons or claim is None:
            out.append(_not_applicable(row, group, "; ".join(reasons) or _left_out(findings)))
        else:
            out.append(_with_row(claim, row, [f.note for f in findings if f.note]))
    return out


def _with_row(claim: Claim, row: ClaimRow, notes: list[str]) -> Claim:
    """The claim with the row's figure, wording and key, its conditions in the criterion and
    the runs left out in its reason."""
    reason = "; ".join(n for n in (claim.reason, *notes) if n)
    criterion = claim.criterion
    if row.requires:
        criterion = f"{criterion}; {conditions_text(row.requires)}"
    return replace(
        claim,
        figure=row.figure,
        statement=row.wording,
        reason=reason,
        key=row.key,
        criterion=criterion,
    )


def _scopes(ds: xr.Dataset, tested: list[Claim]) -> list[dict]:
    """Every scope of a row's claims: each combination of the sweep axes (width aside) its
    tested claims are grouped by, also those whose runs were all left out ([{}] when the test
    returned none or groups by no axis)."""
    axes = [a for a in analysis.sweep_axes(ds) if any(a in c.group for c in tested)]
    axes = [a for a in axes if a != "width"]
    values = [[analysis.as_scalar(v) for v in ds[a].values] for a in axes]
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*values)]


def _own(row: ClaimRow, claims: list[Claim]) -> list[Claim]:
    return [c for c in claims if not row.label or c.label == row.label]


def _keep(ds: xr.Dataset, row: ClaimRow, checks) -> xr.DataArray | None:
    keep = None
    for check in checks:
        found = check.function(ds, row, {})
        if found.keep is not None:
            keep = found.keep if keep is None else (keep & found.keep)
    if keep is None or bool(keep.all()):
        return None
    return keep


def _scope_key(group: dict) -> str:
    """A claim's scope without the width (a fit against width uses every width)."""
    return json.dumps({k: v for k, v in group.items() if k != "width"}, sort_keys=True, default=str)


def _left_out(findings: list[Finding]) -> str:
    notes = [f.note for f in findings if f.note]
    return "no run left to test: " + "; ".join(notes) if notes else "no run left to test"


def _not_applicable(row: ClaimRow, group: dict, reason: str) -> Claim:
    return Claim(
        row.figure,
        row.wording,
        "not judged",
        NOT_APPLICABLE,
        conditions_text(row.requires),
        {k: v for k, v in group.items() if k != "width"},
        reason,
        row.label,
        np.nan,
        np.nan,
        np.nan,
        0,
        row.key,
    )


def experiments_present(ds: xr.Dataset, claims: Sequence[Claim] | None = None) -> list[str]:
    """Keys of `EXPERIMENTS` this sweep has data for (those with a claim), in paper order."""
    claims = paper_claims(ds) if claims is None else claims
    found = {c.experiment for c in claims}
    return [key for key in EXPERIMENTS if key in found]
