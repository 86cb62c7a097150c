"""The part of every job that needs no JAX: the run-config reader, the store a job writes and
its log line. The sweep-level jobs (collect, figures, report: :mod:`ntkpipe.jobs.analysis`)
import only this, so they start without JAX (about 1 s of every such job's start); the stage
jobs use it through :mod:`ntkpipe.jobs._job`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import xarray as xr

from ntkpipe.errors import StageError
from ntkpipe.io import stores as storage
from ntkpipe.sweep import stage_table

__all__ = ["Job", "load_run", "log"]

_RUN_SECTIONS = ("data", "model")  # in every stage's config (run, model, analytic, sweep)


class Job:
    """One stage job: the config it reads, the store it writes, the time it started.

    Made first thing in a stage: it reads the run config (unless given it) and refuses an
    existing store (unless ``overwrite``) before any work; :meth:`write` writes the store with
    that config, the config file it is (the stage table's ``config_file`` of `rule`: the part of
    the run config the store depends on, recorded so that nothing has to infer it), the stage's
    name and the job's wall time (the provenance of docs/architecture.md, "Stores").

    Args:
        run: the config file; out: the store to write; overwrite: replace an existing store.
        rule: the stage table's rule the job computes (``kernel_init`` or ``kernel_final`` for
            the one kernels job).
        config: the config, already read (else read from `run`).
        inputs: {the input's name (its flag's argparse dest): path or None} of the stores it
            reads, each checked against the config file its stage records.
    """

    def __init__(
        self,
        run: Path,
        out: Path,
        overwrite: bool,
        *,
        rule: str,
        config: dict | None = None,
        inputs=None,
    ):
        self.started = time.time()
        self.config = load_run(run) if config is None else config
        self.config_file = stage_table.stage(rule).config_file
        self.out, self.overwrite = Path(out), overwrite
        _check_out(out, overwrite)
        self.inputs = _checked_inputs(self.config, rule, inputs)

    def elapsed(self) -> float:
        """Seconds since the job started."""
        return time.time() - self.started

    def write(self, ds: xr.Dataset, *, stage: str, **options) -> Path:
        """:func:`ntkpipe.io.stores.write_store` of ``ds`` as this job's store (``options``:
        ``params``, ``chunks``)."""
        return storage.write_store(
            ds,
            self.out,
            config=self.config,
            stage=stage,
            wall_time=self.elapsed(),
            overwrite=self.overwrite,
            inputs=self.inputs,
            config_file=self.config_file,
            **options,
        )


def _checked_inputs(config: dict, rule: str, inputs: dict | None) -> dict:
    """{file name: content digest} of a job's input stores, each checked to be computed from this
    job's config: the part of it that the stage writing the input reads (the stage table's
    ``config_file`` of the input's stage: init-sampling and Θ̂₀ ``model.json``, training and what
    follows ``run.json``, the analytic kernels ``analytic.json``), which the store records
    (:func:`ntkpipe.io.provenance.check_input`)."""
    from ntkpipe.io import provenance

    given = {name: path for name, path in (inputs or {}).items() if path is not None}
    if not given:
        return {}
    reads = {_dest(one.flag): one for one in stage_table.stage(rule).inputs if one.flag}
    for name, path in given.items():
        storage.read_attrs(path)  # a missing, partial or foreign store: its own message
        config_file = stage_table.stage(reads[name].stage).config_file
        expected = _config_part(config, config_file)
        provenance.check_input(
            path,
            [expected],
            view=lambda c, _s, f=config_file: _config_part(c, f),
            config_file=config_file,
        )
    return provenance.input_digests({Path(path).name: path for path in given.values()})


def _dest(flag: str) -> str:
    """A command's flag as its argparse dest (the stage function's keyword)."""
    return flag.lstrip("-").replace("-", "_")


def _config_part(config, config_file):
    """The content of `config_file` for a run (or stage) config: the part of it the stages
    reading that file depend on (:func:`ntkpipe.sweep.runs.file_config`)."""
    from ntkpipe.sweep import runs as ntk_runs

    try:
        return ntk_runs.file_config(config, config_file)
    except (KeyError, TypeError, ValueError, AttributeError):
        return config


def load_run(path: Path) -> dict:
    """A run's resolved config (JSON written by the workflow): the one run-config reader."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"--run: no run config at {path}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StageError(f"--run: {path} is not valid JSON ({error})") from error
    missing = [k for k in _RUN_SECTIONS if not isinstance(config, dict) or k not in config]
    if missing:
        raise StageError(
            f"--run: {path} is not a run config written by the workflow (no section "
            f"{', '.join(missing)}); pass the run's run.json / model.json (or the sweep.json)"
        )
    return config


def _check_out(out: Path, overwrite: bool) -> None:
    if Path(out).exists() and not overwrite:
        raise StageError(
            f"--out: {out} exists; pass --overwrite to replace it (nothing was computed)"
        )


def log(message: str) -> None:
    """Prints one line of a stage's log, flushed at once (the job's log file follows it live)."""
    print(message, flush=True)
