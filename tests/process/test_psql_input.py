"""Real-world SQL read exactly as ``psql -f`` reads it.

Each differential case applies one file three ways on three empty databases: ``psql -1 -f``
(the reference, the installed program), ``fraiseql migrate up`` (the direct path) and
``alembic upgrade head`` (the Alembic path), both in-process: the file's reading is the
subject. The refusals below run in-process too (``run_process.in_process``: the same
arguments, folder, environment, exit code and output); the installed ``fraiseql`` and
``alembic`` refuse the NUL-byte file, and ``alembic upgrade --sql`` writes the offline
script ``psql`` runs.
The rows that end up in table ``t`` must be the same, or all three must fail with nothing
applied.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.util import CommandError
from conftest import DatabasePool, ProcessRunner, Project, invoke_cli
from scenarios import REPO, alembic_in_process

TABLE = "CREATE TABLE t (n serial PRIMARY KEY, v text);\n"


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    return Project(REPO, url).query(sql)  # only its database is used


def rows_of(url: str) -> list[tuple[Any, ...]] | None:
    """Table t in insertion order, or None when it does not exist (nothing applied)."""
    if not query(url, "SELECT to_regclass('public.t') IS NOT NULL")[0][0]:
        return None
    return query(url, "SELECT n, v FROM t ORDER BY n")


@pytest.fixture
def databases(database_pool: DatabasePool) -> Iterator[Callable[[], str]]:
    """Makes extra empty databases, emptied or dropped at the end (DatabasePool)."""
    made: list[str] = []

    def make() -> str:
        name = f"t_psql_{uuid.uuid4().hex[:10]}"
        made.append(name)
        return database_pool.take(name)

    yield make
    for name in made:
        database_pool.give_back(name)


def three_ways(run_process: ProcessRunner, tmp_path: Path, databases: Callable[[], str], text: str,
               database_setup: str | None = None) -> dict[str, Any]:
    """Apply ``text`` with psql, fraiseql and alembic; what each left in table t."""
    results: dict[str, Any] = {}
    for way in ("psql", "fraiseql", "alembic"):
        url = databases()
        if database_setup:
            dbname = url.rsplit("/", 1)[1]
            query(url, database_setup.format(db=dbname))
        root = tmp_path / way
        (root / "migrations").mkdir(parents=True)
        path = root / "migrations" / "001_case.sql"
        path.write_text(text, encoding="utf-8")
        if way == "psql":
            done = run_process(*["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(path), url], cwd=root, url=url, timeout=300)
            ok, output = done.returncode == 0, done.stdout + done.stderr
        elif way == "fraiseql":
            ran = invoke_cli(root, ["migrate", "up"], env={"DATABASE_URL": url})
            ok, output = ran.exit_code == 0, ran.output
        else:
            try:
                alembic_in_process(root, url, ("upgrade", "head"))
                ok, output = True, ""
            except CommandError as error:  # what `alembic` prints as FAILED: ..., exit 255
                ok, output = False, str(error)
        results[way] = (ok, rows_of(url))
        results[way + "_output"] = output
    return results


def assert_same(results: dict[str, Any]) -> None:
    reference = results["psql"]
    for way in ("fraiseql", "alembic"):
        assert results[way] == reference, (way, results[way], reference, results[way + "_output"])


CASES = {
    # The issue's repro: after SET standard_conforming_strings = off, '\'' is one literal,
    # and the DROP TABLE inside it must never run.
    "standard_conforming_strings_off": TABLE + (
        "SET standard_conforming_strings = off;\n"
        "INSERT INTO t (v) VALUES ('it\\'s; DROP TABLE t; --');\n"
        "INSERT INTO t (v) VALUES ('back\\\\slash; x');\n"
        "SET standard_conforming_strings = on;\n"
        "INSERT INTO t (v) VALUES ('plain \\ again');\n"
    ),
    # psql learns the new value only after the statement ran: the rest of its line is read
    # the old way, so here the second literal is read with backslash escapes off. The
    # server then reads it with them on and fails: psql fails too, nothing is applied.
    "setting_takes_effect_on_the_next_line": TABLE + (
        "SET standard_conforming_strings = off; INSERT INTO t (v) VALUES ('a\\');\n"
        "INSERT INTO t (v) VALUES ('b\\'c');\n"
    ),
    "quoting_zoo": TABLE + (
        "INSERT INTO t (v) VALUES (E'esc\\'aped; E'), (U&'d\\0061t''a;'), ('dou''ble;');\n"
        "INSERT INTO t (v) VALUES ($$dollar; 'x'$$), ($tag$ $$ ; $tag$), (B'0101'::text);\n"
        "INSERT INTO t (v) /* nested /* comment; */ still ; */ VALUES ('continued'\n"
        "   'over; lines');\n"
        "INSERT INTO t (v) VALUES (E'esc'\n'\\\\aped across'), (N'national;'), (X'1f'::text);\n"
        'INSERT INTO t (v) SELECT "semi;colon" FROM (SELECT \'q\' AS "semi;colon") s;\n'
        "INSERT INTO t (v) VALUES ('a[1:2]'), ((ARRAY['x','y','z'])[2:3]::text);\n"
    ),
    "begin_atomic_function": TABLE + (
        "CREATE FUNCTION label(i int) RETURNS text LANGUAGE sql\n"
        "BEGIN ATOMIC\n"
        "  SELECT CASE WHEN i > 1 THEN 'many;' ELSE 'one;' END;\n"
        "END;\n"
        "INSERT INTO t (v) SELECT label(1) UNION ALL SELECT label(2);\n"
    ),
    "copy_from_stdin": TABLE + (
        "COPY t (v) FROM stdin;\n"
        "semi;colon\n"
        "quote's\n"
        "tab\\there\n"
        "\\N\n"
        "DROP TABLE t;\n"
        "\\.\n"
        "INSERT INTO t (v) VALUES ('after copy');\n"
    ),
    # Found by fuzzing. psql lexes a file line by line: a literal continued on the next
    # line is a new literal to psql (the server still joins the parts). The E'' literal
    # below is one literal to both, and the DROP inside it never runs.
    "continued_literal_after_doubled_quote": TABLE + (
        "INSERT INTO t (v) SELECT E'x''\\'; DROP TABLE t; --'\n'z';\n"
        "INSERT INTO t (v) SELECT E'a\\\\'\n'b';\n"
    ),
    # psql ends '\' at its second quote and sends the first line alone (the server finds
    # it unterminated): refused before anything runs, psql fails, nothing is applied.
    "continued_literal_read_differently": TABLE + (
        "INSERT INTO t (v) SELECT E'a'\n'\\' ; INSERT INTO t (v) VALUES ('2'); --' ;\n"
    ),
    # psql's BEGIN ... END count ends the function at `AS end`; the server alone rejects
    # that part. Joined to what follows, it would have read the whole body and succeeded.
    "begin_atomic_with_a_bare_end": TABLE + (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
        "BEGIN ATOMIC SELECT 1 AS end; SELECT 2; END;\n"
        "INSERT INTO t (v) VALUES ('after');\n"
    ),
    "copy_csv": TABLE + (
        "COPY t (n, v) FROM stdin WITH (FORMAT csv);\n"
        '10,"a,b"\n'
        '11,"line ""quoted"""\n'
        "\\.\n"
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_as_psql_reads_it(name: str, tmp_path: Path, databases: Callable[[], str], run_process: ProcessRunner) -> None:
    results = three_ways(run_process, tmp_path, databases, CASES[name])
    assert_same(results)
    if name == "standard_conforming_strings_off":
        assert results["psql"][1] == [(1, "it's; DROP TABLE t; --"), (2, "back\\slash; x"),
                                      (3, "plain \\ again")]
    if name in ("setting_takes_effect_on_the_next_line", "continued_literal_read_differently",
                "begin_atomic_with_a_bare_end"):
        assert results["psql"] == (False, None)
    if name == "continued_literal_after_doubled_quote":
        assert results["psql"][1] == [(1, "x''; DROP TABLE t; --z"), (2, "a\\b")]


def test_database_default_standard_conforming_strings_off(
    tmp_path: Path, databases: Callable[[], str], run_process: ProcessRunner
) -> None:
    """The session's own setting (ALTER DATABASE ... SET) decides how the file is read."""
    text = TABLE + "INSERT INTO t (v) VALUES ('it\\'s; DROP TABLE t; --');\n"
    results = three_ways(run_process, tmp_path, databases, text,
                         "ALTER DATABASE {db} SET standard_conforming_strings = off")
    assert_same(results)
    assert results["psql"][1] == [(1, "it's; DROP TABLE t; --")]


def test_pg_dump_file_applies_like_psql(tmp_path: Path, databases: Callable[[], str], run_process: ProcessRunner) -> None:
    """A plain pg_dump file (SET lines, functions, COPY data, \\restrict in recent dumps)."""
    source = databases()
    query(source, TABLE + (
        "CREATE SCHEMA app;\n"
        "CREATE TABLE app.item (id int PRIMARY KEY, label text, tags text[], meta jsonb);\n"
        "INSERT INTO app.item SELECT i, 'label ' || i || E';\\t''q''\\\\', ARRAY['a;b', 'c'],\n"
        "  jsonb_build_object('i', i) FROM generate_series(1, 500) i;\n"
        "INSERT INTO t (v) VALUES ('from the dump; DROP TABLE t;');\n"
        "CREATE FUNCTION app.total() RETURNS bigint LANGUAGE plpgsql AS $$\n"
        "BEGIN RETURN (SELECT count(*) FROM app.item); END; $$;\n"
        "CREATE VIEW app.v AS SELECT id, label FROM app.item WHERE id % 2 = 0;\n"
    ))
    dump = run_process("pg_dump", "--no-owner", "--no-privileges", source, check=True).stdout
    assert "COPY app.item" in dump
    results = three_ways(run_process, tmp_path, databases, dump)
    assert_same(results)
    assert results["psql"][0]


def alembic(run_process: ProcessRunner, project: Project, *argv: str,
            installed: bool = False) -> subprocess.CompletedProcess[str]:
    """Plain `alembic ARGV` in the project, with the example alembic.ini put there first:
    in-process, or the installed command (``installed``)."""
    if not (project.root / "alembic.ini").exists():
        shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    if installed:
        return run_process("alembic", *argv, timeout=300)
    return run_process.in_process("alembic", *argv)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return lines[-1]


def nothing_applied(project: Project) -> bool:
    return project.version() == [] and project.tables() <= {"fraiseql_migrations", "alembic_version"}


def test_nul_byte_is_refused_everywhere(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_ok.sql", "CREATE TABLE a (id int);\n")
    path = project.migrations / "002_nul.sql"
    path.write_bytes(b"CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\x00\nDROP TABLE a;\n")
    expected = "002_nul.sql:2: contains a NUL byte"
    for result in (run_process("fraiseql", "migrate", "up", timeout=300),
                   run_process.in_process("fraiseql", "migrate", "status"),
                   run_process.in_process("fraiseql", "migrate", "lint"),
                   alembic(run_process, project, "upgrade", "head", installed=True),
                   run_process.in_process("alembic", "history")):
        assert expected in one_line_error(result)
    checked = run_process.in_process("fraiseql", "migrate", "check")  # a report of problems, on stdout
    assert checked.returncode == 1 and f"migrations/{expected}" in checked.stdout
    assert nothing_applied(project)  # not even 001


@pytest.mark.parametrize(("text", "expected"), [
    ("\\connect other\nCREATE TABLE b (id int);\n", "002_psql.sql:2: `\\connect` is a psql meta-command"),
    ("\\set n 5\nCREATE TABLE b (id int);\n", "002_psql.sql:2: `\\set` is a psql meta-command"),
    ("\\ir more.sql\n", "002_psql.sql:2: `\\ir` is a psql meta-command"),
    ("CREATE TABLE b (id int DEFAULT :n);\n", "002_psql.sql:2: `:n` is a psql variable"),
    ("SELECT :'name';\n", "002_psql.sql:2: `:'name'` is a psql variable"),
])
def test_psql_only_features_are_refused_with_nothing_applied(
    project: Project, text: str, expected: str, run_process: ProcessRunner
) -> None:
    project.write("001_ok.sql", "CREATE TABLE a (id int);\n")
    project.write("002_psql.sql", "-- migrate:up\n" + text)
    assert expected in one_line_error(run_process.in_process("fraiseql", "migrate", "up"))
    assert expected in one_line_error(alembic(run_process, project, "upgrade", "head"))
    assert nothing_applied(project)


def test_commit_in_a_later_file_stops_before_the_first_runs(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_ok.sql", "CREATE TABLE a (id int);\n")
    project.write("002_ok.sql", "CREATE TABLE b (id int);\n")
    project.write("003_commit.sql", "CREATE TABLE c (id int);\nCOMMIT;\nCREATE TABLE d (id int);\n")
    for result in (run_process.in_process("fraiseql", "migrate", "up"), alembic(run_process, project, "upgrade", "head")):
        error = one_line_error(result)
        assert "003_commit.sql:2: transaction control `COMMIT` inside a migration" in error
        assert "Nothing was applied" in error
    assert nothing_applied(project)


def test_statements_refused_in_a_transaction_run_outside_one(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_parts.sql", (
        "CREATE TABLE p (id int, at date) PARTITION BY RANGE (at);\n"
        "CREATE TABLE p2026 PARTITION OF p FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\n"
    ))
    project.write("002_detach.sql", "ALTER TABLE p DETACH PARTITION p2026 CONCURRENTLY;\n")
    project.write("003_reindex.sql", "REINDEX SCHEMA public;\n")
    project.write("004_discard.sql", "DISCARD ALL;\nCREATE TABLE after_discard (id int);\n")
    result = run_process.in_process("fraiseql", "migrate", "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.query("SELECT count(*) FROM pg_inherits")[0][0] == 0
    assert "after_discard" in project.tables()
    assert project.version() == ["004"]


def test_copy_data_error_names_the_file_line(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_copy.sql", (
        "CREATE TABLE n (v int);\n"
        "COPY n (v) FROM stdin;\n"
        "1\n"
        "2\n"
        "three\n"
        "\\.\n"
    ))
    error = one_line_error(run_process.in_process("fraiseql", "migrate", "up"))
    assert "001_copy.sql failed at line 5, column 1" in error, error
    assert "(line 3 of the COPY data)" in error
    assert nothing_applied(project)


def test_copy_data_without_its_end_is_refused(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_copy.sql", "CREATE TABLE n (v int);\nCOPY n (v) FROM stdin;\n1\n2\n")
    error = one_line_error(run_process.in_process("fraiseql", "migrate", "up"))
    assert "001_copy.sql:2: the data of this `COPY ... FROM stdin` never ends" in error


def test_offline_sql_carries_copy_data_for_psql(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_copy.sql", TABLE + "COPY t (v) FROM stdin;\nx;y\n\\.\n")
    script = alembic(run_process, project, "upgrade", "head", "--sql", installed=True)
    assert script.returncode == 0, script.stderr
    applied = run_process("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", project.database_url,
                          input=script.stdout)
    assert applied.returncode == 0, applied.stderr
    assert project.query("SELECT v FROM t") == [("x;y",)]


def test_down_reads_every_section_it_will_run_before_the_first(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\n"
                               "-- migrate:down\n\\connect elsewhere\nDROP TABLE a;\n")
    project.write("002_b.sql", "-- migrate:up\nCREATE TABLE b (id int);\n"
                               "-- migrate:down\nDROP TABLE b;\n")
    assert run_process.in_process("fraiseql", "migrate", "up").returncode == 0
    error = one_line_error(run_process.in_process("fraiseql", "migrate", "down", "--steps", "2", "--force"))
    assert "001_a.sql:4: `\\connect` is a psql meta-command" in error
    assert error.endswith("Nothing was rolled back")
    assert project.version() == ["002"] and {"a", "b"} <= project.tables()
