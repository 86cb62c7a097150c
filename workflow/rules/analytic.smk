# Infinite-width NNGP K and NTK Θ: one job per distinct (data, model) point, shared by every
# width under the NTK parameterization (ntkpipe.sweep.runs.analytic_id).


rule analytic_config:
    """The config of one analytic kernel (shared by every width of the NTK parameterization)."""
    output:
        RULES.stage_config_file("analytic"),
    log:
        RULES.config_log("analytic.json"),
    localrule: True
    conda:
        CONDA_ENV
    params:
        content=lambda wc: RULES.analytic_json(wc.akey),
    shell:
        WRITE_CONFIG


rule analytic:
    """Infinite-width NNGP K and NTK Θ on the train and test inputs."""
    input:
        run=RULES.stage_config_file("analytic"),
    output:
        store=directory(RULES.stage_output("analytic")),
    log:
        RULES.stage_log("analytic"),
    benchmark:
        RULES.stage_benchmark("analytic")
    priority: RULES.priority_of("analytic")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **RULES.resources_of("analytic"),
    shell:
        "ntkpipe analytic --run {input.run} --out {output.store} --threads {threads} > {log} 2>&1"
