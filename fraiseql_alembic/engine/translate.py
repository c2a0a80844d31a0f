"""The one place where psycopg2's, SQLAlchemy's and Alembic's errors become ours.

Like httpx's ``map_httpcore_exceptions``: a boundary that calls into a foreign library
either runs inside :func:`translating` (driver errors), or raises ``foreign_error(err)
from err`` itself; a SQLAlchemy error met while Alembic ran becomes :func:`in_a_run`'s
(the bridge's ``alembic_errors`` unwraps Alembic's ``CommandError`` and calls it).
Each failure gets one message, whichever path met it first.

psycopg2 and SQLAlchemy are imported inside the functions: ``fraiseql --help`` must not
load them.  Nothing here imports Alembic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .. import sqlstate
from ..errors import ConnectError, DatabaseError, MigrationError, our_error_in_context
from ..secrets import mask_url, password_of, redact


def server_words(err: BaseException) -> tuple[str, str]:
    """PostgreSQL's primary message for a driver error (else the error's first line), and
    `` [SQLSTATE xxxxx]`` when it has one (else "")."""
    diag = getattr(err, "diag", None)
    lines = str(err).strip().splitlines()
    message = (getattr(diag, "message_primary", None) or (lines[0] if lines else "")).strip()
    return message, sqlstate.shown(getattr(err, "pgcode", None))


def permission_denied(message: str, schema: str | None = None) -> DatabaseError:
    """The one message for SQLSTATE 42501 outside a migration's own SQL: the migrating
    role may not create or write our bookkeeping tables (in ``schema`` when known)."""
    where = f"schema {schema}" if schema else (
        "the schema that holds alembic_version and fraiseql_migrations")
    return DatabaseError(
        f"Permission denied: {message}{sqlstate.shown(sqlstate.INSUFFICIENT_PRIVILEGE)}. "
        f"The migrating role needs CREATE and USAGE on {where} (e.g. GRANT CREATE, USAGE ON "
        f"SCHEMA {schema or 'public'} TO <role>), or set history_schema to a schema it may "
        "write. Nothing was applied"
    )


def connect_error(url: str, err: BaseException) -> ConnectError:
    """One line naming the (masked) URL and the driver's first line of explanation; the
    layers that know where the URL was set name it (``Settings.naming_source``)."""
    original = getattr(err, "orig", None) or err
    text = str(original).strip().splitlines()
    reason = text[0] if text else type(original).__name__
    return ConnectError(mask_url(url), redact(reason, password_of(url)))


def database_error(err: BaseException) -> DatabaseError | None:
    """A driver or SQLAlchemy database error as one masked line; None for anything else."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    # lazy: SQLAlchemy (~150 ms) loads only when a run needs it
    from sqlalchemy.exc import DBAPIError

    if not isinstance(err, (psycopg2.Error, DBAPIError)):
        return None
    original = getattr(err, "orig", None) or err
    lines = str(original).strip().splitlines()
    first = redact(lines[0] if lines else type(original).__name__)
    code = getattr(original, "pgcode", None)
    if code == sqlstate.INSUFFICIENT_PRIVILEGE:
        return permission_denied(first)
    return DatabaseError(f"Database error: {first}{sqlstate.shown(code)}")


def foreign_error(err: BaseException) -> MigrationError:
    """:func:`database_error`, or the error's text as a :class:`DatabaseError`."""
    return database_error(err) or DatabaseError(str(err))


@contextmanager
def translating() -> Iterator[None]:
    """Driver errors raised inside become :func:`foreign_error`'s."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    try:
        yield
    except psycopg2.Error as err:
        raise foreign_error(err) from err


def in_a_run(err: BaseException, running: str | None = None) -> MigrationError:
    """A SQLAlchemy database error raised while Alembic ran (e.g. the connection dropped
    outside a migration's SQL) as ours; ``running`` names the migration under way."""
    cause = our_error_in_context(err)
    if cause is not None:  # a failed rollback on a dead connection hid the real error
        return cause
    original = getattr(err, "orig", None)
    if getattr(original, "pgcode", None) == sqlstate.INSUFFICIENT_PRIVILEGE:
        return foreign_error(err)
    lines = str(original or err).strip().splitlines()
    where = f" while running {running}" if running else ""
    return DatabaseError(
        f"Database error{where}: {redact(lines[0] if lines else type(err).__name__)}. "
        "That migration was rolled back; run the command again once the database is back"
    )
