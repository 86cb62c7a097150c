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


def _private(name: str) -> bool:
    """A private name: one leading underscore (``_digest``), not a dunder (``__version__``)."""
    return name.startswith("_") and not name.startswith("__")


def _private_package(module: str) -> str | None:
    """The package a private module (``ntkpipe.core._layers``: a ``_`` file) belongs to, else
    None."""
    head, _, last = module.rpartition(".")
    return head if _private(last) else None


def private_uses(module: str, source: str) -> list[str]:
    """Where `module` (its source text) uses what another module keeps to itself: a ``_`` name
    of another module (``from m import _x``, ``m._x``), or a private module of another package
    (``ntkpipe.jobs._job`` outside ``ntkpipe.jobs``)."""
    path = MODULES.get(module)
    package = (
        module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]
    )
    found, aliases = [], {}

    def check_module(target: str, line: int) -> None:
        owner = _private_package(target)
        if owner is not None and not _in(module, owner):
            found.append(f"{module}:{line} imports {target}, private to {owner}")

    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if not base.startswith("ntkpipe"):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:
                    aliases[alias.asname or alias.name] = full
                    check_module(full, node.lineno)
                    continue
                check_module(_resolve(base), node.lineno)
                if _private(alias.name) and _resolve(base) != module:
                    found.append(f"{module}:{node.lineno} imports {base}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    check_module(alias.name, node.lineno)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _private(node.attr)
            and aliases[node.value.id] != module
        ):
            found.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_the_private_check_finds_private_names_and_modules_used_from_outside():
    source = (
        "from ntkpipe.io import stores as storage\n"
        "from ntkpipe.io.stores import _digest, write_store\n"
        "from ntkpipe.jobs import _job\n"
        "from ntkpipe.core._layers import dense\n"
        "from ntkpipe import __version__\n"
        "x = storage._digest(1) + storage.write_store\n"
    )
    found = private_uses("ntkpipe.analysis.status", source)
    assert len(found) == 4, found
    assert private_uses("ntkpipe.core.models", "from ntkpipe.core._layers import dense\n") == []
    assert private_uses("ntkpipe.jobs.init", "from ntkpipe.jobs import _job\nx = _job.log\n") == []


def test_no_module_uses_another_modules_private_names():
    """A ``_`` name is private to its module: a name other modules use is public there (or moved
    to where it belongs). A ``_`` module (core/_layers.py, jobs/_job.py) is private to its
    package: only the package's own modules import it (its public names are theirs to use)."""
    found = [v for m, p in MODULES.items() for v in private_uses(m, p.read_text())]
    _assert_none(found, "private names or modules used from outside")


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
    "module",
    [
        "ntkpipe.sweep.runs",
        "ntkpipe.start",
        "ntkpipe.workflow_start",
        "ntkpipe.rules",
        "ntkpipe.stage_reruns",
    ],
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


# ---------------------------------------------------------------- Python in the workflow files

WORKFLOW_RULES = PACKAGE.parent / "workflow" / "rules"
MAX_SMK_PYTHON = 60
"""Lines of Python the ``.smk`` files may hold together: rules and calls of ntkpipe.workflow_start
and ntkpipe.rules; policy lives in the package, where unit tests reach it."""
_SMK_BLOCK = (
    "rule ", "checkpoint ", "module ", "use rule ", "include:", "localrules:", "configfile:",
    "resource_scopes:", "wildcard_constraints:", "ruleorder:", "envvars:", "container:",
)  # fmt: skip
_SMK_PYTHON_BLOCK = ("onstart:", "onsuccess:", "onerror:")


def smk_python_lines(text: str) -> int:
    """Lines of Python in a ``.smk`` file: every line outside Snakemake's own blocks (rule,
    include, wildcard_constraints, …; a rule defined in a loop too) and every line of a rule's
    ``run:`` and of ``onstart:`` / ``onsuccess:`` / ``onerror:``; blank lines and comments not
    counted."""
    count, in_block, run_indent, nested = 0, False, None, None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if nested is not None and indent > nested:
            continue  # the body of a rule defined in a loop (``rule:`` with ``name:``)
        nested = None
        if indent > 0 and not in_block and stripped.startswith(("rule:", "rule ")):
            nested = indent
            continue
        if indent == 0:
            in_block, run_indent = stripped.startswith(_SMK_BLOCK), None
            if in_block or stripped.startswith(_SMK_PYTHON_BLOCK):
                continue
        if not in_block:
            count += 1
        elif run_indent is not None and indent > run_indent:
            count += 1
        elif stripped.startswith("run:"):
            run_indent = indent
        elif run_indent is not None:
            run_indent = None
    return count


def test_the_python_counter_counts_python_and_not_rules():
    text = (
        "import os\n\n# a comment\nX = 1\nif X:\n    Y = 2\ninclude: 'a.smk'\n"
        "rule a:\n    output:\n        'x',\n    run:\n        f(x)\n        g(x)\n"
        "    log:\n        'l'\nonstart:\n    h()\nwildcard_constraints:\n    run='.+',\n"
    )
    assert smk_python_lines(text) == 4 + 2 + 1
    in_a_loop = (
        "for n in N:\n\n    rule:\n        name:\n            n\n"
        "        shell:\n            'x'\nZ = 1\n"
    )
    assert smk_python_lines(in_a_loop) == 1 + 1


def test_the_workflow_files_hold_little_python():
    """Issue 19: parse-time policy in .smk files is out of reach of unit tests (86 lines once)."""
    counts = {p.name: smk_python_lines(p.read_text()) for p in sorted(WORKFLOW_RULES.glob("*.smk"))}
    assert counts["config.smk"] > 0  # the counter sees the calls
    assert sum(counts.values()) < MAX_SMK_PYTHON, counts
