"""The neural-tangents side of the benchmarks and of the external cross-check.

Runs ONLY in the separate neural-tangents environment (neural-tangents 0.6.5 on
jax 0.4.25, see benchmarks/README.md), never in ntkpipe's own environment, and
never imports ntkpipe: the two libraries exchange arrays through ``.npz`` files.

Usage::

    /work/venvs/nt/bin/python benchmarks/nt_side.py SPEC.json IN.npz OUT.npz

``SPEC.json`` holds ``{"x64": bool, "tasks": [{"name": str, "kind": str, ...}]}``.
Input arrays of task ``name`` are read from ``IN.npz`` as ``"name/key"`` and its
output arrays are written to ``OUT.npz`` under the same scheme. One JSON object
``{name: {scalar results, e.g. timings}}`` is printed as the last line of stdout.

Task kinds (network fields: ``depth``, ``width``, ``out_dim``, ``activation``,
``parameterization``, ``w_std``, ``b_std``; ``b_std`` null or 0 means no bias):

- ``stax_kernels``: analytic infinite-width kernels of the MLP.
  In: ``x1`` [n1, d], optional ``x2`` [n2, d]. Out: ``nngp``, ``ntk`` [n1, n2]. Fields
  ``repeats`` (> 0: jit ``kernel_fn`` and time that many warm calls), ``clock``, ``deg``
  (Gauss–Hermite degree of tanh's ``ElementwiseNumerical``, default QUADRATURE_DEG);
  scalars: ``seconds``.
- ``empirical_ntk``: ``nt.empirical_ntk_fn(apply, trace_axes=(-1,), vmap_axes=0,
  implementation=...)`` on the stax MLP with the given weights.
  In: ``x1``, optional ``x2``, ``W_l`` [n_in, n_out], ``b_l`` [n_out] for l = 0..depth.
  Fields: ``implementations`` (names), ``repeats`` (0 = no timing), ``clock`` ("wall" or
  "cpu", as in _common.time_calls), ``full`` (also the
  untraced kernel, trace_axes=()), ``readout`` (also the tangent kernel of the readout
  layer's parameters alone).
  Out: ``ntk_<IMPL>`` [n1, n2], with ``full`` also ``ntk_full_<IMPL>`` [n1, n2, k, k], with
  ``readout`` also ``ntk_readout_<IMPL>`` [n1, n2];
  scalars: seconds of every timed call per implementation.
- ``gd_mse``: ``nt.predict.gradient_descent_mse``.
  In: ``k_train_train``, ``y_train``, ``t``, ``fx_train_0``, optional ``fx_test_0`` and
  ``k_test_train``. Fields: ``learning_rate``, ``repeats``, ``clock``, ``trace_axes`` (default [-1];
  [] for full kernels [n, n, k, k]).
  Out: ``fx_train_t``, ``fx_test_t``; scalars: seconds of every factory + predict.
- ``gd_mse_ensemble``: ``nt.predict.gradient_descent_mse_ensemble`` on the analytic
  kernel of the MLP. In: ``x_train``, ``y_train``, ``x_test``, ``t``. Field:
  ``learning_rate``. Out: ``{nngp,ntk}_{mean,cov}_t`` (finite times, leading time axis)
  and ``{nngp,ntk}_{mean,cov}_inf`` (t = None); the kernels used,
  ``{nngp,ntk}_{train_train,test_train,test_test}``; and ``gp_inference`` on them,
  ``gp_{nngp,ntk}_{mean,cov}``.
- ``gp_inference``: ``nt.predict.gp_inference`` on given kernels.
  In: ``{nngp,ntk}_train_train``, ``{nngp,ntk}_test_train``, ``nngp_test_test``,
  ``y_train``. Out: ``{nngp,ntk}_mean``, ``{nngp,ntk}_cov``.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

# Degree of Gauss-Hermite quadrature for activations without a closed form in
# neural-tangents (tanh): deg = 300 agrees with deg = 400 to ~1e-8 (NNGP) and 1e-7 (NTK) on
# a depth-3 tanh net with σ_w = 1.7, far below the 1e-5 tolerance of the cross-check.
QUADRATURE_DEG = 300


def main(argv: list[str]) -> None:
    """Run every task of the spec and write arrays and timings."""
    if len(argv) != 4:
        raise SystemExit(f"usage: {argv[0]} SPEC.json IN.npz OUT.npz")
    with open(argv[1]) as f:
        spec = json.load(f)

    import jax

    jax.config.update("jax_enable_x64", bool(spec.get("x64", False)))
    import numpy as np

    arrays = dict(np.load(argv[2])) if os.path.getsize(argv[2]) else {}
    out_arrays, out_scalars = {}, {}
    for task in spec["tasks"]:
        name = task["name"]
        inputs = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.split("/", 1)[0] == name}
        arrs, scalars = KINDS[task["kind"]](task, inputs)
        out_arrays.update({f"{name}/{k}": np.asarray(v) for k, v in arrs.items()})
        out_scalars[name] = scalars
    np.savez(argv[3], **out_arrays)
    print(json.dumps(out_scalars))


def stax_kernels(task: dict, inputs: dict):
    """Analytic NNGP and NTK of the MLP (neural-tangents stax); timed when ``repeats`` > 0."""
    import jax

    _, _, kernel_fn = _stax_mlp(task)
    x1, x2 = inputs["x1"], inputs.get("x2")
    if task.get("repeats", 0) > 0:
        kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    kern = kernel_fn(x1, x2, get=("nngp", "ntk"))
    seconds = _time_calls(
        lambda: kernel_fn(x1, x2, get=("nngp", "ntk")),
        task.get("repeats", 0),
        task.get("clock", "wall"),
    )
    return {"nngp": kern.nngp, "ntk": kern.ntk}, {"seconds": seconds}


def empirical_ntk(task: dict, inputs: dict):
    """Empirical NTK (traced over outputs) with each requested implementation."""
    import jax
    import jax.numpy as jnp
    import neural_tangents as nt

    _, apply_fn, _ = _stax_mlp(task)
    params = _stax_params(task, inputs)
    x1, x2 = jnp.asarray(inputs["x1"]), inputs.get("x2")
    x2 = None if x2 is None else jnp.asarray(x2)
    arrays, scalars = {}, {}
    for impl in task["implementations"]:
        implementation = getattr(nt.NtkImplementation, impl)
        fn = nt.empirical_ntk_fn(
            apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=implementation
        )
        fn = jax.jit(fn)
        arrays[f"ntk_{impl}"] = fn(x1, x2, params).block_until_ready()
        scalars[impl] = _time_calls(
            lambda fn=fn: fn(x1, x2, params), task.get("repeats", 0), task.get("clock", "wall")
        )
        if task.get("full"):
            full_fn = nt.empirical_ntk_fn(
                apply_fn, trace_axes=(), vmap_axes=0, implementation=implementation
            )
            arrays[f"ntk_full_{impl}"] = full_fn(x1, x2, params)
        if task.get("readout"):
            # tangent kernel of the readout layer's (W, b) alone, the hidden layers held fixed
            readout_fn = nt.empirical_ntk_fn(
                lambda p_out, x: apply_fn([*params[:-1], p_out], x),
                trace_axes=(-1,),
                vmap_axes=0,
                implementation=implementation,
            )
            arrays[f"ntk_readout_{impl}"] = readout_fn(x1, x2, params[-1])
    return arrays, scalars


def gd_mse(task: dict, inputs: dict):
    """Closed-form continuous gradient descent on MSE: factory plus prediction at all t."""
    import jax.numpy as jnp
    import neural_tangents as nt

    x = {k: jnp.asarray(v) for k, v in inputs.items()}

    def factory_and_predict():
        predict = nt.predict.gradient_descent_mse(
            x["k_train_train"],
            x["y_train"],
            learning_rate=task["learning_rate"],
            trace_axes=tuple(task.get("trace_axes", (-1,))),
        )
        if "fx_test_0" in x:
            return predict(x["t"], x["fx_train_0"], x["fx_test_0"], x["k_test_train"])
        return predict(x["t"], x["fx_train_0"]), None

    fx_train_t, fx_test_t = factory_and_predict()
    arrays = {"fx_train_t": fx_train_t}
    if fx_test_t is not None:
        arrays["fx_test_t"] = fx_test_t
    seconds = _time_calls(factory_and_predict, task.get("repeats", 0), task.get("clock", "wall"))
    return arrays, {"seconds": seconds}


def gd_mse_ensemble(task: dict, inputs: dict):
    """Mean and covariance of the infinite ensemble (NNGP and NTK regimes), Eq. 13-16.

    Also returns the analytic kernels it used and ``gp_inference`` on them, so that the other
    side can evaluate its own predictive formulas on exactly the same kernels.
    """
    import neural_tangents as nt

    _, _, kernel_fn = _stax_mlp(task)
    x_train, x_test, y_train = inputs["x_train"], inputs["x_test"], inputs["y_train"]
    predict = nt.predict.gradient_descent_mse_ensemble(
        kernel_fn, x_train, y_train, learning_rate=task["learning_rate"]
    )
    arrays = {}
    for t_key, t in (("t", inputs["t"]), ("inf", None)):
        out = predict(t, x_test, ("nngp", "ntk"), compute_cov=True)
        for g in ("nngp", "ntk"):
            arrays[f"{g}_mean_{t_key}"] = getattr(out, g).mean
            arrays[f"{g}_cov_{t_key}"] = getattr(out, g).covariance
    kernels = {
        "train_train": kernel_fn(x_train, None, ("nngp", "ntk")),
        "test_train": kernel_fn(x_test, x_train, ("nngp", "ntk")),
        "test_test": kernel_fn(x_test, None, ("nngp", "ntk")),
    }
    for pair, kern in kernels.items():
        arrays[f"nngp_{pair}"], arrays[f"ntk_{pair}"] = kern.nngp, kern.ntk
    gp_arrays, _ = gp_inference(task, {**arrays, "y_train": y_train})
    arrays.update({f"gp_{k}": v for k, v in gp_arrays.items()})
    return arrays, {}


def gp_inference(task: dict, inputs: dict):
    """NNGP posterior (Eq. 13) and NTK t -> inf distribution (Eq. 16) from given kernels."""
    import neural_tangents as nt

    predict = nt.predict.gp_inference(
        _Kern(inputs["nngp_train_train"], inputs["ntk_train_train"]), inputs["y_train"]
    )
    out = predict(
        ("nngp", "ntk"),
        _Kern(inputs["nngp_test_train"], inputs["ntk_test_train"]),
        _Kern(inputs["nngp_test_test"], None),
    )
    arrays = {}
    for g in ("nngp", "ntk"):
        arrays[f"{g}_mean"] = getattr(out, g).mean
        arrays[f"{g}_cov"] = getattr(out, g).covariance
    return arrays, {}


KINDS = {
    "stax_kernels": stax_kernels,
    "empirical_ntk": empirical_ntk,
    "gd_mse": gd_mse,
    "gd_mse_ensemble": gd_mse_ensemble,
    "gp_inference": gp_inference,
}


# Kernel pair with nngp / ntk attributes, as nt.predict.gp_inference expects.
_Kern = collections.namedtuple("Kernel", "nngp ntk")


def _activation(name: str, deg: int = QUADRATURE_DEG):
    import jax.numpy as jnp
    from neural_tangents import stax

    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()
    if name == "tanh":
        return stax.ElementwiseNumerical(jnp.tanh, deg=deg, df=lambda x: 1.0 - jnp.tanh(x) ** 2)
    if name == "identity":
        return stax.Identity()
    raise ValueError(f"activation {name!r} is not mapped to neural-tangents")


def _stax_mlp(task: dict):
    """stax.serial of depth x (Dense(width), activation) + Dense(out_dim)."""
    from neural_tangents import stax

    b_std = task.get("b_std") or None
    dense = dict(
        W_std=task["w_std"], b_std=b_std, parameterization=task.get("parameterization", "ntk")
    )
    layers = []
    for _ in range(task["depth"]):
        act = _activation(task["activation"], task.get("deg", QUADRATURE_DEG))
        layers += [stax.Dense(task["width"], **dense), act]
    layers.append(stax.Dense(task["out_dim"], **dense))
    return stax.serial(*layers)


def _stax_params(task: dict, inputs: dict):
    """Stax params: one (W, b) pair per Dense and () per activation; b has shape [1, n_out]."""
    import jax.numpy as jnp

    params = []
    for i in range(task["depth"] + 1):
        b = inputs.get(f"b_{i}")
        b = None if b is None else jnp.asarray(b).reshape(1, -1)
        params.append((jnp.asarray(inputs[f"W_{i}"]), b))
        if i < task["depth"]:
            params.append(())
    return params


def _time_calls(fn, repeats: int, clock: str = "wall") -> list[float]:
    """Seconds of `repeats` calls of fn (after one warm-up call), each blocked until ready.

    clock: "wall" (time.perf_counter) or "cpu" (time.process_time, all threads of the process).
    """
    import jax

    if repeats <= 0:
        return []
    timer = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    jax.block_until_ready(fn())
    seconds = []
    for _ in range(repeats):
        start = timer()
        jax.block_until_ready(fn())
        seconds.append(timer() - start)
    return seconds


if __name__ == "__main__":
    main(sys.argv)
