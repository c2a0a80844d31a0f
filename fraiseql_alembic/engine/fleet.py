"""A fleet run: one verb on many targets (databases, or schemas), a few at a time.

:func:`run_fleet` knows nothing of migrations: it calls the caller's ``work`` once per
target (the API passes its single-target verb, so each target behaves exactly as one
``up`` would: its own connection, lock, checks, timeouts, retries and cancellation) on
``jobs`` worker threads (psycopg2 releases the GIL while the server works), wave after
wave, and applies the failure policy.  :func:`resolve_targets` adds the rows of a
targets file's ``[[query]]`` tables, read on the control database.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import (
    ConfigError,
    MigrationError,
    UsageError,
    file_access_error,
    plural,
    shown_path,
)
from ..project.targets import (
    QUERY_COLUMNS,
    Target,
    TargetQuery,
    TargetsFile,
    check_unique,
    target_from_row,
)
from ..secrets import mask_url, password_of, redact
from .cancel import CancelToken, MigrationInterrupted
from .database import VERSION_TABLE
from .recorder import version_table_sql
from .session import open_dbapi
from .translate import foreign_error

R = TypeVar("R")

SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"  # stopped by a signal: the migration in flight was rolled back
NOT_STARTED = "not started"
RUNNING = "running"
STATES = (SUCCEEDED, FAILED, INTERRUPTED, NOT_STARTED)


# ---------------------------------------------------------------------------
# targets from a query


def resolve_targets(
    targets_file: TargetsFile, environ: Mapping[str, str]
) -> list[Target]:
    """The file's targets, then each ``[[query]]``'s rows, checked for duplicates."""
    targets = list(targets_file.targets)
    for query in targets_file.queries:
        targets += query_targets(query, environ, targets_file.waves)
    check_unique(targets)
    return targets


def query_targets(
    query: TargetQuery, environ: Mapping[str, str], waves: Sequence[str] = ()
) -> list[Target]:
    """The rows of ``query.sql`` on the control database (read-only), as targets."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    connection = open_dbapi(query.url, application_name="fraiseql-migrate targets")
    try:
        connection.set_session(readonly=True)
        with connection.cursor() as cursor:
            cursor.execute(query.sql)
            if cursor.description is None:
                raise ConfigError(f"{query.where}: the query returns no rows (is it a "
                                  "SELECT?); make it return a url column")
            columns = [str(column.name) for column in cursor.description]
            rows = cursor.fetchall()
        connection.rollback()
    except psycopg2.Error as err:
        raise ConfigError(f"{query.where}: the targets query failed on "
                          f"{mask_url(query.url)}: {foreign_error(err).message}; fix its "
                          "sql") from err
    finally:
        connection.close()
    if "url" not in columns:
        raise ConfigError(f"{query.where}: the targets query returns no url column (it "
                          f"returns {', '.join(columns)}); select the database URL AS url")
    unknown = [column for column in columns if column not in QUERY_COLUMNS]
    if unknown:
        raise ConfigError(f"{query.where}: the targets query returns column {unknown[0]!r}; "
                          f"return only {', '.join(QUERY_COLUMNS)} (url required)")
    if len(set(columns)) != len(columns):
        raise ConfigError(f"{query.where}: the targets query returns a column twice "
                          f"({', '.join(columns)}); return each once")
    targets = []
    for number, row in enumerate(rows, start=1):
        values = {column: value for column, value in zip(columns, row, strict=True)
                  if value is not None}
        name = values.pop("name", None)
        targets.append(target_from_row(
            None if name is None else str(name), values, f"{query.where} (row {number})",
            environ, waves))
    return targets


# ---------------------------------------------------------------------------
# schema per tenant


def prepare_schema(url: str, schema: str, *, create: bool) -> None:
    """Before a verb runs on a target with a ``schema`` (``url`` sets its search_path):
    check that the server applied that search_path (a pooler may drop startup options),
    and that the schema and its ``alembic_version`` exist, or, with ``create`` (``up``),
    create them.  Otherwise ``alembic_version`` would be looked up, or made, further down
    the search_path (``public``)."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    connection = open_dbapi(url, application_name="fraiseql-migrate schema")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('search_path'), to_regnamespace(%s) "
                           "IS NOT NULL, to_regclass(%s) IS NOT NULL",
                           (_quoted(schema), f"{_quoted(schema)}.{VERSION_TABLE}"))
            row = cursor.fetchone()
            assert row is not None
            search_path, has_schema, has_version = str(row[0]), bool(row[1]), bool(row[2])
            if not search_path.replace('"', "").startswith(f"{schema},"):
                raise MigrationError(
                    f"search_path is {search_path!r}, not {schema} first as the target's "
                    "URL asked (options=-c search_path=...): a pooler dropping startup "
                    "options? Connect to PostgreSQL directly, or through a pool in session "
                    "mode that passes options")
            if create and not (has_schema and has_version):
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
                cursor.execute(version_table_sql(f"{_quoted(schema)}.{VERSION_TABLE}"))
            elif not has_version:
                raise _never_migrated(schema, has_schema)
    except psycopg2.Error as err:
        raise foreign_error(err) from err
    finally:
        connection.close()


def _never_migrated(schema: str, has_schema: bool) -> MigrationError:
    missing = "has no alembic_version" if has_schema else "does not exist"
    return MigrationError(f"schema {schema} {missing}: nothing was migrated there yet; "
                          "`fraiseql migrate up --targets` creates it")


def _quoted(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '"'


class SchemaSessions:
    """For reading many schemas of one database (``status --targets``): one session per
    worker thread and database, its search_path set to each schema in turn, instead of a
    connection per schema (connecting costs more than reading a schema's state).  A
    thread keeps one session, for the database its last target was in; :meth:`close`
    ends them all."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._guard = threading.Lock()
        self._open: list[Any] = []

    def session(self, url: str, schema: str) -> Any:
        """An idle autocommit session on ``url`` with ``schema`` first on its search_path;
        a schema never migrated is an error (see :func:`prepare_schema`)."""
        # lazy: psycopg2 (~20 ms) loads only when a command connects
        import psycopg2

        current: tuple[str, Any] | None = getattr(self._local, "current", None)
        if current is None or current[0] != url or current[1].closed:
            if current is not None:
                current[1].close()
            connection = open_dbapi(url, application_name="fraiseql-migrate status")
            connection.autocommit = True
            with self._guard:
                self._open.append(connection)
            current = self._local.current = (url, connection)
        connection = current[1]
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SET search_path TO {_quoted(schema)}, public")
                cursor.execute("SELECT to_regnamespace(%s) IS NOT NULL, to_regclass(%s) IS "
                               "NOT NULL", (_quoted(schema), f"{_quoted(schema)}.{VERSION_TABLE}"))
                row = cursor.fetchone()
        except psycopg2.Error as err:
            raise foreign_error(err) from err
        if not (row and row[1]):
            raise _never_migrated(schema, bool(row and row[0]))
        return connection

    def close(self) -> None:
        with self._guard:
            connections, self._open = self._open, []
        for connection in connections:
            connection.close()


# ---------------------------------------------------------------------------
# running


@dataclass
class TargetOutcome(Generic[R]):
    """What became of one target."""

    target: Target
    state: str = NOT_STARTED
    result: R | None = None
    error: str | None = None  # one line, passwords masked
    started_at: datetime | None = None
    finished_at: datetime | None = None
    elapsed: float | None = None  # seconds


@dataclass(frozen=True)
class FleetResult(Generic[R]):
    outcomes: tuple[TargetOutcome[R], ...]
    jobs: int
    #: why some targets never started (a failure, a failed wave, a signal), if any did not
    stopped: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def having(self, state: str) -> list[TargetOutcome[R]]:
        return [outcome for outcome in self.outcomes if outcome.state == state]

    @property
    def ok(self) -> bool:
        return all(outcome.state == SUCCEEDED for outcome in self.outcomes)

    def counts(self) -> str:
        """``3 targets: 2 succeeded, 1 failed``."""
        parts = [f"{len(self.having(state))} {state}" for state in STATES if self.having(state)]
        return f"{plural(len(self.outcomes), 'target')}: {', '.join(parts) or 'none'}"


class FleetInterrupted(MigrationInterrupted):
    """A signal stopped the fleet run; ``result`` says who finished, who was interrupted
    and who never started."""

    def __init__(self, message: str, result: FleetResult[Any]) -> None:
        super().__init__(message)
        self.result = result


def run_fleet(
    waves: Sequence[tuple[str | None, Sequence[Target]]],
    work: Callable[[Target], R],
    *,
    jobs: int,
    max_failures: int | None = 1,
    cancel: CancelToken | None = None,
    on_start: Callable[[Target], None] | None = None,
    on_end: Callable[[TargetOutcome[R]], None] | None = None,
    warnings: Sequence[str] = (),
) -> FleetResult[R]:
    """Call ``work(target)`` for every target, at most ``jobs`` at a time, wave by wave.

    A target whose ``work`` raises a MigrationError failed (its one line is kept, masked);
    MigrationInterrupted means a signal stopped it.  Once ``max_failures`` targets failed
    (None: never), no new target starts; the running ones finish.  A wave starts only
    when every target of the waves before it succeeded.  When ``cancel`` is set, no new
    target starts, the running ones stop as a single run would, and
    :class:`FleetInterrupted` is raised with the result.  ``on_start`` and ``on_end`` are
    called on the worker threads.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be 1 or more, got {jobs}")
    outcomes = [TargetOutcome[R](target) for _, members in waves for target in members]
    by_target = {id(outcome.target): outcome for outcome in outcomes}
    guard = threading.Lock()
    failures = 0
    stopped: str | None = None

    def stop_starting() -> bool:
        return (cancel is not None and cancel.cancelled) or (
            max_failures is not None and failures >= max_failures)

    def run_one(outcome: TargetOutcome[R]) -> None:
        nonlocal failures
        target = outcome.target
        secret = password_of(target.url)
        started = time.monotonic()
        if on_start is not None:
            on_start(target)
        try:
            outcome.result = work(target)
            outcome.state = SUCCEEDED
        except MigrationInterrupted as err:
            outcome.state, outcome.error = INTERRUPTED, redact(err.message, secret)
        except MigrationError as err:
            outcome.state, outcome.error = FAILED, redact(err.message, secret)
        except Exception as err:  # a bug: this target failed, the others go on
            text = (str(err).strip().splitlines() or [""])[0]
            outcome.state = FAILED
            outcome.error = redact(f"{type(err).__name__}: {text}", secret)
        outcome.elapsed = time.monotonic() - started
        outcome.finished_at = datetime.now(timezone.utc)
        with guard:
            if outcome.state == FAILED:
                failures += 1
        if on_end is not None:
            on_end(outcome)

    for wave, members in waves:
        if stopped is not None:
            break
        queue = deque(by_target[id(target)] for target in members)

        def worker(queue: deque[TargetOutcome[R]] = queue) -> None:
            while True:
                with guard:
                    if not queue or stop_starting():
                        return
                    outcome = queue.popleft()
                    outcome.state = RUNNING
                    outcome.started_at = datetime.now(timezone.utc)
                run_one(outcome)

        # each worker runs in a copy of the caller's context (the fleet's span, if traced)
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker,),
                                    name=f"fraiseql-fleet-{number}", daemon=True)
                   for number in range(min(jobs, len(members)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if cancel is not None and cancel.cancelled:
            stopped = f"stopped by {cancel.reason}"
        elif max_failures is not None and failures >= max_failures:
            stopped = (f"stopped starting targets after {plural(failures, 'failure')} "
                       "(--continue-on-error or --max-failures to go on)")
        elif any(by_target[id(target)].state != SUCCEEDED for target in members):
            stopped = f"wave {wave} did not succeed, so the waves after it did not start"
    for outcome in outcomes:
        if outcome.state == RUNNING:  # cannot stay running: run_one always settles it
            outcome.state = FAILED
    result = FleetResult(tuple(outcomes), jobs, stopped if _any_left(outcomes) else None,
                         tuple(warnings))
    if cancel is not None and cancel.cancelled:
        raise FleetInterrupted(
            f"Stopped by {cancel.reason}: {result.counts()}; what was in flight was rolled "
            "back. Run the command again to continue", result)
    return result


def _any_left(outcomes: Sequence[TargetOutcome[R]]) -> bool:
    return any(outcome.state == NOT_STARTED for outcome in outcomes)


# ---------------------------------------------------------------------------
# the run record


def run_id() -> str:
    """``20261203T184500Z-3f9a``: when the run started (UTC), and 4 random hex digits."""
    import secrets  # lazy: ~0.5 ms (base64, hmac, random) that only a fleet run needs

    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def default_record_path(targets_file: Path) -> Path:
    """``tenants.toml`` -> ``tenants.runs.jsonl`` beside it."""
    return targets_file.with_name(f"{targets_file.stem}.runs.jsonl")


class RunRecord:
    """A fleet run, appended as JSON lines to ``path``: a ``start`` line (run id, verb,
    targets), one ``target`` line as each target ends (state, times, what it did, its
    error: passwords masked), and an ``end`` line with the totals.  A record that cannot
    be written is told once to ``on_problem`` and the run goes on: every target's own
    ``fraiseql_migrations`` stays the truth."""

    def __init__(self, path: Path, verb: str, targets: int,
                 on_problem: Callable[[str], None], resumes: str | None = None) -> None:
        self.path = path
        self.id = run_id()
        self.on_problem = on_problem
        self.broken = False
        self._guard = threading.Lock()
        self._write({"event": "start", "verb": verb, "targets": targets, "resumes": resumes,
                     "at": datetime.now(timezone.utc).isoformat()})

    def target(self, outcome: TargetOutcome[Any], details: Mapping[str, object]) -> None:
        target = outcome.target
        self._write({
            "event": "target", "target": target.name, "url": target.shown_url,
            "schema": target.schema, "wave": target.wave, "state": outcome.state,
            "started_at": outcome.started_at.isoformat() if outcome.started_at else None,
            "finished_at": outcome.finished_at.isoformat() if outcome.finished_at else None,
            **details, "error": outcome.error,
        })

    def end(self, result: FleetResult[Any]) -> None:
        self._write({
            "event": "end", "at": datetime.now(timezone.utc).isoformat(),
            "counts": {state: len(result.having(state)) for state in STATES},
            "stopped": result.stopped,
            "not_started": [outcome.target.name for outcome in result.having(NOT_STARTED)],
        })

    def _write(self, line: dict[str, object]) -> None:
        text = json.dumps({"run": self.id, **line}) + "\n"
        with self._guard:
            if self.broken:
                return
            try:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(text)
            except OSError as err:
                self.broken = True
                error = file_access_error(err, self.path, action="write the run record",
                                          writing=True)
                self.on_problem(f"{error.message}; the run goes on without it")


#: A run's id, as :func:`run_id` makes it.
RUN_ID_PATTERN = r"\d{8}T\d{6}Z-[0-9a-f]{4}"


def succeeded_in(path: Path, run: str, verb: str) -> set[str]:
    """The names of the targets that succeeded in run ``run`` of ``verb``, as the record at
    ``path`` tells it (``--resume RUN_ID``: the others run again)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise file_access_error(err, path, action="read the run record") from err
    done: set[str] = set()
    started: str | None = None
    seen: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            event = json.loads(line)
            key = str(event["run"])
        except (ValueError, TypeError, KeyError) as err:
            raise ConfigError(f"{shown_path(path)}:{number}: not a line of a run record "
                              "(JSON with a run id); fix or remove it") from err
        if key not in seen:
            seen.append(key)
        if key != run:
            continue
        if event.get("event") == "start":
            started = str(event.get("verb"))
        elif event.get("event") == "target" and event.get("state") == SUCCEEDED:
            done.add(str(event.get("target")))
    if started is None:
        recent = ", ".join(seen[-3:]) or "none"
        raise UsageError(f"--resume {run}: {shown_path(path)} has no run {run} (its last "
                         f"runs: {recent}); give one of them, or --record FILE")
    if started != verb:
        raise UsageError(f"--resume {run}: that run was `{started}`, not `{verb}`; resume it "
                         f"with `fraiseql migrate {started}`")
    return done
