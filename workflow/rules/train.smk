# Real training: the network itself, from θ₀, with the run's optimizer and loss.


rule train:
    """Train all seeds of the run (vmapped); outputs, losses, weight changes over time."""
    input:
        unpack(RULES.stage_inputs("train")),
    output:
        store=directory(RULES.stage_output("train")),
    log:
        RULES.stage_log("train"),
    benchmark:
        RULES.stage_benchmark("train")
    priority: RULES.priority_of("train")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **RULES.resources_of("train"),
    params:
        inputs=RULES.stage_flags("train"),
    shell:
        "ntkpipe train --run {input.run} {params.inputs}"
        " --out {output.store} --threads {threads} > {log} 2>&1"
