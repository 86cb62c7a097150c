"""Points of a sweep grid: a config with dotted paths set, the axis names and the value text that
name a point in run ids and in error messages, and k of a point. Shared by the validation and
the run expansion (light: standard library only).
"""

from __future__ import annotations

from ntkpipe import datasets
from ntkpipe.datasets import arrays
from ntkpipe.sweep import facts

__all__ = ["assign", "axis_name", "format_value", "output_dim"]


def output_dim(config):
    """k, the number of network outputs of a resolved config (:func:`facts.n_outputs`); with
    real-valued targets (data.dataset arrays, data.classes null) the columns of y_train."""
    if config["data"].get("classes") is None:
        from ntkpipe.datasets import arrays

        return arrays.target_dim(config["data"], config["training"]["loss"])
    return facts.n_outputs(len(config["data"]["classes"]), config["training"]["loss"])


def data_input_shape(config):
    """The shape of one example of a config's dataset (None where its arrays file has
    problems, which the validation reports)."""
    d = config["data"]
    if d["dataset"] != "arrays":
        return datasets.INPUT_SHAPES[d["dataset"]]
    if arrays.problems(d, config["training"]["loss"]):
        return None
    return arrays.input_shape(d)


def assign(config, assignment):
    """A copy of the config (sections copied, not deep) with dotted paths set.

    Args:
        config: a configuration (sections as dicts).
        assignment: dotted path (``model.width`` or a top-level key) → value.
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for key, value in assignment.items():
        parts = key.split(".")
        if len(parts) == 1:
            out[key] = value
            continue
        node = out[parts[0]]
        for part in parts[1:-1]:  # model.options.<key>: the nested mapping is copied too
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[parts[-1]] = value
    return out


def axis_name(key):
    """The short axis name of a dotted sweep path, its last component (``model.width`` →
    ``width``): it names the axis in run ids and in error messages."""
    return key.split(".")[-1]


def format_value(value):
    """Stable text of a swept value: ints as ints, floats in shortest repr, lists with _.

    The text of a value in a run id (``width~1024``) and in the sweep point an error
    message names."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value).replace("e+", "e")
    if isinstance(value, list | tuple):
        return "_".join(format_value(v) for v in value)
    return str(value)
