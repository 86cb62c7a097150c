"""Tests of analysis.report: one self-contained, escaped HTML page; opened in headless Chromium."""

import base64
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from ntkpipe.analysis import claims, plots, report
from tests.summary_fixture import FLAGGED, add_ensemble, add_linearization, add_mc, make_summary

INJECTION = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def summary():
    return make_summary(widths=(64, 128, 256), statuses=FLAGGED)


@pytest.fixture(scope="module")
def built(summary, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    paths = plots.make_figures(summary, root / "figures")
    out = report.write_report(summary, sorted(paths), root / "sub" / "report.html")
    return out, paths


class _TagBalance(HTMLParser):
    """Records unclosed / mismatched tags (void elements excluded)."""

    VOID = {"meta", "link", "img", "br", "hr", "input", "source", "wbr", "col", "area", "base"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _parse(text):
    parser = _TagBalance()
    parser.feed(text)
    parser.close()
    return parser


def _sections(text):
    """{section id: its HTML} of the report."""
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', text, flags=re.S))


def _inlined(section_html):
    return [
        base64.b64decode(source)
        for source in re.findall(
            r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', section_html
        )
    ]


def test_report_inlines_every_figure_once_in_its_experiment_section(built):
    out, paths = built
    text = out.read_text(encoding="utf-8")
    sources = _inlined(text)
    assert len(paths) == 6
    assert sorted(sources) == sorted(p.read_bytes() for p in paths)
    for path in paths:
        title, caption = plots.figure_caption(path)
        assert f"<strong>{html.escape(title)}.</strong> {html.escape(caption)}" in text
    sections = _sections(text)
    by_stem = {p.stem: p.read_bytes() for p in paths}
    assert _inlined(sections["experiment-fig1"]) == [
        by_stem["weight_change"],
        by_stem["kernel_change"],
    ]
    assert _inlined(sections["experiment-figS5"]) == [by_stem["rmse_vs_width"]]
    assert _inlined(sections["experiment-figS9"]) == [by_stem["kernel_error"]]
    others = [by_stem[s] for s in ("loss_curves", "rmse_curves")]
    assert _inlined(sections["figures"]) == others  # no Fig. 3 claim: no output change to judge


def test_report_has_a_section_per_experiment_with_claims_and_figures(tmp_path):
    ds = add_ensemble(add_mc(add_linearization(make_summary(widths=(64, 128, 256), seeds=4))))
    paths = plots.make_figures(ds, tmp_path / "figures")
    text = report.write_report(ds, paths, tmp_path / "r.html").read_text(encoding="utf-8")
    sections = _sections(text)
    assert [k for k in sections if k.startswith("experiment-")] == [
        f"experiment-{key}" for key in ("fig1", "fig2", "fig3", "figS5", "figS9")
    ]
    assert "figures" not in sections  # every figure has its experiment
    by_stem = {p.stem: p.read_bytes() for p in paths}
    assert _inlined(sections["experiment-fig2"]) == [by_stem["ensemble"]]
    fig3 = ["loss_curves", "rmse_curves", "linearization"]
    assert _inlined(sections["experiment-fig3"]) == [by_stem[s] for s in fig3]
    assert by_stem["kernel_mc"] in _inlined(sections["experiment-figS9"])
    assert "NTK-GP band" in sections["experiment-fig2"]
    assert "closer to the network than with the analytic Θ" in sections["experiment-fig3"]
    assert "inconsistent</td>" not in text


def test_report_is_balanced_html_without_external_resources(built):
    out, _ = built
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parsed = _parse(text)
    assert parsed.errors == [] and parsed.stack == []
    scripts = [attrs for tag, attrs in parsed.tags if tag == "script"]
    assert scripts == [{}]  # one inline script (sorting, filtering), nothing loaded
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "iframe", "object")
        for key in ("src", "href", "xlink:href"):
            value = attrs.get(key)
            if value is None or value.startswith(("data:", "#")):
                continue
            assert "://" not in value and not value.startswith("/"), (tag, key, value[:60])
            assert (out.parent / value).exists(), value  # a relative link to a file beside it
    assert "xr-wrap" in text  # xarray's own HTML view of the summary, with its CSS
    assert "<style>" in text


def test_report_sections_show_config_runs_and_claims(built):
    text = built[0].read_text(encoding="utf-8")
    for heading in ("Sweep", "Runs", "The paper's claims", "Figures", "Summary dataset"):
        assert f"<h2>{heading}</h2>" in text
    for key in ("fig1", "figS5", "figS9"):
        figures, title = claims.EXPERIMENTS[key]
        assert f"<h2>{html.escape(f'{figures}: {title}')}</h2>" in text
        assert f'<a href="#experiment-{key}">' in text
    assert "experiment-fig2" not in text and "experiment-fig3" not in text
    assert "dataset: digits" in text  # the config as YAML
    attention = text.split("Runs that are missing, diverged or above η_crit")[1].split("<details")[
        0
    ]
    assert attention.count("<tr>") == 1 + 3  # header + the three flagged runs
    for label in ("lr above η_crit", "diverged", "missing"):
        assert f">{label}</td>" in attention
    assert "12 runs (sweep point × seed)" in text
    assert 'class="verdict-consistent">consistent</td>' in text
    assert "inconsistent</td>" not in text


def test_report_shows_verdicts_computed_from_violating_data(tmp_path):
    ds = make_summary(widths=(64, 128, 256), exponents={"hidden": -0.3})
    text = report.write_report(ds, [], tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'class="verdict-inconsistent">inconsistent</td>' in text
    assert "hidden weights change faster with width than input and output weights" in text
    assert "<img" not in text and '<section id="figures">' not in text  # no figure given


def test_report_escapes_every_user_string(tmp_path):
    evil_axis = "<b onmouseover=alert(3)>tanh</b>"
    ds = make_summary(
        widths=(64, 128, 256),
        n_trains=(32,),
        name=INJECTION,
        extra_axes={"activation": ["relu", evil_axis]},
    )
    config = json.loads(ds.attrs["config"])
    config["data"]["root"] = '"><img src=x onerror=alert(2)>'
    ds.attrs["config"] = json.dumps(config)
    ds.attrs["git_commit"] = "</td><script>alert(4)</script>"
    text = report.write_report(ds, [], tmp_path / "r.html").read_text(encoding="utf-8")
    for raw in (INJECTION, "<img src=x", evil_axis, "alert(4)</script>"):
        assert raw not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b onmouseover=alert(3)&gt;tanh&lt;/b&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in text
    parsed = _parse(text)
    assert parsed.errors == [] and [t for t, _ in parsed.tags].count("script") == 1


def test_report_uses_a_given_run_table(summary, tmp_path):
    table = pd.DataFrame(
        {"run": ["width~64/<i>x</i>"], "status": ["diverged"], "wall_s": [np.float64(12.5)]}
    )
    text = report.write_report(summary, [], tmp_path / "r.html", run_table=table).read_text()
    assert "width~64/&lt;i&gt;x&lt;/i&gt;" in text and '<td data-sort="12.5">12.5</td>' in text
    assert "1 runs (sweep point × seed)" in text


def test_report_does_not_claim_runs_below_an_eta_crit_that_was_not_computed(summary, tmp_path):
    """kernels.initial false: η_crit is NaN, so the learning rates were not checked against it."""
    table = pd.DataFrame({"status": ["ok", "ok"], "lr_critical": [np.nan, np.nan]})
    text = report.write_report(summary, [], tmp_path / "r.html", run_table=table).read_text()
    assert "below η_crit" not in text
    assert "η_crit was not computed (kernels.initial: false, no Θ̂₀)" in text
    table["lr_critical"] = [np.nan, 2.0]
    text = report.write_report(summary, [], tmp_path / "r.html", run_table=table).read_text()
    assert "below η_crit where it was computed; 1 runs have no η_crit" in text
    table["lr_critical"] = [3.0, 2.0]
    text = report.write_report(summary, [], tmp_path / "r.html", run_table=table).read_text()
    assert "Every run finished with a learning rate below η_crit." in text


def test_report_checks_figures_before_writing(summary, tmp_path):
    out = tmp_path / "r.html"
    with pytest.raises(FileNotFoundError, match="absent.svg"):
        report.write_report(summary, [tmp_path / "absent.svg"], out)
    (tmp_path / "f.pdf").write_bytes(b"%PDF")
    with pytest.raises(ValueError, match="suffix '.pdf' cannot be inlined"):
        report.write_report(summary, [tmp_path / "f.pdf"], out)
    assert not out.exists()


# ---------------------------------------------------------------- headless Chromium

_IMAGE_CHECK = """<script>
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.setAttribute('data-images', images.length);
  document.body.setAttribute('data-broken', broken);
});
</script>"""


def _chromium(tmp_path, *args):
    """Run headless Chromium; generous timeout because the test machines are shared."""
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr[-2000:]}"
    return done


def _images_in_browser(tmp_path, html_text, name):
    """(number of <img>, number that failed to load) as Chromium sees them after `load`."""
    page = tmp_path / name
    page.write_text(html_text.replace("</body>", f"{_IMAGE_CHECK}</body>"), encoding="utf-8")
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()).stdout
    body = re.search(r'<body data-images="(\d+)" data-broken="(\d+)"', dom)
    assert body, f"the image check did not run: {dom[:300]!r}"
    return int(body.group(1)), int(body.group(2))


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(built, tmp_path):
    out, paths = built
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", out.as_uri())
    image = mpimg.imread(shot)
    assert image.shape[:2] == (4000, 1280)
    assert shot.stat().st_size > 100_000 and image[..., :3].std() > 0.05  # not a blank page

    text = out.read_text(encoding="utf-8")
    assert _images_in_browser(tmp_path, text, "check.html") == (len(paths), 0)
    broken = text.replace("</body>", '<img src="data:image/png;base64,AAAA" alt="x"></body>')
    assert _images_in_browser(tmp_path, broken, "control.html") == (len(paths) + 1, 1)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_of_every_experiment_loads_every_figure_in_chromium(tmp_path):
    ds = add_ensemble(add_mc(add_linearization(make_summary(widths=(64, 128, 256), seeds=3))))
    paths = plots.make_figures(ds, tmp_path / "figures")
    assert len(paths) == 9
    text = report.write_report(ds, paths, tmp_path / "r.html").read_text(encoding="utf-8")
    assert _images_in_browser(tmp_path, text, "check.html") == (9, 0)


_TABLE_CHECK = """<script>
window.addEventListener('load', () => {
  const table = document.getElementById('all-runs');
  const heads = Array.from(table.tHead.rows[0].cells).map(c => c.textContent.trim());
  const column = heads.indexOf('lr_critical');
  const values = () => Array.from(table.tBodies[0].rows).map(
    r => parseFloat(r.cells[column].dataset.sort ?? 'NaN')).filter(v => !Number.isNaN(v));
  const sorted = (v, sign) => v.every((x, i) => i === 0 || sign * (x - v[i - 1]) >= 0);
  table.tHead.rows[0].cells[column].click();
  const up = sorted(values(), 1);
  table.tHead.rows[0].cells[column].click();
  const down = sorted(values(), -1);
  const filter = document.querySelector('input.filter');
  filter.value = 'diverged';
  filter.dispatchEvent(new Event('input'));
  const visible = Array.from(table.tBodies[0].rows).filter(r => !r.hidden).length;
  document.body.setAttribute('data-sorts', `${up},${down}`);
  document.body.setAttribute('data-visible', visible);
  document.body.setAttribute('data-errors', window.__errors.length);
});
</script>"""
_ERRORS = "<script>window.__errors = []; window.onerror = (m) => window.__errors.push(m);</script>"


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_table_sorts_and_filters_in_chromium_without_console_errors(built, tmp_path):
    out, _ = built
    text = out.read_text(encoding="utf-8")
    page = tmp_path / "table.html"
    page.write_text(
        text.replace("<head>", f"<head>{_ERRORS}", 1).replace("</body>", f"{_TABLE_CHECK}</body>"),
        encoding="utf-8",
    )
    done = _chromium(
        tmp_path,
        "--enable-logging=stderr",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    )
    body = re.search(
        r'<body data-sorts="(\w+),(\w+)" data-visible="(\d+)" data-errors="(\d+)"', done.stdout
    )
    assert body, f"the table check did not run: {done.stdout[:300]!r}"
    assert body.group(1) == body.group(2) == "true"  # ascending, then descending
    assert int(body.group(3)) == 1  # one diverged run in the fixture
    assert body.group(4) == "0" and "Uncaught" not in done.stderr


def test_report_of_10000_runs_stays_small_with_every_run_in_runs_tsv(summary, tmp_path):
    """Issue 14: ≤ 5 MB at 10,000 runs; the page holds MAX_RUN_ROWS, runs.tsv every run."""
    n = 10_000
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "width": np.repeat([64, 128, 256, 512, 1024], n // 5),
            "seed": np.tile(np.arange(n // 5), 5),
            "status": np.where(np.arange(n) % 1000 == 7, "diverged", "ok"),
            "learning_rate": 1.0,
            "lr_critical": rng.uniform(1.5, 2.0, n),
            **{f"metric_{i}": rng.normal(size=n) for i in range(12)},
        }
    )
    out = report.write_report(summary, [], tmp_path / "r.html", run_table=table)
    text = out.read_text(encoding="utf-8")
    assert out.stat().st_size < 5_000_000
    assert text.count("<tr>") < report.MAX_RUN_ROWS + 200
    assert "the first 500 of 10000, flagged runs first" in text
    full = pd.read_csv(tmp_path / "runs.tsv", sep="\t")
    assert len(full) == n and list(full.columns) == list(table.columns)
    attention = text.split("Runs that are missing, diverged or above η_crit")[1].split("<details")[
        0
    ]
    assert attention.count(">diverged</td>") == 10  # every flagged run is in the page
