"""Stage reruns in either job layout (ntkpipe.stage_reruns): the run stages a Snakemake command
line names, how they reach a cluster job, and the names it refuses. Unit tests; the README's
commands themselves run in tests/test_default_sweep.py (one job per run) and
tests/test_workflow.py (one job per stage)."""

from __future__ import annotations

import pytest

from ntkpipe import stage_reruns
from ntkpipe.stage_reruns import StageReruns

RULES = ["all", "run", "init", "train", "analytic", "collect", "figures", "report"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["snakemake", "--cores", "all"], StageReruns()),
        (["snakemake", "-c2", "--forcerun", "train"], StageReruns(forced=("train",))),
        (["snakemake", "-R", "linear", "train", "-n"], StageReruns(forced=("train", "linear"))),
        (
            ["snakemake", "--forcerun=train", "--until", "kernel_init"],
            StageReruns(forced=("train",), until=("kernel_init",)),
        ),  # fmt: skip
        (["snakemake", "-U", "compare", "report"], StageReruns(until=("compare",))),
        (["snakemake", "--forcerun", "collect", "results/x/summary.zarr"], StageReruns()),
        (["snakemake", "--config", "training={steps: 8}", "train"], StageReruns()),  # a target
        (["snakemake", "-nF"], StageReruns(forceall=True)),
        (["snakemake", "--forceall", "--omit-from", "train"], StageReruns(forceall=True)),
    ],
)
def test_the_run_stages_a_command_names(argv, expected):
    assert stage_reruns.from_argv(argv) == expected


def test_the_shape_of_the_per_run_rules():
    forced = StageReruns(forced=("train", "linear"))
    assert forced.aliases == ("train", "linear") and forced.splits == ()
    assert forced.redo_flags() == "--redo train --redo linear"
    until = StageReruns(until=("kernel_init", "compare"))
    assert until.aliases == ("compare",) and until.splits == ("kernel_init",)
    assert until.redo_flags() == ""
    every = StageReruns(forceall=True)
    assert every.aliases == () and every.redo_flags().startswith("--redo init --redo kernel_init")


def test_a_cluster_job_gets_the_main_process_stages_through_the_environment():
    """A SLURM job's own snakemake has no --forcerun / --until on its command line: it must
    still define the rule it is asked to run (e.g. `train`) with the same command."""
    environ = {}
    main = stage_reruns.for_workflow(
        ["snakemake", "--forcerun", "train"], environ, main_process=True
    )
    job = stage_reruns.for_workflow(
        ["snakemake", "--target-jobs", "train:run=w"], environ, main_process=False
    )
    assert job == main == StageReruns(forced=("train",))
    plain = stage_reruns.for_workflow(["snakemake"], environ, main_process=True)
    assert plain == StageReruns() and stage_reruns.ENV not in environ  # nothing left behind


@pytest.mark.parametrize(
    ("argv", "per_run", "expected"),
    [
        (["snakemake", "--forcerun", "train"], True, []),
        (["snakemake", "--until", "results/x/runs/a/train.zarr"], False, []),
        (
            ["snakemake", "--forcerun", "trian"],
            False,
            [
                "--forcerun trian: no stage of that name; the stages: init, kernel_init, train, "
                "kernel_final, linear, compare, analytic, collect, figures, report, run (or give a "
                "file: --forcerun results/<name>/runs/<run_id>/train.zarr)"
            ],
        ),  # fmt: skip
        (
            ["snakemake", "--omit-from", "train"],
            True,
            [
                "--omit-from train: not available with one job per run (resources.jobs: runs); "
                "use --until with the stages to compute, e.g. --until kernel_init"
            ],
        ),  # fmt: skip
        (["snakemake", "--omit-from", "train"], False, []),
        (
            ["snakemake", "--forcerun", "train", "--until", "init"],
            True,
            [
                "--forcerun train with --until init: not available with one job per run "
                "(resources.jobs: runs); run the two one after the other"
            ],
        ),  # fmt: skip
    ],
)
def test_names_the_workflow_cannot_use_are_said_before_any_job(argv, per_run, expected):
    assert stage_reruns.problems(argv, RULES, per_run_layout=per_run) == expected
