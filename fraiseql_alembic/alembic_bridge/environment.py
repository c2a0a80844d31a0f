"""What our shipped ``env.py`` does: lock, connect, configure Alembic, run the migrations.

Online, each migration runs in its own transaction (``transaction_per_migration``)
holding its SQL, the ``alembic_version`` change and its history row.  Commands that
move the database (upgrade, downgrade, stamp) first take the database's migration
lock (:mod:`fraiseql_alembic.engine.locking`) unless our API already holds it.  Migration
sessions get ``lock_timeout`` (and ``statement_timeout`` if set).  The database URL
comes from ``config.attributes`` (set by our API), ``sqlalchemy.url``, or
``DATABASE_URL``.  Offline (``--sql``), statements are written for ``psql``.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from logging.config import fileConfig
from typing import TYPE_CHECKING, Any, cast

import psycopg2
import psycopg2.errors
from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo, RevisionStep
from sqlalchemy import event
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ..engine import history
from ..engine.cancel import MigrationInterrupted
from ..engine.database import connect, read_state, standard_strings, version_table_schema
from ..engine.locking import LeaseHolder, LeaseLock, LockHolder, MigrationLock
from ..engine.plan import display_name
from ..engine.preflight import refuse_inconsistent, sql_migration, validate_pending
from ..engine.run import commit_failed, connection_lost
from ..engine.session import SESSION_CLEAN_SQL, SessionReset, apply_session_settings
from ..engine.status import PENDING, ancestors, build
from ..engine.translate import database_error
from ..errors import ConfigError, ConnectError, MigrationError, our_error_in_context
from ..settings import (
    LEASE,
    RunOptions,
    check_duration,
    check_lease_expiry,
    check_lock_mode,
    check_seconds,
    sqlalchemy_url,
)
from .plugin import (
    DEFAULT_HISTORY_SCHEMA,
    as_command_error,
    config_option,
    run_context,
    set_run_context,
)

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script.revision import Revision
    from psycopg2.extensions import connection as Connection

    from ..engine.cancel import CancelToken
    from ..engine.events import Events
    from ..sql.parse import ParsedMigration
    from .autogen_env import AutogenerateRun

# Alembic commands that run env.py only to read: they never wait for the lock.
_READ_ONLY_COMMANDS = frozenset({"current", "check", "history", "heads", "show", "branches"})


def configured_url(config: Config) -> str | None:
    """The URL our API passed, else ``sqlalchemy.url``, else ``DATABASE_URL``."""
    url = run_context(config).url or config_option(config, "sqlalchemy.url")
    return url or os.environ.get("DATABASE_URL") or None


def url_source(config: Config) -> str | None:
    """Where the `alembic` command found :func:`configured_url`'s URL, for the line of a
    failure to connect; None when our API passed the URL (its caller names the source)."""
    if run_context(config).url or not command_name(config):
        return None
    return "alembic.ini" if config_option(config, "sqlalchemy.url") else "DATABASE_URL"


def run_options(config: Config) -> RunOptions:
    """From our API, else the ``fraiseql_*`` options (alembic.ini or ``[tool.alembic]``)."""
    options = run_context(config).run_options
    if options is not None:
        return options
    statement_timeout = config_option(config, "fraiseql_statement_timeout")
    return RunOptions(
        lock_wait=check_seconds(
            config_option(config, "fraiseql_lock_wait", str(RunOptions.lock_wait)),
            "fraiseql_lock_wait",
        ),
        lock_timeout=check_duration(
            config_option(config, "fraiseql_lock_timeout", RunOptions.lock_timeout),
            "fraiseql_lock_timeout",
        ),
        statement_timeout=(
            check_duration(statement_timeout, "fraiseql_statement_timeout")
            if statement_timeout
            else None
        ),
        lock=(
            check_lock_mode(os.environ["FRAISEQL_LOCK"], "FRAISEQL_LOCK")
            if os.environ.get("FRAISEQL_LOCK")
            else check_lock_mode(config_option(config, "fraiseql_lock", RunOptions.lock),
                                 "fraiseql_lock")
        ),
        lease_expiry=check_lease_expiry(
            config_option(config, "fraiseql_lease_expiry", str(RunOptions.lease_expiry)),
            "fraiseql_lease_expiry",
        ),
    )


def run_environment() -> None:

    config = context.config
    if config.config_file_name and not run_context(config).url:
        _configure_logging(config.config_file_name)
    try:
        _run(config)
    except MigrationError as err:
        raise as_command_error(err) from err
    except Exception as err:
        wrapped = our_error_in_context(err) or database_error(err)
        if wrapped is None:
            raise
        raise as_command_error(wrapped) from err


def _run(config: Config) -> None:
    given = config.attributes.get("connection")  # pytest-alembic and Alembic's cookbook
    url = url_of(given) if given is not None else configured_url(config)
    run = run_context(config)
    schema = run.history_schema or config_option(
        config, "fraiseql_history_schema", DEFAULT_HISTORY_SCHEMA
    )
    if run.history_schema is None:
        set_run_context(config, replace(run, history_schema=schema))
    if context.is_offline_mode():
        context.configure(
            url=sqlalchemy_url(url) if url else None,
            dialect_name="postgresql",
            literal_binds=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    options = run_options(config)
    arguments = _revision_arguments()
    comparing: AutogenerateRun | None = None
    if arguments.get("autogenerate"):
        # lazy: models, shadow database and comparison (~15-20 ms of imports per alembic
        # command) load only for `alembic check` / `revision --autogenerate`
        from . import autogen_env

        comparing = autogen_env.autogenerate_run(config, command_name(config), arguments)
        if comparing is not None and given is None:  # the migrations' schema, not the live one
            with autogen_env.shadow(comparing, config, url, schema) as shadow_url, \
                    lock_for(config, shadow_url, options):
                _run_online(config, shadow_url, schema, options, None,
                            autogen_env.configure_options(comparing, given=False))
            return
    if not url:
        raise ConfigError(
            "No database configured: set DATABASE_URL or sqlalchemy.url in alembic.ini"
        )
    try:
        with lock_for(config, url, options):
            _run_online(config, url, schema, options, given,
                        {} if comparing is None else autogen_env.configure_options(
                            comparing, given=True))
    except ConnectError as err:  # `Check sqlalchemy.url in alembic.ini and ...`
        named = err if given is not None else err.named(url_source(config))
        if named is err:
            raise
        raise named from err


def _revision_arguments() -> dict[str, Any]:
    """The arguments of the revision command running this env.py (``autogenerate``,
    ``message``, ...); empty for any other command."""
    # private Alembic API: the revision context Alembic handed this env.py run (the only
    # sign that it autogenerates when Alembic is called from Python)
    revision_context = context._proxy.context_opts.get("revision_context")  # type: ignore[attr-defined]  # noqa: SLF001
    return dict(getattr(revision_context, "command_args", None) or {})


def _configure_logging(ini_file: str) -> None:
    """The ``[loggers]`` of alembic.ini, as Alembic's own env.py templates do."""
    parser = configparser.ConfigParser()
    parser.read(ini_file)
    if parser.has_section("loggers"):
        fileConfig(ini_file, disable_existing_loggers=False)


def url_of(given: Engine | SqlConnection) -> str:
    """The full URL of an Engine or Connection handed to us (the lock needs its own session)."""
    engine = given.engine  # an Engine's is itself
    return str(engine.url.render_as_string(hide_password=False))


def lock_for(
    config: Config, url: str, options: RunOptions
) -> AbstractContextManager[object]:
    run = run_context(config)
    if run.lock_held or read_only_command(config):
        return nullcontext()

    reporter = run.reporter
    token = run.cancel

    def on_wait(holder: LockHolder | LeaseHolder | None) -> None:
        who = holder.describe() if holder is not None else "another session"
        line = f"Waiting up to {options.lock_wait:.0f}s for the migration lock held by {who}"
        if reporter is not None:
            reporter.waiting(line)
        else:
            print(line, file=sys.stderr)

    should_stop = (lambda: token.cancelled) if token is not None else None
    schema = run.schema
    lock: LeaseLock | MigrationLock
    if options.lock == LEASE:
        lock = LeaseLock(url, wait_seconds=options.lock_wait, expiry=options.lease_expiry,
                         history_schema=schema, on_wait=on_wait, should_stop=should_stop)
    else:
        lock = MigrationLock(url, wait_seconds=options.lock_wait, on_wait=on_wait,
                             should_stop=should_stop, history_schema=schema)
    # before each step (a lost lease stops)
    set_run_context(config, replace(run_context(config), lock_check=lock.check))
    return lock


def read_only_command(config: Config) -> bool:
    return command_name(config) in _READ_ONLY_COMMANDS


def command_name(config: Config) -> str:
    """The `alembic` CLI command being run ("" when Alembic is driven from Python)."""
    command = getattr(getattr(config, "cmd_opts", None), "cmd", None)
    return str(getattr(command[0], "__name__", "")) if command else ""


def _run_online(
    config: Config, url: str, schema: str, options: RunOptions,
    given: Engine | SqlConnection | None, comparing: dict[str, Any],
) -> None:
    reporter = run_context(config).reporter
    token = run_context(config).cancel

    if given is None:
        connection = connect(url)
    elif isinstance(given, SqlConnection):
        connection = nullcontext(given)  # a Connection someone else manages
    else:
        # an Engine, or what env.py files conventionally call connect() on (pytest-alembic's
        # WrappingConnection hands back the connection its test holds open)
        connection = given.connect()
    with connection as conn:
        # A transaction the caller holds (pytest-alembic's downgrade_leaves_no_trace rolls
        # it back after each revision): everything runs in it; nothing is committed or
        # rolled back here, and the session is not reset between migrations.
        external = conn.in_transaction()
        dbapi = conn.connection.dbapi_connection
        if token is not None:
            token.register(dbapi)
        try:
            with dbapi.cursor() as cursor:
                if not options.pooled:  # lease mode: each migration's transaction sets them
                    apply_session_settings(cursor, options)
                elif not external:  # a pooled server session may hold another's SET
                    cursor.execute(SESSION_CLEAN_SQL)  # search_path: found as a new one would
                version_schema = version_table_schema(cursor)  # named to Alembic
            if not external:
                dbapi.commit()
            if external and not read_only_command(config):
                # committed before the caller's transaction sees it, as on every path:
                # bookkeeping that a rolled-back or downgraded revision leaves in place
                with connect(url) as own:
                    _prepare_history(own.connection.dbapi_connection, schema)
                set_run_context(config, replace(run_context(config), history_ready=True))
            elif not isinstance(connection, nullcontext) and not read_only_command(config):
                _prepare_history(dbapi, schema)
                set_run_context(config, replace(
                    run_context(config),
                    history_ready=True,
                    session_reset=SessionReset.for_run(options),
                ))
            context.configure(
                connection=conn,
                transaction_per_migration=True,
                on_version_apply=_after_each(schema, reporter),
                version_table_schema=version_schema,
                **comparing,  # models, what to compare, filters (autogen_env)
            )
            if command_name(config) == "upgrade" and not run_context(config).lock_held:
                _verify_before_upgrade(conn, schema, external=external)
            migration_context = context.get_context()
            # private Alembic API (the tested range is pinned): the only hook that sees each
            # step before it runs, for cancel, the lease check and "Running migration"
            steps_fn = migration_context._migrations_fn  # noqa: SLF001
            assert steps_fn is not None
            running: list[RevisionStep] = []  # the step Alembic is running, set by _announcing
            migration_context._migrations_fn = _announcing(  # noqa: SLF001
                steps_fn, reporter, token, run_context(config).lock_check, running
            )
            try:
                with _sent_cancellably(conn, dbapi, token, running), \
                        context.begin_transaction():
                    context.run_migrations()
                if (not isinstance(connection, nullcontext) and not external
                        and conn.in_transaction() and not read_only_command(config)):
                    # what Alembic did outside the migrations' own transactions (each
                    # commits itself): `ensure_version` creating alembic_version is kept
                    conn.commit()
            except Exception as err:
                stopped = _stopped_in_step(err, token, running)
                if stopped is not None:
                    raise stopped from err
                lost = _lost_in_step(err, dbapi, running, url, version_schema)
                if lost is None:
                    raise
                raise as_command_error(lost) from err
        finally:
            if token is not None:
                token.unregister(dbapi)


def _verify_before_upgrade(connection: SqlConnection, schema: str, *, external: bool) -> None:
    """The checks `fraiseql migrate up` makes, for the plain `alembic upgrade` too
    (``external``: in the caller's transaction, which is left open)."""
    scripts = list(reversed(list(context.script.walk_revisions())))
    dbapi = cast("Connection", connection.connection.dbapi_connection)  # psycopg2's
    state = read_state(dbapi, schema)
    if not external:  # read_state used the DB-API cursor: end its read transaction there
        dbapi.rollback()
    report = build(scripts, state, sql_migration, display_name)
    refuse_inconsistent(report)
    validate_pending([row for row in report.rows if row.state == PENDING],
                     standard_strings=standard_strings(dbapi))


def _prepare_history(dbapi: Connection, schema: str) -> None:
    """Create the history table once, committed, before any migration runs (instead of
    checking for it in every migration's transaction)."""
    with history.writing(dbapi, schema) as cursor:
        history.ensure_table(cursor, schema)
    dbapi.commit()


@contextmanager
def _sent_cancellably(
    conn: SqlConnection, dbapi: Connection, token: CancelToken | None,
    running: list[RevisionStep],
) -> Iterator[None]:
    """Every statement SQLAlchemy sends on ``conn`` meanwhile (a ``.py`` revision's
    ``op.execute``, Alembic's own) goes inside :meth:`CancelToken.sending`, as the step
    runner sends a ``.sql`` revision's: a cancel asked for just before it reaches the
    server is not lost.  SQLAlchemy's cursor events mark its start and its end; a failed
    statement's end is marked by whatever SQLAlchemy sends next (the next statement, the
    ROLLBACK, a COMMIT or savepoint), before it is sent."""
    if token is None:
        yield
        return
    flights: list[AbstractContextManager[None]] = []

    def ended(*_args: Any) -> None:
        if flights:
            flights.pop().__exit__(None, None, None)

    def before(*_args: Any) -> None:
        ended()  # the statement before it failed: it ended
        name = _file_name(getattr(running[-1], "revision", None)) if running else None
        flight = token.sending(dbapi, f"in {name}" if name else "")
        flight.__enter__()  # raises MigrationInterrupted once cancelled: nothing is sent
        flights.append(flight)

    # (handle_error cannot be listened to on one connection: SQLAlchemy 2 refuses it)
    hooks: tuple[tuple[str, Callable[..., None]], ...] = (
        ("before_cursor_execute", before), ("after_cursor_execute", ended),
        ("rollback", ended), ("commit", ended), ("savepoint", ended),
        ("rollback_savepoint", ended), ("release_savepoint", ended),
    )
    for name, hook in hooks:
        event.listen(conn, name, hook)
    try:
        yield
    finally:
        for name, hook in hooks:
            event.remove(conn, name, hook)
        ended()


def _stopped_in_step(
    err: Exception, token: CancelToken | None, running: list[RevisionStep],
) -> MigrationInterrupted | None:
    """A statement of the running step that a cancel stopped, told as on the direct path
    (the step's transaction was rolled back); None for any other error."""
    original = err.orig if isinstance(err, DBAPIError) else err
    if (token is None or not token.cancelled or not running
            or not isinstance(original, psycopg2.errors.QueryCanceled)):
        return None
    name = _file_name(getattr(running[-1], "revision", None))
    return MigrationInterrupted(f"Stopped by {token.reason}" + (f" in {name}" if name else "")
                                + "; that migration was rolled back")


def _lost_in_step(
    err: Exception, dbapi: Connection, running: list[RevisionStep], url: str,
    version_schema: str | None,
) -> MigrationError | None:
    """A step's driver error told as the direct path tells it, or None (an error in a SQL
    revision's statement already names its line; other errors are not about a step).

    A lost connection (a backend killed during the COMMIT, a server restart): a new
    connection reads ``alembic_version`` to say whether the step committed.  An error
    SQLAlchemy raised from no statement of its own, on a live connection: the COMMIT
    failed (a deferred constraint)."""

    original = err.orig if isinstance(err, DBAPIError) else err
    if not running or not isinstance(original, psycopg2.Error):
        return None
    step = running[-1]
    name = _file_name(getattr(step, "revision", None)) or ", ".join(step.to_revisions_no_deps)
    lost = dbapi.closed or (isinstance(err, DBAPIError) and err.connection_invalidated)
    if not lost:
        at_commit = (isinstance(err, DBAPIError) and err.statement is None
                     and original.pgcode is not None)
        return commit_failed(name, original) if at_commit else None
    if not isinstance(original, psycopg2.OperationalError):
        return None
    table = ('"' + version_schema.replace('"', '""') + '".alembic_version'
             if version_schema else "alembic_version")
    return connection_lost(url, name, original, before=step.from_revisions_no_deps,
                           after=step.to_revisions_no_deps, version_table=table)


def _announcing(
    steps_fn: Callable[..., Iterable[RevisionStep]], reporter: Events | None,
    token: CancelToken | None,
    lock_check: Callable[[], None] | None = None, running: list[RevisionStep] | None = None,
) -> Callable[..., Iterator[RevisionStep]]:
    """Check for cancellation (and that the lock's lease is still ours) and tell the
    reporter just before Alembic runs each step; ``running`` ends with that step."""

    def steps(*args: Any, **kwargs: Any) -> Iterator[RevisionStep]:
        for step in steps_fn(*args, **kwargs):
            if running is not None:
                running[:] = [step]
            name = _file_name(getattr(step, "revision", None))  # stamps have none
            if token is not None:
                token.check(f"before {name}" if name else "")
            if lock_check is not None:
                lock_check()
            if reporter is not None and name is not None:
                reporter.start(name, bool(step.is_upgrade))
            yield step

    return steps


def _after_each(schema: str, reporter: Events | None) -> Callable[..., None]:
    """After each step, inside its transaction: history rows for ``.py`` revisions and
    stamps (SQL revisions write their own), and progress for the reporter."""

    def callback(
        *, ctx: MigrationContext, step: MigrationInfo, heads: set[str], run_args: dict[str, Any]
    ) -> None:
        if ctx.as_sql:
            return
        if step.is_stamp:
            # every revision the stamp covers (or uncovers), not just its destination
            lookup = step.revision_map.get_revision
            before = ancestors(step.source_revision_ids, lookup)
            after = ancestors(step.destination_revision_ids, lookup)
            _record(ctx, schema, step, history.STAMPED, sorted(after - before))
            _record(ctx, schema, step, history.UNSTAMPED, sorted(before - after))
            return
        if _sql_migration(step.up_revision) is None:
            action = history.APPLIED if step.is_upgrade else history.ROLLED_BACK
            assert step.up_revision_id is not None  # None for stamps only
            _record(ctx, schema, step, action, (step.up_revision_id,))
        name = _file_name(step.up_revision)
        if reporter is not None and name is not None:
            reporter.done(name, bool(step.is_upgrade))

    return callback


def _record(
    ctx: MigrationContext, schema: str, step: MigrationInfo, action: str,
    revision_ids: Iterable[str],
) -> None:
    assert ctx.connection is not None  # online: the callback returns first offline
    with history.writing(ctx.connection.connection.dbapi_connection, schema) as cursor:
        for revision_id in revision_ids:
            script = step.revision_map.get_revision(revision_id)
            migration = _sql_migration(script)
            entry = history.Entry(
                version=revision_id,
                name=migration.name.slug if migration else None,
                filename=_file_name(script),
                checksum=migration.checksum if migration else None,
                execution_ms=None,
                action=action,
                up_checksum=migration.up_checksum if migration else None,
            )
            history.record(cursor, schema, entry)


def _file_name(script: object) -> str | None:
    """A revision's file name (``002_add_users.sql``, ``abc123def456_feature.py``), or None
    when there is no script or it has no file (the steps of a stamp)."""
    path = getattr(script, "path", None)
    return os.path.basename(path) if path else None


def _sql_migration(script: Revision | None) -> ParsedMigration | None:
    return getattr(getattr(script, "module", None), "fraiseql_migration", None)
