"""Cooperative cancellation of a running migration (Ctrl-C, SIGTERM from a deploy timeout).

The CLI runs the migration in a worker thread and keeps the main thread free for
signals.  On a signal it calls :meth:`CancelToken.cancel`.  The runner sends each
statement of a migration inside :meth:`CancelToken.sending`, which checks the token and
marks the statement in flight under one lock, so a cancel is never lost:

* asked for before the mark: the statement is not sent (:class:`MigrationInterrupted`);
* asked for after it: the server is asked to cancel the statement (``PQcancel``), and
  asked again, at growing intervals, until the worker reports the statement ended.  A
  cancel that reaches a backend which has not read the statement yet (the signal landed
  between the check and the statement reaching the server) is ignored by PostgreSQL, so
  one request is not enough; a later one finds the statement running.

A re-sent cancel cannot hit what follows the statement (the ``ROLLBACK``, the lock's
release): a request is sent only under the connection's lock while the statement is in
flight, the worker leaves the flight under that lock, and libpq's ``PQcancel`` returns
once the server has processed the request, so a request that arrives after the statement
ended reaches an idle backend, which drops it before it reads its next command.

A connection the runner :meth:`owns <owning>` gets requests only while a statement is in
flight.  Under Alembic, the bridge sends what SQLAlchemy sends (a ``.py`` revision's
statements, Alembic's own) inside :meth:`sending` too, by SQLAlchemy's cursor events;
other code's statements get one request when their connection is :meth:`registered
<register>`.  The migration in flight is rolled back; the ones before it stay applied.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import MigrationError

#: Seconds between two cancel requests for a statement still in flight: the first
#: re-send soon (the statement was on its way), then less often, for a statement that
#: takes long to act on a cancel (the server checks for it between rows, pages, locks).
RESEND_DELAYS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class MigrationInterrupted(MigrationError):
    """The run was stopped by a signal; the migration in flight was rolled back."""

    exit_code = 130


class _Flight:
    """One statement in flight on a connection; ``lock`` serialises its cancel requests
    with its end."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.lock = threading.Lock()
        self.ended = False


class CancelToken:
    """Shared between the thread that receives signals and the ones that migrate."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._guard = threading.Lock()
        self._connections: list[Any] = []
        self._flights: list[_Flight] = []
        self._owned: list[Any] = []  # connections whose statements all go through sending()
        self._changed = threading.Condition(self._guard)  # a flight ended
        self._resender: threading.Thread | None = None
        self.reason = "interrupted"

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def register(self, dbapi_connection: Any) -> None:
        """A connection whose statements not sent through :meth:`sending` get one cancel
        request on :meth:`cancel` (those sent through it are followed until they end)."""
        with self._guard:
            self._connections.append(dbapi_connection)

    def unregister(self, dbapi_connection: Any) -> None:
        with self._guard:
            if dbapi_connection in self._connections:
                self._connections.remove(dbapi_connection)

    @contextlib.contextmanager
    def owning(self, dbapi_connection: Any) -> Iterator[None]:
        """While in this block every statement that may run long on ``dbapi_connection``
        goes through :meth:`sending` (the step runner's): it gets no cancel request when
        none is in flight, which could only hit a bookkeeping query (the worker checks the
        token before its next statement anyway)."""
        with self._guard:
            self._owned.append(dbapi_connection)
        try:
            yield
        finally:
            with self._guard:
                self._owned.remove(dbapi_connection)

    def cancel(self, reason: str = "interrupted") -> None:
        """Cancel what runs: every statement in flight, until it ends; one request to
        each registered connection that has none in flight and is not :meth:`owned
        <owning>`.  Returns once the first requests are sent; a daemon thread re-sends
        them."""
        self.reason = reason
        self._event.set()
        with self._guard:
            flights = list(self._flights)
            quiet = {id(c) for c in self._owned} | {id(f.connection) for f in flights}
            others = [c for c in self._connections if id(c) not in quiet]
            start = self._resender is None and bool(flights)
            if start:
                self._resender = threading.Thread(target=self._resend, name="fraiseql-cancel",
                                                  daemon=True)
        for flight in flights:
            _request(flight)
        for connection in others:
            # the connection may be gone already: then there is nothing to cancel
            with contextlib.suppress(Exception):
                connection.cancel()
        if start:
            assert self._resender is not None
            self._resender.start()

    def check(self, where: str = "") -> None:
        """Raise MigrationInterrupted if cancellation was asked for."""
        if self.cancelled:
            suffix = f" {where}" if where else ""
            raise MigrationInterrupted(f"Stopped by {self.reason}{suffix}")

    @contextlib.contextmanager
    def sending(self, dbapi_connection: Any, where: str = "") -> Iterator[None]:
        """Send one statement (or one query of several) on ``dbapi_connection`` inside
        this block: it is not sent once a cancel was asked for (``where`` names the spot
        in :class:`MigrationInterrupted`), and a cancel asked for while it is in flight
        cancels it, however soon after the check it comes.  Leave the block as soon as
        the statement's result is in, before anything else is sent on the connection."""
        flight = _Flight(dbapi_connection)
        with self._guard:  # checked and marked as one step: cancel() sees one or the other
            self.check(where)
            self._flights.append(flight)
        try:
            yield
        finally:
            with flight.lock:  # waits for a cancel request being sent to return
                flight.ended = True
            with self._guard:
                self._flights.remove(flight)
                self._changed.notify_all()

    def _resend(self) -> None:
        """Ask again for each statement in flight until none is left."""
        delays = iter(RESEND_DELAYS)
        delay = next(delays)
        while True:
            with self._guard:
                if not self._flights:
                    self._resender = None
                    return
                self._changed.wait(delay)
                flights = list(self._flights)
            for flight in flights:
                _request(flight)
            delay = next(delays, RESEND_DELAYS[-1])


def _request(flight: _Flight) -> None:
    """One cancel request for ``flight``'s statement, unless it has ended."""
    with flight.lock:
        if flight.ended:
            return
        # the connection may be gone already: then there is nothing to cancel
        with contextlib.suppress(Exception):
            flight.connection.cancel()


def sending(token: CancelToken | None, dbapi_connection: Any,
            where: str = "") -> contextlib.AbstractContextManager[None]:
    """:meth:`CancelToken.sending`, or nothing when there is no token."""
    if token is None:
        return contextlib.nullcontext()
    return token.sending(dbapi_connection, where)
