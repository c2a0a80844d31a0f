"""OpenTelemetry spans for ``up`` and ``down``, when the application set OpenTelemetry up.

A run is one span (``fraiseql migrate up``) and each migration a child span of it
(``up 001_init.sql``), built from the events the engine already sends on both paths
(:class:`~.events.Events`): :class:`MigrationSpans` is one more receiver of them, beside
the caller's reporter (:class:`~.deploy.Progress` hands them on), so the step runner holds
no tracing code.  docs/observability.md lists the names and attributes.

Nothing here imports OpenTelemetry unless something else already did.  A tracer provider
can only be set through ``opentelemetry.trace`` (by the SDK, ``opentelemetry-instrument``
or the application), so while that module is not loaded nobody can receive spans and a
run is not traced at all: importing the API costs about 35 ms, which a deploy that
traces nothing does not pay.  Loaded but with no provider set, the API's own no-op
tracer is used (a few microseconds per span).  ``OTEL_PYTHON_TRACER_PROVIDER`` (the API's
way of naming a provider by entry point) loads it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .. import __version__
from ..errors import MigrationExecutionError
from ..secrets import mask_url
from ..settings import Settings
from ..sql.names import parse_filename
from .events import NoEvents

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Status, Tracer

#: The instrumentation scope of every span (``otel.scope.name``).
SCOPE = "fraiseql_alembic"
#: Span name of a run: ``fraiseql migrate up`` / ``fraiseql migrate down``.
RUN_SPAN = "fraiseql migrate {command}"
#: Span name of a fleet (``--targets``): each target's run is a child span of it.
FLEET_SPAN = "fraiseql fleet"
#: ``Settings.url_source`` of a fleet's target (``fleetapi.target_settings``).
TARGET_SOURCE = "target "
#: The API's environment variable that names a tracer provider to load.
PROVIDER_VARIABLE = "OTEL_PYTHON_TRACER_PROVIDER"

Attributes = dict[str, "str | int | bool"]


def tracer() -> Tracer | None:
    """The tracer of this package, or None when OpenTelemetry's API is not loaded (then no
    provider can have been set) and no provider is named by ``OTEL_PYTHON_TRACER_PROVIDER``,
    or when it is not installed."""
    if "opentelemetry.trace" not in sys.modules and not os.environ.get(PROVIDER_VARIABLE):
        return None
    try:
        # lazy: loaded already, or a provider is named (the API alone costs ~35 ms)
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer(SCOPE, __version__)


def database_attributes(url: str) -> Attributes:
    """Pure: the semantic-convention attributes of the database ``url`` names (PostgreSQL,
    its database as ``db.namespace``, host and port), and the URL itself, masked."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    attributes: Attributes = {
        "db.system.name": "postgresql",
        "db.system": "postgresql",  # the name before semantic conventions 1.30
        "fraiseql.database.url": mask_url(url),
    }
    dbname = unquote(parts.path.lstrip("/")) or query.get("dbname", "")
    if dbname:
        attributes["db.namespace"] = dbname
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number: told when connecting
        host, port = None, None
    host = host or query.get("host")
    if host:
        attributes["server.address"] = host
    port_text = str(port) if port is not None else query.get("port", "")
    if port_text.isdigit():
        attributes["server.port"] = int(port_text)
    return attributes


def error_attributes(error: BaseException) -> Attributes:
    """Pure: what the semantic conventions record of a failure (``error.type``: the
    SQLSTATE, else the exception's class; the SQLSTATE as ``db.response.status_code``)
    and where in the migration it happened (``code.line.number``, ``code.column.number``),
    read from ``error`` or the errors it was raised from (a lock timeout given up on)."""
    sqlstate: str | None = None
    located: MigrationExecutionError | None = None
    seen: BaseException | None = error
    visited: set[int] = set()  # a cause chain can loop (an error re-raised from its cause)
    while seen is not None and id(seen) not in visited and (sqlstate is None or located is None):
        visited.add(id(seen))
        sqlstate = sqlstate or getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if located is None and isinstance(seen, MigrationExecutionError):
            located = seen
        seen = seen.__cause__
    attributes: Attributes = {"error.type": sqlstate or type(error).__qualname__}
    if sqlstate:
        attributes["db.response.status_code"] = sqlstate
    if located is not None:
        attributes["code.line.number"] = located.line
        attributes["code.column.number"] = located.column
    elif isinstance(line := getattr(error, "line", None), int):  # a file error's line
        attributes["code.line.number"] = line
    return attributes


@dataclass
class MigrationSpans(NoEvents):
    """An :class:`~.events.Events` receiver that makes a child span of ``run`` for each
    migration: opened by ``start``, ended by ``done`` (OK) or by :meth:`failed`.  Each is
    the current span while its migration runs, so spans of the driver's instrumentation
    (``opentelemetry-instrumentation-psycopg2``) nest under it."""

    tracer: Tracer
    run: Span
    folder: Path
    database: Mapping[str, str | int | bool]
    current: Span | None = None
    _token: Token[Context] | None = None
    ran: int = 0

    def start(self, filename: str, is_upgrade: bool) -> None:
        # lazy: loaded already: tracer() found it (or loaded it)
        from opentelemetry import context, trace

        direction = "up" if is_upgrade else "down"
        span = self.tracer.start_span(
            f"{direction} {filename}", context=trace.set_span_in_context(self.run),
            attributes={
                **self.database,
                "fraiseql.migration.file": filename,
                "fraiseql.migration.direction": direction,
                "code.file.path": str(self.folder / filename),
            },
        )
        name = parse_filename(filename)
        if name is not None:  # a .py revision's id is not in its file name
            span.set_attribute("fraiseql.migration.version", name.version)
        self.current = span
        self._token = context.attach(trace.set_span_in_context(span))

    def done(self, filename: str, is_upgrade: bool) -> None:
        # lazy: loaded already
        from opentelemetry.trace import Status, StatusCode

        if self.current is not None:
            self.ran += 1
            self._end(Status(StatusCode.OK))

    def rows(self, filename: str, count: int) -> None:
        """How many rows the running migration's statements changed (INSERT, UPDATE,
        DELETE, MERGE, COPY), when known."""
        if self.current is not None:
            self.current.set_attribute("fraiseql.migration.rows_affected", count)

    def waiting(self, text: str) -> None:
        """The run waits for the migration lock: an event on the run's span."""
        self.run.add_event("fraiseql.lock.wait", {"message": text})

    def plan(self, total: int, is_upgrade: bool) -> None:
        self.run.set_attribute("fraiseql.migrations.planned", total)

    def failed(self, error: BaseException) -> None:
        """The running migration failed: it ends with status ERROR and the exception (a
        lock timeout that is retried runs again in a new span)."""
        # lazy: loaded already
        from opentelemetry.trace import Status, StatusCode

        if self.current is None:
            return
        self.current.record_exception(error)
        self.current.set_attributes(error_attributes(error))
        self._end(Status(StatusCode.ERROR, _one_line(error)))

    def _end(self, status: Status) -> None:
        # lazy: loaded already
        from opentelemetry import context

        assert self.current is not None
        span, token = self.current, self._token
        self.current, self._token = None, None
        span.set_status(status)
        span.end()
        if token is not None:
            context.detach(token)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def run_span(settings: Settings, command: str,
             attach: Any = None) -> Iterator[MigrationSpans | None]:
    """The span of one ``up`` or ``down`` (``command``) on ``settings``' database, around
    the lock, the plan and the run; yields the receiver of the run's events (None when
    nothing traces), which ``attach(receiver)`` hands to the run's progress.  An error
    that ends the run ends the running migration's span and the run's with status ERROR
    and the exception, masked as every message is."""
    found = tracer()
    if found is None:
        yield None
        return
    # lazy: loaded already (tracer() found it)
    from opentelemetry import context, trace
    from opentelemetry.trace import Status, StatusCode

    database = database_attributes(settings.database_url) if settings.database_url else {}
    attributes: Attributes = {**database, "fraiseql.command": command,
                              "fraiseql.migrations.folder": str(settings.path)}
    if settings.url_source and settings.url_source.startswith(TARGET_SOURCE):
        attributes["fraiseql.target"] = settings.url_source.removeprefix(TARGET_SOURCE)
    span = found.start_span(RUN_SPAN.format(command=command), attributes=attributes)
    spans = MigrationSpans(found, span, settings.path.resolve(), database)
    token = context.attach(trace.set_span_in_context(span))
    if attach is not None:
        attach(spans)
    try:
        yield spans
    except BaseException as err:
        spans.failed(err)
        span.record_exception(err)
        span.set_attributes(error_attributes(err))
        span.set_status(Status(StatusCode.ERROR, _one_line(err)))
        raise
    else:
        span.set_status(Status(StatusCode.OK))
    finally:
        span.set_attribute("fraiseql.migrations.run", spans.ran)
        span.end()
        context.detach(token)


class FleetSpan:
    """The span of a fleet while its targets run (:func:`fleet_span`)."""

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def ended(self, succeeded: int, failed: int, left: int) -> None:
        """How the targets ended: status ERROR when one failed or did not start."""
        if self.span is None:
            return
        # lazy: loaded already (tracer() found it)
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attributes({"fraiseql.fleet.succeeded": succeeded,
                                  "fraiseql.fleet.failed": failed,
                                  "fraiseql.fleet.not_run": left})
        self.span.set_status(Status(StatusCode.ERROR, f"{failed} failed, {left} not run")
                             if failed or left else Status(StatusCode.OK))


@contextmanager
def fleet_span(settings: Settings, targets: int, jobs: int) -> Iterator[FleetSpan]:
    """The span of a verb on a fleet's ``targets``, current while they run: each target's
    own run span (:func:`run_span`, started on a worker thread that was given this
    context) is its child."""
    found = tracer()
    if found is None:
        yield FleetSpan(None)
        return
    # lazy: loaded already (tracer() found it)
    from opentelemetry import context, trace
    from opentelemetry.trace import Status, StatusCode

    span = found.start_span(FLEET_SPAN, attributes={
        "fraiseql.fleet.targets": targets, "fraiseql.fleet.jobs": jobs,
        "fraiseql.migrations.folder": str(settings.path)})
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield FleetSpan(span)
    except BaseException as err:
        span.record_exception(err)
        span.set_attributes(error_attributes(err))
        span.set_status(Status(StatusCode.ERROR, _one_line(err)))
        raise
    finally:
        span.end()
        context.detach(token)
