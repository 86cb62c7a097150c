"""The stage table: the one description of the workflow's graph.

One row (:class:`Stage`) per stage of a run (init, kernel_init, train, kernel_final, linear,
compare), per shared stage (analytic: one per (data, model) point; ensemble: one per sweep
point), per sweep-level stage (collect, figures, report) and for the ``run`` job of
``resources.jobs: runs`` (every stage of one run in one process). A row's ``rule`` is the stage's
one name in code: the Snakemake rule, the key of the cost model's resources, of
:func:`ntkpipe.sweep.runs.stage_config` and of the one-job-per-run plan.

Read by the rules' input and resource functions (``workflow/rules/common.smk``), the CLI's
per-stage arguments (:mod:`ntkpipe.cli`), the one-job-per-run layout (:mod:`ntkpipe.jobs.run`),
the cost model (:mod:`ntkpipe.sweep.cost`), the stage configs (:mod:`ntkpipe.sweep.runs`) and the
tests. ``tests/sweep/test_stage_table.py`` checks every rule's inputs and outputs against it.

Light: no JAX, no xarray (the Snakefile imports it at every start).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "Input",
    "Stage",
    "STAGES",
    "BY_RULE",
    "RUN_STAGES",
    "COST_STAGES",
    "RULE_COST_STAGES",
    "GPU_RULES",
    "DEFAULT_GPU_RULES",
    "COMMAND_RULES",
    "CONFIG_FILES",
    "stage",
    "reads",
    "wanted",
    "upstream",
    "commands",
]


class Input(NamedTuple):
    """One store a stage reads.

    Attributes:
        name: the rule's input name (``input.<name>`` in the rule).
        flag: the command's flag (``--kernel-init``; its argparse dest is the stage function's
            keyword); collect's ``--runs`` takes the folder of every run's store.
        stage: the rule that writes it (its ``store`` is the file read).
        when: the run-config switch under which it is read (``kernels.initial``,
            ``kernels.final``, ``kernels.analytic``, ``ensemble.members``, ``training.lr_factor``),
            None: always.
        help: the flag's help text.
    """

    name: str
    flag: str
    stage: str
    when: str | None = None
    help: str = ""


class Stage(NamedTuple):
    """One rule of the workflow.

    Attributes:
        rule: the stage's name (the Snakemake rule).
        scope: where its store lives: ``run`` (runs/<run_id>/), ``analytic``
            (analytic/<akey>/), ``point`` (ensembles/<point>/) or ``sweep`` (results/<sweep>/).
        layout: the ``resources.jobs`` layout that has the rule (``stages``, ``runs``), or None:
            both.
        config_file: the config file it reads (``--run``; ``--sweep`` for collect), or None.
        inputs: the stores it reads, in the order of the command's flags.
        store: the file or folder it writes.
        attribute: the ``stage`` attribute of the store it writes (None: not a store).
        cost_stage: the stage of :mod:`ntkpipe.sweep.cost` whose cost it has (None: the run
            job, the sum of its stages).
        command: the ``ntkpipe`` subcommand that runs it.
        module: the module of :mod:`ntkpipe.jobs` holding the command's function.
        function: that function (called with the command's arguments as keywords).
        gpu: whether it uses GPUs when the config gives them (``resources.gpu``):
            ``"default"`` (in ``resources.gpu_rules`` by default), ``"optional"`` (may be added
            to ``resources.gpu_rules``), None (never).
        help: one line, what the command does (``ntkpipe --help``; the first row of a command).
        also_writes: files the same job writes next to its store (the report's ``claims.tsv``).
    """

    rule: str
    scope: str
    layout: str | None
    config_file: str | None
    inputs: tuple[Input, ...]
    store: str
    attribute: str | None
    cost_stage: str | None
    command: str
    module: str
    function: str
    gpu: str | None
    help: str = ""
    also_writes: tuple[str, ...] = ()


_ANALYTIC = Input(
    name="analytic",
    flag="--analytic",
    stage="analytic",
    when="kernels.analytic",
    help="analytic.zarr",
)

# training.lr_factor: η = lr_factor × η_crit of Θ̂₀, so train reads kernel_init.zarr (linear
# already does: lr_factor needs kernels.initial true, see sweep.validate_checks)
_LR_FROM_KERNEL = Input(
    name="kernel_init",
    flag="--kernel-init",
    stage="kernel_init",
    when="training.lr_factor",
    help="kernel_init.zarr (η_crit): η = training.lr_factor × η_crit",
)

STAGES = (
    Stage(
        rule="init",
        scope="run",
        layout="stages",
        config_file="model.json",
        inputs=(),
        store="init.zarr",
        attribute="init",
        cost_stage="init",
        command="init",
        module="init",
        function="init",
        gpu="optional",
        help="sample θ₀ for every seed of a run and evaluate f₀",
    ),
    Stage(
        rule="kernel_init",
        scope="run",
        layout="stages",
        config_file="model.json",
        inputs=(
            Input(
                name="init",
                flag="--params",
                stage="init",
                help="store holding params/ (init.zarr or train.zarr)",
            ),
        ),
        store="kernel_init.zarr",
        attribute="kernels",
        cost_stage="kernels",
        command="kernels",
        module="kernels",
        function="kernels",
        gpu="default",
        help="empirical Θ̂ and K̂ at the given params",
    ),
    Stage(
        rule="analytic",
        scope="analytic",
        layout=None,
        config_file="analytic.json",
        inputs=(),
        store="analytic.zarr",
        attribute="analytic",
        cost_stage="analytic",
        command="analytic",
        module="analytic",
        function="analytic",
        gpu="optional",
        help="infinite-width Θ and K",
    ),
    Stage(
        rule="train",
        scope="run",
        layout="stages",
        config_file="run.json",
        inputs=(Input(name="init", flag="--init", stage="init", help="init.zarr"), _LR_FROM_KERNEL),
        store="train.zarr",
        attribute="train",
        cost_stage="train",
        command="train",
        module="train",
        function="train",
        gpu="default",
        help="train the network (all seeds of a run)",
    ),
    Stage(
        rule="kernel_final",
        scope="run",
        layout="stages",
        config_file="run.json",
        inputs=(
            Input(
                name="trained",
                flag="--params",
                stage="train",
                help="store holding params/ (init.zarr or train.zarr)",
            ),
        ),
        store="kernel_final.zarr",
        attribute="kernels",
        cost_stage="kernels",
        command="kernels",
        module="kernels",
        function="kernels",
        gpu="default",
    ),
    Stage(
        rule="linear",
        scope="run",
        layout="stages",
        config_file="run.json",
        inputs=(
            Input(name="init", flag="--init", stage="init", help="init.zarr"),
            Input(
                name="kernel",
                flag="--kernel",
                stage="kernel_init",
                when="kernels.initial",
                help="kernel_init.zarr (Θ̂₀): needed by the closed form (MSE with gd)",
            ),
            _ANALYTIC._replace(
                help="analytic.zarr (Θ): also evolve f_lin with the analytic kernel"
            ),
        ),
        store="linear.zarr",
        attribute="linear",
        cost_stage="linear",
        command="linear",
        module="linear",
        function="linear",
        gpu="default",
        help="evolve the linearized network f_lin",
    ),
    Stage(
        rule="compare",
        scope="run",
        layout="stages",
        config_file="run.json",
        inputs=(
            Input(name="train", flag="--train", stage="train", help="train.zarr"),
            Input(name="linear", flag="--linear", stage="linear", help="linear.zarr"),
            Input(
                name="kernel_init",
                flag="--kernel-init",
                stage="kernel_init",
                when="kernels.initial",
                help="kernel_init.zarr (none: kernels.initial false, η_crit NaN)",
            ),
            Input(
                name="kernel_final",
                flag="--kernel-final",
                stage="kernel_final",
                when="kernels.final",
                help="kernel_final.zarr",
            ),
            _ANALYTIC,
        ),
        store="metrics.zarr",
        attribute="metrics",
        cost_stage="compare",
        command="compare",
        module="compare",
        function="compare",
        gpu=None,
        help="per-run metrics of f against f_lin",
    ),
    Stage(
        rule="ensemble",
        scope="point",
        layout=None,
        config_file="ensemble.json",
        inputs=(),
        store="ensemble.zarr",
        attribute="ensemble",
        cost_stage="train",
        command="ensemble",
        module="ensemble",
        function="ensemble",
        gpu="default",
        help="train an ensemble on x(α) between two training points, next to the NTK-GP and NNGP",
    ),
    Stage(
        rule="collect",
        scope="sweep",
        layout=None,
        config_file="sweep.json",
        inputs=(
            Input(
                name="metrics",
                flag="--runs",
                stage="compare",
                help="the runs folder, holding <run_id>/metrics.zarr",
            ),
            Input(
                name="ensembles",
                flag="--ensembles",
                stage="ensemble",
                when="ensemble.members",
                help="folder holding <point>/ensemble.zarr (Fig. 2)",
            ),
        ),
        store="summary.zarr",
        attribute="summary",
        cost_stage="collect",
        command="collect",
        module="analysis",
        function="collect",
        gpu=None,
        help="combine all runs into summary.zarr",
    ),
    Stage(
        rule="figures",
        scope="sweep",
        layout=None,
        config_file=None,
        inputs=(Input(name="summary", flag="--summary", stage="collect"),),
        store="figures",
        attribute=None,
        cost_stage="figures",
        command="figures",
        module="analysis",
        function="figures",
        gpu=None,
        help="draw the sweep's figures",
    ),
    Stage(
        rule="report",
        scope="sweep",
        layout=None,
        config_file=None,
        inputs=(
            Input(name="summary", flag="--summary", stage="collect"),
            Input(name="figures", flag="--figures", stage="figures", help="folder of figures"),
        ),
        store="report.html",
        attribute=None,
        cost_stage="report",
        command="report",
        module="analysis",
        function="report",
        gpu=None,
        help="write the self-contained HTML report",
        also_writes=("claims.tsv",),
    ),
    Stage(
        rule="run",
        scope="run",
        layout="runs",
        config_file=None,
        inputs=(_ANALYTIC._replace(help="analytic.zarr (Θ, K)"),),
        store="metrics.zarr",
        attribute="metrics",
        cost_stage=None,
        command="run",
        module="run",
        function="run_all_stages",
        gpu="default",
        help=(
            "every stage of one run in one job (init → kernels → train → linear → compare), "
            "keeping the stores that are up to date"
        ),
    ),
)
"""Every stage, in the order one job of a run computes them (the per-stage rules of a run),
then the shared, sweep-level and one-job-per-run ones."""

BY_RULE = {row.rule: row for row in STAGES}
"""Rule name → its row."""

RUN_STAGES = tuple(row for row in STAGES if row.scope == "run" and row.layout == "stages")
"""The stages of one run, in the order the ``run`` job computes them."""

CONFIG_FILES = ("model.json", "run.json", "analytic.json", "ensemble.json")
"""The config files of a stage's ``--run`` (model.json: the config of init and kernel_init,
which leaves out training; run.json: the rest of a run's stages)."""

COST_STAGES = tuple(dict.fromkeys(row.cost_stage for row in STAGES if row.cost_stage))
"""The stages the cost model knows (:data:`ntkpipe.sweep.cost.STAGES`)."""

RULE_COST_STAGES = {row.rule: row.cost_stage for row in STAGES if row.cost_stage}
"""Rule → the cost stage whose cost it has (:data:`ntkpipe.sweep.cost.RULE_STAGES`)."""

GPU_RULES = tuple(row.rule for row in STAGES if row.gpu)
"""Rules that may run on a GPU (the heavy ones): what ``resources.gpu_rules`` may name."""

DEFAULT_GPU_RULES = tuple(row.rule for row in STAGES if row.gpu == "default")
"""The default ``resources.gpu_rules`` (:data:`ntkpipe.sweep.cost_settings.DEFAULT_SETTINGS`):
init-sampling and the analytic kernels are cheap and stay on CPUs unless named."""

COMMAND_RULES: dict[str, tuple[str, ...]] = {}
for _row in STAGES:
    COMMAND_RULES[_row.command] = (*COMMAND_RULES.get(_row.command, ()), _row.rule)
"""``ntkpipe`` subcommand → the rules it runs, in table order (``kernels``: kernel_init and
kernel_final; a command of several rules takes ``--rule``)."""


def stage(rule: str) -> Stage:
    """The row of ``rule``.

    Raises:
        ValueError: no stage has that rule.
    """
    if rule not in BY_RULE:
        raise ValueError(f"rule: {rule!r} is not one of {', '.join(BY_RULE)}")
    return BY_RULE[rule]


def switch_on(config: dict, when: str | None) -> bool:
    """Whether the run-config switch ``when`` (``kernels.initial``, ``ensemble.members``,
    ``training.lr_factor``, …) is on in ``config`` (None: always): a true or non-null value. A
    missing key is on (the schema's defaults are true), except ``training.lr_factor`` (null)."""
    if when is None:
        return True
    section, key = when.split(".")
    return bool((config.get(section) or {}).get(key, when not in _OFF_WHEN_MISSING))


_OFF_WHEN_MISSING = ("training.lr_factor",)  # a value (default null), not a switch


def reads(rule: str, config: dict) -> tuple[Input, ...]:
    """The inputs of ``rule`` that a run (or sweep) with ``config`` reads."""
    return tuple(one for one in stage(rule).inputs if switch_on(config, one.when))


def wanted(config: dict) -> tuple[Stage, ...]:
    """The stages of one run with ``config``, in order: kernel_init is left out with
    ``kernels.initial: false`` and kernel_final with ``kernels.final: false`` (no stage
    reads them)."""
    switches = {"kernel_init": "kernels.initial", "kernel_final": "kernels.final"}
    return tuple(row for row in RUN_STAGES if switch_on(config, switches.get(row.rule)))


def upstream(rule: str, config: dict) -> tuple[Stage, ...]:
    """The stages of one run with ``config`` that ``rule`` needs: ``rule`` and every run stage
    whose store it reads, transitively, in run order (``upstream("linear", …)``: init,
    kernel_init, linear; not train). Empty when the run leaves ``rule`` out."""
    kept = {row.rule for row in wanted(config)}
    needed, todo = set(), [rule] if rule in kept else []
    while todo:
        one = todo.pop()
        needed.add(one)
        todo += [i.stage for i in reads(one, config) if i.stage in kept and i.stage not in needed]
    return tuple(row for row in RUN_STAGES if row.rule in needed)


def commands() -> dict[str, Stage]:
    """``ntkpipe`` subcommand → the first row it runs (kernels: kernel_init's)."""
    out: dict[str, Stage] = {}
    for row in STAGES:
        out.setdefault(row.command, row)
    return out
