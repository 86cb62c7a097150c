"""Stage reruns in either job layout: ``snakemake --forcerun train``, ``--until kernel_init``.

Snakemake's ``--forcerun`` and ``--until`` take rule names (or files), and a rule must be in the
DAG for them to act. With one job per stage (``resources.jobs: stages``) every stage of a run is a
rule and they work as they are. With one job per run (``resources.jobs: runs``, the default
sweep) the rule is ``run`` (one process: init → Θ̂₀ → train → Θ̂_T → f_lin → metrics), so the
workflow shapes its per-run rules from the stage names the command gives:

* ``--forcerun S`` (or ``-R S``): the per-run job is also a rule named ``S``, with the same
  output (``metrics.zarr``), inputs, params and command as ``run``, ranked before it
  (``ruleorder: S > run``), so Snakemake forces it; its command gets ``--redo S``, so the job
  computes S and the stages reading it again and keeps the others (``--forcerun train``: train,
  kernel_final and metrics computed, init, kernel_init and linear kept bit for bit). Because its
  command, params and inputs are those of ``run``, the next plain run has nothing to do
  (Snakemake's metadata compares those, not the rule's name). ``--forceall`` alike: ``--redo``
  every stage.
* ``--until S`` (or ``-U S``): a rule ``S`` whose output is S's store, ``ntkpipe run --until S``
  (S and the stages it reads, keeping those that are current), and ``run`` reads that store, so
  Snakemake runs the S jobs and stops there (``--until kernel_init``: init and Θ̂₀ of every run,
  no training). ``--until compare`` (its store is ``metrics.zarr``) is the per-run job under
  that name. Several ``--until`` stages are chained in run order, so that the jobs of one run
  never write its folder at the same time.

A normal run gets only the ``run`` rule (one process per run, nothing shaped). Snakemake gives
these names to the Snakefile nowhere at parse time (``workflow.dag_settings`` is set later), so
:func:`from_argv` reads them from the command line; jobs that Snakemake starts itself (SLURM: a
``snakemake`` of its own per job, without those flags) read them from the environment variable
:data:`ENV`, which the main process sets (:func:`for_workflow`; jobs inherit it: ``--export=ALL``).

Light: the stage table only (the Snakefile imports it at every start).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, MutableMapping, Sequence
from typing import NamedTuple

from ntkpipe.sweep import stage_table

__all__ = [
    "ENV",
    "RUN_STAGES",
    "StageReruns",
    "rule_names",
    "from_argv",
    "from_environ",
    "for_workflow",
    "problems",
    "per_run_inputs",
    "per_run_flags",
    "until_inputs",
    "until_flags",
]

ENV = "NTKPIPE_STAGE_RERUNS"
"""The environment variable carrying the main process's :class:`StageReruns` to jobs started by
a ``snakemake`` of their own (a cluster job)."""

RUN_STAGES = tuple(row.rule for row in stage_table.RUN_STAGES)
"""The stages of a run, in run order: the names ``--forcerun`` and ``--until`` shape."""

_RULE_FLAGS = {
    "--forcerun": "forcerun",
    "-R": "forcerun",
    "--until": "until",
    "-U": "until",
    "--omit-from": "omit_from",
    "-O": "omit_from",
}
"""Snakemake's flags taking rule names or files, as the names :func:`rule_names` gives them."""
_PER_RUN_RULE = "run"
_OUTPUT_STAGE = "compare"  # its store is metrics.zarr, the output of the per-run job


class StageReruns(NamedTuple):
    """The run stages a Snakemake command names, as the one-job-per-run layout needs them.

    Attributes:
        forced: stages named by ``--forcerun``, in run order (every stage with ``--forceall``).
        until: stages named by ``--until``, in run order.
        forceall: the command has ``--forceall`` (``-F``).
    """

    forced: tuple[str, ...] = ()
    until: tuple[str, ...] = ()
    forceall: bool = False

    @property
    def aliases(self) -> tuple[str, ...]:
        """Names the per-run job (output ``metrics.zarr``) also has, first ranked first: the
        forced stages, or ``compare`` under ``--until compare``. Empty under ``--forceall``
        (Snakemake forces every job: ``run`` is enough)."""
        if self.forceall:
            return ()
        names = self.forced + tuple(s for s in self.until if s == _OUTPUT_STAGE)
        return tuple(s for s in RUN_STAGES if s in names)

    @property
    def splits(self) -> tuple[str, ...]:
        """The ``--until`` stages with a store of their own: a rule each, ``ntkpipe run --until
        S``, whose store the per-run job reads."""
        return tuple(s for s in self.until if s != _OUTPUT_STAGE)

    def redo_flags(self) -> str:
        """The flags of ``ntkpipe run`` computing the forced stages again (``--redo train``)."""
        return " ".join(
            f"--redo {stage}" for stage in (RUN_STAGES if self.forceall else self.forced)
        )

    def to_env(self) -> str:
        return json.dumps(self._asdict(), sort_keys=True)


def rule_names(argv: Sequence[str]) -> dict[str, list[str]]:
    """The names given to Snakemake's ``--forcerun``, ``--until`` and ``--omit-from`` (and their
    short forms) in a command line: ``{"forcerun": [...], "until": [...], "omit_from": [...]}``.

    Each flag takes the words after it up to the next one starting with ``-`` (``--until a b``),
    or its value after ``=`` (``--until=a``), as Snakemake's argument parser does.
    """
    named: dict[str, list[str]] = {key: [] for key in dict.fromkeys(_RULE_FLAGS.values())}
    key = None
    for word in argv[1:]:
        flag, equals, value = word.partition("=")
        if word.startswith("-"):
            key = _RULE_FLAGS.get(flag) if flag.startswith("--") or not equals else None
            if key and equals:
                named[key].append(value)
                key = None
        elif key:
            named[key].append(word)
    return named


def from_argv(argv: Sequence[str]) -> StageReruns:
    """The run stages a Snakemake command line names (other names: rules, files, ignored)."""
    named = rule_names(argv)
    forceall = any(
        word == "--forceall" or (word[:1] == "-" and word[1:].isalpha() and "F" in word)
        for word in argv[1:]
    )  # -F, also within -nF
    return StageReruns(
        forced=_in_run_order(named["forcerun"]),
        until=_in_run_order(named["until"]),
        forceall=forceall,
    )


def from_environ(environ) -> StageReruns:
    """The :class:`StageReruns` the main process put in ``environ[ENV]`` (none: nothing)."""
    text = environ.get(ENV)
    if not text:
        return StageReruns()
    fields = json.loads(text)
    return StageReruns(tuple(fields["forced"]), tuple(fields["until"]), bool(fields["forceall"]))


def for_workflow(argv, environ: MutableMapping[str, str], *, main_process: bool) -> StageReruns:
    """The workflow's :class:`StageReruns`: Snakemake's main process reads its command line and
    leaves it in ``environ`` for the jobs; a job's own ``snakemake`` reads it from there."""
    if not main_process:
        return from_environ(environ)
    reruns = from_argv(argv)
    if reruns == StageReruns():
        environ.pop(ENV, None)
    else:
        environ[ENV] = reruns.to_env()
    return reruns


def problems(argv: Sequence[str], rules: Iterable[str], *, per_run_layout: bool) -> list[str]:
    """What is wrong with the rule names of a command line, before any job: a name that is no
    rule of the workflow (and no file path), and in the one-job-per-run layout the combinations
    it cannot shape (``--omit-from`` a run stage; ``--forcerun`` and ``--until`` run stages at
    once)."""
    rules = set(rules)
    named = rule_names(argv)
    out = []
    for key, names in named.items():
        flag = "--" + key.replace("_", "-")
        for name in names:
            if name not in rules and "/" not in name and "." not in name:
                out.append(
                    f"{flag} {name}: no stage of that name; the stages: {', '.join(_stages(rules))}"
                    f" (or give a file: {flag} results/<name>/runs/<run_id>/train.zarr)"
                )
    if not per_run_layout:
        return out
    if stages := _in_run_order(named["omit_from"]):
        out.append(
            f"--omit-from {stages[0]}: not available with one job per run (resources.jobs: "
            f"runs); use --until with the stages to compute, e.g. --until kernel_init"
        )
    reruns = from_argv(argv)
    if reruns.forced and reruns.splits:
        out.append(
            f"--forcerun {reruns.forced[0]} with --until {reruns.splits[0]}: not available with "
            f"one job per run (resources.jobs: runs); run the two one after the other"
        )
    return out


def _in_run_order(names: Iterable[str]) -> tuple[str, ...]:
    names = set(names)
    return tuple(stage for stage in RUN_STAGES if stage in names)


def _stages(rules: set[str]) -> list[str]:
    """The stage names to offer: the run's, then the workflow's other stages that are rules."""
    others = [row.rule for row in stage_table.STAGES if row.rule not in RUN_STAGES]
    return [*RUN_STAGES, *(rule for rule in others if rule in rules)]


# ----------------------------------------------------------------------------- the rules' functions


def per_run_inputs(rules, reruns: StageReruns):
    """The input function of the per-run job (``run`` and its :attr:`StageReruns.aliases`):
    ``run``'s (``rules``: :class:`ntkpipe.rules.RuleFunctions`), and under ``--until`` the
    stores of the :attr:`StageReruns.splits` stages that the run has."""
    base = rules.stage_inputs(_PER_RUN_RULE)
    if not reruns.splits:
        return base

    def inputs(wildcards):
        return base(wildcards) | _split_stores(rules, wildcards.run, reruns.splits)

    return inputs


def per_run_flags(rules, reruns: StageReruns):
    """A params function: ``run``'s flags for its input stores, then ``--redo`` of the forced
    stages. Derived from the input (it takes ``input``), so Snakemake's params trigger leaves
    it out: a forced rerun leaves nothing to do for the next plain run."""
    base, redo = rules.stage_flags(_PER_RUN_RULE), reruns.redo_flags()
    if not redo:
        return base

    def flags(wildcards, input):
        return " ".join(part for part in (base(wildcards, input), redo) if part)

    return flags


def until_inputs(rules, reruns: StageReruns, stage: str):
    """The input function of ``--until stage``'s job: the analytic store when ``stage`` or a
    stage it reads reads it, and the stores of the earlier ``--until`` stages (so that the jobs
    of one run run one after another)."""
    base = rules.stage_inputs(_PER_RUN_RULE)
    earlier = reruns.splits[: reruns.splits.index(stage)]

    def inputs(wildcards):
        config = rules.runs[wildcards.run].config
        reads = {one.name for row in stage_table.upstream(stage, config)
                 for one in stage_table.reads(row.rule, config)}  # fmt: skip
        out = {name: path for name, path in base(wildcards).items() if name in reads}
        return out | _split_stores(rules, wildcards.run, earlier)

    return inputs


def until_flags(rules, stage: str):
    """A params function: the flags of ``--until stage``'s job (its input stores, ``--until``)."""
    base = rules.stage_flags(_PER_RUN_RULE)

    def flags(wildcards, input):
        return " ".join(part for part in (base(wildcards, input), f"--until {stage}") if part)

    return flags


def _split_stores(rules, run_id: str, stages) -> dict[str, str]:
    config = rules.runs[run_id].config
    return {
        stage: str(rules.layout.store(stage, run_id))
        for stage in stages
        if stage_table.upstream(stage, config)
    }
