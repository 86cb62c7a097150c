# The sweep summary, figures and the report.


rule collect:
    """All runs' metrics in one dataset whose dimensions are the sweep axes."""
    input:
        sweep=RULES.stage_config_file("collect"),
        metrics=RULES.per_run("compare"),
        ensembles=RULES.ensemble_stores(),
    output:
        store=directory(RULES.stage_output("collect")),
    log:
        RULES.stage_log("collect"),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **RULES.sweep_resources_of("collect"),
    params:
        runs_dir=lambda wc, input: str(Layout(Path(input.sweep).parent).runs),
        ensembles=f"--ensembles {LAYOUT.ensembles}" if ENSEMBLES else "",
    shell:
        "ntkpipe collect --sweep {input.sweep} --runs {params.runs_dir} {params.ensembles}"
        " --out {output.store} > {log} 2>&1"


rule sweep_config:
    """The validated sweep config with every default filled in."""
    output:
        RULES.stage_config_file("collect"),
    log:
        RULES.config_log("sweep.json"),
    localrule: True
    conda:
        CONDA_ENV
    params:
        content=ntk_start.sweep_json(SWEEP),
    shell:
        WRITE_CONFIG


rule figures:
    """The paper's figures for this sweep (seaborn, SVG)."""
    input:
        summary=RULES.stage_output("collect"),
    output:
        figures=report(
            directory(RULES.stage_output("figures")),
            patterns=["{name}.svg"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        RULES.stage_log("figures"),
    conda:
        CONDA_ENV
    # One process per figure at a time, up to two (the default sweep's seven: 19 s on one core).
    threads: 2
    resources:
        **RULES.sweep_resources_of("figures"),
    shell:
        "ntkpipe figures --summary {input.summary} --out {output.figures}"
        " --threads {threads} > {log} 2>&1"


rule report:
    """One self-contained HTML page: claims, config, runs, figures, summary; and the claims
    as claims.tsv next to it (written by the same job)."""
    input:
        summary=RULES.stage_output("collect"),
        figures=RULES.stage_output("figures"),
    output:
        html=report(
            RULES.stage_output("report"),
            caption="../report/report.rst",
            category="Report",
        ),
        claims=RULES.stage_also_written("report")[0],
    log:
        RULES.stage_log("report"),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **RULES.sweep_resources_of("report"),
    shell:
        "ntkpipe report --summary {input.summary} --figures {input.figures}"
        " --out {output.html} > {log} 2>&1"
