"""External cross-check against neural-tangents 0.6.5 (benchmarks/crosscheck_nt.py).

Runs only where the separate neural-tangents environment exists (/work/venvs/nt, or the python
named by $NTKPIPE_NT_PYTHON; see benchmarks/README.md) and skips otherwise: CI does not have it.
By default one held-out configuration is checked (tanh, depth 2, standard parameterization with
its width, no bias: it exercises quadrature, the width-dependent standard NTK, empirical kernels
on both paths, dynamics and the predictive distributions, ~25 s of CPU); set
NTKPIPE_CROSSCHECK_FULL=1 to check all of them (minutes).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "crosscheck_nt.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import nt_python  # noqa: E402

DEFAULT_CONFIGS = ["tanh-d2-std-nob"]


@pytest.mark.skipif(
    nt_python() is None,
    reason="neural-tangents environment not found: create /work/venvs/nt "
    "(benchmarks/README.md) or set NTKPIPE_NT_PYTHON",
)
def test_ntkpipe_agrees_with_neural_tangents_to_1e_5():
    only = [] if os.environ.get("NTKPIPE_CROSSCHECK_FULL") == "1" else ["--only", *DEFAULT_CONFIGS]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tol", "1e-5", *only],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    report = proc.stdout + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    summary = proc.stdout.strip().splitlines()[-1]
    assert " 0 FAIL, 0 ERROR, 0 SKIP" in summary, report
    assert int(summary.split(": ")[1].split(" PASS")[0]) > 0, report
