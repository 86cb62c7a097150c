"""Fig. 2 / S1 ensembles, before any job: what a run needs for the ensemble stage, its folder,
and the member seeds (the Snakefile imports this at every start: no JAX, no xarray).

The ensemble itself (training M networks and the NTK-GP / NNGP predictions) is
:mod:`ntkpipe.jobs.ensemble`.
"""

from __future__ import annotations

__all__ = ["REQUIREMENTS", "check_config", "point_id", "member_seeds", "member_chunks"]

#: What the NTK-GP comparison assumes, as (dotted field, allowed values, why).
REQUIREMENTS = (
    ("model.architecture", ("fc",), "the analytic kernels exist for fc only"),
    ("training.loss", ("mse",), "Eq. 14–15 are the MSE dynamics"),
    ("training.optimizer", ("gd",), "Eq. 14–15 are full-batch gradient descent (flow)"),
)


def check_config(config: dict) -> list[str]:
    """Problems that stop the ensemble stage for this run config (empty when there are none).

    Each message names the field, its value and what is allowed.
    """
    problems = []
    for dotted, allowed, why in REQUIREMENTS:
        section, key = dotted.split(".")
        value = config[section][key]
        if value not in allowed:
            problems.append(
                f"{dotted}: {value!r}, but ensemble.members > 0 needs {' or '.join(allowed)} "
                f"({why}); set ensemble.members: 0 or change {dotted}"
            )
    if config["data"]["n_train"] < 2:
        problems.append(
            f"data.n_train: {config['data']['n_train']}, but the ensemble interpolates between "
            "two training points of different classes; allowed: ≥ 2"
        )
    return problems


def point_id(run_id: str) -> str:
    """The folder of a sweep point's ensemble: the run id without its seeds, "all" when the
    sweep has no axis (``width~512/seeds~0-1`` → ``width~512``)."""
    prefix = run_id.rsplit("seeds~", 1)[0].rstrip("/")
    return prefix or "all"


def member_seeds(config: dict) -> list[int]:
    """The network seeds of the ensemble: ensemble.seed … ensemble.seed + ensemble.members − 1."""
    section = config["ensemble"]
    return list(range(section["seed"], section["seed"] + section["members"]))


def member_chunks(config: dict) -> list[list[int]]:
    """The member seeds cut in chunks of ensemble.batch, trained one chunk at a time (memory)."""
    seeds, size = member_seeds(config), config["ensemble"]["batch"]
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]
