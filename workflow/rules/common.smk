# Sweep expansion, paths and input functions. The rule files hold only rules.
#
# ntkpipe reads the config itself, once (ntkpipe.sweep.loading; Snakemake's own reading, with
# YAML 1.1 numbers and duplicate keys accepted, is discarded): the --configfile files in the
# order given (later files overlay earlier ones, mappings merged key by key), then the
# --config overrides, coerced through the schema (--config 'training={learning_rate: 0.1}'
# sets the number 0.1). Without any --configfile the default sweep config/config.yaml is used,
# and only then; a config without `name:` is refused, never merged with the default sweep.
#
# The config is validated before any job starts (schema with additionalProperties: false plus
# cross-field checks in ntkpipe.sweep.validate and the cost model's memory estimate against
# this machine or --resources mem_mb): a bad config stops Snakemake with a message naming the
# field, the value and what is allowed, and nothing is written.

import contextlib
import functools
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

from ntkpipe.sweep import runs as ntk_config
from ntkpipe.sweep import cost as ntk_cost
from ntkpipe.sweep import ensemble as ntk_ensemble
from ntkpipe.sweep import loading as ntk_loading
from ntkpipe.sweep import plan as ntk_plan
from ntkpipe.sweep import stage_table as ntk_stages
from ntkpipe.sweep import validate as ntk_validate
from ntkpipe.sweep import validate_checks as ntk_checks
from ntkpipe.errors import ConfigError

# A job's own stderr stays open as descriptor 3 after the rules send its output to its log
# (`> {log} 2>&1`): ntkpipe writes its error there too (ntkpipe.cli.report_error), so Snakemake
# shows it even when the log cannot be written (a full disk). Bash's strict mode as Snakemake's.
shell.prefix("set -euo pipefail; export NTKPIPE_ERROR_FD=3; exec 3>&2; ")

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
CONDA_ENV = "../envs/ntkpipe.yaml"  # relative to workflow/rules/

# The `resources` section (GPUs) is read here and kept out of the run configs: changing it
# changes how jobs are scheduled, never what they compute, so it must not rerun anything.
# A dry run (snakemake -n) plans without the data files: missing ones are a warning; a real
# run refuses them here, before any job.
DRY_RUN = workflow.output_settings.dryrun
MAIN = workflow.is_main_process  # not a job's own snakemake (on a SLURM node)
with (
    warnings.catch_warnings(record=True) as _warned,
    ntk_validate.data_files_optional() if DRY_RUN else contextlib.nullcontext(),
):
    warnings.simplefilter("always", ntk_validate.MissingDataWarning)
    try:
        _RAW, CONFIG_FILES = ntk_loading.resolve(
            workflow.config_settings.configfiles,
            workflow.config_settings.config,
            default=DEFAULT_CONFIG,
            schema=ntk_config.load_schema(),
        )
        RESOURCES = ntk_cost.load_settings(_RAW.pop("resources", None))
        SWEEP = ntk_config.load_config(_RAW)
        RUNS = {run.run_id: run for run in ntk_config.expand_runs(SWEEP)}
        PLAN = ntk_plan.sweep_jobs(SWEEP, RESOURCES, RUNS.values()) if MAIN else []
    except ConfigError as error:
        sys.exit(f"ntkpipe: invalid config\n{error}")
config.clear()
config.update(SWEEP)
for _message in sorted({str(w.message) for w in _warned}):
    print(
        f"ntkpipe: warning (dry run): {_message}; a real run stops here",
        file=sys.stderr,
    )
_over = ntk_plan.limit_problems(PLAN, RESOURCES)
if _over:
    sys.exit(
        "ntkpipe: jobs a partition would refuse (nothing was submitted):\n"
        + "\n".join(_over)
    )
if PLAN:
    print(
        f"ntkpipe plan: {ntk_plan.summary_line(PLAN)} (ntkpipe plan: per rule)",
        file=sys.stderr,
    )

OUT = f"results/{SWEEP['name']}"


# Which rules run on GPUs: the device kind of each benchmark file, for `ntkpipe calibrate`
# (written when the workflow runs, not by a dry run or --lint).
onstart:
    _scheduling = {key: RESOURCES[key] for key in ("gpu", "gpu_rules", "jobs")}
    Path(OUT).mkdir(parents=True, exist_ok=True)
    ntk_config.write_if_changed(
        f"{OUT}/resources.json", json.dumps(_scheduling) + "\n"
    )


JOBS_PER_STAGE = RESOURCES["jobs"] == "stages"  # else one job per run (run.smk)
LARGE_SWEEP_RUNS = 2000  # from here on, one job per stage costs minutes of DAG building
# Every job reads and fills one JAX compilation cache (ntkpipe.cli.configure_compilation_cache):
# only the first job of a kind compiles. Jobs inherit the variable (SLURM: --export=ALL).
os.environ.setdefault("NTKPIPE_JAX_CACHE", str(Path("results/.jax_cache").resolve()))
ANALYTIC = {ntk_config.analytic_id(run): run for run in RUNS.values()}
if JOBS_PER_STAGE and len(RUNS) >= LARGE_SWEEP_RUNS:
    print(
        f"ntkpipe: {len(RUNS)} runs, one job per stage: about {8 * len(RUNS)} jobs. For sweeps "
        "this large, `resources: {jobs: runs}` (one job per run) builds the DAG about 7 times "
        "faster and starts one process per run instead of six (README, 'Sweeps of thousands "
        "of runs').",
        file=sys.stderr,
    )
# Memory: every run's jobs, as the cost model estimates them, must fit the --resources mem_mb
# cap, or (jobs on this machine) this machine's memory.
_MEM_CAP = workflow.global_resources.get("mem_mb")
_MEM_CAP = getattr(_MEM_CAP, "value", _MEM_CAP)
_MEM_WHERE = "--resources mem_mb"
# (At parse time Snakemake has not chosen its executor yet: the command line tells whether jobs
# may run elsewhere, e.g. --profile slurm.)
_ELSEWHERE = {
    "--profile",
    "--executor",
    "-e",
    "--workflow-profile",
    "--slurm",
    "--cluster",
}
_ELSEWHERE = os.environ.get("SNAKEMAKE_PROFILE") or any(
    a.split("=")[0] in _ELSEWHERE for a in sys.argv[1:]
)
_ON_THIS_MACHINE = _MEM_CAP is None and not _ELSEWHERE
if _ON_THIS_MACHINE:
    _MEM_CAP, _MEM_WHERE = ntk_checks.machine_memory_mb(), "this machine's memory"
_problems = ntk_checks.memory_problems(RUNS.values(), RESOURCES, _MEM_CAP, _MEM_WHERE)
if _problems and DRY_RUN and _ON_THIS_MACHINE:  # planning here a sweep meant for elsewhere
    for _problem in _problems:
        print(f"ntkpipe: warning (dry run): {_problem}; a real run here stops", file=sys.stderr)
elif _problems:
    sys.exit("ntkpipe: invalid config\n" + "\n".join(_problems))
# One writer per results folder (ntkpipe.io.lock), whatever the working directory: taken by the
# main Snakemake process of a run (not by cluster jobs, not by a dry run) and held until it exits.
_NOT_A_RUN = {
    "--dry-run",
    "--dryrun",
    "--dry_run",
    "--touch",
    "--lint",
    "--unlock",
    "--dag",
}
_NOT_A_RUN |= {
    "--rulegraph",
    "--filegraph",
    "--summary",
    "--detailed-summary",
    "--list",
}
_NOT_A_RUN |= {"--list-rules", "--delete-all-output", "--delete-temp-output"}
_NOT_A_RUN |= {
    "--cleanup-metadata",
    "--list-changes",
    "--lc",
    "--li",
    "--lp",
    "--report",
}


def _writes(argv):
    """Whether this Snakemake command runs jobs, so it may take the results folder's lock and
    remove stale stores. At parse time `workflow.dryrun` is not known yet (Snakemake sets its
    executor after reading the Snakefile): the command line tells (-n, --dry-run, --touch, …).
    """
    for arg in argv[1:]:
        if arg.split("=")[0] in _NOT_A_RUN:
            return False
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha():
            if set(arg[1:]) & set("ntSDl"):
                return False
    return True


WRITES = workflow.is_main_process and not DRY_RUN and _writes(sys.argv)
if WRITES:
    from ntkpipe.io import lock as ntk_lock

    try:
        _LOCK = ntk_lock.acquire(OUT)
    except ntk_lock.LockedError as error:
        sys.exit(f"ntkpipe: {error}")
    if _LOCK.note:
        print(_LOCK.note, file=sys.stderr)


def stale_stores():
    """{store: why} of the stores that must be computed again, read from the stores' own records
    (ntkpipe.io.provenance), not from .snakemake/: a store whose config is not its job's config
    now (a changed sweep, a hand-edited run.json, a store of another run put at its path) or
    whose inputs changed since; and the stores that follow a missing or removed one (Snakemake
    would keep them, as their outputs exist: so a deleted store is recreated)."""
    from ntkpipe.io import provenance

    found = {}
    for run_id, run in RUNS.items():
        folder = Path(run_dir(run_id))
        if not folder.is_dir():
            continue
        configs = {s: ntk_config.stage_config(run.config, s) for s in ("init", "train")}
        gone = set()
        for row in ntk_stages.wanted(run.config):
            store = folder / row.store
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


# Fig. 2 / S1: one ensemble per sweep point (the first seed chunk's run config stands for it).
ENSEMBLES = {}
if SWEEP["ensemble"]["members"] > 0:
    for _run in RUNS.values():
        ENSEMBLES.setdefault(ntk_ensemble.point_id(_run.run_id), _run)
    _problems = {
        p for _run in ENSEMBLES.values() for p in ntk_ensemble.check_config(_run.config)
    }
    if _problems:
        sys.exit("ntkpipe: invalid config\n" + "\n".join(sorted(_problems)))


# GPUs are a per-job ("local") resource: the main Snakemake does not count them across
# cluster jobs (SLURM does), and a group job (--groups / --group-components) asks for at most
# `--resources gpu=N` of them, running its GPU jobs one after another instead of summing their
# requests. Without --resources gpu=N, N is the config's resources.gpu (locally: at most
# that many GPUs in use at once; pass --resources gpu=<GPUs of the machine> to use more).


resource_scopes:
    gpu="local",


if RESOURCES["gpu"] and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", RESOURCES["gpu"])


wildcard_constraints:
    run=ntk_config.RUN_ID_PATTERN,
    akey=ntk_config.ANALYTIC_ID_PATTERN,
    point=ntk_config.ANALYTIC_ID_PATTERN,


# ---------------------------------------------------------------- paths


def run_dir(run_id):
    return f"{OUT}/runs/{run_id}"


def analytic_dir(akey):
    return f"{OUT}/analytic/{akey}"


def per_run(name):
    """Every run's file `name` (for collect)."""
    return [f"{run_dir(run_id)}/{name}" for run_id in RUNS]


# ---------------------------------------------------------------- configs as params


def stage_json(run_id, stage):
    """The part of a run's resolved config that `stage` depends on, as JSON."""
    return ntk_config.to_json(ntk_config.stage_config(RUNS[run_id].config, stage))


def run_config_param(run_id):
    """A run's full resolved config (its run.json) as compact JSON, the param of the `run` rule.

    Compact (no indentation) because Python's JSON encoder is several times faster without it,
    and this is computed for every job when the DAG is built; the job writes run.json itself.
    """
    config = ntk_config.stage_config(RUNS[run_id].config, "train")
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def analytic_json(akey):
    return ntk_config.to_json(
        ntk_config.stage_config(ANALYTIC[akey].config, "analytic")
    )


def note_config_written(path, content, log):
    """Write a config file only if its content changed; say which in the rule's log."""
    changed = ntk_config.write_if_changed(path, content)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text(f"{path}: {'written' if changed else 'unchanged'}\n")


# ---------------------------------------------------------------- inputs and outputs
# Every rule's inputs and output store come from the stage table (ntkpipe.sweep.stage_table);
# tests/sweep/test_stage_table.py checks the rules against it.

_SCOPE_FOLDERS = {
    "run": f"{OUT}/runs/{{run}}",
    "analytic": f"{OUT}/analytic/{{akey}}",
    "point": f"{OUT}/ensembles/{{point}}",
    "sweep": OUT,
}


def stage_output(rule):
    """The file or folder `rule` writes, with its wildcards (the rule's output)."""
    row = ntk_stages.stage(rule)
    return f"{_SCOPE_FOLDERS[row.scope]}/{row.store}"


def stage_config_file(rule):
    """The config file `rule` reads (its input `run`), with its wildcards."""
    row = ntk_stages.stage(rule)
    return f"{_SCOPE_FOLDERS[row.scope]}/{row.config_file}"


def stage_inputs(rule):
    """The input function of a per-run rule: its config file (`run`) and the stores it reads
    with the run's config (read per run: the kernels switches may be sweep axes), {name: path}.
    """
    row = ntk_stages.stage(rule)
    config_file = row.config_file

    def inputs(wildcards):
        run_id = wildcards.run
        out = {"run": f"{run_dir(run_id)}/{config_file}"} if config_file else {}
        for one in ntk_stages.reads(rule, RUNS[run_id].config):
            out[one.name] = _store_of_run(one.stage, run_id)
        return out

    return inputs


def stage_flags(rule):
    """A params function: the command's flags for the input stores the rule was given, e.g.
    `--init .../init.zarr --kernel .../kernel_init.zarr` (none for a store the run does not
    read)."""
    row = ntk_stages.stage(rule)

    def flags(wildcards, input):
        return " ".join(
            f"{one.flag} {input[one.name]}" for one in row.inputs if input.get(one.name)
        )

    return flags


def _store_of_run(stage, run_id):
    store = ntk_stages.BY_RULE[stage].store
    if stage == "analytic":
        return f"{analytic_dir(_analytic_id(run_id))}/{store}"
    return f"{run_dir(run_id)}/{store}"


@functools.cache
def _analytic_id(run_id):
    return ntk_config.analytic_id(RUNS[run_id])


def ensemble_stores(wildcards=None):
    """Every sweep point's ensemble.zarr (for collect); [] when ensemble.members is 0."""
    store = ntk_stages.BY_RULE["ensemble"].store
    return [f"{OUT}/ensembles/{point}/{store}" for point in ENSEMBLES]


def ensemble_json(point):
    """The ensemble's config: the first seed chunk's run config without its seeds."""
    return ntk_config.to_json(
        ntk_config.stage_config(ENSEMBLES[point].config, "ensemble")
    )


# ---------------------------------------------------------------- resources (cost model)


def resources_of(rule_name):
    """mem_mb, runtime (and gpu when the config asks) of a per-run rule, from ntkpipe.sweep.cost.

    mem_mb doubles and runtime grows with each attempt, so a job killed for running out of
    memory or time comes back bigger (--retries, or the SLURM profile's retries).
    """
    ntk_stages.stage(rule_name)  # a rule of the stage table

    def mem_mb(wildcards, attempt):
        return _rule_resources(wildcards, rule_name, attempt)["mem_mb"]

    def runtime(wildcards, attempt):
        return _rule_resources(wildcards, rule_name, attempt)["runtime"]

    return {"mem_mb": mem_mb, "runtime": runtime, **_gpu_of(rule_name)}


def _gpu_of(rule_name):
    """{"gpu": N} for a rule the config gives GPUs to (resources.gpu_rules), else {}."""
    if RESOURCES["gpu"] and rule_name in RESOURCES["gpu_rules"]:
        return {"gpu": RESOURCES["gpu"]}
    return {}


def sweep_resources_of(rule_name):
    """mem_mb and runtime of a sweep-level rule (collect, figures, report)."""

    def mem_mb(wildcards, attempt):
        return _sweep_resources(rule_name, attempt)["mem_mb"]

    def runtime(wildcards, attempt):
        return _sweep_resources(rule_name, attempt)["runtime"]

    return {"mem_mb": mem_mb, "runtime": runtime}


def _sweep_resources(rule_name, attempt):
    return ntk_cost.sweep_resources(SWEEP, len(RUNS), rule_name, attempt, RESOURCES)


def ensemble_resources():
    """Resources of an ensemble job: memory of ensemble.batch members, time of all of them."""

    def mem_mb(wildcards, attempt):
        return _ensemble_resources(wildcards.point, attempt)["mem_mb"]

    def runtime(wildcards, attempt):
        return _ensemble_resources(wildcards.point, attempt)["runtime"]

    return {"mem_mb": mem_mb, "runtime": runtime, **_gpu_of("ensemble")}


@functools.cache
def _ensemble_resources(point, attempt):
    config = ENSEMBLES[point].config
    return ntk_cost.ensemble_resources(config, SWEEP["ensemble"], attempt, RESOURCES)


def _rule_resources(wildcards, rule_name, attempt):
    if hasattr(wildcards, "run"):
        return _resources_cached("run", wildcards.run, rule_name, attempt)
    return _resources_cached("akey", wildcards.akey, rule_name, attempt)


@functools.cache
def _resources_cached(kind, key, rule_name, attempt):
    """Snakemake asks for each resource of each job separately: compute them once."""
    config = (RUNS if kind == "run" else ANALYTIC)[key].config
    return ntk_cost.rule_resources(config, rule_name, attempt, RESOURCES)


# ---------------------------------------------------------------- stale stores (run last: uses the
# input functions above)


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
    for path, content in [(Path(OUT, "sweep.json"), sweep_json())] + [
        (Path(analytic_dir(akey), "analytic.json"), analytic_json(akey))
        for akey in ANALYTIC
    ]:
        if path.is_file() and path.read_text() != content:
            found[path] = content
    for run_id in RUNS:
        for name, stage in (("model.json", "init"), ("run.json", "train")):
            path = Path(run_dir(run_id), name)
            if path.is_file():
                content = stage_json(run_id, stage)
                if path.read_text() != content:
                    found[path] = content
    return found


if workflow.is_main_process and Path(OUT, "runs").is_dir():
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
        p for p in per_run("metrics.zarr") + ensemble_stores() if not Path(p).exists()
    ]
    _derived = [
        Path(OUT, ntk_stages.stage(r).store) for r in ("collect", "figures", "report")
    ]
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
            f"ntkpipe: {OUT}/summary.zarr: {_note} missing; computed again{_when}",
            file=sys.stderr,
        )
