"""The rules between ntkpipe's subpackages (ntkpipe/__init__.py's docstring), checked on the source.

Every module of the package is parsed with ``ast``; every ``import`` / ``from … import`` is
collected, at module level and inside functions (both count for cycles), and resolved to the
ntkpipe module it names
(``from ntkpipe.core import train`` is ``ntkpipe.core.train``; ``from ntkpipe import models`` is
``ntkpipe.core.models``, the lazy re-export). The package root ``ntkpipe`` itself (its version and
lazy re-exports, no import of its own) may be imported by every part.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import ntkpipe

PACKAGE = Path(ntkpipe.__file__).parent
MAX_LINES = 400
SHARED = ("ntkpipe.errors", "ntkpipe.conventions")
"""Importable from every part: the error type and the constants parts that may not import each
other share (both import nothing of ntkpipe)."""
HEAVY = ("jax", "jaxlib", "flax", "optax", "xarray", "zarr", "matplotlib", "seaborn")


@dataclass(frozen=True)
class Import:
    importer: str  # module doing the import, e.g. "ntkpipe.jobs.run"
    target: str  # what it imports: an ntkpipe module, or a top-level third-party name
    line: int
    in_function: bool  # inside a def (runs at call time), not at import time

    def __str__(self) -> str:
        where = "in a function" if self.in_function else "module level"
        return f"{self.importer}:{self.line} imports {self.target} ({where})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str:
    """An ntkpipe dotted name as the module it denotes (the longest existing module prefix)."""
    head, _, rest = name.partition(".")
    if name.startswith("ntkpipe.") and rest.split(".")[0] in ntkpipe.PUBLIC_MODULES:
        name = f"ntkpipe.core.{rest}"  # the lazy re-exports of ntkpipe/__init__.py
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return head


def _imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(module, _target(alias.name), child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, package)
                for alias in child.names:
                    full = f"{base}.{alias.name}" if base.startswith("ntkpipe") else base
                    found.append(Import(module, _target(full), child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name: str) -> str:
    return _resolve(name) if name.split(".")[0] == "ntkpipe" else name.split(".")[0]


IMPORTS = [imp for module in MODULES for imp in _imports_of(module)]


def _internal(imp: Import) -> bool:
    """An import of an ntkpipe module other than the package root (light: every part may)."""
    return imp.target.startswith("ntkpipe.")


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(predicate) -> list[str]:
    return [str(imp) for imp in IMPORTS if predicate(imp)]


def _assert_none(violations: list[str], rule: str) -> None:
    assert not violations, f"{rule}:\n  " + "\n  ".join(violations)


# ------------------------------------------------------------------------------------ the rules


def test_the_walk_finds_the_package_and_its_imports():
    """The checks below can fail: the walk sees core's imports and resolves the lazy re-exports."""
    assert {"ntkpipe.core.train", "ntkpipe.sweep.runs", "ntkpipe.jobs.run"} <= set(MODULES)
    train_imports = {imp.target for imp in IMPORTS if imp.importer == "ntkpipe.core.train"}
    assert {"ntkpipe.core.models", "jax", "numpy"} <= train_imports
    assert _resolve("ntkpipe.models") == "ntkpipe.core.models"
    assert _resolve("ntkpipe.core.train.train") == "ntkpipe.core.train"
    assert _resolve("ntkpipe.errors.ConfigError") == "ntkpipe.errors"


def test_the_shared_modules_import_nothing_of_ntkpipe():
    _assert_none(
        _violations(lambda imp: imp.importer in SHARED and _internal(imp)),
        "ntkpipe.errors and ntkpipe.conventions import nothing of ntkpipe",
    )


def test_core_imports_only_errors_and_core():
    _assert_none(
        _violations(
            lambda imp: (
                _in(imp.importer, "ntkpipe.core")
                and _internal(imp)
                and imp.target not in SHARED
                and not _in(imp.target, "ntkpipe.core")
            )
        ),
        "ntkpipe.core imports nothing of ntkpipe but errors, conventions and core",
    )


def test_core_has_no_deferred_imports_of_its_own_modules():
    """Deferred (function-level) imports hide cycles such as the old models ↔ convnets one."""
    _assert_none(
        _violations(
            lambda imp: _in(imp.importer, "ntkpipe.core") and _internal(imp) and imp.in_function
        ),
        "ntkpipe.core imports its modules at module level only",
    )


def test_sweep_imports_no_heavy_library_and_only_errors_datasets_sweep():
    # io.atomic (standard library only) writes the config files the rules produce
    allowed = (*SHARED, "ntkpipe.datasets", "ntkpipe.sweep", "ntkpipe.io.atomic")
    _assert_none(
        _violations(
            lambda imp: (
                _in(imp.importer, "ntkpipe.sweep")
                and (
                    imp.target in HEAVY
                    or (_internal(imp) and not any(_in(imp.target, a) for a in allowed))
                )
            )
        ),
        "ntkpipe.sweep imports no JAX/Flax/optax/xarray/zarr/matplotlib/seaborn, and of ntkpipe "
        "only errors, datasets, sweep and io.atomic",
    )


def test_io_imports_only_errors_and_io():
    _assert_none(
        _violations(
            lambda imp: (
                _in(imp.importer, "ntkpipe.io")
                and _internal(imp)
                and imp.target not in SHARED
                and not _in(imp.target, "ntkpipe.io")
            )
        ),
        "ntkpipe.io imports of ntkpipe only errors, conventions and io",
    )


def test_analysis_never_imports_core_or_jobs():
    _assert_none(
        _violations(
            lambda imp: (
                _in(imp.importer, "ntkpipe.analysis")
                and (_in(imp.target, "ntkpipe.core") or _in(imp.target, "ntkpipe.jobs"))
            )
        ),
        "ntkpipe.analysis never imports core or jobs",
    )


def test_only_cli_and_jobs_import_jobs():
    _assert_none(
        _violations(
            lambda imp: (
                _in(imp.target, "ntkpipe.jobs")
                and not _in(imp.importer, "ntkpipe.jobs")
                and imp.importer != "ntkpipe.cli"
            )
        ),
        "nothing imports ntkpipe.jobs but ntkpipe.cli and ntkpipe.jobs",
    )


def _import_graph() -> dict[str, set[str]]:
    """importer → the ntkpipe modules it imports, at module level or inside functions (an
    import deferred into a function still runs, and a cycle through it is still a cycle)."""
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in IMPORTS:
        if _internal(imp) and imp.target != imp.importer:
            graph[imp.importer].add(imp.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_ntkpipe_modules():
    """Counting imports inside functions: a package's __init__ importing its own submodules is
    no cycle unless a submodule imports the package back."""
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles:\n  " + "\n  ".join(map(str, cycles))


def test_the_cycle_check_sees_imports_inside_functions():
    """The old sweep.cost ↔ sweep.cost_settings cycle ran through a function-level import."""
    deferred = [imp for imp in IMPORTS if imp.in_function and _internal(imp)]
    assert deferred, "the walk finds no function-level import: the check below cannot fail"
    some = deferred[0]
    assert some.target in _import_graph()[some.importer]


def _bound_names() -> dict[str, set[str]]:
    """ntkpipe module → the names it is bound to where the package imports it as a module
    (``from ntkpipe.io import stores as storage`` binds ``ntkpipe.io.stores`` to storage)."""
    names: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                base = _absolute(node, package)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in MODULES:
                        names.setdefault(full, set()).add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES and alias.asname:
                        names.setdefault(alias.name, set()).add(alias.asname)
    return names


def test_each_module_goes_by_one_name_where_it_is_imported():
    """``ntkpipe.sweep.runs`` once went by runs, ntk_runs, ntk_config and sweep_runs: a reader
    searching for one name missed the others."""
    names = _bound_names()
    assert names["ntkpipe.sweep.runs"] == {"ntk_runs"}  # the walk sees aliases
    several = {m: sorted(n) for m, n in names.items() if len(n) > 1}
    assert not several, "modules imported under several names:\n  " + "\n  ".join(
        f"{m}: {', '.join(n)}" for m, n in sorted(several.items())
    )


def _long_modules() -> list[str]:
    lengths = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    return [f"{m}: {n} lines" for m, n in sorted(lengths.items()) if n > MAX_LINES]


def test_module_sizes_are_a_warning_list_not_a_cut_line():
    """Modules over MAX_LINES are a signal to read them for a second concept, not a failure:
    cutting a module at a line count splits concepts (the old metrics / summary_rows split).
    The list is shown as a warning."""
    import warnings

    long = _long_modules()
    if long:
        warnings.warn(
            f"modules over {MAX_LINES} lines (one concept each?):\n  " + "\n  ".join(long),
            stacklevel=1,
        )
    assert all(": " in line for line in long)


@pytest.mark.parametrize(
    "module", ["ntkpipe.sweep.runs", "ntkpipe.start", "ntkpipe.rules", "ntkpipe.stage_reruns"]
)
def test_what_the_snakefile_imports_starts_without_jax(module):
    """The Snakefile imports ntkpipe.start (and through it sweep.runs) at every start: neither
    may pull in JAX or xarray."""
    code = (
        f"import sys, {module}\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"
