# Sweep expansion, paths and input functions. The rule files hold only rules.
#
# The config is validated once here, before any job starts (schema with
# additionalProperties: false plus cross-field checks in ntkpipe.sweep.runs): a bad
# config stops Snakemake with a message naming the field, the value and what
# is allowed, and nothing is written.
#
# Without --configfile, the default sweep config/config.yaml is used (with any
# --config key=value overrides on top). We do not use the `configfile:`
# directive because Snakemake deep-merges a user's --configfile into it, which
# would silently add the default sweep axes to every user sweep.

import contextlib
import functools
import json
import os
import sys
import warnings
from pathlib import Path

import yaml

from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import cost as ntk_cost
from ntkpipe.sweep import ensemble as ntk_ensemble
from ntkpipe.sweep import plan as ntk_plan
from ntkpipe.sweep import stage_table as ntk_stages
from ntkpipe.sweep import validate as ntk_validate
from ntkpipe.errors import ConfigError

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
CONDA_ENV = "../envs/ntkpipe.yaml"  # relative to workflow/rules/

if "name" not in config:
    _defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())
    ntk_config.deep_update(_defaults, config)
    config.clear()
    config.update(_defaults)

# The `resources` section (GPUs) is read here and kept out of the run configs: changing it
# changes how jobs are scheduled, never what they compute, so it must not rerun anything.
# A dry run (snakemake -n) plans without the data files: missing ones are a warning; a real
# run refuses them here, before any job.
DRY_RUN = workflow.output_settings.dryrun
MAIN = workflow.is_main_process  # not a job's own snakemake (on a SLURM node)
with (
    warnings.catch_warnings(record=True) as _warned,
    ntk_validate.data_files_optional() if DRY_RUN else contextlib.nullcontext(),
):
    warnings.simplefilter("always", ntk_validate.MissingDataWarning)
    try:
        RESOURCES = ntk_cost.load_settings(config.pop("resources", None))
        SWEEP = ntk_config.load_config(dict(config))
        RUNS = {run.run_id: run for run in ntk_config.expand_runs(SWEEP)}
        PLAN = ntk_plan.sweep_jobs(SWEEP, RESOURCES, RUNS.values()) if MAIN else []
    except ConfigError as error:
        sys.exit(f"ntkpipe: invalid config\n{error}")
for _message in sorted({str(w.message) for w in _warned}):
    print(
        f"ntkpipe: warning (dry run): {_message}; a real run stops here",
        file=sys.stderr,
    )
_over = ntk_plan.limit_problems(PLAN, RESOURCES)
if _over:
    sys.exit(
        "ntkpipe: jobs a partition would refuse (nothing was submitted):\n"
        + "\n".join(_over)
    )
if PLAN:
    print(
        f"ntkpipe plan: {ntk_plan.summary_line(PLAN)} (ntkpipe plan: per rule)",
        file=sys.stderr,
    )

OUT = f"results/{SWEEP['name']}"


# Which rules run on GPUs: the device kind of each benchmark file, for `ntkpipe calibrate`
# (written when the workflow runs, not by a dry run or --lint).
onstart:
    _scheduling = {key: RESOURCES[key] for key in ("gpu", "gpu_rules", "jobs")}
    Path(OUT).mkdir(parents=True, exist_ok=True)
    ntk_config.write_if_changed(
        f"{OUT}/resources.json", json.dumps(_scheduling) + "\n"
    )


JOBS_PER_STAGE = RESOURCES["jobs"] == "stages"  # else one job per run (run.smk)
LARGE_SWEEP_RUNS = 2000  # from here on, one job per stage costs minutes of DAG building
# Every job reads and fills one JAX compilation cache (ntkpipe.cli.configure_compilation_cache):
# only the first job of a kind compiles. Jobs inherit the variable (SLURM: --export=ALL).
os.environ.setdefault("NTKPIPE_JAX_CACHE", str(Path("results/.jax_cache").resolve()))
ANALYTIC = {ntk_config.analytic_id(run): run for run in RUNS.values()}
if JOBS_PER_STAGE and len(RUNS) >= LARGE_SWEEP_RUNS:
    print(
        f"ntkpipe: {len(RUNS)} runs, one job per stage: about {8 * len(RUNS)} jobs. For sweeps "
        "this large, `resources: {jobs: runs}` (one job per run) builds the DAG about 7 times "
        "faster and starts one process per run instead of six (README, 'Sweeps of thousands "
        "of runs').",
        file=sys.stderr,
    )
# Fig. 2 / S1: one ensemble per sweep point (the first seed chunk's run config stands for it).
ENSEMBLES = {}
if SWEEP["ensemble"]["members"] > 0:
    for _run in RUNS.values():
        ENSEMBLES.setdefault(ntk_ensemble.point_id(_run.run_id), _run)
    _problems = {
        p for _run in ENSEMBLES.values() for p in ntk_ensemble.check_config(_run.config)
    }
    if _problems:
        sys.exit("ntkpipe: invalid config\n" + "\n".join(sorted(_problems)))


# GPUs are a per-job ("local") resource: the main Snakemake does not count them across
# cluster jobs (SLURM does), and a group job (--groups / --group-components) asks for at most
# `--resources gpu=N` of them, running its GPU jobs one after another instead of summing their
# requests. Without --resources gpu=N, N is the config's resources.gpu (locally: at most
# that many GPUs in use at once; pass --resources gpu=<GPUs of the machine> to use more).


resource_scopes:
    gpu="local",


if RESOURCES["gpu"] and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", RESOURCES["gpu"])


wildcard_constraints:
    run=ntk_config.RUN_ID_PATTERN,
    akey=ntk_config.ANALYTIC_ID_PATTERN,
    point=ntk_config.ANALYTIC_ID_PATTERN,


# ---------------------------------------------------------------- paths


def run_dir(run_id):
    return f"{OUT}/runs/{run_id}"


def analytic_dir(akey):
    return f"{OUT}/analytic/{akey}"


def per_run(name):
    """Every run's file `name` (for collect)."""
    return [f"{run_dir(run_id)}/{name}" for run_id in RUNS]


# ---------------------------------------------------------------- configs as params


def stage_json(run_id, stage):
    """The part of a run's resolved config that `stage` depends on, as JSON."""
    return ntk_config.to_json(ntk_config.stage_config(RUNS[run_id].config, stage))


def run_config_param(run_id):
    """A run's full resolved config (its run.json) as compact JSON, the param of the `run` rule.

    Compact (no indentation) because Python's JSON encoder is several times faster without it,
    and this is computed for every job when the DAG is built; the job writes run.json itself.
    """
    config = ntk_config.stage_config(RUNS[run_id].config, "train")
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def analytic_json(akey):
    return ntk_config.to_json(
        ntk_config.stage_config(ANALYTIC[akey].config, "analytic")
    )


def note_config_written(path, content, log):
    """Write a config file only if its content changed; say which in the rule's log."""
    changed = ntk_config.write_if_changed(path, content)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text(f"{path}: {'written' if changed else 'unchanged'}\n")


# ---------------------------------------------------------------- inputs and outputs
# Every rule's inputs and output store come from the stage table (ntkpipe.sweep.stage_table);
# tests/sweep/test_stage_table.py checks the rules against it.

_SCOPE_FOLDERS = {
    "run": f"{OUT}/runs/{{run}}",
    "analytic": f"{OUT}/analytic/{{akey}}",
    "point": f"{OUT}/ensembles/{{point}}",
    "sweep": OUT,
}


def stage_output(rule):
    """The file or folder `rule` writes, with its wildcards (the rule's output)."""
    row = ntk_stages.stage(rule)
    return f"{_SCOPE_FOLDERS[row.scope]}/{row.store}"


def stage_config_file(rule):
    """The config file `rule` reads (its input `run`), with its wildcards."""
    row = ntk_stages.stage(rule)
    return f"{_SCOPE_FOLDERS[row.scope]}/{row.config_file}"


def stage_inputs(rule):
    """The input function of a per-run rule: its config file (`run`) and the stores it reads
    with the run's config (read per run: the kernels switches may be sweep axes), {name: path}.
    """
    row = ntk_stages.stage(rule)
    config_file = row.config_file

    def inputs(wildcards):
        run_id = wildcards.run
        out = {"run": f"{run_dir(run_id)}/{config_file}"} if config_file else {}
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
    store = ntk_stages.BY_RULE[stage].store
    if stage == "analytic":
        return f"{analytic_dir(_analytic_id(run_id))}/{store}"
    return f"{run_dir(run_id)}/{store}"


@functools.cache
def _analytic_id(run_id):
    return ntk_config.analytic_id(RUNS[run_id])


def ensemble_stores(wildcards=None):
    """Every sweep point's ensemble.zarr (for collect); [] when ensemble.members is 0."""
    store = ntk_stages.BY_RULE["ensemble"].store
    return [f"{OUT}/ensembles/{point}/{store}" for point in ENSEMBLES]


def ensemble_json(point):
    """The ensemble's config: the first seed chunk's run config without its seeds."""
    return ntk_config.to_json(
        ntk_config.stage_config(ENSEMBLES[point].config, "ensemble")
    )


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
