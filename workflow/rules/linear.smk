# Linearized training: f_lin = f₀ + ∇θf₀ · ω. Closed form (Eq. 8–11, discrete
# steps) for MSE with full-batch GD; direct optimization of f_lin otherwise.


rule linear:
    """The linearized network over training, at the same record steps as `train`."""
    input:
        run=f"{OUT}/runs/{{run}}/run.json",
        init=f"{OUT}/runs/{{run}}/init.zarr",
        kernel=initial_kernel_of_run,
        analytic=analytic_of_run,
    output:
        store=directory(f"{OUT}/runs/{{run}}/linear.zarr"),
    log:
        f"{OUT}/logs/linear/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/linear/{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **resources_of("linear"),
    params:
        optional=lambda wc, input: " ".join(
            f"--{name} {input[name]}"
            for name in ("kernel", "analytic")
            if input.get(name)
        ),
    shell:
        "ntkpipe linear --run {input.run} --init {input.init} {params.optional}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
