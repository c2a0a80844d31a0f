"""Template databases for a project's tests: the migrations applied once, copied per test.

A :class:`TemplateServer` holds one autocommit connection to an administration database
(``postgres``, say) of a server whose role may ``CREATEDB``.  :meth:`~TemplateServer.template`
makes a database, lets the caller build the schema in it (``api.upgrade``), then marks it
``IS_TEMPLATE true ALLOW_CONNECTIONS false``: no session can ever be open on it, so
``CREATE DATABASE ... TEMPLATE`` never fails with "being accessed by other users".  A
template is named by the caller's content hash and kept on the server: the next session
with the same migrations reuses it, one with other migrations builds its own (and drops
the older template of the same folder, known by its comment).  Builders wait for each
other on an advisory lock, so parallel workers build a template once.

:meth:`~TemplateServer.clone` copies the template into a new database per test;
:meth:`~TemplateServer.drop` removes one (``WITH (FORCE)``: sessions left open are ended).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from ..errors import DatabaseError, MigrationError
from ..secrets import mask_url, password_of, redact
from .session import open_dbapi
from .translate import database_error

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

#: The comment every template carries: ``<COMMENT_PREFIX><folder> <hash>``.
COMMENT_PREFIX = "fraiseql-alembic test template of "
_APPLICATION = "fraiseql-alembic tests"
#: How PostgreSQL 15+ may copy a template (``CREATE DATABASE ... STRATEGY``).
STRATEGIES = ("WAL_LOG", "FILE_COPY")


@dataclass(frozen=True)
class Template:
    """A template database: its name, URL, and whether this session built it."""

    name: str
    url: str
    built: bool


def database_url(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name`` (user, host, options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def quoted(name: str) -> str:
    """A PostgreSQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


class TemplateServer:
    """Templates and their copies on the server of ``admin_url`` (see the module)."""

    def __init__(self, admin_url: str, hint: str = "check the URL and that the server is "
                 "running") -> None:
        self.admin_url = admin_url
        #: What a failure to connect says to do.
        self.hint = hint
        self._connection: Connection | None = None

    def _run(self, sql: str, what: str, params: tuple[object, ...] = ()
             ) -> list[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            try:
                self._connection = open_dbapi(self.admin_url, application_name=_APPLICATION)
            except DatabaseError as err:
                lines = str(err.__cause__ or err).strip().splitlines()
                reason = redact(lines[0] if lines else str(err), password_of(self.admin_url))
                raise DatabaseError(
                    f"Cannot connect to {mask_url(self.admin_url)}: {reason}; {self.hint}"
                ) from err
            self._connection.autocommit = True
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(sql, params or None)
                return list(cursor.fetchall()) if cursor.description else []
        except Exception as err:
            wrapped = database_error(err)
            if wrapped is None:
                raise
            raise DatabaseError(
                f"Cannot {what} on {mask_url(self.admin_url)}: {wrapped.message}; the role "
                "needs CREATEDB (and to own the test databases)"
            ) from err

    @property
    def connected(self) -> bool:
        """Whether a connection is open (the server was reached)."""
        return self._connection is not None and not self._connection.closed

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def template(self, name: str, folder: str, digest: str,
                 build: Callable[[str], None], *, replace_older: bool = True) -> Template:
        """The template ``name``: reused when a complete one exists, else made empty,
        given to ``build`` (its URL), and marked a template.  An unfinished one (a build
        that failed or was killed) is dropped first; on failure nothing is left.  With
        ``replace_older``, a new template drops the older ones of the same folder."""
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._run(f"SELECT pg_advisory_lock({key})", "wait for the template lock")
        try:
            rows = self._run(
                "SELECT datistemplate FROM pg_database WHERE datname = %s",
                "look for the template", (name,))
            url = database_url(self.admin_url, name)
            if rows and rows[0][0]:
                return Template(name, url, built=False)
            self.drop(name)
            self._run(f"CREATE DATABASE {quoted(name)}", "create the template database")
            try:
                build(url)
                self._run(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    "close the sessions left on the template", (name,))
                comment = f"{COMMENT_PREFIX}{folder} {digest}"
                self._run(f"COMMENT ON DATABASE {quoted(name)} IS %s",
                          "comment on the template", (comment,))
                self._run(
                    f"ALTER DATABASE {quoted(name)} WITH IS_TEMPLATE true "
                    "ALLOW_CONNECTIONS false", "mark the template")
            except BaseException:
                self.drop(name)
                raise
            if replace_older:
                self._drop_older(name, folder)
            return Template(name, url, built=True)
        finally:
            self._run(f"SELECT pg_advisory_unlock({key})", "release the template lock")

    def _drop_older(self, name: str, folder: str) -> None:
        """Drop the templates this folder had before (other content), if none is in use."""
        rows = self._run(
            "SELECT d.datname FROM pg_database d "
            "JOIN pg_shdescription s ON s.objoid = d.oid "
            "AND s.classoid = 'pg_database'::regclass "
            "WHERE d.datistemplate AND d.datname <> %s AND s.description LIKE %s",
            "list older templates", (name, _like(f"{COMMENT_PREFIX}{folder} ") + "%"))
        for (older,) in rows:
            try:
                self.drop_template(str(older))
            except MigrationError:
                continue  # another session is copying it right now: next time

    def drop_template(self, name: str) -> None:
        """Drop a template database (``IS_TEMPLATE`` must be unset first)."""
        self._run(f"ALTER DATABASE {quoted(name)} WITH IS_TEMPLATE false",
                  f"unmark template {name}")
        self.drop(name)

    def clone(self, template: str, name: str, strategy: str | None = None) -> str:
        """A new database ``name`` copied from ``template``; its URL.  ``strategy``
        (PostgreSQL 15+: ``WAL_LOG``, the default, or ``FILE_COPY``) says how."""
        if strategy is not None and strategy.upper() not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        how = f" STRATEGY {strategy.upper()}" if strategy else ""
        self._run(f"CREATE DATABASE {quoted(name)} TEMPLATE {quoted(template)}{how}",
                  f"copy template {template}")
        return database_url(self.admin_url, name)

    def create(self, name: str) -> str:
        """A new empty database ``name``; its URL."""
        self._run(f"CREATE DATABASE {quoted(name)}", f"create database {name}")
        return database_url(self.admin_url, name)

    def drop(self, name: str) -> None:
        """Drop database ``name`` if it exists, ending the sessions still on it."""
        self._run(f"DROP DATABASE IF EXISTS {quoted(name)} WITH (FORCE)",
                  f"drop database {name}")

    def databases(self, prefix: str) -> list[str]:
        """The names of the databases that start with ``prefix``."""
        rows = self._run(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY datname",
            "list databases", (_like(prefix) + "%",))
        return [str(row[0]) for row in rows]


def _like(text: str) -> str:
    """``text`` as a LIKE pattern that matches itself only."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
