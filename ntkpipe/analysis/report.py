"""One self-contained HTML report of a sweep: config, runs, the paper's claims, figures, summary.

After the sweep and its runs, an overview of the claims, then one section per experiment of the
paper present in the sweep (`claims.EXPERIMENTS`): its claims, each with the measured number
and the verdict computed from the data, followed by its figures (`plots.FIGURE_EXPERIMENTS`).

The page has no external resources and needs no JavaScript: figures are inlined as base64 data
URIs, styles are inline, and the summary dataset is shown with xarray's own HTML view (which
carries its own CSS). Every string that comes from the user (sweep name, config values, axis
values, statuses, file names) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from ntkpipe.analysis import aggregate as analysis
from ntkpipe.analysis.claims import EXPERIMENTS, VERDICTS, Claim, paper_claims
from ntkpipe.analysis.plots import FIGURE_EXPERIMENTS, figure_caption, figure_order, load_summary

#: How each run status is shown.
STATUS_LABELS = {
    "ok": "ok",
    "lr_above_critical": "lr above η_crit",
    "diverged": "diverged",
    "missing": "missing",
}
#: Image types that can be inlined, by file suffix.
MEDIA_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


def write_report(
    summary: xr.Dataset | str | Path,
    figure_paths: Sequence[str | Path],
    out_path: str | Path,
    *,
    run_table: pd.DataFrame | None = None,
) -> Path:
    """Write the sweep's report as one self-contained HTML file.

    Args:
        summary: the summary Dataset or the path of ``summary.zarr``.
        figure_paths: SVG or PNG files to inline (e.g. from `plots.make_figures`), shown in
            the order of `plots.FIGURES` (then by name) with its captions.
        out_path: the HTML file to write (its folder is created if needed).
        run_table: one row per run with a ``status`` column; default `analysis.run_table` of the
            summary.

    Returns:
        `out_path` as a Path.

    Raises:
        FileNotFoundError: a figure (or the summary path) does not exist.
        ValueError: a figure is neither .svg nor .png.
    """
    figures = [
        (Path(path).stem.split("__")[0], *_figure(Path(path)))
        for path in sorted(figure_paths, key=figure_order)
    ]
    ds = load_summary(summary)
    table = analysis.run_table(ds) if run_table is None else run_table
    page = render_report(ds, figures, table, paper_claims(ds))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    return out_path


def render_report(
    ds: xr.Dataset,
    figures: Sequence[tuple[str, str, str, str]],
    run_table: pd.DataFrame,
    claims: Sequence[Claim],
) -> str:
    """The report's HTML text.

    Sections: the sweep, its runs, an overview of the paper's claims, then one section per
    experiment of the paper present in the sweep (its claims with measured numbers and computed
    verdicts, then its figures), the figures of no present experiment, and the summary dataset.

    Args:
        ds: the summary.
        figures: (figure stem, title, caption, data URI) per figure; the stem places it in an
            experiment's section (`plots.FIGURE_EXPERIMENTS`).
        run_table: one row per run, with a ``status`` column.
        claims: the paper's claims with verdicts (`claims.paper_claims`).
    """
    name = ds.attrs.get("name", "") or "(unnamed sweep)"
    present = [key for key in EXPERIMENTS if any(c.experiment == key for c in claims)]
    placed = {key: [] for key in present}
    others = []
    for stem, *figure in figures:
        home = next((k for k in FIGURE_EXPERIMENTS.get(stem, ()) if k in placed), None)
        (placed[home] if home else others).append(tuple(figure))
    sections = [
        ("sweep", "Sweep", _sweep_section(ds)),
        ("runs", "Runs", _runs_section(run_table)),
        ("claims", "The paper's claims", _claims_section(claims)),
    ]
    for key in present:
        figure_label, title = EXPERIMENTS[key]
        own = [c for c in claims if c.experiment == key]
        content = _claims_table(own) + "\n" + _figures_section(placed[key], empty="")
        sections.append((f"experiment-{key}", f"{figure_label}: {title}", content))
    if others or not present:
        sections.append(("figures", "Figures", _figures_section(others)))
    sections.append(("summary", "Summary dataset", _summary_section(ds)))
    nav = " · ".join(f'<a href="#{key}">{_e(title)}</a>' for key, title, _ in sections)
    body = "\n".join(
        f'<section id="{key}">\n<h2>{_e(title)}</h2>\n{content}\n</section>'
        for key, title, content in sections
    )
    return _PAGE.format(
        title=_e(f"ntkpipe report — {name}"),
        style=_STYLE,
        name=_e(name),
        nav=nav,
        body=body,
    )


# ---------------------------------------------------------------- private helpers


def _figure(path: Path) -> tuple[str, str, str]:
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    if media_type is None:
        raise ValueError(
            f"figure {str(path)!r}: suffix {path.suffix!r} cannot be inlined; allowed: "
            f"{sorted(MEDIA_TYPES)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"figure {str(path)!r} does not exist")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    title, caption = figure_caption(path)
    return title, caption, f"data:{media_type};base64,{data}"


def _sweep_section(ds: xr.Dataset) -> str:
    parts = []
    axes = analysis.sweep_axes(ds)
    if axes:
        items = "".join(
            f"<li><code>{_e(a)}</code>: {_e(', '.join(str(v) for v in ds[a].values))}</li>"
            for a in axes
        )
        parts.append(f"<p>Sweep axes:</p><ul>{items}</ul>")
    parts.append(f'<h3>Configuration</h3><pre class="config">{_e(_config_text(ds))}</pre>')
    provenance = {k: v for k, v in ds.attrs.items() if k not in ("config", "sweep_axes", "name")}
    if provenance:
        rows = "".join(
            f"<tr><th>{_e(k)}</th><td>{_e(_shorten(_cell(v)))}</td></tr>"
            for k, v in provenance.items()
        )
        parts.append(f'<h3>Provenance</h3><table class="kv">{rows}</table>')
    return "\n".join(parts)


def _config_text(ds: xr.Dataset) -> str:
    config = ds.attrs.get("config")
    if config is None:
        return "(no configuration recorded in the summary)"
    try:
        parsed = json.loads(config) if isinstance(config, str) else config
    except json.JSONDecodeError:
        return str(config)
    return yaml.safe_dump(parsed, sort_keys=False, allow_unicode=True, default_flow_style=None)


def _runs_section(table: pd.DataFrame) -> str:
    if "status" not in table.columns:
        return _table(table)
    counts = table["status"].astype(str).value_counts()
    summary = ", ".join(
        f'<span class="status-{_css(s)}">{_e(STATUS_LABELS.get(s, s))}</span>: {n}'
        for s, n in counts.items()
    )
    parts = [f"<p>{len(table)} runs (sweep point × seed) — {summary}.</p>"]
    attention = table[table["status"].astype(str) != "ok"]
    if len(attention):
        parts.append("<h3>Runs that are missing, diverged or above η_crit</h3>")
        parts.append(_table(attention))
    else:
        parts.append(f"<p>{_all_ok(table)}</p>")
    parts.append(f"<details><summary>All runs</summary>{_table(table)}</details>")
    return "\n".join(parts)


def _all_ok(table: pd.DataFrame) -> str:
    """The sentence for a table whose runs are all ok: below η_crit, or not checked against it
    where η_crit is NaN (no Θ̂₀: kernels.initial false)."""
    unchecked = int(table["lr_critical"].isna().sum()) if "lr_critical" in table.columns else 0
    if not unchecked:
        return "Every run finished with a learning rate below η_crit."
    if unchecked == len(table):
        return (
            "Every run finished without diverging. η_crit was not computed (kernels.initial: "
            "false, no Θ̂₀), so no learning rate was checked against it."
        )
    return (
        f"Every run finished without diverging, with a learning rate below η_crit where it was "
        f"computed; {unchecked} runs have no η_crit (kernels.initial: false, no Θ̂₀)."
    )


def _table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    rows = []
    for record in table.itertuples(index=False):
        cells = []
        for column, value in zip(table.columns, record, strict=True):
            if column == "status":
                label = STATUS_LABELS.get(str(value), str(value))
                cells.append(f'<td class="status-{_css(value)}">{_e(label)}</td>')
            else:
                cells.append(f"<td>{_e(_cell(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="wide"><table class="runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _claims_section(claims: Sequence[Claim]) -> str:
    if not claims:
        return (
            "<p>No claim of the paper can be tested on this sweep (it needs a width axis with "
            "data for the quantity).</p>"
        )
    counts = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    summary = ", ".join(
        f'<span class="verdict-{_css(v)}">{n} {_e(v)}</span>' for v, n in counts.items() if n
    )
    rows = []
    for key, (figure_label, title) in EXPERIMENTS.items():
        own = [c for c in claims if c.experiment == key]
        if not own:
            continue
        verdicts = ", ".join(
            f'<span class="verdict-{_css(v)}">{n} {_e(v)}</span>'
            for v in VERDICTS
            if (n := sum(c.verdict == v for c in own))
        )
        rows.append(
            f'<tr><td><a href="#experiment-{key}">{_e(figure_label)}</a></td>'
            f"<td>{_e(title)}</td><td>{len(own)}</td><td>{verdicts}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("figure", "experiment", "claims", "verdicts"))
    return (
        f"<p>{len(claims)} claims tested: {summary}. Verdicts are computed from the summary; "
        "exponents are least-squares fits on log-log axes with every seed as a replicate. Each "
        "experiment of the paper present in this sweep has its own section below.</p>"
        f'<div class="wide"><table class="experiments"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _claims_table(claims: Sequence[Claim]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{_e(c.figure)}</td>"
        f"<td>{_e(analysis.format_group(c.group)) or '—'}</td>"
        f"<td>{_e(c.statement)}</td>"
        f"<td>{_e(c.measured)}</td>"
        f'<td class="verdict-{_css(c.verdict)}">{_e(c.verdict)}</td>'
        f'<td class="criterion">{_e(c.criterion)}{_needs(c)}</td>'
        "</tr>"
        for c in claims
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("figure", "runs", "the paper's claim", "measured", "verdict", "criterion")
    )
    return (
        f'<div class="wide"><table class="claims"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _needs(claim: Claim) -> str:
    """What would decide an inconclusive claim, under its criterion."""
    if not claim.needs:
        return ""
    return f'<br><span class="needs">to decide: {_e(claim.needs)}</span>'


def _figures_section(
    figures: Sequence[tuple[str, str, str]], empty: str = "<p>No figure applies to this sweep.</p>"
) -> str:
    if not figures:
        return empty
    return "\n".join(
        f'<figure><img src="{uri}" alt="{_e(title)}">'
        f"<figcaption><strong>{_e(title)}.</strong> {_e(caption)}</figcaption></figure>"
        for title, caption, uri in figures
    )


def _summary_section(ds: xr.Dataset) -> str:
    return f'<div class="xr">{ds._repr_html_()}</div>'


def _cell(value) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return str(value)


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _css(value) -> str:
    """A CSS class suffix from a status or verdict (letters and dashes only)."""
    return "".join(ch if ch.isalnum() else "-" for ch in str(value))


def _e(text) -> str:
    return html.escape(str(text), quote=True)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } .stamp { color: #666; margin-top: 0; }
nav { margin: 1em 0 2em; } section { margin-bottom: 2.5em; }
pre.config { background: #f6f8fa; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; }
div.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; }
table.runs td { font-variant-numeric: tabular-nums; }
.status-ok { color: #1a7f37; } .status-lr-above-critical { color: #9a6700; }
.status-diverged, .status-missing { color: #cf222e; font-weight: bold; }
.verdict-consistent { color: #1a7f37; font-weight: bold; }
.verdict-inconsistent { color: #cf222e; font-weight: bold; }
.verdict-inconclusive { color: #9a6700; font-weight: bold; }
.needs { color: #9a6700; }
.verdict-not-tested { color: #666; }
td.criterion { color: #555; font-size: 0.9em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #333; max-width: 900px; }
details summary { cursor: pointer; margin: 0.5em 0; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{name}</h1>
<p class="stamp">ntkpipe report. Lee et al. 2019, “Wide Neural Networks of Any
Depth Evolve as Linear Models Under Gradient Descent”: f is the network, f_lin its linearization
around θ₀, Θ̂ / K̂ the empirical tangent / NNGP kernels, Θ / K their infinite-width limits.</p>
<nav>{nav}</nav>
{body}
</body>
</html>
"""
