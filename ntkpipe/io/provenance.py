"""What a store was computed from, recorded in it and checked before it is used or kept.

Every store keeps, next to its arrays (:func:`ntkpipe.io.stores.write_store`; the software
versions: :func:`provenance`), the config of the job that wrote it (attribute ``config``, JSON),
``config_file``: which part of the run config that is (the config file of its stage in the stage
table: ``model.json`` for init and Θ̂₀, ``run.json`` for the rest of a run, ``analytic.json``,
``ensemble.json``, ``sweep.json``; written by the job, which knows its stage), and ``inputs``: for
each store it was computed from, that store's content digest (:func:`content_digest`, the SHA-256
of its arrays' digests). Stores keep the config as provenance and never interpret it: the caller
says which config (and config file) is acceptable.

A store written before ``config_file`` was recorded has none: it is judged by its config alone
(as it was then), not computed again. Its config is compared for equality with the part the
caller expects, so a store of another part cannot pass for it unless both parts are the same
text; recomputing every old store would cost a finished sweep its whole compute.

Two checks, so that Snakemake's metadata (``.snakemake/``) is not needed to notice a change:

* :func:`check_input`, when a job reads a store: its config must be one the job expects, else
  a ``StoreError`` names the store (a store of another run put at this path, a store left from
  another config);
* :func:`stale_reason`, THE freshness rule: whether a store of a run is current. Called by the
  workflow's start (:func:`ntkpipe.start.stale_stores`, which removes a stale store so that
  Snakemake computes it again: a fresh clone, moved results, a hand-edited config file, a
  swapped store) and by the one-job-per-run job (:func:`ntkpipe.jobs.run.stage_plan`, which
  computes it again), from what the store records only: its config (the part of the run
  config its stage depends on, which the caller passes) and its inputs' digests.

Reading a record opens only the store's ``zarr.json`` (no arrays): fast enough for every store
of a large sweep when the DAG is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from importlib import metadata
from pathlib import Path

from ntkpipe.errors import StoreError

__all__ = [
    "INPUTS_ATTR",
    "CONFIG_FILE_ATTR",
    "COMPLETE_ATTR",
    "DIGEST_ATTR",
    "read_record",
    "content_digest",
    "input_digests",
    "check_input",
]
__all__ += ["stale_reason", "provenance"]

INPUTS_ATTR = "inputs"
CONFIG_FILE_ATTR = "config_file"
COMPLETE_ATTR = "ntkpipe_complete"
DIGEST_ATTR = "ntkpipe_sha256"
_IMPORT_TIME = time.monotonic()


def read_record(path):
    """A complete store's root attributes (``config``, ``inputs``, digests), or None when the
    path holds no complete store (missing, partial, unreadable)."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    if not isinstance(attrs, dict) or attrs.get(COMPLETE_ATTR) is not True:
        return None
    return attrs


def content_digest(attrs):
    """SHA-256 (hex) of a store's array digests: equal for stores holding equal arrays."""
    text = json.dumps(attrs.get(DIGEST_ATTR, {}), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def input_digests(inputs):
    """{name: content digest} of the input stores a job reads (None entries left out).

    Raises:
        StoreError: an input is not a complete store.
    """
    out = {}
    for name, path in (inputs or {}).items():
        if path is None:
            continue
        attrs = read_record(path)
        if attrs is None:
            raise StoreError(f"{path}: not a complete store; run the stage that writes it first")
        out[name] = content_digest(attrs)
    return out


def check_input(path, expected_configs, view=None, config_file=None):
    """Refuses an input store that was computed from a config the job does not expect.

    Args:
        path: the input store.
        expected_configs: the configs (mappings) the store may have been computed from.
        view: optional ``view(stored_config, stage) -> mapping``, the part of the stored
            config to compare (the caller knows which part a stage depends on; the store
            does not interpret it).
        config_file: the config file (part) the store must record (``model.json``, …), or
            None: not checked. A store that records none (written before it was recorded)
            passes this check.

    Raises:
        StoreError: naming the store, the run it was computed for and what to do.
    """
    attrs = read_record(path)
    if attrs is None:
        return  # the store's own reader names what is wrong with it
    recorded = attrs.get(CONFIG_FILE_ATTR)
    if config_file is not None and recorded is not None and recorded != config_file:
        raise StoreError(
            f"{path}: computed from a run's {recorded}, where this job reads a store computed "
            f"from its {config_file}: a store of another stage at this path; delete it and run "
            "snakemake again (it is computed again)"
        )
    stored = json.loads(attrs.get("config") or "null")
    seen = _plain(view(stored, attrs.get("stage")) if view else stored)
    if any(seen == _plain(c) for c in expected_configs):
        return
    raise StoreError(
        f"{path}: computed from another config ({_describe(stored)}) than this job's "
        f"({_describe(_plain(expected_configs[0]))}): a store of another run or an older "
        f"config; delete it and run snakemake again (it is computed again)"
    )


def stale_reason(path, config, inputs=None, redone=(), config_file=None):
    """Why a store of a run must be computed (again), or None when it is current.

    The one freshness rule of both job layouts, decided from what the store records, in order:
    missing; incomplete or unreadable (no completion marker); computed from another config file
    (part of the run config) than `config_file`; computed from another config than `config`; an
    input in `redone` (missing, or computed again before this store); an input whose content
    digest is not the one the store recorded. Never from file times, names or array contents.

    Args:
        path: the store.
        config: the config its job would be given now (the content of its config file: the
            part of the run config its stage depends on).
        config_file: that config file's name (the stage table's ``config_file``), checked
            against the store's ``config_file`` record; a store without one (written before it
            was recorded) is judged by `config` alone.
        inputs: {name: path} of the stores it is computed from (name: the file name, as the
            store records them).
        redone: names of inputs that are missing or computed again first.
    """
    if not Path(path).exists():
        return "missing"
    attrs = read_record(path)
    if attrs is None:
        return "incomplete or unreadable"
    recorded_file = attrs.get(CONFIG_FILE_ATTR)
    if config_file is not None and recorded_file is not None and recorded_file != config_file:
        return f"computed from another config file ({recorded_file}, not {config_file})"
    if json.loads(attrs.get("config") or "null") != _plain(config):
        return "computed from another config"
    upstream = [name for name in (inputs or {}) if name in redone]
    if upstream:
        return f"{upstream[0]} is missing or computed again"
    recorded = attrs.get(INPUTS_ATTR)
    recorded = json.loads(recorded) if isinstance(recorded, str) else recorded
    if not isinstance(recorded, dict):
        return None  # written before inputs were recorded: the config check alone
    for name, digest in recorded.items():
        input_path = (inputs or {}).get(name)
        current = read_record(input_path) if input_path is not None else None
        if current is None:
            continue  # not checked here, or missing: computed first, then what follows reruns
        if digest != content_digest(current):
            return f"its input {name} has changed since"
    return None


def _plain(config):
    """A config as its JSON round trip (tuples as lists), the form stores keep."""
    return json.loads(json.dumps(config, sort_keys=True))


def _describe(config):
    if not isinstance(config, dict):
        return repr(config)
    run_id = config.get("run_id")
    if run_id:
        return f"run {run_id}"
    model = config.get("model") or {}
    return f"model.width {model.get('width')}, seeds {config.get('seeds')}"


# ----------------------------------------------------------------------------- software


def provenance(config, stage, wall_time=None, config_file=None):
    """Attributes every store carries: the run config (JSON), the config file it is (when
    given), stage, versions, device, time.

    The git commit is that of the checkout ntkpipe runs from ("unknown" when it is not
    one); the jax device is the first device of the default backend and their count.
    """
    try:
        config_text = json.dumps(config, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise StoreError(f"config: cannot be stored as JSON ({err})") from err
    if wall_time is None:
        wall_time = _process_wall_time()
    jax_version, jax_device = _jax_info()
    attrs = {"config": config_text} | ({CONFIG_FILE_ATTR: config_file} if config_file else {})
    return attrs | {
        "stage": str(stage),
        "ntkpipe_version": _ntkpipe_version(),
        "git_commit": _git_commit(),
        "jax_version": jax_version,
        "jax_device": jax_device,
        "wall_time_s": float(wall_time),
    }


# ----------------------------------------------------------------------------- private


def _process_wall_time():
    """Seconds since this process started (Linux /proc), else since ntkpipe.io.stores loaded."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORT_TIME


def _ntkpipe_version():
    try:
        return metadata.version("ntkpipe")
    except metadata.PackageNotFoundError:
        import ntkpipe

        return str(getattr(ntkpipe, "__version__", "unknown"))


_GIT_COMMIT = []


def _git_commit():
    """HEAD of the checkout holding this file, "unknown" when there is none (no network)."""
    if not _GIT_COMMIT:
        try:
            result = subprocess.run(
                ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            )
            commit = result.stdout.strip() if result.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            commit = ""
        _GIT_COMMIT.append(commit or "unknown")
    return _GIT_COMMIT[0]


def _jax_info():
    try:
        import jax

        devices = jax.devices()
        first = devices[0]
        return jax.__version__, f"{first.platform}: {first.device_kind} ×{len(devices)}"
    except Exception as err:  # no jax, or no backend: the store is still worth writing
        return "unavailable", f"unavailable ({type(err).__name__})"
