"""Pure tests of the file format: names, sections, options, statements, checksums."""

from __future__ import annotations

import pytest

from fraiseql_alembic.errors import MigrationFileError
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import ParsedMigration, checksum_of, normalize_text, parse_migration
from fraiseql_alembic.sql.statements import split_statements


def parse(text: str, filename: str = "002_add_comments_table.sql") -> ParsedMigration:
    name = parse_filename(filename)
    assert name is not None
    return parse_migration(name, text)


def sqls(migration: ParsedMigration, section: str = "up") -> list[str]:
    chosen = migration.up if section == "up" else migration.down
    assert chosen is not None
    return [statement.sql for statement in split_statements(migration, chosen).statements]


@pytest.mark.parametrize(
    ("filename", "version", "number", "slug"),
    [
        ("001_initial_schema.sql", "001", 1, "initial_schema"),
        ("1000_big.sql", "1000", 1000, "big"),
        ("42_x1.sql", "42", 42, "x1"),
    ],
)
def test_migration_file_names(filename: str, version: str, number: int, slug: str) -> None:
    name = parse_filename(filename)
    assert name is not None
    assert (name.version, name.number, name.slug, name.stem) == (
        version, number, slug, f"{version}_{slug}"
    )


@pytest.mark.parametrize(
    "filename",
    ["003_x.sq", "003_x.SQL", "3-x.sql", "abc_x.sql", "003_X.sql", "003_.sql", "003_1x.sql",
     "README.md", "003_x.sql.bak"],
)
def test_not_migration_file_names(filename: str) -> None:
    assert parse_filename(filename) is None


def test_no_markers_whole_file_is_up_and_irreversible() -> None:
    migration = parse("-- Migration 002: Add comments\nCREATE TABLE a (id int);\n")
    assert migration.title == "Add comments"
    assert migration.down is None
    assert not migration.reversible
    assert sqls(migration) == ["CREATE TABLE a (id int)"]


def test_markers_split_up_and_down_with_lines() -> None:
    text = (
        "-- Migration 002: Add comments table\n"
        "-- migrate:up\n"
        "CREATE TABLE tb_comment (id int);\n"
        "CREATE INDEX idx ON tb_comment (id);\n"
        "-- migrate:down\n"
        "DROP TABLE tb_comment;\n"
    )
    migration = parse(text)
    assert migration.reversible
    statements = split_statements(migration, migration.up).statements
    assert [(s.line, s.column) for s in statements] == [(3, 1), (4, 1)]
    assert sqls(migration, "down") == ["DROP TABLE tb_comment"]
    assert migration.down is not None and migration.down.line == 6


def test_rollback_comment_block_is_the_down_section() -> None:
    text = (
        "-- Migration 010: Add post categories\n\n"
        "CREATE TABLE tb_category (\n    id UUID PRIMARY KEY,\n    name TEXT NOT NULL UNIQUE\n);\n\n"
        "-- Rollback:\n"
        "-- DROP TABLE tb_category;\n"
    )
    migration = parse(text, "010_add_post_categories.sql")
    assert migration.reversible
    assert sqls(migration, "down") == ["DROP TABLE tb_category"]
    assert len(sqls(migration)) == 1


def test_rollback_block_followed_by_sql_is_refused_with_line() -> None:
    with pytest.raises(MigrationFileError, match=r":4: SQL on line 4 follows the `-- Rollback:`"):
        parse("CREATE TABLE a (id int);\n-- Rollback:\n-- DROP TABLE a;\nSELECT 1;\n")


def test_empty_down_marker_is_not_reversible() -> None:
    migration = parse("-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\n-- nothing\n")
    assert migration.down is not None
    assert not migration.reversible


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n", r":3: second `-- migrate:up`"),
        ("-- migrate:down\nSELECT 1;\n-- migrate:up\nSELECT 2;\n", r":3: `-- migrate:up` must come"),
        ("SELECT 1;\n-- migrate:up\nSELECT 2;\n", r":2: SQL on line 1 comes before"),
        ("-- migrate:up transaction:maybe\nSELECT 1;\n", r":1: option 'transaction:maybe'"),
        ("-- migrate:up colour:red\nSELECT 1;\n", r":1: unknown marker option 'colour:red'"),
        ("-- migrate:up\nSELECT 1;\n-- migrate:down\n-- migrate:down\n", r":4: second `-- migrate:down`"),
    ],
)
def test_marker_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(MigrationFileError, match=r"^002_add_comments_table\.sql" + message):
        parse(text)


def test_transaction_option() -> None:
    migration = parse("-- migrate:up transaction:false\nVACUUM;\n-- migrate:down transaction:true\n"
                      "SELECT 1;\n")
    assert migration.up.transaction is False
    assert migration.down is not None and migration.down.transaction is True


def test_revises_header() -> None:
    migration = parse("-- Migration 002: x\n-- revises: 1a2b3c4d5e6f\nSELECT 1;\n")
    assert migration.revises == "1a2b3c4d5e6f"


def test_sql_is_kept_verbatim() -> None:
    text = (
        "INSERT INTO t (a) VALUES ('100%'), (':name'), ('{\"a\": 1}'::jsonb::text);\n"
        "DO $$ BEGIN RAISE NOTICE 'Migrated % users; done', 5; END $$;\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
    )
    assert sqls(parse(text)) == [
        "INSERT INTO t (a) VALUES ('100%'), (':name'), ('{\"a\": 1}'::jsonb::text)",
        "DO $$ BEGIN RAISE NOTICE 'Migrated % users; done', 5; END $$",
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
    ]


def test_begin_commit_wrapper_is_dropped() -> None:
    migration = parse(
        "-- Migration 030: Update post status\n\nBEGIN;\n\nALTER TABLE t ADD COLUMN s TEXT;\n"
        "UPDATE t SET s = CASE WHEN p THEN 'published' ELSE 'draft' END;\n\nCOMMIT;\n"
    )
    split = split_statements(migration, migration.up)
    assert split.unwrapped
    assert [s.sql.split()[0] for s in split.statements] == ["ALTER", "UPDATE"]


@pytest.mark.parametrize("statement", ["COMMIT;", "ROLLBACK;", "BEGIN;", "END;"])
def test_other_transaction_control_is_refused_with_line(statement: str) -> None:
    migration = parse(f"CREATE TABLE a (id int);\n{statement}\nCREATE TABLE b (id int);\n")
    with pytest.raises(MigrationFileError, match=r"^002_add_comments_table\.sql:2: transaction"):
        split_statements(migration, migration.up)


def test_savepoints_are_allowed() -> None:
    migration = parse("SAVEPOINT a;\nSELECT 1;\nRELEASE SAVEPOINT a;\n")
    assert len(split_statements(migration, migration.up).statements) == 3


@pytest.mark.parametrize(
    ("statement", "non_transactional"),
    [
        ("CREATE INDEX CONCURRENTLY idx ON t (a)", True),
        ("create unique index concurrently if not exists idx on t (a)", True),
        ("DROP INDEX CONCURRENTLY idx", True),
        ("REINDEX INDEX CONCURRENTLY idx", True),
        ("VACUUM t", True),
        ("CREATE DATABASE x", True),
        ("ALTER SYSTEM SET work_mem = '4MB'", True),
        ("CREATE INDEX idx ON t (a)", False),
        ("SELECT 'concurrently'", False),
        ("COMMENT ON TABLE t IS 'create index concurrently'", False),
        ("SELECT CASE WHEN true THEN 1 END", False),
    ],
)
def test_non_transactional_statements_detected_by_syntax_tree(
    statement: str, non_transactional: bool
) -> None:
    migration = parse(statement + ";\n")
    (parsed,) = split_statements(migration, migration.up).statements
    assert parsed.non_transactional is non_transactional


def test_crlf_and_bom_do_not_change_checksum_or_lines() -> None:
    lf = "-- migrate:up\nCREATE TABLE é (id int);\n-- migrate:down\nDROP TABLE é;\n"
    crlf = "\ufeff" + lf.replace("\n", "\r\n")
    a = normalize_text(lf.encode(), "x.sql")
    b = normalize_text(crlf.encode("utf-8"), "x.sql")
    assert a == b
    assert checksum_of(a) == checksum_of(b)
    assert checksum_of(a) != checksum_of(a + "-- edited\n")


def test_non_utf8_file_is_refused_with_line() -> None:
    with pytest.raises(MigrationFileError, match=r"^x\.sql:2: is not valid UTF-8"):
        normalize_text(b"SELECT 1;\nSELECT '\xe9';\n", "x.sql")


def test_statement_lines_with_non_ascii_and_comments() -> None:
    text = "-- héader ünïcode\n/* block\n comment */\nSELECT 'é';  -- trailing\n\n  SELECT 2;\n"
    migration = parse(text)
    statements = split_statements(migration, migration.up).statements
    assert [(s.line, s.column) for s in statements] == [(4, 1), (6, 3)]


def test_empty_up_section_is_reported_empty() -> None:
    migration = parse("-- Migration 002: nothing yet\n-- migrate:up\n\n-- migrate:down\n")
    assert migration.up.is_empty


def test_text_after_rollback_marker_is_a_remark() -> None:
    migration = parse("CREATE TABLE a (id int);\n-- Rollback: drop it again\n-- DROP TABLE a;\n")
    assert sqls(migration, "down") == ["DROP TABLE a"]


def test_terminated_keeps_the_semicolon_out_of_a_trailing_comment() -> None:
    from fraiseql_alembic.sql.statements import terminated

    assert terminated("SELECT 1") == "SELECT 1;"
    assert terminated("SELECT 1 -- one") == "SELECT 1 -- one\n;"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("SELECT 1;\nDO $$ BEGIN\n  PERFORM 1;\n", 2, "unterminated dollar-quoted string"),
        ("SELECT 1;\nSELECT 'abc;\n", 2, "unterminated quoted string"),
        ("SELECT 1;\n/* never closed\n", 2, "unterminated /* comment"),
    ],
)
def test_unterminated_quotes_are_refused_with_line(text: str, line: int, message: str) -> None:
    migration = parse(text)
    with pytest.raises(MigrationFileError) as caught:
        split_statements(migration, migration.up)
    assert caught.value.line == line
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_unclosed_parenthesis_does_not_drop_the_rest_of_the_file() -> None:
    """The scanner stops at an unclosed parenthesis; the statements after it must not vanish."""
    migration = parse("SELECT 1;\n-- note\nCREATE TABLE t (a int;\nDROP TABLE important;\n")
    with pytest.raises(MigrationFileError) as caught:
        split_statements(migration, migration.up)
    assert caught.value.line == 3
    assert "never ends (an unclosed parenthesis or BEGIN ATOMIC block?)" in caught.value.message


def test_trailing_semicolons_and_comments_are_not_leftovers() -> None:
    assert sqls(parse("SELECT 1; -- done\n /* end */ ;  \n")) == ["SELECT 1"]


@pytest.mark.parametrize(("text", "expected"), [
    ("SELEC 1;\nSELECT 2;\n", ["SELEC 1", "SELECT 2"]),  # a typo is a statement, not noise
    ("foo;bar;", ["foo", "bar"]),
    ("SELECT 1;\nmy_backfill();\n", ["SELECT 1", "my_backfill()"]),
    ("VACCUM t", ["VACCUM t"]),
])
def test_text_without_a_keyword_is_kept_for_the_server_to_reject(
    text: str, expected: list[str],
) -> None:
    assert sqls(parse(text)) == expected


def test_begin_atomic_bodies_keep_their_semicolons() -> None:
    body = ("CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
            "  SELECT CASE WHEN true THEN 1 END;\n  SELECT 2;\nEND")
    assert sqls(parse(body + ";\nSELECT 3;\n")) == [body, "SELECT 3"]
    with pytest.raises(MigrationFileError) as caught:
        sqls(parse("SELECT 1;\n" + body.removesuffix("END") + "\n"))
    assert caught.value.line == 2


# ---------------------------------------------------------------------------
# Read as psql reads it (tests/test_psql_input.py compares with psql itself)


def _split(text: str, *, standard_strings: bool = True) -> list[str]:
    from fraiseql_alembic.sql.names import parse_filename
    from fraiseql_alembic.sql.parse import parse_migration
    from fraiseql_alembic.sql.statements import split_statements

    migration = parse_migration(parse_filename("001_x.sql"), text)  # type: ignore[arg-type]
    return [s.sql for s in split_statements(migration, migration.up,
                                            standard_strings=standard_strings).statements]


def test_backslash_escapes_follow_standard_conforming_strings() -> None:
    text = "SET standard_conforming_strings = off;\nSELECT 'a\\'; DROP TABLE t; --';\n"
    assert _split(text) == ["SET standard_conforming_strings = off",
                            "SELECT 'a\\'; DROP TABLE t; --'"]
    assert _split("SELECT 'a\\'; DROP TABLE t; --';\n", standard_strings=False) == [
        "SELECT 'a\\'; DROP TABLE t; --'"]
    # the rest of the SET's own line is read the old way, as psql does
    assert _split("SET standard_conforming_strings = off; SELECT 'a''b', E'\\\\';\nSELECT 1;\n") \
        == ["SET standard_conforming_strings = off", "SELECT 'a''b', E'\\\\'", "SELECT 1"]
    assert _split("SET standard_conforming_strings TO off;\nRESET ALL;\nSELECT 'a\\';\n")[-1] \
        == "SELECT 'a\\'"


def test_a_setting_change_that_cannot_be_followed_is_refused() -> None:
    from fraiseql_alembic.errors import MigrationFileError

    with pytest.raises(MigrationFileError) as caught:
        _split("SELECT 1;\nSELECT set_config('standard_conforming_strings', 'off', false);\n")
    assert caught.value.line == 2 and "only `SET standard_conforming_strings" in caught.value.message


def test_copy_from_stdin_data_is_not_sql() -> None:
    from fraiseql_alembic.sql.names import parse_filename
    from fraiseql_alembic.sql.parse import parse_migration
    from fraiseql_alembic.sql.statements import split_statements

    text = "COPY t (v) FROM stdin;\na;b\n'c\n\\.\nSELECT 1;\n"
    migration = parse_migration(parse_filename("001_x.sql"), text)  # type: ignore[arg-type]
    statements = split_statements(migration, migration.up).statements
    assert [s.sql for s in statements] == ["COPY t (v) FROM stdin", "SELECT 1"]
    copy = statements[0].copy
    assert copy is not None and copy.line == 2
    reader = copy.reader(chunk=3)  # streamed in chunks, never copied whole
    assert [reader.read(100), reader.read(100), reader.read(100), reader.read(100)] == [
        "a;b", "\n'c", "\n", ""]
    assert text[copy.start:copy.end] == "a;b\n'c\n"
    assert statements[1].line == 5


@pytest.mark.parametrize(("text", "line", "message"), [
    ("SELECT 1;\n\\connect db\n", 2, "`\\connect` is a psql meta-command"),
    ("SELECT 1;\nSELECT :'v';\n", 2, "`:'v'` is a psql variable"),
    ("SELECT 1;\nCOPY t FROM stdin;\n1\n", 2, "never ends: add a line `\\.`"),
    ("SELECT 1;\nCOPY t TO stdout;\n", 2, "`COPY ... TO STDOUT` writes rows"),
    ("SELECT 1;\nSELECT 'a\0b';\n", 2, "contains a NUL byte"),
])
def test_psql_only_input_is_refused_with_its_line(text: str, line: int, message: str) -> None:
    from fraiseql_alembic.errors import MigrationFileError
    from fraiseql_alembic.sql.parse import normalize_text

    with pytest.raises(MigrationFileError) as caught:
        _split(normalize_text(text.encode(), "001_x.sql"))
    assert caught.value.line == line and message in caught.value.message


def test_restrict_lines_and_array_slices_pass() -> None:
    assert _split("\\restrict k3y\nSELECT a[1:n] FROM t;\n\\unrestrict k3y\n") == [
        "SELECT a[1:n] FROM t"]


def test_only_ascii_digits_number_a_migration() -> None:
    from fraiseql_alembic.sql.names import parse_filename

    assert parse_filename("\u0660\u0660\u0664_x.sql") is None
    assert parse_filename("004_x.sql") is not None


@pytest.mark.parametrize("option", ["lock_timeout:0.4ms", "statement_timeout:30d"])
def test_marker_durations_postgresql_would_not_honour_are_refused(option: str) -> None:
    from fraiseql_alembic.errors import MigrationFileError
    from fraiseql_alembic.sql.names import parse_filename
    from fraiseql_alembic.sql.parse import parse_migration

    with pytest.raises(MigrationFileError):
        parse_migration(parse_filename("001_x.sql"),  # type: ignore[arg-type]
                        f"-- migrate:up {option}\nSELECT 1;\n")


def test_a_long_blank_run_after_a_literal_is_read_in_linear_time() -> None:
    """The string-continuation rule once had a nested repeat, exponential in the blanks
    between a literal and the next token: 40 blank lines took longer than a day."""
    assert_linear(
        "from fraiseql_alembic.sql.psqlscan import scan\n"
        "def make(n): return \"select 'a'\" + ' \\n' * n + \"x; select 'b' -- c\\n -- d\\n 'e';\"\n"
        "def run(text): assert len(scan(text).spans) == 2\n",
        50_000, 200_000,
    )


def assert_linear(setup: str, small: int, large: int) -> None:
    """``setup`` defines ``make(n)`` (an input of size n) and ``run(text)`` (which asserts
    what it reads).  Growing the input from ``small`` to ``large`` (4x) may grow the CPU
    time at most 8x: linear gives 4x, quadratic 16x.  CPU time (best of two) does not count
    time lost to other processes, so a busy or slow machine cannot fail it; the subprocess
    only stops a regression that would never end (the timeout is no measure)."""
    import subprocess
    import sys

    assert large == 4 * small
    code = setup + (
        "import time\n"
        "def cpu(n):\n"
        "    text = make(n)\n"
        "    spent = []\n"
        "    for _ in range(2):\n"
        "        start = time.process_time()\n"
        "        run(text)\n"
        "        spent.append(time.process_time() - start)\n"
        "    return min(spent)\n"
        f"small, large = cpu({small}), cpu({large})\n"
        "assert large < 8 * max(small, 0.05), f'4x the input took {large / max(small, 1e-9):.1f}x the time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


# ---------------------------------------------------------------------------
# Found by differential fuzzing against psql 15 (statements psql sends, from `psql -L`)


def _refusal(text: str) -> tuple[int, str]:
    from fraiseql_alembic.errors import MigrationFileError

    with pytest.raises(MigrationFileError) as caught:
        _split(text)
    assert "\n" not in caught.value.message
    return caught.value.line, caught.value.message


def test_a_literal_is_never_cut_short() -> None:
    """``E'x''\\'...'`` followed by a continued literal was once cut after ``E'x'`` by the
    fast path, and the rest read as a plain literal: the DROP inside it ran."""
    text = "SELECT E'x''\\'; DROP TABLE t; --'\n'z';\nSELECT 1;\n"
    assert _split(text) == ["SELECT E'x''\\'; DROP TABLE t; --'\n'z'", "SELECT 1"]
    assert _split("SELECT 1, E'x''\\'; DROP TABLE t; --'\n'z';\n") == [
        "SELECT 1, E'x''\\'; DROP TABLE t; --'\n'z'"]


@pytest.mark.parametrize(("text", "expected"), [
    ("SELECT 'a'\n'b';\n", ["SELECT 'a'\n'b'"]),
    ("SELECT E'a\\n'\n  -- c\n'b;c';\n", ["SELECT E'a\\n'\n  -- c\n'b;c'"]),
    ("SELECT E'\\\\'\n'b\\n';\n", ["SELECT E'\\\\'\n'b\\n'"]),  # both end it at the same quote
    ("SELECT B'1'\n'0''x';\n", ["SELECT B'1'\n'0''x'"]),
    ("SELECT U&'a'\n'b''c';\n", ["SELECT U&'a'\n'b''c'"]),
])
def test_a_literal_continued_on_the_next_line_is_read_as_psql_reads_it(
    text: str, expected: list[str]
) -> None:
    """psql lexes a file line by line and reads the continuation as a literal of its own;
    the server as part of the first one: where both end it at the same quote, it passes."""
    assert _split(text) == expected


@pytest.mark.parametrize("text", [
    "SELECT 1;\nSELECT E'a'\n'\\' ; SELECT 2; --' ;\n",  # psql: '\' ends at the 2nd quote
    "SELECT 1;\nSELECT E'a'\n-- c\n'\\'');\n",
    "SELECT 1;\nSELECT e'a'\n'b\\';\n",
])
def test_a_continued_literal_the_server_would_end_elsewhere_is_refused(text: str) -> None:
    line, message = _refusal(text)
    assert line == 3 if "-- c" not in text else line == 4
    assert "this literal continues the one before it on an earlier line" in message


def test_a_continued_literal_read_in_another_mode_after_a_set_is_refused() -> None:
    text = "SET standard_conforming_strings = off;\nSELECT B'1'\n'0\\'';\n"
    assert _refusal(text)[0] == 3
    assert _split(text.replace("B'1'", "'1'")) == [  # plain: read with backslashes by both
        "SET standard_conforming_strings = off", "SELECT '1'\n'0\\''"]


def test_a_literal_on_the_line_of_a_set_that_both_would_end_differently_is_refused() -> None:
    """psql reads the rest of a SET's line with the old setting, the server with the new
    one: ``'a\\' -- it's`` newline ``;`` is one statement to both, but not the same one."""
    line, message = _refusal("SELECT 1;\nSET standard_conforming_strings = off; "
                             "SELECT 'a\\' -- it's\n;\n")
    assert line == 2 and "on the line of a `SET standard_conforming_strings`" in message
    assert _split("SET standard_conforming_strings = off; SELECT 'a\\\\b';\n") == [
        "SET standard_conforming_strings = off", "SELECT 'a\\\\b'"]


def test_u_ampersand_without_a_quote_is_no_word() -> None:
    """psql's xufailed rule: ``u&`` is not counted as an identifier, so the head of the
    statement below is CREATE FUNCTION, and its BEGIN ... END body is kept whole."""
    text = "CREATE u& FUNCTION f() BEGIN ATOMIC SELECT 1; END;\nSELECT U&x;\n"
    assert _split(text) == ["CREATE u& FUNCTION f() BEGIN ATOMIC SELECT 1; END", "SELECT U&x"]


@pytest.mark.parametrize(("text", "message"), [
    ("COPY t FROM stdin;\u00a0\n1\n\\.\n", "text after `COPY ... FROM stdin;` on the same line"),
    ("\\restrict k3y \\\\ DROP TABLE t;\n", "`\\restrict` is skipped only with one key after it"),
    ("\\unrestrict `rm x`\n", "`\\unrestrict` is skipped only with one key after it"),
    ("SELECT a[1:PORT] FROM t;\n", "psql substitutes its own variable PORT there"),
])
def test_psql_only_readings_are_refused(text: str, message: str) -> None:
    assert message in _refusal(text)[1]


def test_copy_is_a_whole_word() -> None:
    assert _split("copyé FROM stdin;\nSELECT 1;\n") == ["copyé FROM stdin", "SELECT 1"]
    assert _split("SELECT a[1: PORT], a[1:n] FROM t;\n") == ["SELECT a[1: PORT], a[1:n] FROM t"]


@pytest.mark.parametrize(("text", "expected"), [
    # psql 15 glues an identifier onto a number (its "junk" rules): no E'' literal, no
    # dollar quote starts there, and the word is not counted as an identifier
    ("SELECT 1e'\\'; SELECT 2; --';\n", ["SELECT 1e'\\'", "SELECT 2"]),
    ("SELECT .5e'\\'; SELECT 2; --';\n", ["SELECT .5e'\\'", "SELECT 2"]),
    ("SELECT 1e5$$ ; SELECT 2; --$$;\n", ["SELECT 1e5$$", "SELECT 2"]),
    ("SELECT $1e5$$ ; SELECT 2; --$$;\n", ["SELECT $1e5$$", "SELECT 2"]),
    ("SELECT 4$$ ; $$, 1e+5$$ ; $$;\n", ["SELECT 4$$ ; $$, 1e+5$$ ; $$"]),
    ("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1end; SELECT 2; END;\nSELECT 3;\n",
     ["CREATE FUNCTION f() BEGIN ATOMIC SELECT 1end; SELECT 2; END", "SELECT 3"]),
    # ``1e+`` is one token even without a digit after it: ``end`` counts, ``--`` is no comment
    ("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1e+end; SELECT 2;\n",
     ["CREATE FUNCTION f() BEGIN ATOMIC SELECT 1e+end", "SELECT 2"]),
    ("SELECT 1e--x;\nSELECT 2;\n", ["SELECT 1e--x", "SELECT 2"]),
    ("SELECT 1..--x;\nSELECT 2;\n", ["SELECT 1..--x;\nSELECT 2"]),
])
def test_numbers_are_read_as_psql_15_reads_them(text: str, expected: list[str]) -> None:
    assert _split(text) == expected


def test_copy_data_ends_as_psql_ends_it() -> None:
    # at the end of the file, with nothing after the COPY line, psql reads no data
    for text in ("COPY t FROM stdin;", "COPY t FROM stdin;\n", "SELECT 1;\nCOPY t FROM stdin;\n"):
        assert _split(text)[-1] == "COPY t FROM stdin"
    # a last line `\.` without its newline is data to psql (and corrupt to PostgreSQL)
    for text in ("COPY t FROM stdin;\n1\n\\.", "COPY t FROM stdin;\n\\."):
        line, message = _refusal(text)
        assert line == 1 and "has no newline after it" in message


def test_transaction_control_psql_sends_with_a_function_is_named() -> None:
    """``AS begin`` makes psql's BEGIN ... END count send the END (a COMMIT) with the
    function: refused, naming END and its line."""
    line, message = _refusal("CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
                             "BEGIN ATOMIC SELECT 1 AS begin; END;\nEND;\nSELECT 2;\n")
    assert line == 3 and "transaction control `END` inside a migration" in message


def test_many_rollback_words_on_one_line_are_read_in_linear_time() -> None:
    """Each ``--rollback:`` on a line once searched back to the line's start: 400,000 on
    one line took a minute."""
    assert_linear(
        "from fraiseql_alembic.sql.names import parse_filename\n"
        "from fraiseql_alembic.sql.parse import parse_migration\n"
        "def make(n): return 'SELECT 1;\\n-- Rollback:\\n-- ' + '--rollback:' * n + '\\n'\n"
        "def run(text): assert parse_migration(parse_filename('001_x.sql'), text).down is not None\n",
        100_000, 400_000,
    )


def test_statements_on_one_long_line_are_read_in_linear_time() -> None:
    """A statement's column was found by searching back to the start of its line: a 30 MB
    line of statements took 14 s (quadratic), it takes about one."""
    assert_linear(
        "from fraiseql_alembic.sql.names import parse_filename\n"
        "from fraiseql_alembic.sql.parse import parse_migration\n"
        "from fraiseql_alembic.sql.statements import split_statements\n"
        "def make(n): return (\"SELECT '\" + 'x' * 1000 + \"';\") * n + '\\nSELECT 2;'\n"
        "def run(text):\n"
        "    migration = parse_migration(parse_filename('001_x.sql'), text)\n"
        "    statements = split_statements(migration, migration.up).statements\n"
        "    n = (len(text) - 10) // 1010\n"
        "    assert [(s.line, s.column) for s in statements[-2:]] == [(1, (n - 1) * 1010 + 1), (2, 1)]\n",
        3_750, 15_000,
    )
