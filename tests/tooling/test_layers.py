"""Pure: the package's layers are folders, and calls go down only (docs/architecture.md).

Every import is read from the source (top-level, inside functions and under
TYPE_CHECKING alike), so a lazy import cannot hide an upward call or a cycle.
"""

from __future__ import annotations

import ast
import functools
import graphlib
from collections.abc import Iterator
from pathlib import Path

import fraiseql_alembic

PACKAGE = Path(fraiseql_alembic.__file__).parent

#: Rank of each layer: a module may import its own layer and the layers below it.
LAYERS = {
    "foundation": 0,  # errors, settings, secrets, sqlstate: used by every layer
    "sql": 1,
    "project": 2,
    "engine": 3,
    "alembic_bridge": 4,
    "api": 5,
    "cli": 6,
    "testing": 6,  # what a project's own tests use (template databases), beside the CLI
    "entry": 7,  # console (the installed command), alembic_env (Alembic's script_location),
    # the package's __init__ (Alembic imports it to find alembic_env; before 1.18 it
    # installs the plugin from there), pytest_plugin (the pytest11 entry point)
}
FOUNDATION = {"errors", "settings", "secrets", "sqlstate", "config"}
STANDALONE = {"devdb"}  # a tool of its own: imports nothing of ours
#: Who may use a standalone tool: the shadow database of autogenerate starts a devdb cluster.
STANDALONE_USERS = {"engine.shadow", "testing.databases"}

#: Third-party packages each layer may import (anything else of the stdlib is free).
HEAVY = {"alembic", "sqlalchemy", "psycopg2", "click"}  # pglast: pure, any layer may parse
ALLOWED_HEAVY = {
    "foundation": set(),
    "sql": set(),
    "project": set(),
    "engine": {"psycopg2", "sqlalchemy"},
    "alembic_bridge": {"alembic", "sqlalchemy", "psycopg2"},
    "api": {"psycopg2"},
    "cli": {"click"},
    "testing": {"psycopg2", "sqlalchemy"},
    "entry": {"alembic"},
}

#: Upward imports or cycles not yet removed; must end empty.
KNOWN: set[tuple[str, str]] = set()


@functools.cache
def parsed(source: str) -> ast.Module:
    """The tree of a module's source, parsed once for all the tests of this file."""
    return ast.parse(source)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    top = module.split(".")[0]
    if top in FOUNDATION:
        return "foundation"
    if top in ("console", "alembic_env", "__init__", "pytest_plugin"):
        return "entry"
    if top in ("api", "lintapi", "fleetapi"):  # apart from api.py, re-exported by it
        return "api"
    if top in LAYERS:
        return top
    raise AssertionError(f"{module} is in no layer: add it to a layer folder")


def imports_of(path: Path) -> Iterator[str]:
    """Every module of ours (dotted, package-relative) or third-party top name imported."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(parsed(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fraiseql_alembic."):
                    yield alias.name.removeprefix("fraiseql_alembic.")
                else:
                    yield "!" + alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                module = node.module or ""
                if module == "fraiseql_alembic" or module.startswith("fraiseql_alembic."):
                    base = module.removeprefix("fraiseql_alembic").lstrip(".").split(".")
                else:
                    yield "!" + module.split(".")[0]
                    continue
            else:
                base = package[: len(package) - (node.level - 1)] + (
                    node.module.split(".") if node.module else []
                )
            base = [part for part in base if part]
            for alias in node.names:
                candidate = [*base, alias.name]
                if (PACKAGE.joinpath(*candidate).with_suffix(".py").exists()
                        or PACKAGE.joinpath(*candidate, "__init__.py").exists()):
                    yield ".".join(candidate)
                elif base:
                    yield ".".join(base)


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "templates" not in p.parts)


def test_every_module_is_in_a_layer_and_calls_go_down() -> None:
    wrong = []
    for path in sources():
        name = module_name(path)
        if name in STANDALONE:
            assert not [m for m in imports_of(path) if not m.startswith("!")], name
            continue
        mine = layer_of(name)
        for target in imports_of(path):
            if target.startswith("!"):
                top = target[1:]
                if top in HEAVY and top not in ALLOWED_HEAVY[mine]:
                    wrong.append((name, top))
                continue
            if target in STANDALONE and name in STANDALONE_USERS:
                continue
            if target in STANDALONE or target == "":
                wrong.append((name, target or "fraiseql_alembic"))
                continue
            if LAYERS[layer_of(target)] > LAYERS[mine]:
                wrong.append((name, target))
    assert set(wrong) <= KNOWN, sorted(set(wrong) - KNOWN)


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (``[a, b, ..., a]``), or None: the standard library's
    topological sort finds one, whatever its length, in time linear in the graph."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def test_no_import_cycles() -> None:
    """A package's ``__init__`` re-exports its modules, which import their siblings
    through it: the packages themselves are left out; any other cycle fails."""
    graph: dict[str, set[str]] = {}
    for path in sources():
        name = module_name(path)
        graph[name] = {t for t in imports_of(path) if not t.startswith("!") and t != name}
    packages = {name for name in graph if (PACKAGE / name.replace(".", "/")).is_dir()}
    modules = {
        name: {t for t in targets - packages if (name, t) not in KNOWN}
        for name, targets in graph.items() if name not in packages
    }
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None  # the check works
    cycle = import_cycle(modules)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_scan_sees_lazy_and_relative_imports() -> None:
    """The rules above are only as good as the scan: it must see what a function imports
    relatively (the plugin loads the engine and alembic only when a SQL revision runs)."""
    plugin = PACKAGE / "alembic_bridge" / "plugin.py"
    tree = ast.parse(plugin.read_text(encoding="utf-8"))
    inside = {
        node.module for function in ast.walk(tree) if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function) if isinstance(node, ast.ImportFrom) and node.level
    }
    assert "engine.run" in inside  # so the scan below must look inside functions
    found = set(imports_of(plugin))
    assert "engine.run" in found and "!alembic" in found
    assert layer_of("engine.run") == "engine" and layer_of("api") == "api"


def unexplained_lazy_imports(source: str) -> list[int]:
    """Lines of the imports inside functions that give no ``# lazy: <reason>``: on the
    import's own lines, or in a comment just above it or above the block of imports it
    ends (blank lines apart), so one reason covers the imports under it."""
    lines = source.splitlines()
    nested = sorted(
        {(node.lineno, node.end_lineno or node.lineno)
         for function in ast.walk(parsed(source))
         if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
         for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))}
    )
    ends = {end: start for start, end in nested}
    bare = []
    for start, end in nested:
        explained = any("# lazy:" in line for line in lines[start - 1:end])
        above = start - 1
        while not explained and above >= 1:
            text = lines[above - 1].strip()
            if text.startswith("# lazy:") or (above in ends and "# lazy:" in lines[above - 1]):
                explained = True
            elif text == "" or text.startswith("#"):
                above -= 1
            elif above in ends:
                above = ends[above] - 1
            else:
                break
        if not explained:
            bare.append(start)
    return bare


def test_every_import_inside_a_function_says_why() -> None:
    """Imports go at the top of a module; one inside a function is deliberate lazy loading
    (alembic, SQLAlchemy, psycopg2, pglast, or our engine under Alembic's plugin) and says
    why with a ``# lazy: <reason>`` comment."""
    sample = (
        "import os\n\ndef f():\n    # lazy: heavy\n    import a\n    import b\n\n"
        "    import c  # lazy: heavy\n\ndef g():\n    x = 1\n    import d\n"
    )
    assert unexplained_lazy_imports(sample) == [12]
    bare = [f"{path.relative_to(PACKAGE)}:{line}" for path in sources()
            for line in unexplained_lazy_imports(path.read_text(encoding="utf-8"))]
    assert not bare, bare
