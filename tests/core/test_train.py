"""Tests of core.train: optax loops for f and f_lin against explicit updates and closed forms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkpipe.core import models, train
from ntkpipe.core.train import TrainState

N_TRAIN, N_TEST, D_IN = 8, 5, 3


def _data(k, seed=0):
    kx, ky, kt = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (N_TRAIN + N_TEST, D_IN))
    if k == 1:
        y = jnp.sign(jax.random.normal(ky, (N_TRAIN + N_TEST, 1)))
    else:
        y = jax.nn.one_hot(jax.random.randint(ky, (N_TRAIN + N_TEST,), 0, k), k)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def _setup(k=1, seeds=2, width=16, depth=1, activation="relu"):
    net = models.mlp(depth, width, k, activation, "ntk", 1.4, 0.1)
    data = _data(k)
    keys = jax.random.split(jax.random.key(1), seeds)
    params0 = jax.jit(jax.vmap(lambda key: net.init(key, data[0])))(keys)
    return net, params0, data


@functools.cache
def _mse_grad_fn(apply_fn):
    return jax.jit(jax.grad(lambda p, x, y: 0.5 * jnp.mean((apply_fn(p, x) - y) ** 2)))


def _mse_grad(apply_fn, x, y):
    """θ ↦ ∇_θ ½ mean (f(θ, x) − y)², jitted once per network."""
    return functools.partial(_mse_grad_fn(apply_fn), x=x, y=y)


def _seeds(tree, index):
    return jax.tree.map(lambda a: a[index], tree)


def _seed(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


@functools.cache
def _jacobian_fn(apply_fn):
    def jacobian(params, x):
        jac = jax.jacrev(lambda p: apply_fn(p, x).reshape(-1))(params)
        return jnp.concatenate([a.reshape(a.shape[0], -1) for a in jax.tree.leaves(jac)], 1)

    return jax.jit(jacobian)


def _flat_jacobians(apply_fn, params, x, xt):
    """∂ vec f(θ, ·) / ∂θ on x and on xt as dense [n·k, P] matrices (explicit jacrev)."""
    jac = _jacobian_fn(apply_fn)(params, jnp.concatenate([x, xt]))
    split = x.shape[0] * jac.shape[0] // (x.shape[0] + xt.shape[0])
    return jac[:split], jac[split:]


NET, PARAMS0, DATA = _setup()


def test_gd_one_step_is_the_explicit_update():
    """θ₁ = θ₀ − η ∇L(θ₀) with L = ½ mean (f − y)², and f₀ recorded at step 0."""
    eta = 0.7
    traj = train.train(NET.apply, PARAMS0, *DATA, learning_rate=eta, steps=1)
    x, y = DATA[0], DATA[1]
    for i in range(2):
        p0 = _seed(PARAMS0, i)
        grads = _mse_grad(NET.apply, x, y)(p0)
        expected = jax.tree.map(lambda p, g: p - eta * g, p0, grads)
        for got, want in zip(
            jax.tree.leaves(_seed(traj.params, i)), jax.tree.leaves(expected), strict=True
        ):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(traj.fx_train[i, 0], NET.apply(p0, x), rtol=1e-13)
        np.testing.assert_allclose(traj.fx_train[i, 1], NET.apply(expected, x), rtol=1e-12)
    np.testing.assert_array_equal(traj.steps, [0, 1])


@pytest.mark.parametrize("k", [1, 3])
def test_linearized_gd_is_the_discrete_kernel_closed_form(k):
    """GD on f_lin: f_{i+1} = f_i − η/(n·k) Θ̂₀ (f_i − y), Θ̂₀ = J₀J₀ᵀ, at every step (Eq. 8–9)."""
    net, params0, (x, y, xt, yt) = (NET, PARAMS0, DATA) if k == 1 else _setup(k=k)
    jacobians = [_flat_jacobians(net.apply, _seed(params0, i), x, xt) for i in range(2)]
    lam_max = max(float(np.linalg.eigvalsh(j @ j.T)[-1]) for j, _ in jacobians)
    eta, steps = y.size / lam_max, 12  # η < η_crit = 2nk/(λ_min + λ_max): converges
    traj = train.train(
        net.apply,
        params0,
        x,
        y,
        xt,
        yt,
        learning_rate=eta,
        steps=steps,
        record_steps=range(steps + 1),
        linearized=True,
    )
    for seed, (jac_train, jac_test) in enumerate(jacobians):
        ntk_tt, ntk_st = jac_train @ jac_train.T, jac_test @ jac_train.T
        p0 = _seed(params0, seed)
        f, ft = net.apply(p0, x).reshape(-1), net.apply(p0, xt).reshape(-1)
        for i in range(steps + 1):
            got_train, got_test = traj.fx_train[seed, i].reshape(-1), traj.fx_test[seed, i]
            np.testing.assert_allclose(got_train, f, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(got_test.reshape(-1), ft, rtol=1e-10, atol=1e-12)
            residual = f - y.reshape(-1)
            f, ft = f - eta / y.size * ntk_tt @ residual, ft - eta / y.size * ntk_st @ residual
    assert np.all(traj.loss_train[:, -1] < 0.5 * traj.loss_train[:, 0])


def test_linearized_gd_matches_dynamics_discrete():
    """Step by step against ntkpipe.core.dynamics.gradient_descent_mse(discrete=True) (k = 1)."""
    dynamics = pytest.importorskip("ntkpipe.core.dynamics")
    kernels = pytest.importorskip("ntkpipe.core.kernels")
    x, y, xt, yt = DATA
    eta, steps = 0.5, 12
    record = np.arange(steps + 1)
    traj = train.train(
        NET.apply,
        PARAMS0,
        x,
        y,
        xt,
        yt,
        learning_rate=eta,
        steps=steps,
        record_steps=record,
        linearized=True,
    )
    for seed in range(2):
        p0 = _seed(PARAMS0, seed)
        ntk_tt = kernels.empirical_ntk(NET.apply, p0, x)
        ntk_st = kernels.empirical_ntk(NET.apply, p0, xt, x)
        predict = dynamics.gradient_descent_mse(ntk_tt, y, eta, discrete=True)
        fx_train_t, fx_test_t = predict(record, NET.apply(p0, x), NET.apply(p0, xt), ntk_st)
        np.testing.assert_allclose(traj.fx_train[seed], fx_train_t, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(traj.fx_test[seed], fx_test_t, rtol=1e-9, atol=1e-11)


def test_linearized_starts_at_f0_and_keeps_layer_change_zero_at_step_0():
    traj = train.train(NET.apply, PARAMS0, *DATA, learning_rate=1.0, steps=4, linearized=True)
    f0 = jax.vmap(NET.apply, in_axes=(0, None))(PARAMS0, DATA[0])
    np.testing.assert_allclose(traj.fx_train[:, 0], f0, rtol=1e-13)
    np.testing.assert_array_equal(traj.weight_change[:, 0], 0.0)


def test_gd_reduces_the_training_loss():
    traj = train.train(NET.apply, PARAMS0, *DATA, learning_rate=1.0, steps=300)
    assert np.all(traj.loss_train[:, -1] < 0.05 * traj.loss_train[:, 0])
    assert np.all(traj.acc_train[:, -1] == 1.0)
    assert np.all(np.isfinite(traj.loss_test)) and np.all(traj.diverged_step == -1)
    assert traj.steps[0] == 0 and traj.steps[-1] == 300 and len(traj.steps) <= 24
    assert np.all(np.diff(traj.steps) > 0)
    blocked = train.train(
        NET.apply, PARAMS0, *DATA, learning_rate=1.0, steps=300, eval_block_size=3
    )
    np.testing.assert_allclose(blocked.fx_train, traj.fx_train, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(blocked.loss_test, traj.loss_test, rtol=1e-12)


def test_weight_change_is_the_relative_frobenius_distance():
    traj = train.train(NET.apply, PARAMS0, *DATA, learning_rate=1.0, steps=20)
    assert traj.layer_names == tuple(models.kernel_leaves(_seed(PARAMS0, 0)))
    assert traj.weight_change.shape == (2, len(traj.steps), len(traj.layer_names))
    np.testing.assert_array_equal(traj.weight_change[:, 0], 0.0)
    assert np.all(traj.weight_change[:, 1:] > 0)
    for i in range(2):
        now = models.kernel_leaves(_seed(traj.params, i))
        start = models.kernel_leaves(_seed(PARAMS0, i))
        expected = [np.linalg.norm(now[n] - start[n]) / np.linalg.norm(start[n]) for n in now]
        np.testing.assert_allclose(traj.weight_change[i, -1], expected, rtol=1e-12)


def test_momentum_is_heavy_ball():
    """v₁ = g₀, θ₁ = θ₀ − ηv₁; v₂ = βv₁ + g₁, θ₂ = θ₁ − ηv₂ (optax.sgd with momentum β)."""
    eta, beta = 0.3, 0.9
    traj = train.train(NET.apply, PARAMS0, *DATA, optimizer="momentum", learning_rate=eta, steps=2)
    x, y = DATA[0], DATA[1]
    grad = _mse_grad(NET.apply, x, y)
    p0 = _seed(PARAMS0, 1)
    v1 = grad(p0)
    p1 = jax.tree.map(lambda p, v: p - eta * v, p0, v1)
    v2 = jax.tree.map(lambda v, g: beta * v + g, v1, grad(p1))
    p2 = jax.tree.map(lambda p, v: p - eta * v, p1, v2)
    for got, want in zip(jax.tree.leaves(_seed(traj.params, 1)), jax.tree.leaves(p2), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_sgd_with_the_full_batch_is_gd():
    """A minibatch of all n examples is a permutation of the data: the same mean gradient.

    Plain SGD ignores ``momentum`` (ntkpipe.sweep.runs refuses a β that no run of a sweep uses).
    """
    kwargs = dict(learning_rate=0.5, steps=5, record_steps=[0, 5])
    gd = train.train(NET.apply, PARAMS0, *DATA, **kwargs)
    sgd = train.train(
        NET.apply,
        PARAMS0,
        *DATA,
        optimizer="sgd",
        batch_size=N_TRAIN,
        key=jax.random.key(0),
        momentum=0.9,
        **kwargs,
    )
    np.testing.assert_allclose(sgd.fx_test, gd.fx_test, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("loss", "optimizer", "linearized"),
    [("xent", "gd", False), ("xent", "momentum", True), ("mse", "sgd", True)],
)
def test_other_losses_and_optimizers_reduce_the_loss(loss, optimizer, linearized):
    net, params0, data = _setup(k=3)
    extra = dict(batch_size=4, key=jax.random.key(2)) if optimizer == "sgd" else {}
    traj = train.train(
        net.apply,
        params0,
        *data,
        loss=loss,
        optimizer=optimizer,
        learning_rate=0.3,
        steps=150,
        linearized=linearized,
        **extra,
    )
    assert np.all(traj.loss_train[:, -1] < 0.5 * traj.loss_train[:, 0])
    assert np.all(traj.diverged_step == -1)
    if loss == "xent":  # the softmax cross-entropy of the recorded logits
        fx, y = traj.fx_train[:, -1], np.asarray(data[1])
        xent = -np.mean(np.sum(y * jax.nn.log_softmax(fx, axis=-1), -1), -1)
        np.testing.assert_allclose(traj.loss_train[:, -1], xent, rtol=1e-12)


def test_binary_xent_is_the_logistic_loss():
    fx = jnp.array([[0.3], [-2.0]])
    y = jnp.array([[1.0], [1.0]])
    expected = np.mean(np.log1p(np.exp(-np.array([0.3, -2.0]))))
    np.testing.assert_allclose(train.loss_fn("xent")(fx, y), expected, rtol=1e-14)
    two_class = jnp.concatenate([fx / 2, -fx / 2], 1)  # the same loss as a 2-class softmax
    np.testing.assert_allclose(
        train.loss_fn("xent")(two_class, jnp.array([[1.0, 0]] * 2)), expected
    )


def test_accuracy_sign_for_one_output_argmax_otherwise():
    assert train.accuracy(jnp.array([[0.2], [-1.0], [3.0]]), jnp.array([[1.0], [1.0], [1.0]])) == (
        pytest.approx(2 / 3)
    )
    fx = jnp.array([[0.1, 0.9], [0.8, 0.2]])
    assert train.accuracy(fx, jnp.array([[0.0, 1.0], [0.0, 1.0]])) == pytest.approx(0.5)


def test_vmapped_seeds_equal_seeds_one_by_one():
    keys = jax.random.split(jax.random.key(5), 2)
    kwargs = dict(optimizer="momentum", batch_size=3, learning_rate=0.2, steps=30)
    both = train.train(NET.apply, PARAMS0, *DATA, key=keys, **kwargs)
    for i in range(2):
        one = train.train(
            NET.apply, _seeds(PARAMS0, slice(i, i + 1)), *DATA, key=keys[i : i + 1], **kwargs
        )
        np.testing.assert_allclose(one.fx_test[0], both.fx_test[i], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(one.weight_change[0], both.weight_change[i], rtol=1e-10)


def test_divergence_is_recorded_at_the_first_non_finite_step():
    eta, steps = 1e4, 40
    states = []
    traj = train.train(
        NET.apply,
        PARAMS0,
        *DATA,
        learning_rate=eta,
        steps=steps,
        record_steps=range(steps + 1),
        on_segment=states.append,
    )
    x, y = DATA[0], DATA[1]
    loss = jax.jit(lambda p: 0.5 * jnp.mean((NET.apply(p, x) - y) ** 2))
    grad = _mse_grad(NET.apply, x, y)
    for i in range(2):
        params, first = _seed(PARAMS0, i), -1
        for step in range(steps + 1):
            if not np.isfinite(loss(params)):
                first = step
                break
            params = jax.tree.map(lambda p, g: p - eta * g, params, grad(params))
        assert first > 0, "the test needs a learning rate at which every seed diverges"
        assert traj.diverged_step[i] == first
        assert np.all(np.isfinite(traj.loss_train[i, :first]))
        assert np.all(np.isnan(traj.loss_train[i, first:]))
        assert np.all(np.isnan(traj.fx_test[i, first:]))
    assert states[-1].step == max(traj.diverged_step) < steps  # stopped early, no crash


def _mse_np(f, y):
    return 0.5 * np.mean((np.asarray(f) - np.asarray(y)) ** 2)


def _accuracy_np(f, y):
    f, y = np.asarray(f), np.asarray(y)
    if f.shape[-1] == 1:
        return np.mean(f * y > 0)
    return np.mean(np.argmax(f, -1) == np.argmax(y, -1))


@pytest.mark.parametrize("k, seeds", [(1, 2), (3, 1)])
def test_every_record_is_plain_gd_stopped_at_its_step(k, seeds):
    """Record r of every field is explicit GD θ_{s+1} = θ_s − η∇L run to record_steps[r] and
    evaluated there; the steps after the last record still run; the states handed to
    on_segment keep the records of their time (the loop writes records in place)."""
    net, params0, (x, y, xt, yt) = _setup(k=k, seeds=seeds)
    eta, steps, record = 0.5, 20, [0, 1, 2, 5, 9, 16]
    states = []
    traj = train.train(
        net.apply,
        params0,
        x,
        y,
        xt,
        yt,
        learning_rate=eta,
        steps=steps,
        record_steps=record,
        on_segment=states.append,
    )
    grad = _mse_grad(net.apply, x, y)
    for i in range(seeds):
        p0 = params = _seed(params0, i)
        for step in range(steps + 1):
            if step in record:
                r = record.index(step)
                f, ft = net.apply(params, x), net.apply(params, xt)
                np.testing.assert_allclose(traj.fx_train[i, r], f, rtol=1e-11, atol=1e-13)
                np.testing.assert_allclose(traj.fx_test[i, r], ft, rtol=1e-11, atol=1e-13)
                np.testing.assert_allclose(traj.loss_train[i, r], _mse_np(f, y), rtol=1e-10)
                np.testing.assert_allclose(traj.loss_test[i, r], _mse_np(ft, yt), rtol=1e-10)
                assert traj.acc_train[i, r] == pytest.approx(_accuracy_np(f, y), rel=1e-12)
                assert traj.acc_test[i, r] == pytest.approx(_accuracy_np(ft, yt), rel=1e-12)
                now, start = models.kernel_leaves(params), models.kernel_leaves(p0)
                change = [np.linalg.norm(now[n] - start[n]) / np.linalg.norm(start[n]) for n in now]
                np.testing.assert_allclose(traj.weight_change[i, r], change, rtol=1e-9, atol=1e-15)
            if step < steps:
                params = jax.tree.map(lambda p, g: p - eta * g, params, grad(params))
        leaves = zip(jax.tree.leaves(_seed(traj.params, i)), jax.tree.leaves(params), strict=True)
        for got, want in leaves:
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    assert [s.step for s in states] == [*record, steps]
    for r, state in enumerate(states[: len(record)]):
        assert state.n_records == r + 1
        for name in train.RECORD_FIELDS:
            seen, later = state.records[name][:, : r + 1], state.records[name][:, r + 1 :]
            np.testing.assert_array_equal(seen, getattr(traj, name)[:, : r + 1], err_msg=name)
            assert np.all(np.isnan(later)), name


def test_a_diverging_seed_leaves_the_other_seeds_as_trained_alone():
    """Seed 1 (weights ×3) diverges at the first step with a non-finite loss; seed 0 trains on,
    as it does alone, and training runs to the end."""
    params0 = jax.tree.map(lambda a: a.at[1].multiply(3.0), PARAMS0)
    eta, steps = 1.0, 30
    both = train.train(
        NET.apply, params0, *DATA, learning_rate=eta, steps=steps, record_steps=range(steps + 1)
    )
    alone = train.train(
        NET.apply,
        _seeds(params0, slice(0, 1)),
        *DATA,
        learning_rate=eta,
        steps=steps,
        record_steps=range(steps + 1),
    )
    x, y = DATA[0], DATA[1]
    loss = jax.jit(lambda p: 0.5 * jnp.mean((NET.apply(p, x) - y) ** 2))
    grad, params, first = _mse_grad(NET.apply, x, y), _seed(params0, 1), -1
    for step in range(steps + 1):
        if not np.isfinite(loss(params)):
            first = step
            break
        params = jax.tree.map(lambda p, g: p - eta * g, params, grad(params))
    assert 0 < first < steps, "the test needs seed 1 to diverge within the run"
    np.testing.assert_array_equal(both.diverged_step, [-1, first])
    assert np.all(np.isfinite(both.loss_train[1, :first]))
    for name in train.RECORD_FIELDS:
        assert np.all(np.isnan(getattr(both, name)[1, first:])), name
        np.testing.assert_allclose(
            getattr(both, name)[0], getattr(alone, name)[0], rtol=1e-10, atol=1e-12, err_msg=name
        )
    assert np.all(alone.diverged_step == -1)


def test_resume_is_bit_identical():
    kwargs = dict(
        optimizer="momentum",  # SGD with momentum: optimizer state and keys both resume
        batch_size=3,
        learning_rate=0.2,
        steps=40,
        record_steps=[0, 3, 10, 25, 40],
        key=jax.random.key(7),
    )
    states, seen = [], []
    full = train.train(NET.apply, PARAMS0, *DATA, on_segment=states.append, **kwargs)
    assert [s.step for s in states] == [0, 3, 10, 25, 40]
    assert np.all(full.diverged_step == -1) and np.all(np.isfinite(full.fx_train))
    checkpoint = {name: np.array(a) for name, a in train.state_to_arrays(states[2]).items()}
    untouched = {name: a.copy() for name, a in checkpoint.items()}
    resumed = train.train(
        NET.apply,
        PARAMS0,
        *DATA,
        state=checkpoint,
        progress=lambda *args: seen.append(args[:2]),
        **kwargs,
    )
    assert seen == [(25, 40), (40, 40)]  # only the remaining segments ran
    for name, array in untouched.items():  # the caller's checkpoint arrays are not written
        np.testing.assert_array_equal(checkpoint[name], array, err_msg=name)
    for name in train.RECORD_FIELDS + ("diverged_step",):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(full, name), err_msg=name)
    for got, want in zip(
        jax.tree.leaves(resumed.params), jax.tree.leaves(full.params), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    again = train.train(NET.apply, PARAMS0, *DATA, state=states[1], **kwargs)
    np.testing.assert_array_equal(again.fx_train, full.fx_train)


def test_resume_refuses_a_state_of_another_run():
    states = []
    train.train(NET.apply, PARAMS0, *DATA, learning_rate=0.5, steps=4, on_segment=states.append)
    with pytest.raises(ValueError, match="state"):
        train.train(
            NET.apply,
            PARAMS0,
            *DATA,
            learning_rate=0.5,
            steps=4,
            state=states[1],
            record_steps=[0, 2, 4],
        )
    assert isinstance(states[0], TrainState) and states[0].n_records == 1


def test_progress_reports_every_segment():
    calls = []
    train.train(
        NET.apply,
        PARAMS0,
        *DATA,
        learning_rate=0.5,
        steps=8,
        record_steps=[0, 4, 8],
        progress=lambda *args: calls.append(args),
    )
    assert [c[:2] for c in calls] == [(0, 8), (4, 8), (8, 8)]
    assert all(np.isfinite(c[2]) and c[3] >= 0 for c in calls)


def test_log_record_steps():
    steps = train.log_record_steps(512)
    assert steps[0] == 0 and steps[-1] == 512 and 20 <= len(steps) <= 24
    assert np.all(np.diff(steps) > 0)
    np.testing.assert_array_equal(train.log_record_steps(3), [0, 1, 2, 3])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(loss="hinge"), "loss: 'hinge' is not one of mse, xent"),
        (dict(optimizer="adam"), "optimizer: 'adam' is not one of gd, momentum, sgd"),
        (dict(optimizer="sgd", key=jax.random.key(0)), "batch_size: optimizer 'sgd' needs"),
        (dict(optimizer="sgd", batch_size=N_TRAIN + 1, key=jax.random.key(0)), "batch_size"),
        (dict(optimizer="sgd", batch_size=2), "key: minibatches"),
        (dict(optimizer="momentum", batch_size=2), "key: minibatches"),
        (dict(optimizer="momentum", momentum=1.0), "momentum: must be a number in"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(steps=0), "steps"),
        (dict(record_steps=[0, 11]), "record_steps"),
        (dict(record_steps=[-1, 5]), "record_steps"),
        (dict(batch_size=4), "batch_size: optimizer 'gd' is full-batch"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, field):
    options = dict(learning_rate=0.5, steps=10) | kwargs
    with pytest.raises(ValueError, match=field.replace("(", r"\(")):
        train.train(NET.apply, PARAMS0, *DATA, **options)


def test_bad_shapes_are_clear_errors():
    x, y, xt, yt = DATA
    with pytest.raises(ValueError, match="y_train"):
        train.train(NET.apply, PARAMS0, x, y[:, 0], xt, yt, learning_rate=0.5, steps=2)
    with pytest.raises(ValueError, match=r"apply_fn: returns shape \(8, 1\)"):
        train.train(
            NET.apply,
            PARAMS0,
            x,
            jnp.ones((N_TRAIN, 2)),
            xt,
            jnp.ones((N_TEST, 2)),
            learning_rate=0.5,
            steps=2,
        )
    with pytest.raises(ValueError, match="params0"):
        train.train(NET.apply, _seed(PARAMS0, 0), x, y, xt, yt, learning_rate=0.5, steps=2)
