# Per-run comparison of f and f_lin (resources.jobs: stages; see run.smk for the other layout).


rule compare:
    """Metrics of one run: losses of f and f_lin, RMSE between them, weight and kernel changes."""
    input:
        run=f"{OUT}/runs/{{run}}/run.json",
        train=f"{OUT}/runs/{{run}}/train.zarr",
        linear=f"{OUT}/runs/{{run}}/linear.zarr",
        kernel_init=initial_kernel_of_run,
        kernel_final=final_kernel_of_run,
        analytic=analytic_of_run,
    output:
        store=directory(f"{OUT}/runs/{{run}}/metrics.zarr"),
    log:
        f"{OUT}/logs/compare/{{run}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **resources_of("compare"),
    params:
        optional=lambda wc, input: " ".join(
            f"--{name.replace('_', '-')} {input[name]}"
            for name in ("kernel_init", "kernel_final", "analytic")
            if input.get(name)
        ),
    shell:
        "ntkpipe compare --run {input.run} --train {input.train} --linear {input.linear}"
        " {params.optional}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
