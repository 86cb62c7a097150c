"""Custom models (``model.architecture: custom``) before any job: the factory's text, where its
source lives, and the probe that builds the module once to check it and measure its costs.

A custom model is built by ``model.factory`` (``"package.module:function"`` or
``"path/to/file.py:function"``), called with the run's model section (:func:`factory_section`)
and returning a ``flax.linen.Module`` or an ``(init, apply)`` pair. What a config cannot say
about it (can the factory be imported, does it return a module, is its output [n, k], are its
parameters floating point, how many FLOPs is a forward pass) is only known by running it, which
needs JAX and the user's code. This package is imported by the Snakefile at every start and must
stay light (no JAX), so the module is built in a **subprocess probe**
(``python -m ntkpipe.jobs.probe_model``):

* run only when a sweep has custom runs, once for all of its distinct (model section, input
  shape, k, precision) points, never for the built-in architectures;
* cached on disk (:func:`cache_dir`) under a digest of that point, the probe's version and the
  bytes of the factory's source file (found without importing it), so the workflow's later starts
  and ``ntkpipe plan`` read a JSON file instead of starting JAX; editing the factory's module
  probes again. A factory whose file cannot be located without importing it is probed every time
  (never served from a stale cache);
* the probe builds the module with abstract shapes only (``jax.eval_shape``; XLA compiles the
  forward and the backward pass on :data:`PROBE_BATCH` examples, nothing is allocated at the
  run's width), so it costs seconds whatever the width.

The probe's answer (errors naming ``model.factory``; parameters P, FLOPs of a forward pass per
example F and floats kept per example for backpropagation A, from XLA's own
``cost_analysis`` / ``memory_analysis``) feeds the validation (:func:`problems`) and the cost
model (:func:`net_sizes`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

__all__ = [
    "PROBE_BATCH",
    "PROBE_TIMEOUT_S",
    "PROBE_VERSION",
    "cache_dir",
    "factory_problem",
    "factory_section",
    "net_sizes",
    "parse_factory",
    "probe",
    "problems",
    "source_file",
]

PROBE_VERSION = 1
"""Bumped when the probe measures differently: old cache entries are then not read."""
PROBE_BATCH = 4
"""Examples of the probe's compiled steps; FLOPs and activations are divided by it."""
PROBE_TIMEOUT_S = 900
"""Longest the probe subprocess may take (a factory that hangs is then a model.factory error)."""
FACTORY_KEYS = (
    "width",
    "depth",
    "out_dim",
    "input_shape",
    "activation",
    "parameterization",
    "w_std",
    "b_std",
    "precision",
    "options",
)
"""The keys of the mapping a factory receives (README, "Your own model")."""

_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_FUNCTION_RE = re.compile(r"^[A-Za-z_]\w*$")
_FIELD = "model.factory"
_MEMO: dict[str, dict] = {}


def parse_factory(text) -> tuple[str, str, str]:
    """``(kind, target, function)`` of a ``model.factory`` text; kind is "file" or "module".

    Raises:
        ValueError: the text is not ``"package.module:function"`` or ``"path.py:function"``.
    """
    target, sep, function = str(text).rpartition(":")
    if not sep or not _FUNCTION_RE.match(function) or not target:
        raise ValueError(
            f'{_FIELD}: {text!r} is not "package.module:function" or '
            f'"path/to/file.py:function" (a module or a .py file, a colon, the function\'s name)'
        )
    if target.endswith(".py"):
        return "file", target, function
    if not _MODULE_RE.match(target):
        raise ValueError(
            f"{_FIELD}: {target!r} (before the colon) is neither a dotted module name nor a "
            f'.py file; e.g. "mypackage.models:attention" or "models/attention.py:attention"'
        )
    return "module", target, function


def source_file(text) -> Path | None:
    """The factory's source file, found without importing anything (None if not found so).

    A ``.py`` target is relative to the working directory; a module is looked up as
    ``<entry>/a/b.py`` or ``<entry>/a/b/__init__.py`` in the working directory, then ``sys.path``.
    """
    kind, target, _ = parse_factory(text)
    if kind == "file":
        path = Path(target)
        return path.resolve() if path.is_file() else None
    parts = target.split(".")
    for entry in [os.getcwd(), *sys.path]:
        base = Path(entry or ".").joinpath(*parts)
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path.resolve()
    return None


def factory_problem(model: dict) -> str | None:
    """What is wrong with ``model.factory`` in a config's model section, without importing."""
    factory = model.get("factory")
    if model.get("architecture") != "custom":
        if factory is not None:
            return (
                f"{_FIELD}: {factory!r} is set, but model.architecture is "
                f"{model.get('architecture')!r}; the factory is used only with model.architecture"
                f" custom (set it, or remove model.factory)"
            )
        if model.get("options"):
            return (
                f"model.options: {model['options']!r} is set, but model.architecture is "
                f"{model.get('architecture')!r}; options are passed only to a custom model's "
                f"factory"
            )
        return None
    if factory is None:
        return (
            f'{_FIELD}: null, but model.architecture custom needs it: "package.module:function"'
            f' or "path/to/file.py:function" returning a flax.linen.Module'
        )
    try:
        kind, target, _ = parse_factory(factory)
    except ValueError as err:
        return str(err)
    if kind == "file" and not Path(target).is_file():
        return (
            f"{_FIELD}: {factory!r}: the file {target} does not exist (relative paths are "
            f"relative to the working directory {os.getcwd()})"
        )
    return None


def factory_section(model: dict, input_shape, out_dim: int, precision: str) -> dict:
    """The mapping a factory is called with: the run's model section (width, depth, activation,
    parameterization, w_std, b_std, options) plus out_dim k, input_shape of one example and the
    run's precision. Keys: :data:`FACTORY_KEYS`."""
    section = {key: model.get(key) for key in FACTORY_KEYS}
    section.update(
        out_dim=int(out_dim),
        input_shape=[int(s) for s in input_shape],
        precision=precision,
        options=dict(model.get("options") or {}),
    )
    return section


def probe_spec(config: dict, input_shape) -> dict:
    """What the probe builds for one run config: the factory and its section, and whether the
    readout must serve K̂ (kernels.nngp)."""
    from ntkpipe.sweep.points import output_dim

    model = config["model"]
    return {
        "factory": model["factory"],
        "section": factory_section(
            model, input_shape, output_dim(config), config.get("precision", "float32")
        ),
        "nngp": bool(config.get("kernels", {}).get("nngp", True)),
    }


def probe(specs: list[dict]) -> list[dict]:
    """The probe's answer for each spec (:func:`probe_spec`), from the cache or one subprocess.

    Each answer: ``{"errors": [...]}`` (messages naming model.factory), and where there are none,
    ``params`` P, ``forward_flops`` F and ``activations`` A per example, ``readout`` (the layer
    taken as the readout) and ``layers`` (the kernel leaves, in layer order).
    """
    texts = [json.dumps([spec, _source_stamp(spec["factory"])], sort_keys=True) for spec in specs]
    answers = [_MEMO.get(text) for text in texts]
    keys = [None if answer else _digest(spec) for spec, answer in zip(specs, answers, strict=True)]
    answers = [a or (_read_cache(k) if k else None) for a, k in zip(answers, keys, strict=True)]
    missing = [i for i, answer in enumerate(answers) if answer is None]
    if missing:
        fresh = _run_probe([specs[i] for i in missing])
        for i, answer in zip(missing, fresh, strict=True):
            answers[i] = answer
            if keys[i] and not answer.get("crashed"):
                _write_cache(keys[i], answer)
    for text, answer in zip(texts, answers, strict=True):
        if not answer.get("crashed"):
            _MEMO[text] = answer  # one process (a sweep's start) reads each answer once
    return answers


def problems(configs: list[dict], input_shape_of) -> list[str]:
    """Problems of the custom models of these (point) configs: the factory's text and file, then
    (only if those are fine) what the probe finds. ``input_shape_of(config)`` is the data's
    shape of one example, or None when the data has problems of its own (then not probed)."""
    errors, specs = [], {}
    for config in configs:
        model = config["model"]
        problem = factory_problem(model)
        if problem:
            errors.append(problem)
            continue
        if model["architecture"] != "custom":
            continue
        shape = input_shape_of(config)
        if shape is not None:
            spec = probe_spec(config, shape)
            specs[json.dumps(spec, sort_keys=True)] = spec
    answers = probe(list(specs.values())) if specs else []
    for spec, answer in zip(specs.values(), answers, strict=True):
        errors += [_at(message, spec) for message in answer["errors"]]
    return list(dict.fromkeys(errors))


def net_sizes(config: dict, input_shape) -> dict:
    """P, F and A of a custom run config (the cost model's ``Net``), from the probe.

    Raises:
        ValueError: the probe found problems (their messages).
    """
    (answer,) = probe([probe_spec(config, input_shape)])
    if answer["errors"]:
        raise ValueError("; ".join(answer["errors"]))
    return {key: answer[key] for key in ("params", "forward_flops", "activations")}


def cache_dir() -> Path:
    """Where probe answers are cached: ``$NTKPIPE_CACHE_DIR/probes``, else
    ``$XDG_CACHE_HOME/ntkpipe/probes`` (``~/.cache/ntkpipe/probes``). Shared by every sweep: an
    answer depends only on the model point and the factory's source, never on a results folder."""
    root = os.environ.get("NTKPIPE_CACHE_DIR")
    if root:
        return Path(root) / "probes"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "ntkpipe" / "probes"


# ----------------------------------------------------------------------------- private


def _at(message, spec):
    section = spec["section"]
    where = f"width {section['width']}, depth {section['depth']}"
    if section["options"]:
        where += ", options " + ", ".join(f"{k}={v!r}" for k, v in section["options"].items())
    return f"{message} (for {where})"


def _source_stamp(factory: str):
    """(path, size, mtime) of the factory's source: the in-process memo's part of the key."""
    path = source_file(factory)
    if path is None:
        return None
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _digest(spec: dict) -> str | None:
    """The cache key of a spec, None when the factory's source cannot be found unimported."""
    from ntkpipe import __version__

    path = source_file(spec["factory"])
    if path is None:
        return None
    text = json.dumps(
        {"spec": spec, "probe": PROBE_VERSION, "ntkpipe": __version__}, sort_keys=True
    )
    digest = hashlib.sha256(text.encode())
    digest.update(path.read_bytes())
    return digest.hexdigest()


def _read_cache(key: str) -> dict | None:
    try:
        answer = json.loads((cache_dir() / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) and "errors" in answer else None


def _write_cache(key: str, answer: dict) -> None:
    from ntkpipe.io.atomic import atomic_write_text

    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_dir() / f"{key}.json", json.dumps(answer, sort_keys=True))
    except OSError:
        pass  # a cache is only a shortcut: an unwritable one probes again next time


@functools.lru_cache(maxsize=64)
def _run_probe_cached(payload: str) -> str:
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")  # measure on the CPU; never take a login node's GPU
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ntkpipe.jobs.probe_model"],
            input=payload,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return json.dumps({"crashed": f"no answer within {PROBE_TIMEOUT_S} s (does it hang?)"})
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return json.dumps({"crashed": tail or f"exit status {done.returncode}"})
    return done.stdout


def _run_probe(specs: list[dict]) -> list[dict]:
    payload = json.dumps(specs, sort_keys=True)
    out = json.loads(_run_probe_cached(payload).strip().splitlines()[-1])
    if isinstance(out, dict) and "crashed" in out:
        message = (
            f"{_FIELD}: probing the custom model failed (python -m ntkpipe.jobs.probe_model "
            f"exited with an error): {out['crashed']}"
        )
        return [{"errors": [message], "crashed": True} for _ in specs]
    return out
