"""External cross-check of ntkpipe against neural-tangents 0.6.5 on held-out configurations.

Every comparison is in float64 on both sides, with the relative difference
max |ours − ref| / max |ref| against ``--tol`` (default 1e-5). The reference is
neural-tangents (run in its own environment, benchmarks/nt_side.py, arrays exchanged through
``.npz`` files in a temporary directory) or, where neural-tangents has no counterpart, an
explicit numpy computation (marked ``numpy`` in the table).

Checks, for each configuration of :data:`CONFIGS` (relu / erf / tanh / identity, depth 1–4, NTK
and standard parameterization with the width given, with and without bias, d_in 5–50):

- ``analytic.kernels`` (nngp, ntk) on (x1, x2) and on (x1, None) vs ``stax`` ``kernel_fn``
  (tanh: ``stax.ElementwiseNumerical`` with Gauss–Hermite degree 300);
- ``kernels.empirical_ntk`` (dense path, ``net.apply``) and the generic path (a plain lambda),
  and ``kernels.empirical_ntk_full``, with the same weights, vs ``nt.empirical_ntk_fn``
  (STRUCTURED_DERIVATIVES and JACOBIAN_CONTRACTION; ``trace_axes=(-1,)`` resp. ``()``);
  ``kernels.empirical_nngp`` (both paths) vs ``nt.empirical_ntk_fn`` of the network as a
  function of its readout layer's parameters alone (neural-tangents has no such kernel of its
  own);
- ``dynamics.gradient_descent_mse`` (continuous; train and test, t from 0 to ∞; traced
  kernels [n, n] and full kernels [n, n, k, k]) vs ``nt.predict.gradient_descent_mse``
  (``trace_axes=(-1,)`` resp. ``()``); ``discrete=True`` vs the explicit iteration
  f_{i+1} = f_i − η/(n·k) Θ̂ (f_i − y) (numpy; neural-tangents' closed form is continuous only);
  ``dynamics.lr_critical`` vs 2·n·k/(λ_min + λ_max) (numpy; neural-tangents'
  ``max_learning_rate`` is 2·n·k/λ_max, a different quantity);
- ``analytic.ntk_gp_predictive`` (Eq. 14–16) and ``analytic.nngp_posterior`` (Eq. 13) vs
  ``nt.predict.gradient_descent_mse_ensemble`` (mean and covariance at finite t and t = ∞)
  and ``nt.predict.gp_inference``.

Usage (see benchmarks/README.md)::

    nice python benchmarks/crosscheck_nt.py [--tol 1e-5] [--only relu-d1-ntk ...]

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402
import numpy as np  # noqa: E402

# Held-out configurations (not those of tests/): name, activation, depth, parameterization,
# width (hidden width of the finite nets; enters the analytic NTK only in the standard
# parameterization), w_std, b_std (0: no bias), d_in, out_dim (finite nets and targets).
CONFIGS = [
    dict(name="relu-d1-ntk-b", activation="relu", depth=1, parameterization="ntk", width=48,
         w_std=1.5, b_std=0.1, d_in=5, out_dim=2),
    dict(name="relu-d4-std-nob", activation="relu", depth=4, parameterization="standard",
         width=64, w_std=1.3, b_std=0.0, d_in=37, out_dim=1),
    dict(name="erf-d2-ntk-nob", activation="erf", depth=2, parameterization="ntk", width=40,
         w_std=2.0, b_std=0.0, d_in=12, out_dim=3),
    dict(name="erf-d3-std-b", activation="erf", depth=3, parameterization="standard", width=128,
         w_std=1.1, b_std=0.3, d_in=50, out_dim=2),
    dict(name="tanh-d1-std-b", activation="tanh", depth=1, parameterization="standard",
         width=16, w_std=0.9, b_std=0.2, d_in=8, out_dim=1),
    dict(name="tanh-d3-ntk-b", activation="tanh", depth=3, parameterization="ntk", width=56,
         w_std=1.2, b_std=0.05, d_in=23, out_dim=2),
    dict(name="identity-d2-ntk-b", activation="identity", depth=2, parameterization="ntk",
         width=32, w_std=1.0, b_std=0.5, d_in=5, out_dim=2),
    dict(name="identity-d4-std-nob", activation="identity", depth=4,
         parameterization="standard", width=32, w_std=0.8, b_std=0.0, d_in=19, out_dim=1),
    dict(name="relu-d2-ntk-nob", activation="relu", depth=2, parameterization="ntk", width=64,
         w_std=1.0, b_std=0.0, d_in=50, out_dim=1),
    dict(name="erf-d4-ntk-b", activation="erf", depth=4, parameterization="ntk", width=24,
         w_std=0.8, b_std=1.0, d_in=7, out_dim=3),
    dict(name="tanh-d2-std-nob", activation="tanh", depth=2, parameterization="standard",
         width=40, w_std=1.6, b_std=0.0, d_in=31, out_dim=2),
    dict(name="relu-d3-std-b", activation="relu", depth=3, parameterization="standard",
         width=256, w_std=1.41, b_std=0.1, d_in=15, out_dim=1),
]  # fmt: skip

N1, N2 = 6, 4  # kernel inputs
N_TRAIN, N_TEST = 8, 3  # dynamics and predictive distributions
TIMES = np.array([0.0, 0.3, 2.0, 17.0, 1e3])  # continuous time η·step
STEPS = np.array([0, 1, 2, 5, 40])
LEARNING_RATE = 0.7
NT_IMPLS = ("STRUCTURED_DERIVATIVES", "JACOBIAN_CONTRACTION")


def main() -> None:
    args = _parse()
    import jax

    jax.config.update("jax_enable_x64", True)
    unknown = sorted(set(args.only or ()) - {c["name"] for c in CONFIGS})
    if unknown:
        raise SystemExit(f"--only: unknown configurations {unknown}; known: {_names()}")
    configs = [c for c in CONFIGS if not args.only or c["name"] in args.only]
    data = {c["name"]: _data(c, seed=i) for i, c in enumerate(configs)}
    spec, arrays = _nt_request(configs, data)
    nt_out, _ = _common.run_nt(spec, arrays)
    rows = []
    for cfg in configs:
        for check, fn in CHECKS:
            rows += _run_check(cfg, check, fn, data[cfg["name"]], nt_out, args.tol)
    _print_table(rows, args.tol)
    sys.exit(0 if all(r[3] in ("PASS", "SKIP") for r in rows) else 1)


# ----------------------------------------------------------------------------- checks
# Each check returns [(label, ours, reference, reference name)].


def check_analytic(cfg, d, nt):
    from ntkpipe.core import analytic

    out = []
    for tag, x2 in (("x1,x2", d["x2"]), ("x1,None", None)):
        nngp, ntk = analytic.kernels(d["x1"], x2, **_analytic_kwargs(cfg))
        key = f"{cfg['name']}:k12" if x2 is not None else f"{cfg['name']}:k11"
        out += [(f"analytic.kernels nngp ({tag})", nngp, nt[f"{key}/nngp"], "nt stax"),
                (f"analytic.kernels ntk ({tag})", ntk, nt[f"{key}/ntk"], "nt stax")]  # fmt: skip
    return out


def check_empirical(cfg, d, nt):
    from ntkpipe.core import kernels

    net, params = d["net"], d["params"]
    x1, x2 = d["x1"], d["x2"]
    dense = kernels.empirical_ntk(net.apply, params, x1, x2)
    generic = kernels.empirical_ntk(lambda p, x: net.apply(p, x), params, x1, x2)
    full = kernels.empirical_ntk_full(net.apply, params, x1, x2)
    full_generic = kernels.empirical_ntk_full(lambda p, x: net.apply(p, x), params, x1, x2)
    nngp = kernels.empirical_nngp(net, params, x1, x2)
    nngp_generic = kernels.empirical_nngp(lambda p, x: net.apply(p, x), params, x1, x2)
    blocked = kernels.empirical_ntk(net.apply, params, x1, x2, block_size=4)  # padded tiles
    key = f"{cfg['name']}:emp"
    ref = nt[f"{key}/ntk_{NT_IMPLS[0]}"]
    out = [("kernels.empirical_ntk (dense, block_size=4)", blocked, ref, "nt structured_deriv.")]
    for impl in NT_IMPLS:
        ref, ref_full = nt[f"{key}/ntk_{impl}"], nt[f"{key}/ntk_full_{impl}"]
        ref_readout = nt[f"{key}/ntk_readout_{impl}"]
        name = f"nt {impl.lower()}"
        out += [("kernels.empirical_ntk (dense)", dense, ref, name),
                ("kernels.empirical_ntk (generic)", generic, ref, name),
                ("kernels.empirical_ntk_full (dense)", full, ref_full, name),
                ("kernels.empirical_ntk_full (generic)", full_generic, ref_full, name),
                ("kernels.empirical_nngp (dense)", nngp, ref_readout, f"{name}, readout"),
                ("kernels.empirical_nngp (generic)", nngp_generic, ref_readout,
                 f"{name}, readout")]  # fmt: skip
    return out


def check_gd_mse(cfg, d, nt):
    from ntkpipe.core import dynamics

    g = d["gd"]
    predict = dynamics.gradient_descent_mse(g["k_train_train"], g["y_train"], LEARNING_RATE)
    fx_train_t, fx_test_t = predict(
        np.append(TIMES, np.inf), g["fx_train_0"], g["fx_test_0"], g["k_test_train"]
    )
    key = f"{cfg['name']}:gd"
    out = [
        ("dynamics.gradient_descent_mse train", fx_train_t, nt[f"{key}/fx_train_t"], "nt"),
        ("dynamics.gradient_descent_mse test", fx_test_t, nt[f"{key}/fx_test_t"], "nt"),
    ]
    full = d["gd_full"]
    predict = dynamics.gradient_descent_mse(full["k_train_train"], g["y_train"], LEARNING_RATE)
    fx_train_t, fx_test_t = predict(
        np.append(TIMES, np.inf), g["fx_train_0"], g["fx_test_0"], full["k_test_train"]
    )
    key, label, ref = f"{cfg['name']}:gdfull", "dynamics.gradient_descent_mse full", "nt, full"
    return [
        *out,
        (f"{label} train", fx_train_t, nt[f"{key}/fx_train_t"], ref),
        (f"{label} test", fx_test_t, nt[f"{key}/fx_test_t"], ref),
    ]


def check_gd_discrete(cfg, d, nt):
    from ntkpipe.core import dynamics

    g = d["gd"]
    lr = 0.9 * _lr_critical_numpy(g["k_train_train"], g["y_train"].shape[1])
    predict = dynamics.gradient_descent_mse(g["k_train_train"], g["y_train"], lr, discrete=True)
    fx_train_t, fx_test_t = predict(STEPS, g["fx_train_0"], g["fx_test_0"], g["k_test_train"])
    ref_train, ref_test = _discrete_numpy(g, lr, STEPS)
    return [
        ("dynamics.gradient_descent_mse discrete train", fx_train_t, ref_train, "numpy"),
        ("dynamics.gradient_descent_mse discrete test", fx_test_t, ref_test, "numpy"),
    ]


def check_lr_critical(cfg, d, nt):
    from ntkpipe.core import dynamics

    g = d["gd"]
    k = g["y_train"].shape[1]
    ours = dynamics.lr_critical(g["k_train_train"], k)
    return [("dynamics.lr_critical", ours, _lr_critical_numpy(g["k_train_train"], k), "numpy")]


def check_ntk_gp_predictive(cfg, d, nt):
    from ntkpipe.core import analytic

    key = f"{cfg['name']}:ens"
    kern = _nt_predictive_kernels(nt, key)
    y_train = d["pred"]["y_train"]
    out = []
    for t_key, t in (("t", TIMES), ("inf", None)):
        mean, cov = analytic.ntk_gp_predictive(
            kern["ntk_train_train"], kern["ntk_test_train"], kern["nngp_train_train"],
            kern["nngp_test_train"], kern["nngp_test_test"], y_train, t,
            learning_rate=LEARNING_RATE,
        )  # fmt: skip
        ref = "nt gd_mse_ensemble"
        out += [(f"analytic.ntk_gp_predictive mean (t={t_key})", mean,
                 nt[f"{key}/ntk_mean_{t_key}"], ref),
                (f"analytic.ntk_gp_predictive cov (t={t_key})", cov,
                 nt[f"{key}/ntk_cov_{t_key}"], ref)]  # fmt: skip
    out += [("analytic.ntk_gp_predictive mean (t=inf)", mean, nt[f"{key}/gp_ntk_mean"],
             "nt gp_inference"),
            ("analytic.ntk_gp_predictive cov (t=inf)", cov, nt[f"{key}/gp_ntk_cov"],
             "nt gp_inference")]  # fmt: skip
    return out


def check_nngp_posterior(cfg, d, nt):
    from ntkpipe.core import analytic

    key = f"{cfg['name']}:ens"
    kern = _nt_predictive_kernels(nt, key)
    mean, cov = analytic.nngp_posterior(
        kern["nngp_train_train"], kern["nngp_test_train"], kern["nngp_test_test"],
        d["pred"]["y_train"],
    )  # fmt: skip
    label = "analytic.nngp_posterior"
    return [(f"{label} mean", mean, nt[f"{key}/nngp_mean_inf"], "nt gd_mse_ensemble"),
            (f"{label} cov", cov, nt[f"{key}/nngp_cov_inf"], "nt gd_mse_ensemble"),
            (f"{label} mean", mean, nt[f"{key}/gp_nngp_mean"], "nt gp_inference"),
            (f"{label} cov", cov, nt[f"{key}/gp_nngp_cov"], "nt gp_inference")]  # fmt: skip


CHECKS = [
    ("analytic", check_analytic),
    ("empirical", check_empirical),
    ("gd_mse", check_gd_mse),
    ("gd_discrete", check_gd_discrete),
    ("lr_critical", check_lr_critical),
    ("ntk_gp_predictive", check_ntk_gp_predictive),
    ("nngp_posterior", check_nngp_posterior),
]


# ----------------------------------------------------------------------------- private helpers


def _run_check(cfg, check, fn, d, nt, tol):
    try:
        results = fn(cfg, d, nt)
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("ntkpipe."):
            raise
        return [(cfg["name"], check, "-", "SKIP", f"{e.name} missing")]
    except Exception as e:  # a crash of one check must not hide the others
        detail = "".join(traceback.format_exception_only(type(e), e)).strip().splitlines()[-1]
        return [(cfg["name"], check, "-", "ERROR", detail[:160])]
    rows = []
    for label, ours, ref, ref_name in results:
        ours, ref = np.asarray(ours), np.asarray(ref)
        if ours.shape != ref.shape:
            rows.append((cfg["name"], label, "-", "FAIL", f"shape {ours.shape} vs {ref.shape}"))
            continue
        diff = _common.max_rel_diff(ours, ref)
        rows.append((cfg["name"], label, f"{diff:.1e}", "PASS" if diff <= tol else "FAIL",
                     f"vs {ref_name}"))  # fmt: skip
    return rows


def _print_table(rows, tol) -> None:
    width = max(len(r[1]) for r in rows)
    print(f"{'config':<20} {'check':<{width}} {'rel diff':>9}  result  reference / detail")
    for cfg, label, diff, status, detail in rows:
        print(f"{cfg:<20} {label:<{width}} {diff:>9}  {status:<6}  {detail}")
    counts = {s: sum(r[3] == s for r in rows) for s in ("PASS", "FAIL", "ERROR", "SKIP")}
    print(f"\ntolerance {tol:g} (max |ours - ref| / max |ref|, float64): "
          + ", ".join(f"{n} {s}" for s, n in counts.items()))  # fmt: skip


def _analytic_kwargs(cfg) -> dict:
    kw = dict(depth=cfg["depth"], activation=cfg["activation"], w_std=cfg["w_std"],
              b_std=cfg["b_std"], parameterization=cfg["parameterization"])  # fmt: skip
    if cfg["parameterization"] == "standard":
        kw["width"] = cfg["width"]
    return kw


def _data(cfg, seed: int) -> dict:
    """Inputs, the finite net and its weights, and the dynamics / predictive problems."""
    import jax

    from ntkpipe.core import models

    rng = np.random.default_rng(1000 + seed)
    d_in, k = cfg["d_in"], cfg["out_dim"]
    x1, x2 = rng.standard_normal((N1, d_in)), rng.standard_normal((N2, d_in))
    net = models.mlp(cfg["depth"], cfg["width"], k, cfg["activation"], cfg["parameterization"],
                     cfg["w_std"], cfg["b_std"])  # fmt: skip
    params = net.init(jax.random.PRNGKey(seed), x1)
    # a random, well-conditioned joint PSD kernel over train + test for the dynamics
    feats = rng.standard_normal((N_TRAIN + N_TEST, 4 * N_TRAIN))
    kern = feats @ feats.T / feats.shape[1] + 0.1 * np.eye(N_TRAIN + N_TEST)
    gd = {
        "k_train_train": kern[:N_TRAIN, :N_TRAIN],
        "k_test_train": kern[N_TRAIN:, :N_TRAIN],
        "y_train": rng.standard_normal((N_TRAIN, k)),
        "fx_train_0": rng.standard_normal((N_TRAIN, k)),
        "fx_test_0": rng.standard_normal((N_TEST, k)),
    }
    # the same for a full kernel [n, n, k, k]: a Gram of features [n, k, m] plus 0.1 · I
    feats = rng.standard_normal((N_TRAIN + N_TEST, k, 4 * N_TRAIN * k))
    kern = np.einsum("ajm,blm->abjl", feats, feats) / feats.shape[2]
    kern += 0.1 * np.eye(N_TRAIN + N_TEST)[:, :, None, None] * np.eye(k)
    gd_full = {"k_train_train": kern[:N_TRAIN, :N_TRAIN], "k_test_train": kern[N_TRAIN:, :N_TRAIN]}
    # a linear network's kernels have rank ≤ d_in + 1: keep them invertible (NT uses Cholesky)
    n_pred = min(N_TRAIN, d_in) if cfg["activation"] == "identity" else N_TRAIN
    pred = {
        "x_train": rng.standard_normal((n_pred, d_in)),
        "x_test": rng.standard_normal((N_TEST, d_in)),
        "y_train": rng.standard_normal((n_pred, k)),
    }
    return dict(x1=x1, x2=x2, net=net, params=params, gd=gd, gd_full=gd_full, pred=pred)


def _nt_request(configs, data):
    """One batch of neural-tangents tasks for all configurations, and their input arrays."""
    tasks, arrays = [], {}
    for cfg in configs:
        name, d = cfg["name"], data[cfg["name"]]
        net_fields = {k: cfg[k] for k in ("depth", "width", "out_dim", "activation",
                                          "parameterization", "w_std", "b_std")}  # fmt: skip
        tasks += [
            dict(name=f"{name}:k12", kind="stax_kernels", **net_fields),
            dict(name=f"{name}:k11", kind="stax_kernels", **net_fields),
            dict(name=f"{name}:emp", kind="empirical_ntk", implementations=list(NT_IMPLS),
                 full=True, readout=True, **net_fields),
            dict(name=f"{name}:gd", kind="gd_mse", learning_rate=LEARNING_RATE),
            dict(name=f"{name}:gdfull", kind="gd_mse", learning_rate=LEARNING_RATE,
                 trace_axes=[]),
            dict(name=f"{name}:ens", kind="gd_mse_ensemble", learning_rate=LEARNING_RATE,
                 **net_fields),
        ]  # fmt: skip
        arrays.update({f"{name}:k12/x1": d["x1"], f"{name}:k12/x2": d["x2"],
                       f"{name}:k11/x1": d["x1"], f"{name}:emp/x1": d["x1"],
                       f"{name}:emp/x2": d["x2"], f"{name}:gd/t": np.append(TIMES, np.inf),
                       f"{name}:ens/t": TIMES})  # fmt: skip
        for i in range(cfg["depth"] + 1):
            layer = d["params"]["params"][f"dense_{i}"]
            arrays[f"{name}:emp/W_{i}"] = np.asarray(layer["kernel"])
            if "bias" in layer:
                arrays[f"{name}:emp/b_{i}"] = np.asarray(layer["bias"])
        arrays.update({f"{name}:gd/{k}": v for k, v in d["gd"].items()})
        arrays.update({f"{name}:gdfull/{k}": v for k, v in d["gd"].items()})
        arrays.update({f"{name}:gdfull/{k}": v for k, v in d["gd_full"].items()})
        arrays[f"{name}:gdfull/t"] = np.append(TIMES, np.inf)
        arrays.update({f"{name}:ens/{k}": v for k, v in d["pred"].items()})
    return {"x64": True, "tasks": tasks}, arrays


def _lr_critical_numpy(k_train_train, n_out: int) -> float:
    evals = np.linalg.eigvalsh(k_train_train)
    return 2 * k_train_train.shape[0] * n_out / (evals[0] + evals[-1])


def _discrete_numpy(g, lr, steps):
    """Gradient descent on MSE ½·mean((f − y)²) in function space, step by step."""
    n, k = g["y_train"].shape
    f_train, f_test = g["fx_train_0"].copy(), g["fx_test_0"].copy()
    out_train, out_test = [], []
    for i in range(int(steps.max()) + 1):
        if i in steps:
            out_train.append(f_train.copy())
            out_test.append(f_test.copy())
        residual = f_train - g["y_train"]
        f_train = f_train - lr / (n * k) * g["k_train_train"] @ residual
        f_test = f_test - lr / (n * k) * g["k_test_train"] @ residual
    return np.stack(out_train), np.stack(out_test)


def _nt_predictive_kernels(nt, key) -> dict:
    """The analytic kernels neural-tangents used for its predictive distributions."""
    names = [f"{g}_{pair}" for g in ("nngp", "ntk") for pair in ("train_train", "test_train")]
    return {name: nt[f"{key}/{name}"] for name in [*names, "nngp_test_test"]}


def _names() -> list[str]:
    return [c["name"] for c in CONFIGS]


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--only", nargs="*", default=None, help="configuration names to run")
    return p.parse_args()


if __name__ == "__main__":
    main()
