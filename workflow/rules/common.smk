# Paths, configs as params, every rule's inputs and outputs (read off the stage table) and
# resources (the cost model). Uses the sweep read by config.smk.

import functools
import json

from ntkpipe.sweep import cost as ntk_cost

# ---------------------------------------------------------------- paths
# Every path comes from the results layout (ntkpipe.sweep.layout.Layout, LAYOUT in config.smk).

_WILDCARDS = {"run": "{run}", "analytic": "{akey}", "point": "{point}", "sweep": None}


def run_dir(run_id):
    return str(LAYOUT.run_dir(run_id))


def analytic_dir(akey):
    return str(LAYOUT.analytic_dir(akey))


def per_run(rule):
    """Every run's output of `rule` (for collect)."""
    return [str(LAYOUT.store(rule, run_id)) for run_id in RUNS]


def stage_log(rule):
    """The log of `rule`'s jobs, with its wildcards."""
    return str(LAYOUT.log(rule, _WILDCARDS[ntk_stages.stage(rule).scope]))


def stage_benchmark(rule):
    """The benchmark file of `rule`'s jobs, with its wildcards."""
    return str(LAYOUT.benchmark(rule, _WILDCARDS[ntk_stages.stage(rule).scope]))


def config_log(config_file):
    """The log of the local rule writing `config_file`, with its wildcards."""
    scopes = {"model.json": "run", "run.json": "run", "analytic.json": "analytic"}
    scope = {**scopes, "ensemble.json": "point", "sweep.json": "sweep"}[config_file]
    return str(LAYOUT.config_log(config_file, _WILDCARDS[scope]))


# ---------------------------------------------------------------- configs as params


def stage_json(run_id, stage):
    """The part of a run's resolved config that `stage` depends on, as JSON."""
    return ntk_start.stage_json(RUNS[run_id], stage)


def run_config_param(run_id):
    """A run's full resolved config (its run.json) as compact JSON, the param of the `run` rule.

    Compact (no indentation) because Python's JSON encoder is several times faster without it,
    and this is computed for every job when the DAG is built; the job writes run.json itself.
    """
    config = ntk_runs.stage_config(RUNS[run_id].config, "train")
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def analytic_json(akey):
    return ntk_start.stage_json(ANALYTIC[akey], "analytic")


def note_config_written(path, content, log):
    """Write a config file only if its content changed; say which in the rule's log."""
    changed = ntk_runs.write_if_changed(path, content)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text(f"{path}: {'written' if changed else 'unchanged'}\n")


# ---------------------------------------------------------------- inputs and outputs
# Every rule's inputs and output store come from the stage table (ntkpipe.sweep.stage_table);
# tests/sweep/test_stage_table.py checks the rules against it.


def stage_output(rule):
    """The file or folder `rule` writes, with its wildcards (the rule's output)."""
    return str(LAYOUT.store(rule, _WILDCARDS[ntk_stages.stage(rule).scope]))


def stage_config_file(rule):
    """The config file `rule` reads (its input `run`), with its wildcards."""
    return str(LAYOUT.config_file(rule, _WILDCARDS[ntk_stages.stage(rule).scope]))


def stage_inputs(rule):
    """The input function of a per-run rule: its config file (`run`) and the stores it reads
    with the run's config (read per run: the kernels switches may be sweep axes), {name: path}.
    """
    row = ntk_stages.stage(rule)
    config_file = row.config_file

    def inputs(wildcards):
        run_id = wildcards.run
        out = {"run": str(LAYOUT.config_file(rule, run_id))} if config_file else {}
        for one in ntk_stages.reads(rule, RUNS[run_id].config):
            out[one.name] = _store_of_run(one.stage, run_id)
        return out

    return inputs


def stage_flags(rule):
    """A params function: the command's flags for the input stores the rule was given, e.g.
    `--init .../init.zarr --kernel .../kernel_init.zarr` (none for a store the run does not
    read)."""
    row = ntk_stages.stage(rule)

    def flags(wildcards, input):
        return " ".join(
            f"{one.flag} {input[one.name]}" for one in row.inputs if input.get(one.name)
        )

    return flags


def _store_of_run(stage, run_id):
    key = _analytic_id(run_id) if stage == "analytic" else run_id
    return str(LAYOUT.store(stage, key))


@functools.cache
def _analytic_id(run_id):
    return ntk_runs.analytic_id(RUNS[run_id])


def ensemble_stores(wildcards=None):
    """Every sweep point's ensemble.zarr (for collect); [] when ensemble.members is 0."""
    return [str(LAYOUT.store("ensemble", point)) for point in ENSEMBLES]


def ensemble_json(point):
    """The ensemble's config: the first seed chunk's run config without its seeds."""
    return ntk_start.stage_json(ENSEMBLES[point], "ensemble")


# ---------------------------------------------------------------- resources (cost model)


def resources_of(rule_name):
    """mem_mb, runtime (and gpu when the config asks) of a per-run rule, from ntkpipe.sweep.cost.

    mem_mb doubles and runtime grows with each attempt, so a job killed for running out of
    memory or time comes back bigger (--retries, or the SLURM profile's retries).
    """
    ntk_stages.stage(rule_name)  # a rule of the stage table

    def mem_mb(wildcards, attempt):
        return _rule_resources(wildcards, rule_name, attempt)["mem_mb"]

    def runtime(wildcards, attempt):
        return _rule_resources(wildcards, rule_name, attempt)["runtime"]

    return {"mem_mb": mem_mb, "runtime": runtime, **_gpu_of(rule_name)}


def _gpu_of(rule_name):
    """{"gpu": N} for a rule the config gives GPUs to (resources.gpu_rules), else {}."""
    if RESOURCES["gpu"] and rule_name in RESOURCES["gpu_rules"]:
        return {"gpu": RESOURCES["gpu"]}
    return {}


def sweep_resources_of(rule_name):
    """mem_mb and runtime of a sweep-level rule (collect, figures, report)."""

    def mem_mb(wildcards, attempt):
        return _sweep_resources(rule_name, attempt)["mem_mb"]

    def runtime(wildcards, attempt):
        return _sweep_resources(rule_name, attempt)["runtime"]

    return {"mem_mb": mem_mb, "runtime": runtime}


def _sweep_resources(rule_name, attempt):
    return ntk_cost.sweep_resources(SWEEP, len(RUNS), rule_name, attempt, RESOURCES)


def ensemble_resources():
    """Resources of an ensemble job: memory of ensemble.batch members, time of all of them."""

    def mem_mb(wildcards, attempt):
        return _ensemble_resources(wildcards.point, attempt)["mem_mb"]

    def runtime(wildcards, attempt):
        return _ensemble_resources(wildcards.point, attempt)["runtime"]

    return {"mem_mb": mem_mb, "runtime": runtime, **_gpu_of("ensemble")}


@functools.cache
def _ensemble_resources(point, attempt):
    config = ENSEMBLES[point].config
    return ntk_cost.ensemble_resources(config, SWEEP["ensemble"], attempt, RESOURCES)


def _rule_resources(wildcards, rule_name, attempt):
    if hasattr(wildcards, "run"):
        return _resources_cached("run", wildcards.run, rule_name, attempt)
    return _resources_cached("akey", wildcards.akey, rule_name, attempt)


@functools.cache
def _resources_cached(kind, key, rule_name, attempt):
    """Snakemake asks for each resource of each job separately: compute them once."""
    config = (RUNS if kind == "run" else ANALYTIC)[key].config
    return ntk_cost.rule_resources(config, rule_name, attempt, RESOURCES)
