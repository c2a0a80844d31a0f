"""Is there a connection pooler between us and PostgreSQL, and in which mode?

The advisory lock (engine/locking.py) needs a server session of its own, so it asks
:func:`pooling` first and refuses behind a pooler in transaction or statement mode with
:func:`pooler_error`; after a connection closed unexpectedly, :func:`statement_pooling`
tells whether a pooler in statement mode did it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ..errors import MigrationError
from ..secrets import mask_url
from .session import open_dbapi


class PoolerError(MigrationError):
    """The connection goes through a pooler that the chosen lock mode cannot work with."""


TRANSACTION, STATEMENT = "transaction", "statement"
PROBE_APPLICATION = "fraiseql-migrate probe"


def pooler_error(url: str, mode: str) -> PoolerError:
    """The one line for a pooler in ``mode`` (``transaction`` or ``statement``)."""
    if mode == STATEMENT:
        return PoolerError(
            f"{mask_url(url)} goes through a connection pooler in statement mode (PgBouncer "
            "pool_mode = statement): it closes the connection at the first BEGIN, and every "
            "migration is a transaction. Point DATABASE_URL at PostgreSQL itself, at a pool "
            "in session mode, or at one in transaction mode with --lock lease; nothing was "
            "changed"
        )
    return PoolerError(
        f"{mask_url(url)} goes through a connection pooler in transaction mode (PgBouncer "
        "pool_mode = transaction: the server session changed between two transactions), "
        "where the session advisory lock that keeps deploys apart would be lost. Use "
        "--lock lease (FRAISEQL_LOCK=lease, or lock = \"lease\" in pyproject.toml), or point "
        "DATABASE_URL at PostgreSQL itself or at a pool in session mode; nothing was changed"
    )


def pooling(connection: Any, url: str) -> str | None:
    """``"transaction"``, ``"statement"`` or None: how a pooler between ``connection``
    (autocommit, ours) and PostgreSQL shares server sessions.

    A connection whose server sees our own socket's address and port is direct: one
    query answers.  Otherwise (a Unix socket, or a proxy) a second connection probes:
    PgBouncer hands out server connections last-in first-out, so in transaction or
    statement mode the probe's transaction lands on the backend our first query just
    left, or our next query lands on another one.  Neither happens to a session of its
    own (direct, or a pool in session mode).  A pooler in statement mode closes the
    probe's connection at its BEGIN while ours still answers.
    """
    import psycopg2  # lazy: psycopg2 (~20 ms) loads only when a command connects

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), host(inet_client_addr()), inet_client_port()")
        row = cursor.fetchone()
    assert row is not None
    first = int(row[0])
    if _is_own_socket(connection, row[1], row[2]):
        return None
    probe = open_dbapi(url, application_name=PROBE_APPLICATION)
    try:
        try:
            with probe.cursor() as cursor:  # psycopg2 sends BEGIN first: a transaction
                cursor.execute("SELECT pg_backend_pid()")
                probed = cursor.fetchone()
            probe.rollback()
        except psycopg2.OperationalError:
            if not probe.closed:
                raise
            with connection.cursor() as cursor:  # ours still answers: the pooler closed it
                cursor.execute("SELECT 1")
            return STATEMENT
    finally:
        probe.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        again = cursor.fetchone()
    assert probed is not None and again is not None
    return TRANSACTION if int(probed[0]) == first or int(again[0]) != first else None


def statement_pooling(url: str) -> bool:
    """Whether a fresh connection to ``url`` answers single statements but is closed at
    its first BEGIN: what PgBouncer in statement mode does (its own message, "transaction
    blocks not allowed in statement pooling mode", does not reach the client).  Asked
    after a connection was closed unexpectedly, to say so instead."""
    import psycopg2  # lazy: psycopg2 (~20 ms) loads only when a command connects

    try:
        probe = open_dbapi(url, application_name=PROBE_APPLICATION, connect_timeout=5)
    except MigrationError:
        return False
    try:
        probe.autocommit = True
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.execute("BEGIN")
            cursor.execute("ROLLBACK")
        return False
    except psycopg2.OperationalError:
        return bool(probe.closed)
    except psycopg2.Error:
        return False
    finally:
        probe.close()


def _is_own_socket(connection: Any, address: str | None, port: int | None) -> bool:
    """Whether the server's view of its client (address, port) is our own TCP socket."""
    if address is None or port is None:
        return False
    try:
        own = socket.socket(fileno=os.dup(connection.fileno()))
    except OSError:
        return False
    try:
        if own.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        local = own.getsockname()
    except OSError:
        return False
    finally:
        own.close()
    return int(local[1]) == int(port) and str(local[0]).removeprefix("::ffff:") == address
