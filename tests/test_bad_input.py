"""Bad input from the command line, the environment, the folder and the database: each is
one line in our words (through the installed `fraiseql` command), never a silent default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg2
from conftest import Project

from fraiseql_alembic.secrets import mask_url, password_of, redact

BIN = Path(sys.executable).parent
UP_DOWN = "-- migrate:up\nCREATE TABLE {t} (id int);\n-- migrate:down\nDROP TABLE {t};\n"


def fraiseql(cwd: Path, *args: str, url: str | None = None,
             prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url or ""}
    return subprocess.run([*prefix, str(BIN / "fraiseql"), "migrate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single `Error: ...` line of a failed run (and nothing else on stderr)."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


# ---------------------------------------------------------------------------
# A password with an unencoded "@"


def test_a_password_with_an_unencoded_at_is_masked_whole() -> None:
    url = "postgresql://app:p@ss@db.example.com:5432/app?sslmode=require"
    assert mask_url(url) == "postgresql://app:***@db.example.com:5432/app?sslmode=require"
    assert password_of(url) == "p@ss"
    assert redact(f"cannot reach {url}") == (
        "cannot reach postgresql://app:***@db.example.com:5432/app?sslmode=require")
    # An "@" after the host (in the query) is not part of the password.
    assert mask_url("postgresql://app:pw@h/db?application_name=a@b") == (
        "postgresql://app:***@h/db?application_name=a@b")
    assert mask_url("postgresql://app:a@b@c@[::1]:5432/db") == "postgresql://app:***@[::1]:5432/db"


def test_a_password_with_an_unencoded_at_is_refused_before_connecting(
    project: Project, database_url: str
) -> None:
    """libpq ends the password at the first "@" and takes the rest as the host name (and
    prints it): the URL is refused in one line that shows none of the password; the
    percent-encoded URL connects."""
    parts = database_url.split("@", 1)
    host_and_db = parts[1]
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    role = f"r_at_{os.getpid()}"
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'se@cret@x'")
        bad = f"postgresql://{role}:se@cret@x@{host_and_db}"
        result = fraiseql(project.root, "status", url=bad)
        line = one_error(result, 1)
        assert line == (
            f"Error: The password in database URL 'postgresql://{role}:***@{host_and_db}' "
            "contains '@', which must be percent-encoded: write %40 for each '@' in it "
            "(app:p%40ss@host)")
        assert "cret" not in result.stdout + result.stderr
        good = fraiseql(project.root, "status", url=f"postgresql://{role}:se%40cret%40x@{host_and_db}")
        assert good.returncode == 0, good.stderr
        assert good.stdout.startswith("Migration Status:")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP ROLE {role}")
        connection.close()
