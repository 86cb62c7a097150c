"""The results layout: every path of one sweep, named once.

A sweep named ``<name>`` writes everything under ``results/<name>/`` (the `Layout`'s ``root``)::

    runs/<run_id>/{model.json, run.json, init.zarr, kernel_init.zarr, train.zarr, …}
    analytic/<akey>/{analytic.json, analytic.zarr}
    ensembles/<point>/{ensemble.json, ensemble.zarr}
    logs/<rule>/<key>.log, logs/<rule>.log (sweep-level rules), logs/config/…
    benchmarks/<rule>/<key>.tsv
    sweep.json, summary.zarr, .summary-rows.npz (collect's row cache), figures/, report.html
    resources.json, invocations.jsonl, .ntkpipe.lock

and shares ``results/.jax_cache`` (the JAX compilation cache) with the other sweeps. A stage's
folder is its scope's (:data:`ntkpipe.sweep.stage_table.Stage.scope`: run, analytic, point or
sweep) and its file the stage table's ``store`` / ``config_file``: the rules
(``workflow/rules/common.smk``), ``ntkpipe status``, ``ntkpipe calibrate``, collect, the stale
store check and the tests ask a `Layout` rather than join paths themselves.

A key may be a Snakemake wildcard (``"{run}"``): ``layout.store("train", "{run}")`` is the
train rule's output pattern. Light: no JAX, no xarray.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ntkpipe.sweep import stage_table

__all__ = ["RESULTS", "SCOPE_FOLDERS", "Layout", "summary_rows_cache"]

RESULTS = Path("results")
"""The folder holding every sweep's results, relative to the working directory."""

SCOPE_FOLDERS = {"run": "runs", "analytic": "analytic", "point": "ensembles", "sweep": ""}
"""A stage scope → the folder (under the sweep's root) holding one folder per key."""

_CONFIG_LOGS = {
    "model.json": "config/{key}/model.log",
    "run.json": "config/{key}/run.log",
    "analytic.json": "config/analytic/{key}.log",
    "ensemble.json": "config/ensembles/{key}.log",
    "sweep.json": "config/sweep.log",
}


@dataclass(frozen=True)
class Layout:
    """Every path of the sweep whose results folder is `root` (``results/<name>``)."""

    root: Path

    @classmethod
    def of(cls, name: str, results: str | Path = RESULTS) -> Layout:
        """The layout of the sweep called `name` (its config's ``name``)."""
        return cls(Path(results) / name)

    # ------------------------------------------------------------ one folder per key

    def folder(self, scope: str, key: str | None = None) -> Path:
        """The folder of one run / analytic key / sweep point (`scope` of the stage table), or
        the sweep's root (scope ``sweep``, no key)."""
        if scope == "sweep":
            return self.root
        return self.root / SCOPE_FOLDERS[scope] / str(key)

    def run_dir(self, run_id: str) -> Path:
        return self.folder("run", run_id)

    def analytic_dir(self, akey: str) -> Path:
        return self.folder("analytic", akey)

    def ensemble_dir(self, point: str) -> Path:
        return self.folder("point", point)

    @property
    def runs(self) -> Path:
        """The folder of the run folders (collect's ``--runs``)."""
        return self.root / SCOPE_FOLDERS["run"]

    @property
    def ensembles(self) -> Path:
        """The folder of the sweep points' ensemble folders (collect's ``--ensembles``)."""
        return self.root / SCOPE_FOLDERS["point"]

    # ------------------------------------------------------------ what a stage reads and writes

    def store(self, rule: str, key: str | None = None) -> Path:
        """The file or folder `rule` writes (its output), for one key of its scope."""
        row = stage_table.stage(rule)
        return self.folder(row.scope, key) / row.store

    def also_written(self, rule: str, key: str | None = None) -> tuple[Path, ...]:
        """The files `rule`'s job writes next to its store (``Stage.also_writes``)."""
        row = stage_table.stage(rule)
        return tuple(self.folder(row.scope, key) / name for name in row.also_writes)

    def config_file(self, rule: str, key: str | None = None) -> Path:
        """The config file `rule` reads (``--run``; ``--sweep`` for collect)."""
        row = stage_table.stage(rule)
        if row.config_file is None:
            raise ValueError(f"rule {rule!r} reads no config file")
        return self.folder(row.scope, key) / row.config_file

    def log(self, rule: str, key: str | None = None) -> Path:
        """The log of one job of `rule`: ``logs/<rule>/<key>.log``, ``logs/<rule>.log`` for a
        sweep-level rule."""
        return self.root / "logs" / (f"{rule}.log" if key is None else f"{rule}/{key}.log")

    def config_log(self, config_file: str, key: str | None = None) -> Path:
        """The log of the local rule writing `config_file` (``model.json``, …) of one key."""
        return self.root / "logs" / _CONFIG_LOGS[config_file].format(key=key)

    def benchmark(self, rule: str, key: str) -> Path:
        """Snakemake's benchmark file of one job of `rule` (wall time, peak memory)."""
        return self.root / "benchmarks" / rule / f"{key}.tsv"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def benchmarks(self) -> Path:
        return self.root / "benchmarks"

    # ------------------------------------------------------------ the sweep's own files

    @property
    def sweep_json(self) -> Path:
        return self.config_file("collect")

    @property
    def summary(self) -> Path:
        return self.store("collect")

    @property
    def summary_rows_cache(self) -> Path:
        return summary_rows_cache(self.summary)

    @property
    def figures(self) -> Path:
        return self.store("figures")

    @property
    def report(self) -> Path:
        return self.store("report")

    @property
    def claims_tsv(self) -> Path:
        """The claims as a table (``ntkpipe claims``), written with the report."""
        (path,) = self.also_written("report")
        return path

    @property
    def derived(self) -> tuple[Path, ...]:
        """The sweep-level outputs made from every run: summary, figures, report."""
        return (self.summary, self.figures, self.report)

    @property
    def resources_json(self) -> Path:
        """The scheduling settings the workflow ran with (read by ``ntkpipe calibrate``)."""
        return self.root / "resources.json"

    @property
    def replaced(self) -> Path:
        """Where stores replaced at a start are kept (``.replaced/<time>/<path in the sweep>``)
        instead of being deleted, until the user drops them."""
        return self.root / ".replaced"

    @property
    def origin(self) -> Path:
        """The config files the sweep's last start read (:mod:`ntkpipe.start_guard`)."""
        return self.root / "origin.json"

    @property
    def jax_cache(self) -> Path:
        """JAX's compilation cache, shared by every sweep under the same results folder."""
        return self.root.parent / ".jax_cache"


def summary_rows_cache(summary: str | Path) -> Path:
    """Where collect keeps the summary rows of the runs: ``.<summary name>-rows.npz`` next to
    the summary (outside it: the workflow removes the summary before collect writes it)."""
    return Path(summary).with_name(f".{Path(summary).stem}-rows.npz")
