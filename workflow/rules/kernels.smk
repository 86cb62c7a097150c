# Empirical kernels Θ̂, K̂ at θ₀ and at the end of training (analytic Θ, K: analytic.smk).


rule kernel_init:
    """Θ̂₀ and K̂₀ (blocked), their spectrum and the critical learning rate."""
    input:
        unpack(stage_inputs("kernel_init")),
    output:
        store=directory(stage_output("kernel_init")),
    log:
        f"{OUT}/logs/kernel_init/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/kernel_init/{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **resources_of("kernel_init"),
    params:
        inputs=stage_flags("kernel_init"),
    shell:
        "ntkpipe kernels --run {input.run} {params.inputs}"
        " --out {output.store} --threads {threads} > {log} 2>&1"


rule kernel_final:
    """Θ̂_T and K̂_T at the trained parameters θ_T."""
    input:
        unpack(stage_inputs("kernel_final")),
    output:
        store=directory(stage_output("kernel_final")),
    log:
        f"{OUT}/logs/kernel_final/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/kernel_final/{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **resources_of("kernel_final"),
    params:
        inputs=stage_flags("kernel_final"),
    shell:
        "ntkpipe kernels --run {input.run} {params.inputs}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
