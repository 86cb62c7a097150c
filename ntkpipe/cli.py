"""The `ntkpipe` command: one subcommand per workflow stage.

Each Snakemake rule runs one of these commands in `shell:`; rerun a failed job by hand, e.g.

    ntkpipe train --run results/digits-binary/runs/width~64/n_train~32/seeds~0-1/run.json \\
        --init .../init.zarr --out .../train.zarr

JAX is imported only after the thread count is pinned (XLA sizes its CPU
thread pool when it starts), so the parser and `--help` stay fast. In the same
spirit, a stage sets JAX's x64 mode from its run config's `precision` when it
starts, before it creates any array (float64: on; float32, the default: off;
see `ntkpipe.jobs._job.run_precision`), and restores the previous mode after.

Compiled programs are kept in JAX's persistent compilation cache, shared by every job, so
that only the first job of a kind compiles (see `ntkpipe.process`): the folder is
$NTKPIPE_JAX_CACHE (the workflow sets results/.jax_cache), else $JAX_COMPILATION_CACHE_DIR,
else ~/.cache/ntkpipe/jax; NTKPIPE_JAX_CACHE=off turns it off.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ntkpipe import __version__, cli_claims
from ntkpipe.process import configure_compilation_cache, pin_threads  # noqa: F401  (public here)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ntkpipe` console script; returns the exit status."""
    from ntkpipe.workers import client

    if (status := client.submit(sys.argv[1:] if argv is None else list(argv))) is not None:
        return status  # run by a warm worker of the sweep's pool (ntkpipe.workers)
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "threads", None) and "jax" not in sys.modules:
        pin_threads(args.threads)  # a warm worker (JAX started) has the job's thread count
    configure_compilation_cache()
    from ntkpipe.errors import NtkpipeError

    try:
        return args.handler(args) or 0  # a handler may return its own exit status
    except (NtkpipeError, ValueError, OSError) as error:
        if os.environ.get("NTKPIPE_DEBUG"):
            raise
        report_error(f"ntkpipe {args.command}: error: {error}")
        return 1


def report_error(message: str) -> None:
    """Prints an error to stderr and, in a workflow job, to the job's own stderr too.

    The rules send a job's output to its log (``> {log} 2>&1``); the workflow keeps the job's
    stderr open as descriptor ``$NTKPIPE_ERROR_FD`` (workflow/rules/config.smk), so the error
    reaches Snakemake's output even when the log cannot be written (a full disk).
    """
    text = f"{message}\n(set NTKPIPE_DEBUG=1 for the traceback)\n"
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except OSError:
        pass
    fd = os.environ.get("NTKPIPE_ERROR_FD", "")
    if fd.isdigit():
        try:
            os.write(int(fd), message.encode() + b"\n")
        except OSError:
            pass


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ntkpipe",
        description=_USAGE,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ntkpipe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text, add_arguments, handler in _COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(handler=handler)
    return parser


_USAGE = """\
Wide networks evolve as linear models (Lee et al. 2019), as a Snakemake sweep.

Run a sweep (from the repository root):
  snakemake --cores all                                  the default sweep (config/config.yaml)
  snakemake --cores all --configfile config/small/fig1.yaml
  snakemake --cores all --configfile base.yaml overlay.yaml   a variant: the overlay wins
  snakemake --cores all --config name=mine               override one key
  snakemake --profile slurm --configfile config/paper/fig1.yaml   SLURM (install-profile first)

Watch it and read it:
  ntkpipe status results/<name>       runs done / running / missing, ETA, how to finish it
  ntkpipe claims results/<name>       the paper's claims and verdicts (--fail-on inconsistent)
  results/<name>/report.html          the report (its path is printed when the sweep ends)
  results/<name>/summary.zarr         every run's metrics: xr.open_zarr(...)

The commands below: the workflow's stages (each job runs one; rerun a failed one by hand from
the command in its log), status, validate, plan, calibrate, install-profile."""
_EPILOG = "Store schema: docs/store-schema.md. Help on a command: ntkpipe COMMAND --help."


# ---------------------------------------------------------------- arguments


_CONFIG_FLAGS = {"sweep.json": ("--sweep", "the sweep's resolved config")}
"""A stage's config file → its command's flag and help (any other: ``--run``)."""
_RUN_FLAG = ("--run", "the run's resolved config (JSON)")


def _stage_args(command: str):
    """The arguments of a stage's command, read off the stage table (its first row): the config
    flag (``--run``; collect's ``--sweep``), ``--rule`` where the command runs several rules
    (kernels: kernel_init or kernel_final), a flag per input store it reads (required unless
    read only under a config switch), ``--out``, ``--threads`` (not for the sweep-level stages)
    and ``--overwrite`` (for a store), and the command's own options (``_OWN_OPTIONS``)."""
    from ntkpipe.sweep import stage_table

    rules = stage_table.COMMAND_RULES[command]
    row = stage_table.stage(rules[0])

    def add_arguments(parser):
        if row.config_file:
            flag, help_text = _CONFIG_FLAGS.get(row.config_file, _RUN_FLAG)
            parser.add_argument(flag, type=Path, required=True, help=help_text)
        if len(rules) > 1:
            parser.add_argument(
                "--rule", choices=rules, required=True, help="the stage this job computes"
            )
        for one in row.inputs:
            parser.add_argument(one.flag, type=Path, required=one.when is None, help=one.help)
        out_help = "the Zarr store to write" if row.attribute else f"where to write {row.store}"
        parser.add_argument("--out", type=Path, required=True, help=out_help)
        if row.scope != "sweep":
            parser.add_argument("--threads", type=int, default=None, help="CPU cores for XLA")
        if row.attribute:
            parser.add_argument(
                "--overwrite",
                action="store_true",
                help="replace an existing store (default: refuse)",
            )
        for add_option in _OWN_OPTIONS.get(command, ()):
            add_option(parser)

    return add_arguments


def _figure_processes_option(parser):
    parser.add_argument(
        "--threads", type=int, default=None, help="processes drawing figures (default: all cores)"
    )


def _checkpoint_option(parser):
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="checkpoint file (default: <out>.ckpt)"
    )


_OWN_OPTIONS = {"train": (_checkpoint_option,), "figures": (_figure_processes_option,)}
"""Options of a stage's command that are not read off the stage table (no store)."""


def _run_all_args(parser):
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--config", help="the run's resolved config as JSON text (the workflow)")
    given.add_argument("--run", type=Path, help="the run's resolved config (run.json)")
    parser.add_argument("--dir", type=Path, required=True, help="the run folder (runs/<run_id>)")
    parser.add_argument("--analytic", type=Path, default=None, help="analytic.zarr (Θ, K)")
    parser.add_argument(
        "--until",
        default=None,
        metavar="STAGE",
        help="compute only this stage and the stages it reads (snakemake --until STAGE)",
    )
    parser.add_argument(
        "--redo",
        action="append",
        default=[],
        metavar="STAGE",
        help="compute this stage again, and the stages reading it (snakemake --forcerun STAGE)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU cores for XLA")


def _validate_args(parser):
    parser.add_argument(
        "configs",
        nargs="*",
        type=Path,
        metavar="CONFIG",
        help="config files, later ones overlaying earlier ones, as snakemake --configfile "
        "A B (none: the default sweep config/config.yaml)",
    )
    parser.add_argument(
        "--config",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="overrides as snakemake --config takes them, coerced through the schema; dotted "
        "keys allowed (training.learning_rate=0.1)",
    )


def _plan_args(parser):
    parser.add_argument("--configfile", type=Path, required=True, help="the sweep config (YAML)")


def _calibrate_args(parser):
    parser.add_argument("results", type=Path, help="a sweep's results folder, results/<name>")
    parser.add_argument(
        "--out", type=Path, default=None, help="calibration file (default results/calibration.json)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "gpu"), default=None,
        help="device kind the jobs ran on (default: from <results>/resources.json, else cpu)",
    )  # fmt: skip


def _profile_args(parser):
    parser.add_argument(
        "--dest", type=Path, default=None,
        help="profile folder (default ~/.config/snakemake/slurm: snakemake --profile slurm)",
    )  # fmt: skip
    parser.add_argument("--account", default=None, help="SLURM account to charge")
    parser.add_argument(
        "--cpu-partition", required=True, help="partition of the jobs that ask for no GPU"
    )
    parser.add_argument("--gpu-partition", default=None, help="partition of the GPU jobs")
    parser.add_argument(
        "--gpus-per-node", type=int, default=8, help="GPUs a job may ask for on it (default 8)"
    )


# ---------------------------------------------------------------- handlers


def _run(command):
    """The handler of a stage's command: the function of the stage table's row for it
    (``ntkpipe.jobs.<module>.<function>(**arguments)``), the module imported only when the
    command runs (JAX starts there, after the threads are pinned)."""

    def handler(args):
        import importlib

        from ntkpipe.sweep import stage_table

        row = stage_table.commands()[command]
        module = importlib.import_module(f"ntkpipe.jobs.{row.module}")
        getattr(module, row.function)(**_stage_kwargs(args))

    return handler


def import_stage_modules(commands) -> None:
    """Import the job modules of these stage commands (and so JAX, Flax, xarray, zarr) now:
    what a warm worker (:mod:`ntkpipe.workers.worker`) does once, before its first job."""
    import importlib

    from ntkpipe.sweep import stage_table

    for command in sorted(commands):
        importlib.import_module(f"ntkpipe.jobs.{stage_table.commands()[command].module}")


def _run_all(args):
    from ntkpipe.jobs import run as run_job

    config = run_job.given_run_config(args.config, args.run)
    computed = run_job.run_all_stages(
        config, args.dir, analytic=args.analytic, until=args.until, redo=args.redo
    )
    print(f"run: computed {', '.join(computed)}", flush=True)


def _stage_kwargs(args) -> dict:
    skip = {"command", "handler", "threads"}
    return {key: value for key, value in vars(args).items() if key not in skip}


def _validate(args):
    import json

    from ntkpipe import start
    from ntkpipe.sweep import loading, validate_checks

    default = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    sweep, settings, runs = start.resolve_sweep(
        args.configs,
        loading.parse_assignments(args.config),
        default=default,
        memory_mb=validate_checks.machine_memory_mb(),
    )
    print(json.dumps({**sweep, "resources": settings}, indent=2))
    print(f"{len(runs)} runs; results in results/{sweep['name']}/")


def _status_args(parser):
    parser.add_argument("results", type=Path, help="the sweep's results folder, results/<name>")
    parser.add_argument("--verify", action="store_true", help="check every store's digests")


def _status(args):
    from ntkpipe.analysis import status

    found = status.sweep_status(args.results, verify=args.verify)
    print(status.format_status(found))
    return int(any(c.corrupted for c in found.stages.values()))


def _plan(args):
    from ntkpipe.sweep import plan

    table, notes = plan.plan_config(args.configfile)
    print(table)
    for note in notes:
        print(f"ntkpipe plan: {note}", file=sys.stderr)
    return int(any(note.startswith("refused") for note in notes))


def _calibrate(args):
    from ntkpipe.sweep import calibrate

    print(calibrate.calibrate(args.results, out=args.out, device=args.device).summary())


def _install_profile(args):
    from ntkpipe.slurm_profile import install_profile

    installed = install_profile(
        args.dest,
        account=args.account,
        cpu_partition=args.cpu_partition,
        gpu_partition=args.gpu_partition,
        gpus_per_node=args.gpus_per_node,
    )
    print(installed.summary())


_OWN_COMMAND = {"run": (_run_all_args, _run_all)}
"""A stage's command whose arguments and handler are not read off the stage table."""


def _stage_commands() -> list:
    """(command, help, arguments, handler) of every stage's command, in the stage table's order."""
    from ntkpipe.sweep import stage_table

    return [
        (command, row.help, *_OWN_COMMAND.get(command, (_stage_args(command), _run(command))))
        for command, row in stage_table.commands().items()
    ]


# (command, help, arguments, handler): the stages' commands (from the stage table), then the rest.
_COMMANDS = [
    *_stage_commands(),
    (
        "validate",
        "read a sweep's config as the workflow does: print it resolved and its run count",
        _validate_args,
        _validate,
    ),
    (
        "status",
        "where a sweep stands: runs done / running / failed / missing per stage, compute, ETA",
        _status_args,
        _status,
    ),
    ("claims", cli_claims.HELP, cli_claims.add_arguments, cli_claims.run),
    (
        "plan",
        "print per rule the jobs, time, memory and bytes a sweep asks for (no data needed)",
        _plan_args,
        _plan,
    ),
    (
        "calibrate",
        "fit the cost model's constants to a finished sweep's benchmark files",
        _calibrate_args,
        _calibrate,
    ),
    (
        "install-profile",
        "write the SLURM profile (the workflow's settings, account, CPU and GPU partitions) "
        "for snakemake --profile slurm",
        _profile_args,
        _install_profile,
    ),
]


if __name__ == "__main__":
    sys.exit(main())
