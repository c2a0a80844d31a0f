"""The pytest plugin (``pytest11`` entry point ``fraiseql``): fixtures for a project's tests.

Inert unless a test asks for one of its fixtures: loading it registers options and
fixtures and imports nothing but pytest and the standard library; the engine, Alembic,
SQLAlchemy and psycopg2 load when a fixture first runs.  Every name starts with
``fraiseql_`` so that it never hides a project's own fixture.

- ``fraiseql_database_url``: a new database per test, copied from a template in which
  every migration was applied once per session; dropped after the test.
- ``fraiseql_engine`` / ``fraiseql_connection``: a SQLAlchemy engine (disposed after) or
  a psycopg2 connection (closed after) on that database.
- ``fraiseql_up_down_up``: ``fraiseql_up_down_up(irreversible=[...])`` applies, rolls back
  and re-applies every migration on an empty database and fails the test on a problem.
- ``fraiseql_template`` / ``fraiseql_databases``: the template, and the session's
  :class:`~fraiseql_alembic.testing.TemplateDatabases`.

Configuration (docs/testing.md): ``--fraiseql-migrations`` or the ini option
``fraiseql_migrations`` (default: the project's migrations folder, as ``fraiseql migrate``
finds it); ``--fraiseql-admin-url``, ``FRAISEQL_TEST_ADMIN_URL`` or ``fraiseql_admin_url``
(default: a throwaway PostgreSQL per session, or per xdist worker).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .api import RoundTripReport
    from .engine.templatedb import Template
    from .testing import TemplateDatabases
    from .testing.databases import DbapiConnection, Engine

#: The environment variable naming the server the test databases are made on.
ADMIN_URL_VARIABLE = "FRAISEQL_TEST_ADMIN_URL"


#: Set once Alembic was seen loaded and our SQL revision loader installed for it.
_alembic_seen = False


def _install_alembic_plugin() -> None:
    """Install our SQL revision loader into an Alembic without plugin entry points (1.16,
    1.17) once a test module or test has loaded Alembic.

    On those versions our package installs it when it is imported after Alembic
    (``fraiseql_alembic/__init__.py``); pytest imports this plugin, and with it the
    package, before any test imports Alembic, so a project's tests that use Alembic
    in-process (pytest-alembic, ``alembic.command``) would see no ``.sql`` revision.
    Alembic 1.18+ loads our ``alembic.plugins`` entry point itself."""
    global _alembic_seen
    if _alembic_seen or "alembic" not in sys.modules:
        return
    _alembic_seen = True
    # lazy: only once Alembic is loaded anyway (a session without Alembic loads nothing)
    from .alembic_bridge.plugin import install_without_entry_points

    install_without_entry_points()


def pytest_collection_finish(session: pytest.Session) -> None:
    _install_alembic_plugin()  # the test modules are imported


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _install_alembic_plugin()  # a fixture or an earlier test may have imported Alembic


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fraiseql", "fraiseql-alembic test databases")
    group.addoption(
        "--fraiseql-migrations", metavar="PATH", default=None,
        help="migrations folder of the template database (default: the ini option "
             "fraiseql_migrations, else the project's, as `fraiseql migrate` finds it)")
    group.addoption(
        "--fraiseql-admin-url", metavar="URL", default=None,
        help=f"PostgreSQL URL of a database on the server where test databases are made "
             f"(role with CREATEDB); default: ${ADMIN_URL_VARIABLE}, the ini option "
             "fraiseql_admin_url, else a throwaway PostgreSQL")
    parser.addini("fraiseql_migrations",
                  "migrations folder of the template database (relative to the ini file)")
    parser.addini("fraiseql_admin_url",
                  "PostgreSQL URL of a database on the server where test databases are made")
    parser.addini("fraiseql_keep_template",
                  "keep the template on the server for the next session (default true); "
                  "false: each session (each xdist worker) builds its own and drops it",
                  type="bool", default=True)


def _migrations(config: pytest.Config) -> Path | None:
    given = config.getoption("fraiseql_migrations")
    if given:
        return config.invocation_params.dir / str(given)
    ini = str(config.getini("fraiseql_migrations") or "")
    if ini:
        return (config.inipath.parent if config.inipath else config.rootpath) / ini
    return None


def _admin_url(config: pytest.Config) -> str | None:
    return (config.getoption("fraiseql_admin_url") or os.environ.get(ADMIN_URL_VARIABLE)
            or str(config.getini("fraiseql_admin_url") or "") or None)


@pytest.fixture(scope="session")
def fraiseql_databases(pytestconfig: pytest.Config) -> Iterator[TemplateDatabases]:
    """The session's template databases (see :class:`~fraiseql_alembic.testing.TemplateDatabases`);
    every database it made is dropped at the end, a throwaway server stopped."""
    # lazy: the engine, Alembic and the drivers load only when a test asks for a database
    from .settings import resolve
    from .testing import TemplateDatabases

    # env="": a test run never takes a deploy environment's settings from FRAISEQL_ENV
    with _one_line():
        settings = resolve(_migrations(pytestconfig), cwd=pytestconfig.rootpath, env="")
    worker = getattr(pytestconfig, "workerinput", {}).get("workerid", "main")
    databases = TemplateDatabases(settings, _admin_url(pytestconfig), str(worker),
                                  keep_template=bool(pytestconfig.getini("fraiseql_keep_template")))
    try:
        yield databases
    finally:
        with _one_line():
            databases.close()


@contextmanager
def _one_line() -> Iterator[None]:
    """Our errors (no server, a migration that fails in the template, ...) as the one
    line ``fraiseql migrate`` prints, not a traceback through the plugin."""
    # lazy: errors.py is light, but the plugin imports nothing of ours until it is used
    from .errors import MigrationError

    try:
        yield
    except MigrationError as err:
        # pytest.fail's own exception, without the chain of ours under it
        raise pytest.fail.Exception(f"fraiseql: {err}", pytrace=False) from None


@pytest.fixture(scope="session")
def fraiseql_template(fraiseql_databases: TemplateDatabases) -> Template:
    """The template database: every migration applied, built once per session (or reused
    from an earlier session with the same migrations)."""
    with _one_line():
        return fraiseql_databases.template()


@pytest.fixture
def fraiseql_database_url(fraiseql_databases: TemplateDatabases,
                          fraiseql_template: Template) -> Iterator[str]:
    """URL of a new database copied from the template, dropped after the test."""
    with _one_line():
        name, url = fraiseql_databases.clone()
    try:
        yield url
    finally:
        with _one_line():
            fraiseql_databases.drop(name)


@pytest.fixture
def fraiseql_engine(fraiseql_database_url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine on the test's database, disposed after the test."""
    # lazy: SQLAlchemy loads only when a test asks for an engine
    from .testing import sqlalchemy_engine

    engine = sqlalchemy_engine(fraiseql_database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def fraiseql_connection(fraiseql_database_url: str) -> Iterator[DbapiConnection]:
    """A psycopg2 connection to the test's database, closed after the test."""
    # lazy: psycopg2 loads only when a test asks for a connection
    from .testing import dbapi_connection

    connection = dbapi_connection(fraiseql_database_url)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def fraiseql_up_down_up(
    fraiseql_databases: TemplateDatabases,
) -> Callable[..., RoundTripReport]:
    """``fraiseql_up_down_up(irreversible=())``: every migration up, down and up again on a
    new empty database; the test fails naming each migration that did not round-trip."""

    def check(irreversible: Iterable[str] = ()) -> RoundTripReport:
        with _one_line():
            report = fraiseql_databases.up_down_up(irreversible)
        if not report.ok:
            pytest.fail(report.describe(), pytrace=False)
        return report

    return check
