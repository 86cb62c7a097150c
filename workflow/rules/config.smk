# The sweep as the workflow reads it: config files and overrides, validation, the plan, the
# results folder's lock and the scheduling settings. Paths and input functions: common.smk;
# stale stores and config files: stale.smk. The rule files hold only rules.
#
# ntkpipe reads the config itself, once (ntkpipe.sweep.loading; Snakemake's own reading, with
# YAML 1.1 numbers and duplicate keys accepted, is discarded): the --configfile files in the
# order given (later files overlay earlier ones, mappings merged key by key), then the
# --config overrides, coerced through the schema (--config 'training={learning_rate: 0.1}'
# sets the number 0.1). Without any --configfile the default sweep config/config.yaml is used,
# and only then; a config without `name:` is refused, never merged with the default sweep.
#
# The config is validated before any job starts (schema with additionalProperties: false plus
# cross-field checks in ntkpipe.sweep.validate and the cost model's memory estimate against
# this machine or --resources mem_mb): a bad config stops Snakemake with a message naming the
# field, the value and what is allowed, and nothing is written.

import contextlib
import functools
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import cost as ntk_cost
from ntkpipe.sweep import cost_settings as ntk_cost_settings
from ntkpipe.sweep import ensemble as ntk_ensemble
from ntkpipe.sweep import layout as ntk_layout
from ntkpipe.sweep import loading as ntk_loading
from ntkpipe.sweep import plan as ntk_plan
from ntkpipe.sweep import stage_table as ntk_stages
from ntkpipe.sweep import validate as ntk_validate
from ntkpipe.sweep import validate_checks as ntk_checks
from ntkpipe.errors import ConfigError

# A job's own stderr stays open as descriptor 3 after the rules send its output to its log
# (`> {log} 2>&1`): ntkpipe writes its error there too (ntkpipe.cli.report_error), so Snakemake
# shows it even when the log cannot be written (a full disk). Bash's strict mode as Snakemake's.
shell.prefix("set -euo pipefail; export NTKPIPE_ERROR_FD=3; exec 3>&2; ")

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
CONDA_ENV = "../envs/ntkpipe.yaml"  # relative to workflow/rules/

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
        _RAW, CONFIG_FILES = ntk_loading.resolve(
            workflow.config_settings.configfiles,
            workflow.config_settings.config,
            default=DEFAULT_CONFIG,
            schema=ntk_validate.load_schema(),
        )
        RESOURCES = ntk_cost_settings.load_settings(_RAW.pop("resources", None))
        SWEEP = ntk_validate.load_config(_RAW)
        RUNS = {run.run_id: run for run in ntk_config.expand_runs(SWEEP)}
        PLAN = ntk_plan.sweep_jobs(SWEEP, RESOURCES, RUNS.values()) if MAIN else []
    except ConfigError as error:
        sys.exit(f"ntkpipe: invalid config\n{error}")
config.clear()
config.update(SWEEP)
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

LAYOUT = ntk_layout.Layout.of(SWEEP["name"])
OUT = str(LAYOUT.root)


# Which rules run on GPUs: the device kind of each benchmark file, for `ntkpipe calibrate`
# (written when the workflow runs, not by a dry run or --lint).
onstart:
    _scheduling = {key: RESOURCES[key] for key in ("gpu", "gpu_rules", "jobs")}
    Path(OUT).mkdir(parents=True, exist_ok=True)
    ntk_config.write_if_changed(
        LAYOUT.resources_json, json.dumps(_scheduling) + "\n"
    )


JOBS_PER_STAGE = RESOURCES["jobs"] == "stages"  # else one job per run (run.smk)
LARGE_SWEEP_RUNS = 2000  # from here on, one job per stage costs minutes of DAG building
# Every job reads and fills one JAX compilation cache (ntkpipe.cli.configure_compilation_cache):
# only the first job of a kind compiles. Jobs inherit the variable (SLURM: --export=ALL).
os.environ.setdefault("NTKPIPE_JAX_CACHE", str(LAYOUT.jax_cache.resolve()))
ANALYTIC = {ntk_config.analytic_id(run): run for run in RUNS.values()}
if JOBS_PER_STAGE and len(RUNS) >= LARGE_SWEEP_RUNS:
    print(
        f"ntkpipe: {len(RUNS)} runs, one job per stage: about {8 * len(RUNS)} jobs. For sweeps "
        "this large, `resources: {jobs: runs}` (one job per run) builds the DAG about 7 times "
        "faster and starts one process per run instead of six (README, 'Sweeps of thousands "
        "of runs').",
        file=sys.stderr,
    )
# Memory: every run's jobs, as the cost model estimates them, must fit the --resources mem_mb
# cap, or (jobs on this machine) this machine's memory.
_MEM_CAP = workflow.global_resources.get("mem_mb")
_MEM_CAP = getattr(_MEM_CAP, "value", _MEM_CAP)
_MEM_WHERE = "--resources mem_mb"
# (At parse time Snakemake has not chosen its executor yet: the command line tells whether jobs
# may run elsewhere, e.g. --profile slurm.)
_ELSEWHERE = {
    "--profile",
    "--executor",
    "-e",
    "--workflow-profile",
    "--slurm",
    "--cluster",
}
_ELSEWHERE = os.environ.get("SNAKEMAKE_PROFILE") or any(
    a.split("=")[0] in _ELSEWHERE for a in sys.argv[1:]
)
_ON_THIS_MACHINE = _MEM_CAP is None and not _ELSEWHERE
if _ON_THIS_MACHINE:
    _MEM_CAP, _MEM_WHERE = ntk_checks.machine_memory_mb(), "this machine's memory"
_problems = ntk_checks.memory_problems(RUNS.values(), RESOURCES, _MEM_CAP, _MEM_WHERE)
if (
    _problems and DRY_RUN and _ON_THIS_MACHINE
):  # planning here a sweep meant for elsewhere
    for _problem in _problems:
        print(
            f"ntkpipe: warning (dry run): {_problem}; a real run here stops",
            file=sys.stderr,
        )
elif _problems:
    sys.exit("ntkpipe: invalid config\n" + "\n".join(_problems))
# One writer per results folder (ntkpipe.io.lock), whatever the working directory: taken by the
# main Snakemake process of a run (not by cluster jobs, not by a dry run) and held until it exits.
_NOT_A_RUN = {
    "--dry-run",
    "--dryrun",
    "--dry_run",
    "--touch",
    "--lint",
    "--unlock",
    "--dag",
}
_NOT_A_RUN |= {
    "--rulegraph",
    "--filegraph",
    "--summary",
    "--detailed-summary",
    "--list",
}
_NOT_A_RUN |= {"--list-rules", "--delete-all-output", "--delete-temp-output"}
_NOT_A_RUN |= {
    "--cleanup-metadata",
    "--list-changes",
    "--lc",
    "--li",
    "--lp",
    "--report",
}


def _writes(argv):
    """Whether this Snakemake command runs jobs, so it may take the results folder's lock and
    remove stale stores. At parse time `workflow.dryrun` is not known yet (Snakemake sets its
    executor after reading the Snakefile): the command line tells (-n, --dry-run, --touch, …).
    """
    for arg in argv[1:]:
        if arg.split("=")[0] in _NOT_A_RUN:
            return False
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha():
            if set(arg[1:]) & set("ntSDl"):
                return False
    return True


WRITES = workflow.is_main_process and not DRY_RUN and _writes(sys.argv)
if WRITES:
    from ntkpipe.io import lock as ntk_lock

    try:
        _LOCK = ntk_lock.acquire(OUT)
    except ntk_lock.LockedError as error:
        sys.exit(f"ntkpipe: {error}")
    if _LOCK.note:
        print(_LOCK.note, file=sys.stderr)


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
