"""Warm worker processes for local sweeps: a job's imports and compiled programs, kept.

A job of a small run is mostly its process's fixed cost: Python, JAX, Flax, xarray and zarr
(≈ 2 s of CPU) and the compilation of programs that other jobs of the sweep compiled already
(the losses, metrics and eigendecompositions of each dataset size). On a laptop that is most of
the default sweep (benchmarks/README.md, "The default sweep in a minute"). When Snakemake runs
the jobs itself (its local executor), the workflow's ``onstart`` starts a pool
(:mod:`ntkpipe.workers.pool`) and points the jobs at it through ``$NTKPIPE_WORKERS``. The
``ntkpipe`` command of a JAX stage with one thread (every ``run`` and ``analytic`` job, and the
one-thread stages of ``resources.jobs: stages``), and of ``collect`` and ``report``, then hands
its command line to a worker
(:mod:`ntkpipe.workers.client`) instead of starting JAX itself: one process per core, started on
demand, that has imported everything and keeps what it compiled (:mod:`ntkpipe.workers.worker`).

What stays as it was:

- **The job.** The rule's command, log, exit status, benchmark and outputs are the same: the
  worker runs the same ``ntkpipe`` entry point (:func:`ntkpipe.cli.main`) with the job's working
  folder and environment, its output written to the job's own stdout and stderr (the
  descriptors are passed over the socket), and the stores are bit-identical to a job in its own
  process (``tests/test_workers.py``).
- **Interruption.** A signal the job's process gets (Snakemake's Ctrl-C, ``kill``) is forwarded
  to the worker, where the job reacts as it would alone (training checkpoints on SIGTERM); a
  worker whose job's process is gone kills itself at once, so no job outlives its Snakemake job,
  and every store is written atomically, so nothing left looks complete. The pool stops when the
  Snakemake process that started it ends.
- **Anything a worker cannot run alike** runs in the job's own process, as before: other thread
  counts, an environment that differs in what JAX reads when it starts (``JAX_*``, ``XLA_*``,
  ``CUDA_*``, the compilation cache), no pool answering. The job's log says which.

The pool is local only and CPU only: SLURM jobs run on other machines, and a GPU job must own
its device's memory (JAX takes 75 % of it per process). ``resources.warm_workers: false`` turns
it off.
"""

from __future__ import annotations

__all__ = [
    "SOCKET_ENV",
    "STARTUP_ENV_PREFIXES",
    "UNTHREADED_COMMANDS",
    "pooled_commands",
    "pooled_rules",
    "startup_environment",
]

SOCKET_ENV = "NTKPIPE_WORKERS"
"""The environment variable holding the pool's socket path (set for the jobs by ``onstart``)."""

STARTUP_ENV_PREFIXES = (
    "JAX_",
    "XLA_",
    "CUDA_",
    "TF_",
    "NTKPIPE_JAX_CACHE",
    "PYTHON",
    "LD_",
)
"""Environment variables read when a process or JAX starts: a job whose values differ from its
worker's runs in its own process. (The thread counts Snakemake sets for a job, ``OMP_NUM_THREADS``
and the like, are not compared: the pool runs jobs of one thread, and its workers have one.)"""


def startup_environment(environ) -> dict[str, str]:
    """The variables of `environ` that a process reads when it (or JAX) starts."""
    return {k: v for k, v in environ.items() if k.startswith(STARTUP_ENV_PREFIXES)}


UNTHREADED_COMMANDS = frozenset({"collect", "report"})
"""Commands of the sweep scope a worker runs too: one thread, no ``--threads`` of their own
(≈ 1.5 s of imports each). Not ``figures``: it forks its drawing processes, which a process with
XLA's threads running must not do."""


def pooled_commands() -> frozenset[str]:
    """The ``ntkpipe`` subcommands a worker runs: every stage below the sweep scope (the ones
    that run JAX) and :data:`UNTHREADED_COMMANDS`."""
    from ntkpipe.sweep import stage_table

    stages = {row.command for row in stage_table.STAGES if row.scope != "sweep"}
    return frozenset(stages) | UNTHREADED_COMMANDS


def pooled_rules() -> frozenset[str]:
    """The workflow rules whose jobs run the :func:`pooled_commands` (their benchmark files then
    hold a job's wall time, but its client's CPU and memory)."""
    from ntkpipe.sweep import stage_table

    commands = pooled_commands()
    return frozenset(row.rule for row in stage_table.STAGES if row.command in commands)
