# Sweep expansion, paths and input functions. The rule files hold only rules.
#
# The config is validated once here, before any job starts (schema with
# additionalProperties: false plus cross-field checks in ntkpipe.config): a bad
# config stops Snakemake with a message naming the field, the value and what
# is allowed, and nothing is written.
#
# Without --configfile, the default sweep config/config.yaml is used (with any
# --config key=value overrides on top). We do not use the `configfile:`
# directive because Snakemake deep-merges a user's --configfile into it, which
# would silently add the default sweep axes to every user sweep.

import json
import sys
from pathlib import Path

import yaml

from ntkpipe import config as ntk_config
from ntkpipe import cost as ntk_cost
from ntkpipe.errors import ConfigError

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"

if "name" not in config:
    _defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())
    ntk_config.deep_update(_defaults, config)
    config.clear()
    config.update(_defaults)

try:
    SWEEP = ntk_config.load_config(dict(config))
except ConfigError as error:
    sys.exit(f"ntkpipe: invalid config\n{error}")

OUT = f"results/{SWEEP['name']}"
RUNS = {run.run_id: run for run in ntk_config.expand_runs(SWEEP)}
ANALYTIC = {ntk_config.analytic_id(run): run for run in RUNS.values()}
WANT_ANALYTIC = SWEEP["kernels"]["analytic"]
WANT_FINAL_KERNEL = SWEEP["kernels"]["final"]


wildcard_constraints:
    run=ntk_config.RUN_ID_PATTERN,
    akey=ntk_config.ANALYTIC_ID_PATTERN,


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


def analytic_json(akey):
    return ntk_config.to_json(ntk_config.stage_config(ANALYTIC[akey].config, "analytic"))


# ---------------------------------------------------------------- input functions


def analytic_of_run(wildcards):
    if not WANT_ANALYTIC:
        return []
    return f"{analytic_dir(ntk_config.analytic_id(RUNS[wildcards.run]))}/analytic.zarr"


def final_kernel_of_run(wildcards):
    return f"{run_dir(wildcards.run)}/kernel_final.zarr" if WANT_FINAL_KERNEL else []


# ---------------------------------------------------------------- resources (cost model)


def resources_of(stage):
    """Snakemake resources of `stage` for a run, from ntkpipe.cost (issue: cluster scale)."""

    def mem_mb(wildcards, attempt):
        return ntk_cost.mem_mb(_run_config(wildcards), stage, attempt=attempt)

    def runtime(wildcards, attempt):
        return ntk_cost.runtime_min(_run_config(wildcards), stage, attempt=attempt)

    return {"mem_mb": mem_mb, "runtime": runtime}


def _run_config(wildcards):
    if hasattr(wildcards, "run"):
        return RUNS[wildcards.run].config
    return ANALYTIC[wildcards.akey].config

