# Linearized training: f_lin = f₀ + ∇θf₀ · ω. Closed form (Eq. 8–11, discrete
# steps) for MSE with full-batch GD; direct optimization of f_lin otherwise.


rule linear:
    """The linearized network over training, at the same record steps as `train`."""
    input:
        unpack(RULES.stage_inputs("linear")),
    output:
        store=directory(RULES.stage_output("linear")),
    log:
        RULES.stage_log("linear"),
    benchmark:
        RULES.stage_benchmark("linear")
    priority: RULES.priority_of("linear")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **RULES.resources_of("linear"),
    params:
        inputs=RULES.stage_flags("linear"),
    shell:
        "ntkpipe linear --run {input.run} {params.inputs}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
