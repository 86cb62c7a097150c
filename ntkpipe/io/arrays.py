"""A store's arrays as plain NumPy, and a cache of them keyed by the store's metadata digest.

For the sweep summary, which reads thousands of small stores (``metrics.zarr``): xarray's and
zarr-python's per-array overhead (~1 ms an array, tens of ms a store) would dominate there.
:func:`read_arrays` reads the layout :func:`ntkpipe.io.stores.write_store` writes, with the
standard library, NumPy and numcodecs: Zarr v3 with consolidated metadata, regular chunks with
the default chunk keys, codecs ``bytes`` or ``vlen-utf8``, each optionally followed by
``zstd``; chunks equal to the fill value are absent (Zarr does not write them). Values, dtypes
(strings as NumPy's ``StringDType``) and attributes are those of
:func:`ntkpipe.io.stores.read_store` (``_FillValue`` and ``coordinates`` are encodings there,
not attributes), and every array is checked against the SHA-256 digest written with it. A store
outside that layout, or with an encoding xarray would decode (scale, offset, a fill value other
than NaN, time units), is read by ``read_store`` instead: the result is the same either way.

:func:`load_cache` / :func:`save_cache` keep {key: (digest, arrays)} in one ``.npz`` file (no
pickles): numbers packed per variable and dtype, strings and layouts in a JSON index. The digest
is :func:`metadata_digest`, the SHA-256 of the store's ``zarr.json``, which holds the digest of
every array, the provenance (config, inputs, versions, wall time) and every attribute: a store
written again, replaced or edited has another one, so its cached arrays are never reused.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from ntkpipe.io.provenance import DIGEST_ATTR
from ntkpipe.io.stores import (
    complete_meta,
    corrupted_error,
    read_store,
    verify_arrays,
)

__all__ = ["read_arrays", "metadata_digest", "load_cache", "save_cache"]

#: Attributes xarray decodes away (CF encodings): a store with any of them is read by xarray.
_DECODED = ("scale_factor", "add_offset", "missing_value", "calendar", "dtype", "_Unsigned")
_TIME_UNITS = ("days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "since")
_ENCODINGS = ("_FillValue", "coordinates")
_FILLS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_CACHE_FORMAT = 1
#: Text as zarr-python returns it: NumPy 2's variable-width strings (object arrays before).
_TEXT = np.dtypes.StringDType() if hasattr(np.dtypes, "StringDType") else np.dtype(object)


class _Unsupported(Exception):
    """A store this reader does not decode (read_store does)."""


def read_arrays(path, *, stage=None) -> dict:
    """Every array of a complete store, {name: (dims, values, attrs)}, each checked against its
    digest; the same values, dtypes and attributes as ``read_store(path, stage=stage)``.

    Raises:
        StoreError: the store is missing, partial, corrupted or of another stage (the messages
            of :func:`ntkpipe.io.stores.read_store`).
    """
    path = Path(path)
    meta = complete_meta(path, stage)
    attrs = meta["attributes"]
    try:
        arrays = _read_plain(path, meta)
    except _Unsupported:
        ds = read_store(path, stage=stage)
        return {str(n): (v.dims, v.values, dict(v.attrs)) for n, v in ds.variables.items()}
    except Exception as err:  # unreadable chunk files: what read_store says of them
        raise corrupted_error(path, attrs, f"{type(err).__name__}: {err}") from err
    values = {name: v for name, (_, v, _) in arrays.items()}
    verify_arrays(path, attrs, values, attrs.get(DIGEST_ATTR, {}).get("dataset", {}))
    return arrays


def metadata_digest(path) -> str | None:
    """SHA-256 of a store's ``zarr.json`` (None when it has none): it changes with any array,
    attribute or provenance of the store."""
    try:
        return hashlib.sha256((Path(path) / "zarr.json").read_bytes()).hexdigest()
    except OSError:
        return None


def _read_plain(path: Path, meta: dict) -> dict:
    nodes = (meta.get("consolidated_metadata") or {}).get("metadata")
    if not isinstance(nodes, dict):
        raise _Unsupported("no consolidated metadata")
    if any(node.get("node_type") != "array" or "/" in name for name, node in nodes.items()):
        raise _Unsupported("groups")  # e.g. params/: not a plain dataset
    out = {}
    for name, node in nodes.items():
        attrs = dict(node.get("attributes") or {})
        _check_decoding(attrs)
        dims = tuple(node.get("dimension_names") or ())
        out[name] = (dims, _read_array(os.path.join(path, name), node), _decoded(attrs))
    return out


def _check_decoding(attrs: dict) -> None:
    units = str(attrs.get("units", ""))
    if any(key in attrs for key in _DECODED) or any(u in units for u in _TIME_UNITS):
        raise _Unsupported("CF encoding")
    if "_FillValue" in attrs and not _is_nan(attrs["_FillValue"]):
        raise _Unsupported("fill value")


def _is_nan(fill) -> bool:
    """Whether a ``_FillValue`` attribute is NaN: a number, "NaN", or (as xarray writes it in
    Zarr v3) the base64 text of a float's bytes."""
    if isinstance(fill, float):
        return math.isnan(fill)
    if not isinstance(fill, str):
        return False
    if fill == "NaN":
        return True
    try:
        raw = base64.b64decode(fill, validate=True)
    except ValueError:
        return False
    kinds = {8: "<f8", 4: "<f4"}
    return len(raw) in kinds and bool(np.isnan(np.frombuffer(raw, dtype=kinds[len(raw)])[0]))


def _decoded(attrs: dict) -> dict:
    return {k: v for k, v in attrs.items() if k not in _ENCODINGS}


def _read_array(folder: str, node: dict) -> np.ndarray:
    """One array from its chunk files (absent chunks hold the fill value)."""
    import numcodecs

    shape = tuple(node["shape"])
    grid, keys = node.get("chunk_grid", {}), node.get("chunk_key_encoding", {})
    names = [codec.get("name") for codec in node.get("codecs", [])]
    if (
        grid.get("name") != "regular"
        or keys != {"name": "default", "configuration": {"separator": "/"}}
        or names not in (["bytes"], ["bytes", "zstd"], ["vlen-utf8"], ["vlen-utf8", "zstd"])
        or node.get("storage_transformers")
    ):
        raise _Unsupported("layout")
    text = node["data_type"] == "string"
    dtype = object if text else _numeric_dtype(node)
    fill = "" if text else _FILLS.get(node["fill_value"], node["fill_value"])
    if isinstance(fill, str) and not text:
        raise _Unsupported("fill value")  # e.g. a float's bytes as hex
    chunk = tuple(grid["configuration"]["chunk_shape"])
    out = np.full(shape, fill, dtype=dtype)
    zstd = numcodecs.Zstd() if names[-1] == "zstd" else None
    counts = [range(-(-size // step)) for size, step in zip(shape, chunk, strict=True)]
    for index in itertools.product(*counts):
        try:
            with open(os.path.join(folder, "c", *map(str, index)), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            continue
        raw = zstd.decode(raw) if zstd is not None else raw
        if text:
            block = numcodecs.VLenUTF8().decode(raw).reshape(chunk)
        else:
            block = np.frombuffer(raw, dtype=dtype).reshape(chunk)
        # the chunk's region of the array (an edge chunk is padded beyond the array's end)
        at = list(zip(index, chunk, shape, strict=True))
        out[tuple(slice(i * n, (i + 1) * n) for i, n, _ in at)] = block[
            tuple(slice(0, min(n, size - i * n)) for i, n, size in at)
        ]
    return out.astype(_TEXT) if text else out


def _numeric_dtype(node: dict) -> np.dtype:
    try:
        dtype = np.dtype(node["data_type"])
    except TypeError:
        raise _Unsupported("data type") from None
    if dtype.kind not in "biufc":
        raise _Unsupported("data type")
    endian = node["codecs"][0].get("configuration", {}).get("endian", "little")
    if endian == sys.byteorder or dtype.itemsize == 1:
        return dtype  # NumPy's own (shared) dtype, as zarr returns it
    return dtype.newbyteorder("<" if endian == "little" else ">")


# ---------------------------------------------------------------- the cache


def load_cache(path) -> dict:
    """{key: (digest, {name: (dims, values, attrs)})} saved by :func:`save_cache`; {} when the
    file is absent, unreadable or of another format (a cache is only ever a shortcut)."""
    try:
        with np.load(path, allow_pickle=False) as packed:
            index = json.loads(packed["index"].tobytes().decode("utf-8"))
            if index.get("format") != _CACHE_FORMAT:
                return {}
            flat = {name: packed[name] for name in packed.files if name != "index"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return {}
    layouts, attrs = index["layouts"], index["attrs"]
    offsets = dict.fromkeys(flat, 0)
    out = {}
    for key, digest, layout, texts in index["entries"]:
        arrays = {}
        for name, dims, dtype, shape, attrs_id in layouts[layout]:
            if dtype == "string":
                values = np.asarray(texts[name], dtype=_TEXT).reshape(shape)
            else:
                member, size = f"{name}|{dtype}", math.prod(shape)
                start = offsets[member]
                values = flat[member][start : start + size].reshape(shape)
                offsets[member] = start + size
            arrays[name] = (tuple(dims), values, attrs[attrs_id])  # one dict, shared
        out[key] = (digest, arrays)
    return out


def save_cache(path, entries: dict) -> None:
    """Writes {key: (digest, {name: (dims, values, attrs)})} to `path` (atomically: a partial
    file is never left under that name)."""
    path = Path(path)
    layouts, attrs, numbers, index = {}, {}, {}, []
    for key, (digest, arrays) in entries.items():
        layout, texts = [], {}
        for name, (dims, values, var_attrs) in arrays.items():
            values = np.asarray(values)
            text = json.dumps(var_attrs, sort_keys=True)
            attrs_id = attrs.setdefault(text, len(attrs))
            dtype = "string" if values.dtype.kind in "OUT" else values.dtype.str
            layout.append((name, list(dims), dtype, list(values.shape), attrs_id))
            if dtype == "string":
                texts[name] = [str(v) for v in values.ravel().tolist()]
            else:
                numbers.setdefault(f"{name}|{dtype}", []).append(values.ravel())
        layout_id = layouts.setdefault(json.dumps(layout), len(layouts))
        index.append((key, digest, layout_id, texts))
    header = {
        "format": _CACHE_FORMAT,
        "layouts": [json.loads(text) for text in layouts],
        "attrs": [json.loads(text) for text in attrs],
        "entries": index,
    }
    packed = {member: np.concatenate(parts) for member, parts in numbers.items()}
    packed["index"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **packed)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
