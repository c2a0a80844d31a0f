"""Send a query string of several statements and tell which statement failed.

The step runner (:mod:`.run`) sends an ordinary migration as one simple-protocol query
(``BEGIN; <statements>; <bookkeeping>; COMMIT`` on the direct path, ``<statements>;
<history row>`` inside Alembic's transaction).  PostgreSQL answers every statement of it with a
result of its own, in order, and stops at the first error; psycopg2 keeps only the last
result, so which statement failed was lost unless the error carried a position (syntax
errors, unknown columns, ...).  Here the query goes through libpq itself, on the
connection psycopg2 opened (its documented ``connection.pgconn_ptr``, with the libpq
psycopg2 loaded): the results that completed before the error count the statements that
ran, which names the failing one for every error (a constraint, a lock timeout, a
cancellation, ``COMMIT``), however long it ran, without running anything again.  It
costs no server work: no marker statement is added to the query.

Only the wait for the server (and sending a large query) releases the GIL, as psycopg2
releases it once per query: the thread that prepares the next migrations is not handed
the GIL once per result.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# ExecStatusType values (libpq-fe.h)
_COMMAND_OK, _TUPLES_OK, _COPY_OUT, _COPY_IN = 1, 2, 3, 4
_FATAL_ERROR, _COPY_BOTH = 7, 8
_CONNECTION_BAD = 1
# PG_DIAG_* field codes
_SQLSTATE, _MESSAGE_PRIMARY, _STATEMENT_POSITION = ord("C"), ord("M"), ord("P")

#: Queries up to this many bytes are sent without releasing the GIL.
SMALL_QUERY = 16 << 10

_NoticeReceiver = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


@dataclass(frozen=True)
class Outcome:
    """What became of a query: how many of its statements completed, and the error that
    stopped it (None: all of them ran)."""

    completed: int
    error: Exception | None = None
    position: int | None = None  # PostgreSQL's 1-based error position in the query
    lost: bool = False  # the connection is gone
    #: rows each completed statement changed, in order (:func:`changed_rows`)
    rows: tuple[int, ...] = ()


class _LibPQ:
    """The libpq functions used here.  ``wait`` releases the GIL while it blocks; the
    others return at once and keep it."""

    def __init__(self, path: str) -> None:
        waiting = ctypes.CDLL(path)  # a foreign call through CDLL releases the GIL
        quick = ctypes.PyDLL(path)  # ... through PyDLL keeps it
        conn, res = ctypes.c_void_p, ctypes.c_void_p
        self.send = _bind(waiting.PQsendQuery, ctypes.c_int, conn, ctypes.c_char_p)
        self.send_small = _bind(quick.PQsendQuery, ctypes.c_int, conn, ctypes.c_char_p)
        self.wait = _bind(waiting.PQgetResult, res, conn)
        self.get = _bind(quick.PQgetResult, res, conn)
        self.busy = _bind(quick.PQisBusy, ctypes.c_int, conn)
        self.status = _bind(quick.PQresultStatus, ctypes.c_int, res)
        self.clear = _bind(quick.PQclear, None, res)
        self.field = _bind(quick.PQresultErrorField, ctypes.c_char_p, res, ctypes.c_int)
        self.message = _bind(quick.PQresultErrorMessage, ctypes.c_char_p, res)
        self.command_status = _bind(quick.PQcmdStatus, ctypes.c_char_p, res)
        self.connection_status = _bind(quick.PQstatus, ctypes.c_int, conn)
        self.connection_message = _bind(quick.PQerrorMessage, ctypes.c_char_p, conn)
        self.receiver = _bind(quick.PQsetNoticeReceiver, _NoticeReceiver, conn,
                              _NoticeReceiver, ctypes.c_void_p)
        self.copy_data = _bind(waiting.PQgetCopyData, ctypes.c_int, conn,
                               ctypes.POINTER(ctypes.c_void_p), ctypes.c_int)
        self.free = _bind(quick.PQfreemem, None, ctypes.c_void_p)
        self.copy_end = _bind(waiting.PQputCopyEnd, ctypes.c_int, conn, ctypes.c_char_p)


def _bind(function: Any, restype: Any, *argtypes: Any) -> Any:
    function.restype = restype
    function.argtypes = list(argtypes)
    return function


@functools.cache
def _libpq() -> _LibPQ | None:
    """libpq as psycopg2 loaded it (its own copy in psycopg2-binary), or None when its
    functions cannot be reached (a psycopg2 that links libpq statically)."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2._psycopg

    try:
        return _LibPQ(psycopg2._psycopg.__file__)  # noqa: SLF001 (where its libpq lives)
    except (OSError, AttributeError):
        return None


def available(dbapi: Any) -> bool:
    """Whether :func:`run` can serve this connection: libpq is reachable and psycopg2 has
    no wait callback (a green/async set-up, whose waits must go through psycopg2)."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2.extensions

    return (_libpq() is not None and psycopg2.extensions.get_wait_callback() is None
            and not dbapi.closed)


# The notices of the query running on each connection, by a key passed to libpq.
_notices: dict[int, list[bytes]] = {}


def _on_notice(key: int | None, result: int | None) -> None:
    lib = _libpq()
    if lib is not None and key is not None:  # installed only when both are there
        _notices.setdefault(key, []).append(lib.message(result) or b"")


_receive = _NoticeReceiver(_on_notice)  # kept alive here while libpq may call it


def run(dbapi: Any, query: bytes, on_notice: Callable[[str], None]) -> Outcome:
    """Run ``query`` (already in the connection's encoding, parameters inlined) on
    ``dbapi``, an idle connection in autocommit mode.

    Notices go to ``on_notice`` as psycopg2 appends them to ``connection.notices``
    (``NOTICE:  text``), in order, as their statements end.  Each statement's rows are
    discarded.  The connection is left idle, or in a failed transaction block (the
    caller rolls back), or broken (``lost``).
    """
    lib = _libpq()
    assert lib is not None, "check available() first"
    connection = dbapi.pgconn_ptr
    encoding = _python_encoding(dbapi)
    key = id(dbapi)
    previous = lib.receiver(connection, _receive, key)
    completed = 0
    rows: list[int] = []
    error: Exception | None = None
    position: int | None = None
    try:
        # A small query fits the socket's buffer at once: sending it keeps the GIL (one
        # hand-over fewer per migration); a large one may wait for the server to read.
        send = lib.send_small if len(query) <= SMALL_QUERY else lib.send
        if not send(connection, query):
            return _broken(lib, connection, dbapi, completed, encoding)
        while True:
            result = lib.wait(connection) if lib.busy(connection) else lib.get(connection)
            for raw in _notices.pop(key, ()):
                on_notice(raw.decode(encoding, "replace"))
            if not result:
                break
            try:
                status = lib.status(result)
                if status in (_COMMAND_OK, _TUPLES_OK):
                    if error is None:
                        completed += 1
                        rows.append(changed_rows(lib.command_status(result) or b""))
                elif status == _FATAL_ERROR:
                    if error is None:
                        error, position = _error(lib, result, encoding,
                                                 lib.connection_status(connection)
                                                 == _CONNECTION_BAD)
                elif status in (_COPY_OUT, _COPY_BOTH):  # COPY ... TO STDOUT: read, dropped
                    _drain_copy(lib, connection)
                elif status == _COPY_IN:  # FROM stdin with no data here: refuse it
                    lib.copy_end(connection, b"COPY FROM stdin data cannot be sent here")
            finally:
                lib.clear(result)
    finally:
        lib.receiver(connection, previous, None)
        _notices.pop(key, None)
    lost = lib.connection_status(connection) == _CONNECTION_BAD
    if lost:
        _tell_psycopg2(dbapi)
    return Outcome(completed, error, position, lost, tuple(rows))


#: Command tags whose last number is the count of rows the statement changed.
_CHANGING = (b"INSERT ", b"UPDATE ", b"DELETE ", b"MERGE ", b"COPY ")


def changed_rows(tag: bytes | str) -> int:
    """Pure: how many rows a statement changed, from its command tag (``INSERT 0 5``,
    ``UPDATE 3``, ``COPY 10``...); 0 for any other statement (DDL, ``SELECT``)."""
    if isinstance(tag, str):
        tag = tag.encode("ascii", "replace")
    if not tag.startswith(_CHANGING):
        return 0
    count = tag.rsplit(b" ", 1)[-1]
    return int(count) if count.isdigit() else 0


def _python_encoding(dbapi: Any) -> str:
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2.extensions

    return str(psycopg2.extensions.encodings.get(dbapi.encoding, "utf-8")).replace("_", "-")


def _error(lib: _LibPQ, result: int, encoding: str, lost: bool) -> tuple[Exception, int | None]:
    """The error a failed statement's result holds, as the psycopg2 exception psycopg2
    would have raised (class by SQLSTATE, ``pgcode``, ``pgerror``, message)."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2
    import psycopg2.errors

    def text(raw: bytes | None) -> str | None:
        return raw.decode(encoding, "replace") if raw is not None else None

    sqlstate = text(lib.field(result, _SQLSTATE))
    full = text(lib.message(result)) or ""
    primary = text(lib.field(result, _MESSAGE_PRIMARY))
    raw_position = text(lib.field(result, _STATEMENT_POSITION))
    cls: type[Exception] = psycopg2.OperationalError if lost else psycopg2.DatabaseError
    if sqlstate:
        with contextlib.suppress(KeyError):  # a SQLSTATE newer than psycopg2
            cls = psycopg2.errors.lookup(sqlstate)
    # psycopg2's message: PostgreSQL's without the leading "ERROR:  "
    head, sep, rest = full.partition(":  ")
    message = rest if sep and head.isupper() else full
    err = cls(message if message.strip() else (primary or "server error"))
    err.__setstate__({"pgerror": full or None, "pgcode": sqlstate})
    position = int(raw_position) if raw_position and raw_position.isdigit() else None
    return err, position


def _broken(lib: _LibPQ, connection: int, dbapi: Any, completed: int,
            encoding: str) -> Outcome:
    """The query could not be sent: the connection is gone."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    raw = lib.connection_message(connection) or b""
    message = raw.decode(encoding, "replace").strip() or "connection lost"
    lost = lib.connection_status(connection) == _CONNECTION_BAD
    if lost:
        _tell_psycopg2(dbapi)
    return Outcome(completed, psycopg2.OperationalError(message), None, lost)


def _drain_copy(lib: _LibPQ, connection: int) -> None:
    buffer = ctypes.c_void_p()
    while True:
        size = lib.copy_data(connection, ctypes.byref(buffer), 0)
        if buffer:
            lib.free(buffer)
            buffer = ctypes.c_void_p()
        if size < 0:
            return


def _tell_psycopg2(dbapi: Any) -> None:
    """Let psycopg2 see that the connection broke (its ``closed`` becomes 2), as after a
    query of its own that lost the connection: a query on a broken connection does not
    tell it, ``reset()`` does (and fails, there being nothing to reset)."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    with contextlib.suppress(psycopg2.Error):
        dbapi.reset()
