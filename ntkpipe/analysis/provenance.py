"""Where a sweep's results came from and what they cost: benchmark TSVs, git state, versions.

Snakemake writes one benchmark TSV per job (``results/<name>/benchmarks/<rule>/<job>.tsv``,
columns ``s`` = wall seconds, ``cpu_time``, ``max_rss`` MB, …) once the job has succeeded; the
report's provenance and ``ntkpipe status`` read them here. The user's command comes from the
sweep-start log that the Snakefile keeps (:mod:`ntkpipe.io.invocations`). Pure file reading:
no JAX, no Snakemake import.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ntkpipe.io import invocations

__all__ = [
    "Benchmark",
    "read_benchmarks",
    "compute_by_stage",
    "git_state",
    "versions",
    "now",
    "command_rows",
]


@dataclass(frozen=True)
class Benchmark:
    """One finished job: its rule (stage), its job id (e.g. the run id), wall and CPU seconds."""

    stage: str
    job: str
    wall_s: float
    cpu_s: float
    max_rss_mb: float


def read_benchmarks(results_dir: str | Path) -> list[Benchmark]:
    """Every benchmark TSV under ``<results_dir>/benchmarks`` (none: an empty list); a file
    that cannot be read (a job writing it right now) is skipped."""
    root = Path(results_dir) / "benchmarks"
    found = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        relative = path.relative_to(root).with_suffix("")
        stage, job = relative.parts[0], "/".join(relative.parts[1:]) or relative.parts[0]
        try:
            with open(path, encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
        except OSError:
            continue
        if not rows:
            continue
        row = rows[-1]
        found.append(
            Benchmark(
                stage,
                job,
                _number(row.get("s")),
                _number(row.get("cpu_time")),
                _number(row.get("max_rss")),
            )
        )
    return found


def compute_by_stage(benchmarks: list[Benchmark]) -> dict[str, dict[str, float]]:
    """{stage: {"jobs", "wall_s", "cpu_s", "mean_wall_s", "max_rss_mb"}}, plus "total"."""
    out: dict[str, dict[str, float]] = {}
    for b in benchmarks:
        entry = out.setdefault(b.stage, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["wall_s"] += b.wall_s
        entry["cpu_s"] += b.cpu_s
        entry["max_rss_mb"] = max(entry["max_rss_mb"], b.max_rss_mb)
    for entry in out.values():
        entry["mean_wall_s"] = entry["wall_s"] / entry["jobs"]
    if out:
        out["total"] = {
            "jobs": sum(e["jobs"] for e in out.values()),
            "wall_s": sum(e["wall_s"] for e in out.values()),
            "cpu_s": sum(e["cpu_s"] for e in out.values()),
            "max_rss_mb": max(e["max_rss_mb"] for e in out.values()),
        }
        out["total"]["mean_wall_s"] = out["total"]["wall_s"] / out["total"]["jobs"]
    return out


def git_state(folder: str | Path | None = None) -> tuple[str, bool | None]:
    """(HEAD commit, whether the work tree has uncommitted changes) of the checkout holding
    `folder` (default: this file's), ("unknown", None) outside one."""
    folder = Path(folder) if folder else Path(__file__).resolve().parent
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
        )
        if head.returncode != 0:
            return "unknown", None
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None


def versions() -> dict[str, str]:
    """Installed versions of the packages the results depend on ("not installed" if absent)."""
    out = {"python": sys.version.split()[0]}
    for name in ("ntkpipe", "snakemake", "jax", "jaxlib", "flax", "xarray", "zarr", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def now() -> str:
    """The current time, UTC, to the second (ISO 8601)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def command_rows(results_dir: str | Path | None, fallback: str) -> list[tuple[str, str]]:
    """The provenance rows of the user's command: the latest recorded sweep start
    (:mod:`ntkpipe.io.invocations`), when, where and by whom, and how many there were; without
    a record (a report built outside a sweep), ``fallback`` (e.g. this process's command)."""
    starts = invocations.read(results_dir) if results_dir is not None else []
    if not starts:
        return [("command", f"{fallback} (this report's own: no sweep start recorded)")]
    latest = starts[-1]
    where = f"{latest.user}@{latest.host}" if latest.user else latest.host
    rows = [
        ("command", latest.command),
        ("started", f"{latest.time} on {where} in {latest.cwd}"),
    ]
    if len(starts) > 1:
        rows.append(("sweep starts", f"{len(starts)}, the latest shown ({invocations.FILE})"))
    return rows


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")
