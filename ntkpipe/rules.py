"""The rules' functions for one sweep: paths, configs as params, inputs, flags and resources.

``workflow/rules/common.smk`` makes one `RuleFunctions` of the sweep ``ntkpipe.start`` read and
binds its methods to the names the rule files call (``stage_output("train")``,
``unpack(stage_inputs("train"))``, ``**resources_of("train")``, …). Everything is read off the
stage table (:mod:`ntkpipe.sweep.stage_table`), the results layout
(:class:`ntkpipe.sweep.layout.Layout`) and the cost model (:mod:`ntkpipe.sweep.cost`);
``tests/sweep/test_stage_table.py`` checks the rules against the table in dry runs.

A wildcard of Snakemake is the key of a path pattern: ``{run}`` for a run's stage, ``{akey}`` for
the analytic kernels, ``{point}`` for an ensemble. Light: no JAX, no xarray.
"""

from __future__ import annotations

import json

from ntkpipe import start
from ntkpipe.sweep import cost, stage_table
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep.layout import Layout

__all__ = ["WILDCARDS", "WRITE_CONFIG", "RuleFunctions"]

WILDCARDS = {"run": "{run}", "analytic": "{akey}", "point": "{point}", "sweep": None}
"""A stage scope → the Snakemake wildcard naming one of its keys (None: the sweep itself)."""

_CONFIG_SCOPES = {
    "model.json": "run",
    "run.json": "run",
    "analytic.json": "analytic",
    "ensemble.json": "point",
    "sweep.json": "sweep",
}


WRITE_CONFIG = (
    "printf '%s' {params.content:q} > {output:q}.partial && mv -f {output:q}.partial {output:q}"
    " && echo {output:q}': written' > {log:q}"
)
"""The command of the local rules writing a config file (its content is the rule's param
``content``). A shell command, not a ``run:`` block: Snakemake's local executor runs a ``run:``
block in a new Snakemake process (parsing the workflow again, ≈ 1.3 s of CPU each), and removes a
job's output before it runs anyway, so writing it only when it changed gains nothing there."""


class RuleFunctions:
    """The input, output, log, param and resource functions of the rules of one sweep.

    Args:
        layout: the sweep's results layout.
        sweep: its validated config; settings: its ``resources`` section, loaded.
        runs: {run id: Run}; analytic: {analytic key: the run standing for it}; ensembles:
            {sweep point: the run standing for it} ({} without ensembles).
    """

    def __init__(self, layout: Layout, sweep, settings, runs, analytic, ensembles):
        self.layout, self.sweep, self.settings = layout, sweep, settings
        self.runs, self.analytic, self.ensembles = runs, analytic, ensembles
        self._cache: dict = {}

    # ------------------------------------------------------------ paths

    def run_dir(self, run_id) -> str:
        return str(self.layout.run_dir(run_id))

    def per_run(self, rule) -> list[str]:
        """Every run's output of `rule` (for collect)."""
        return [str(self.layout.store(rule, run_id)) for run_id in self.runs]

    def stage_output(self, rule) -> str:
        """The file or folder `rule` writes, with its wildcards (the rule's output)."""
        return str(self.layout.store(rule, _wildcard(rule)))

    def stage_also_written(self, rule) -> list[str]:
        """The files `rule`'s job writes next to its output (``Stage.also_writes``)."""
        return [str(path) for path in self.layout.also_written(rule, _wildcard(rule))]

    def stage_config_file(self, rule) -> str:
        """The config file `rule` reads (its input `run`), with its wildcards."""
        return str(self.layout.config_file(rule, _wildcard(rule)))

    def stage_log(self, rule) -> str:
        return str(self.layout.log(rule, _wildcard(rule)))

    def stage_benchmark(self, rule) -> str:
        return str(self.layout.benchmark(rule, _wildcard(rule)))

    def config_log(self, config_file) -> str:
        """The log of the local rule writing `config_file`, with its wildcards."""
        key = WILDCARDS[_CONFIG_SCOPES[config_file]]
        return str(self.layout.config_log(config_file, key))

    def ensemble_stores(self, wildcards=None) -> list[str]:
        """Every sweep point's ensemble.zarr (for collect); [] when ensemble.members is 0."""
        return [str(self.layout.store("ensemble", point)) for point in self.ensembles]

    # ------------------------------------------------------------ configs as params

    def stage_json(self, run_id, stage) -> str:
        """The part of a run's resolved config that `stage` depends on, as JSON."""
        return start.stage_json(self.runs[run_id], stage)

    def analytic_json(self, akey) -> str:
        return start.stage_json(self.analytic[akey], "analytic")

    def ensemble_json(self, point) -> str:
        """The ensemble's config: the first seed chunk's run config without its seeds."""
        return start.stage_json(self.ensembles[point], "ensemble")

    def run_config_param(self, run_id) -> str:
        """A run's full resolved config (its run.json) as compact JSON, the param of the `run`
        rule. Compact (no indentation) because Python's JSON encoder is several times faster
        without it, and this is computed for every job when the DAG is built; the job writes
        run.json itself."""
        config = ntk_runs.stage_config(self.runs[run_id].config, "train")
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)

    # ------------------------------------------------------------ inputs

    def stage_inputs(self, rule):
        """The input function of a per-run rule: its config file (`run`) and the stores it
        reads with the run's config (read per run: the kernels switches may be sweep axes)."""
        row = stage_table.stage(rule)

        def inputs(wildcards):
            run_id = wildcards.run
            out = {"run": str(self.layout.config_file(rule, run_id))} if row.config_file else {}
            for one in stage_table.reads(rule, self.runs[run_id].config):
                out[one.name] = self._store_of_run(one.stage, run_id)
            return out

        return inputs

    def stage_flags(self, rule):
        """A params function: the command's flags for the input stores the rule was given,
        e.g. `--init .../init.zarr --kernel .../kernel_init.zarr` (none for a store the run
        does not read), after `--rule <rule>` where the command runs several rules (kernels:
        the store records which config file it was computed from)."""
        row = stage_table.stage(rule)
        shared = len(stage_table.COMMAND_RULES[row.command]) > 1
        first = [f"--rule {rule}"] if shared else []

        def flags(wildcards, input):
            return " ".join(
                first
                + [f"{one.flag} {input[one.name]}" for one in row.inputs if input.get(one.name)]
            )

        return flags

    def _store_of_run(self, stage, run_id) -> str:
        if stage == "analytic":
            key = self._cached(("akey", run_id), lambda: ntk_runs.analytic_id(self.runs[run_id]))
        else:
            key = run_id
        return str(self.layout.store(stage, key))

    # ------------------------------------------------------------ resources (cost model)

    def resources_of(self, rule) -> dict:
        """mem_mb, runtime (and gpu when the config asks) of a per-run or analytic rule.

        mem_mb doubles and runtime grows with each attempt, so a job killed for running out
        of memory or time comes back bigger (--retries, or the SLURM profile's retries).
        """
        stage_table.stage(rule)  # a rule of the stage table

        def asks(wildcards, attempt):
            kind, key, config = self._run_of(wildcards)
            return self._cached(
                (kind, key, rule, attempt),
                lambda: cost.rule_resources(config, rule, attempt, self.settings),
            )

        return _asked(asks) | self._gpu_of(rule)

    def sweep_resources_of(self, rule) -> dict:
        """mem_mb and runtime of a sweep-level rule (collect, figures, report)."""

        def asks(wildcards, attempt):
            n_runs = len(self.runs)
            return cost.sweep_resources(self.sweep, n_runs, rule, attempt, self.settings)

        return _asked(asks)

    def ensemble_resources(self) -> dict:
        """Resources of an ensemble job: memory of ensemble.batch members, time of all of
        them."""

        def asks(wildcards, attempt):
            config = self.ensembles[wildcards.point].config
            return self._cached(
                ("point", wildcards.point, attempt),
                lambda: cost.ensemble_resources(
                    config, self.sweep["ensemble"], attempt, self.settings
                ),
            )

        return _asked(asks) | self._gpu_of("ensemble")

    def priority_of(self, rule):
        """A ``priority:`` function of a per-run, analytic or ensemble rule: the seconds the
        cost model predicts for the job's run (``run``: every stage of it, so that in the
        per-stage layout each stage of the longest run ranks first), for its analytic kernels or
        its ensemble, rounded to 0.1 s.

        Snakemake starts the ready jobs of highest priority first. Longest first is the rule
        that keeps the last job to finish short: in the default sweep on two cores the
        largest run had started last (a 16 s job after the others) and one core sat idle
        for its end (``benchmarks/bench_default_sweep.py``).
        """
        stage_table.stage(rule)  # a rule of the stage table

        def seconds(wildcards) -> float:
            if hasattr(wildcards, "point"):
                config = self.ensembles[wildcards.point].config
                return cost.ensemble_seconds(config, self.sweep["ensemble"], self.settings)
            kind, _, config = self._run_of(wildcards)
            return cost.job_seconds(config, "run" if kind == "run" else "analytic", self.settings)

        def priority(wildcards):
            key = ("seconds", *wildcards.items())  # every stage of a run asks the same
            return round(self._cached(key, lambda: seconds(wildcards)), 1)

        return priority

    def _run_of(self, wildcards) -> tuple[str, str, dict]:
        """(``run`` or ``akey``, the key, the run config) of a per-run job's run, or of the run
        standing for an analytic job's kernels."""
        if hasattr(wildcards, "run"):
            return "run", wildcards.run, self.runs[wildcards.run].config
        return "akey", wildcards.akey, self.analytic[wildcards.akey].config

    def _gpu_of(self, rule) -> dict:
        """{"gpu": N} for a rule the config gives GPUs to (resources.gpu_rules), else {}."""
        if self.settings["gpu"] and rule in self.settings["gpu_rules"]:
            return {"gpu": self.settings["gpu"]}
        return {}

    def _cached(self, key, compute):
        """Snakemake asks for each resource of each job separately: compute them once."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


def _wildcard(rule):
    return WILDCARDS[stage_table.stage(rule).scope]


def _asked(asks) -> dict:
    """{"mem_mb": f, "runtime": f} of Snakemake resource functions reading `asks`."""

    def mem_mb(wildcards, attempt):
        return asks(wildcards, attempt)["mem_mb"]

    def runtime(wildcards, attempt):
        return asks(wildcards, attempt)["runtime"]

    return {"mem_mb": mem_mb, "runtime": runtime}
