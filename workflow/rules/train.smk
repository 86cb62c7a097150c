# Real training: the network itself, from θ₀, with the run's optimizer and loss.


rule train:
    """Train all seeds of the run (vmapped); outputs, losses, weight changes over time."""
    input:
        unpack(stage_inputs("train")),
    output:
        store=directory(stage_output("train")),
    log:
        stage_log("train"),
    benchmark:
        stage_benchmark("train")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **resources_of("train"),
    params:
        inputs=stage_flags("train"),
    shell:
        "ntkpipe train --run {input.run} {params.inputs}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
