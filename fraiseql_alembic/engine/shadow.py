"""The shadow database of ``create --autogenerate``: where the migrations' schema is built.

Given a URL (``--shadow-database-url`` / ``FRAISEQL_SHADOW_DATABASE_URL``), that database
is refused when it is the live one (``DATABASE_URL``: the same server and database, told
apart by what the servers say of themselves, not by the URLs' text), and **emptied**
before and after: every schema except PostgreSQL's own (``pg_catalog``,
``information_schema``, ``pg_toast``, temporary schemas) is dropped with everything in
it, and ``public`` is created again as a new database has it (owner, privileges,
comment).  Without a URL, a throwaway PostgreSQL
(:class:`~fraiseql_alembic.devdb.DevCluster`) is started, and stopped and removed
afterwards.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..devdb import DevCluster, DevDBError
from ..errors import ConfigError, DatabaseError, MigrationError
from ..secrets import mask_url
from .session import open_dbapi
from .translate import database_error

#: Where ``create --autogenerate`` says a shadow database comes from when it starts one.
THROWAWAY = "a throwaway PostgreSQL"
_DATABASE = "fraiseql_shadow"

# What a server says of itself: the same values mean the same server and database.
_IDENTITY = (
    "SELECT pg_postmaster_start_time()::text, current_setting('port'), "
    "(SELECT oid::text FROM pg_database WHERE datname = current_database()), "
    "current_database()"
)
_SCHEMAS = (
    "SELECT nspname FROM pg_namespace WHERE nspname <> 'information_schema' "
    "AND nspname !~ '^pg_' ORDER BY nspname"
)


@contextmanager
def shadow_database(
    url: str | None, *, live_url: str | None = None,
    on_start: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """An empty database to build the migrations' schema in; its URL.

    ``url`` None starts a throwaway PostgreSQL (``on_start`` hears about it), removed on
    exit.  A given ``url`` is refused when it is ``live_url``'s database, and is emptied
    before and after (also when the work in between fails).
    """
    if url is None:
        with _throwaway(on_start) as started:
            yield started
        return
    if live_url:
        refuse_live(url, live_url)
    empty(url)
    try:
        yield url
    finally:
        empty(url)


def refuse_live(shadow_url: str, live_url: str) -> None:
    """ConfigError when both URLs reach the same database of the same server.  A live
    database that cannot be reached is not the shadow one (which answered)."""
    shadow = identity(shadow_url)
    try:
        live = identity(live_url)
    except DatabaseError:
        return
    if shadow == live:
        raise ConfigError(
            f"The shadow database {mask_url(shadow_url)} is the database of DATABASE_URL "
            f"(database {shadow[3]!r} on the same server), which it would empty; give "
            "--shadow-database-url (or FRAISEQL_SHADOW_DATABASE_URL) a database of its "
            "own, or leave it unset for a throwaway one"
        )


def identity(url: str) -> tuple[str, ...]:
    """The server's start time and port, and the database's oid and name."""
    connection = open_dbapi(url, application_name="fraiseql-migrate shadow")
    try:
        with connection.cursor() as cursor:
            cursor.execute(_IDENTITY)
            row = cursor.fetchone()
        assert row is not None
        return tuple(str(value) for value in row)
    finally:
        connection.close()


def empty(url: str) -> None:
    """Drop every non-system schema with what is in it; create ``public`` again."""
    connection = open_dbapi(url, application_name="fraiseql-migrate shadow")
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(_SCHEMAS)
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP SCHEMA {_quoted(name)} CASCADE")
            cursor.execute("SHOW server_version_num")
            row = cursor.fetchone()
            if row is not None and int(row[0]) >= 150000:
                # PostgreSQL 15's public: owned by the database owner, usable by everyone
                cursor.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
                cursor.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
            else:
                cursor.execute("CREATE SCHEMA public")
                cursor.execute("GRANT ALL ON SCHEMA public TO PUBLIC")
            # as a new database has it, so that drift does not report its comment
            cursor.execute("COMMENT ON SCHEMA public IS 'standard public schema'")
    except Exception as err:
        if isinstance(err, MigrationError):
            raise
        wrapped = database_error(err)
        if wrapped is None:
            raise
        raise DatabaseError(
            f"Cannot empty the shadow database {mask_url(url)}: {wrapped.message}; the "
            "role needs to own it (or its schemas)"
        ) from err
    finally:
        connection.close()


@contextmanager
def _throwaway(on_start: Callable[[str], None] | None) -> Iterator[str]:
    if on_start is not None:
        on_start(THROWAWAY)
    try:
        cluster = DevCluster.start()
    except DevDBError as err:
        raise _no_throwaway(err) from err
    try:
        try:
            url = cluster.create_database(_DATABASE)
        except DevDBError as err:
            raise _no_throwaway(err) from err
        yield url
    finally:
        _remove(cluster)


def _no_throwaway(err: DevDBError) -> ConfigError:
    return ConfigError(
        f"Cannot start a throwaway PostgreSQL for the shadow database: {err}; or give one "
        "with --shadow-database-url (or FRAISEQL_SHADOW_DATABASE_URL)"
    )


def _remove(cluster: DevCluster) -> None:
    try:
        cluster.stop("immediate")  # nothing in it is worth a checkpoint
    finally:
        shutil.rmtree(cluster.base_dir, ignore_errors=True)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
