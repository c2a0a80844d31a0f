"""The schema snapshot's pure parts: pg_dump's text normalised, the first differing line,
and where the file is (``dump_schema`` in pyproject.toml or alembic.ini)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraiseql_alembic.engine.backup import BackupError, Connection, PgDumpUse, private_service
from fraiseql_alembic.engine.snapshot import SnapshotError
from fraiseql_alembic.errors import ConfigError
from fraiseql_alembic.project.snapshot import HEADER, first_difference, normalise
from fraiseql_alembic.settings import schema_file

# pg_dump 15.18's shape, with a function body that holds a line like a SET line
DUMP = """--
-- PostgreSQL database dump
--

\\restrict AbC123

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.f() RETURNS void
    LANGUAGE sql
    AS $$UPDATE public.t
SET a = 1;
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: t; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.t (
    a integer
);


--
-- PostgreSQL database dump complete
--

\\unrestrict AbC123

"""


def test_normalise_keeps_objects_and_drops_what_changes() -> None:
    text = normalise(DUMP, ["001_a.sql", "002_b.sql"])

    assert text == HEADER + """
--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.f() RETURNS void
    LANGUAGE sql
    AS $$UPDATE public.t
SET a = 1;
$$;

--
-- Name: t; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.t (
    a integer
);

--
-- Applied migrations
--

-- 001_a.sql
-- 002_b.sql
"""
    # another key, another pg_dump version, CRLF: the same snapshot
    other = (DUMP.replace("AbC123", "zZ9").replace("15.18", "16.4")
             .replace("SET statement_timeout = 0;\n",
                      "SET statement_timeout = 0;\nSET transaction_timeout = 0;\n"))
    assert normalise(other.replace("\n", "\r\n"), ["001_a.sql", "002_b.sql"]) == text


def test_an_empty_schema() -> None:
    text = normalise(DUMP.split("--\n-- Name: f()")[0] + "--\n-- PostgreSQL database dump "
                     "complete\n--\n", [])
    assert text == HEADER + "\n--\n-- Applied migrations\n--\n\n-- (none)\n"


def test_first_difference() -> None:
    assert first_difference("a\nb\n", "a\nb\n") is None
    changed = first_difference("a\nb\nc\n", "a\nB\nc\n")
    assert changed is not None and changed.line == 2
    assert changed.describe() == "line 2 is `b` where the migrations build `B`"
    shorter = first_difference("a\n", "a\nb\n")
    assert shorter is not None
    assert shorter.describe() == "line 2 is `` where the migrations build `b`"
    longer = first_difference("a", "")
    assert longer is not None and longer.line == 1
    ends = first_difference("a", "a\nb")
    assert ends is not None
    assert ends.describe() == "it ends at line 1 where the migrations build more: `b`"
    more = first_difference("a\nb", "a")
    assert more is not None
    assert more.describe() == ("line 2 is `b`, which the migrations do not build (they end "
                               "before it)")
    long = first_difference("x" * 100, "y")
    assert long is not None and "`" + "x" * 69 + "...`" in long.describe()


@pytest.mark.parametrize(("pyproject", "given", "off", "expected"), [
    (None, None, False, None),
    (None, "", False, "db/schema.sql"),
    (None, "other.sql", False, "other.sql"),
    ("dump_schema = true", None, False, "db/schema.sql"),
    ("dump_schema = true", None, True, None),
    ("dump_schema = false", None, False, None),
    ("dump_schema = false", "", False, "db/schema.sql"),
    ('dump_schema = "snap/s.sql"', None, False, "snap/s.sql"),
    ('dump_schema = "snap/s.sql"', "", False, "snap/s.sql"),
    ('dump_schema = "snap/s.sql"', "x.sql", False, "x.sql"),
])
def test_where_the_snapshot_is(tmp_path: Path, pyproject: str | None, given: str | None,
                               off: bool, expected: str | None) -> None:
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(f"[tool.fraiseql]\n{pyproject}\n",
                                                 encoding="utf-8")
    found = schema_file(tmp_path / "db" / "migrations", given, off=off, cwd=tmp_path)
    assert found == (None if expected is None else tmp_path / expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("true", "db/schema.sql"), ("yes", "db/schema.sql"), ("false", None), ("", None),
    ("db/s.sql", "db/s.sql"),
])
def test_alembic_ini_setting(tmp_path: Path, value: str, expected: str | None) -> None:
    (tmp_path / "alembic.ini").write_text(f"[alembic]\nfraiseql.dump_schema = {value}\n",
                                          encoding="utf-8")
    found = schema_file(tmp_path / "db" / "migrations", cwd=tmp_path)
    assert found == (None if expected is None else tmp_path / expected)


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.fraiseql]\ndump_schema = 3\n",
                                             encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^dump_schema under \[tool.fraiseql\] in "
                       r"pyproject.toml must be true, false or a path"):
        schema_file(tmp_path / "migrations", cwd=tmp_path)


def test_a_secret_pg_dump_cannot_take_privately_is_named_for_the_snapshot() -> None:
    connection = Connection("postgresql://app@db/app?service=prod", None, "app",
                            (("sslpassword", "key pass"),))
    use = PgDumpUse(SnapshotError, "Cannot dump the schema", "or run without --dump-schema")
    with pytest.raises(SnapshotError, match=r"^Cannot dump the schema: the database URL \(or "
                       r"PGSERVICE\) names a service and the URL holds an sslpassword; .* "
                       r"pg_service\.conf\.$"), private_service(connection, use):
        pass
    with pytest.raises(BackupError, match=r"^Cannot back up: .* Nothing was applied$"), \
            private_service(connection):
        pass
