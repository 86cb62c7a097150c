"""Linearized training (rule ``linear``, ``ntkpipe linear``): f_lin = f₀ + ∇θf₀ · ω (Eq. 5).

Closed form (Eq. 8–11, discrete steps) for MSE with full-batch GD
(:func:`ntkpipe.sweep.facts.closed_form`); direct optimization of f_lin otherwise. Writes
``linear.zarr`` with the variables of ``train.zarr`` (:mod:`ntkpipe.jobs.train`; its
``sharpness`` is λ_max(Θ̂₀) at every step), the sampled
weights of Fig. 3 at every step (closed form, :mod:`ntkpipe.jobs._weights`), ``*_analytic``
(the closed form with the analytic Θ) and the attribute ``method`` (closed_form, optimized).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ntkpipe.core import dynamics, models
from ntkpipe.core import kernels as ntk_kernels
from ntkpipe.core import train as ntk_train
from ntkpipe.core.sharpness import kernel_top_eigenvalue
from ntkpipe.errors import StageError
from ntkpipe.io import stores as storage
from ntkpipe.jobs._job import (
    load_data_and_network,
    log,
    read_params,
    record_steps,
    resolved_training,
    stage_job,
)
from ntkpipe.jobs._weights import (
    WEIGHTS_PER_LAYER,
    WeightTrajectory,
    endpoint_weight_samples,
    omega_records,
    weight_sample_index,
    weight_sample_labels,
)
from ntkpipe.jobs.train import default_checkpoint, fit, remove_checkpoint, trajectory_dataset
from ntkpipe.sweep import facts

__all__ = [
    "linear",
    "WEIGHTS_PER_LAYER",
    "endpoint_weight_samples",
    "omega_records",
    "weight_sample_index",
    "weight_sample_labels",
]


def linear(
    run: Path,
    init: Path,
    kernel: Path | None,
    out: Path,
    analytic: Path | None = None,
    overwrite: bool = False,
) -> None:
    """The linearized network f_lin (Eq. 5) over training, at the record steps of `train`.

    MSE with full-batch GD: the discrete closed form (Eq. 8–11 with (1 − ηλ/(n·k))^i), which equals
    gradient descent on f_lin step by step; the weights ω_t come from Eq. 8. Given `analytic`, also
    the same closed form with the analytic Θ in place of Θ̂₀ (model "lin_analytic"). Any other loss
    or optimizer: f_lin itself is trained with the run's optimizer, and neither `kernel` (Θ̂₀, then
    None with ``kernels.initial: false``) nor `analytic` is read.
    """
    stores = {"init": init, "kernel": kernel, "analytic": analytic}
    check = _needs_kernel(kernel)
    with stage_job(run, out, overwrite, rule="linear", inputs=stores, check=check) as job:
        config = resolved_training(job.config, kernel)  # η from η_crit with lr_factor
        closed_form = facts.closed_form(config["training"])
        data, net = load_data_and_network(config)
        params0 = read_params(init, config)
        if closed_form:
            stores = (init, kernel, analytic)
            ds = _linear_closed_form(net, params0, data, config, *map(_read, stores))
            final_params = None
        else:
            ckpt = default_checkpoint(out)
            weights = WeightTrajectory(params0, record_steps(config))
            trajectory = fit(
                net.apply, params0, data, config, linearized=True, checkpoint=ckpt,
                weights=weights,
            )  # fmt: skip
            ds, final_params = trajectory_dataset(trajectory, config), trajectory.params
            ds["weight_sample"] = weights.finish(final_params, trajectory.diverged_step)
        ds["learning_rate"] = ((), float(config["training"]["learning_rate"]))
        ds.attrs["method"] = "closed_form" if final_params is None else "optimized"
        job.write(ds, stage="linear", params=final_params)
        remove_checkpoint(default_checkpoint(out))


def _needs_kernel(kernel):
    """The refusal of a closed-form run without Θ̂₀, before its inputs are read."""

    def check(config):
        if facts.closed_form(config["training"]) and kernel is None:
            raise StageError(
                "--kernel: missing; training.loss mse with training.optimizer gd evolves f_lin "
                "in closed form from Θ̂₀: pass the run's kernel_init.zarr"
            )

    return check


def _read(path):
    return storage.read_store(path) if path else None


def _linear_closed_form(net, params0, data, config, init_ds, kernel_ds, analytic_ds):
    lr = config["training"]["learning_rate"]
    steps = record_steps(config)
    per_seed = []
    for i, seed in enumerate(config["seeds"]):
        theta0 = jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], params0)
        f0 = (jnp.asarray(init_ds.f0_train.values[i]), jnp.asarray(init_ds.f0_test.values[i]))
        ntk_tt, ntk_st = _closed_form_kernels(net, theta0, data, kernel_ds, i, config)
        one = _closed_form_outputs(ntk_tt, ntk_st, f0, data, config, steps)
        omega = dynamics.weights_mse(
            net.apply, theta0, data.x_train, ntk_tt, data.y_train, lr, discrete=True
        )
        change, samples = omega_records(omega, theta0, steps)
        one["weight_change"] = (("step", "layer"), change)
        one["weight_sample"] = (("step", "wsample"), samples)
        if analytic_ds is not None:
            analytic_part = _closed_form_outputs(
                jnp.asarray(analytic_ds.ntk_train_train.values),
                jnp.asarray(analytic_ds.ntk_test_train.values),
                f0,
                data,
                config,
                steps,
            )
            one.update({f"{name}_analytic": var for name, var in analytic_part.items()})
        one["diverged_step"] = ((), _first_nonfinite(steps, one.loss_train.values))
        if facts.records_sharpness(config["training"]):
            one["sharpness"] = (("step",), np.full(len(steps), kernel_top_eigenvalue(ntk_tt)))
        per_seed.append(one)
        log(f"linear: seed {seed} closed form at {len(steps)} steps")
    first = jax.tree_util.tree_map(lambda x: x[0], params0)
    ds = xr.concat(per_seed, dim="seed")
    return ds.assign_coords(
        seed=list(config["seeds"]),
        step=steps,
        t=("step", lr * steps.astype(float)),
        layer=list(models.kernel_leaves(first)),
        wsample=weight_sample_labels(first),
    )


def _closed_form_outputs(ntk_tt, ntk_st, f0, data, config, steps) -> xr.Dataset:
    """f_lin on train and test at ``steps`` by the discrete closed form with kernel Θ (Eq. 9–11),
    with its losses and accuracies."""
    predict = dynamics.gradient_descent_mse(
        ntk_tt, data.y_train, config["training"]["learning_rate"], discrete=True
    )
    fx_train, fx_test = predict(steps, f0[0], f0[1], ntk_st)
    return _outputs_dataset(fx_train, fx_test, data, config["training"]["loss"])


def _closed_form_kernels(net, theta0, data, kernel_ds, i, config):
    """Θ̂₀ for the closed form: the traced kernel when k = 1, the full [n, n, k, k] one else.

    With k > 1 outputs the traced kernel Θ̂ ⊗ I is only the infinite-width structure; the finite
    network's f_lin couples outputs, so the exact GD dynamics of f_lin need the full kernel.
    """
    if net.out_dim == 1:
        return (
            jnp.asarray(kernel_ds.ntk_train_train.values[i]),
            jnp.asarray(kernel_ds.ntk_test_train.values[i]),
        )
    block = config["kernels"]["block_size"]
    full_tt = ntk_kernels.empirical_ntk_full(net.apply, theta0, data.x_train, block_size=block)
    full_st = ntk_kernels.empirical_ntk_full(
        net.apply, theta0, data.x_test, data.x_train, block_size=block
    )
    return full_tt, full_st


def _outputs_dataset(fx_train, fx_test, data, loss) -> xr.Dataset:
    """Outputs [step, n, k] with their losses and accuracies, as train.zarr names them."""
    per_step_loss = jax.vmap(ntk_train.loss_fn(loss), in_axes=(0, None))
    per_step_acc = jax.vmap(ntk_train.accuracy, in_axes=(0, None))
    return xr.Dataset(
        {
            "fx_train": (("step", "train", "out"), np.asarray(fx_train)),
            "fx_test": (("step", "test", "out"), np.asarray(fx_test)),
            "loss_train": (("step",), np.asarray(per_step_loss(fx_train, data.y_train))),
            "loss_test": (("step",), np.asarray(per_step_loss(fx_test, data.y_test))),
            "acc_train": (("step",), np.asarray(per_step_acc(fx_train, data.y_train))),
            "acc_test": (("step",), np.asarray(per_step_acc(fx_test, data.y_test))),
        }
    )


def _first_nonfinite(steps, losses) -> int:
    bad = np.flatnonzero(~np.isfinite(losses))
    return int(steps[bad[0]]) if bad.size else -1
