"""One exception root for everything fraiseql-alembic reports to a user.

Every error carries a message that is one line: what went wrong, where, and what
to do next.  The CLI prints ``Error: <message>`` and exits with ``exit_code``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from . import sqlstate as codes


class MigrationError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MigrationError):
    """The command line or its arguments are wrong (exit code 2)."""

    exit_code = 2


class ConfigError(MigrationError):
    """The project or database configuration is missing or invalid."""


class MigrationFileError(MigrationError):
    """A migration file cannot be read or parsed; names the file and line."""

    def __init__(self, filename: str, message: str, line: int | None = None) -> None:
        where = f"{filename}:{line}" if line is not None else filename
        super().__init__(f"{where}: {message}")
        self.filename = filename
        self.line = line
        self.detail = message  # the message without "file:line: "


class MigrationLayoutError(MigrationError):
    """The set of files does not form one ordered chain (duplicates, gaps, bad names)."""


class ChecksumMismatchError(MigrationError):
    """An applied migration's file changed since it was applied."""


class IrreversibleMigrationError(MigrationError):
    """``down`` was asked to undo a migration that has no down section."""


class MigrationExecutionError(MigrationError):
    """PostgreSQL rejected a statement of a migration; nothing of it was kept."""

    def __init__(
        self,
        filename: str,
        line: int,
        column: int,
        statement: str,
        pg_message: str,
        sqlstate: str | None,
        *,
        kept_nothing: bool = True,
        connection_lost: bool = False,
        resume_command: str | None = None,
    ) -> None:
        first_line = _first_line(statement)
        state = codes.shown(sqlstate)
        if connection_lost:
            tail = (
                " The connection to the database was lost; nothing of this migration was "
                "kept. Run the command again once the database is back."
            )
        elif resume_command is not None:
            tail = (
                " The parts of the file before this statement's segment were run and are "
                f"recorded; fix the file from here on and run `{resume_command}` to resume."
            )
        elif sqlstate == codes.LOCK_NOT_AVAILABLE:
            tail = (
                " Another session holds a lock this migration needs (lock_timeout); nothing "
                "of it was kept. Retry when that transaction ends."
            )
        elif kept_nothing:
            tail = " The migration was rolled back; fix the file and run the command again."
        else:
            tail = " This statement ran outside a transaction; see `fraiseql migrate status`."
        super().__init__(
            f"Migration {filename} failed at line {line}, column {column}: "
            f"{pg_message}{state} in statement `{first_line}`.{tail}"
        )
        self.filename = filename
        self.line = line
        self.column = column
        self.statement = statement
        self.pg_message = pg_message
        self.sqlstate = sqlstate
        self.located = (  # file:line:column, the server's words and the statement
            f"{filename}:{line}:{column}: {pg_message}{state} in statement `{first_line}`"
        )


def _first_line(statement: str) -> str:
    first = statement.strip().splitlines()[0] if statement.strip() else ""
    return first[:77] + "..." if len(first) > 80 else first


class InterruptedStatementError(MigrationFileError):
    """A statement run outside a transaction was interrupted (the client died or lost its
    connection while it ran) and whether it took effect cannot be known."""

    def __init__(self, filename: str, line: int, statement: str, direction: str) -> None:
        command = f"fraiseql migrate {direction}"
        super().__init__(
            filename,
            f"`{_first_line(statement)}` ran outside a transaction and an earlier run "
            "stopped before recording its outcome, so it may have taken effect; nothing was "
            f"run. Check the database, then run `{command} --resume done` if it took effect, "
            f"or `{command} --resume again` to run it again",
            line,
        )
        self.statement = statement


class StatementStillRunningError(MigrationFileError):
    """The statement an earlier run left unrecorded is still running on the server."""

    def __init__(
        self, filename: str, line: int, statement: str, pid: int, direction: str
    ) -> None:
        super().__init__(
            filename,
            f"`{_first_line(statement)}`, sent by an earlier run that stopped, is still "
            f"running on the server (pid {pid}); nothing was run. Wait for it to finish, or "
            f"cancel it (SELECT pg_cancel_backend({pid})), then run `fraiseql migrate "
            f"{direction}` again",
            line,
        )
        self.statement = statement
        self.pid = pid


class FileAccessError(MigrationError):
    """A file or folder could not be read or written (permissions, a symbolic link loop, a
    read-only file system, ...): see :func:`file_access_error`."""


def shown_path(path: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """``path`` relative to the current directory when it is below it, else as it is.
    ``cwd``: the current directory, when the caller shows many paths (one lookup)."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd() if cwd is None else cwd))
    except (ValueError, OSError):
        return str(path)


def plural(count: int, noun: str = "migration") -> str:
    """``1 migration``, ``3 migrations``."""
    return f"{count} {noun}{'s' if count != 1 else ''}"


def os_reason(err: OSError, where: str, *, writing: bool = False) -> str:
    """Why a file operation on ``where`` (when ``writing``: in that folder) failed and what
    to do, in our words: no errno and no exception name.  The one place OSErrors are put
    into words."""
    code = err.errno
    if code == errno.ELOOP:
        return ("it is a symbolic link that leads back to itself (a loop); point it at a "
                "real file or folder, or remove it")
    if code in (errno.EACCES, errno.EPERM):
        import getpass  # lazy: only this message needs it (it loads termios)

        try:
            user = f" {getpass.getuser()}"
        except (KeyError, OSError):
            user = ""
        if writing:
            return (f"permission denied: user{user} may not write there; fix the folder's "
                    f"permissions (see `ls -ld {where}`) or run as a user who may")
        return (f"permission denied: user{user} may not read it; fix its permissions "
                f"(see `ls -ld {where}`) or run as a user who may")
    if code == errno.EROFS:
        return ("the file system is read-only; run this where the migrations folder is "
                "writable (e.g. your checkout, not a deployed image)")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device (or the disk quota is used up); free some space"
    if code == errno.ENOENT:
        return "it does not exist"
    if code == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    if code == errno.EISDIR:
        return "it is a folder, not a file"
    if code == errno.ENAMETOOLONG:
        return "the name is too long for the file system"
    if code == errno.EIO:
        return "input/output error (a failing disk or network file system?)"
    text = err.strerror or str(err) or type(err).__name__
    return text[:1].lower() + text[1:]


def file_access_error(
    err: OSError, path: str | os.PathLike[str] | None = None, *, action: str = "use",
    writing: bool = False,
) -> FileAccessError:
    """``Cannot <action> <path>: <reason>`` for an OSError, the path shown relative to the
    current directory (``path``, else the one the error names)."""
    target = path if path is not None else err.filename
    if target is None or isinstance(target, int):
        return FileAccessError(f"Cannot {action} a file: {os_reason(err, 'it', writing=writing)}")
    where = shown_path(os.fsdecode(target))
    folder = shown_path(Path(os.fsdecode(target)).parent) if writing else where
    return FileAccessError(f"Cannot {action} {where}: {os_reason(err, folder, writing=writing)}")


class DatabaseError(MigrationError):
    """The database could not be reached or refused an operation outside a migration."""


class ConnectError(DatabaseError):
    """No session could be opened on the database at ``shown`` (its masked URL): the
    driver's ``reason``, and where to look: the setting ``source`` names (a
    ``Settings.url_source``, e.g. ``--database-url``, ``DATABASE_URL``, ``environment
    prod``, ``target eu-1``), or the database URL when that is not known."""

    def __init__(self, shown: str, reason: str, source: str | None = None) -> None:
        super().__init__(f"Cannot connect to {shown}: {reason}. Check {url_setting(source)} "
                         "and that the server is running")
        self.shown, self.reason, self.source = shown, reason, source

    def named(self, source: str | None) -> ConnectError:
        """The same failure, saying that the URL came from ``source``; this very error
        when it names a source already, or ``source`` is None."""
        if self.source is not None or source is None:
            return self
        return ConnectError(self.shown, self.reason, source)


def url_setting(source: str | None) -> str:
    """The setting a user edits to change a URL taken from ``source`` (a
    ``Settings.url_source``), in words."""
    if source in ("--database-url", "DATABASE_URL"):
        return source
    if source == "alembic.ini":
        return "sqlalchemy.url in alembic.ini"
    if source is not None and source.endswith(".toml"):
        return f"database_url in {source}"
    if source is not None and source.startswith("environment "):
        return f"the url of {source}"
    if source is not None and source.startswith("target "):
        return "the target's URL in the targets file"
    return "the database URL"


class AbortedByUser(MigrationError):
    """The user declined a confirmation prompt, or no terminal was there to ask."""


def our_error_in_context(err: BaseException) -> MigrationError | None:
    """The MigrationError that ``err`` was raised while handling, if any.

    A failed ROLLBACK on a dead connection raises a second, vaguer error whose
    ``__context__`` holds the one that names the migration, file and line.
    """
    seen: set[int] = set()
    current: BaseException | None = err.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        original = getattr(current, "original", None)
        if isinstance(original, MigrationError):
            return original
        if isinstance(current, MigrationError):
            return current
        current = current.__context__
    return None
