"""Reading one configuration source: a YAML or JSON file, or a mapping, before any check.

One YAML loader for every config ntkpipe reads: YAML 1.2 numbers (``1e-2`` is 0.01, not the
text "1e-2" of YAML 1.1), duplicate keys refused, syntax errors reported with the file, line and
column. ``deep_update`` merges one source into another (later files overlay earlier ones).

The bottom of the sweep's reading: it imports nothing of ntkpipe but errors, so that
:mod:`ntkpipe.sweep.validate` (the schema) and :mod:`ntkpipe.sweep.loading` (files and overrides
merged, coerced through the schema) both build on it without a cycle.
"""

import copy
import json
import re
from collections.abc import Hashable, Mapping
from pathlib import Path

import yaml

from ntkpipe.errors import ConfigError

__all__ = ["yaml_load", "read_source", "deep_update"]


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


# ----------------------------------------------------------------------------- private


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
