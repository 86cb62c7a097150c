"""End to end: the real `snakemake` command on a tiny config in a temporary directory.

One module-scoped sweep is run once; the incremental-rerun tests then ask Snakemake (dry run)
what it would do after a change, and the bad-input tests check that nothing starts.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from ntkpipe.analysis import claims_tsv
from ntkpipe.io import invocations, variables
from ntkpipe.sweep import stage_table
from tests.workflow_helpers import (
    CONFIGS,
    REPO,
    job_counts,
    snakemake,
    snakemake_command,
    write_config,
)

pytestmark = pytest.mark.slow
TINY = CONFIGS / "tiny.yaml"
RUN_STAGES = {row.rule for row in stage_table.RUN_STAGES}
RUN_STORES = tuple(row.store.removesuffix(".zarr") for row in stage_table.RUN_STAGES)


@pytest.fixture(scope="module")
def finished(tiny_sweep):
    """A tiny sweep run to its report (the session's, tests/conftest.py: dry runs only here)."""
    return tiny_sweep


def test_every_store_and_the_report_exist(finished):
    workdir, _ = finished
    out = workdir / "results" / "tiny"
    runs = sorted(p.parent.relative_to(out / "runs") for p in out.glob("runs/**/metrics.zarr"))
    assert [str(r) for r in runs] == [
        "width~16/seeds~0",
        "width~16/seeds~1",
        "width~64/seeds~0",
        "width~64/seeds~1",
    ]
    for run in runs:
        width = int(str(run).split("/")[0].split("~")[1])
        for store in RUN_STORES:
            ds = xr.open_zarr(out / "runs" / run / f"{store}.zarr")
            config = json.loads(ds.attrs["config"])  # the part of the run config the stage used
            assert config["model"]["width"] == width, (run, store)
            if store in ("train", "linear", "metrics"):
                assert config["run_id"] == str(run)
    assert (out / "report.html").stat().st_size > 10_000
    assert list((out / "figures").glob("*.svg"))
    # the report job writes the claims of its tables, one row per claim, for every sweep
    frame = claims_tsv.read_claims(out / "claims.tsv")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert len(frame) == page.count('<tr id="claim-') > 0
    assert set(frame["verdict"]) <= {"consistent", "inconsistent", "inconclusive", "not applicable"}


def test_the_report_shows_the_users_snakemake_command_recorded_once(finished):
    """The main snakemake process records its command once; its jobs (the report job among
    them) record nothing, and the report's provenance shows that command, not its own."""
    workdir, config = finished
    out = workdir / "results" / "tiny"
    (start,) = invocations.read(out)
    assert start.argv[1:] == tuple(snakemake_command(workdir, config)[0][3:])
    assert start.cwd == str(workdir.resolve())  # Snakemake's --directory
    page = html.unescape((out / "report.html").read_text())
    assert f"<th>command</th><td>{start.command}</td>" in page
    assert start.command.startswith("snakemake --snakefile") and "sweep starts" not in page


def test_summary_has_the_sweep_axes_as_dimensions(finished):
    workdir, _ = finished
    summary = xr.open_zarr(workdir / "results" / "tiny" / "summary.zarr")
    assert summary.sizes["width"] == 2 and summary.sizes["seed"] == 2
    assert set(summary.model.values) >= {"net", "lin"}
    assert np.isfinite(summary.rmse_train.values).all()
    assert set(np.unique(summary.status.values)) <= {"ok", "lr_above_critical"}
    # β = Σ_l 1/n_l = depth/width (one hidden layer), and Θ̂₀(x, x) of the first examples
    np.testing.assert_allclose(summary["beta"].values, 1 / summary["width"].values)
    run = workdir / "results" / "tiny" / "runs" / "width~64" / "seeds~0"
    kernel = xr.open_zarr(run / "kernel_init.zarr")
    diag = np.diagonal(kernel.ntk_train_train.values, axis1=1, axis2=2)[:, :4]
    np.testing.assert_allclose(summary.ntk_diag_init.sel(width=64, seed=0), diag[0])


def test_stores_follow_the_schema(finished):
    workdir, _ = finished
    run = workdir / "results" / "tiny" / "runs" / "width~64" / "seeds~0"
    train = xr.open_zarr(run / "train.zarr")
    assert train.fx_train.dims == ("seed", "step", "train", "out")
    assert train.weight_change.dims == ("seed", "step", "layer")
    kernel = xr.open_zarr(run / "kernel_init.zarr")
    assert kernel.ntk_train_train.dims == ("seed", "train", "train2")
    for key in ("ntkpipe_version", "git_commit", "jax_version", "jax_device", "wall_time_s"):
        assert key in train.attrs, key


def _schema_reference() -> dict[str, tuple[str, str, str]]:
    """docs/store-schema.md's rows: {name: (long name, units, description)}."""
    rows = {}
    for line in (REPO / "docs" / "store-schema.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            cells = [c.strip().replace("\0", "|") for c in line.replace("\\|", "\0").split("|")]
            rows[cells[1].strip("`")] = (cells[2], cells[3], cells[5])
    return rows


def _metadata_problems(path, reference) -> list[str]:
    """Every variable and coordinate of the store at `path` whose long_name, units or
    description is not the table's (ntkpipe.io.variables) and docs/store-schema.md's."""
    ds = xr.open_zarr(path)
    axes = json.loads(ds.attrs.get("sweep_axes", "[]"))
    problems = []
    for name, var in ds.variables.items():
        name = str(name)
        if not variables.is_described(name, axes):
            problems.append(f"{path.name}: {name} is not in the variable table")
            continue
        entry = variables.describe(name, axes)
        found = tuple(var.attrs.get(k) for k in ("long_name", "units", "description"))
        if found != (entry.long_name, entry.units, entry.description):
            problems.append(f"{path.name}: {name} carries {found}, the table says {entry[:3]}")
        documented = reference.get(name) or reference.get(name.removesuffix("_analytic"))
        if documented is None:
            problems.append(f"{path.name}: {name} is not in docs/store-schema.md")
        elif name in reference and documented != (entry.long_name, entry.units, entry.description):
            problems.append(f"{path.name}: {name} differs from docs/store-schema.md")
    return problems


def test_every_store_describes_every_variable_as_the_table_and_the_docs(
    finished, finished_in_run_jobs
):
    """The summary and every per-run, analytic and ensemble store of both job layouts: each
    variable and coordinate has the table's long_name, units and description (none carried
    from the arrays it was computed from, e.g. rmse_test from fx_test), and the docs agree."""
    reference = _schema_reference()
    assert reference["rmse_test"][0] == "RMSE(f_t, f^lin_t) test"  # the parse can fail
    problems, checked = [], 0
    for workdir in (finished[0], finished_in_run_jobs[0]):
        out = workdir / "results" / "tiny"
        for path in sorted(out.glob("**/*.zarr")):
            if (path / "zarr.json").is_file() and not path.parent.name.endswith(".zarr"):
                problems += _metadata_problems(path, reference)
                checked += 1
    assert checked >= 2 * (4 * 6 + 2), checked  # 4 runs × 6 stores, analytic, summary
    assert not problems, "\n".join(problems)


def test_both_job_layouts_give_every_variable_the_same_dims(finished, finished_in_run_jobs):
    summaries = [
        xr.open_zarr(workdir / "results" / "tiny" / "summary.zarr")
        for workdir in (finished[0], finished_in_run_jobs[0])
    ]
    dims = [{str(n): v.dims for n, v in s.variables.items()} for s in summaries]
    assert dims[0] == dims[1]
    # η is the run's: never on seed, though tiny's seed chunks stack the summary along seed
    assert dims[0]["learning_rate"] == ("width",)


def test_nothing_to_do_after_a_complete_run(finished):
    workdir, config = finished
    assert job_counts(snakemake(workdir, config, "-n").stdout) == {}
    assert len(invocations.read(workdir / "results" / "tiny")) == 1  # a dry run starts nothing


def test_forcerun_a_stage_reruns_it_and_downstream_only(finished):
    workdir, config = finished
    counts = job_counts(snakemake(workdir, config, "-n", "--forcerun", "train").stdout)
    assert counts["train"] == 4
    assert "linear" not in counts and "init" not in counts and "kernel_init" not in counts
    assert {"kernel_final", "compare", "collect", "figures", "report"} <= set(counts)


def test_adding_a_width_runs_only_the_new_runs(finished):
    workdir, _ = finished
    wider = write_config(workdir / "wider.yaml", TINY, sweep={"model.width": [16, 64, 32]})
    counts = job_counts(snakemake(workdir, wider, "-n").stdout)
    assert counts["init"] == 2 and counts["train"] == 2 and counts["kernel_init"] == 2
    assert counts["collect"] == 1


def test_changing_the_learning_rate_keeps_init_and_initial_kernels(finished):
    workdir, _ = finished
    slower = write_config(workdir / "slower.yaml", TINY, training__learning_rate=0.5)
    counts = job_counts(snakemake(workdir, slower, "-n").stdout)
    assert "init" not in counts and "kernel_init" not in counts and "analytic" not in counts
    assert counts["train"] == 4 and counts["linear"] == 4


def test_changing_the_ensemble_section_reruns_no_run(finished):
    """The ensemble section reaches the ensemble rule only: no run config is rewritten, so no
    run-level job reruns (the sweep-level ones do: sweep.json holds the whole config)."""
    workdir, _ = finished
    sweep_level = {"sweep_config", "collect", "figures", "report", "all"}
    unused = write_config(workdir / "batch.yaml", TINY, ensemble__batch=3)  # members: 0
    assert set(job_counts(snakemake(workdir, unused, "-n").stdout)) <= sweep_level
    with_ensemble = write_config(workdir / "ensemble.yaml", TINY, ensemble__members=2)
    counts = job_counts(snakemake(workdir, with_ensemble, "-n").stdout)
    assert counts["ensemble"] == 2  # one per sweep point (two widths)
    assert set(counts) <= sweep_level | {"ensemble_config", "ensemble"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"model__activation": "softplus"}, ["model.activation", "softplus", "relu"]),
        ({"sweep": {"model.width": [16, 0]}}, ["model.width", "0"]),
        ({"data__n_train": 100000}, ["data.n_train", "100000"]),
        ({"model__colour": "blue"}, ["model", "colour"]),
        ({"data__dataset": "mnist", "data__root": "/nonexistent"}, ["data.root", "/nonexistent"]),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, changes, expected):
    bad = write_config(tmp_path / "bad.yaml", TINY, **changes)
    result = snakemake(tmp_path, bad, check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for fragment in expected:
        assert fragment in message, (fragment, message[-3000:])
    assert not (tmp_path / "results").exists()


NO_THETA0 = {
    "training__optimizer": "momentum",
    "kernels__initial": False,
    "kernels__final": False,
    "kernels__analytic": False,
}


def test_without_initial_kernels_no_kernel_init_job_is_planned(tmp_path):
    """kernels.initial is read per run (it may be swept): the runs without it get no kernel_init
    job, and their linear and compare commands no kernel store."""
    sweep = {"model.width": [16, 64], "kernels.initial": [True, False]}
    config = write_config(tmp_path / "c.yaml", TINY, sweep=sweep, **NO_THETA0)
    result = snakemake(tmp_path, config, "-n", "-p")
    counts = job_counts(result.stdout)
    assert counts["linear"] == counts["compare"] == 8  # 2 widths × 2 values × 2 seed chunks
    assert counts["kernel_init"] == 4  # the runs with initial~true only
    assert "kernel_final" not in counts and "analytic" not in counts
    commands = re.findall(r"^Shell command: (ntkpipe (?:linear|compare) .*)$", result.stdout, re.M)
    assert len(commands) == 16
    for command in commands:
        with_kernel = "--kernel " in command or "--kernel-init " in command
        assert with_kernel == ("initial~true" in command), command
    assert not (tmp_path / "results").exists()


def test_final_and_analytic_kernels_are_planned_per_run(tmp_path):
    """kernels.final and kernels.analytic may be sweep axes too: each run gets its own inputs."""
    sweep = {"kernels.final": [True, False], "kernels.analytic": [False, True]}
    config = write_config(tmp_path / "c.yaml", TINY, sweep=sweep)
    result = snakemake(tmp_path, config, "-n", "-p")
    counts = job_counts(result.stdout)
    assert counts["compare"] == 8 and counts["kernel_final"] == 4  # final~true runs only
    assert counts["analytic"] == 1  # one analytic key, asked for by the analytic~true runs
    commands = re.findall(r"^Shell command: (ntkpipe (?:linear|compare) .*)$", result.stdout, re.M)
    assert len(commands) == 16
    for command in commands:
        assert ("--analytic " in command) == ("analytic~true" in command), command
        if command.startswith("ntkpipe compare"):
            assert ("--kernel-final " in command) == ("final~true" in command), command


def test_without_initial_kernels_one_job_per_run_plans_only_the_run_jobs(tmp_path):
    config = write_config(tmp_path / "c.yaml", TINY, resources__jobs="runs", **NO_THETA0)
    counts = job_counts(snakemake(tmp_path, config, "-n").stdout)
    assert counts["run"] == 4 and counts["report"] == 1
    assert not RUN_STAGES & set(counts) and "analytic" not in counts


def test_lint_passes():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--lint",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--configfile",
            str(TINY),
            "--directory",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- resources.jobs: runs


@pytest.fixture(scope="module")
def finished_in_run_jobs(tmp_path_factory):
    """The same tiny sweep with one job per run (resources.jobs: runs)."""
    workdir = tmp_path_factory.mktemp("sweep-runs")
    config = write_config(workdir / "tiny.yaml", TINY, resources__jobs="runs")
    planned = job_counts(snakemake(workdir, config, "-n").stdout)
    snakemake(workdir, config)
    return workdir, config, planned


def test_one_job_per_run_plans_one_job_per_run(finished_in_run_jobs):
    _, _, planned = finished_in_run_jobs
    assert planned["run"] == 4 and planned["analytic"] == 1
    assert not RUN_STAGES & set(planned) and "model_config" not in planned


def test_one_job_per_run_writes_the_same_stores(finished, finished_in_run_jobs):
    import zarr

    runs = [f"width~{w}/seeds~{s}" for w in (16, 64) for s in (0, 1)]
    stores = RUN_STORES
    for run in runs:
        for store in stores:
            paths = [
                workdir / "results" / "tiny" / "runs" / run / f"{store}.zarr"
                for workdir in (finished[0], finished_in_run_jobs[0])
            ]
            digests = [zarr.open_group(p, mode="r").attrs["ntkpipe_sha256"] for p in paths]
            assert digests[0] == digests[1], (run, store)
    workdir = finished_in_run_jobs[0]
    assert (workdir / "results" / "tiny" / "report.html").stat().st_size > 10_000


def test_one_job_per_run_reruns_runs_on_a_new_learning_rate(finished_in_run_jobs):
    workdir, _, _ = finished_in_run_jobs
    slower = write_config(
        workdir / "slower.yaml", TINY, resources__jobs="runs", training__learning_rate=0.5
    )
    counts = job_counts(snakemake(workdir, slower, "-n").stdout)
    assert counts["run"] == 4 and "analytic" not in counts
    assert job_counts(snakemake(workdir, workdir / "tiny.yaml", "-n").stdout) == {}
