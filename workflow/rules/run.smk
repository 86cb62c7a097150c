# resources.jobs: runs — one job per run doing every stage of it in one process
# (ntkpipe.jobs.run): init → Θ̂₀ → train → Θ̂_T → f_lin → metrics, into the same stores, at the
# same paths and with the same numbers as the per-stage rules. For sweeps of thousands of runs:
# one DAG node and one process start per run instead of eight. The run's config reaches the job
# as a param, so Snakemake reruns it when the config changes (params trigger); the job then
# keeps the stores whose stage config is unchanged (e.g. init and Θ̂₀ after a new learning rate).


rule run:
    """Every stage of one run; keeps the stores that are complete and up to date."""
    input:
        unpack(RULES.stage_inputs("run")),
    output:
        store=directory(RULES.stage_output("run")),
    log:
        RULES.stage_log("run"),
    benchmark:
        RULES.stage_benchmark("run")
    conda:
        CONDA_ENV
    # One thread: this layout is for sweeps of many runs, so jobs side by side keep every core
    # busy, and a small run's start-up and compilation use one thread anyway (the default sweep:
    # 106 s against 128 s with two, benchmarks/bench_default_sweep.py). --set-threads run=N.
    threads: 1
    resources:
        **RULES.resources_of("run"),
    params:
        config=lambda wc: RULES.run_config_param(wc.run),
        folder=lambda wc: RULES.run_dir(wc.run),
        inputs=RULES.stage_flags("run"),
    shell:
        "ntkpipe run --config {params.config:q} --dir {params.folder} {params.inputs}"
        " --threads {threads} > {log} 2>&1"
