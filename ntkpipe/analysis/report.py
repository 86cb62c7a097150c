"""One self-contained HTML report of a sweep, read like a paper's figure page.

The answer first: a sticky table of contents; the paper's claims (how many are consistent,
inconsistent, inconclusive and not applicable, and every claim that is not consistent with its
reason and a link to it); one section per experiment present in the sweep
(`claims.EXPERIMENTS`): its claims with measured numbers and computed verdicts, then its
figures (`plots.FIGURE_EXPERIMENTS`) at native size, and one line for each figure the sweep
cannot support (`plots.figure_notes`); then the sweep (axes, provenance: report time, git
commit and dirty flag, command line, versions, compute per stage from Snakemake's benchmark
TSVs); the runs (a table that sorts and filters, each run linked to its stores and logs); an
appendix of the experiments it cannot test; the summary. The claims of its tables are also
written to ``claims.tsv`` (`ntkpipe.analysis.claims_tsv`).

The page is rendered from ``templates/report.html.j2`` (jinja2, autoescaped: every string
from the user is HTML-escaped). It needs no network: figures are inlined as base64 data URIs,
styles and the few lines of JavaScript (sorting, filtering) are inline. Links to stores, logs
and figure files are relative to the report (``results/<name>/``). At most `MAX_RUN_ROWS` runs
are in the page (flagged runs first); every run is in ``runs.tsv`` next to it.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import jinja2
import pandas as pd
import xarray as xr
import yaml
from markupsafe import Markup

from ntkpipe import workers
from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis import claims_table, claims_tsv, provenance, report_runs
from ntkpipe.analysis.claims import EXPERIMENTS, VERDICTS, Claim, paper_claims
from ntkpipe.analysis.plots import (
    FIGURE_EXPERIMENTS,
    figure_caption,
    figure_notes,
    figure_order,
    load_summary,
)
from ntkpipe.analysis.report_runs import MAX_RUN_ROWS, STATUS_LABELS
from ntkpipe.sweep import calibrate

__all__ = ["MAX_RUN_ROWS", "MEDIA_TYPES", "STATUS_LABELS", "render_report", "write_report"]

#: Image types that can be inlined, by file suffix.
MEDIA_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}
_TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("ntkpipe.analysis", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
).get_template("report.html.j2")


def write_report(
    summary: xr.Dataset | str | Path,
    figure_paths: Sequence[str | Path],
    out_path: str | Path,
    *,
    run_table: pd.DataFrame | None = None,
) -> Path:
    """Write the sweep's report as one self-contained HTML file (and ``runs.tsv`` and
    ``claims.tsv`` next to it: every run, and the claims of the report's tables).

    Args:
        summary: the summary Dataset or the path of ``summary.zarr``.
        figure_paths: SVG or PNG files to inline (e.g. from `plots.make_figures`), shown in
            the order of `plots.FIGURES` (then by name) with its captions; of an SVG and a PNG
            of the same figure the SVG is inlined, and the PNG and PDF next to it are linked.
        out_path: the HTML file to write (its folder is created if needed); the sweep's
            results folder, whose ``runs/``, ``logs/`` and ``benchmarks/`` it links and reads.
        run_table: one row per run with a ``status`` column; default `analysis.run_table` of the
            summary.

    Returns:
        `out_path` as a Path.

    Raises:
        FileNotFoundError: a figure (or the summary path) does not exist.
        ValueError: a figure is neither .svg nor .png.
    """
    out_path = Path(out_path)
    ds = load_summary(summary)
    figures = [_figure(Path(p), out_path.parent, ds) for p in _one_file_per_figure(figure_paths)]
    table = analysis.run_table(ds) if run_table is None else run_table
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tsv = out_path.parent / "runs.tsv"
    table.to_csv(tsv, sep="\t", index=False)
    claims = paper_claims(ds)
    claims_tsv.write_claims(claims, out_path.parent / claims_tsv.FILE_NAME)
    page = render_report(
        ds,
        figures,
        table,
        claims,
        results_dir=out_path.parent,
        runs_tsv=tsv.name,
    )
    out_path.write_text(page, encoding="utf-8")
    return out_path


def render_report(
    ds: xr.Dataset,
    figures: Sequence[dict],
    run_table: pd.DataFrame,
    claims: Sequence[Claim],
    *,
    results_dir: Path | None = None,
    runs_tsv: str | None = None,
) -> str:
    """The report's HTML text.

    Args:
        ds: the summary.
        figures: one dict per figure (stem, title, caption, uri, width, files), as
            `write_report` builds them; the stem places it in an experiment's section.
        run_table: one row per run, with a ``status`` column.
        claims: the paper's claims with verdicts (`claims.paper_claims`).
        results_dir: the sweep's results folder (benchmarks, runs and logs), or None.
        runs_tsv: the name of the file with every run, linked from the runs table.
    """
    name = ds.attrs.get("name", "") or "(unnamed sweep)"
    tested = [k for k in EXPERIMENTS if any(c.experiment == k and _tested(c) for c in claims)]
    untested = [
        k for k in EXPERIMENTS if k not in tested and any(c.experiment == k for c in claims)
    ]
    notes = figure_notes(ds)
    placed = {key: {"figures": [], "notes": [], "departures": []} for key in tested}
    others, other_notes = [], []
    for figure in figures:
        home = next((k for k in FIGURE_EXPERIMENTS.get(figure["stem"], ()) if k in placed), None)
        (placed[home]["figures"] if home else others).append(figure)
    for stem, note in notes.items():
        home = next((k for k in FIGURE_EXPERIMENTS.get(stem, ()) if k in placed), None)
        (placed[home]["notes"] if home else other_notes).append(note)
    for key, texts in claims_table.departures(ds).items():
        if key in placed:
            placed[key]["departures"] = texts
    experiments = [
        {
            "key": f"experiment-{key}",
            "title": f"{EXPERIMENTS[key][0]}: {EXPERIMENTS[key][1]}",
            "claims": [_claim(c, i) for i, c in enumerate(claims) if c.experiment == key],
            **placed[key],
        }
        for key in tested
    ]
    appendix = [
        {
            "title": f"{EXPERIMENTS[key][0]}: {EXPERIMENTS[key][1]}",
            "claims": [_claim(c, i) for i, c in enumerate(claims) if c.experiment == key],
        }
        for key in untested
    ]
    show_figures = bool(others or other_notes or not tested)
    toc = [("claims", "The paper's claims")]
    toc += [(e["key"], e["title"]) for e in experiments]
    toc += [("figures", "Figures")] if show_figures else []
    toc += [("sweep", "Sweep"), ("runs", "Runs")]
    toc += [("appendix", "Appendix: not testable")] if appendix else []
    toc += [("summary", "Summary dataset")]
    return _TEMPLATE.render(
        name=name,
        generated=provenance.now(),
        toc=toc,
        axes=[(a, ", ".join(str(v) for v in ds[a].values)) for a in analysis.sweep_axes(ds)],
        provenance=_provenance_rows(ds, results_dir),
        compute=_compute_rows(results_dir),
        config_text=_config_text(ds),
        runs=report_runs.runs_context(run_table, ds, results_dir, runs_tsv),
        claims=_claims_overview(claims, tested),
        experiments=experiments,
        other_figures=others,
        other_notes=other_notes,
        show_figures=show_figures,
        appendix=appendix,
        summary_html=Markup(ds._repr_html_()),
    )


# ---------------------------------------------------------------- figures


def _one_file_per_figure(paths) -> list[Path]:
    """The paths in figure order, an SVG standing for a PNG of the same name."""
    paths = [Path(p) for p in paths]
    svgs = {p.with_suffix("") for p in paths if p.suffix.lower() == ".svg"}
    keep = [p for p in paths if p.suffix.lower() == ".svg" or p.with_suffix("") not in svgs]
    return sorted(keep, key=figure_order)


def _figure(path: Path, folder: Path, ds: xr.Dataset | None = None) -> dict:
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    if media_type is None:
        raise ValueError(
            f"figure {str(path)!r}: suffix {path.suffix!r} cannot be inlined; allowed: "
            f"{sorted(MEDIA_TYPES)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"figure {str(path)!r} does not exist")
    data = path.read_bytes()
    title, caption = figure_caption(path, ds)
    files = [
        (suffix.upper(), _relative(path.with_suffix(f".{suffix}"), folder))
        for suffix in ("svg", "png", "pdf")
        if path.with_suffix(f".{suffix}").is_file()
    ]
    return {
        "stem": path.stem.split("__")[0],
        "title": title,
        "caption": caption,
        "uri": f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}",
        "width": _svg_width_px(data) if media_type == "image/svg+xml" else None,
        "files": files,
    }


def _svg_width_px(data: bytes) -> int | None:
    """The SVG's own width in CSS pixels (1 pt = 4/3 px), to show it at native size."""
    match = re.search(rb'<svg[^>]*\bwidth="([0-9.]+)(pt|px)?"', data[:2000])
    if not match:
        return None
    value = float(match.group(1))
    return round(value * 4 / 3 if match.group(2) in (b"pt", None) else value)


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()


# ---------------------------------------------------------------- sweep and provenance


def _provenance_rows(ds: xr.Dataset, results_dir: Path | None) -> list[tuple[str, str]]:
    commit, dirty = provenance.git_state()
    versions = provenance.versions()
    stored = ds.attrs.get("git_commit")
    rows = [
        ("report written", provenance.now()),
        *provenance.command_rows(results_dir, shlex.join(sys.argv) or "(library call)"),
        ("git commit (report)", _commit_text(commit, dirty)),
    ]
    if stored and stored != commit:
        rows.append(("git commit (summary)", str(stored)))
    rows += [
        ("Snakemake", versions["snakemake"]),
        ("JAX (runs)", str(ds.attrs.get("jax_version", versions["jax"]))),
        ("device (collect)", str(ds.attrs.get("jax_device", "—"))),
        ("ntkpipe", str(ds.attrs.get("ntkpipe_version", versions["ntkpipe"]))),
        ("Python", versions["python"]),
    ]
    return [(k, _shorten(v)) for k, v in rows]


def _commit_text(commit: str, dirty: bool | None) -> str:
    if dirty is None:
        return commit
    return f"{commit} ({'uncommitted changes' if dirty else 'clean'})"


def _compute_rows(results_dir: Path | None) -> list[dict]:
    if results_dir is None:
        return []
    by_stage = provenance.compute_by_stage(provenance.read_benchmarks(results_dir))
    asked = calibrate.asked_and_used(results_dir)
    # In warm workers (ntkpipe.workers) a JAX job has no process of its own: its benchmark
    # file holds its wall time, but the CPU and memory of its client.
    warm = calibrate.ran_in_warm_workers(results_dir)
    pooled = workers.pooled_rules() if warm else frozenset()
    in_worker = "— (warm worker)"
    return [
        {
            "stage": stage,
            "jobs": int(e["jobs"]),
            "wall": _duration(e["wall_s"]),
            "cpu": in_worker if stage in pooled else _duration(e["cpu_s"]),
            "mean": _duration(e["mean_wall_s"]),
            "rss": in_worker
            if stage in pooled
            else (f"{e['max_rss_mb']:.0f} MB" if math.isfinite(e["max_rss_mb"]) else "—"),
            "asked": _asked_text(asked.get(stage), memory_used=stage not in pooled),
        }
        for stage, e in by_stage.items()
    ]


def _asked_text(row: dict | None, memory_used: bool = True) -> str:
    """The largest runtime and memory a stage's jobs asked for, next to what they used."""
    if not row:
        return "—"
    used = f" / {row['mem_used']:.0f}" if memory_used else ""
    return (
        f"{row['runtime_asked']:.0f} min / {_duration(60 * row['runtime_used'])}, "
        f"{row['mem_asked']:.0f}{used} MB"
    )


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _config_text(ds: xr.Dataset) -> str:
    config = ds.attrs.get("config")
    if config is None:
        return "(no configuration recorded in the summary)"
    try:
        parsed = json.loads(config) if isinstance(config, str) else config
    except json.JSONDecodeError:
        return str(config)
    return yaml.safe_dump(parsed, sort_keys=False, allow_unicode=True, default_flow_style=None)


# ---------------------------------------------------------------- claims


def _tested(claim: Claim) -> bool:
    return claim.verdict != "not tested"


#: The verdicts the report's first screen always counts (also at 0).
_COUNTED = tuple(v for v in VERDICTS if v != "not tested")


def _claims_overview(claims: Sequence[Claim], tested: list[str]) -> dict:
    counts = [(_css(v), sum(c.verdict == v for c in claims), v) for v in _COUNTED]
    rows = []
    for key in tested:
        own = [c for c in claims if c.experiment == key]
        verdicts = [(_css(v), n, v) for v in VERDICTS if (n := sum(c.verdict == v for c in own))]
        figure, title = EXPERIMENTS[key]
        rows.append(
            {
                "anchor": f"experiment-{key}",
                "figure": figure,
                "title": title,
                "n": len(own),
                "verdicts": verdicts,
            }
        )
    return {
        "total": len(claims),
        "counts": counts,
        "rows": rows,
        "attention": _attention(claims, tested),
    }


def _attention(claims: Sequence[Claim], tested: list[str]) -> list[dict]:
    """Every claim that is not consistent, grouped by verdict (inconsistent first) and reason
    (a 2-step sweep gives one reason for every claim on trained networks), each linked."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for i, c in enumerate(claims):
        if c.verdict != "consistent" and c.experiment in tested:
            groups.setdefault((c.verdict, c.reason), []).append(_claim(c, i))
    order = list(VERDICTS)
    return [
        {"verdict": verdict, "css": _css(verdict), "reason": reason, "claims": members}
        for (verdict, reason), members in sorted(groups.items(), key=lambda g: order.index(g[0][0]))
    ]


def _claim(c: Claim, index: int) -> dict:
    return {
        "id": f"claim-{index}",
        "figure": c.figure,
        "group": claims_tsv.scope_text(c.group) or "—",
        "statement": c.statement,
        "measured": c.measured,
        "verdict": c.verdict,
        "css": _css(c.verdict),
        "criterion": c.criterion,
        "reason": c.reason,
    }


# ---------------------------------------------------------------- cells


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _css(value) -> str:
    """A CSS class suffix from a status or verdict (letters and dashes only)."""
    return "".join(ch if ch.isalnum() else "-" for ch in str(value))
