"""Foreign errors become ours in one place (``fraiseql_alembic.engine.translate``), with the
SQLSTATEs named once (``fraiseql_alembic.sqlstate``)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from conftest import Project

from fraiseql_alembic.devdb import DevCluster
from fraiseql_alembic.engine import history
from fraiseql_alembic.engine.translate import database_error, permission_denied
from fraiseql_alembic.errors import DatabaseError

PACKAGE = Path(__file__).resolve().parent.parent / "fraiseql_alembic"
BIN = Path(sys.executable).parent
#: A SQLSTATE as a whole string (five of 0-9A-Z with a digit: not "BEGIN") or named
#: in a message ("SQLSTATE 42501").
CODE_RE = re.compile(r"^(?=.*[0-9])[0-9A-Z]{5}$")
IN_TEXT_RE = re.compile(r"SQLSTATE\s+[0-9A-Z]{5}\b")
#: PostgreSQL's words for a role without CREATE on the schema, as the unified line shows.
PERMISSION_RE = re.compile(
    r"^Error: Permission denied: permission denied for schema (\w+) \[SQLSTATE 42501\]\. "
    r"The migrating role needs CREATE and USAGE on .+ \(e\.g\. GRANT CREATE, USAGE ON SCHEMA "
    r"\1 TO <role>\), or set history_schema to a schema it may write\. Nothing was applied$"
)


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


def _insufficient_privilege(text: str) -> psycopg2.Error:
    err = psycopg2.errors.InsufficientPrivilege(text)
    err.__setstate__({"pgerror": text, "pgcode": "42501"})  # as the server would set them
    return err


def test_42501_has_one_message_wherever_it_is_met() -> None:
    err = _insufficient_privilege("permission denied for schema public")
    generic = database_error(err)
    assert isinstance(generic, DatabaseError)
    assert str(generic) == str(permission_denied("permission denied for schema public"))

    class _Connection:
        def cursor(self) -> object:
            return self

        def close(self) -> None:
            pass

    with pytest.raises(DatabaseError) as raised, history.writing(_Connection(), "audit"):
        raise _insufficient_privilege("permission denied for schema audit")
    assert str(raised.value) == str(permission_denied("permission denied for schema audit",
                                                      "audit"))
    for message in (str(generic), str(raised.value)):
        assert PERMISSION_RE.match(f"Error: {message}"), message


def _fraiseql(project: Project, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "fraiseql"), "migrate", "up"], cwd=project.root,
                          env={**os.environ, "DATABASE_URL": url}, capture_output=True,
                          text=True, timeout=120)


def test_a_role_without_create_rights_gets_one_message(
    project: Project, pg_cluster: DevCluster
) -> None:
    """Without CREATE on public (alembic_version) and without CREATE on the history
    schema (fraiseql_migrations): the same sentence, naming the schema when it is known."""
    dbname = project.database_url.rsplit("/", 1)[1]
    admin = psycopg2.connect(project.database_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("DROP ROLE IF EXISTS create_less")
        cursor.execute("CREATE ROLE create_less LOGIN PASSWORD 'create-less-pw-9'")
        cursor.execute(f'GRANT CONNECT ON DATABASE "{dbname}" TO create_less')
        cursor.execute("CREATE SCHEMA audit")
        cursor.execute("GRANT USAGE ON SCHEMA audit TO create_less")
    try:
        project.write("001_a.sql", "SELECT 1;\n")
        url = re.sub(r"://[^@]+@", "://create_less:create-less-pw-9@", project.database_url)
        seen = []
        for schema in ("public", "audit"):
            if schema == "audit":
                with admin.cursor() as cursor:
                    cursor.execute("GRANT CREATE, USAGE ON SCHEMA public TO create_less")
                (project.root / "pyproject.toml").write_text(
                    '[tool.fraiseql.migrations]\nhistory_schema = "audit"\n', encoding="utf-8")
            result = _fraiseql(project, url)
            assert result.returncode == 1, result.stdout + result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            match = PERMISSION_RE.match(lines[0])
            assert match, lines[0]
            assert match.group(1) == schema
            assert "create-less-pw-9" not in result.stdout + result.stderr
            seen.append(lines[0])
        assert "on schema audit (e.g." in seen[1]
        assert project.query("SELECT to_regclass('audit.fraiseql_migrations')") == [(None,)]
    finally:
        with admin.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS audit CASCADE")
            cursor.execute(f'REVOKE ALL ON DATABASE "{dbname}" FROM create_less')
            cursor.execute("DROP OWNED BY create_less")
            cursor.execute("DROP ROLE create_less")
        admin.close()
