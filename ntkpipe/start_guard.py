"""What a sweep's start checks before it replaces stores or lets jobs re-read them (issue 21,
item 7): nothing a user computed is replaced without being asked, nothing corrupted is re-read.

1. **Another config's results** (:func:`replacement_problem`). A sweep started with the ``name:``
   of an existing sweep and another config would replace that sweep's stores (moved aside to
   ``results/<name>/.replaced/<time>/`` by :func:`ntkpipe.start.refresh`). It is refused, naming
   the config fields that differ, the number of stores, and the ways through (``--config
   replace=true``, or another ``name``), unless it is **the same sweep's own change**: started
   from the same config files as the sweep's last start, whatever their content now (a changed
   learning rate in the user's own config file, or a ``--config`` override of it, is an ordinary
   rerun). A start whose validated config equals the results' ``sweep.json`` replaces no other
   config's results (what it finds stale was swapped or damaged by hand) and is not refused.
   The files of the last start are recorded in ``results/<name>/origin.json``
   (:func:`record_origin`). A results folder without that record (written before it was kept)
   counts as the same sweep: nothing tells otherwise, and what is replaced is still kept aside.
2. **Corrupted inputs** (:func:`corrupted_inputs`): the stores that are kept while a store
   reading them is computed again have every array checked against its stored digest
   (:func:`ntkpipe.io.stores.corruption`, the check of ``ntkpipe status --verify``), before any
   job runs; a corrupted one is named with the command that recomputes it. Likewise for the
   rules forced with ``--forcerun`` (:func:`forced_stores`; checked in ``onstart``, before
   Snakemake deletes their outputs). Only those stores are read (the cheap check); ``ntkpipe
   status --verify`` reads every store.

Top-level and light: :mod:`ntkpipe.io.stores` (xarray) is imported only when a store is checked.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ntkpipe.io.atomic import write_if_changed
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep import stage_table
from ntkpipe.sweep.layout import Layout
from ntkpipe.sweep.stage_table import reads

__all__ = [
    "REPLACE_KEY",
    "pop_replace",
    "origin_of",
    "record_origin",
    "replacement_problem",
    "config_differences",
    "corrupted_inputs",
    "forced_stores",
    "corruption_problem",
]

REPLACE_KEY = "replace"
"""The ``--config`` key confirming that a start may replace another config's results."""
_TRUE = (True, 1, "true", "True", "yes", "1")
_MOST_FIELDS = 8  # differing fields named in a refusal


def pop_replace(overrides: dict) -> tuple[dict, bool]:
    """The ``--config`` overrides without ``replace``, and whether it was given true."""
    rest = dict(overrides or {})
    return rest, rest.pop(REPLACE_KEY, False) in _TRUE


def origin_of(configfiles, default, cwd=None) -> list[str]:
    """The config files a sweep is started from (the default sweep's file when none is given):
    what makes a start "the same sweep" as the last one. Relative to the working directory
    where they are inside it (a repository moved elsewhere with its results is the same sweep),
    else absolute."""
    here = Path(cwd or Path.cwd()).resolve()
    out = []
    for path in [Path(f) for f in configfiles] or [Path(default)]:
        path = (here / path).resolve()
        out.append(str(path.relative_to(here)) if path.is_relative_to(here) else str(path))
    return out


def record_origin(layout: Layout, origin: list[str]) -> None:
    """Records the config files of this start (``origin.json``; only when it changes)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    write_if_changed(layout.origin, json.dumps({"configfiles": origin}, indent=1) + "\n")


def _recorded_origin(layout: Layout) -> list[str] | None:
    try:
        return json.loads(layout.origin.read_text())["configfiles"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def replacement_problem(layout: Layout, sweep: dict, stale: dict, origin: list[str]) -> str | None:
    """Why this start may not, without ``--config replace=true``, replace the stores it found
    stale and the sweep's summary, figures and report (None: it may).

    Args:
        layout: the sweep's results folder.
        sweep: the validated sweep of this start.
        stale: {store: why} of :func:`ntkpipe.start.stale_stores`.
        origin: this start's config files (:func:`origin_of`).
    """
    recorded = _recorded_origin(layout)
    if recorded is None or recorded == origin:
        return None
    replaced = [store for store, why in stale.items() if why.startswith("computed from another")]
    derived = [path.name for path in layout.derived if path.exists()]
    if not replaced and not derived:
        return None
    before = _json_or_none(layout.sweep_json)
    fields = config_differences(before, sweep) if isinstance(before, dict) else []
    if isinstance(before, dict) and not fields:
        return None  # the same config: stores swapped or damaged by hand, not another sweep's
    named = "; ".join(fields[:_MOST_FIELDS]) or "(the results' sweep.json is missing)"
    if len(fields) > _MOST_FIELDS:
        named += f"; and {len(fields) - _MOST_FIELDS} more"
    what = [f"{_count(len(replaced), 'store')} of its runs"] if replaced else []
    what += [f"its {', '.join(derived)}"] if derived else []
    return (
        f"ntkpipe: {layout.root} holds the results of another config (started from "
        f"{', '.join(recorded)}; this start: {', '.join(origin)}): {' and '.join(what)} would be "
        f"replaced. Fields that differ: {named}. Nothing was changed. To replace them (stores "
        f"computed again are kept aside in {layout.replaced}), add --config {REPLACE_KEY}=true; "
        "to keep them, give this config another name (--config name=<new name>, or name: in "
        "its file)."
    )


def config_differences(before: dict, now: dict, prefix: str = "") -> list[str]:
    """The fields whose values differ between two configs, as ``key: before → now`` (dotted
    keys, sorted; a key missing on one side is ``absent``)."""
    out = []
    for key in sorted(set(before) | set(now)):
        name = f"{prefix}{key}"
        a, b = before.get(key, _ABSENT), now.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name}: {_shown(a)} → {_shown(b)}")
    return out


_ABSENT = object()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _shown(value) -> str:
    return "absent" if value is _ABSENT else json.dumps(value, ensure_ascii=False)


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- corrupted inputs


def corrupted_inputs(layout: Layout, runs: dict, redone) -> dict:
    """{store: what is wrong} of the stores kept while a store reading them is computed again,
    whose arrays differ from their digests; only those stores are read.

    Args:
        layout: the sweep's results folder; runs: {run id: Run}.
        redone: the stores computed again (stale, or of rules forced with ``--forcerun``);
            what follows them in a run is computed again too.
    """
    redone = set(map(Path, redone))
    kept_inputs: dict[Path, None] = {}
    for run_id, run in runs.items():
        for row in stage_table.wanted(run.config):
            store = layout.store(row.rule, run_id)
            inputs = [_input_store(layout, one.stage, run) for one in reads(row.rule, run.config)]
            if store not in redone and not any(path in redone for path in inputs):
                continue
            redone.add(store)
            kept_inputs.update(dict.fromkeys(p for p in inputs if p not in redone and p.exists()))
    if not kept_inputs:
        return {}
    from ntkpipe.io import stores as storage  # xarray: only when there is a store to check

    found = {path: storage.corruption(path) for path in kept_inputs}
    return {path: problem for path, problem in found.items() if problem}


def forced_stores(layout: Layout, runs: dict, rules) -> set[Path]:
    """The stores of the runs' stages that ``--forcerun`` `rules` compute again (``run``: the
    run's metrics, which the one-job-per-run job always computes; ``analytic``: the analytic
    kernels the runs read)."""
    rules, out = set(rules or ()), set()
    for run_id, run in runs.items():
        for row in stage_table.wanted(run.config):
            if row.rule in rules or (row.rule == "compare" and "run" in rules):
                out.add(layout.store(row.rule, run_id))
        if "analytic" in rules and stage_table.switch_on(run.config, "kernels.analytic"):
            out.add(_input_store(layout, "analytic", run))
    return out


def _input_store(layout: Layout, stage: str, run) -> Path:
    key = ntk_runs.analytic_id(run) if stage == "analytic" else run.run_id
    return layout.store(stage, key)


def corruption_problem(layout: Layout, corrupted: dict, argv) -> str | None:
    """The message stopping a start whose jobs would re-read corrupted stores, each named with
    the command that recomputes it (None: none)."""
    if not corrupted:
        return None
    again = shlex.join(["snakemake", *map(str, argv[1:])])
    lines = [
        f"ntkpipe: corrupted: {_count(len(corrupted), 'store')} that jobs of this run would "
        "read (arrays that differ from the digests written with them); nothing was run:"
    ]
    for path, problem in corrupted.items():
        lines.append(f"  {path}: {problem.split('. Delete it')[0]}")
        lines.append(f"    recompute it (and what reads it): rm -r {path} && {again}")
    lines.append(f"every store of the sweep: ntkpipe status --verify {layout.root}")
    return "\n".join(lines)
