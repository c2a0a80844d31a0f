"""Shared fixtures: one throwaway PostgreSQL cluster per session (per xdist worker), an
empty database per test (new, or one an earlier test used, emptied in place when that
leaves it exactly as new: ``DatabasePool``), and the two ways tests run our commands:

- ``cli``: ``fraiseql ...`` in-process with Click's CliRunner, in a folder (the project's);
- ``run_process``: the installed ``fraiseql``/``alembic`` command (or any program) as a
  subprocess in a folder, with the test's DATABASE_URL, an environment and a timeout;
  ``run_process.in_process(...)`` makes the same run of ``fraiseql``/``alembic`` in this
  process, with the same result, when the process itself is not what the test is about.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from click.testing import CliRunner, Result

from fraiseql_alembic.devdb import DevCluster, find_pg_bindir

_PYCACHE_PREFIX = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Compiled bytecode is kept, under .pytest_cache, when PYTHONDONTWRITEBYTECODE is set.

    Without it every command a test starts compiles each module of ours edited since its
    ``.pyc`` was written (up to ~0.15 s CPU, hundreds of processes) and every xdist worker
    rewrites the tests' asserts again (~2.4 s).  The variable asks for no ``__pycache__``
    next to sources: PYTHONPYCACHEPREFIX keeps that (the projects in tmp stay as made).
    The workers and every child process inherit both settings from here (the controller).
    """
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    if (cache is None or hasattr(config, "workerinput")
            or not os.environ.get("PYTHONDONTWRITEBYTECODE")):
        return
    prefix = cache.mkdir("pycache")
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    config.stash[_PYCACHE_PREFIX] = prefix


def pytest_unconfigure(config: pytest.Config) -> None:
    """The prefix keeps the package's and the libraries' bytecode from run to run, not that
    of the throwaway projects and virtualenvs made under the temporary directory."""
    prefix = config.stash.get(_PYCACHE_PREFIX, None)
    if prefix is not None:
        shutil.rmtree(prefix.joinpath(*Path(tempfile.gettempdir()).parts[1:]), ignore_errors=True)


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    """PostgreSQL's server bin directory; fails (never skips) when PostgreSQL is missing."""
    return find_pg_bindir()


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory, pg_bindir: Path) -> Iterator[DevCluster]:
    """A local cluster for the whole session, stopped at its end.

    As root the server runs as `postgres`, which cannot enter pytest's /tmp/pytest-of-root
    (mode 0700, re-tightened by every pytest run that starts): devdb then picks a fresh
    directory under /tmp, removed at the end.
    """
    as_root = os.geteuid() == 0
    base_dir = None if as_root else tmp_path_factory.mktemp("pg_cluster")
    cluster = DevCluster.start(base_dir, bindir=pg_bindir)
    try:
        yield cluster
    finally:
        cluster.stop()
        if as_root:
            shutil.rmtree(cluster.base_dir, ignore_errors=True)


#: Run in a database a test is done with (its sessions ended): every extension but plpgsql
#: and every schema but the system ones and public dropped, with what is in them, then
#: every object in public (public itself stays, with the privileges initdb recorded), but
#: those that go with another (an identity column's sequence).
_EMPTY_SQL = """
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' LOOP
        EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', item.extname);
    END LOOP;
    FOR item IN SELECT nspname FROM pg_namespace WHERE nspname NOT IN
            ('pg_catalog', 'information_schema', 'pg_toast', 'public')
            AND nspname !~ '^pg_(toast_)?temp_' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', item.nspname);
    END LOOP;
    FOR item IN SELECT DISTINCT o.type, o.identity
            FROM pg_depend d, pg_identify_object(d.classid, d.objid, 0) o
            WHERE d.refclassid = 'pg_namespace'::regclass
            AND d.refobjid = 'public'::regnamespace AND d.deptype = 'n'
            AND NOT EXISTS (SELECT FROM pg_depend part WHERE part.classid = d.classid
                            AND part.objid = d.objid AND part.deptype = 'i') LOOP
        EXECUTE format('DROP %s IF EXISTS %s CASCADE', CASE item.type
            WHEN 'composite type' THEN 'TYPE' WHEN 'statistics object' THEN 'STATISTICS'
            ELSE upper(item.type) END, item.identity);
    END LOOP;
END $$;
COMMENT ON SCHEMA public IS 'standard public schema';
"""

#: What a database holds, in terms a new one can be compared by: the row count of each
#: catalog of the database (statistics aside), its schemas with owners and privileges
#: (temporary ones aside: a session's are kept, emptied when reused), its settings and
#: privileges.
_FINGERPRINT_SQL = """
SELECT (SELECT string_agg(c.relname || '=' || (xpath('/row/n/text()', query_to_xml(
            format('SELECT count(*) AS n FROM pg_catalog.%I', c.relname), false, true,
            '')))[1]::text, ',' ORDER BY c.relname)
        FROM pg_class c WHERE c.relnamespace = 'pg_catalog'::regnamespace
        AND c.relkind = 'r' AND NOT c.relisshared
        AND c.relname NOT IN ('pg_statistic', 'pg_namespace')),
       (SELECT string_agg(nspname || ':' || nspowner::regrole::text || ':'
                          || coalesce(nspacl::text, ''), ',' ORDER BY nspname)
        FROM pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_'),
       (SELECT count(*) FROM pg_db_role_setting WHERE setdatabase = d.oid),
       d.datdba::regrole::text, coalesce(d.datacl::text, ''), d.datconnlimit, d.datallowconn,
       d.datistemplate, (SELECT count(*) FROM pg_prepared_xacts WHERE database = d.datname)
FROM pg_database d WHERE d.datname = current_database()
"""


class DatabasePool:
    """The ``database_url`` databases of one worker's cluster.

    ``CREATE DATABASE`` + ``DROP DATABASE`` cost about 0.1 s of server CPU and 0.2 s of
    wall time a test (the template's pages copied through the WAL, then removed).  A
    database a test is done with is instead emptied in place (its sessions ended, its
    schemas dropped, its settings reset, a few ms) and, when it then holds exactly what
    a new database holds (:data:`_FINGERPRINT_SQL`), renamed for the next test; anything
    else (a leftover the reset does not clear, a failure) drops it as before."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.free: list[str] = []
        self.new: tuple[object, ...] | None = None  # a new database's fingerprint
        self.admin: psycopg2.extensions.connection | None = None  # on "postgres", kept

    def take(self, name: str) -> str:
        """The URL of an empty database called ``name``."""
        while self.free:
            old = self.free.pop()
            try:
                self._admin(f'ALTER DATABASE "{old}" RENAME TO "{name}"')
            except psycopg2.Error:
                self.cluster.drop_database(old)
                continue
            return self.cluster.url(name)
        url = self.cluster.create_database(name)
        if self.new is None:
            self.new = self.fingerprint(url)
        return url

    def give_back(self, name: str) -> None:
        """Empty ``name`` for the next test, or drop it."""
        try:
            self._admin(f'ALTER DATABASE "{name}" RESET ALL')
            ended = self._admin(  # every session of the test's, before its schemas go
                "SELECT coalesce(bool_and(pg_terminate_backend(pid, 10000)), true) "
                f"FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()")
            if not ended:  # a session that would not end
                raise psycopg2.OperationalError("a session is still connected")
            connection = psycopg2.connect(self.cluster.url(name))
            try:
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(_EMPTY_SQL + _FINGERPRINT_SQL)  # one round trip
                    empty = tuple(cursor.fetchone() or ())
            finally:
                connection.close()
            if empty == self.new:
                self.free.append(name)
                return
        except psycopg2.Error:
            pass
        self.cluster.drop_database(name)

    def fingerprint(self, url: str) -> tuple[object, ...]:
        connection = psycopg2.connect(url)
        try:
            with connection.cursor() as cursor:
                cursor.execute(_FINGERPRINT_SQL)
                return tuple(cursor.fetchone() or ())
        finally:
            connection.close()

    def _admin(self, statement: str) -> object:
        """``statement`` on the pool's own session on "postgres" (opened once: a
        connection costs ~7 ms, two a test); its first value, if it returns rows."""
        if self.admin is None or self.admin.closed:
            self.admin = psycopg2.connect(self.cluster.url("postgres"))
            self.admin.autocommit = True
        try:
            with self.admin.cursor() as cursor:
                cursor.execute(statement)
                row = cursor.fetchone() if cursor.description else None
        except psycopg2.OperationalError:  # the session was lost (a test restarted the
            self.admin.close()              # server): the next call opens another
            raise
        return row[0] if row else None

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()


@pytest.fixture(scope="session")
def database_pool(pg_cluster: DevCluster) -> Iterator[DatabasePool]:
    """The worker's :class:`DatabasePool`; its spare databases are dropped at the end."""
    pool = DatabasePool(pg_cluster)
    yield pool
    pool.close()
    for name in pool.free:
        pg_cluster.drop_database(name)


@pytest.fixture
def database_url(database_pool: DatabasePool, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL (``postgresql://...``) of an empty database of the test's own, as a new one
    is (:class:`DatabasePool`), emptied or dropped after the test."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{slug}_{uuid.uuid4().hex[:8]}"
    url = database_pool.take(name)
    try:
        yield url
    finally:
        database_pool.give_back(name)


@pytest.fixture
def shadow_url(database_pool: DatabasePool) -> Iterator[str]:
    """A database of its own for a shadow schema (autogenerate, drift), emptied or dropped
    afterwards (:class:`DatabasePool`)."""
    name = f"shadow_{uuid.uuid4().hex[:8]}"
    url = database_pool.take(name)
    try:
        yield url
    finally:
        database_pool.give_back(name)


# ---------------------------------------------------------------------------
# Running our commands

#: Where the installed `fraiseql` and `alembic` commands are.
BIN = Path(sys.executable).parent
#: ``url=`` default of run_process/start_process: the test's own database, when it has one.
TEST_DATABASE = "<the test's database>"


def invoke_cli(cwd: Path, args: Sequence[str], *, env: Mapping[str, str | None] | None = None,
               input: str | None = None, catch_exceptions: bool = False) -> Result:
    """``fraiseql ARGS`` in-process (Click's CliRunner) with ``cwd`` as working directory.

    DATABASE_URL is unset unless ``env`` sets it (None in ``env`` unsets a variable)."""
    from fraiseql_alembic.cli.app import main  # lazy: imports alembic and sqlalchemy

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args), input=input,
                                  env={"DATABASE_URL": None, **(env or {})},
                                  catch_exceptions=catch_exceptions)
    finally:
        os.chdir(old)


class Cli:
    """The ``cli`` fixture: ``cli("migrate", "up", cwd=..., env=...)`` -> click Result."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, cwd: Path | None = None,
                 env: Mapping[str, str | None] | None = None, input: str | None = None,
                 catch_exceptions: bool = False) -> Result:
        return invoke_cli(cwd or self.cwd, args, env=env, input=input,
                          catch_exceptions=catch_exceptions)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Run ``fraiseql ARGS`` in-process, in tmp_path (the ``project`` fixture's root) unless
    ``cwd=`` says otherwise; DATABASE_URL is unset unless ``env=`` sets it."""
    return Cli(tmp_path)


def _argv_and_env(argv: Sequence[str], url: str | None, env: Mapping[str, str | None] | None,
                  prefix: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    program = str(BIN / argv[0]) if argv[0] in ("fraiseql", "alembic") else argv[0]
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    if url is not None:
        environment["DATABASE_URL"] = url
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return [*prefix, program, *argv[1:]], environment


class ProcessRunner:
    """The ``run_process`` fixture.

    ``run_process("fraiseql", "migrate", "up")`` runs the installed command (``fraiseql`` and
    ``alembic`` are taken from this virtualenv, anything else from PATH) in ``cwd`` (default:
    tmp_path, the ``project`` fixture's root) with DATABASE_URL = ``url`` (default: the test's
    database if it has one; None leaves it unset), ``env`` added (None unsets), ``input`` on stdin and a
    ``timeout``; ``check=True`` asserts exit 0.  ``prefix`` goes before the program (e.g.
    ``unshare ...``).  ``run_process.start(...)`` is the same as a running Popen."""

    def __init__(self, cwd: Path, url: str | None) -> None:
        self.cwd = cwd
        self.url = url
        self.started: list[subprocess.Popen[str]] = []

    def end_all(self) -> None:
        """Kill what :meth:`start` started and the test left running (a test that failed
        while waiting for it), and reap it: the process never outlives its test, and its
        ResourceWarning never fails a later test in the same worker."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate()

    def __call__(self, *argv: str, cwd: Path | None = None, url: str | None = TEST_DATABASE,
                 env: Mapping[str, str | None] | None = None, input: str | None = None,
                 timeout: float = 120, check: bool = False,
                 prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        args, environment = _argv_and_env(argv, self.url if url == TEST_DATABASE else url,
                                          env, prefix)
        result = subprocess.run(args, cwd=cwd or self.cwd, env=environment, input=input,
                                capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def start(self, *argv: str, cwd: Path | None = None, url: str | None = TEST_DATABASE,
              env: Mapping[str, str | None] | None = None, prefix: Sequence[str] = (),
              capture: bool = True) -> subprocess.Popen[str]:
        """Start the command; its stdout and stderr are pipes (or /dev/null: ``capture=False``)."""
        args, environment = _argv_and_env(argv, self.url if url == TEST_DATABASE else url,
                                          env, prefix)
        output = subprocess.PIPE if capture else subprocess.DEVNULL
        with _sigint_not_ignored():
            process = subprocess.Popen(args, cwd=cwd or self.cwd, env=environment, text=True,
                                       stdout=output, stderr=output)
        self.started.append(process)
        return process

    def in_process(self, *argv: str, cwd: Path | None = None, url: str | None = TEST_DATABASE,
                   env: Mapping[str, str | None] | None = None, input: str | None = None,
                   check: bool = False) -> subprocess.CompletedProcess[str]:
        """The run ``__call__`` makes, of ``fraiseql`` or ``alembic``, in this process: same
        arguments, working directory, environment (os.environ is replaced for the run),
        stdin, stdout, stderr and exit code (``sys.exit(-1)`` is 255, as a process reports
        it; an uncaught exception is 1 with its traceback on stderr).  For tests whose
        subject is what the command does, not its process (start-up, signals, entry
        points, what a new interpreter loads): about 0.3 s (fraiseql) to 0.6 s (alembic)
        of CPU less a run."""
        args, environment = _argv_and_env(argv, self.url if url == TEST_DATABASE else url,
                                          env, ())
        program = Path(args[0]).name
        assert program in ("fraiseql", "alembic"), f"not ours to run in-process: {program}"
        if program == "fraiseql":
            result = invoke_cli(cwd or self.cwd, args[1:], input=input,
                                env={**{key: None for key in os.environ},
                                     **environment})
            code, out, err = result.exit_code, result.stdout, result.stderr
        else:
            code, out, err = _alembic_in_process(cwd or self.cwd, args[1:], environment,
                                                 input)
        if check:
            assert code == 0, out + err
        return subprocess.CompletedProcess(args, code, out, err)

    def on_terminal(self, *argv: str, cwd: Path | None = None, url: str | None = TEST_DATABASE,
                    env: Mapping[str, str | None] | None = None, timeout: float = 120,
                    answers: Sequence[tuple[str, str]] = ()) -> tuple[int, str]:
        """Run the command with stdout and stderr on a pseudo-terminal, as a user at a
        terminal sees it; its exit code and everything it wrote there (CR, escapes kept).

        ``answers``: (prompt, reply) pairs, in order: when the output next ends with the
        prompt, the reply and Enter are typed (stdin is then the terminal, else /dev/null)."""
        args, environment = _argv_and_env(argv, self.url if url == TEST_DATABASE else url,
                                          env, ())
        environment.setdefault("TERM", "xterm")
        leader, follower = os.openpty()
        try:
            process = subprocess.Popen(args, cwd=cwd or self.cwd, env=environment,
                                       stdin=follower if answers else subprocess.DEVNULL,
                                       stdout=follower, stderr=follower)
        finally:
            os.close(follower)
        chunks: list[bytes] = []
        pending = [(prompt.encode(), (reply + "\n").encode()) for prompt, reply in answers]
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert time.monotonic() < deadline, "the command did not end in time"
                ready, _, _ = select.select([leader], [], [], 1)
                if not ready:
                    continue
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
                if pending and b"".join(chunks).endswith(pending[0][0]):
                    os.write(leader, pending.pop(0)[1])
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if process.poll() is None:
                process.kill()
            os.close(leader)
        return code, b"".join(chunks).decode("utf-8", "replace")


@contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """A command started inside gets SIGINT as a terminal delivers it.  A shell starts a
    background job (`pytest ... &` in a script) with SIGINT ignored, every child inherits
    that, and Python then never turns SIGINT into KeyboardInterrupt: a test sending it
    would wait for a command that goes on.  (A handler, unlike SIG_IGN, is reset to the
    default in the child.)"""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _logging_of_a_new_process() -> Iterator[None]:
    """No logging configured while a run lasts, as in a new process (its env.py may set
    up alembic.ini's ``[loggers]``, with handlers on the run's stderr); the test's logging
    (pytest's capture handlers, every logger's level and handlers) back afterwards."""
    root = logging.getLogger()
    loggers = {logger: (logger.handlers[:], logger.level, logger.propagate, logger.disabled)
               for logger in [root, *logging.Logger.manager.loggerDict.values()]
               if isinstance(logger, logging.Logger)}
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger in [root, *logging.Logger.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger):
                handlers, level, propagate, disabled = loggers.get(
                    logger, ([], logging.NOTSET, True, False))  # made by the run: as new
                logger.handlers[:] = handlers
                logger.setLevel(level)
                logger.propagate, logger.disabled = propagate, disabled


def _alembic_in_process(cwd: Path, args: Sequence[str], environment: Mapping[str, str],
                       input: str | None) -> tuple[int, str, str]:
    """``alembic ARGS`` run by Alembic's own CommandLine, as its console script runs it."""
    import contextlib
    import io
    import traceback

    from alembic.config import CommandLine  # lazy: Alembic loads only in the tests that run it

    class Captured(CommandLine):
        def run_cmd(self, config: Any, options: Any) -> None:
            config.stdout = sys.stdout  # Config's default is the sys.stdout Alembic loaded with
            super().run_cmd(config, options)

    old_cwd, old_environment, old_stdin = os.getcwd(), dict(os.environ), sys.stdin
    out, err = io.StringIO(), io.StringIO()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environment)
    sys.stdin = io.StringIO(input or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                _logging_of_a_new_process():
            try:
                Captured(prog="alembic").main(argv=list(args))
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else (exit.code is not None)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        sys.stdin = old_stdin
        os.environ.clear()
        os.environ.update(old_environment)
        os.chdir(old_cwd)
    return code & 0xFF, out.getvalue(), err.getvalue()


@pytest.fixture
def run_process(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ProcessRunner]:
    """Run an installed command as a subprocess (see ProcessRunner)."""
    url = (request.getfixturevalue("database_url")
           if "database_url" in request.fixturenames else None)
    runner = ProcessRunner(tmp_path, url)
    yield runner
    runner.end_all()


# ---------------------------------------------------------------------------
# Projects


class Project:
    """A scratch FraiseQL project: a migrations folder and a database."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.migrations = root / "migrations"
        self.database_url = database_url

    def write(self, filename: str, text: str) -> Path:
        self.migrations.mkdir(exist_ok=True)
        path = self.migrations / filename
        path.write_text(text, encoding="utf-8")
        return path

    def cli(self, *args: str, input: str | None = None) -> Result:
        """Run ``fraiseql migrate ARGS`` in-process with CliRunner, in the project."""
        return invoke_cli(self.root, ["migrate", *args], input=input,
                          env={"DATABASE_URL": self.database_url})

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg2

        connection = psycopg2.connect(self.database_url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def tables(self) -> set[str]:
        return {
            row[0]
            for row in self.query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }

    def version(self) -> list[str]:
        if "alembic_version" not in self.tables():
            return []
        return [row[0] for row in self.query("SELECT version_num FROM alembic_version")]


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Project:
    (tmp_path / "migrations").mkdir()
    return Project(tmp_path, database_url)


#: The ``tenants`` fixture: ``tenants(n)`` makes n databases and returns their URLs.
Tenants = Callable[[int], list[str]]


@pytest.fixture
def tenants(database_pool: DatabasePool) -> Iterator[Tenants]:
    """``tenants(n)``: the URLs of n empty databases of the test's own (a fleet), emptied
    or dropped after the test (:class:`DatabasePool`)."""
    made: list[str] = []

    def make(count: int) -> list[str]:
        names = [f"tenant_{uuid.uuid4().hex[:10]}" for _ in range(count)]
        made.extend(names)
        return [database_pool.take(name) for name in names]

    yield make
    for name in made:
        database_pool.give_back(name)
