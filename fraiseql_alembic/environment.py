"""What our shipped ``env.py`` does: connect, configure Alembic, run the migrations.

Online, each migration runs in its own transaction (``transaction_per_migration``)
holding its SQL, the ``alembic_version`` change and its history row.  The database
URL comes from ``config.attributes`` (set by our API), ``sqlalchemy.url``, or
``DATABASE_URL``.  Offline (``--sql``), statements are written for ``psql``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import history
from .plugin import DEFAULT_HISTORY_SCHEMA, HISTORY_SCHEMA_KEY, REPORTER_KEY, as_command_error
from .settings import URL_KEY, sqlalchemy_url

Step = Any


def configured_url(config: Any) -> str | None:
    """The URL our API passed, else ``sqlalchemy.url``, else ``DATABASE_URL``."""
    url = config.attributes.get(URL_KEY) or config.get_main_option("sqlalchemy.url")
    return url or os.environ.get("DATABASE_URL") or None


def run_environment() -> None:
    from alembic import context

    from .errors import ConfigError

    config = context.config
    url = configured_url(config)
    schema = config.attributes.get(HISTORY_SCHEMA_KEY) or config.get_main_option(
        "fraiseql_history_schema", DEFAULT_HISTORY_SCHEMA
    )
    config.attributes.setdefault(HISTORY_SCHEMA_KEY, schema)
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
    if not url:
        raise as_command_error(
            ConfigError(
                "No database configured: set DATABASE_URL, pass --database-url, "
                "or set sqlalchemy.url in alembic.ini"
            )
        )
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from .database import connect_error

    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        connection = engine.connect()
    except Exception as err:
        raise as_command_error(connect_error(url, err)) from err
    with connection:
        reporter = config.attributes.get(REPORTER_KEY)
        context.configure(
            connection=connection,
            transaction_per_migration=True,
            on_version_apply=_record_python_revision(schema),
        )
        migration_context = context.get_context()
        if reporter is not None:
            steps_fn = migration_context._migrations_fn
            assert steps_fn is not None
            migration_context._migrations_fn = _announcing(steps_fn, reporter.start)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _announcing(
    steps_fn: Callable[..., Iterable[Step]], start: Callable[[str, bool], None]
) -> Callable[..., Iterator[Step]]:
    """Tell the reporter about each migration just before Alembic runs it."""

    def steps(*args: Any, **kwargs: Any) -> Iterator[Step]:
        for step in steps_fn(*args, **kwargs):
            script = getattr(step, "revision", None)  # stamps have none
            if script is not None and getattr(script, "path", None):
                start(os.path.basename(script.path), bool(step.is_upgrade))
            yield step

    return steps


def _record_python_revision(schema: str) -> Callable[..., None]:
    """History rows for hand-written ``.py`` revisions and for stamps.

    SQL revisions write their own row inside their upgrade/downgrade function.
    """

    def callback(*, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        if ctx.as_sql:
            return
        if step.is_stamp:
            action, revision_ids = history.STAMPED, step.destination_revision_ids
        else:
            if _sql_migration(step.up_revision) is not None:
                return
            action = history.APPLIED if step.is_upgrade else history.ROLLED_BACK
            revision_ids = (step.up_revision_id,)
        cursor = ctx.connection.connection.dbapi_connection.cursor()
        try:
            history.ensure_table(cursor, schema)
            for revision_id in revision_ids:
                script = step.revision_map.get_revision(revision_id)
                migration = _sql_migration(script)
                path = getattr(script, "path", None)
                entry = history.Entry(
                    version=revision_id,
                    name=migration.name.slug if migration else None,
                    filename=os.path.basename(path) if path else None,
                    checksum=migration.checksum if migration else None,
                    execution_ms=None,
                    action=action,
                )
                history.record(cursor, schema, entry)
        finally:
            cursor.close()

    return callback


def _sql_migration(script: Any) -> Any:
    return getattr(getattr(script, "module", None), "fraiseql_migration", None)
