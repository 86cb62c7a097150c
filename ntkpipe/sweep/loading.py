"""One reading of a sweep's configuration: its files, overlays and command-line overrides.

ntkpipe reads every config file itself (Snakemake's own reading is discarded), with one YAML
loader: YAML 1.2 numbers (``1e-2`` is 0.01, not the text "1e-2" of YAML 1.1), duplicate keys
refused, syntax errors reported with the file, line and column.

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

import copy
import json
import re
from collections.abc import Hashable, Mapping
from pathlib import Path

import yaml

from ntkpipe.errors import ConfigError

__all__ = [
    "yaml_load",
    "read_source",
    "parse_assignments",
    "coerce_overrides",
    "resolve",
    "resolve_sweep",
    "deep_update",
]

_NULL_WORDS = ("null", "Null", "NULL", "~", "")
# The `resources` section is validated by ntkpipe.sweep.cost.load_settings, not by the schema:
# the types its keys take, for coercing override text.
_RESOURCES_NODE = {
    "type": "object",
    "properties": {
        "gpu": {"type": "integer"},
        "gpu_rules": {"type": "array", "items": {"type": "string"}},
        "jobs": {"type": "string"},
    },
}


def yaml_load(text, origin="<text>"):
    """Parses YAML text with ntkpipe's loader (YAML 1.2 numbers, duplicate keys refused).

    Raises:
        ConfigError: a syntax error or a duplicate key, naming ``origin``, line and column.
    """
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{origin}:{mark.line + 1}:{mark.column + 1}" if mark else str(origin)
        what = " ".join(filter(None, (err.context, err.problem)))
        raise ConfigError([f"{where}: not valid YAML: {what}"], source=origin) from None
    except yaml.YAMLError as err:
        raise ConfigError([f"{origin}: not valid YAML: {err}"], source=origin) from None


def read_source(source):
    """A configuration's raw mapping and where it came from, before any check.

    Args:
        source: path of a YAML or JSON file (see :func:`yaml_load`), or a mapping (copied, so
            the caller's is not modified).

    Returns:
        ``(raw, origin)``: a new dict (``{}`` for an empty file) and the path (None for a
        mapping).

    Raises:
        ConfigError: the file cannot be read, is not valid YAML / JSON, or does not hold a
            mapping.
    """
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source)), None
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"config file {str(path)!r} cannot be read: {err}"]) from None
    if path.suffix == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            where = f"{path}:{err.lineno}:{err.colno}"
            raise ConfigError([f"{where}: not valid JSON: {err.msg}"], source=path) from None
    else:
        raw = yaml_load(text, origin=path)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"the file holds a {type(raw).__name__}, expected a mapping of sections"],
            source=path,
        )
    return raw, path


def deep_update(base, update):
    """Merges ``update`` into ``base`` in place: mappings key by key, anything else replaced."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


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


def resolve_sweep(configfiles=(), overrides=None, default=None, memory_mb=None):
    """What the workflow runs for these files and overrides: the validated sweep and its runs.

    Args:
        configfiles, overrides, default: as for :func:`resolve`.
        memory_mb: memory a job may use (MiB); None: nothing checked against memory.

    Returns:
        ``(sweep, settings, runs)``: ``ntkpipe.sweep.runs.load_config`` of the merged mapping,
        ``ntkpipe.sweep.cost.load_settings`` of its ``resources`` and the expanded runs.

    Raises:
        ConfigError: every problem, as the workflow reports it before any job.
    """
    from ntkpipe.sweep import cost, runs, validate_checks

    raw, files = resolve(configfiles, overrides, default, runs.load_schema())
    origin = files[-1] if files else None
    settings = cost.load_settings(raw.pop("resources", None))
    sweep = runs.load_config(raw)
    expanded = runs.expand_runs(sweep)
    problems = validate_checks.memory_problems(
        expanded, settings, memory_mb, "this machine's memory"
    )
    if problems:
        raise ConfigError(problems, source=origin)
    return sweep, settings, expanded


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
    from ntkpipe.sweep.validate import sweepable_fields

    node = sweepable_fields().get(key)
    if isinstance(values, str):
        values = yaml_load(values, origin="--config")
    if not isinstance(values, list) or node is None:
        return values
    return [_coerce(v, node) for v in values]


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a float (YAML 1.1 reads it as text) and refuses
    duplicate keys (which YAML would silently merge, keeping the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    f"while reading a mapping (line {node.start_mark.line + 1})",
                    None,
                    f"key {key!r} given twice",
                    key_node.start_mark,
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
