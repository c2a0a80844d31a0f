"""Every SQLSTATE literal lives in fraiseql_alembic/sqlstate.py (a scan of the sources)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fraiseql_alembic"


#: A SQLSTATE as a whole string (five of 0-9A-Z with a digit: not "BEGIN") or named
#: in a message ("SQLSTATE 42501").
CODE_RE = re.compile(r"^(?=.*[0-9])[0-9A-Z]{5}$")


IN_TEXT_RE = re.compile(r"SQLSTATE\s+[0-9A-Z]{5}\b")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_every_sqlstate_literal_lives_in_the_constants_module() -> None:
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "sqlstate.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and (CODE_RE.match(node.value) or IN_TEXT_RE.search(node.value))):
                stray.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert stray == []


def test_the_scan_finds_a_literal(tmp_path: Path) -> None:
    tree = ast.parse('x = err.pgcode == "55P03"\ny = f"(SQLSTATE 42501) {x}"\nz = "BEGIN"\n')
    hits = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (CODE_RE.match(node.value) or IN_TEXT_RE.search(node.value))]
    assert hits == ["55P03", "(SQLSTATE 42501) "]
