"""The report's claim table and overview with all three verdicts (analysis.report)."""

from ntkpipe.analysis import report
from tests.summary_fixture import make_summary


def test_report_counts_inconclusive_claims_and_says_what_would_decide_them(tmp_path):
    ds = make_summary(widths=(64, 128, 256), seeds=2, noise=0.5, n_trains=(32,), rng_seed=3)
    text = report.write_report(ds, [], tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'class="verdict-inconclusive">inconclusive</td>' in text
    overview = text.split("claims of the paper tested on this sweep:")[1].split("</p>")[0]
    assert "inconclusive</span>" in overview
    assert '<td class="reason">to decide: CI' in text and "add seeds or widths" in text
