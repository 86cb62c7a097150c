"""SLURM job arrays are allowed only for rules whose jobs all ask for the same resources
(ntkpipe.sweep.arrays): the plugin gives every task of an array its first job's resources."""

from __future__ import annotations

import types

import yaml

from ntkpipe.sweep import arrays, cost_settings, plan, validate
from tests.workflow_helpers import CONFIGS

WIDTHS = {"model.width": [16, 4096]}  # the wider runs ask for more memory


def _jobs(**sweep_changes):
    raw = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    raw.update(sweep_changes)
    with validate.data_files_optional():
        return plan.sweep_jobs(validate.load_config(raw), cost_settings.load_settings({}))


def test_rules_of_runs_of_one_size_are_safe_and_of_several_sizes_are_not():
    widths = _jobs(sweep=WIDTHS)
    same = _jobs()  # tiny: widths 16 and 64 ask alike (the fixed part dominates)
    per_run = {"init", "kernel_init", "train", "kernel_final", "linear", "compare"}
    assert set(arrays.array_safe_rules(same)) == per_run  # analytic, collect…: one job each
    differ = {j.rule for j in widths if len({(k.mem_mb, k.runtime) for k in widths
                                             if k.rule == j.rule}) > 1}  # fmt: skip
    assert differ and not differ & set(arrays.array_safe_rules(widths))


def test_arrays_for_a_rule_whose_asks_differ_are_refused_naming_the_safe_ones():
    jobs = _jobs(sweep=WIDTHS)
    unsafe = next(r for r in ("train", "init", "linear") if r not in arrays.array_safe_rules(jobs))
    stop, note = arrays.check_arrays("slurm", types.SimpleNamespace(array_jobs=unsafe), jobs)
    assert stop and f"rule {unsafe}: its 4 jobs ask for " in stop
    assert "first job's resources" in stop and "nothing was submitted" in stop and note is None
    stop, _ = arrays.check_arrays("slurm", types.SimpleNamespace(array_jobs="all"), jobs)
    assert stop  # `all` includes the unsafe rules
    # A rule with one job is never an array; other executors have no arrays.
    assert arrays.array_problems("collect", jobs) == []
    assert arrays.check_arrays("local", types.SimpleNamespace(array_jobs=unsafe), jobs) == (
        None,
        None,
    )


def test_a_sweep_of_one_size_accepts_arrays_and_is_told_about_them():
    jobs = _jobs()
    assert arrays.check_arrays("slurm", types.SimpleNamespace(array_jobs="train;init"), jobs) == (
        None,
        None,
    )
    stop, note = arrays.check_arrays("slurm", types.SimpleNamespace(array_jobs=None), jobs)
    assert stop is None and "--slurm-array-jobs=init,kernel_init,train" in note


def test_segmented_jobs_are_never_arrays():
    # each segment is a retry: a retried task must not take a first attempt's asks
    job = plan.Job("train", "a", 700, 30, 0, 0.0, 3)
    assert arrays.array_safe_rules([job, job._replace(name="b")]) == []
