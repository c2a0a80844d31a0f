"""Cooperative cancellation of a running migration (Ctrl-C, SIGTERM from a deploy timeout).

The CLI runs the migration in a worker thread and keeps the main thread free for
signals.  On a signal it calls :meth:`CancelToken.cancel`: every registered
connection gets a server-side cancel of its running statement, and the runner
checks :meth:`CancelToken.check` between statements and between migrations.  The
migration in flight is rolled back; the ones before it stay applied.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from ..errors import MigrationError


class MigrationInterrupted(MigrationError):
    """The run was stopped by a signal; the migration in flight was rolled back."""

    exit_code = 130


class CancelToken:
    """Shared between the thread that receives signals and the one that migrates."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._guard = threading.Lock()
        self._connections: list[Any] = []
        self.reason = "interrupted"

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def register(self, dbapi_connection: Any) -> None:
        with self._guard:
            self._connections.append(dbapi_connection)

    def unregister(self, dbapi_connection: Any) -> None:
        with self._guard:
            if dbapi_connection in self._connections:
                self._connections.remove(dbapi_connection)

    def cancel(self, reason: str = "interrupted") -> None:
        """Ask every registered connection's server to cancel its running statement."""
        self.reason = reason
        self._event.set()
        with self._guard:
            connections = list(self._connections)
        for connection in connections:
            # the connection may be gone already: then there is nothing to cancel
            with contextlib.suppress(Exception):
                connection.cancel()

    def check(self, where: str = "") -> None:
        """Raise MigrationInterrupted if cancellation was asked for."""
        if self.cancelled:
            suffix = f" {where}" if where else ""
            raise MigrationInterrupted(f"Stopped by {self.reason}{suffix}")
