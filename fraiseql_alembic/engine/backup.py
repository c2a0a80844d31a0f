"""``up --backup``: a ``pg_dump --format=custom`` of the database before anything is applied.

No secret is ever on pg_dump's command line, where ``ps`` (and any user of the
machine) would see it: the password travels in ``PGPASSWORD``, and a client key's
passphrase (``sslpassword``, which has no environment variable) in a private service
file (mode 0600, named by ``PGSERVICEFILE``, removed when pg_dump ends).  Every other
connection parameter, including query parameters such as ``sslmode``, goes in the libpq
URI given as ``--dbname``.  The dump is written to ``<FILE>.partial`` and renamed when
pg_dump succeeds, so a file at FILE is always a complete dump.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..errors import MigrationError
from ..secrets import mask_url, redact
from .cancel import MigrationInterrupted
from .database import open_dbapi
from .locking import libpq_url

if TYPE_CHECKING:
    from .cancel import CancelToken

BACKUP_FOLDER = "backups"
NOTHING_APPLIED = "Nothing was applied"


class BackupError(MigrationError):
    """pg_dump is missing, too old for the server, or failed; nothing was applied."""


@dataclass(frozen=True)
class Backup:
    """A finished dump: where it is and how big."""

    path: Path
    size_bytes: int
    database: str = ""
    maintenance_uri: str = ""  # password-free URI of the server's `postgres` database

    def restore_command(self, shown_path: str) -> str:
        """The pg_restore command that puts the database back exactly as dumped.

        ``--clean --create`` drops the database and creates it again from the dump, so
        objects made after the backup (a table a later migration created) go too; a
        plain ``--clean`` would leave them, and the next ``up`` would fail on them.
        pg_restore connects to the ``postgres`` database to do it; the password is not
        printed (PGPASSWORD or ~/.pgpass supply it).
        """
        return (
            "pg_restore --clean --create --if-exists --no-owner --dbname "
            + shlex.quote(mask_url(self.maintenance_uri) or "postgres")
            + " "
            + shlex.quote(shown_path)
        )


@dataclass(frozen=True)
class PgDumpUse:
    """What a pg_dump run is for, as its messages say it: the error raised, the action
    that cannot be done, the way round it, and what follows (e.g. nothing was applied)."""

    error: type[MigrationError]
    cannot: str
    instead: str
    tail: str = ""


#: ``up --backup``'s messages.
BACKUP_USE = PgDumpUse(BackupError, "Cannot back up", "or run without --backup",
                       f" {NOTHING_APPLIED}")


#: Connection parameters that are secrets: never on a command line.
SECRET_PARAMETERS = ("password", "sslpassword")
#: The section of the private service file that carries the other secrets.
SERVICE = "fraiseql_backup"


@dataclass(frozen=True)
class Connection:
    """How pg_dump reaches the database: a secret-free URI, and the secrets apart."""

    uri: str
    password: str | None
    dbname: str
    #: Secrets other than the password (``sslpassword``), by parameter name.
    secrets: tuple[tuple[str, str], ...] = ()


def split_password(url: str) -> Connection:
    """Pure: take the password (userinfo or ``?password=``) and the other secret
    parameters (``?sslpassword=``) out of a libpq URI."""
    parts = urlsplit(url)
    password: str | None = None
    netloc = parts.netloc
    userinfo, at, hostinfo = netloc.rpartition("@")
    if at:
        user, colon, secret = userinfo.partition(":")
        if colon:
            password = unquote(secret)
        netloc = f"{user}@{hostinfo}" if user else hostinfo
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = []
    secrets: dict[str, str] = {}
    for key, value in query:
        if key == "password":
            password = value
        elif key in SECRET_PARAMETERS:
            secrets[key] = value
        else:
            kept.append((key, value))
    dbname = unquote(parts.path.lstrip("/")) or dict(kept).get("dbname") or ""
    query_text = urlencode(kept)
    uri = f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query_text}" if query_text else "")
    return Connection(uri, password, dbname, tuple(sorted(secrets.items())))


@contextmanager
def private_service(connection: Connection, use: PgDumpUse | None = None
                    ) -> Iterator[tuple[str, dict[str, str]]]:
    """The URI and environment additions that hand pg_dump ``connection``'s secrets off
    its command line: ``PGPASSWORD``, and a service file only this user can read (0600),
    removed on leaving, for the others.  Yields the URI to pass as ``--dbname``.  ``use``:
    what the errors say (default: ``up --backup``'s words)."""
    use = use or BACKUP_USE
    env: dict[str, str] = {}
    if connection.password is not None:
        env["PGPASSWORD"] = connection.password
    if not connection.secrets:
        yield connection.uri, env
        return
    parts = urlsplit(connection.uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "service" for key, _ in query) or os.environ.get("PGSERVICE"):
        raise use.error(
            f"{use.cannot}: the database URL (or PGSERVICE) names a service and the URL "
            "holds an sslpassword; "
            "pg_dump could get the sslpassword only on its command line, where `ps` shows "
            f"it. Move sslpassword into that service's entry of pg_service.conf.{use.tail}"
        )
    lines = [f"[{SERVICE}]"]
    for key, value in connection.secrets:
        if value != value.strip() or "\n" in value or "\r" in value:
            raise use.error(
                f"{use.cannot}: the {key} in the database URL starts or ends with a space "
                f"or holds a line break, which pg_dump cannot be given privately.{use.tail}"
            )
        lines.append(f"{key}={value}")
    handle, name = tempfile.mkstemp(prefix="fraiseql-pgservice-", suffix=".conf")  # 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as service_file:
            service_file.write("\n".join(lines) + "\n")
        env["PGSERVICEFILE"] = name
        query_text = urlencode([*query, ("service", SERVICE)])
        yield urlunsplit(parts._replace(query=query_text)), env
    finally:
        with suppress(OSError):
            os.unlink(name)


def default_path(dbname: str, now: datetime | None = None, folder: Path | None = None) -> Path:
    """``backups/<dbname>-<YYYYmmddTHHMMSSZ>.dump`` (UTC), under ``folder`` or the cwd."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dbname).strip("._") or "database"
    return (folder or Path.cwd()) / BACKUP_FOLDER / f"{safe}-{moment:%Y%m%dT%H%M%SZ}.dump"


def find_pg_dump(use: PgDumpUse = BACKUP_USE) -> str:
    """pg_dump on PATH (``$FRAISEQL_PG_DUMP`` wins), else ``use.error`` saying what to do."""
    override = os.environ.get("FRAISEQL_PG_DUMP")
    found = override or shutil.which("pg_dump")
    if not found or not os.access(found, os.X_OK):
        where = f"FRAISEQL_PG_DUMP={override} is not an executable" if override else (
            "pg_dump is not on PATH")
        raise use.error(
            f"{use.cannot}: {where}. Install PostgreSQL's client tools (the server's major "
            f"version or newer, e.g. postgresql-client), {use.instead}.{use.tail}"
        )
    return found


def client_major(version_output: str) -> int | None:
    """Pure: 15 from ``pg_dump (PostgreSQL) 15.18 (Debian ...)``; 9 from ``9.6.24``."""
    match = re.search(r"\)\s*(\d+)(?:\.(\d+))?", version_output)
    if match is None:
        return None
    return int(match.group(1))


def server_major(server_version_num: int) -> int:
    """15 from 150018; 9 from 90624 (the 9.x series counts as 9)."""
    return server_version_num // 10000


@functools.lru_cache(maxsize=8)
def _version_output(pg_dump: str, _file: tuple[int, int, int], _cluster: str | None) -> str:
    """``pg_dump --version``, run once a process for the same file (and PGCLUSTER, which
    Debian's wrapper reads): a squash or a fleet dumps many times (~0.1 s a run)."""
    return subprocess.run(
        [pg_dump, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout


def check_versions(pg_dump: str, server_version_num: int,
                   use: PgDumpUse = BACKUP_USE) -> None:
    """Refuse a pg_dump older than the server: it cannot dump a newer server."""
    try:
        stat = os.stat(pg_dump)
        output = _version_output(pg_dump, (stat.st_ino, stat.st_size, stat.st_mtime_ns),
                                 os.environ.get("PGCLUSTER"))
    except (OSError, subprocess.SubprocessError) as err:
        raise use.error(
            f"{use.cannot}: `{pg_dump} --version` failed ({err}). Check the PostgreSQL "
            f"client installation, {use.instead}.{use.tail}"
        ) from err
    client = client_major(output)
    server = server_major(server_version_num)
    if client is None:
        raise use.error(
            f"{use.cannot}: `{pg_dump} --version` printed {output.strip()!r}, not a "
            f"PostgreSQL version.{use.tail}"
        )
    if client < server:
        raise use.error(
            f"{use.cannot}: {pg_dump} is PostgreSQL {client}, older than the server "
            f"(PostgreSQL {server}), and cannot dump it. Install postgresql-client-{server} "
            f"or newer (or point FRAISEQL_PG_DUMP at it), {use.instead}.{use.tail}"
        )


def dump(
    url: str,
    target: Path,
    *,
    lock_timeout: str | None = None,
    cancel: CancelToken | None = None,
) -> Backup:
    """Run pg_dump into ``target``; a BackupError (nothing written at ``target``) on failure.

    ``lock_timeout`` becomes pg_dump's ``--lock-wait-timeout``: a table held by a long
    transaction fails the backup instead of stalling the deploy.
    """
    pg_dump = find_pg_dump()
    check_versions(pg_dump, server_version_num(url))
    connection = split_password(libpq_url(url))
    if target.exists():
        raise BackupError(
            f"Cannot back up: {target} already exists; pass another --backup FILE or move "
            f"that file away. {NOTHING_APPLIED}"
        )
    partial = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
    except OSError as err:
        raise BackupError(
            f"Cannot back up to {target}: {err.strerror or err}; pass a writable --backup "
            f"FILE. {NOTHING_APPLIED}"
        ) from err
    with private_service(connection) as (uri, secret_env):
        command = [pg_dump, "--format=custom", "--file", str(partial)]
        if lock_timeout and lock_timeout != "0":
            command.append(f"--lock-wait-timeout={lock_timeout}")
        command += ["--dbname", uri]
        returncode, stderr = run_pg_dump(command, {**os.environ, **secret_env}, cancel)
    if returncode != 0:
        partial.unlink(missing_ok=True)
        if cancel is not None and cancel.cancelled:
            raise MigrationInterrupted(
                f"Stopped by {cancel.reason} during the backup; {NOTHING_APPLIED.lower()}"
            )
        reason = first_error(stderr, lock_timeout, connection.password,
                             *(value for _, value in connection.secrets))
        raise BackupError(
            f"Backup failed: {reason} (pg_dump exit {returncode}). {NOTHING_APPLIED}; fix the "
            "cause or run without --backup"
        )
    partial.replace(target)
    return Backup(target, target.stat().st_size, connection.dbname,
                  maintenance_uri(connection.uri))


def maintenance_uri(uri: str) -> str:
    """Pure: the same password-free URI naming the ``postgres`` database instead."""
    parts = urlsplit(uri)
    kept = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
            if key != "dbname"]
    return urlunsplit(parts._replace(path="/postgres", query=urlencode(kept)))


def server_version_num(url: str) -> int:
    """The server's ``server_version_num`` (150018 for 15.18)."""
    connection = open_dbapi(url)
    try:
        return int(connection.server_version)
    finally:
        connection.close()


def run_pg_dump(command: list[str], env: dict[str, str],
                cancel: CancelToken | None) -> tuple[int, str]:
    """Run pg_dump; a cancel (Ctrl-C, SIGTERM) terminates it."""
    with subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    ) as process:
        while True:
            try:
                _, stderr = process.communicate(timeout=0.1)
                return process.returncode, stderr
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.cancelled:
                    process.terminate()


def first_error(stderr: str, lock_timeout: str | None, *secrets: str | None) -> str:
    """pg_dump's error as one line, without its prefixes or a password.

    pg_dump enforces ``--lock-wait-timeout`` with a statement timeout on its ``LOCK
    TABLE``: that case is named as what it is, a table another session holds.
    """
    lines = [" ".join(line.split()) for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    chosen = re.sub(r"^pg_dump:\s*(error:\s*)?(query failed:\s*)?(ERROR:\s*)?", "", chosen)
    locked = next((match.group(1) for line in lines
                   if (match := re.search(r"Query was: LOCK TABLE (\S+)", line))), None)
    if locked is not None and "statement timeout" in chosen:
        chosen = (f"could not lock table {locked} within --lock-timeout {lock_timeout}: another "
                  "session holds a conflicting lock (a long transaction or a running "
                  "migration?)")
    return redact(chosen, *secrets) or "no message"
