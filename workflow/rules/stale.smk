# Stores and config files that no longer match the sweep, found from their own records
# (ntkpipe.io.provenance), not from .snakemake/ metadata; the main Snakemake process of a real
# run rewrites and removes them at start. Uses the input functions of common.smk.


def stale_stores():
    """{store: why} of the stores that must be computed again, read from the stores' own records
    (ntkpipe.io.provenance), not from .snakemake/: a store whose config is not its job's config
    now (a changed sweep, a hand-edited run.json, a store of another run put at its path) or
    whose inputs changed since; and the stores that follow a missing or removed one (Snakemake
    would keep them, as their outputs exist: so a deleted store is recreated)."""
    from ntkpipe.io import provenance

    found = {}
    for run_id, run in RUNS.items():
        folder = LAYOUT.run_dir(run_id)
        if not folder.is_dir():
            continue
        configs = {s: ntk_config.stage_config(run.config, s) for s in ("init", "train")}
        gone = set()
        for row in ntk_stages.wanted(run.config):
            store = LAYOUT.store(row.rule, run_id)
            inputs = {}
            for one in ntk_stages.reads(row.rule, run.config):
                path = Path(_store_of_run(one.stage, run_id))
                inputs[path.name] = path
                if not path.exists():
                    gone.add(path.name)
            if not store.exists():
                gone.add(row.store)
                continue
            upstream = [name for name in inputs if name in gone]
            config = configs["init" if row.config_file == "model.json" else "train"]
            why = (
                f"{upstream[0]} is missing or computed again"
                if upstream
                else provenance.stale_reason(store, config, inputs)
            )
            if why:
                found[store] = why
                gone.add(row.store)
    return found


def sweep_json():
    """The content of sweep.json: the validated sweep (not sorted: the order of the axes
    matters)."""
    return json.dumps(SWEEP, indent=1)


def stale_config_files():
    """{config file: its content now} of the config files (sweep.json, each run's model.json
    and run.json, each analytic.json) that differ from the sweep (hand-edited, or from an older
    config); rewriting them makes Snakemake rerun what reads them (their time is newer), without
    .snakemake/ metadata."""
    found = {}
    for path, content in [(LAYOUT.sweep_json, sweep_json())] + [
        (LAYOUT.config_file("analytic", akey), analytic_json(akey)) for akey in ANALYTIC
    ]:
        if path.is_file() and path.read_text() != content:
            found[path] = content
    for run_id in RUNS:
        for stage in ("init", "train"):
            path = LAYOUT.config_file(stage, run_id)
            if path.is_file():
                content = stage_json(run_id, stage)
                if path.read_text() != content:
                    found[path] = content
    return found


if workflow.is_main_process and LAYOUT.runs.is_dir():
    _dry = not WRITES
    _when = " (when the sweep runs; this command changes nothing)" if _dry else ""
    for _path, _content in stale_config_files().items():
        if not _dry:
            ntk_config.write_if_changed(_path, _content)
        print(
            f"ntkpipe: {_path}: differs from the config; rewritten{_when}",
            file=sys.stderr,
        )
    for _store, _why in stale_stores().items():
        if _dry:
            print(
                f"ntkpipe: {_store}: {_why}; it will be computed again", file=sys.stderr
            )
            continue
        print(
            f"ntkpipe: {_store}: {_why}; removed, it is computed again", file=sys.stderr
        )
        shutil.rmtree(_store, ignore_errors=True)
    # Snakemake does not rerun a job whose output exists because an input is missing (a new
    # run, a removed store), nor what follows it (and, with .snakemake/ metadata, not for an
    # input touched with unchanged content): the summary, figures and report go, and are made
    # again from every run.
    _missing = [
        p for p in per_run("compare") + ensemble_stores() if not Path(p).exists()
    ]
    _derived = LAYOUT.derived
    if _missing and any(p.exists() for p in _derived):
        _note = (
            f"{_missing[0]} and {len(_missing) - 1} more"
            if len(_missing) > 1
            else _missing[0]
        )
        for _path in _derived if not _dry else []:
            if _path.is_dir():
                shutil.rmtree(_path, ignore_errors=True)
            else:
                _path.unlink(missing_ok=True)
        print(
            f"ntkpipe: {LAYOUT.summary}: {_note} missing; computed again{_when}",
            file=sys.stderr,
        )
