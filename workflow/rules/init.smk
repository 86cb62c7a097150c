# Init-sampling: θ₀ for every seed of a run, and f₀ on the train and test inputs.


rule model_config:
    """The config that init-sampling and the initial kernels depend on.

    Rewritten only when its content changes (params trigger), so that changing
    e.g. the learning rate does not rerun init-sampling.
    """
    output:
        RULES.stage_config_file("init"),
    log:
        RULES.config_log("model.json"),
    localrule: True
    conda:
        CONDA_ENV
    params:
        content=lambda wc: RULES.stage_json(wc.run, "init"),
    shell:
        WRITE_CONFIG


rule run_config:
    """The complete resolved config of a run (training and later stages)."""
    output:
        RULES.stage_config_file("train"),
    log:
        RULES.config_log("run.json"),
    localrule: True
    conda:
        CONDA_ENV
    params:
        content=lambda wc: RULES.stage_json(wc.run, "train"),
    shell:
        WRITE_CONFIG


rule init:
    """Sample θ₀ (all seeds of the run, vmapped) and evaluate f₀."""
    input:
        unpack(RULES.stage_inputs("init")),
    output:
        store=directory(RULES.stage_output("init")),
    log:
        RULES.stage_log("init"),
    benchmark:
        RULES.stage_benchmark("init")
    priority: RULES.priority_of("init")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **RULES.resources_of("init"),
    shell:
        "ntkpipe init --run {input.run} --out {output.store} --threads {threads} > {log} 2>&1"
