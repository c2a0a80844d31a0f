"""What several test files share: paths, migration texts, small helpers.

The user's spec examples (SPEC_*) are applied by tests/db/test_spec_examples.py and linted by
tests/unit/test_lint.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import psycopg2
import pytest

from fraiseql_alembic.alembic_bridge.plugin import PLUGINS_SINCE, alembic_version
from fraiseql_alembic.engine.locking import LOCK_KEY

if TYPE_CHECKING:
    from conftest import Project

#: The repository root.
REPO = Path(__file__).resolve().parent.parent


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` (not a package), loaded as the module ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module

#: Where the installed `fraiseql` and `alembic` commands are.
BIN = Path(sys.executable).parent
#: Alembic 1.18+ loads our plugin itself (entry points); 1.16 and 1.17 only through our
#: shipped environment, so the `alembic` command in a project with its own env.py (or a
#: script_location given as a path) needs 1.18+.
ALEMBIC_LOADS_PLUGINS = alembic_version() >= PLUGINS_SINCE
needs_plugin_entry_points = pytest.mark.skipif(
    not ALEMBIC_LOADS_PLUGINS, reason="Alembic < 1.18 loads no plugin entry points")

#: A reversible migration creating table ``{t}``.
UP_DOWN = "-- migrate:up\nCREATE TABLE {t} (id int);\n-- migrate:down\nDROP TABLE {t};\n"


#: A file run in segments (two CREATE INDEX CONCURRENTLY among transactional statements);
#: its unique index fails on the duplicates of line 4.
MIXED = """-- Migration 002: mixed
-- migrate:up
CREATE TABLE m1 (a int);
INSERT INTO m1 VALUES (1), (1);
CREATE INDEX CONCURRENTLY idx_m1_a ON m1 (a);
CREATE TABLE m2 (a int);
INSERT INTO m2 VALUES (1);
CREATE UNIQUE INDEX CONCURRENTLY idx_m1_unique ON m1 (a);
CREATE TABLE m3 (a int);
-- migrate:down
DROP TABLE m3;
DROP TABLE m2;
DROP TABLE m1;
"""


def fetch_one(url: str, query: str) -> object:
    """The first column of the one row QUERY returns."""
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
        assert row is not None
        return row[0]


def execute(url: str, sql: str) -> None:
    """Run ``sql`` on ``url`` and commit."""
    with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(sql)


def alembic_in_process(root: Path, url: str, *steps: tuple[str, str]) -> None:
    """``alembic upgrade REV`` / ``alembic downgrade REV`` for each (verb, REV) in order,
    in-process (``alembic.command``), as alembic.ini.example sets it up in ``root`` (our
    environment, ``root/migrations``) on ``url``, without its logging section. For tests
    whose subject is what runs, not the command: tests/process/test_alembic_cli types it."""
    from alembic import command  # lazy: Alembic loads only in the tests that run it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "fraiseql_alembic:alembic_env")
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(root / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for verb, revision in steps:
            (command.upgrade if verb == "upgrade" else command.downgrade)(config, revision)


@contextmanager
def blocker(project: Project, sql: str) -> Iterator[psycopg2.extensions.connection]:
    """A session holding ``sql``'s locks in an open transaction (commit it to release)."""
    connection = psycopg2.connect(project.database_url, application_name="blocker")
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
        yield connection
    finally:
        connection.close()


@contextmanager
def login_role(
    project: Project, role: str, password: str,
) -> Iterator[tuple[str, psycopg2.extensions.connection]]:
    """A new login role that may only connect to the project's database: its URL, and an
    autocommit admin session to grant it more; dropped afterwards with what it owns."""
    dbname = project.database_url.rsplit("/", 1)[1]
    admin = psycopg2.connect(project.database_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")
        cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        cursor.execute(f'GRANT CONNECT ON DATABASE "{dbname}" TO {role}')
    try:
        yield re.sub(r"://[^@]+@", f"://{role}:{password}@", project.database_url), admin
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'REVOKE ALL ON DATABASE "{dbname}" FROM {role}')
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")
        admin.close()


def frozen(pid: int, timeout: float = 10.0) -> None:
    """SIGSTOP ``pid`` and wait until the kernel shows it stopped (state ``T`` in
    /proc/PID/stat): the signal is delivered asynchronously, and on a loaded machine a
    client whose statement is released at once could read the result before stopping."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not stop within {timeout} s")
        time.sleep(0.01)


def hold_lock(project: Project) -> psycopg2.extensions.connection:
    """Another deploy's session holding the migration lock (close it to release)."""
    connection = psycopg2.connect(project.database_url, application_name="someone else's deploy")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    return connection

def on_path(project: Project, path: str, first: str, text: str) -> None:
    """Write the first migration; on the Alembic path a `.py` revision comes before it
    (a folder holding one is run by Alembic)."""
    if path == "alembic":
        project.write("000_py.py", 'revision = "000"\ndown_revision = None\n'
                      "def upgrade():\n    pass\n\ndef downgrade():\n    pass\n")
        text = "-- revises: 000\n" + text
    project.write(first, text)


#: PostgreSQL's words for a role without CREATE on the schema, as the unified line shows.
PERMISSION_RE = re.compile(
    r"^Error: Permission denied: permission denied for schema (\w+) \[SQLSTATE 42501\]\. "
    r"The migrating role needs CREATE and USAGE on .+ \(e\.g\. GRANT CREATE, USAGE ON SCHEMA "
    r"\1 TO <role>\), or set history_schema to a schema it may write\. Nothing was applied$"
)

#: A hex Alembic revision id merged next to numbered files.
FEATURE = "abc123def456"

EXTENSION = 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\n\n'

SPEC_001 = EXTENSION + """-- Migration 001: Initial schema

-- Users table
CREATE TABLE tb_user (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    email TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Posts table
CREATE TABLE tb_post (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    author_id UUID NOT NULL REFERENCES tb_user(id),
    published BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
"""

SPEC_005 = """-- Migration 005: Add email verification

ALTER TABLE tb_user ADD COLUMN email_verified BOOLEAN DEFAULT FALSE;
CREATE INDEX idx_user_email_verified ON tb_user(email_verified);
"""

SPEC_010 = """-- Migration 010: Add post categories

CREATE TABLE tb_category (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    name TEXT NOT NULL UNIQUE
);

-- Rollback:
-- DROP TABLE tb_category;
"""

SPEC_015 = """-- Migration 015: Make email required

-- First, ensure all existing users have emails
UPDATE tb_user SET email = username || '@example.com'
WHERE email IS NULL;

-- Now make it NOT NULL
ALTER TABLE tb_user ALTER COLUMN email SET NOT NULL;
"""

SPEC_020 = """-- Migration 020: Add comments with CQRS pattern

-- ============================================================================
-- COMMAND SIDE: Normalized table for writes
-- ============================================================================

CREATE TABLE tb_comment (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    post_id UUID NOT NULL REFERENCES tb_post(id) ON DELETE CASCADE,
    author_id UUID NOT NULL REFERENCES tb_user(id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_comment_post ON tb_comment(post_id);
CREATE INDEX idx_comment_author ON tb_comment(author_id);

-- ============================================================================
-- QUERY SIDE: Denormalized table for reads
-- ============================================================================

CREATE TABLE tv_comment (
    id UUID PRIMARY KEY,
    data JSONB NOT NULL,  -- Contains comment + author info
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- GIN index for fast JSONB queries
CREATE INDEX idx_tv_comment_data ON tv_comment USING GIN(data);

-- ============================================================================
-- SYNC TRACKING (optional but recommended)
-- ============================================================================

-- Track when each entity was last synced
CREATE TABLE sync_history (
    entity_type TEXT NOT NULL,
    entity_id UUID NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (entity_type, entity_id)
);

CREATE INDEX idx_sync_history_synced ON sync_history(synced_at DESC);
"""

SPEC_030 = """-- Migration 030: Update post status

BEGIN;

ALTER TABLE tb_post ADD COLUMN status TEXT DEFAULT 'draft';
UPDATE tb_post SET status = CASE
    WHEN published THEN 'published'
    ELSE 'draft'
END;
ALTER TABLE tb_post DROP COLUMN published;

COMMIT;
"""

SPEC_035_CONCURRENTLY = """-- Migration 035: Index posts by date

-- ✅ Better: Create index concurrently (doesn't lock)
CREATE INDEX CONCURRENTLY idx_post_created ON tb_post(created_at);
"""

SPEC_040 = """-- Migration 040: Multiple operations

ALTER TABLE tb_user ADD COLUMN phone TEXT;  -- ✓ Applied
CREATE INDEX idx_user_phone ON tb_user(phone);  -- ✓ Applied
ALTER TABLE tb_post ADD COLUMN invalid_column INVALID_TYPE;  -- ✗ Failed
"""

SPEC_050 = """-- Migration 050: Migrate user preferences

-- Create new table
CREATE TABLE tb_user_preferences (
    user_id UUID PRIMARY KEY REFERENCES tb_user(id),
    preferences JSONB NOT NULL DEFAULT '{}'
);

-- Migrate data in batches (for large datasets)
DO $$
DECLARE
    batch_size INTEGER := 1000;
    offset_val INTEGER := 0;
    rows_affected INTEGER;
BEGIN
    LOOP
        INSERT INTO tb_user_preferences (user_id, preferences)
        SELECT id, jsonb_build_object('theme', 'light', 'language', 'en')
        FROM tb_user
        ORDER BY id
        LIMIT batch_size OFFSET offset_val;

        GET DIAGNOSTICS rows_affected = ROW_COUNT;
        EXIT WHEN rows_affected = 0;

        offset_val := offset_val + batch_size;
        RAISE NOTICE 'Migrated % users', offset_val;
    END LOOP;
END $$;
"""

SPEC_060 = """-- Migration 060: Add comments with CASCADE

CREATE TABLE tb_comment (
    id UUID PRIMARY KEY,
    post_id UUID NOT NULL REFERENCES tb_post(id) ON DELETE CASCADE,
    -- ☝️ When post deleted, comments are automatically deleted
    author_id UUID NOT NULL REFERENCES tb_user(id) ON DELETE SET NULL
    -- ☝️ When user deleted, comments remain but author_id becomes NULL
);
"""

SPEC_PROFILE = """-- Migration 003: Add user profiles
--
-- Author: Your Name
-- Date: 2024-01-15
--
-- This migration adds support for user profiles with bio and avatar.

-- Create table
CREATE TABLE tb_user_profile (
    user_id UUID PRIMARY KEY REFERENCES tb_user(id) ON DELETE CASCADE,
    bio TEXT,
    avatar_url TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Add index
CREATE INDEX idx_user_profile_user ON tb_user_profile(user_id);

-- Add initial data (if needed)
INSERT INTO tb_user_profile (user_id, bio)
SELECT id, 'Default bio'
FROM tb_user
WHERE created_at < NOW() - INTERVAL '1 day';
"""


def git(root: Path, *args: str) -> str:
    """Run git in ``root``; its output (a failure raises)."""
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


def init_repo(root: Path) -> None:
    """A git repository in ``root`` on branch main, with a committer configured."""
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test")
    git(root, "config", "user.email", "test@example.com")


#: SQLAlchemy models of one table, tb_user (id identity, email unique), for autogenerate
#: and pytest-alembic tests; tests add classes or columns after it.
USER_MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "tb_user"
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(sa.Text, unique=True)
"""


def wait_until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@contextmanager
def meanwhile(when: Callable[[], object], then: Callable[[], None]) -> Iterator[None]:
    """While the block runs (a command run in-process, in the main thread, where its
    signal handling lives), a thread waits until ``when()`` holds and calls ``then()``:
    what a test did from outside while a process ran.  The block's end ends the wait; a
    failure in the thread, or a ``when`` never met while the block ran, is raised after
    the block."""
    ended = threading.Event()
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            wait_until(lambda: ended.is_set() or when())
            assert not ended.is_set(), "the run ended before the condition was met"
            then()
        except BaseException as error:  # raised in the test's thread below
            errors.append(error)

    thread = threading.Thread(target=watch, name="meanwhile", daemon=True)
    thread.start()
    try:
        yield
    finally:
        ended.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the watching thread did not end"
    if errors:
        raise errors[0]
