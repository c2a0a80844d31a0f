"""A project's test databases: its migrations applied once into a template, a copy per test.

:class:`TemplateDatabases` is what the pytest plugin's fixtures use (usable without
pytest too).  The template is named by a hash of the migrations folder's content (and of
this package's version and the history schema), so a changed folder never reuses an older
template; see :mod:`fraiseql_alembic.engine.templatedb` for how templates are kept.  With
no administration URL a throwaway PostgreSQL (:class:`~fraiseql_alembic.devdb.DevCluster`)
is started on first use and removed by :meth:`TemplateDatabases.close`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2
import sqlalchemy
from psycopg2.extensions import connection as DbapiConnection
from sqlalchemy import Engine

from .. import __version__
from ..api import up_down_up, upgrade
from ..api.roundtrip import RoundTripReport
from ..devdb import DevCluster, DevDBError
from ..engine.session import libpq_url
from ..engine.templatedb import Template, TemplateServer, database_url
from ..errors import ConfigError
from ..settings import Settings, sqlalchemy_url

if TYPE_CHECKING:
    from collections.abc import Iterable

#: Every database a session makes starts with this, then the session's token and worker.
PREFIX = "fraiseql_t_"
TEMPLATE_PREFIX = "fraiseql_tpl_"
_SKIPPED_PARTS = {"__pycache__"}
#: What to do when the server of the test databases cannot be reached.
SERVER_HINT = ("give the test databases' server with --fraiseql-admin-url, "
               "FRAISEQL_TEST_ADMIN_URL or the fraiseql_admin_url ini option (a role with "
               "CREATEDB), or none of them for a throwaway PostgreSQL")

__all__ = ["DbapiConnection", "Engine", "TemplateDatabases", "dbapi_connection",
           "folder_digest", "sqlalchemy_engine", "template_name"]


def folder_digest(folder: Path, history_schema: str = "public") -> str:
    """SHA-256 (hex) of every file under ``folder`` (names and bytes; bytecode and
    ``__pycache__`` left out), this package's version and the history schema."""
    digest = hashlib.sha256(f"fraiseql-alembic {__version__}\0{history_schema}\0".encode())
    files = sorted(path for path in folder.rglob("*")
                   if path.is_file() and not _SKIPPED_PARTS & set(path.parts)
                   and path.suffix != ".pyc")
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def template_name(folder: Path, digest: str) -> str:
    """The kept template of ``folder`` (absolute) whose content has ``digest``: by folder
    and content, since a folder's older template is dropped when a new one is built, two
    folders never share one (even with the same files)."""
    return TEMPLATE_PREFIX + hashlib.sha256(f"{folder}\0{digest}".encode()).hexdigest()[:24]


class TemplateDatabases:
    """Databases for one test session (or one xdist worker): the template of ``settings``'
    migrations on the server of ``admin_url`` (None: a throwaway PostgreSQL), and copies.

    ``settings.path`` is the migrations folder; its history schema and run options are
    used, its database URL is not.  ``worker`` goes into the names of the databases made
    (with a random token), so parallel sessions never share one."""

    def __init__(self, settings: Settings, admin_url: str | None, worker: str = "main", *,
                 background: bool = True, keep_template: bool = True) -> None:
        self.settings = settings
        self.admin_url = admin_url
        self.prefix = f"{PREFIX}{uuid.uuid4().hex[:8]}_{_safe(worker)}_"
        #: Copies are made ahead and dropped behind, on a connection of their own in a
        #: thread (one at a time, in order), while the tests run.
        self.background = background
        #: Keep the template on the server for the next session (named by content); else
        #: this session builds one of its own and drops it at :meth:`close`.
        self.keep_template = keep_template
        self._cluster: DevCluster | None = None
        self._server: TemplateServer | None = None
        self._template: Template | None = None
        self._count = 0
        self._helper: TemplateServer | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._next: Future[str] | None = None
        self._pending: list[Future[None]] = []

    @property
    def server(self) -> TemplateServer:
        """The server the databases live on (a throwaway one is started on first use)."""
        if self._server is None:
            url = self.admin_url
            if url is None:
                try:
                    self._cluster = DevCluster.start(_in_memory())
                except DevDBError as err:
                    raise ConfigError(
                        f"Cannot start a throwaway PostgreSQL for the tests: {err}; or give "
                        "a server with --fraiseql-admin-url (or FRAISEQL_TEST_ADMIN_URL)"
                    ) from err
                url = self._cluster.url("postgres")
            self._server = TemplateServer(url, hint=SERVER_HINT)
        return self._server

    @property
    def cluster_dir(self) -> Path | None:
        """The directory of the throwaway PostgreSQL, while one runs."""
        return self._cluster.base_dir if self._cluster is not None else None

    def template(self) -> Template:
        """The template with every migration applied: built on first call (or found on
        the server, built earlier from the same migrations)."""
        if self._template is None:
            folder = self.settings.path.resolve()
            if not folder.is_dir():
                raise ConfigError(
                    f"Migrations folder {folder} does not exist; point the ini option "
                    "fraiseql_migrations (or --fraiseql-migrations) at it, or set path "
                    "under [tool.fraiseql.migrations]")
            digest = folder_digest(folder, self.settings.history_schema)
            name = (template_name(folder, digest) if self.keep_template
                    else f"{self.prefix}template")
            self._template = self.server.template(
                name, str(folder), digest, self._build, replace_older=self.keep_template)
        return self._template

    def _build(self, url: str) -> None:
        upgrade(self.settings_for(url))

    def settings_for(self, url: str) -> Settings:
        """The project's settings on the database at ``url``."""
        return replace(self.settings, database_url=url, url_source="fraiseql pytest plugin")

    def _name(self) -> str:
        self._count += 1
        return f"{self.prefix}{self._count}"

    def clone(self) -> tuple[str, str]:
        """A new database copied from the template: its name and URL.

        In the background (the default) the next copy is made as soon as this one is
        handed out, so that a test seldom waits for one."""
        template = self.template()
        if not self.background:
            name = self._name()
            return name, self.server.clone(template.name, name)
        ready = self._next if self._next is not None else self._copy_ahead(template)
        self._next = None
        name = ready.result()
        self._next = self._copy_ahead(template)
        return name, database_url(self.server.admin_url, name)

    def _copy_ahead(self, template: Template) -> Future[str]:
        name = self._name()
        helper = self._background()[0]

        def copy() -> str:
            helper.clone(template.name, name)
            return name

        return self._background()[1].submit(copy)

    def settle(self) -> None:
        """Wait until the background work handed out so far (the copy made ahead, the
        drops) is done."""
        if self._next is not None:
            wait([self._next])
        wait(self._pending)

    def _background(self) -> tuple[TemplateServer, ThreadPoolExecutor]:
        if self._helper is None or self._thread is None:
            self._helper = TemplateServer(self.server.admin_url, hint=SERVER_HINT)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="fraiseql-copies")
        return self._helper, self._thread

    def create(self) -> tuple[str, str]:
        """A new empty database: its name and URL."""
        name = self._name()
        return name, self.server.create(name)

    def drop(self, name: str) -> None:
        """Drop a database this session made (sessions still on it are ended); in the
        background unless ``background`` is false (:meth:`close` waits for it)."""
        if not self.background:
            self.server.drop(name)
            return
        helper, thread = self._background()
        self._pending = [future for future in self._pending if not future.done()
                         or future.exception() is not None]
        self._pending.append(thread.submit(helper.drop, name))

    def up_down_up(self, irreversible: Iterable[str] = ()) -> RoundTripReport:
        """:func:`fraiseql_alembic.api.up_down_up` on a new empty database, dropped after."""
        name, url = self.create()
        try:
            return up_down_up(self.settings_for(url), irreversible=irreversible)
        finally:
            self.server.drop(name)

    def close(self) -> None:
        """Wait for the background work, drop every database this session made and left
        (the copy made ahead too), stop a throwaway server.  A background drop that
        failed is raised here, after the clean-up."""
        failed = None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            failed = next((future.exception() for future in self._pending
                           if future.exception() is not None), None)
            if self._helper is not None:
                self._helper.close()
        try:
            # (a server never reached holds nothing of ours)
            if self._server is not None and self._server.connected and self._cluster is None:
                for name in self._server.databases(self.prefix):
                    if self._template is not None and name == self._template.name:
                        self._server.drop_template(name)  # keep_template=False
                    else:
                        self._server.drop(name)
        finally:
            if self._server is not None:
                self._server.close()
            if self._cluster is not None:
                try:
                    self._cluster.stop("immediate")  # nothing in it is worth a checkpoint
                finally:
                    shutil.rmtree(self._cluster.base_dir, ignore_errors=True)
        if failed is not None:
            raise failed


def sqlalchemy_engine(url: str) -> Engine:
    """A SQLAlchemy engine (psycopg2) on ``url``; the caller disposes of it."""
    return sqlalchemy.create_engine(sqlalchemy_url(url))


def dbapi_connection(url: str) -> DbapiConnection:
    """A psycopg2 connection to ``url``; the caller closes it."""
    connection: DbapiConnection = psycopg2.connect(libpq_url(url))
    return connection


#: Where a throwaway server goes when it can: memory (a copy there costs a fraction of
#: one on a disk that other work shares: bench/testing-results.md).
MEMORY = Path("/dev/shm")
_MEMORY_NEEDED = 512 * 1024 * 1024


def _in_memory() -> Path | None:
    """A new directory for a throwaway server in memory, or None (the temp directory)."""
    try:
        free = os.statvfs(MEMORY)
    except OSError:
        return None
    if free.f_bavail * free.f_frsize < _MEMORY_NEEDED or not os.access(MEMORY, os.W_OK):
        return None
    return Path(tempfile.mkdtemp(prefix="fraiseql-tests-", dir=MEMORY))


def _safe(text: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in text.lower())[:12]
