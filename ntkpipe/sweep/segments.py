"""Jobs longer than the partition's wall-time cap: consecutive segments of one job.

A training job (rule ``train``, ``linear`` when f_lin is optimized step by step, or ``run``)
whose time request exceeds ``resources.max_runtime`` is not refused: it asks for the cap, and
every attempt of the job trains until shortly before its own time limit, saves its checkpoint
and stops (:mod:`ntkpipe.jobs.stop_signals`, :func:`ntkpipe.jobs.train.fit`); Snakemake's retry
of the failed attempt resumes from the checkpoint. The plan counts the segments a job needs
(:func:`segment_count`), and the rule's ``retries`` are raised by that count
(:func:`ntkpipe.sweep.plan.segment_retries`), so the profile's retries stay for real failures.

Why retries and not SLURM's requeue: a retry is a new ``sbatch`` that every executor of
Snakemake has (SLURM or another), needs nothing of the site (requeue may be disabled, is capped
by ``MaxBatchRequeue`` and keeps the job's priority age only where ``JobRequeue`` allows it), and
each segment is a job record of its own with its log. The cost: one queue wait per segment.

Where the job stops: the reserve :func:`reserve_s` before its limit (a tenth of it, at least
15 s, at most 30 min), which must cover one training segment of the loop (between record steps
or ``training.checkpoint_every`` steps), saving the checkpoint and leaving the process; the
scheduler's SIGTERM at the limit still saves the state (``KillWait`` seconds before SIGKILL).

Light: no JAX.
"""

from __future__ import annotations

import math

__all__ = ["SEGMENTED_RULES", "RESERVE_FRACTION", "reserve_s", "segment_count"]

SEGMENTED_RULES = ("train", "linear", "run")
"""Rules whose jobs may run as segments (``linear`` only when f_lin is trained step by step,
not in closed form; ``run`` when its other stages each fit in one segment)."""
RESERVE_FRACTION = 0.1
"""The part of a job's time limit left when it stops itself (:func:`reserve_s`)."""
RESERVE_MIN_S = 15.0
RESERVE_MAX_S = 1800.0


def reserve_s(limit_s: float) -> float:
    """Seconds before its time limit at which a segmented job stops: a tenth of the limit,
    at least 15 s, at most 30 minutes."""
    return min(max(RESERVE_FRACTION * limit_s, RESERVE_MIN_S), RESERVE_MAX_S)


def segment_count(work_s: float, start_s: float, unstoppable_s: float, cap_min: int) -> int:
    """How many jobs of at most ``cap_min`` minutes one job of ``start_s + work_s`` seconds
    needs, each paying its start-up again: ``ceil(work_s / usable)`` with
    usable = cap − :func:`reserve_s` (cap) − start; 0 when it cannot be split (no usable time,
    or a part that cannot stop, ``unstoppable_s``, longer than one segment's usable time).

    Args:
        work_s: the job's estimated seconds beyond its start-up.
        start_s: its start-up seconds (imports, data, compilation), paid by every segment.
        unstoppable_s: the longest part of the work that cannot stop part-way (a closed-form
            stage of a run job; 0 for a training job).
        cap_min: the partition's cap (``resources.max_runtime``), minutes.
    """
    limit = 60.0 * cap_min
    usable = limit - reserve_s(limit) - start_s
    if usable <= 0 or unstoppable_s > usable:
        return 0
    return max(1, math.ceil(work_s / usable))
