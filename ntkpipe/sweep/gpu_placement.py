"""Where GPU jobs may run: a sweep whose rules ask for GPUs, started with Snakemake's local
executor on a machine without one (a login node, a laptop), would run every heavy job on its
CPUs; the paper's sweeps would take weeks there. :func:`local_gpu_problem` says so, with the
ways out, before any job starts (the workflow's ``onstart``, once the executor is known).
"""

from __future__ import annotations

import glob

__all__ = ["gpus_on_this_machine", "local_gpu_problem"]


def gpus_on_this_machine() -> int:
    """The NVIDIA GPUs whose device files this machine has (``/dev/nvidia0`` …), plus one for
    an AMD ROCm device (``/dev/kfd``): a look at the device files, without starting JAX."""
    nvidia = [path for path in glob.glob("/dev/nvidia*") if path[len("/dev/nvidia") :].isdigit()]
    return len(nvidia) + len(glob.glob("/dev/kfd"))


def local_gpu_problem(settings: dict, executor: str, gpus_here: int, name: str) -> str | None:
    """Why the sweep must not start here (None: it may).

    Args:
        settings: the sweep's ``resources`` section
            (:func:`ntkpipe.sweep.cost_settings.load_settings`).
        executor: the name of Snakemake's executor plugin (``local``, ``slurm``, …).
        gpus_here: GPUs on this machine (:func:`gpus_on_this_machine`).
        name: the sweep's name, for the message.
    """
    if not settings["gpu"] or not settings["gpu_rules"] or executor != "local" or gpus_here:
        return None
    return (
        f"the sweep {name!r} asks for {settings['gpu']} GPU(s) per job of "
        f"{', '.join(settings['gpu_rules'])} (resources.gpu), but Snakemake runs its jobs on "
        "this machine, which has no GPU; nothing was started. On a SLURM cluster: `snakemake "
        "--profile slurm …` (after `ntkpipe install-profile`, README 'Running on SLURM'); to "
        "run it on this machine's CPUs anyway: add --config 'resources={gpu: 0}'"
    )
