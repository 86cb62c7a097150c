"""Where a sweep stands: runs done / running / failed / missing per stage, compute and an ETA.

``ntkpipe status results/<name>`` (while a sweep runs or after it) reads only files: the
expanded runs (``sweep.json``); whether a live ``snakemake`` holds the results folder's lock
(:func:`ntkpipe.io.lock.writer`: a sweep running, or none, e.g. killed); each run's stores
(complete: done; started by Snakemake and not finished while the sweep runs, or a
``.<store>.partial-<host>-<pid>`` of a live process: running; started by a sweep that no longer
runs: missing, "interrupted"); the job logs (an error in the log of a store that is not there:
failed); Snakemake's benchmark TSVs (compute so far; the ETA is the mean wall time of each
stage's finished jobs times the jobs left, divided by the parallelism seen so far). When runs
are left and no sweep runs, it prints the command that finishes the sweep: the last recorded
start (``invocations.jsonl``) with ``--rerun-incomplete``, after ``snakemake --unlock`` where a
killed Snakemake left its lock. ``--verify`` also reads every finished store and checks each
array against its stored SHA-256 digest, naming every corrupted store and how to recompute it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ntkpipe.analysis import provenance
from ntkpipe.errors import NtkpipeError
from ntkpipe.io import invocations, lock
from ntkpipe.io import stores as storage
from ntkpipe.sweep import stage_table
from ntkpipe.sweep.layout import Layout

__all__ = ["STORES", "StageCount", "SweepStatus", "sweep_status", "format_status"]

#: Per-run stores in stage order → the rules whose logs and benchmarks tell about them.
STORES = {row.store.removesuffix(".zarr"): (row.rule, "run") for row in stage_table.RUN_STAGES}
"""A run's store (name without .zarr, in the stage table's order) → the rules that write it:
its own per-stage rule, and ``run`` (one job per run)."""
_ERROR = re.compile(r"Traceback|\berror\b|Error:", re.IGNORECASE)


@dataclass
class StageCount:
    done: int = 0
    running: int = 0
    failed: int = 0
    missing: int = 0
    failed_runs: list = field(default_factory=list)
    missing_runs: list = field(default_factory=list)  # interrupted ones included
    corrupted: list = field(default_factory=list)  # (path, reason) of stores failing --verify


@dataclass
class SweepStatus:
    name: str
    runs: int
    stages: dict  # store name → StageCount
    compute_s: float
    jobs: int
    remaining_s: float | None  # compute left (serial), None: no finished job to measure
    parallelism: float
    outputs: dict  # "summary", "figures", "report" → path or None
    writer: dict | None = None  # the live snakemake writing the folder (lock owner), or None
    finish: tuple = ()  # the commands that finish the sweep (none while one runs)
    replaced: int = 0  # sets of stores a start moved aside (layout.replaced/<time>/)
    replaced_dir: Path | None = None

    @property
    def eta_s(self) -> float | None:
        if self.remaining_s is None:
            return None
        return self.remaining_s / max(self.parallelism, 1.0)


def sweep_status(results_dir: str | Path, verify: bool = False) -> SweepStatus:
    """The status of the sweep whose results are in `results_dir` (``results/<name>``).

    With ``verify``, every finished store is read and checked against its digests; a
    corrupted one counts as missing and is listed with its reason.

    Raises:
        NtkpipeError: `results_dir` holds no ``sweep.json`` (not a sweep's results folder).
    """
    from ntkpipe.sweep import runs as ntk_runs

    layout = Layout(Path(results_dir))
    root = layout.root
    sweep_file = layout.sweep_json
    if not sweep_file.is_file():
        raise NtkpipeError(
            f"{root}: no sweep.json here; give a sweep's results folder, e.g. "
            f"results/<name> (it is written when the sweep starts)"
        )
    config = json.loads(sweep_file.read_text(encoding="utf-8"))
    expanded = ntk_runs.expand_runs(config)
    present = _stores_in_use(layout, expanded)
    stages = {name: StageCount() for name in present}
    writer = lock.writer(root)
    started = _incomplete_outputs(root) if writer else frozenset()
    for run in expanded:
        for name in present:
            state = _store_state(layout, name, run.run_id, started)
            count = stages[name]
            if state == "done" and verify:
                path = layout.store(STORES[name][0], run.run_id)
                problem = storage.corruption(path)
                if problem:
                    count.corrupted.append((path, problem))
                    state = "missing"
            setattr(count, state, getattr(count, state) + 1)
            if state in ("failed", "missing"):
                getattr(count, f"{state}_runs").append(run.run_id)
    benchmarks = provenance.read_benchmarks(root)
    by_stage = provenance.compute_by_stage(benchmarks)
    total = by_stage.get("total", {})
    return SweepStatus(
        name=str(config.get("name", root.name)),
        runs=len(expanded),
        stages=stages,
        compute_s=float(total.get("wall_s", 0.0)),
        jobs=int(total.get("jobs", 0)),
        remaining_s=_remaining(stages, by_stage),
        parallelism=_parallelism(layout, benchmarks),
        outputs={
            key: (path if path.exists() else None)
            for key, path in zip(("summary", "figures", "report"), layout.derived, strict=True)
        },
        writer=writer,
        finish=() if writer else _finishing_commands(root, stages),
        replaced=len(list(layout.replaced.iterdir())) if layout.replaced.is_dir() else 0,
        replaced_dir=layout.replaced,
    )


def format_status(status: SweepStatus) -> str:
    """The status as the lines ``ntkpipe status`` prints."""
    lines = [f"{status.name}: {status.runs} runs"]
    if status.writer:
        w = status.writer
        lines.append(
            f"running: snakemake process {w.get('pid')} on {w.get('host')} since "
            f"{w.get('started')} ({w.get('command')})"
        )
    else:
        lines.append("not running: no snakemake is writing this folder")
    lines.append("")
    lines.append(f"{'stage':<14}{'done':>7}{'running':>9}{'failed':>8}{'missing':>9}")
    for name, c in status.stages.items():
        lines.append(f"{name:<14}{c.done:>7}{c.running:>9}{c.failed:>8}{c.missing:>9}")
    lines.append("")
    lines.append(f"compute so far: {_duration(status.compute_s)} in {status.jobs} finished jobs")
    left = sum(c.missing + c.running + c.failed for c in status.stages.values())
    if not left:
        lines.append("every run is done")
    elif status.remaining_s is None:
        lines.append("ETA: after the first job of each stage has finished")
    else:
        lines.append(
            f"left: ≈ {_duration(status.remaining_s)} of compute; ETA ≈ "
            f"{_duration(status.eta_s)} at the {status.parallelism:.1f} jobs at once seen so far"
        )
    for name, c in status.stages.items():
        for run_id in c.failed_runs[:5]:
            lines.append(f"failed: {name} of {run_id} (see its log under logs/)")
        lines += _listed("missing", name, c.missing_runs)
        for path, problem in c.corrupted:
            lines.append(f"corrupted: {path}: {problem}")
    if any(c.corrupted for c in status.stages.values()):
        lines.append(
            "recompute a corrupted store: remove it (rm -r <path>) and run the sweep again; it "
            "is computed anew with everything that depends on it"
        )
    if status.finish:
        lines.append("finish the sweep with:")
        lines += [f"  {command}" for command in status.finish]
    for key, path in status.outputs.items():
        lines.append(f"{key}: {path if path is not None else 'not yet'}")
    if status.replaced:
        lines.append(
            f"kept aside: {status.replaced} replacement(s) in {status.replaced_dir} "
            f"(drop them: rm -r {status.replaced_dir})"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- helpers


def _listed(state: str, name: str, run_ids: list, most: int = 5) -> list[str]:
    lines = [f"{state}: {name} of {run_id}" for run_id in run_ids[:most]]
    if len(run_ids) > most:
        lines.append(f"{state}: {name} of {len(run_ids) - most} more runs")
    return lines


def _finishing_commands(root: Path, stages: dict) -> tuple[str, ...]:
    """The commands that finish a sweep no snakemake runs: its last recorded start with
    ``--rerun-incomplete`` (after ``snakemake --unlock`` where a killed one left its lock)."""
    if not any(c.missing or c.failed for c in stages.values()):
        return ()
    started = invocations.read(root)
    if started:
        last = started[-1]
        command = last.command
        where = "" if Path(last.cwd) == Path.cwd() else f"cd {last.cwd} && "
    else:
        command, where = "snakemake --cores all --configfile <the sweep's config>", ""
    workdir = root.resolve().parent.parent
    locks = workdir / ".snakemake" / "locks"
    program, _, rest = command.partition(" ")
    unlock = (f"{where}{program} --unlock {rest}".rstrip(),)
    if "--rerun-incomplete" not in command and "--ri" not in command.split():
        command += " --rerun-incomplete"
    return (unlock if locks.is_dir() and any(locks.iterdir()) else ()) + (f"{where}{command}",)


def _stores_in_use(layout: Layout, expanded) -> list[str]:
    """The per-run stores this sweep writes: those any run has (or a log or benchmark names),
    and always metrics."""
    seen = {"metrics"}
    for run in expanded[:200]:
        folder = layout.run_dir(run.run_id)
        if folder.is_dir():
            seen.update(p.name.split(".zarr")[0].lstrip(".") for p in folder.glob("*.zarr*"))
    for folder in (layout.logs, layout.benchmarks):
        for name, rules in STORES.items():
            if any((folder / rule).is_dir() for rule in rules[:1]):
                seen.add(name)
    return [name for name in STORES if name in seen]


def _store_state(layout: Layout, name: str, run_id: str, started=frozenset()) -> str:
    path = layout.store(STORES[name][0], run_id)
    folder = path.parent
    if storage.is_complete(path):
        return "done"
    if path.resolve() in started or any(_live(p) for p in folder.glob(f".{name}.zarr.partial-*")):
        return "running"
    for rule in STORES[name]:
        log = layout.log(rule, run_id)
        if log.is_file() and _ERROR.search(_tail(log)):
            return "failed"
    return "missing"


def _incomplete_outputs(root: Path) -> frozenset:
    """Outputs of the jobs Snakemake has started and not finished: its markers in
    ``<workdir>/.snakemake/incomplete/`` (base64 of the path relative to the workdir, the
    folder holding ``results/``); a killed sweep leaves them too (--rerun-incomplete)."""
    workdir = root.resolve().parent.parent
    markers = workdir / ".snakemake" / "incomplete"
    found = set()
    for marker in markers.iterdir() if markers.is_dir() else []:
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                found.add((workdir / decode(marker.name).decode("utf-8")).resolve())
                break
            except (ValueError, UnicodeDecodeError):
                continue
    return frozenset(found)


def _live(partial: Path) -> bool:
    """Whether the job writing `partial` (``…partial-<host>-<pid>``) is alive; a job on
    another host counts as alive (it cannot be checked from here)."""
    host, _, pid = partial.name.rpartition(".partial-")[2].rpartition("-")
    if host != socket.gethostname().replace("/", "_") or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, size: int = 20_000) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read().decode("utf-8", errors="replace")


def _remaining(stages: dict, by_stage: dict) -> float | None:
    """Compute left: per stage, the mean wall time of its finished jobs × the jobs left. With
    one job per run (rule ``run``), that job's time stands for all of a run's storage."""
    left = 0.0
    for name, count in stages.items():
        todo = count.missing + count.running + count.failed
        own, whole = STORES[name]
        if not todo or (own not in by_stage and whole in by_stage and name != "metrics"):
            continue
        rule = own if own in by_stage else whole if whole in by_stage else None
        if rule is None:
            return None
        left += by_stage[rule]["mean_wall_s"] * todo
    return left


def _parallelism(layout: Layout, benchmarks) -> float:
    """Jobs at once so far: total wall time of the finished jobs over the span they cover."""
    spans = []
    for b in benchmarks:
        path = layout.benchmark(b.stage, b.job)
        try:
            end = path.stat().st_mtime
        except OSError:
            continue
        spans.append((end - b.wall_s, end))
    if not spans:
        return 1.0
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    busy = sum(e - s for s, e in spans)
    return max(1.0, busy / span) if span > 0 else 1.0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
