# Per-run comparison of f and f_lin (resources.jobs: stages; see run.smk for the other layout).


rule compare:
    """Metrics of one run: losses of f and f_lin, RMSE between them, weight and kernel changes."""
    input:
        unpack(RULES.stage_inputs("compare")),
    output:
        store=directory(RULES.stage_output("compare")),
    log:
        RULES.stage_log("compare"),
    priority: RULES.priority_of("compare")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **RULES.resources_of("compare"),
    params:
        inputs=RULES.stage_flags("compare"),
    shell:
        "ntkpipe compare --run {input.run} {params.inputs}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
