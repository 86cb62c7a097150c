# The sweep summary, figures and the report.


rule collect:
    """All runs' metrics in one dataset whose dimensions are the sweep axes."""
    input:
        sweep=stage_config_file("collect"),
        metrics=per_run(ntk_stages.BY_RULE["compare"].store),
        ensembles=ensemble_stores(),
    output:
        store=directory(stage_output("collect")),
    log:
        f"{OUT}/logs/collect.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **sweep_resources_of("collect"),
    params:
        runs_dir=lambda wc, input: str(Path(input.sweep).parent / "runs"),
        ensembles=f"--ensembles {OUT}/ensembles" if ENSEMBLES else "",
    shell:
        "ntkpipe collect --sweep {input.sweep} --runs {params.runs_dir} {params.ensembles}"
        " --out {output.store} > {log} 2>&1"


rule sweep_config:
    """The validated sweep config with every default filled in."""
    output:
        stage_config_file("collect"),
    log:
        f"{OUT}/logs/config/sweep.log",
    localrule: True
    params:
        content=sweep_json(),
    run:
        note_config_written(output[0], params.content, log[0])


rule figures:
    """The paper's figures for this sweep (seaborn, SVG)."""
    input:
        summary=stage_output("collect"),
    output:
        figures=report(
            directory(stage_output("figures")),
            patterns=["{name}.svg"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{OUT}/logs/figures.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **sweep_resources_of("figures"),
    shell:
        "ntkpipe figures --summary {input.summary} --out {output.figures} > {log} 2>&1"


rule report:
    """One self-contained HTML page: claims, config, runs, figures, summary; and the claims
    as claims.tsv next to it (written by the same job)."""
    input:
        summary=stage_output("collect"),
        figures=stage_output("figures"),
    output:
        html=report(
            stage_output("report"), caption="../report/report.rst", category="Report"
        ),
        claims=f"{OUT}/claims.tsv",
    log:
        f"{OUT}/logs/report.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **sweep_resources_of("report"),
    shell:
        "ntkpipe report --summary {input.summary} --figures {input.figures}"
        " --out {output.html} > {log} 2>&1"
