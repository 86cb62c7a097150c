"""The empirical NNGP K̂ (the readout Gram) against the analytic K in both parameterizations:
`readout.readout_gram_affine` maps the Gram to the scale of K, where it tends to K with the
width (Fig. S9–S10); unmapped, the standard parameterization's Gram grows with the width."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ntkpipe.core import analytic, kernels, models, readout

W_STD, B_STD, DEPTH = 1.4, 0.1, 2


def _inputs(n=8, d=6):
    x = np.random.default_rng(0).standard_normal((n, d))
    return x * np.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True)


def _model(parameterization, width, b_std=B_STD):
    return {
        "architecture": "fc",
        "parameterization": parameterization,
        "depth": DEPTH,
        "width": width,
        "w_std": W_STD,
        "b_std": b_std,
        "activation": "relu",
    }


def _gram_and_k(parameterization, width, seeds=4, b_std=B_STD):
    """Readout Grams of `seeds` networks drawn in NumPy [seeds, n, n] (the Gram of
    `kernels.empirical_nngp`, checked in the last test), and the analytic K [n, n]."""
    x, rng = _inputs(), np.random.default_rng(width)
    grams = []
    for _ in range(seeds):
        a = x
        for fan_in in (x.shape[1], *[width] * (DEPTH - 1)):
            h = a @ (W_STD / np.sqrt(fan_in) * rng.standard_normal((fan_in, width)))
            a = np.maximum(h + (b_std or 0.0) * rng.standard_normal(width), 0.0)
        # ∂f/∂W_L = φ, ∂f/∂b_L = 1 (standard); σ_w/√n_L φ and σ_b (NTK)
        if parameterization == "standard":
            grams.append(a @ a.T + (1.0 if b_std else 0.0))
        else:
            grams.append(W_STD**2 * a @ a.T / width + (b_std or 0.0) ** 2)
    k, _ = analytic.kernels(
        x,
        depth=DEPTH,
        activation="relu",
        w_std=W_STD,
        b_std=b_std or 0.0,
        parameterization=parameterization,
        width=width,
    )
    return np.stack(grams), np.asarray(k)


def _relative(a, k):
    return np.linalg.norm(a - k, axis=(-2, -1)) / np.linalg.norm(k)


@pytest.mark.parametrize(
    ("parameterization", "b_std"), [("ntk", B_STD), ("standard", B_STD), ("standard", None)]
)
def test_mapped_readout_gram_tends_to_k_like_n_to_the_minus_half(parameterization, b_std):
    errors = []
    for width in (64, 256, 1024):
        grams, k = _gram_and_k(parameterization, width, b_std=b_std)
        a, b = readout.readout_gram_affine(_model(parameterization, width, b_std))
        errors.append(_relative((grams - b) / a, k).mean())
    assert errors[-1] < 0.15
    slope = np.polyfit(np.log([64, 256, 1024]), np.log(errors), 1)[0]
    assert -0.8 < slope < -0.25, errors  # ~ n^−½


def test_unmapped_standard_gram_grows_with_the_width_and_ntk_needs_no_map():
    assert readout.readout_gram_affine(_model("ntk", 512)) == (1.0, 0.0)
    grams, k = _gram_and_k("standard", 512)
    assert _relative(grams, k).min() > 100  # the old metric: 278 at width 512
    a, b = readout.readout_gram_affine(_model("standard", 512))
    assert a == pytest.approx(512 / W_STD**2) and b == pytest.approx(1 - 512 * B_STD**2 / W_STD**2)


def test_exact_map_of_the_standard_gram_on_the_readout_features():
    """G = φ·φ' + 1 exactly, and σ_w² φ·φ'/n_L + σ_b² = (G − b)/a for the same features."""
    x, width = _inputs(), 32
    net = models.mlp(
        depth=DEPTH,
        width=width,
        out_dim=1,
        activation="relu",
        parameterization="standard",
        w_std=W_STD,
        b_std=B_STD,
    )
    params = net.init(jax.random.PRNGKey(1), x[:1])
    gram = np.asarray(kernels.empirical_nngp(net, params, x))
    readout_layer = f"dense_{DEPTH}"
    hidden = {k: v for k, v in params["params"].items() if k != readout_layer}
    features = np.asarray(x)
    for name in sorted(hidden, key=lambda n: int(n.split("_")[1])):
        layer = hidden[name]
        features = np.maximum(features @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"]), 0)
    np.testing.assert_allclose(gram, features @ features.T + 1.0, rtol=1e-10)
    a, b = readout.readout_gram_affine(_model("standard", width))
    k_hat = W_STD**2 * features @ features.T / width + B_STD**2
    np.testing.assert_allclose((gram - b) / a, k_hat, rtol=1e-10)


def test_depth_zero_standard_needs_the_input_dimension():
    model = {**_model("standard", 16), "depth": 0}
    with pytest.raises(ValueError, match="fan_in=d_in"):
        readout.readout_gram_affine(model)
    assert readout.readout_gram_affine(model, fan_in=6)[0] == pytest.approx(6 / W_STD**2)
