# The sweep as the workflow reads it, before any job: ntkpipe.start reads and checks the config
# (files in order, then --config overrides; without --configfile the default sweep), plans the
# jobs, checks their memory, takes the results folder's lock and (stale.smk) removes stale
# stores; a bad config stops here, naming the field, the value and what is allowed, and nothing
# is written. Paths and input functions: common.smk. The rule files hold only rules.

import os
import sys
from pathlib import Path

from ntkpipe import start as ntk_start
from ntkpipe.errors import ConfigError
from ntkpipe.io.lock import LockedError
from ntkpipe.sweep import arrays as ntk_arrays
from ntkpipe.sweep import plan as ntk_plan
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep import stage_table as ntk_stages
from ntkpipe.sweep.layout import Layout

# A job's stderr stays open as descriptor 3 after the rules send its output to its log: ntkpipe
# writes its error there too (ntkpipe.cli.report_error). Bash's strict mode as Snakemake's.
shell.prefix("set -euo pipefail; export NTKPIPE_ERROR_FD=3; exec 3>&2; ")

CONDA_ENV = "../envs/ntkpipe.yaml"  # relative to workflow/rules/
DRY_RUN = workflow.output_settings.dryrun
MAIN = workflow.is_main_process  # not a job's own snakemake (on a SLURM node)
try:
    SWEEP, RESOURCES, RUNS, PLAN, _notes = ntk_start.read_sweep(
        workflow.config_settings.configfiles,
        workflow.config_settings.config,
        Path(workflow.basedir) / "config" / "config.yaml",
        dry_run=DRY_RUN,
        with_plan=MAIN,
    )
except ConfigError as error:
    sys.exit(f"ntkpipe: invalid config\n{error}")
config.clear()
config.update(SWEEP)
for _line in _notes:
    print(_line, file=sys.stderr)
if _over := ntk_plan.limit_problems(PLAN, RESOURCES):
    sys.exit(
        "ntkpipe: jobs a partition would refuse (nothing was submitted):\n"
        + "\n".join(_over)
    )
if PLAN:
    print(
        f"ntkpipe plan: {ntk_plan.summary_line(PLAN)} (ntkpipe plan: per rule)",
        file=sys.stderr,
    )
LAYOUT = Layout.of(SWEEP["name"])
OUT = str(LAYOUT.root)
JOBS_PER_STAGE = RESOURCES["jobs"] == "stages"  # else one job per run (run.smk)
# One JAX compilation cache for every job (ntkpipe.cli); jobs inherit it (SLURM: --export=ALL).
os.environ.setdefault("NTKPIPE_JAX_CACHE", str(LAYOUT.jax_cache.resolve()))
ANALYTIC = {ntk_runs.analytic_id(run): run for run in RUNS.values()}
if _note := ntk_start.large_sweep_note(len(RUNS), RESOURCES):
    print(_note, file=sys.stderr)
_mem = workflow.global_resources.get("mem_mb")
_notes, _problems = ntk_start.memory_check(
    RUNS.values(), RESOURCES, mem_cap=getattr(_mem, "value", _mem), dry_run=DRY_RUN,
    argv=sys.argv, environ=os.environ,
)  # fmt: skip
for _line in _notes:
    print(_line, file=sys.stderr)
if _problems:
    sys.exit("ntkpipe: invalid config\n" + "\n".join(_problems))
WRITES = ntk_start.command_writes(sys.argv, dry_run=DRY_RUN, main_process=MAIN)
try:
    _note = ntk_start.take_lock(OUT) if WRITES else None
except LockedError as error:
    sys.exit(f"ntkpipe: {error}")
if _note:
    print(_note, file=sys.stderr)
if _busy := ntk_start.dry_run_beside_a_writer(OUT, dry_run=DRY_RUN, main_process=MAIN):
    sys.exit(_busy)
if MAIN and (_note := ntk_start.left_out_note(LAYOUT, RUNS)):
    print(_note, file=sys.stderr)
ENSEMBLES, _problems = ntk_start.ensemble_points(SWEEP, RUNS)
if _problems:
    sys.exit("ntkpipe: invalid config\n" + "\n".join(_problems))


# Scheduling settings, for `ntkpipe calibrate` (written when the workflow runs, not by -n).
onstart:
    if _gpu := ntk_start.placement_problem(
        RESOURCES, workflow.executor_plugin.name, SWEEP["name"]
    ):
        sys.exit(_gpu)
    _stop, _note = ntk_arrays.check_arrays(
        workflow.executor_plugin.name, workflow.executor_settings, PLAN
    )
    if _stop:
        sys.exit(_stop)
    if _note:
        print(_note, file=sys.stderr)
    ntk_start.record_scheduling(LAYOUT, RESOURCES)
    # A job above resources.max_runtime runs as segments, each a retry (ntkpipe.sweep.segments).
    for _rule, _retries in ntk_plan.segment_retries(
        PLAN, workflow.execution_settings.retries
    ).items():
        workflow.get_rule(_rule).restart_times = _retries
        print(
            f"ntkpipe: rule {_rule}: {_retries} retries (its jobs above "
            "resources.max_runtime run as segments, each a retry)",
            file=sys.stderr,
        )


# GPUs are a per-job ("local") resource: the main Snakemake does not count them across cluster
# jobs (SLURM does); without --resources gpu=N, N is the config's resources.gpu.
resource_scopes:
    gpu="local",


if RESOURCES["gpu"] and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", RESOURCES["gpu"])


wildcard_constraints:
    run=ntk_runs.RUN_ID_PATTERN,
    akey=ntk_runs.ANALYTIC_ID_PATTERN,
    point=ntk_runs.ANALYTIC_ID_PATTERN,
