"""One reading of a sweep's configuration: its files, overlays and command-line overrides.

ntkpipe reads every config file itself (Snakemake's own reading is discarded), each with
:func:`ntkpipe.sweep.sources.read_source` (one YAML loader: YAML 1.2 numbers, duplicate keys
refused, syntax errors with the file, line and column).

The order, later winning (mappings merged key by key, lists and scalars replaced):

1. the config files, in the order given (``--configfile base.yaml overlay.yaml``); with no
   file at all, the default sweep ``config/config.yaml``, and only then;
2. the ``--config key=value`` overrides. Snakemake hands their values over as text (nested
   values: every scalar is text); each is coerced through the schema, so
   ``--config 'training={learning_rate: 0.1}'`` sets the number 0.1, ``'data={classes: [3,
   5]}'`` a list of integers and ``'kernels={final: false}'`` a boolean. A dotted key stands for
   the nested one (``training.learning_rate=0.1``, with ``ntkpipe validate --config``;
   Snakemake's own ``--config`` accepts no dot in a key, so there write the nested form); the
   keys of ``sweep`` are dotted config paths as in a file: ``'sweep={model.width: [16, 32]}'``.

The merged configuration must have a ``name:`` (its results go to ``results/<name>/``): a
config without one is refused, never merged with the default sweep.
"""

from collections.abc import Mapping
from pathlib import Path

from ntkpipe.errors import ConfigError
from ntkpipe.sweep.sources import deep_update, read_source, yaml_load
from ntkpipe.sweep.validate import sweepable_fields

__all__ = ["parse_assignments", "coerce_overrides", "resolve"]

_NULL_WORDS = ("null", "Null", "NULL", "~", "")
# The `resources` section is validated by ntkpipe.sweep.cost_settings.load_settings, not by
# the schema: the types its keys take, for coercing override text.
_RESOURCES_NODE = {
    "type": "object",
    "properties": {
        "gpu": {"type": "integer"},
        "gpu_rules": {"type": "array", "items": {"type": "string"}},
        "jobs": {"type": "string"},
    },
}


def coerce_overrides(overrides, schema):
    """Command-line overrides as typed values, read through the schema.

    Args:
        overrides: key → value, values as text or as Snakemake parsed them (nested values
            with every scalar as text); a dotted key (outside ``sweep``) is the nested one.
        schema: the configuration's JSON schema.

    Returns:
        A new nested dict: text is kept where the field takes text, else read as YAML 1.2
        (``0.1`` → 0.1, ``[3, 5]`` → [3, 5], ``false`` → False, ``null`` → None). Unknown keys
        are kept as given (the validation names them).
    """
    nested = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        if parts[0] == "sweep" and len(parts) > 1:
            parts = ["sweep", ".".join(parts[1:])]
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _coerce(nested, {**schema, "properties": _top_nodes(schema)})


def resolve(configfiles=(), overrides=None, default=None, schema=None):
    """The raw configuration of a sweep: its files merged in order, then the overrides.

    Args:
        configfiles: the config files in the order given (``--configfile``); none: ``default``.
        overrides: the ``--config`` key → value mapping (see :func:`coerce_overrides`).
        default: the default sweep's file, used only when no file is given.
        schema: the configuration's JSON schema (for coercing the overrides).

    Returns:
        ``(raw, origins)``: the merged mapping (``resources`` included, nothing validated
        yet) and the files read, in order.

    Raises:
        ConfigError: a file cannot be read, or the merged configuration has no ``name``.
    """
    files = [Path(f) for f in configfiles] or ([Path(default)] if default else [])
    raw = {}
    for path in files:
        deep_update(raw, read_source(path)[0])
    if overrides:
        deep_update(raw, coerce_overrides(dict(overrides), schema or {}))
    if "name" not in raw:
        given = ", ".join(map(str, files)) or "no config file"
        raise ConfigError(
            [
                f"name: missing ({given}); every sweep names itself, e.g. name: my-sweep "
                f"(its results go to results/<name>/). A config file is never merged with "
                f"the default sweep config/config.yaml, which runs only when no config is given"
            ]
        )
    return raw, files


def parse_assignments(entries):
    """``key=value`` texts (``ntkpipe validate --config``) as key → value text.

    Raises:
        ConfigError: an entry without ``=``.
    """
    out = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--config: {entry!r} is not key=value (e.g. model.width=64)"])
        out[key.strip()] = value
    return out


# ----------------------------------------------------------------------------- private


def _top_nodes(schema):
    return {**schema.get("properties", {}), "resources": _RESOURCES_NODE}


def _types(node):
    types = (node or {}).get("type", [])
    return [types] if isinstance(types, str) else list(types)


def _coerce(value, node):
    if node is None:
        return value
    types = _types(node)
    if isinstance(value, Mapping):
        if "properties" in node:
            props = node["properties"]
            return {k: _coerce(v, props.get(k)) for k, v in value.items()}
        if isinstance(node.get("additionalProperties"), dict):  # the sweep section
            return {k: _coerce_axis(k, v) for k, v in value.items()}
        return dict(value)
    if isinstance(value, list):
        return [_coerce(v, node.get("items")) for v in value]
    if isinstance(value, str):
        if "string" in types and not ("null" in types and value in _NULL_WORDS):
            return value
        if value in ("True", "False"):  # Python's spelling, as Snakemake's top level takes it
            return value == "True"
        parsed = yaml_load(value, origin="--config")
        return _coerce(parsed, node) if isinstance(parsed, list | dict) else parsed
    if isinstance(value, int) and not isinstance(value, bool) and types == ["string"]:
        return str(value)
    return value


def _coerce_axis(key, values):
    """A sweep axis' values through its field's schema node (unknown fields kept as given)."""
    node = sweepable_fields().get(key)
    if isinstance(values, str):
        values = yaml_load(values, origin="--config")
    if not isinstance(values, list) or node is None:
        return values
    return [_coerce(v, node) for v in values]
