"""Zarr v3 stores written with xarray: atomic, checksummed, with provenance.

Every stage writes one store (docs/store-schema.md): an ``xarray.Dataset`` with the fixed
dimension names (``seed``, ``step``, ``train``, ``test``, ``train2``, ``out``, ``layer``), plus,
for init and training, a group ``params/`` holding one array per parameter leaf (nested groups
follow the parameter tree), each with a leading ``seed`` axis.

A store is written into a hidden sibling ``.<name>.partial-<host>-<pid>`` and renamed into place
only when complete, so a job killed at any point (kill -9 included) never leaves something that
looks complete: the store is either absent or whole. The last thing written is the completion
marker (attribute ``ntkpipe_complete``) next to a SHA-256 digest of every array, so a partial or
corrupted copy is recognized as such. Reading checks all of this and raises ``StoreError``
naming the path, what is wrong and how to fix it.

Attributes: ``config``, ``config_file`` (which part of the run config ``config`` is: the config
file of the stage that wrote it), ``inputs`` (digests of its input stores), ``stage``,
``ntkpipe_version``, ``git_commit``, ``jax_version``, ``jax_device``, ``wall_time_s``
(:mod:`ntkpipe.io.provenance`).
Checkpoints: :mod:`ntkpipe.io.checkpoints`; atomic text files: :mod:`ntkpipe.io.atomic`. Kernels
are chunked by ``kernels.block_size`` along ``train``, ``train2``, ``test`` (a chunk per seed).
"""

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from ntkpipe.errors import StoreError
from ntkpipe.io import variables
from ntkpipe.io.atomic import (
    atomic_write_text,
    discard,
    fsync_dir,
    host_tag,
    remove_stale,
    write_if_changed,
)
from ntkpipe.io.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from ntkpipe.io.paramtree import flatten_params, unflatten_params
from ntkpipe.io.provenance import COMPLETE_ATTR, DIGEST_ATTR, provenance

__all__ = [
    "PARAMS_GROUP",
    "write_store",
    "read_store",
    "read_params",
    "read_attrs",
    "is_complete",
    "default_chunks",
    "provenance",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "atomic_write_text",
    "write_if_changed",
    "complete_meta",
    "corrupted_error",
    "verify_arrays",
]

PARAMS_GROUP = "params"
_KERNEL_DIMS = ("train", "train2", "test", "test2")


def write_store(
    ds,
    path,
    *,
    config,
    stage,
    params=None,
    chunks=None,
    overwrite=False,
    wall_time=None,
    inputs=None,
    config_file=None,
):
    """Writes a dataset (and optionally parameters) as a Zarr v3 store, atomically.

    Args:
        ds: the stage's ``xarray.Dataset`` (in memory).
        path: the store's directory, e.g. ``.../init.zarr``.
        config: the run configuration (JSON-serializable mapping), stored as the
            ``config`` attribute; its ``kernels.block_size`` sets the default chunks.
        stage: the stage's name, stored as the ``stage`` attribute.
        params: optional parameter pytree of nested mappings with string keys (Flax
            params), every leaf an array with a leading seed axis [n_seed, ...];
            written to the group ``params/``.
        chunks: optional {dimension: chunk size}, overriding ``default_chunks``.
        overwrite: replace an existing store (otherwise that is an error).
        wall_time: the job's wall time in seconds; None measures the time since the
            process started.
        inputs: {name: content digest} of the stores it was computed from
            (:func:`ntkpipe.io.provenance.input_digests`), stored as the ``inputs``
            attribute (JSON) and checked by :func:`ntkpipe.io.provenance.stale_reason`.
        config_file: the config file whose content ``config`` is (``model.json``, ``run.json``,
            ``analytic.json``, ``ensemble.json``, ``sweep.json``: the stage table's), stored as
            the ``config_file`` attribute; freshness and the input checks read it.

    Returns:
        The store's path.

    Raises:
        StoreError: the store exists and ``overwrite`` is False, the parameters or the
            configuration cannot be stored (checked first), or the write failed (its path).
    """
    path = Path(path)
    _check_target(path, overwrite)
    leaves = None if params is None else flatten_params(params, ds)
    attrs = provenance(config, stage, wall_time, config_file)
    if inputs is not None:
        attrs["inputs"] = json.dumps(inputs, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = path.parent / f".{path.name}.partial-{host_tag()}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        out = _prepare(ds, attrs)
        encoding = _encoding(out, {**default_chunks(config), **(chunks or {})})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            out.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False, encoding=encoding)
        digests = {"dataset": {name: _digest(var.values) for name, var in out.variables.items()}}
        if leaves is not None:
            digests["params"] = _write_params(tmp, leaves)
        _mark_complete(tmp, digests)
        _consolidate(tmp)
        _move_into_place(tmp, path, overwrite)
    except BaseException as error:
        discard(tmp)
        if isinstance(error, OSError):
            why = error.strerror or error
            raise StoreError(
                f"{path}: cannot write the store ({why}); nothing put in place"
            ) from error
        raise
    return path


def read_store(path, *, stage=None, load=True, verify=True):
    """Opens a complete store as an ``xarray.Dataset``.

    Args:
        path: the store's directory.
        stage: if given, the stage the store must hold.
        load: read all arrays into memory (needed for ``verify``); False gives a lazily
            loaded dataset.
        verify: compare every array with the SHA-256 digest written with it.

    Returns:
        The dataset, with the provenance attributes (``config`` is JSON text).

    Raises:
        StoreError: the store is missing, partial (an interrupted job), corrupted, or
            of another stage; the message names the path and how to fix it.
    """
    path = Path(path)
    attrs = _complete_attrs(path, stage)
    try:
        ds = xr.open_dataset(
            path, engine="zarr", consolidated=_consolidated(path), zarr_format=3, chunks=None
        )
        if load:
            ds = ds.load()
    except Exception as err:
        raise corrupted_error(path, attrs, f"{type(err).__name__}: {err}") from err
    if load and verify:
        expected = attrs.get(DIGEST_ATTR, {}).get("dataset", {})
        verify_arrays(
            path, attrs, {name: var.values for name, var in ds.variables.items()}, expected
        )
    ds.attrs.pop(DIGEST_ATTR, None)
    return ds


def read_params(path, *, verify=True):
    """Reads the parameters stored in a store's ``params/`` group.

    Returns:
        Nested dicts of numpy arrays, each with the leading seed axis, in the order
        they were written.

    Raises:
        StoreError: the store is missing, partial or corrupted, or holds no parameters.
    """
    path = Path(path)
    attrs = _complete_attrs(path, None)
    expected = attrs.get(DIGEST_ATTR, {}).get("params")
    if expected is None:
        raise StoreError(
            f"{path}: holds no parameters (stage {attrs.get('stage')!r} stores none); "
            f"parameters are in the stores of the stages that save them (e.g. init.zarr)"
        )
    try:
        group = zarr.open_group(path / PARAMS_GROUP, mode="r", zarr_format=3)
        arrays = {name: np.asarray(group[name][...]) for name in expected}
    except Exception as err:
        raise corrupted_error(path, attrs, f"params/: {type(err).__name__}: {err}") from err
    if verify:
        verify_arrays(path, attrs, arrays, expected, prefix="params/")
    return unflatten_params(arrays)


def read_attrs(path):
    """The provenance attributes of a complete store, without reading its arrays."""
    attrs = dict(_complete_attrs(Path(path), None))
    attrs.pop(DIGEST_ATTR, None)
    return attrs


def is_complete(path):
    """Whether ``path`` is a store that was written completely (no arrays are read)."""
    try:
        _complete_attrs(Path(path), None)
    except StoreError:
        return False
    return True


def corruption(path) -> str | None:
    """What is wrong with a finished store, reading every array (and ``params/``) against its
    stored digest; None when nothing is (``ntkpipe status --verify``, and the start's check of
    the stores its jobs will re-read: :mod:`ntkpipe.start_guard`)."""
    path = Path(path)
    try:
        read_store(path, load=True, verify=True)
        if (path / "params").is_dir():
            read_params(path, verify=True)
    except (StoreError, OSError, ValueError) as error:
        return str(error).removeprefix(f"{path}: ")
    return None


def default_chunks(config):
    """{dimension: chunk size}: one seed per chunk, kernel blocks of ``kernels.block_size``
    along train, train2, test and test2."""
    block = (config or {}).get("kernels", {}).get("block_size")
    chunks = {"seed": 1}
    if block:
        chunks.update(dict.fromkeys(_KERNEL_DIMS, int(block)))
    return chunks


def _check_target(path, overwrite):
    if not path.exists() or overwrite or (path.is_dir() and not any(path.iterdir())):
        return
    raise StoreError(
        f"{path}: already exists; refusing to overwrite it. Delete it first (or rerun the "
        f"stage with snakemake --forcerun <rule>), or write with overwrite=True"
    )


def _prepare(ds, attrs):
    """A shallow copy with our attributes, no stale encodings, strings as variable-length."""
    out = ds.copy(deep=False).drop_encoding()
    for name, var in list(out.variables.items()):
        if var.dtype.kind == "U":  # fixed-width UTF-32 has no stable Zarr v3 spec
            out[name] = var.astype(object)
    out.attrs = {**{k: v for k, v in ds.attrs.items() if k != DIGEST_ATTR}, **attrs}
    out.attrs.pop(COMPLETE_ATTR, None)
    return variables.annotate(out)


def _encoding(ds, chunks):
    encoding = {}
    for name, var in ds.variables.items():
        enc = {}
        if var.ndim:
            enc["chunks"] = tuple(
                max(1, min(size, chunks.get(dim, size)))
                for dim, size in zip(var.dims, var.shape, strict=True)
            )
        encoding[name] = enc
    return encoding


def _write_params(tmp, leaves):
    root = zarr.open_group(tmp, mode="r+", zarr_format=3)
    group = root.create_group(PARAMS_GROUP)
    digests = {}
    for parts, value in leaves:
        node = group
        for part in parts[:-1]:
            node = node.require_group(part)
        node.create_array(parts[-1], data=value, chunks=(1, *value.shape[1:]))
        digests["/".join(parts)] = _digest(value)
    return digests


def _mark_complete(tmp, digests):
    """Writes the digests and the completion marker: the last write of a store."""
    root = zarr.open_group(tmp, mode="r+", zarr_format=3)
    root.attrs.update({DIGEST_ATTR: digests, COMPLETE_ATTR: True})


def _consolidate(tmp):
    """Consolidated metadata (written after the completion marker, before the rename), so a
    plain ``xr.open_zarr(path)`` neither warns nor lists the folder (where Snakemake's
    ``.snakemake_timestamp`` of a ``directory()`` output would be "not recognized")."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(tmp, zarr_format=3)


def _consolidated(path):
    """Whether the store has consolidated metadata (stores written before it did not)."""
    try:
        meta = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("consolidated_metadata") is not None


def _move_into_place(tmp, path, overwrite):
    old = None
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()  # e.g. created by a workflow engine before the job ran
    elif path.exists() or path.is_symlink():
        if not overwrite:
            raise StoreError(f"{path}: appeared while the store was being written; not replaced")
        old = path.parent / f".{path.name}.old-{host_tag()}-{os.getpid()}"
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except OSError as err:
        raise StoreError(f"{path}: cannot move the finished store into place ({err})") from err
    fsync_dir(path.parent)
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _complete_attrs(path, stage):
    """The root attributes of a complete store; StoreError saying what is wrong otherwise."""
    return complete_meta(path, stage)["attributes"]


def complete_meta(path, stage):
    """The root metadata (zarr.json) of a complete store; StoreError otherwise."""
    if ".partial-" in path.name or ".old-" in path.name:
        raise StoreError(
            f"{path}: a leftover of an interrupted job, not a store; delete it (ntkpipe "
            f"removes such leftovers of dead jobs when it writes the store again)"
        )
    if not path.exists():
        raise StoreError(_missing_text(path))
    meta_path = path / "zarr.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        attrs = meta.get("attributes", {}) if isinstance(meta, dict) else None
        if meta.get("zarr_format") != 3 or not isinstance(attrs, dict):
            raise ValueError("not Zarr v3 group metadata")
    except FileNotFoundError:
        raise StoreError(
            f"{path}: not a Zarr v3 store (no zarr.json); delete it and rerun the stage "
            f"that writes it (snakemake --forcerun <rule>)"
        ) from None
    except (OSError, ValueError, AttributeError) as err:
        raise corrupted_error(path, {}, f"zarr.json: {err}") from None
    if attrs.get(COMPLETE_ATTR) is not True:
        raise StoreError(
            f"{path}: incomplete: the job writing it stopped before finishing (no completion "
            f"marker); delete it and rerun: snakemake --rerun-incomplete, or --forcerun <rule>"
        )
    if stage is not None and attrs.get("stage") != stage:
        raise StoreError(
            f"{path}: holds stage {attrs.get('stage')!r}, expected {stage!r}; check the path"
        )
    return meta


def _missing_text(path):
    leftovers = sorted(p.name for p in path.parent.glob(f".{path.name}.partial-*"))
    if leftovers:
        return (
            f"{path}: does not exist; an interrupted job left {leftovers[0]} next to it. Rerun "
            f"the stage: snakemake --rerun-incomplete (or --forcerun <rule>)"
        )
    return f"{path}: does not exist; run the stage that writes it first (snakemake {path})"


def corrupted_error(path, attrs, what):
    """The StoreError of a store at `path` whose content is damaged (`what`): rerun its stage."""
    stage = attrs.get("stage")
    which = f" (stage {stage})" if stage else ""
    return StoreError(
        f"{path}: corrupted{which}: {what}. Delete it and rerun the stage that writes it: "
        f"snakemake --forcerun <rule> (or delete it and run snakemake again)"
    )


def verify_arrays(path, attrs, arrays, expected, prefix=""):
    """Raises `corrupted_error` unless `arrays` {name: values} hold every name of `expected`
    {name: sha256 digest} with that digest."""
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise corrupted_error(
            path, attrs, f"missing array(s) {', '.join(prefix + m for m in missing)}"
        )
    bad = [name for name, digest in expected.items() if _digest(arrays[name]) != digest]
    if bad:
        raise corrupted_error(
            path, attrs, f"array(s) {', '.join(prefix + b for b in bad)} differ from their digest"
        )


def _digest(values):
    """SHA-256 of an array's dtype, shape and values (NaNs canonical, strings as text)."""
    a = np.asarray(values)
    h = hashlib.sha256(str(a.shape).encode())
    if a.dtype.kind in "OUST":
        h.update(json.dumps([str(x) for x in a.ravel().tolist()]).encode())
        return h.hexdigest()
    if a.dtype.kind in "fc":
        a = np.where(np.isnan(a), np.array(np.nan, dtype=a.dtype), a)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    h.update(a.dtype.str.encode())
    h.update(a.tobytes())
    return h.hexdigest()
