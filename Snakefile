# ntkpipe: wide networks evolve as linear models (Lee et al. 2019), as a sweep.
#
#   snakemake --cores all                                   # the default sweep (config/config.yaml)
#   snakemake --cores all --configfile config/small/fig1.yaml
#   snakemake --workflow-profile workflow/profiles/slurm --profile ntkpipe-site --configfile ...
#
# Stages: init-sampling → empirical and analytic kernels → real training →
# linearized training → per-run comparison → summary, figures, HTML report; each stage of a
# run is one job, or (resources.jobs: runs) all of a run's stages are one job.


import sys

from snakemake.utils import min_version

from ntkpipe import stage_reruns as ntk_reruns
from ntkpipe.io import invocations as ntk_invocations

# 9.17: a rule's priority may be a function (the longest jobs first, ntkpipe.rules.priority_of)
min_version("9.17")


include: "workflow/rules/config.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/stale.smk"


# The user's command, once per sweep start, for the report's provenance: WRITES holds only in
# Snakemake's main process (never a job's own snakemake) of a command that runs jobs.
if WRITES:
    ntk_invocations.record(OUT, sys.argv)


# resources.jobs: one job per stage of a run (the default), or one job per run (run.smk).
if JOBS_PER_STAGE:

    include: "workflow/rules/init.smk"
    include: "workflow/rules/kernels.smk"
    include: "workflow/rules/train.smk"
    include: "workflow/rules/linear.smk"
    include: "workflow/rules/compare.smk"

else:

    include: "workflow/rules/run.smk"


include: "workflow/rules/analytic.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        report=RULES.stage_output("report"),


# --forcerun / --until names that are no rule (a misspelt stage): said with the stage names.
if MAIN and (
    _bad := ntk_reruns.problems(
        sys.argv, [r.name for r in workflow.rules], per_run_layout=not JOBS_PER_STAGE
    )
):
    sys.exit("\n".join(f"ntkpipe: {line}" for line in _bad))


# At the end of a successful run: where the report is (and how to see where the sweep stands).
onsuccess:
    if Path(OUT, "report.html").exists():
        print(f"ntkpipe: the report: {Path(OUT, 'report.html').resolve()}")
    print(f"ntkpipe: where the sweep stands: ntkpipe status {OUT}")
