# Empirical kernels Θ̂, K̂ at θ₀ and at the end of training (analytic Θ, K: analytic.smk).


rule kernel_init:
    """Θ̂₀ and K̂₀ (blocked), their spectrum and the critical learning rate."""
    input:
        run=f"{OUT}/runs/{{run}}/model.json",
        init=f"{OUT}/runs/{{run}}/init.zarr",
    output:
        store=directory(f"{OUT}/runs/{{run}}/kernel_init.zarr"),
    log:
        f"{OUT}/logs/kernel_init/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/kernel_init/{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **resources_of("kernel_init"),
    shell:
        "ntkpipe kernels --run {input.run} --params {input.init}"
        " --out {output.store} --threads {threads} > {log} 2>&1"


rule kernel_final:
    """Θ̂_T and K̂_T at the trained parameters θ_T."""
    input:
        run=f"{OUT}/runs/{{run}}/run.json",
        trained=f"{OUT}/runs/{{run}}/train.zarr",
    output:
        store=directory(f"{OUT}/runs/{{run}}/kernel_final.zarr"),
    log:
        f"{OUT}/logs/kernel_final/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/kernel_final/{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **resources_of("kernel_final"),
    shell:
        "ntkpipe kernels --run {input.run} --params {input.trained}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
