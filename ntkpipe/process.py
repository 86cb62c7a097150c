"""The job process before JAX starts: XLA's CPU threads and JAX's persistent compilation cache.

Both must be set before JAX is imported (XLA sizes its thread pool and JAX reads its cache
settings when they start); the `ntkpipe` command (:mod:`ntkpipe.cli`) calls them first. Standard
library only.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["pin_threads", "configure_compilation_cache", "drop_empty_cache_entries"]


def pin_threads(threads: int, core: int | None = None) -> None:
    """Restrict this process (and so XLA's CPU thread pool) to `threads` cores.

    XLA sizes its pool from the CPUs the process may run on, so narrowing the
    affinity mask before JAX starts pins it. Jobs started in parallel by
    Snakemake get different cores (chosen from the process id) so they do not
    pile onto the same ones. With one thread, Eigen's own pool is switched off too.
    BLAS/LAPACK (used by JAX's eigendecompositions on the CPU) start their own threads
    whatever XLA does, so they get the same count.

    Args:
        threads: the thread count (cores).
        core: the first of the cores, counted in the cores this process may use (modulo their
            number); None: chosen from the process id. The warm workers of one pool
            (:mod:`ntkpipe.workers`) take one core each this way.
    """
    if "jax" in sys.modules:
        raise RuntimeError("pin_threads must run before jax is imported")
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, str(threads))
    available = sorted(os.sched_getaffinity(0))
    if threads >= len(available):
        return
    offset = (os.getpid() if core is None else core) % len(available)
    chosen = {available[(offset + i) % len(available)] for i in range(threads)}
    os.sched_setaffinity(0, chosen)
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def configure_compilation_cache(environ=None) -> str | None:
    """Point JAX's persistent compilation cache at a folder shared by all jobs; before JAX starts.

    The folder is ``$NTKPIPE_JAX_CACHE`` (the workflow sets ``results/.jax_cache``), else
    ``$JAX_COMPILATION_CACHE_DIR``, else ``$XDG_CACHE_HOME/ntkpipe/jax`` (``~/.cache/ntkpipe/jax``);
    ``NTKPIPE_JAX_CACHE=off`` (or ``0``) turns the cache off. Every compilation is cached (JAX's
    default keeps only those over 1 s, which are few here), unless
    ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` is set. Entries are keyed by the program, the
    JAX version and the device, so one folder serves every sweep, CPU and GPU jobs alike.

    In a process where JAX already runs (``main`` called from Python, e.g. a test), JAX has read
    its settings: nothing is changed.

    Args:
        environ: the environment to read and update (default ``os.environ``).

    Returns:
        The cache folder, or None when the cache is off or JAX already runs.
    """
    env = os.environ if environ is None else environ
    if "jax" in sys.modules and environ is None:
        return None
    choice = env.get("NTKPIPE_JAX_CACHE", "").strip()
    if choice.lower() in ("off", "0", "false", "no"):
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        return None
    folder = choice or env.get("JAX_COMPILATION_CACHE_DIR") or _default_cache_dir(env)
    env["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    drop_empty_cache_entries(folder)
    return str(folder)


def drop_empty_cache_entries(folder) -> list[str]:
    """Removes the empty entries of JAX's compilation cache (and their access times).

    JAX writes an entry in place (``<key>-cache``, not through a rename): a job stopped by a
    full disk or a kill leaves it empty, and every later job would read it and fail instead of
    compiling again. Returns the names removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            empty = entry.name.endswith("-cache") and entry.stat().st_size == 0
            if empty:
                os.unlink(entry.path)
                removed.append(entry.name)
                with contextlib.suppress(OSError):
                    os.unlink(entry.path[: -len("-cache")] + "-atime")
        except OSError:
            continue
    return removed


def _default_cache_dir(env) -> str:
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ntkpipe", "jax")
