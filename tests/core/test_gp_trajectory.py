"""The NTK-GP over a trajectory (`ntkpipe.core.gp_trajectory`) against gradient descent run
step by step on draws of the infinitely wide network, and against Eq. 14–15."""

import jax
import numpy as np
import pytest

from ntkpipe.core import analytic
from ntkpipe.core.gp_trajectory import ntk_gp_trajectory

MODEL = dict(depth=2, activation="erf", w_std=1.3, b_std=0.2)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x, x_test = rng.standard_normal((6, 5)), rng.standard_normal((3, 5))
    y = np.sign(rng.standard_normal((6, 1)))
    with jax.enable_x64(True):
        k_tt, th_tt = (np.asarray(a) for a in analytic.kernels(x, **MODEL))
        k_st, th_st = (np.asarray(a) for a in analytic.kernels(x_test, x, **MODEL))
        k_ss, _ = (np.asarray(a) for a in analytic.kernels(x_test, **MODEL))
    return th_tt, th_st, k_tt, k_st, k_ss, y


def test_draws_from_the_factor_are_gradient_descent_on_draws_of_the_prior(problem):
    th_tt, th_st, k_tt, k_st, k_ss, y = problem
    steps, lr = np.array([0, 1, 3, 10]), 2.0
    with jax.enable_x64(True):
        mean, factor = (np.asarray(a) for a in ntk_gp_trajectory(*problem, steps, learning_rate=lr))
    # f_0 on X ∪ X_T from the same z, then the linearized network trained step by step
    joint = np.block([[k_tt, k_st.T], [k_st, k_ss]])
    lam, vec = np.linalg.eigh(joint)
    root = vec * np.sqrt(np.clip(lam, 0, None))
    z = np.random.default_rng(1).standard_normal((joint.shape[0], 4))
    f0 = root @ z
    f_train, f_test, c = f0[:6], f0[6:], lr / y.size
    for t in range(11):
        if t in steps:
            want = f_test
            got = mean[list(steps).index(t)] + factor[list(steps).index(t)] @ z
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)
        step = c * (f_train - y)  # −∂L/∂f(X) · η: the function-space GD step of the linear model
        f_test = f_test - th_st @ step
        f_train = f_train - th_tt @ step


def test_gradient_flow_gives_eq_14_15_on_the_diagonal_blocks(problem):
    steps = np.array([0.0, 2.5, 40.0])
    with jax.enable_x64(True):
        mean, factor = ntk_gp_trajectory(*problem, steps, learning_rate=0.5, discrete=False)
        want_mean, want_cov = analytic.ntk_gp_predictive(*problem, steps, learning_rate=0.5)
    np.testing.assert_allclose(mean, want_mean, atol=1e-10)
    cov = np.einsum("tar,tbr->tab", factor, factor)
    np.testing.assert_allclose(cov, want_cov, atol=1e-9)
