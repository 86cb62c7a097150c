# resources.jobs: runs — one job per run doing every stage of it in one process
# (ntkpipe.jobs.run): init → Θ̂₀ → train → Θ̂_T → f_lin → metrics, into the same stores, at the
# same paths and with the same numbers as the per-stage rules. For sweeps of thousands of runs:
# one DAG node and one process start per run instead of eight. The run's config reaches the job
# as a param, so Snakemake reruns it when the config changes (params trigger); the job then
# keeps the stores whose stage config is unchanged (e.g. init and Θ̂₀ after a new learning rate).
#
# Stage reruns (ntkpipe.stage_reruns): `--forcerun train` makes the per-run job also a rule
# `train` (same output, inputs, params and command, ranked first, with `--redo train`);
# `--until kernel_init` adds a rule `kernel_init` writing that store (`ntkpipe run --until`).

from ntkpipe import stage_reruns as ntk_reruns

RERUNS = ntk_reruns.for_workflow(sys.argv, os.environ, main_process=MAIN)


# `run`, and under --forcerun <stage> the same rule under that stage's name, ranked first.
for _name in (*RERUNS.aliases, "run"):

    rule:
        """Every stage of one run; keeps the stores that are complete and up to date."""
        name:
            _name
        input:
            unpack(ntk_reruns.per_run_inputs(RULES, RERUNS)),
        output:
            store=directory(RULES.stage_output("run")),
        log:
            RULES.stage_log("run"),
        benchmark:
            RULES.stage_benchmark("run")
        priority: RULES.priority_of("run")
        conda:
            CONDA_ENV
        # One thread: this layout is for sweeps of many runs, so jobs side by side keep every
        # core busy, and a small run's start-up and compilation use one thread anyway (the
        # default sweep: 106 s against 128 s with two, benchmarks/bench_default_sweep.py).
        # --set-threads run=N.
        threads: 1
        resources:
            **RULES.resources_of("run"),
        params:
            config=lambda wc: RULES.run_config_param(wc.run),
            folder=lambda wc: RULES.run_dir(wc.run),
            inputs=ntk_reruns.per_run_flags(RULES, RERUNS),
        shell:
            "ntkpipe run --config {params.config:q} --dir {params.folder} {params.inputs}"
            " --threads {threads} > {log} 2>&1"


if RERUNS.aliases:
    workflow.ruleorder(*RERUNS.aliases, "run")


# --until <stage>: that stage's store, and those it reads, in one job per run.
for _stage in RERUNS.splits:

    rule:
        """One run's stage and the stages it reads (keeping those up to date)."""
        name:
            _stage
        input:
            unpack(ntk_reruns.until_inputs(RULES, RERUNS, _stage)),
        output:
            store=directory(RULES.stage_output(_stage)),
        log:
            RULES.stage_log(_stage),
        benchmark:
            RULES.stage_benchmark(_stage)
        priority: RULES.priority_of("run")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            **RULES.resources_of("run"),
        # The config is a param read with the input (Snakemake's params trigger leaves it out):
        # a new learning rate must not recompute Θ̂₀. Stale stores: ntkpipe.start.refresh.
        params:
            config=lambda wc, input: RULES.run_config_param(wc.run),
            folder=lambda wc: RULES.run_dir(wc.run),
            inputs=ntk_reruns.until_flags(RULES, _stage),
        shell:
            "ntkpipe run --config {params.config:q} --dir {params.folder} {params.inputs}"
            " --threads {threads} > {log} 2>&1"
