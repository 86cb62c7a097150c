"""Custom models (``model.architecture: custom``): importing ``model.factory``, building the
network it describes, and checking it against the task.

The factory is called with :func:`ntkpipe.sweep.custom_model.factory_section` of the run (width,
depth, out_dim k, input_shape, activation, parameterization, w_std, b_std, precision, options)
and returns a ``flax.linen.Module`` or an ``(init, apply)`` pair with ``init(key, x) -> params``
and ``apply(params, x) -> f(x)``. Inputs are the dataset's flat rows x [n, d_in] (reshape them
with ``input_shape``); ``apply`` must return f(x) [n, k]. Parameters are a nested mapping with
string keys whose leaves are floating-point arrays; the weight matrices of the layers are the
leaves named ``kernel`` (as ``flax.linen.Dense`` / ``Conv`` name them): they name the layers of
the weight-change figures (``block_0/attention/query``), and the last of them in natural name
order is the readout whose tangent kernel is K̂ (§2.3.1). Floating leaves are cast to the run's
precision at initialization.

Used by the jobs (:func:`ntkpipe.jobs._job.build_network`) and by the probe
(:mod:`ntkpipe.jobs.probe_model`) that checks a sweep before any job.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ntkpipe.core import models
from ntkpipe.errors import StageError, StoreError
from ntkpipe.io.paramtree import collect_leaves
from ntkpipe.sweep import custom_model

__all__ = ["FunctionPair", "build_custom", "custom_problems", "load_factory"]

_FIELD = "model.factory"


class FunctionPair:
    """An ``(init, apply)`` pair (or a Flax module) as the ``module`` of a :class:`Network`,
    with every floating parameter cast to the run's dtype at initialization."""

    def __init__(self, init, apply, dtype):
        self._init, self._apply, self.dtype = init, apply, dtype

    def init(self, key, x):
        params = self._init(key, x)
        return jax.tree_util.tree_map(self._cast, params)

    def apply(self, params, x):
        return self._apply(params, x)

    def _cast(self, leaf):
        leaf = jnp.asarray(leaf)
        return leaf.astype(self.dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf


def load_factory(text: str):
    """The factory function named by ``model.factory`` (imported; the working directory is on
    the import path, as for ``python -m``).

    Raises:
        StageError: it cannot be imported, or names no callable.
    """
    try:
        kind, target, name = custom_model.parse_factory(text)
    except ValueError as err:
        raise StageError(str(err)) from None
    try:
        module = _import_file(target) if kind == "file" else _import_module(target)
    except Exception as err:  # the user's module: anything it raises is a bad factory
        raise StageError(
            f"{_FIELD}: {text!r} cannot be imported: {type(err).__name__}: {err}"
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise StageError(
            f"{_FIELD}: {text!r}: {target} has no function {name!r} "
            f"(it has: {', '.join(n for n in dir(module) if not n.startswith('_'))})"
        )
    return function


def build_custom(model: dict, input_shape, out_dim: int, dtype) -> models.Network:
    """The network of a custom run: the factory called with the run's model section.

    Args:
        model: the run config's model section (architecture custom, factory, options, …).
        input_shape: shape of one example (H, W, C) or (d_in,); inputs are flat rows.
        out_dim: k, the number of outputs the task needs.
        dtype: the run's floating dtype (np.float32 or np.float64).

    Raises:
        StageError: the factory cannot be imported, raises, or returns no module / pair.
    """
    factory = load_factory(model["factory"])
    precision = "float64" if np.dtype(dtype) == np.float64 else "float32"
    section = custom_model.factory_section(model, input_shape, out_dim, precision)
    try:
        built = factory(section)
    except Exception as err:  # the user's code
        raise StageError(
            f"{_FIELD}: {model['factory']!r} raised {type(err).__name__}: {err} when called "
            f"with the model section {section}"
        ) from None
    if isinstance(built, nn.Module):
        init, apply = built.init, built.apply
    elif isinstance(built, tuple | list) and len(built) == 2 and all(map(callable, built)):
        init, apply = built
    else:
        raise StageError(
            f"{_FIELD}: {model['factory']!r} returned {type(built).__name__} "
            f"{_short(built)}; it must return a flax.linen.Module or an (init, apply) pair"
        )
    return models.Network(module=FunctionPair(init, apply, dtype), out_dim=int(out_dim))


def custom_problems(net: models.Network, input_shape, out_dim: int, dtype, nngp: bool):
    """What makes a built custom network unusable for the task, with abstract shapes only.

    Returns:
        ``(messages, params_shape)``: messages naming model.factory (empty when usable) and
        the parameters' abstract tree (None when init failed).
    """
    x = jax.ShapeDtypeStruct((custom_model.PROBE_BATCH, math.prod(input_shape)), dtype)
    try:
        params = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)
    except Exception as err:  # the user's code
        return [f"{_FIELD}: init(key, x [n, {x.shape[1]}]) failed: {_error(err)}"], None
    tree_problem = _tree_problem(params) or _storable_problem(params)
    if tree_problem:
        return [tree_problem], None
    errors = []
    bad = [
        f"{name} ({leaf.dtype})"
        for name, leaf in _leaves(params)
        if not jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    if bad:
        errors.append(
            f"{_FIELD}: parameters must be floating point (they are differentiated and trained);"
            f" not so: {', '.join(bad[:5])}"
        )
    try:
        out = jax.eval_shape(net.apply, params, x)
    except Exception as err:  # the user's code
        return [
            *errors,
            f"{_FIELD}: apply(params, x [n, {x.shape[1]}]) failed: {_error(err)}",
        ], None
    if getattr(out, "shape", None) != (x.shape[0], out_dim):
        errors.append(
            f"{_FIELD}: apply(params, x) must return f(x) [n, {out_dim}] for this task "
            f"(n = {x.shape[0]} examples, k = {out_dim} outputs); it returned "
            f"{getattr(out, 'shape', type(out).__name__)}"
        )
    else:  # the readout's shape is only worth naming when the output's is right
        errors += _readout_problems(params, out_dim, nngp)
    return errors, params


# ----------------------------------------------------------------------------- private


def _readout_problems(params, out_dim, nngp):
    layers = models.kernel_leaves(params)
    if not layers:
        return [
            f"{_FIELD}: the parameters have no leaf named 'kernel' (the weight matrices of "
            f"flax.linen.Dense / Conv); name the layers' weights 'kernel': they name the layers "
            f"of the weight-change figures and the readout of K̂"
        ]
    name, kernel = list(layers.items())[-1]
    if nngp and kernel.shape[-1] != out_dim:
        return [
            f"{_FIELD}: the layer {name!r}, the last 'kernel' in natural name order, is taken "
            f"as the readout for K̂ (kernels.nngp), but its kernel has shape {kernel.shape}, not "
            f"[..., {out_dim}]; name the readout so it sorts last (e.g. 'readout'), or set "
            f"kernels.nngp: false"
        ]
    return []


def _tree_problem(params):
    if not isinstance(params, Mapping):
        return (
            f"{_FIELD}: init must return a nested mapping of parameters (Flax variables); "
            f"it returned {type(params).__name__}"
        )
    if set(params) - {"params"}:
        return (
            f"{_FIELD}: the module has variable collections {sorted(set(params) - {'params'})} "
            f"besides 'params' (batch statistics, caches): only stateless modules are supported "
            f"(f(θ, x) must be a pure function of θ)"
        )
    return None


def _storable_problem(params):
    try:
        collect_leaves(params, (), [])
    except StoreError as err:
        return f"{_FIELD}: the parameters cannot be stored: {err}"
    return None


def _leaves(tree, path=()):
    if isinstance(tree, Mapping):
        for key, sub in tree.items():
            yield from _leaves(sub, (*path, str(key)))
    else:
        yield "/".join(path), tree


def _import_module(target):
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(target)


def _import_file(target):
    path = Path(target).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    name = f"ntkpipe_custom_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _short(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _error(err):
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
