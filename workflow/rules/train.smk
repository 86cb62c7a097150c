# Real training: the network itself, from θ₀, with the run's optimizer and loss.


rule train:
    """Train all seeds of the run (vmapped); outputs, losses, weight changes over time."""
    input:
        run=f"{OUT}/runs/{{run}}/run.json",
        init=f"{OUT}/runs/{{run}}/init.zarr",
    output:
        store=directory(f"{OUT}/runs/{{run}}/train.zarr"),
    log:
        f"{OUT}/logs/train/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **resources_of("train"),
    shell:
        "ntkpipe train --run {input.run} --init {input.init}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
