# Empirical kernels Θ̂, K̂ at θ₀ and at the end of training (analytic Θ, K: analytic.smk).


rule kernel_init:
    """Θ̂₀ and K̂₀ (blocked), their spectrum and the critical learning rate."""
    input:
        unpack(RULES.stage_inputs("kernel_init")),
    output:
        store=directory(RULES.stage_output("kernel_init")),
    log:
        RULES.stage_log("kernel_init"),
    benchmark:
        RULES.stage_benchmark("kernel_init")
    priority: RULES.priority_of("kernel_init")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **RULES.resources_of("kernel_init"),
    params:
        inputs=RULES.stage_flags("kernel_init"),
    shell:
        "ntkpipe kernels --run {input.run} {params.inputs}"
        " --out {output.store} --threads {threads} > {log} 2>&1"


rule kernel_final:
    """Θ̂_T and K̂_T at the trained parameters θ_T."""
    input:
        unpack(RULES.stage_inputs("kernel_final")),
    output:
        store=directory(RULES.stage_output("kernel_final")),
    log:
        RULES.stage_log("kernel_final"),
    benchmark:
        RULES.stage_benchmark("kernel_final")
    priority: RULES.priority_of("kernel_final")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **RULES.resources_of("kernel_final"),
    params:
        inputs=RULES.stage_flags("kernel_final"),
    shell:
        "ntkpipe kernels --run {input.run} {params.inputs}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
