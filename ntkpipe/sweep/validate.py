"""Reading and validating a sweep configuration: the JSON schema, its defaults, cross-field checks.

``load_config`` checks a configuration against the JSON schema
``ntkpipe/sweep/schemas/config.schema.yaml`` (Draft 2020-12, no unknown keys anywhere; the
only place defaults live), fills in the defaults, then checks what a schema cannot
(dataset sizes, files on disk, optimizer options, every sweep value). All problems are
reported together in one ``ConfigError``, each naming the dotted field, the value and
what is allowed, e.g. ``model.activation: 'softplus' is not one of relu, erf, tanh,
identity``.

Reading one file is in :mod:`ntkpipe.sweep.sources`, merging files and overrides in
:mod:`ntkpipe.sweep.loading` (which builds on this module), the cross-field checks in
:mod:`ntkpipe.sweep.validate_checks`. Expanding a sweep into runs, run ids and per-stage subsets
is in :mod:`ntkpipe.sweep.runs`; this module imports nothing from either.
"""

import copy
import difflib
import functools
import math
import re
from pathlib import Path

import jsonschema
import yaml

from ntkpipe.errors import ConfigError
from ntkpipe.sweep import validate_checks
from ntkpipe.sweep.cost_settings import load_settings
from ntkpipe.sweep.points import assign, axis_name, format_value, output_dim
from ntkpipe.sweep.sources import read_source
from ntkpipe.sweep.validate_checks import MissingDataWarning, data_files_optional

__all__ = [
    "SCHEMA_PATH",
    "VALUE_PATTERN",
    "load_schema",
    "load_config",
    "output_dim",
    "sweepable_fields",
    "assign",
    "axis_name",
    "format_value",
    "MissingDataWarning",
    "data_files_optional",
]

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"

VALUE_PATTERN = r"[A-Za-z0-9_.\-]+"
"""Regex (no anchors, no groups) of a swept string value: it becomes part of run ids,
directory names and Snakemake wildcards (``ntkpipe.sweep.runs.run_id_pattern``)."""

_VALUE_RE = re.compile(rf"^{VALUE_PATTERN}$")
_OPTION_RE = re.compile(r"^model\.options\.[A-Za-z_][A-Za-z0-9_]*$")
"""Sweep keys of a custom model's free options (model.options.<key>)."""
_SWEEPABLE_SECTIONS = ("data", "model", "training", "kernels")
_SWEEPABLE_TOP = ("precision",)


def load_schema():
    """The configuration's JSON schema (Draft 2020-12) as a dict (a fresh copy)."""
    return copy.deepcopy(_schema())


def load_config(source):
    """Reads, validates and completes a sweep configuration.

    Args:
        source: path of a YAML file, or a mapping (e.g. Snakemake's ``config``); a
            mapping is not modified. Its ``resources`` section (how jobs are scheduled, never
            part of a run) is checked by :func:`ntkpipe.sweep.cost_settings.load_settings`
            and left out of the result.

    Returns:
        The configuration with every default filled in, numbers normalized (integer
        fields as int, other numbers as float) and ``sweep`` mapping each dotted path
        to its list of values. Loading a loaded configuration returns an equal one.

    Raises:
        ConfigError: every problem found, each naming the dotted field, the value
            and what is allowed.
    """
    raw, origin = read_source(source)
    if "resources" in raw:
        load_settings(raw.pop("resources"))
    schema = _schema()
    config = _fill_defaults(_custom_defaults(copy.deepcopy(raw)), schema)
    errors, invalid = _schema_errors(config, schema)
    errors += _seed_errors(raw, invalid)
    _normalize(config, schema)
    sweep_errors, axes = _sweep_errors(config, invalid)
    errors += sweep_errors
    errors += validate_checks.grid_errors(config, axes, invalid)
    errors += validate_checks.momentum_errors(config, invalid)
    errors += validate_checks.name_errors(config, invalid)
    errors += validate_checks.lr_factor_errors(raw, config, invalid)
    errors += validate_checks.seed_range_errors(config, invalid)
    if not errors:  # the probe builds the custom models of a config valid in every other way
        errors += validate_checks.custom_model_errors(config, axes)
    if errors:
        raise ConfigError(errors, source=origin)
    validate_checks.resolve_lr_factor(config)
    return config


def sweepable_fields():
    """Dotted path → schema node of every field a sweep may vary."""
    props = _schema()["properties"]
    fields = {k: props[k] for k in _SWEEPABLE_TOP}
    for section in _SWEEPABLE_SECTIONS:
        for key, node in props[section]["properties"].items():
            fields[f"{section}.{key}"] = node
    return fields


# ----------------------------------------------------------------------------- private


def _custom_defaults(raw):
    """kernels.analytic defaults to false for a custom model (``model.architecture: custom``,
    not swept): an arbitrary module has no infinite-width kernels, so the analytic stage is
    left out and the claims that need Θ and K are not applicable, rather than an error."""
    model, kernels = raw.get("model"), raw.get("kernels")
    if not isinstance(model, dict) or model.get("architecture") != "custom":
        return raw
    if "model.architecture" in (raw.get("sweep") or {}):
        return raw
    if kernels is None:
        raw["kernels"] = kernels = {}
    if isinstance(kernels, dict):
        kernels.setdefault("analytic", False)
    return raw


@functools.cache
def _schema():
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        schema = yaml.safe_load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@functools.cache
def _validator(path=()):
    """A validator of the schema node at ``path`` (keys into "properties")."""
    node = _schema()
    for key in path:
        node = node["properties"][key]
    return jsonschema.Draft202012Validator(node)


def _fill_defaults(instance, schema):
    """Fills missing keys (and null sections) with the schema's defaults, recursively."""
    props = schema.get("properties")
    if not props or not isinstance(instance, dict):
        return instance
    for key, sub in props.items():
        if instance.get(key) is None and sub.get("type") == "object":
            instance[key] = copy.deepcopy(sub.get("default", {}))
        elif key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        _fill_defaults(instance.get(key), sub)
    return instance


def _schema_errors(config, schema):
    """(messages, dotted paths holding invalid values) of the schema validation."""
    errors, invalid = [], set()
    validator = _validator()
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        if "propertyNames" in err.schema_path:
            continue  # sweep keys: _sweep_errors explains them with suggestions
        errors += _format_error(err, _dotted(err.absolute_path))
        if err.validator != "additionalProperties":
            invalid.add(_dotted(list(err.absolute_path)[:2]))
    errors += _nonfinite_errors(config, invalid)
    return errors, invalid


def _nonfinite_errors(config, invalid):
    errors = []
    for path, value in _leaves(config):
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f"{path}: {value!r} is not a finite number")
            invalid.add(path)
    return errors


def _leaves(config):
    for key, value in config.items():
        if key == "sweep":
            continue
        if isinstance(value, dict):
            for sub, leaf in value.items():
                yield f"{key}.{sub}", leaf
        else:
            yield key, value


def _format_error(err, path):
    """Messages (field, value, what is allowed) for one jsonschema error."""
    value, kind, arg = err.instance, err.validator, err.validator_value
    where = path or "the top level"
    if kind == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        return [
            f"{_join(path, k)}: unknown key{_suggest(k, allowed)}; allowed keys at "
            f"{where}: {', '.join(allowed)}"
            for k in value
            if k not in allowed
        ]
    if kind == "enum":
        return [f"{where}: {value!r} is not one of {', '.join(map(str, arg))}"]
    if kind == "type":
        types = [arg] if isinstance(arg, str) else arg
        return [f"{where}: {value!r} is not {' or '.join(_TYPE_WORDS[t] for t in types)}"]
    if kind in _BOUND_WORDS:
        return [f"{where}: {value!r} must be {_BOUND_WORDS[kind]} {arg}"]
    if kind == "minItems":
        return [f"{where}: {value!r} has {len(value)} item(s); at least {arg} are needed"]
    if kind == "uniqueItems":
        return [f"{where}: {value!r} repeats an item; each may appear once"]
    if kind == "pattern":
        return [f"{where}: {value!r} {_PATTERN_WORDS.get(arg, f'does not match {arg}')}"]
    return [f"{where}: {err.message}"]


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


_PATTERN_WORDS = {
    "^[A-Za-z0-9_][A-Za-z0-9_.-]*$": (
        "may only contain ASCII letters (A-Z, a-z), digits, _ . - and must not start with . "
        "or - (it becomes a directory name and a SLURM job name)"
    ),
    "^[^\\x00-\\x1f]*$": "must not contain control characters (newlines, tabs, …)",
}


_BOUND_WORDS = {
    "minimum": "≥",
    "maximum": "≤",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
    "maxLength": "at most this many characters:",
}


def _seed_errors(raw, invalid):
    seeds = raw.get("seeds")
    if not isinstance(seeds, dict) or seeds.get("list") is None or "seeds.list" in invalid:
        return []
    both = [k for k in ("start", "count") if k in seeds]
    if not both:
        return []
    return [
        f"seeds.list: {seeds['list']!r} given together with seeds.{' and seeds.'.join(both)}; "
        f"give either seeds.list or seeds.start / seeds.count"
    ]


def _normalize(config, schema):
    """Integer fields as int, number fields as float (so 1 and 1.0 give one run id)."""
    for section, sub in schema["properties"].items():
        if section == "sweep" or section not in config:
            continue
        if sub.get("type") == "object" and isinstance(config[section], dict):
            for key, leaf in sub["properties"].items():
                if key in config[section]:
                    config[section][key] = _normal_value(config[section][key], leaf)
        else:
            config[section] = _normal_value(config[section], sub)


def _normal_value(value, leaf):
    types = leaf.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if isinstance(value, bool) or value is None or {"integer", "number"} <= set(types):
        return value  # booleans, null, and a custom model's options: kept as given
    if isinstance(value, float) and "integer" in types and value.is_integer():
        return int(value)
    if isinstance(value, int) and "number" in types:
        return float(value)
    if isinstance(value, list) and "items" in leaf:
        return [_normal_value(v, leaf["items"]) for v in value]
    return value


def _sweep_errors(config, invalid):
    """Checks sweep keys and values; returns (messages, {key: valid values})."""
    sweep = config.get("sweep")
    if not isinstance(sweep, dict):
        return [], {}
    fields, errors, axes, shorts = sweepable_fields(), [], {}, {}
    for key, values in sweep.items():
        if f"sweep.{key}" in invalid or not isinstance(values, list):
            continue
        if key not in fields and _OPTION_RE.match(key):
            fields = {
                **fields,
                key: _schema()["properties"]["model"]["properties"]["options"][
                    "additionalProperties"
                ],
            }
        if key not in fields:
            errors.append(_unknown_sweep_key(key, fields))
            continue
        if axis_name(key) in shorts:
            errors.append(
                f"sweep.{key}: axis name {axis_name(key)!r} is also the name of "
                f"sweep.{shorts[axis_name(key)]}; axis names (the last component) must be unique"
            )
        shorts[axis_name(key)] = key
        value_errors, good = _sweep_value_errors(key, values, fields[key])
        errors += value_errors
        axes[key] = good
    return errors, axes


def _unknown_sweep_key(key, fields):
    if key.split(".")[0] in ("seeds", "name", "sweep"):
        return (
            f"sweep.{key}: {key.split('.')[0]} is not a sweep axis; set seeds.start / "
            f"seeds.count / seeds.list for seeds and run another sweep for another name"
        )
    return (
        f"sweep.{key}: unknown config field{_suggest(key, list(fields))}; sweepable fields: "
        f"{', '.join(fields)}"
    )


def _sweep_value_errors(key, values, node):
    # Each value is validated against its field's schema node. The schema has no
    # constraint that spans fields (no combinators across properties), so this equals
    # validating every expanded run config, at the cost of the lists, not of the grid;
    # what spans fields is in _CROSS_CHECKS, run at every grid point.
    validator = jsonschema.Draft202012Validator(node)
    errors, good = [], []
    for i, value in enumerate(values):
        where = f"sweep.{key}[{i}]"
        found = [m for e in validator.iter_errors(value) for m in _format_error(e, where)]
        if isinstance(value, float) and not math.isfinite(value):
            found.append(f"{where}: {value!r} is not a finite number")
        text = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
        found += [
            f"{where}: {v!r} may only contain letters, digits, _ . - (swept values become "
            f"directory names and wildcards)"
            for v in text
            if not _VALUE_RE.match(v)
        ]
        errors += found
        if not found:
            good.append(_normal_value(value, node))
    values[:] = [_normal_value(v, node) for v in values]
    return errors, good


def _dotted(path):
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = _join(out, part)
    return out


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


def _suggest(key, allowed):
    close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
    return f" (did you mean {close[0]}?)" if close else ""
