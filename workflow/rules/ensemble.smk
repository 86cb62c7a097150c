# Fig. 2 / S1: an ensemble of networks on x(α) = αx⁽¹⁾ + (1 − α)x⁽²⁾ between two training points,
# against the NTK-GP (Eq. 14–15) and the NNGP (Eq. 13). One job per sweep point; only when
# ensemble.members > 0 (collect then takes every point's ensemble.zarr).


rule ensemble_config:
    """The config of one sweep point's ensemble (rewritten only when its content changes)."""
    output:
        RULES.stage_config_file("ensemble"),
    log:
        RULES.config_log("ensemble.json"),
    localrule: True
    conda:
        CONDA_ENV
    params:
        content=lambda wc: RULES.ensemble_json(wc.point),
    shell:
        WRITE_CONFIG


rule ensemble:
    """Train the ensemble (members vmapped in chunks of ensemble.batch); NTK-GP and NNGP."""
    input:
        run=RULES.stage_config_file("ensemble"),
    output:
        store=directory(RULES.stage_output("ensemble")),
    log:
        RULES.stage_log("ensemble"),
    benchmark:
        RULES.stage_benchmark("ensemble")
    priority: RULES.priority_of("ensemble")
    conda:
        CONDA_ENV
    threads: 2
    resources:
        **RULES.ensemble_resources(),
    shell:
        "ntkpipe ensemble --run {input.run} --out {output.store} --threads {threads} > {log} 2>&1"
