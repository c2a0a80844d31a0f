"""`fraiseql migrate lint`: each rule fires, stays quiet, and can be silenced; the CLI; the
spec's own example migrations.  No database needed: lint reads files only."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli
from scenarios import (
    SPEC_001,
    SPEC_005,
    SPEC_010,
    SPEC_015,
    SPEC_020,
    SPEC_030,
    SPEC_035_CONCURRENTLY,
    SPEC_040,
    SPEC_050,
    SPEC_060,
    SPEC_PROFILE,
)

from fraiseql_alembic.errors import MigrationFileError
from fraiseql_alembic.sql.lint import RULES, Finding, LintPolicy, lint_migrations, rule_named
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import ParsedMigration, parse_migration


def parsed(text: str, filename: str = "010_change.sql") -> ParsedMigration:
    name = parse_filename(filename)
    assert name is not None
    return parse_migration(name, text)


def findings(text: str, *, lock_timeout: str = "10s", before: tuple[str, ...] = ()) -> list[Finding]:
    earlier = [parsed(sql, f"{index:03d}_before.sql") for index, sql in enumerate(before, 1)]
    target = parsed(text)
    return lint_migrations([*earlier, target], lock_timeout=lock_timeout,
                           report={target.name.filename})


def rules(text: str, **kwargs: object) -> list[str]:
    return [finding.rule for finding in findings(text, **kwargs)]  # type: ignore[arg-type]


# Each rule: SQL that must fire it, and SQL doing the same job safely.
CASES = [
    ("FQL001", "CREATE INDEX idx_a ON tb_user (a);", "CREATE INDEX CONCURRENTLY idx_a ON tb_user (a);"),
    ("FQL001", "CREATE UNIQUE INDEX idx_a ON tb_user (a);",
     "CREATE TABLE tb_new (a int);\nCREATE UNIQUE INDEX idx_a ON tb_new (a);"),
    ("FQL001", "ALTER TABLE tb_user ADD CONSTRAINT u_a UNIQUE (a);",
     "ALTER TABLE tb_user ADD CONSTRAINT u_a UNIQUE USING INDEX idx_a;"),
    ("FQL002", "ALTER TABLE tb_user ADD COLUMN a int NOT NULL;",
     "ALTER TABLE tb_user ADD COLUMN a int NOT NULL DEFAULT 0;"),
    ("FQL003", "ALTER TABLE tb_user ADD COLUMN a uuid DEFAULT gen_random_uuid();",
     "ALTER TABLE tb_user ADD COLUMN a uuid;"),
    ("FQL003", "ALTER TABLE tb_user ADD COLUMN a timestamptz DEFAULT clock_timestamp();",
     "ALTER TABLE tb_user ADD COLUMN a timestamptz DEFAULT now();"),
    ("FQL003", "ALTER TABLE tb_user ADD COLUMN a bigint DEFAULT nextval('s');",
     "ALTER TABLE tb_user ADD COLUMN a text DEFAULT 'x' NOT NULL;"),
    ("FQL003", "ALTER TABLE tb_user ADD COLUMN n bigserial;",
     "CREATE TABLE tb_new (a int);\nALTER TABLE tb_new ADD COLUMN n bigserial;"),
    ("FQL004", "ALTER TABLE tb_user ALTER COLUMN email SET NOT NULL;",
     "ALTER TABLE tb_user ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;\n"
     "ALTER TABLE tb_user VALIDATE CONSTRAINT email_nn;\n"
     "ALTER TABLE tb_user ALTER COLUMN email SET NOT NULL;"),
    ("FQL005", "ALTER TABLE tb_post ADD CONSTRAINT fk_author FOREIGN KEY (author_id) "
     "REFERENCES tb_user (id);",
     "ALTER TABLE tb_post ADD CONSTRAINT fk_author FOREIGN KEY (author_id) "
     "REFERENCES tb_user (id) NOT VALID;"),
    ("FQL005", "ALTER TABLE tb_post ADD CONSTRAINT positive CHECK (views >= 0);",
     "ALTER TABLE tb_post ADD CONSTRAINT positive CHECK (views >= 0) NOT VALID;"),
    ("FQL006", "ALTER TABLE tb_user ALTER COLUMN age TYPE bigint;",
     "CREATE TABLE tb_new (age int);\nALTER TABLE tb_new ALTER COLUMN age TYPE bigint;"),
    ("FQL007", "ALTER TABLE tb_user DROP COLUMN bio;",
     "ALTER TABLE tb_user DROP COLUMN bio;\n-- migrate:down\nALTER TABLE tb_user ADD COLUMN bio text;"),
    ("FQL007", "DROP TABLE tb_old;",
     "DROP TABLE tb_old;\n\n-- Rollback:\n-- CREATE TABLE tb_old (id int);\n"),
    ("FQL007", "DROP TABLE public.tb_old, tb_other;",
     "CREATE TABLE tb_tmp (a int);\nDROP TABLE tb_tmp;"),
    ("FQL008", "ALTER TABLE tb_user RENAME COLUMN name TO full_name;",
     "ALTER TABLE tb_user ADD COLUMN full_name text;"),
    ("FQL008", "ALTER TABLE tb_user RENAME TO tb_account;",
     "CREATE TABLE tb_tmp (a int);\nALTER TABLE tb_tmp RENAME TO tb_account;"),
    ("FQL009", "-- migrate:up lock_timeout:0\nALTER TABLE tb_user ADD COLUMN a text;",
     "-- migrate:up lock_timeout:2s\nALTER TABLE tb_user ADD COLUMN a text;"),
    ("FQL009", "SET lock_timeout = 0;\nTRUNCATE tb_user;",
     "SET lock_timeout = 0;\nSET LOCAL lock_timeout = '3s';\nTRUNCATE tb_user;"),
    ("FQL009", "RESET lock_timeout;\nDROP INDEX idx_a;",
     "RESET lock_timeout;\nDROP INDEX CONCURRENTLY idx_a;"),
    ("FQL009", "SELECT set_config('lock_timeout', '0', true);\nLOCK TABLE tb_user;",
     "SELECT set_config('lock_timeout', '0', true);\nLOCK TABLE tb_user IN SHARE MODE;"),
    ("FQL010", "-- fraiseql-lint: ignore FQL999\nSELECT 1;", "-- fraiseql-lint: ignore FQL001\nSELECT 1;"),
    ("FQL010", "-- fraiseql-lint: ignroe FQL001\nSELECT 1;", "-- a fraiseql lint remark\nSELECT 1;"),
    ("FQL011", "CREATE TABLE tb_x (a int,);", "CREATE TABLE tb_x (a int);"),
    ("FQL011", "DO $$ BEGIN CREAT INDEX i ON t (a); END $$;",
     "DO $$ BEGIN CREATE INDEX CONCURRENTLY i ON t (a); END $$;"),
    ("FQL007", "TRUNCATE tb_log;",
     "TRUNCATE tb_log;\n-- migrate:down\n-- restore tb_log from the backup\nSELECT 1;"),
    ("FQL007", "DROP SCHEMA legacy CASCADE;", "DROP SCHEMA legacy;"),
    ("FQL008", "ALTER SCHEMA app RENAME TO app_v2;",
     "CREATE SCHEMA app_tmp;\nALTER SCHEMA app_tmp RENAME TO app_v2;"),
    ("FQL008", "ALTER TABLE tb_user SET SCHEMA archive;",
     "CREATE TABLE tb_tmp (a int);\nALTER TABLE tb_tmp SET SCHEMA archive;"),
    ("FQL012", "VACUUM FULL tb_user;", "VACUUM (FULL false, ANALYZE) tb_user;"),
    ("FQL012", "CLUSTER tb_user USING idx_user_email;",
     "CREATE TABLE tb_tmp (a int);\nCLUSTER tb_tmp USING idx_tmp;"),
    ("FQL012", "REINDEX TABLE tb_user;", "REINDEX TABLE CONCURRENTLY tb_user;"),
    ("FQL012", "REINDEX INDEX idx_user_email;",
     "CREATE INDEX idx_new ON tb_new_t (a);\nREINDEX INDEX idx_new;"),
    ("FQL013", "ALTER TYPE order_status ADD VALUE 'refunded';\n"
     "UPDATE tb_order SET status = 'refunded' WHERE refund_id IS NOT NULL;",
     "ALTER TYPE order_status ADD VALUE 'refunded';\n"
     "UPDATE tb_order SET status = 'cancelled' WHERE refund_id IS NOT NULL;"),
    # volatile defaults by PostgreSQL's pg_proc, and functions the migrations create
    ("FQL003", "ALTER TABLE tb_user ADD COLUMN a float8 DEFAULT random() * 10;",
     "ALTER TABLE tb_user ADD COLUMN a bigint DEFAULT txid_current();"),
    ("FQL003", "ALTER TABLE tb_user ADD COLUMN a int DEFAULT my_counter();",
     "CREATE FUNCTION my_counter() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 1 $$;\n"
     "ALTER TABLE tb_user ADD COLUMN a int DEFAULT my_counter();"),
    ("FQL003", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
     "ALTER TABLE tb_user ADD COLUMN a int DEFAULT f();",
     "ALTER TABLE tb_user ADD COLUMN a text DEFAULT lower('X') || to_char(now(), 'YYYY');"),
    ("FQL003", "ALTER TABLE tb_user ADD COLUMN a uuid DEFAULT uuid_generate_v4();",
     "ALTER TABLE tb_user ADD COLUMN a uuid DEFAULT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';"),
    ("FQL005", "ALTER TABLE tb_post ADD COLUMN author_id int REFERENCES tb_user (id);",
     "ALTER TABLE tb_post ADD COLUMN author_id int;\nALTER TABLE tb_post ADD CONSTRAINT fk_a "
     "FOREIGN KEY (author_id) REFERENCES tb_user (id) NOT VALID;"),
    ("FQL005", "ALTER TABLE tb_post ADD COLUMN views int CHECK (views >= 0);",
     "ALTER TABLE tb_post ADD COLUMN views int;"),
    ("FQL005", "ALTER DOMAIN positive ADD CONSTRAINT gt0 CHECK (VALUE > 0);",
     "ALTER DOMAIN positive ADD CONSTRAINT gt0 CHECK (VALUE > 0) NOT VALID;"),
    ("FQL008", "ALTER TYPE order_status RENAME TO order_state;",
     "CREATE TYPE tmp_status AS ENUM ('a');\nALTER TYPE tmp_status RENAME TO order_state;"),
    ("FQL014", "ALTER TABLE tb_post ADD CONSTRAINT fk_a FOREIGN KEY (a) REFERENCES tb_user (id) "
     "NOT VALID;\nALTER TABLE tb_post VALIDATE CONSTRAINT fk_a;",
     "ALTER TABLE tb_post ADD CONSTRAINT fk_a FOREIGN KEY (a) REFERENCES tb_user (id) "
     "NOT VALID;\nCREATE INDEX CONCURRENTLY i ON tb_x (a);\n"
     "ALTER TABLE tb_post VALIDATE CONSTRAINT fk_a;"),
    ("FQL014", "ALTER TABLE tb_post ADD CONSTRAINT ck CHECK (a > 0) NOT VALID;\n"
     "ALTER TABLE tb_post VALIDATE CONSTRAINT ck;",
     "-- migrate:up transaction:false\nALTER TABLE tb_post ADD CONSTRAINT ck CHECK (a > 0) "
     "NOT VALID;\nALTER TABLE tb_post VALIDATE CONSTRAINT ck;"),
    ("FQL015", "DROP INDEX idx_user_email;", "DROP INDEX CONCURRENTLY idx_user_email;"),
    ("FQL015", "DROP INDEX app.idx_a, idx_b;",
     "CREATE INDEX idx_n ON tb_new_t (a);\nDROP INDEX idx_n;"),
    ("FQL016", "ALTER TABLE measurement DETACH PARTITION measurement_2020;",
     "ALTER TABLE measurement DETACH PARTITION measurement_2020 CONCURRENTLY;"),
    ("FQL017", "ALTER TABLE tb_event SET TABLESPACE fast_ssd;",
     "CREATE TABLE tb_new (a int);\nALTER TABLE tb_new SET TABLESPACE fast_ssd;"),
    ("FQL017", "ALTER TABLE tb_event SET UNLOGGED;", "ALTER TABLE tb_event SET (fillfactor = 90);"),
    ("FQL017", "ALTER INDEX idx_a SET TABLESPACE fast_ssd;", "ALTER INDEX idx_a RENAME TO idx_b;"),
    ("FQL018", "REFRESH MATERIALIZED VIEW mv_stats;",
     "REFRESH MATERIALIZED VIEW CONCURRENTLY mv_stats;"),
    ("FQL019", "ALTER TYPE order_status RENAME VALUE 'paid' TO 'settled';",
     "ALTER TYPE order_status ADD VALUE 'settled';"),
    ("FQL020", "ALTER TABLE tb_user ALTER COLUMN email DROP NOT NULL;",
     "ALTER TABLE tb_user ALTER COLUMN email SET DEFAULT '';"),
    ("FQL020", "DROP DATABASE legacy;", "CREATE VIEW v_tmp AS SELECT 1;\nDROP VIEW v_tmp;"),
    ("FQL020", "DROP FUNCTION app.f_old(int);",
     "CREATE TYPE t_tmp AS ENUM ('a');\nDROP TYPE t_tmp;"),
    ("FQL021", "ALTER TABLE tb_post ADD COLUMN status text;\nUPDATE tb_post SET status = 'draft';",
     "ALTER TABLE tb_post ADD COLUMN status text;\n"
     "UPDATE tb_post SET status = 'draft' WHERE id BETWEEN 1 AND 1000;"),
    ("FQL021", "DELETE FROM tb_log;\nALTER TABLE tb_log ADD COLUMN b int;",
     "DELETE FROM tb_log;\nCREATE INDEX CONCURRENTLY i ON tb_x (a);\n"
     "ALTER TABLE tb_log ADD COLUMN b int;"),
    ("FQL022", "ALTER TABLE tb_user ADD COLUMN prefs json;",
     "ALTER TABLE tb_user ADD COLUMN prefs jsonb;"),
    ("FQL022", "CREATE TABLE tb_doc (id int, body json[]);",
     "CREATE TABLE tb_doc (id int, body jsonb);"),
    # DO blocks: the statements inside go through the same rules
    ("FQL001", "DO $$ BEGIN\n  CREATE INDEX idx_a ON tb_user (a);\nEND $$;",
     "DO $$ BEGIN\n  CREATE TABLE tb_n (a int);\n  CREATE INDEX idx_a ON tb_n (a);\nEND $$;"),
]
IDS = [f"{rule}-{index}" for index, (rule, _, _) in enumerate(CASES)]


@pytest.mark.parametrize(("rule", "bad", "good"), CASES, ids=IDS)
def test_rule_fires(rule: str, bad: str, good: str) -> None:
    assert rule in rules(bad)


@pytest.mark.parametrize(("rule", "bad", "good"), CASES, ids=IDS)
def test_rule_does_not_fire_on_the_safe_version(rule: str, bad: str, good: str) -> None:
    assert rule not in rules(good)


SILENCEABLE = [(rule, bad) for rule, bad, _ in CASES if rule != "FQL010"]
SILENCEABLE_IDS = [name for name, (rule, _, _) in zip(IDS, CASES, strict=True) if rule != "FQL010"]


@pytest.mark.parametrize(("rule", "bad"), SILENCEABLE, ids=SILENCEABLE_IDS)
def test_rule_is_silenced_by_id_and_by_slug(rule: str, bad: str) -> None:
    found = rule_named(rule)
    assert found is not None
    head, _, offending = bad.rpartition("\n")  # the offending statement is the last line
    above = head + "\n" if head else ""
    by_id = f"{above}-- fraiseql-lint: ignore {rule}\n{offending}"
    by_slug = f"{above}-- fraiseql-lint: ignore FQL042x, {found.slug}\n{offending}"
    assert rule in rules(f"{above}-- a plain comment\n{offending}")
    assert rule not in rules(by_id)
    assert rule not in rules(by_slug)
    assert "FQL010" in rules(by_slug)  # the typo next to the slug is reported


def test_every_rule_has_a_case() -> None:
    assert {rule.id for rule in RULES} == {rule for rule, _, _ in CASES}


def test_finding_text_names_file_line_column_rule_and_fix() -> None:
    text = "-- Migration 010\nALTER TABLE tb_user\n    ADD COLUMN a int NOT NULL;\n"
    (finding,) = findings(text)
    assert finding.text() == (
        "010_change.sql:3:16: error FQL002 not-null-without-default: ADD COLUMN a NOT NULL without "
        "a DEFAULT fails as soon as tb_user has a row (existing rows would hold NULL). "
        "Instead: give it a constant DEFAULT (instant since PostgreSQL 11), or add it "
        "nullable, backfill it, and SET NOT NULL the safe way (see FQL004)"
    )


def test_silencing_comment_forms() -> None:
    bad = "CREATE INDEX idx_a ON tb_user (a)"
    # on the line above, through other comment lines
    assert rules(f"-- fraiseql-lint: ignore FQL001\n-- big table, done off-peak\n{bad};") == []
    # inside the statement, and after it on its last line
    assert rules("CREATE INDEX idx_a /* fraiseql-lint: ignore FQL001 */ ON tb_user (a);") == []
    assert rules(f"{bad}; -- fraiseql-lint: ignore index-not-concurrent") == []
    # several ids, any case
    assert rules(f"-- fraiseql-lint: ignore fql009,FQL001\n{bad};", lock_timeout="0") == []
    # a blank line detaches the comment; so does being above another statement
    assert rules(f"-- fraiseql-lint: ignore FQL001\n\n{bad};") == ["FQL001"]
    assert rules(f"-- fraiseql-lint: ignore FQL001\nSELECT 1;\n{bad};") == ["FQL001"]
    # silencing one rule leaves the others
    assert rules(f"-- fraiseql-lint: ignore FQL001\n{bad};", lock_timeout="0") == []
    assert rules("-- fraiseql-lint: ignore FQL002\nALTER TABLE t ADD COLUMN a int NOT NULL "
                 "UNIQUE;") == ["FQL001"]


def test_lock_timeout_rule_follows_the_effective_setting() -> None:
    alter = "ALTER TABLE tb_user ADD COLUMN a text;"
    assert rules(alter) == []
    assert rules(alter, lock_timeout="0") == ["FQL009"]
    assert rules(alter, lock_timeout="0ms") == ["FQL009"]
    assert rules(f"-- migrate:up lock_timeout:5s\n{alter}", lock_timeout="0") == []
    assert rules(f"SET lock_timeout TO DEFAULT;\n{alter}") == ["FQL009"]
    assert rules(f"SET lock_timeout = '0';\nSET lock_timeout = '1s';\n{alter}") == []
    # weaker locks are not concerned, nor are tables the file creates
    assert rules("ALTER TABLE tb_user VALIDATE CONSTRAINT c;", lock_timeout="0") == []
    assert rules("CREATE TABLE tb_new (a int);\nALTER TABLE tb_new ADD COLUMN b int;",
                 lock_timeout="0") == []
    (finding,) = findings(f"-- migrate:up lock_timeout:0\n{alter}")
    assert "lock_timeout:0 on the `-- migrate:up` marker" in finding.message


def test_set_not_null_after_constraint_validated_in_an_earlier_file() -> None:
    add = "ALTER TABLE tb_user ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;"
    validate_then_set = ("ALTER TABLE tb_user VALIDATE CONSTRAINT email_nn;\n"
                         "ALTER TABLE tb_user ALTER COLUMN email SET NOT NULL;")
    assert rules(validate_then_set, before=(add,)) == []
    # not validated yet: still a full scan
    assert rules("ALTER TABLE tb_user ALTER COLUMN email SET NOT NULL;", before=(add,)) == [
        "FQL004"]
    # a constraint on another column proves nothing; a dropped one neither
    assert rules(validate_then_set.replace("COLUMN email", "COLUMN name"), before=(add,)) == [
        "FQL004"]
    dropped = add + "\nALTER TABLE tb_user VALIDATE CONSTRAINT email_nn;\n" \
        "ALTER TABLE tb_user DROP CONSTRAINT email_nn;"
    assert rules("ALTER TABLE tb_user ALTER COLUMN email SET NOT NULL;", before=(dropped,)) == [
        "FQL004"]


def test_tables_created_in_the_file_are_exempt_in_their_schema_only() -> None:
    text = ("CREATE TABLE app.tb_new (a int);\nCREATE INDEX i ON app.tb_new (a);\n"
            "ALTER TABLE app.tb_new ALTER COLUMN a TYPE bigint, ALTER COLUMN a SET NOT NULL;\n")
    assert rules(text) == []
    # archive.tb_order is new; tb_order (public) is another, existing table
    assert rules("CREATE TABLE archive.tb_order (a int);\nCREATE INDEX i ON tb_order (a);"
                 ) == ["FQL001"]
    assert rules("CREATE TABLE tb_order (a int);\nCREATE INDEX i ON other.tb_order (a);"
                 ) == ["FQL001"]
    assert rules("CREATE TABLE tb_order (a int);\nCREATE INDEX i ON public.tb_order (a);") == []
    assert rules("CREATE TABLE public.tb_order (a int);\nCREATE INDEX i ON tb_order (a);") == []
    # quoted names keep their case, unquoted ones fold to lower case
    assert rules('CREATE TABLE "Orders" (a int);\nCREATE INDEX i ON orders (a);') == ["FQL001"]
    assert rules('CREATE TABLE Orders (a int);\nCREATE INDEX i ON "orders" (a);') == []
    # SET search_path moves unqualified names; a temporary table comes first
    assert rules("SET search_path TO archive, public;\nCREATE TABLE tb_order (a int);\n"
                 "CREATE INDEX i ON archive.tb_order (a);") == []
    assert rules("SET search_path TO archive, public;\nCREATE TABLE archive.tb_order (a int);\n"
                 "CREATE INDEX i ON tb_order (a);") == []
    assert rules("SET search_path TO archive;\nCREATE TABLE tb_order (a int);\n"
                 "CREATE INDEX i ON public.tb_order (a);") == ["FQL001"]
    assert rules("SELECT set_config('search_path', 'Archive', true);\n"
                 "CREATE TABLE archive.tb_x (a int);\nCREATE INDEX i ON tb_x (a);") == []
    assert rules("CREATE TEMP TABLE tb_user (a int);\nCREATE INDEX i ON tb_user (a);") == []
    # a session-level search_path ends with its file: the runner resets the session
    assert rules("CREATE TABLE tb_a (a int);\nCREATE INDEX i ON archive.tb_a (a);",
                 before=("SET search_path = archive;",)) == ["FQL001"]
    # IF NOT EXISTS may find an old, full table: not exempt
    assert rules("CREATE TABLE IF NOT EXISTS tb_user (a int);\nCREATE INDEX i ON tb_user (a);"
                 ) == ["FQL001"]


def test_one_statement_can_break_several_rules() -> None:
    text = "ALTER TABLE tb_user ADD COLUMN a uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE;"
    assert sorted(rules(text, lock_timeout="0")) == ["FQL001", "FQL003", "FQL009"]


def test_files_only_read_for_context_are_not_reported_and_may_be_broken() -> None:
    broken = parsed("SELECT 1;\nBEGIN;\n", "001_broken.sql")
    bad = parsed("CREATE INDEX i ON t (a);", "002_bad.sql")
    assert [f.file for f in lint_migrations([broken, bad], report={"002_bad.sql"})] == [
        "002_bad.sql"]
    with pytest.raises(MigrationFileError, match=r"001_broken\.sql:2"):
        lint_migrations([broken, bad])


def test_down_section_is_not_linted() -> None:
    assert rules("CREATE TABLE tb_x (a int);\n-- migrate:down\nDROP TABLE tb_user;\n"
                 "CREATE INDEX i ON tb_user (a);\n") == []


# ---------------------------------------------------------------------------
# The spec's examples


SPEC_EXPECTED = {
    "001": (SPEC_001, []),
    "003": (SPEC_PROFILE, []),
    "005": (SPEC_005, [("FQL001", 4)]),  # its "Good" example indexes an existing table
    "010": (SPEC_010, []),
    "015": (SPEC_015, [("FQL004", 8)]),
    "020": (SPEC_020, []),
    # backfills in the ADD COLUMN's transaction; drops `published` with no way back
    "030": (SPEC_030, [("FQL021", 6), ("FQL007", 10)]),
    "035": (SPEC_035_CONCURRENTLY, []),
    "040": (SPEC_040, [("FQL001", 4)]),
    "050": (SPEC_050, []),
    "060": (SPEC_060, []),
}


@pytest.mark.parametrize("version", sorted(SPEC_EXPECTED))
def test_spec_examples_lint_as_expected(version: str) -> None:
    text, expected = SPEC_EXPECTED[version]
    found = [(finding.rule, finding.line) for finding in findings(text)]
    assert found == expected


def test_spec_zero_downtime_steps_name_the_risky_ones() -> None:
    steps = ("ALTER TABLE tb_user ADD COLUMN new_email TEXT;\n"
             "ALTER TABLE tb_user ALTER COLUMN new_email SET NOT NULL;\n"
             "ALTER TABLE tb_user DROP COLUMN old_email;\n")
    assert rules(steps) == ["FQL004", "FQL007"]


# ---------------------------------------------------------------------------
# CLI


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    monkeypatch.chdir(tmp_path)
    return migrations


def test_cli_clean_folder_exits_0(folder: Path, cli: Cli) -> None:
    (folder / "001_init.sql").write_text(SPEC_001, encoding="utf-8")
    (folder / "020_cqrs.sql").write_text(SPEC_020, encoding="utf-8")
    result = cli("migrate", "lint")
    assert result.exit_code == 0
    assert result.output == "✓ No lint findings in 2 migrations\n"


def test_cli_findings_text_exit_1(folder: Path, cli: Cli) -> None:
    (folder / "001_init.sql").write_text(SPEC_001, encoding="utf-8")
    (folder / "005_add_email_verification.sql").write_text(SPEC_005, encoding="utf-8")
    result = cli("migrate", "lint")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(
        "migrations/005_add_email_verification.sql:4:1: error FQL001 index-not-concurrent: CREATE "
        "INDEX on tb_user without CONCURRENTLY blocks every write to tb_user")
    assert ". Instead: CREATE INDEX CONCURRENTLY idx_user_email_verified ON tb_user" in lines[0]
    assert lines[1].startswith("✗ 1 lint finding (1 error; 2 migrations linted); ")
    assert len(lines) == 2


def test_cli_github_format(folder: Path, cli: Cli) -> None:
    (folder / "015_make_email_required.sql").write_text(SPEC_015, encoding="utf-8")
    result = cli("migrate", "lint", "--format", "github")
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith(
        "::warning file=migrations/015_make_email_required.sql,line=8,col=1,"
        "title=FQL004 set-not-null::SET NOT NULL on tb_user.email scans the whole table")
    assert "%0A" not in first and first.count("::") == 2


def test_cli_files_limit_the_report_and_bad_names_are_usage_errors(folder: Path, cli: Cli) -> None:
    (folder / "001_init.sql").write_text(SPEC_001, encoding="utf-8")
    (folder / "005_add_email_verification.sql").write_text(SPEC_005, encoding="utf-8")
    assert cli("migrate", "lint", "migrations/001_init.sql").output == "✓ No lint findings in 1 migration\n"
    (folder / "notes.sql").write_text("SELECT 1;", encoding="utf-8")
    result = cli("migrate", "lint", "migrations/notes.sql")
    assert result.exit_code == 2
    assert result.output == ("Error: migrations/notes.sql is not a migration file: names look "
                             "like 001_initial_schema.sql\n")
    missing = cli("migrate", "lint", "migrations/404_nope.sql")
    assert missing.exit_code == 2


def test_cli_unparseable_file_is_one_error_line(folder: Path, cli: Cli) -> None:
    (folder / "001_init.sql").write_text("SELECT 1;\nDO $$ BEGIN\n", encoding="utf-8")
    result = cli("migrate", "lint")
    assert result.exit_code == 1
    assert result.output == (
        'Error: 001_init.sql:2: unterminated dollar-quoted string at or near "$$ BEGIN"; '
        "close it (PostgreSQL would reject the file)\n"
    )


def test_cli_project_lock_timeout_setting_is_used(folder: Path, cli: Cli) -> None:
    (folder / "001_add.sql").write_text("ALTER TABLE tb_user ADD COLUMN a text;\n",
                                        encoding="utf-8")
    assert cli("migrate", "lint").exit_code == 0
    (folder.parent / "pyproject.toml").write_text(
        "[tool.fraiseql.migrations]\nlock_timeout = \"0\"\n", encoding="utf-8")
    result = cli("migrate", "lint")
    assert result.exit_code == 1
    assert "FQL009 missing-lock-timeout" in result.output
    assert "lock_timeout in the project settings" in result.output


# ---------------------------------------------------------------------------
# Review fixes


def test_session_settings_end_with_their_file() -> None:
    """The runner resets the session before each migration (RESET ALL, then the project's
    lock_timeout): a SET in one file never reaches the next (it used to be carried)."""
    alter = "ALTER TABLE tb_user ADD COLUMN a text;"
    for earlier in ("SET lock_timeout = 0;", "RESET lock_timeout;",
                    "SELECT set_config('lock_timeout', '0', false);",
                    "DO $$ BEGIN PERFORM set_config('lock_timeout', '0', false); END $$;"):
        assert rules(alter, before=(earlier,)) == []
        assert rules(earlier + "\n" + alter) == ["FQL009"]
    # the project's 0 holds in every file, whatever an earlier file SET
    assert rules(alter, lock_timeout="0", before=("SET lock_timeout = '5s';",)) == ["FQL009"]
    (finding,) = findings("SET lock_timeout = 0;\n" + alter)
    assert "SET lock_timeout = 0 on line 1" in finding.message


def test_index_on_only_a_partitioned_parent_is_not_reported() -> None:
    assert rules("CREATE INDEX idx_m ON ONLY measurement (logdate);") == []
    assert rules("CREATE INDEX idx_m ON measurement (logdate);") == ["FQL001"]


def test_select_into_creates_a_table() -> None:
    assert rules("SELECT * INTO tb_copy FROM tb_user;\nCREATE INDEX i ON tb_copy (id);\n"
                 "ALTER TABLE tb_copy ALTER COLUMN id SET NOT NULL;") == []
    assert rules("SELECT * INTO archive.tb_copy FROM tb_user;\nCREATE INDEX i ON tb_copy (id);"
                 ) == ["FQL001"]


def test_block_comments_above_and_trailing_directives() -> None:
    bad = "CREATE INDEX idx_a ON tb_user (a);"
    assert rules(f"/* fraiseql-lint: ignore FQL001 */\n{bad}") == []
    assert rules(f"/*\n * fraiseql-lint: ignore FQL001\n * tb_user is tiny\n */\n{bad}") == []
    assert rules(f"/* fraiseql-lint: ignore FQL001 */ {bad}") == []
    assert rules(f"/* fraiseql-lint: ignore FQL001 */\n\n{bad}") == ["FQL001"]
    # a trailing directive silences the last statement on its line only
    two = "CREATE INDEX idx_b ON tb_user (b); CREATE INDEX idx_c ON tb_user (c);"
    found = findings(f"{two} -- fraiseql-lint: ignore FQL001")
    assert [(f.rule, f.column) for f in found] == [("FQL001", 1)]
    # ... and not the statement on the next line
    assert rules(f"SELECT 1; -- fraiseql-lint: ignore FQL001\n{bad}") == ["FQL001"]
    assert rules(f"SELECT 1; /* fraiseql-lint: ignore FQL001 */ {bad}") == ["FQL001"]


def test_directive_reason_after_double_dash_or_colon() -> None:
    bad = "CREATE INDEX idx_a ON tb_user (a);"
    assert rules(f"-- fraiseql-lint: ignore FQL001 -- tiny table, 250 rows\n{bad}") == []
    assert rules(f"-- fraiseql-lint: ignore FQL001, set-not-null: maintenance window\n{bad}") == []
    assert rules(f"/* fraiseql-lint: ignore index-not-concurrent -- tiny */ {bad}") == []
    # without a separator the words are rule names: each typo is reported
    found = findings(f"-- fraiseql-lint: ignore FQL001 tiny table\n{bad}")
    assert [f.rule for f in found] == ["FQL010", "FQL010"]
    assert "a reason without ` -- ` or `:`" in found[0].message


def test_do_block_statements_are_linted_at_their_own_line() -> None:
    text = ("-- migrate:up\nDO $$\nDECLARE n int;\nBEGIN\n  SELECT count(*) INTO n FROM tb_user;\n"
            "  IF n < 1000 THEN\n    ALTER TABLE tb_user\n      ADD COLUMN a int NOT NULL;\n"
            "  END IF;\n  EXECUTE 'CREATE INDEX idx_a ON tb_user (a)';\nEND $$;\n")
    assert [(f.rule, f.line, f.column) for f in findings(text)] == [
        ("FQL002", 8, 18), ("FQL001", 10, 3)]
    # a '...' body: reported at the DO statement
    assert [(f.rule, f.line) for f in findings(
        "SELECT 1;\nDO 'BEGIN CREATE INDEX i ON tb_user (a); END';")] == [("FQL001", 2)]
    # other languages are not parsed; a directive inside the block silences it
    assert rules("DO LANGUAGE plpython3u $$ plpy.execute('x') $$;") == []
    assert rules("DO $$ BEGIN\n  -- fraiseql-lint: ignore FQL001\n"
                 "  CREATE INDEX i ON tb_user (a);\nEND $$;") == []
    # tables a DO block creates are new for the rest of the file
    assert rules("DO $$ BEGIN CREATE TABLE tb_n (a int); END $$;\n"
                 "CREATE INDEX i ON tb_n (a);") == []


def test_new_enum_value_only_within_one_transaction() -> None:
    add = "ALTER TYPE order_status ADD VALUE 'refunded';\n"
    use = "ALTER TABLE tb_order ALTER COLUMN status SET DEFAULT 'refunded';"
    (finding,) = findings(add + use)
    assert (finding.rule, finding.line) == ("FQL013", 2)
    assert "unsafe use of new value" in finding.message and "line 1" in finding.message
    # the next migration is another transaction
    assert rules(use, before=(add,)) == []
    # a non-transactional statement in between commits the segment before it
    assert rules(add + "CREATE INDEX CONCURRENTLY i ON tb_order (a);\n" + use) == []
    assert rules("-- migrate:up transaction:false\n" + add + use) == []
    # used inside a DO block
    assert rules(add + "DO $$ BEGIN UPDATE tb_order SET status = 'refunded'; END $$;") == [
        "FQL013"]


def test_column_types_are_followed_across_files_renames_and_drops() -> None:
    create = "CREATE TABLE tb_user (id int, name varchar(50), born timestamp);"
    widen = "ALTER TABLE tb_user ALTER COLUMN name TYPE varchar(100);"
    assert rules(widen, before=(create,)) == []
    assert rules("ALTER TABLE tb_user ALTER COLUMN name TYPE varchar(20);", before=(create,)) == [
        "FQL006"]
    # the type of the last change counts, also through renames of the column and table
    assert rules("ALTER TABLE tb_user ALTER COLUMN name TYPE text;",
                 before=(create, widen)) == []
    assert rules("ALTER TABLE tb_user RENAME COLUMN name TO full_name;\n"
                 "ALTER TABLE tb_user ALTER COLUMN full_name TYPE text;", before=(create,)) == [
        "FQL008"]
    assert rules("ALTER TABLE tb_account ALTER COLUMN name TYPE text;",
                 before=(create, "ALTER TABLE tb_user RENAME TO tb_account;")) == []
    # dropped and added again with another type; added by ADD COLUMN
    assert rules("ALTER TABLE tb_user ALTER COLUMN name TYPE text;",
                 before=(create, "ALTER TABLE tb_user DROP COLUMN name, ADD COLUMN name int;")
                 ) == ["FQL006"]
    assert rules("ALTER TABLE tb_post ALTER COLUMN ip TYPE inet;",
                 before=("ALTER TABLE tb_post ADD COLUMN ip cidr;",)) == []
    # another schema's table of that name is not known
    assert rules("ALTER TABLE app.tb_user ALTER COLUMN name TYPE text;", before=(create,)) == [
        "FQL006"]
    (finding,) = findings("ALTER TABLE tb_user ALTER COLUMN id TYPE bigint;", before=(create,))
    assert finding.message.startswith(
        "ALTER COLUMN id TYPE from int4 to int8 rewrites tb_user and rebuilds its indexes")


def test_timestamp_to_timestamptz_needs_a_known_utc_session() -> None:
    create = "CREATE TABLE tb_event (at timestamp);"
    alter = "ALTER TABLE tb_event ALTER COLUMN at TYPE timestamptz;"
    assert rules(alter, before=(create,)) == ["FQL006"]
    assert rules("SET TIME ZONE UTC;\n" + alter, before=(create,)) == []
    assert rules("SET TIME ZONE 0;\n" + alter, before=(create,)) == []
    assert rules("SET TIME ZONE 'Europe/Paris';\n" + alter, before=(create,)) == ["FQL006"]
    assert rules("SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE;\n" + alter,
                 before=(create,)) == ["FQL006"]  # not read: unknown
    # the project's own TimeZone ([tool.fraiseql.lint] timezone), to which RESET returns
    earlier = parsed(create, "001_before.sql")
    target = parsed("SET TIME ZONE 'Europe/Paris';\nRESET TimeZone;\n" + alter)
    assert lint_migrations([earlier, target], policy=LintPolicy(timezone="UTC")) == []
    # a SET in an earlier file does not reach this one (the runner resets the session)
    assert rules(alter, before=(create, "SET TIME ZONE UTC;")) == ["FQL006"]


def test_new_hazard_rules_details() -> None:
    # VALIDATE in the next migration is the safe way
    add = "ALTER TABLE tb_post ADD CONSTRAINT ck CHECK (a > 0) NOT VALID;"
    assert rules("ALTER TABLE tb_post VALIDATE CONSTRAINT ck;", before=(add,)) == []
    (finding,) = findings(add + "\nALTER TABLE tb_post VALIDATE CONSTRAINT ck;")
    assert "on line 1" in finding.message
    # DETACH ... CONCURRENTLY exists from PostgreSQL 14 on
    detach = "ALTER TABLE m DETACH PARTITION m_2020;"
    (found,) = lint_migrations([parsed(detach)], policy=LintPolicy(postgres_version=13))
    assert "PostgreSQL 13 and older have no DETACH ... CONCURRENTLY" in found.fix
    (found,) = lint_migrations([parsed(detach)])
    assert found.fix.startswith("ALTER TABLE m DETACH PARTITION m_2020 CONCURRENTLY")
    # an unknown function is named as such; a built-in volatile one as volatile
    (unknown,) = findings("ALTER TABLE t ADD COLUMN a uuid DEFAULT ext.make_id();")
    assert "calls ext.make_id(), which lint cannot prove immutable or stable" in unknown.message
    (volatile,) = findings("ALTER TABLE t ADD COLUMN a float8 DEFAULT pg_catalog.random();")
    assert "calls pg_catalog.random(), which is volatile" in volatile.message
    # a function created STABLE in an earlier file counts; in another schema it does not
    stable = "CREATE FUNCTION app.next_code() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'a' $$;"
    assert rules("ALTER TABLE t ADD COLUMN a text DEFAULT app.next_code();", before=(stable,)) == []
    assert rules("ALTER TABLE t ADD COLUMN a text DEFAULT next_code();", before=(stable,)) == [
        "FQL003"]
    # a backfill and its DDL are reported once, at the backfill
    assert rules("ALTER TABLE t ADD COLUMN a int;\nUPDATE t SET a = 1;\n"
                 "ALTER TABLE t DROP COLUMN c;\n-- migrate:down\nSELECT 1;") == ["FQL021",
                                                                      "FQL020"]
    # INSERT ... VALUES and bounded INSERT ... SELECT are not backfills of the whole table
    assert rules("ALTER TABLE t ADD COLUMN a int;\nINSERT INTO t VALUES (1);\n"
                 "INSERT INTO t SELECT * FROM u WHERE id < 100;") == []
    assert rules("ALTER TABLE t ADD COLUMN a int;\nINSERT INTO t SELECT * FROM u;") == ["FQL021"]


DOWN = "\n-- migrate:down\nSELECT 1;"


@pytest.mark.parametrize("statement", ["ALTER TABLE tb_user DROP COLUMN bio;",
                                       "DROP TABLE tb_old;", "TRUNCATE tb_log;"])
def test_data_loss_is_reported_even_with_a_down_section(statement: str) -> None:
    # Without a down section FQL007 reports it (an error); with one, the down section
    # brings the column or table back but not what it held: FQL020, info by default.
    assert rules(statement) == ["FQL007"]
    (finding,) = findings(statement + DOWN)
    assert (finding.rule, finding.severity) == ("FQL020", "info")
    assert "take a backup before deploying" in finding.fix
    assert rules(f"-- fraiseql-lint: ignore FQL020\n{statement}{DOWN}") == []
    # a constraint the same file added (the NOT VALID check behind a SET NOT NULL) it may drop
    assert rules("ALTER TABLE tb_user ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID;\n"
                 "ALTER TABLE tb_user VALIDATE CONSTRAINT c;\n"
                 "ALTER TABLE tb_user DROP CONSTRAINT c;" + DOWN) == ["FQL014"]
    assert rules("ALTER TABLE tb_user DROP CONSTRAINT c;" + DOWN) == ["FQL020"]
    # what the same file created, it may drop
    created = "CREATE TABLE tb_old (a int);\nCREATE TABLE tb_log (a int);\n"
    if "bio" not in statement:
        assert rules(created + statement + DOWN) == []
