"""Pure: ``fraiseql_alembic.api`` loads its names on first use (PEP 562), and says the
same thing three ways: ``_EXPORTS`` (what runs), the ``TYPE_CHECKING`` imports (what
type checkers and editors read, and what tests/tooling/test_layers.py checks), and the
names each module really defines."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import fraiseql_alembic.api as api

SOURCE = Path(api.__file__)


def type_checking_imports() -> dict[str, str]:
    """Each name the ``if TYPE_CHECKING:`` block imports, and its module."""
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    found: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.dump(node)
        for alias in node.names:
            assert alias.asname == alias.name, alias.name  # a re-export, as mypy reads it
            found[alias.name] = "." * node.level + (node.module or "")
    return found


def test_the_type_checking_imports_are_the_exports() -> None:
    assert type_checking_imports() == api._EXPORTS  # noqa: SLF001
    assert api.__all__ == sorted(api._EXPORTS)  # noqa: SLF001


@pytest.mark.parametrize("name", sorted(api._EXPORTS))  # noqa: SLF001
def test_each_name_is_its_modules_own(name: str) -> None:
    where = api._EXPORTS[name]  # noqa: SLF001
    assert getattr(api, name) is getattr(importlib.import_module(where, api.__name__), name)
    assert name in dir(api)


def test_no_name_is_also_a_submodule() -> None:
    """Importing ``api.X`` binds the module X on the package: a function of the same
    name (``squash`` in ``api/squash.py``) would then be the module."""
    submodules = {info.name for info in pkgutil.iter_modules([str(SOURCE.parent)])}
    assert not submodules & set(api._EXPORTS), submodules & set(api._EXPORTS)  # noqa: SLF001


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        api.nope  # noqa: B018


def test_a_function_stays_a_function_after_its_module_is_imported_directly() -> None:
    """In a fresh process: the submodule imported by its path first, the API's name after."""
    code = ("import inspect, fraiseql_alembic.api.squashing, fraiseql_alembic.api.migrate;"
            "from fraiseql_alembic import api;"
            "assert inspect.isfunction(api.squash) and inspect.isfunction(api.upgrade)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_importing_the_api_loads_no_verb() -> None:
    code = ("import sys, fraiseql_alembic.api;"
            "print(sorted(m for m in sys.modules if m.startswith('fraiseql_alembic.')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                         capture_output=True, text=True).stdout
    assert "fraiseql_alembic.engine" not in out and "fraiseql_alembic.api.migrate" not in out
