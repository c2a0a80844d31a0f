#!/usr/bin/env python3
"""Benchmark ``fraiseql migrate`` against psql, plain Alembic and the plain ``alembic`` CLI.

For each size N it builds a synthetic project of N migrations (each a ``CREATE TABLE``
plus a ``CREATE INDEX``, with a down section) in three shapes: numbered ``.sql`` files
(ours), the same SQL as one ``psql -f`` script with equivalent version bookkeeping (the
floor), and the same migrations as plain Alembic ``.py`` revisions (``op.execute``).
Every case runs as a subprocess, timed by wall clock; peak memory is the child's
``ru_maxrss`` from ``os.wait4``.  Databases are created outside the timed region, one
fresh database per measured run of every case that writes.

    python bench/run.py [--sizes 100,1000,10000] [--runs 3] [--runs-large 1]
                        [--out bench/results.md] [--json bench/results.json]
                        [--database-url URL] [--timeout 900] [--workdir DIR --keep]

Without ``--database-url`` it starts (and afterwards removes) a throwaway PostgreSQL
with ``fraiseql_alembic.devdb``.  See bench/README.md for what each case means.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's console scripts (fraiseql, alembic)
DEFAULT_SIZES = (100, 1000, 10000)
TARGET_SIZE = 1000  # the targets are stated at 1,000 migrations
LARGE_SIZE = 10000  # linear growth and memory are checked here
MEMORY_LIMIT_MB = 150.0
LINEAR_SLACK = 1.2  # t(10k) <= 10 x t(1k) x slack counts as linear growth

# ---------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    name: str
    reference: str | None
    description: str


CASES: tuple[Case, ...] = (
    Case("python_pass", None, "`python -c pass` with the venv's interpreter: process start-up"),
    Case("fraiseql_version", "python_pass", "`fraiseql --version`"),
    Case("fraiseql_help", "python_pass", "`fraiseql migrate --help`"),
    Case("psql_floor", None,
         "the floor: one `psql -f` of the same SQL plus equivalent bookkeeping "
         "(alembic_version and fraiseql_migrations rows), each migration in its own "
         "transaction, on an empty database"),
    Case("alembic_py_upgrade", "psql_floor",
         "plain Alembic, the same migrations as `.py` revisions (`op.execute`), "
         "`alembic upgrade head` on an empty database (transaction_per_migration)"),
    Case("alembic_py_heads", None, "plain Alembic `.py` chain: `alembic heads`"),
    Case("alembic_py_current", None,
         "plain Alembic `.py` chain: `alembic current` on a database at head"),
    Case("fraiseql_up_empty", "psql_floor", "`fraiseql migrate up` on an empty database"),
    Case("fraiseql_up_noop", "alembic_py_current",
         "`fraiseql migrate up` with nothing pending (database at head)"),
    Case("fraiseql_status", "alembic_py_current",
         "`fraiseql migrate status` on a database at head"),
    Case("fraiseql_down_all", "fraiseql_up_empty",
         "`fraiseql migrate down --steps N --force` from head to empty"),
    Case("fraiseql_up_dry_run", "alembic_py_current",
         "`fraiseql migrate up --dry-run` on an empty database (prints all N migrations' SQL)"),
    Case("alembic_sql_heads", "alembic_py_heads",
         "plain `alembic heads` on our SQL folder (alembic.ini from alembic.ini.example)"),
    Case("alembic_sql_current", "alembic_py_current",
         "plain `alembic current` on our SQL folder, database at head"),
    Case("alembic_sql_upgrade", "alembic_py_upgrade",
         "plain `alembic upgrade head` on our SQL folder, empty database"),
)
CASE_NAMES: tuple[str, ...] = tuple(case.name for case in CASES)
_CASE_BY_NAME = {case.name: case for case in CASES}
# Cases whose peak memory counts for the 150 MB target at 10,000 migrations.
MEMORY_CASES = tuple(
    name for name in CASE_NAMES if name.startswith(("fraiseql_up", "fraiseql_status",
                                                    "fraiseql_down", "alembic_sql"))
)


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "ratio", "linear" or "memory"
    case: str
    reference: str | None
    limit: float


TARGETS: tuple[Target, ...] = (
    Target("`up` from empty <= 1.2x the psql floor", "ratio",
           "fraiseql_up_empty", "psql_floor", 1.2),
    Target("`up` from empty <= 0.6x plain Alembic on .py", "ratio",
           "fraiseql_up_empty", "alembic_py_upgrade", 0.6),
    Target("`status` <= 0.5x plain `alembic current` on .py", "ratio",
           "fraiseql_status", "alembic_py_current", 0.5),
    Target("`up` nothing pending <= 0.5x plain `alembic current` on .py", "ratio",
           "fraiseql_up_noop", "alembic_py_current", 0.5),
    Target("`status` grows linearly (t(10k) <= 10x t(1k), 20% slack)", "linear",
           "fraiseql_status", None, 10 * LINEAR_SLACK),
    Target("`up` nothing pending grows linearly (t(10k) <= 10x t(1k), 20% slack)", "linear",
           "fraiseql_up_noop", None, 10 * LINEAR_SLACK),
    Target("`fraiseql migrate --help` <= 5x `python -c pass`", "ratio",
           "fraiseql_help", "python_pass", 5.0),
    Target("`fraiseql --version` <= 5x `python -c pass`", "ratio",
           "fraiseql_version", "python_pass", 5.0),
    Target(f"peak memory at 10,000 migrations < {MEMORY_LIMIT_MB:.0f} MB (fraiseql and "
           "alembic-on-SQL cases)", "memory", "*", None, MEMORY_LIMIT_MB),
)

# ---------------------------------------------------------------------------
# Measuring one subprocess


@dataclass
class Sample:
    status: str  # "ok", "error", "timeout" or "skipped"
    wall_s: float | None = None
    cpu_s: float | None = None
    maxrss_mb: float | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


GNU_TIME = "/usr/bin/time"


def gnu_time_available() -> bool:
    """GNU time (``-f %M -o FILE``), used for peak RSS when present."""
    if not os.access(GNU_TIME, os.X_OK):
        return False
    try:
        probe = subprocess.run([GNU_TIME, "--version"], capture_output=True, text=True,
                               timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return "GNU" in probe.stdout + probe.stderr


def measure(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    log_prefix: Path,
    use_gnu_time: bool,
) -> Sample:
    """Run ``argv`` once: wall time, user+sys CPU and peak RSS of that command alone.

    CPU and, without GNU time, peak RSS come from ``os.wait4`` on the child.  Linux folds
    the spawning process's resident set into a child's ``ru_maxrss`` (it counts the
    address space the child had before ``exec``), so a child of this Python process never
    reports less than this process's RSS.  When GNU time is installed the command runs
    under it instead: ``time`` is a small C program, and the ``%M`` it reports is the
    command's own peak within about a megabyte.  The child runs in its own session so a
    timeout kills it and anything it started.
    """
    out_path = log_prefix.with_suffix(".out")
    err_path = log_prefix.with_suffix(".err")
    rss_path = log_prefix.with_suffix(".rss")
    command = list(argv)
    if use_gnu_time:
        command = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *command]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True,
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, wait_status, usage = os.wait4(process.pid, 0)
        except BaseException:
            kill()
            process.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    cpu = usage.ru_utime + usage.ru_stime
    rss_mb: float | None = usage.ru_maxrss / 1024.0  # kilobytes on Linux
    if use_gnu_time:
        rss_mb = _gnu_time_rss(rss_path)
    if timed_out.is_set():
        return Sample("timeout", None, cpu, rss_mb, f"killed after {timeout:g} s")
    if process.returncode != 0:
        tail = _tail(err_path) or _tail(out_path)
        return Sample("error", wall, cpu, rss_mb, f"exit {process.returncode}: {tail}")
    return Sample("ok", wall, cpu, rss_mb)


def _gnu_time_rss(path: Path) -> float | None:
    try:
        last = path.read_text(encoding="utf-8").strip().splitlines()[-1]
        return int(last) / 1024.0
    except (OSError, IndexError, ValueError):
        return None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])[:400]


# ---------------------------------------------------------------------------
# Databases


class Databases(Protocol):
    def fresh(self, label: str) -> tuple[str, Callable[[], None]]:
        """A URL of an empty database and the function that disposes of it."""
        ...

    def server_version(self) -> str: ...


def _psycopg2() -> Any:
    import psycopg2  # the venv has it (a dependency of the package)

    return psycopg2


def _with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


class ServerDatabases:
    """``CREATE DATABASE`` per run on a server whose URL we were given (or started).

    ``settle`` seconds: before handing out a database, checkpoint, flush the OS's
    dirty pages and wait, so that one case's writes and the previous database's
    dropped files are not paid for by the next case (on a small VM that alone moved
    the floor between 2.6 s and 7.1 s at 1,000 migrations).
    """

    def __init__(self, admin_url: str, settle: float = 0.0) -> None:
        self.admin_url = admin_url
        self.settle = settle

    def admin(self, statement: str) -> Any:
        psycopg2 = _psycopg2()
        connection = psycopg2.connect(self.admin_url)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchone() if cursor.description else None
        finally:
            connection.close()

    def server_version(self) -> str:
        row = self.admin("SHOW server_version")
        return str(row[0]) if row else "?"

    def fresh(self, label: str) -> tuple[str, Callable[[], None]]:
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"[:63]
        self.admin(f'CREATE DATABASE "{name}"')
        if self.settle > 0:
            self.quiesce()

        def drop() -> None:
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return _with_dbname(self.admin_url, name), drop

    def quiesce(self) -> None:
        with contextlib.suppress(Exception):  # CHECKPOINT needs superuser or pg_checkpoint
            self.admin("CHECKPOINT")
        os.sync()
        time.sleep(self.settle)

    def can_create(self) -> bool:
        try:
            _, drop = self.fresh("probe")
        except Exception:
            return False
        drop()
        return True


class ResetDatabase:
    """Fallback when the URL's role cannot create databases: empty its ``public`` schema."""

    def __init__(self, url: str, settle: float = 0.0) -> None:
        self.url = url
        self.settle = settle

    def server_version(self) -> str:
        return ServerDatabases(self.url).server_version()

    def fresh(self, label: str) -> tuple[str, Callable[[], None]]:
        server = ServerDatabases(self.url, self.settle)
        server.admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        if self.settle > 0:
            server.quiesce()
        return self.url, lambda: None


@contextlib.contextmanager
def fresh_database(databases: Databases, label: str) -> Iterator[str]:
    url, dispose = databases.fresh(label)
    try:
        yield url
    finally:
        dispose()


def alembic_heads_in(url: str) -> list[str] | None:
    """Rows of ``alembic_version`` (None when the table does not exist)."""
    psycopg2 = _psycopg2()
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
            row = cursor.fetchone()
            if not row or not row[0]:
                return None
            cursor.execute("SELECT version_num FROM alembic_version ORDER BY 1")
            return [str(item[0]) for item in cursor.fetchall()]
    finally:
        connection.close()


# ---------------------------------------------------------------------------
# The synthetic project


@dataclass(frozen=True)
class Project:
    n: int
    root: Path  # holds migrations/, alembic.ini, floor.sql and pyalembic/
    versions: tuple[str, ...]

    @property
    def head(self) -> str:
        return self.versions[-1]

    @property
    def py_dir(self) -> Path:
        return self.root / "pyalembic"

    @property
    def floor_sql(self) -> Path:
        return self.root / "floor.sql"


def _statements(version: str) -> tuple[list[str], list[str]]:
    table = f"bench_t{version}"
    up = [
        f"CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, "
        "created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        f"CREATE INDEX {table}_name_idx ON {table} (name)",
    ]
    down = [f"DROP TABLE {table}"]
    return up, down


_HISTORY_DDL = """CREATE TABLE IF NOT EXISTS "public".fraiseql_migrations (
    id           BIGSERIAL PRIMARY KEY,
    version      TEXT NOT NULL,
    name         TEXT,
    filename     TEXT,
    checksum     TEXT,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_ms INTEGER,
    applied_by   TEXT DEFAULT current_user,
    action       TEXT NOT NULL DEFAULT 'manual'
);
"""

_PY_ENV = '''"""Minimal env.py of the plain-Alembic reference project (bench/run.py)."""

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

# SQLAlchemy 2.1 maps postgresql:// to psycopg 3; the venv has psycopg2, as fraiseql uses.
url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
'''

_PY_INI = """[alembic]
script_location = %(here)s
path_separator = os
"""

_PY_REVISION = '''"""Create bench_t{version}."""

from alembic import op

revision = "{version}"
down_revision = {parent!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{up}


def downgrade() -> None:
{down}
'''


def build_project(root: Path, n: int) -> Project:
    """Write the three shapes of the same N migrations under ``root``."""
    width = max(3, len(str(n)))
    versions = tuple(str(i).zfill(width) for i in range(1, n + 1))
    migrations = root / "migrations"
    py_versions = root / "pyalembic" / "versions"
    migrations.mkdir(parents=True)
    py_versions.mkdir(parents=True)
    shutil.copy(REPO / "alembic.ini.example", root / "alembic.ini")
    (root / "pyalembic" / "alembic.ini").write_text(_PY_INI, encoding="utf-8")
    (root / "pyalembic" / "env.py").write_text(_PY_ENV, encoding="utf-8")

    floor = ["\\set ON_ERROR_STOP on\n",
             "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
             "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));\n",
             _HISTORY_DDL]
    parent: str | None = None
    for version in versions:
        up, down = _statements(version)
        slug = f"create_bench_t{version}"
        filename = f"{version}_{slug}.sql"
        text = (f"-- Migration {version}: Create bench_t{version}\n-- migrate:up\n"
                + "".join(f"{sql};\n" for sql in up)
                + "\n-- migrate:down\n"
                + "".join(f"{sql};\n" for sql in down))
        (migrations / filename).write_text(text, encoding="utf-8")
        checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()

        bookkeeping = (
            f"INSERT INTO alembic_version (version_num) VALUES ('{version}');\n"
            if parent is None
            else f"UPDATE alembic_version SET version_num='{version}' "
                 f"WHERE alembic_version.version_num = '{parent}';\n"
        )
        floor.append(
            "BEGIN;\n"
            + "".join(f"{sql};\n" for sql in up)
            + bookkeeping
            + 'INSERT INTO "public".fraiseql_migrations (version, name, filename, checksum, '
            f"execution_ms, applied_by, action) VALUES ('{version}', '{slug}', "
            f"'{filename}', '{checksum}', 0, 'bench as ' || current_user, 'applied');\n"
            "COMMIT;\n"
        )

        (py_versions / f"{version}_{slug}.py").write_text(
            _PY_REVISION.format(
                version=version,
                parent=parent,
                up="\n".join(f"    op.execute({sql!r})" for sql in up),
                down="\n".join(f"    op.execute({sql!r})" for sql in down),
            ),
            encoding="utf-8",
        )
        parent = version
    root.joinpath("floor.sql").write_text("".join(floor), encoding="utf-8")
    # Byte-compile the .py revisions now, as any second run of a real project would find them.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", str(py_versions)],
        check=True, stdout=subprocess.DEVNULL, env=child_environment(),
    )
    return Project(n, root, versions)


# ---------------------------------------------------------------------------
# Running every case for one size


@dataclass
class Runner:
    databases: Databases
    timeout: float
    logs: Path
    use_gnu_time: bool
    results: dict[tuple[str, int], list[Sample]] = field(default_factory=dict)
    verbose: bool = True

    def record(self, case: str, n: int, run: int, sample: Sample) -> Sample:
        self.results.setdefault((case, n), []).append(sample)
        if self.verbose:
            shown = (f"{sample.wall_s:8.3f} s" if sample.wall_s is not None else "       - ")
            memory = f"{sample.maxrss_mb:7.1f} MB" if sample.maxrss_mb is not None else ""
            note = "" if sample.ok else f"  {sample.status.upper()} {sample.detail}"
            print(f"  N={n:<6} run {run + 1}  {case:<22}{shown} {memory}{note}",
                  file=sys.stderr, flush=True)
        return sample

    def skip(self, cases: Sequence[str], n: int, run: int, why: str) -> None:
        for case in cases:
            self.record(case, n, run, Sample("skipped", detail=why))

    def time(
        self,
        case: str,
        project: Project,
        run: int,
        argv: Sequence[str],
        *,
        cwd: Path,
        url: str | None = None,
        check: Callable[[str], str | None] | None = None,
    ) -> Sample:
        env = child_environment()
        if url is not None:
            env["DATABASE_URL"] = url
        prefix = self.logs / f"{project.n}_{case}_{run + 1}"
        sample = measure(argv, cwd=cwd, env=env, timeout=self.timeout, log_prefix=prefix,
                         use_gnu_time=self.use_gnu_time)
        if sample.ok and check is not None:
            stdout = prefix.with_suffix(".out").read_text(encoding="utf-8", errors="replace")
            problem = check(stdout)
            if problem:
                sample = Sample("error", sample.wall_s, sample.cpu_s, sample.maxrss_mb, problem)
        return self.record(case, project.n, run, sample)


def child_environment() -> dict[str, str]:
    """Our environment without DATABASE_URL and with bytecode caching on.

    An installed package has its ``.pyc`` files; a checkout run with
    PYTHONDONTWRITEBYTECODE=1 would recompile the package in every measured process.
    """
    env = dict(os.environ)
    for name in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    return env


def _contains(text: str) -> Callable[[str], str | None]:
    def check(stdout: str) -> str | None:
        return None if text in stdout else f"output lacks {text!r}"

    return check


def _at(project: Project, url: str, expected: list[str] | None, after: str) -> str | None:
    found = alembic_heads_in(url)
    if found == expected or (expected == [] and found is None):
        return None
    return f"after {after} alembic_version holds {found}, expected {expected}"


def run_size(runner: Runner, project: Project, runs: int) -> None:
    """Every case ``runs`` times; cases that depend on a failed one are skipped."""
    python = sys.executable
    fraiseql = _script("fraiseql")
    alembic = _script("alembic")
    root, py_dir, n = project.root, project.py_dir, project.n
    head = [project.head]

    def verified(sample: Sample, url: str, expected: list[str] | None, after: str) -> bool:
        if not sample.ok:
            return False
        problem = _at(project, url, expected, after)
        if problem:  # correct the recorded sample: the timing is of a wrong result
            sample.status, sample.detail = "error", problem
            print(f"    {problem}", file=sys.stderr)
            return False
        return True

    # Untimed warm-up: page cache, .pyc files, entry points.
    for argv, cwd in (([fraiseql, "--version"], root), ([alembic, "heads"], root),
                      ([alembic, "heads"], py_dir)):
        subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=child_environment(), timeout=runner.timeout, check=False)

    for run in range(runs):
        # No database needed.
        runner.time("python_pass", project, run, [python, "-c", "pass"], cwd=root)
        runner.time("fraiseql_version", project, run, [fraiseql, "--version"], cwd=root,
                    check=_contains("version"))
        runner.time("fraiseql_help", project, run, [fraiseql, "migrate", "--help"], cwd=root,
                    check=_contains("Usage"))
        runner.time("alembic_py_heads", project, run, [alembic, "heads"], cwd=py_dir,
                    check=_contains(f"{project.head} (head)"))
        runner.time("alembic_sql_heads", project, run, [alembic, "heads"], cwd=root,
                    check=_contains(f"{project.head} (head)"))

        # The floor.
        with fresh_database(runner.databases, f"floor_{n}") as url:
            sample = runner.time(
                "psql_floor", project, run,
                ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null",
                 "-d", url, "-f", str(project.floor_sql)],
                cwd=root,
            )
            verified(sample, url, head, "psql_floor")

        # Plain Alembic on .py revisions.
        with fresh_database(runner.databases, f"py_{n}") as url:
            sample = runner.time("alembic_py_upgrade", project, run,
                                 [alembic, "upgrade", "head"], cwd=py_dir, url=url)
            if verified(sample, url, head, "alembic_py_upgrade"):
                runner.time("alembic_py_current", project, run, [alembic, "current"],
                            cwd=py_dir, url=url, check=_contains(f"{project.head} (head)"))
            else:
                runner.skip(["alembic_py_current"], n, run, "alembic_py_upgrade failed")

        # fraiseql from empty to head, the read-only verbs at head, then all the way down.
        with fresh_database(runner.databases, f"fq_{n}") as url:
            sample = runner.time("fraiseql_up_empty", project, run, [fraiseql, "migrate", "up"],
                                 cwd=root, url=url,
                                 check=_contains("Migration completed successfully"))
            at_head = ["fraiseql_up_noop", "fraiseql_status", "alembic_sql_current",
                       "fraiseql_down_all"]
            if verified(sample, url, head, "fraiseql_up_empty"):
                runner.time("fraiseql_up_noop", project, run, [fraiseql, "migrate", "up"],
                            cwd=root, url=url, check=_contains("Already up to date"))
                runner.time("fraiseql_status", project, run, [fraiseql, "migrate", "status"],
                            cwd=root, url=url, check=_status_check(project))
                runner.time("alembic_sql_current", project, run, [alembic, "current"],
                            cwd=root, url=url, check=_contains(f"{project.head} (head)"))
                sample = runner.time(
                    "fraiseql_down_all", project, run,
                    [fraiseql, "migrate", "down", "--steps", str(n), "--force"],
                    cwd=root, url=url, check=_contains("Rollback completed successfully"),
                )
                verified(sample, url, [], "fraiseql_down_all")
            else:
                runner.skip(at_head, n, run, "fraiseql_up_empty failed")

        # Dry run on an empty database, then the plain alembic CLI applies our SQL chain.
        with fresh_database(runner.databases, f"sql_{n}") as url:
            sample = runner.time(
                "fraiseql_up_dry_run", project, run, [fraiseql, "migrate", "up", "--dry-run"],
                cwd=root, url=url, check=_contains(f"Dry run: would apply {n} migration"),
            )
            verified(sample, url, [], "fraiseql_up_dry_run")
            sample = runner.time("alembic_sql_upgrade", project, run,
                                 [alembic, "upgrade", "head"], cwd=root, url=url)
            verified(sample, url, head, "alembic_sql_upgrade")


def _status_check(project: Project) -> Callable[[str], str | None]:
    def check(stdout: str) -> str | None:
        applied = sum(1 for line in stdout.splitlines() if line.startswith("  ✓ "))
        if applied != project.n:
            return f"status shows {applied} applied migrations, expected {project.n}"
        return None

    return check


def _script(name: str) -> str:
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench: cannot find the `{name}` command next to {sys.executable} "
                         "or on PATH; install the package (pip install -e .)")
    return found


# ---------------------------------------------------------------------------
# Summaries, targets, reports


@dataclass(frozen=True)
class Summary:
    case: str
    n: int
    median_s: float | None
    cpu_s: float | None
    peak_mb: float | None
    reference: str | None
    ratio: float | None
    ok_runs: int
    runs: int
    statuses: tuple[str, ...]
    details: tuple[str, ...]


def summarize(results: dict[tuple[str, int], list[Sample]], sizes: Sequence[int]) -> list[Summary]:
    medians: dict[tuple[str, int], float | None] = {}
    for key, samples in results.items():
        walls = [s.wall_s for s in samples if s.ok and s.wall_s is not None]
        medians[key] = statistics.median(walls) if walls else None
    rows: list[Summary] = []
    for n in sizes:
        for case in CASES:
            samples = results.get((case.name, n), [])
            good = [s for s in samples if s.ok]
            median = medians.get((case.name, n))
            ref = medians.get((case.reference, n)) if case.reference else None
            ratio = median / ref if median is not None and ref else None
            rows.append(Summary(
                case=case.name,
                n=n,
                median_s=median,
                cpu_s=statistics.median([s.cpu_s for s in good if s.cpu_s is not None])
                if good else None,
                peak_mb=max((s.maxrss_mb for s in good if s.maxrss_mb is not None),
                            default=None),
                reference=case.reference,
                ratio=ratio,
                ok_runs=len(good),
                runs=len(samples),
                statuses=tuple(s.status for s in samples),
                details=tuple(sorted({s.detail for s in samples if s.detail})),
            ))
    return rows


@dataclass(frozen=True)
class TargetResult:
    target: str
    n: int | None
    value: float | None
    limit: float
    result: str  # PASS, FAIL or N/A
    note: str


def evaluate(summaries: Sequence[Summary], sizes: Sequence[int]) -> list[TargetResult]:
    table = {(s.case, s.n): s for s in summaries}

    def median(case: str, n: int) -> float | None:
        row = table.get((case, n))
        return row.median_s if row else None

    ratio_n = TARGET_SIZE if TARGET_SIZE in sizes else (max(sizes) if sizes else None)
    out: list[TargetResult] = []
    for target in TARGETS:
        if target.kind == "ratio":
            assert target.reference is not None
            if ratio_n is None:
                out.append(TargetResult(target.name, None, None, target.limit, "N/A", "no sizes"))
                continue
            top, bottom = median(target.case, ratio_n), median(target.reference, ratio_n)
            value = top / bottom if top is not None and bottom else None
            note = (f"{target.case} {top:.3f} s / {target.reference} {bottom:.3f} s"
                    if value is not None else "a case did not complete")
            if ratio_n != TARGET_SIZE:
                note += f" (measured at N={ratio_n}, the issue says N={TARGET_SIZE})"
            out.append(_judge(target, ratio_n, value, note))
        elif target.kind == "linear":
            if TARGET_SIZE not in sizes or LARGE_SIZE not in sizes:
                out.append(TargetResult(target.name, LARGE_SIZE, None, target.limit, "N/A",
                                        f"needs sizes {TARGET_SIZE} and {LARGE_SIZE}"))
                continue
            small, large = median(target.case, TARGET_SIZE), median(target.case, LARGE_SIZE)
            value = large / small if small and large is not None else None
            note = "a case did not complete"
            if value is not None and small is not None and large is not None:
                note = (f"{large:.3f} s at {LARGE_SIZE} / {small:.3f} s at {TARGET_SIZE}; "
                        f"marginal {1000 * (large - small) / (LARGE_SIZE - TARGET_SIZE):.3f} "
                        "ms/migration")
                lower = min((s for s in sizes if s < TARGET_SIZE), default=None)
                base = median(target.case, lower) if lower is not None else None
                if lower is not None and base is not None:
                    note += (f" vs {1000 * (small - base) / (TARGET_SIZE - lower):.3f} ms "
                             f"between {lower} and {TARGET_SIZE}")
            out.append(_judge(target, LARGE_SIZE, value, note))
        else:
            if LARGE_SIZE not in sizes:
                out.append(TargetResult(target.name, LARGE_SIZE, None, target.limit, "N/A",
                                        f"needs size {LARGE_SIZE}"))
                continue
            rows = [table[(case, LARGE_SIZE)] for case in MEMORY_CASES
                    if (case, LARGE_SIZE) in table]
            measured = [row for row in rows if row.peak_mb is not None]
            if not measured:
                out.append(TargetResult(target.name, LARGE_SIZE, None, target.limit, "N/A",
                                        "no case completed"))
                continue
            worst = max(measured, key=lambda row: row.peak_mb or 0.0)
            note = f"worst: {worst.case}"
            if len(measured) < len(MEMORY_CASES):
                note += f" ({len(MEMORY_CASES) - len(measured)} case(s) did not complete)"
            out.append(_judge(target, LARGE_SIZE, worst.peak_mb, note, strict=True))
    return out


def _judge(target: Target, n: int, value: float | None, note: str,
           *, strict: bool = False) -> TargetResult:
    if value is None:
        return TargetResult(target.name, n, None, target.limit, "FAIL", note)
    passed = value < target.limit if strict else value <= target.limit
    return TargetResult(target.name, n, value, target.limit, "PASS" if passed else "FAIL", note)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_markdown(meta: dict[str, Any], summaries: Sequence[Summary],
                    targets: Sequence[TargetResult]) -> str:
    lines = ["# fraiseql-alembic benchmark", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += ["", "## Results", "",
              "Median wall time and CPU (user+sys of the child) over the runs; peak RSS is the "
              "highest of the runs. Ratio = median / the reference case's median at the same N.",
              "",
              "| case | N | median s | CPU s | peak MB | ratio | reference | runs ok |",
              "|---|---:|---:|---:|---:|---:|---|---:|"]
    for row in summaries:
        lines.append(
            f"| {row.case} | {row.n} | {_fmt(row.median_s)} | {_fmt(row.cpu_s)} | "
            f"{_fmt(row.peak_mb, 1)} | {_fmt(row.ratio, 2)} | {row.reference or ''} | "
            f"{row.ok_runs}/{row.runs} |"
        )
    problems = [row for row in summaries if row.ok_runs < row.runs]
    if problems:
        lines += ["", "Runs that did not complete:", ""]
        for row in problems:
            lines.append(f"- {row.case} N={row.n}: {', '.join(row.statuses)}; "
                         + "; ".join(row.details))
    lines += ["", "## Targets", "", "| target | N | value | limit | result | detail |",
              "|---|---:|---:|---:|---|---|"]
    for item in targets:
        lines.append(f"| {item.target} | {item.n or ''} | {_fmt(item.value, 2)} | "
                     f"{item.limit:g} | {item.result} | {item.note} |")
    lines += ["", "## Cases", ""]
    lines += [f"- `{case.name}`: {case.description}" for case in CASES]
    return "\n".join(lines) + "\n"


def render_text(summaries: Sequence[Summary], targets: Sequence[TargetResult]) -> str:
    header = (f"{'case':<22} {'N':>6} {'median s':>9} {'CPU s':>8} {'peak MB':>8} "
              f"{'ratio':>6}  reference")
    lines = [header, "-" * len(header)]
    previous: int | None = None
    for row in summaries:
        if previous is not None and row.n != previous:
            lines.append("")
        previous = row.n
        flag = "" if row.ok_runs == row.runs else f"  ({row.ok_runs}/{row.runs} ok)"
        lines.append(
            f"{row.case:<22} {row.n:>6} {_fmt(row.median_s):>9} {_fmt(row.cpu_s):>8} "
            f"{_fmt(row.peak_mb, 1):>8} {_fmt(row.ratio, 2):>6}  {row.reference or ''}{flag}"
        )
    lines += ["", "Targets:"]
    for item in targets:
        value = _fmt(item.value, 2)
        lines.append(f"  {item.result:<4} {item.target}: {value} (limit {item.limit:g}"
                     f"{', N=' + str(item.n) if item.n else ''}) {item.note}")
    return "\n".join(lines)


def to_json(meta: dict[str, Any], summaries: Sequence[Summary], targets: Sequence[TargetResult],
            results: dict[tuple[str, int], list[Sample]]) -> dict[str, Any]:
    return {
        "meta": meta,
        "cases": [
            {
                "case": row.case,
                "n": row.n,
                "median_s": row.median_s,
                "cpu_s": row.cpu_s,
                "peak_mb": row.peak_mb,
                "reference": row.reference,
                "ratio": row.ratio,
                "ok_runs": row.ok_runs,
                "runs": [
                    {"status": s.status, "wall_s": s.wall_s, "cpu_s": s.cpu_s,
                     "maxrss_mb": s.maxrss_mb, "detail": s.detail}
                    for s in results.get((row.case, row.n), [])
                ],
            }
            for row in summaries
        ],
        "targets": [
            {"target": t.target, "n": t.n, "value": t.value, "limit": t.limit,
             "result": t.result, "note": t.note}
            for t in targets
        ],
        "descriptions": {case.name: case.description for case in CASES},
    }


def metadata(args: argparse.Namespace, databases: Databases, argv: Sequence[str]) -> dict[str, Any]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": shlex.join(["python", "bench/run.py", *argv]),
        "git": commit,
        "python": platform.python_version(),
        "fraiseql-alembic": version("fraiseql-alembic"),
        "alembic": version("alembic"),
        "sqlalchemy": version("sqlalchemy"),
        "postgresql": databases.server_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "runs": f"{args.runs} (N >= {args.large_threshold}: {args.runs_large})",
        "timeout_s": args.timeout,
    }


# ---------------------------------------------------------------------------
# Command line


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes wants numbers like 100,1000: {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("--sizes wants positive numbers")
    return sorted(set(sizes))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Benchmark fraiseql migrate against psql, plain Alembic and the alembic CLI.",
    )
    parser.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES),
                        help="numbers of migrations, comma-separated (default: 100,1000,10000)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per case (default 3)")
    parser.add_argument("--runs-large", type=int, default=1,
                        help="runs for sizes >= --large-threshold (default 1)")
    parser.add_argument("--large-threshold", type=int, default=LARGE_SIZE,
                        help=f"size from which --runs-large applies (default {LARGE_SIZE})")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds before one case is killed and recorded as timed out "
                             "(default 900)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.md",
                        help="Markdown report (default bench/results.md)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results.json",
                        help="JSON report (default bench/results.json)")
    parser.add_argument("--database-url", metavar="URL",
                        help="a PostgreSQL server to use (its role creates a database per run); "
                             "default: start a throwaway cluster")
    parser.add_argument("--workdir", type=Path,
                        help="where the synthetic projects and logs go, kept afterwards "
                             "(default: a temp dir, removed unless --keep)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (projects, per-case stdout/stderr logs)")
    parser.add_argument("--rss", choices=("auto", "gnu-time", "wait4"), default="auto",
                        help="how peak RSS is read: GNU time's %%M (auto: when installed) or "
                             "os.wait4's ru_maxrss (floored at this harness's own RSS)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the untimed pass over a 3-migration project that writes "
                             ".pyc files and warms caches before measuring")
    parser.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                        help="before each case that needs a database: CHECKPOINT, sync, "
                             "then wait this long (default 2; 0 turns it off)")
    parser.add_argument("--cluster-dir", default="auto", metavar="auto|disk|DIR",
                        help="where the throwaway cluster lives (default auto: a tmpfs such "
                             "as /dev/shm with 2 GiB free, else the temp directory)")
    parser.add_argument("--quiet", action="store_true", help="no per-run progress on stderr")
    return parser


def warm_up(databases: Databases, timeout: float, workdir: Path, use_gnu_time: bool) -> None:
    """Every case once on a tiny project, untimed: .pyc files, page cache, entry points."""
    print("bench: warming up (every case once on 3 migrations, not recorded) ...",
          file=sys.stderr, flush=True)
    root = workdir / "warmup"
    if root.exists():
        shutil.rmtree(root)
    logs = workdir / "logs" / "warmup"
    logs.mkdir(parents=True, exist_ok=True)
    runner = Runner(databases, timeout, logs, use_gnu_time, verbose=False)
    run_size(runner, build_project(root, 3), 1)
    failed = sorted({case for (case, _), samples in runner.results.items()
                     for sample in samples if not sample.ok})
    if failed:
        print(f"bench: warning: warm-up cases failed: {', '.join(failed)} (see {logs})",
              file=sys.stderr)


def _own_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


#: The throwaway cluster goes to memory when this much of it is free there.
TMPFS_MIN_FREE = 2 * 1024**3
TMPFS_CANDIDATES = (Path("/dev/shm"),)


def _is_tmpfs(path: Path) -> bool:
    """Whether ``path`` is the mount point of a tmpfs (read from /proc/mounts)."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    return any(
        len(fields) > 2 and fields[1] == str(path) and fields[2] == "tmpfs"
        for fields in (line.split() for line in mounts)
    )


def cluster_parent(choice: str) -> tuple[Path | None, str]:
    """Where the throwaway cluster's directory goes, and how to describe it.

    ``auto``: a tmpfs (``/dev/shm``) with at least 2 GiB free, else the temp directory.
    On a disk, creating a table's files dominates every case and its latency drifts
    with the VM's other tenants (the floor at 1,000 migrations measured 2.6 s to 7.1 s
    on one machine); in memory the server's share is steady and the ratios compare
    the tools.  ``disk`` forces the temp directory; anything else is a directory.
    """
    if choice == "disk":
        return None, f"disk ({tempfile.gettempdir()})"
    if choice != "auto":
        return Path(choice), f"{choice} (--cluster-dir)"
    for candidate in TMPFS_CANDIDATES:
        if not _is_tmpfs(candidate) or not os.access(candidate, os.W_OK):
            continue
        stats = os.statvfs(candidate)
        if stats.f_bavail * stats.f_frsize >= TMPFS_MIN_FREE:
            return candidate, f"tmpfs ({candidate})"
    return None, f"disk ({tempfile.gettempdir()}; no tmpfs with 2 GiB free)"


@contextlib.contextmanager
def database_server(url: str | None, settle: float = 0.0,
                    parent: Path | None = None) -> Iterator[Databases]:
    if url:
        server = ServerDatabases(url, settle)
        yield server if server.can_create() else ResetDatabase(url, settle)
        return
    sys.path.insert(0, str(REPO))  # the package is normally installed; this helps if not
    from fraiseql_alembic.devdb import DevCluster

    print("bench: starting a throwaway PostgreSQL ...", file=sys.stderr, flush=True)
    base_dir = None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
        base_dir = Path(tempfile.mkdtemp(prefix="fraiseql-bench-pg-", dir=parent))
    cluster = DevCluster.start(base_dir)
    try:
        yield ServerDatabases(cluster.url("postgres"), settle)
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.runs < 1 or args.runs_large < 1:
        raise SystemExit("bench: --runs and --runs-large must be at least 1")
    if shutil.which("psql") is None:
        raise SystemExit("bench: psql is not on PATH (apt-get install postgresql-client)")
    keep = args.keep or args.workdir is not None  # never delete a directory we were given
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="fraiseql-bench-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if args.rss == "gnu-time" and not gnu_time_available():
        raise SystemExit(f"bench: --rss gnu-time needs GNU time at {GNU_TIME} (apt-get install "
                         "time)")
    use_gnu_time = args.rss == "gnu-time" or (args.rss == "auto" and gnu_time_available())
    started = time.monotonic()
    try:
        parent, where = cluster_parent(args.cluster_dir)
        with database_server(args.database_url, args.settle, parent) as databases:
            logs = workdir / "logs"
            logs.mkdir(exist_ok=True)
            if not args.no_warmup:
                warm_up(databases, args.timeout, workdir, use_gnu_time)
            runner = Runner(databases, args.timeout, logs, use_gnu_time,
                            verbose=not args.quiet)
            for n in args.sizes:
                root = workdir / f"project_{n}"
                if root.exists():
                    shutil.rmtree(root)
                print(f"bench: building {n} migrations in {root} ...", file=sys.stderr,
                      flush=True)
                project = build_project(root, n)
                runs = args.runs_large if n >= args.large_threshold else args.runs
                run_size(runner, project, runs)
            meta = metadata(args, databases, argv)
            meta["peak RSS"] = (
                "GNU time %M of the command" if use_gnu_time
                else "os.wait4 ru_maxrss (includes the harness's own RSS, about "
                     f"{_own_rss_mb():.0f} MB, as a floor)"
            )
            meta["bytecode"] = "children run with .pyc caching on (PYTHONDONTWRITEBYTECODE unset)"
            meta["warm-up"] = "none" if args.no_warmup else "one untimed pass, 3 migrations"
            meta["cluster"] = ("the --database-url server" if args.database_url
                               else f"throwaway devdb cluster on {where}")
            meta["settle"] = (f"CHECKPOINT, sync and {args.settle:g}s before each database case"
                              if args.settle > 0 else "none")
        meta["total_s"] = round(time.monotonic() - started, 1)
        summaries = summarize(runner.results, args.sizes)
        targets = evaluate(summaries, args.sizes)
        print(render_text(summaries, targets))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_markdown(meta, summaries, targets), encoding="utf-8")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(to_json(meta, summaries, targets, runner.results), indent=2) + "\n",
            encoding="utf-8",
        )
        print(f"\nbench: wrote {args.out} and {args.json} ({meta['total_s']} s)",
              file=sys.stderr)
    finally:
        if keep:
            print(f"bench: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
