# The sweep as the workflow reads it, before any job: ntkpipe.workflow_start.begin reads and
# checks the config (files in order, then --config overrides; without --configfile the default
# sweep), plans the jobs, checks their memory, takes the results folder's lock; (stale.smk)
# stale stores are moved aside. A bad config stops here, naming the field, the value and what is
# allowed, and nothing is written. Paths and input functions: common.smk. The rule files hold
# only rules.

import os
import sys

from ntkpipe import start as ntk_start
from ntkpipe import workflow_start
from ntkpipe.sweep import runs as ntk_runs
from ntkpipe.sweep.layout import Layout

# A job's stderr stays open as descriptor 3 after the rules send its output to its log: ntkpipe
# writes its error there too (ntkpipe.cli.report_error). Bash's strict mode as Snakemake's.
shell.prefix("set -euo pipefail; export NTKPIPE_ERROR_FD=3; exec 3>&2; ")

CONDA_ENV = "../envs/ntkpipe.yaml"  # relative to workflow/rules/
START = workflow_start.begin(workflow, sys.argv, os.environ)  # exits on a problem
SWEEP, RESOURCES, RUNS, LAYOUT = START.sweep, START.settings, START.runs, START.layout
PLAN = START.plan  # every job, as the cost model plans it (the main process only)
ANALYTIC, ENSEMBLES = START.analytic, START.ensembles
MAIN, WRITES = START.main, START.writes
OUT = str(LAYOUT.root)
JOBS_PER_STAGE = START.jobs_per_stage  # else one job per run (run.smk)
config.clear()
config.update(SWEEP)


# Scheduling settings, for `ntkpipe calibrate` (written when the workflow runs, not by -n).
onstart:
    if _gpu := ntk_start.placement_problem(
        RESOURCES, workflow.executor_plugin.name, SWEEP["name"]
    ):
        sys.exit(_gpu)
    workflow_start.check_forced_inputs(START, workflow.dag_settings)
    ntk_start.record_scheduling(LAYOUT, RESOURCES)


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
