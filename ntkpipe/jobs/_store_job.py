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

__all__ = ["Job", "load_run", "log"]

_RUN_SECTIONS = ("data", "model")  # in every stage's config (run, model, analytic, sweep)


class Job:
    """One stage job: the config it reads, the store it writes, the time it started.

    Made first thing in a stage: it reads the run config (unless given it) and refuses an
    existing store (unless ``overwrite``) before any work; :meth:`write` writes the store with
    that config, the stage's name and the job's wall time (the provenance of
    docs/architecture.md, "Stores").
    """

    def __init__(
        self, run: Path, out: Path, overwrite: bool, config: dict | None = None, inputs=None
    ):
        self.started = time.time()
        self.config = load_run(run) if config is None else config
        self.out, self.overwrite = Path(out), overwrite
        _check_out(out, overwrite)
        self.inputs = _checked_inputs(self.config, inputs)

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
            **options,
        )


def _checked_inputs(config: dict, inputs: dict | None) -> dict:
    """{file name: content digest} of a job's input stores, each checked to be computed from this
    job's config: the part of it the input's stage depends on (init-sampling and Θ̂₀: the init
    part; training and what follows: the train part; the analytic kernels: the analytic part;
    :func:`ntkpipe.io.provenance.check_input`)."""
    from ntkpipe.io import provenance

    inputs = {Path(path).name: path for path in (inputs or {}).values() if path is not None}
    if not inputs:
        return {}
    for path in inputs.values():
        attrs = storage.read_attrs(path)  # a missing, partial or foreign store: its own message
        part = _input_part(json.loads(attrs.get("config") or "null"), attrs.get("stage"))
        expected = _config_part(config, part)
        provenance.check_input(path, [expected], view=lambda c, _s, p=part: _config_part(c, p))
    return provenance.input_digests(inputs)


def _input_part(stored: dict, stage: str | None) -> str:
    """Which part of a run config (``ntkpipe.sweep.runs.stage_config``) a store depends on."""
    if stage == "analytic":
        return "analytic"
    training = stored.get("training") if isinstance(stored, dict) else None
    if stage == "init" or (stage == "kernels" and set(training or {}) <= {"loss"}):
        return "init"
    return "train"


def _config_part(config, part):
    from ntkpipe.sweep import runs as ntk_runs

    try:
        return ntk_runs.stage_config(config, part)
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
