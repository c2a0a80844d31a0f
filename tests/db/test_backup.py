"""`fraiseql migrate up --backup [FILE]`: a real pg_dump before anything is applied."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from conftest import Project
from scenarios import UP_DOWN

from fraiseql_alembic.devdb import DevCluster
from fraiseql_alembic.engine.backup import (
    split_password,
)


@pytest.fixture
def restored(pg_cluster: DevCluster) -> Iterator[str]:
    """URL of an empty database to pg_restore into."""
    name = f"t_restore_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)


def contents(url: str) -> list[tuple[object, ...]]:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                           "ORDER BY 1")
            rows = cursor.fetchall()
            cursor.execute("SELECT version_num FROM alembic_version")
            rows += cursor.fetchall()
            cursor.execute("SELECT id, name FROM tb_user ORDER BY id")
            return rows + cursor.fetchall()
    finally:
        connection.close()


def test_backup_is_taken_before_applying_and_restores(project: Project, restored: str) -> None:
    project.write("001_initial_schema.sql", "-- migrate:up\nCREATE TABLE tb_user (id int, "
                  "name text);\nINSERT INTO tb_user VALUES (1, 'ada'), (2, 'grace');\n")
    project.cli("up")
    before = contents(project.database_url)
    project.write("002_drop_name.sql", "-- migrate:up\nALTER TABLE tb_user DROP COLUMN name;\n")

    result = project.cli("up", "--backup", "pre-deploy.dump")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(r"✓ Backup: pre-deploy\.dump \(\d+\.\d kB\)", lines[0]), lines[0]
    assert lines[1].startswith("  restore with: pg_restore --clean --create --if-exists "
                               "--no-owner --dbname postgresql://")
    assert lines[1].endswith("/postgres pre-deploy.dump") and "@" in lines[1]
    assert lines[2].startswith("  (this drops and recreates t_")
    assert lines[3:] == ["✓ Running migration: 002_drop_name.sql",
                         "✓ Migration completed successfully"]
    dump = project.root / "pre-deploy.dump"
    assert dump.read_bytes()[:5] == b"PGDMP"  # the custom format
    assert not list(project.root.glob("*.partial"))

    subprocess.run(["pg_restore", "--no-owner", "--dbname", restored, str(dump)],
                   check=True, capture_output=True)
    assert contents(restored) == before
    assert before == [("alembic_version",), ("fraiseql_migrations",), ("tb_user",), ("001",),
                      (1, "ada"), (2, "grace")]


def test_default_backup_path_and_nothing_pending(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))

    result = project.cli("up", "--backup")

    assert result.exit_code == 0, result.output
    dbname = project.database_url.rsplit("/", 1)[1]
    (dump,) = (project.root / "backups").iterdir()
    assert re.fullmatch(re.escape(dbname) + r"-\d{8}T\d{6}Z\.dump", dump.name), dump.name
    assert f"✓ Backup: backups/{dump.name} (" in result.output

    again = project.cli("up", "--backup")
    assert again.output == "Already up to date; no backup taken\n"
    assert len(list((project.root / "backups").iterdir())) == 1


def test_failed_backup_applies_nothing(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))

    result = project.cli("up", "--backup", "migrations/001_a.sql/x.dump")

    assert result.exit_code == 1
    assert result.output.startswith("Error: Cannot back up to migrations/001_a.sql/x.dump: ")
    assert result.output.endswith("pass a writable --backup FILE. Nothing was applied\n")
    assert len(result.output.splitlines()) == 1
    assert project.tables() == set()

    (project.root / "taken.dump").write_bytes(b"an earlier backup")
    result = project.cli("up", "--backup", "taken.dump")
    assert result.output == ("Error: Cannot back up: taken.dump already exists; pass another "
                             "--backup FILE or move that file away. Nothing was applied\n")
    assert (project.root / "taken.dump").read_bytes() == b"an earlier backup"
    assert project.tables() == set()


def test_pg_dump_failing_applies_nothing(project: Project) -> None:
    """A table locked by a long transaction: pg_dump gives up after the lock timeout."""
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    blocker = psycopg2.connect(project.database_url)
    try:
        blocker.cursor().execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        result = project.cli("up", "--backup", "x.dump", "--lock-timeout", "200ms")
    finally:
        blocker.close()

    assert result.exit_code == 1
    assert result.output.startswith("Error: Backup failed: ")
    assert "could not lock table public.a within --lock-timeout 200ms: another session holds " \
        "a conflicting lock" in result.output
    assert result.output.endswith(
        "(pg_dump exit 1). Nothing was applied; fix the cause or run without --backup\n")
    assert not (project.root / "x.dump").exists()
    assert not (project.root / "x.dump.partial").exists()
    assert project.version() == ["001"]


def write_fake_pg_dump(folder: Path, body: str) -> Path:
    script = folder / "pg_dump"
    script.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    script.chmod(0o755)
    return script


def test_password_goes_in_the_environment_not_on_the_command_line(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = tmp_path / "seen.txt"
    real = subprocess.run(["which", "pg_dump"], capture_output=True, text=True).stdout.strip()
    fake = write_fake_pg_dump(
        tmp_path, f'echo "argv: $*" >> {seen}\necho "PGPASSWORD=$PGPASSWORD" >> {seen}\n'
        f'exec {real} "$@"\n')
    monkeypatch.setenv("FRAISEQL_PG_DUMP", str(fake))
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    password = split_password(project.database_url).password
    assert password

    result = project.cli("up", "--backup", "b.dump")

    assert result.exit_code == 0, result.output
    argv, environment = seen.read_text().splitlines()[-2:]
    assert password not in argv
    assert environment == f"PGPASSWORD={password}"
    assert password not in result.output


def test_missing_or_old_pg_dump_applies_nothing(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))

    monkeypatch.setenv("FRAISEQL_PG_DUMP", str(tmp_path / "nowhere" / "pg_dump"))
    result = project.cli("up", "--backup")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: Cannot back up: FRAISEQL_PG_DUMP={tmp_path}/nowhere/pg_dump is not an "
        "executable. Install PostgreSQL's client tools (the server's major version or newer, "
        "e.g. postgresql-client), or run without --backup. Nothing was applied\n")

    old = write_fake_pg_dump(tmp_path, 'echo "pg_dump (PostgreSQL) 9.6.24"\n')
    monkeypatch.setenv("FRAISEQL_PG_DUMP", str(old))
    result = project.cli("up", "--backup")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: Cannot back up: {old} is PostgreSQL 9, older than the server (PostgreSQL 15), "
        "and cannot dump it. Install postgresql-client-15 or newer (or point FRAISEQL_PG_DUMP "
        "at it), or run without --backup. Nothing was applied\n")

    monkeypatch.delenv("FRAISEQL_PG_DUMP")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = project.cli("up", "--backup")
    assert result.exit_code == 1
    assert result.output.startswith("Error: Cannot back up: pg_dump is not on PATH. ")
    assert project.tables() == set()
    assert not (project.root / "backups").exists()


def test_backup_json_event(project: Project) -> None:
    import json

    project.write("001_a.sql", UP_DOWN.format(t="a"))
    result = project.cli("up", "--backup", "j.dump", "--json")
    events = [json.loads(line) for line in result.output.splitlines()]
    assert events[0]["event"] == "backup" and events[0]["file"].endswith("j.dump")
    assert events[0]["size_bytes"] == (project.root / "j.dump").stat().st_size
    assert events[-1]["backup"] == events[0]["file"]


# ---------------------------------------------------------------------------
# pure helpers


def test_cancelling_during_the_backup_stops_pg_dump_and_applies_nothing(project: Project) -> None:
    """pg_dump waits forever for a locked table (lock_timeout 0): Ctrl-C must still stop it."""
    import threading
    from dataclasses import replace

    from fraiseql_alembic import api, settings
    from fraiseql_alembic.engine.cancel import CancelToken, MigrationInterrupted

    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    resolved = settings.resolve(project.migrations, project.database_url)
    resolved = replace(resolved, run=replace(resolved.run, lock_timeout="0"))
    token = CancelToken()
    blocker = psycopg2.connect(project.database_url)
    timer = threading.Timer(1.0, token.cancel, args=("SIGINT",))
    try:
        blocker.cursor().execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        timer.start()
        with pytest.raises(MigrationInterrupted, match="during the backup; nothing was applied"):
            api.upgrade(resolved, backup=project.root / "c.dump", cancel=token)
    finally:
        timer.cancel()
        blocker.close()
    assert not list(project.root.glob("c.dump*"))
    assert project.version() == ["001"]


def test_the_printed_restore_command_puts_the_database_back_exactly(project: Project) -> None:
    """Objects made after the backup go too: the next `up` applies the migration again."""
    import shlex
    from urllib.parse import urlsplit

    project.write("001_initial_schema.sql", "-- migrate:up\nCREATE TABLE tb_user (id int, "
                  "name text);\nINSERT INTO tb_user VALUES (1, 'ada');\n")
    project.cli("up")
    before = contents(project.database_url)
    project.write("002_add_tags.sql", "-- migrate:up\nCREATE TABLE tb_tag (id int);\n")
    result = project.cli("up", "--backup", "before.dump")
    assert result.exit_code == 0, result.output
    assert "tb_tag" in project.tables()
    line = next(x for x in result.output.splitlines() if "restore with:" in x)
    argv = shlex.split(line.split("restore with:", 1)[1])
    assert project.database_url.split("@")[0].rsplit(":", 1)[1] not in line  # no password
    password = urlsplit(project.database_url).password or ""
    subprocess.run(argv, cwd=project.root, env={**os.environ, "PGPASSWORD": password},
                   check=True, capture_output=True)
    assert contents(project.database_url) == before and "tb_tag" not in project.tables()
    again = project.cli("up")
    assert again.exit_code == 0, again.output
    assert project.version() == ["002"]


