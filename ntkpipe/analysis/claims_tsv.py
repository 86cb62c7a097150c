"""The claims a program can read: ``results/<name>/claims.tsv``, one row per claim.

Columns (`COLUMNS`):

- ``section``: the paper's figure (e.g. ``Fig. 1``, ``Fig. 4 / S2–S4``), the report's section;
- ``claim``: the claim as the paper makes it;
- ``scope``: the fixed sweep values it was tested at, e.g. ``n_train=128, width=1024`` (empty:
  the whole sweep);
- ``verdict``: consistent, inconsistent, inconclusive or not applicable;
- ``estimate``, ``ci_low``, ``ci_high``: the tested number (an exponent, a relative RMSE, a
  fraction, a mean log ratio; see ``criterion``) and its interval (empty where there is none);
- ``n_points``: the number of points the test used (fitted pairs, runs, (t, α) points);
- ``criterion``: how the verdict was decided, and the conditions under which the claim applies;
- ``reason``: for inconclusive what would decide it, for not applicable the condition that
  failed; runs left out of the test for any verdict.

Written by the report stage next to report.html (`ntkpipe.analysis.report.write_report`) from
the same claims as the report's tables; printed by ``ntkpipe claims results/<name>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ntkpipe.analysis.claims_base import Claim
from ntkpipe.analysis.summary import format_number
from ntkpipe.analysis.verdicts import VERDICTS

COLUMNS = (
    "section",
    "claim",
    "scope",
    "verdict",
    "estimate",
    "ci_low",
    "ci_high",
    "n_points",
    "criterion",
    "reason",
)
#: The file's name in the sweep's results folder.
FILE_NAME = "claims.tsv"


def scope_text(group: dict) -> str:
    """E.g. ``n_train=128, width=1024``; empty for the whole sweep."""
    return ", ".join(f"{k}={v}" for k, v in group.items())


def claims_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    """One row per claim with the columns `COLUMNS`."""
    rows = [
        {
            "section": c.figure,
            "claim": c.statement,
            "scope": scope_text(c.group),
            "verdict": c.verdict,
            "estimate": _number(c.estimate),
            "ci_low": _number(c.ci_low),
            "ci_high": _number(c.ci_high),
            "n_points": int(c.n_points),
            "criterion": c.criterion,
            "reason": c.reason,
        }
        for c in claims
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _number(value: float) -> float:
    return float(value) if value is not None and math.isfinite(value) else math.nan


def write_claims(claims: Sequence[Claim], path: str | Path) -> Path:
    """Write `claims` as a TSV with the columns `COLUMNS` (NaN as an empty field)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    claims_frame(claims).to_csv(path, sep="\t", index=False, float_format="%.6g")
    return path


def read_claims(path: str | Path) -> pd.DataFrame:
    """A claims.tsv as a DataFrame (text columns as strings, "" where empty).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: its columns are not `COLUMNS`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    frame = pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str)
    if tuple(frame.columns) != COLUMNS:
        raise ValueError(f"{str(path)!r}: columns {list(frame.columns)}; expected {list(COLUMNS)}")
    for name in ("estimate", "ci_low", "ci_high"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce")  # "" → NaN
    frame["n_points"] = frame["n_points"].astype(int)
    return frame


def verdict_counts(frame: pd.DataFrame) -> dict[str, int]:
    """{verdict: number of claims}, in the order of `VERDICTS`, verdicts present only."""
    counts = frame["verdict"].value_counts()
    return {v: int(counts[v]) for v in VERDICTS if v in counts}


def format_claims(frame: pd.DataFrame) -> str:
    """The claims as plain text for a terminal: one block per claim, the counts first."""
    counts = verdict_counts(frame)
    lines = [
        f"{len(frame)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()),
        "",
    ]
    for row in frame.itertuples(index=False):
        interval = ""
        if isinstance(row.estimate, float) and math.isfinite(row.estimate):
            interval = f"{format_number(row.estimate, 3)}"
            if math.isfinite(row.ci_low) and math.isfinite(row.ci_high):
                interval += f" [{format_number(row.ci_low, 3)}, {format_number(row.ci_high, 3)}]"
            interval = f"  {interval} ({row.n_points} points)"
        scope = f" ({row.scope})" if row.scope else ""
        lines.append(f"{row.verdict.upper():<15} {row.section}{scope}: {row.claim}{interval}")
        if row.reason:
            lines.append(f"{'':<15} {row.reason}")
    return "\n".join(lines)
