"""A cancel (Ctrl-C, SIGTERM) asked for in the window between the runner's check of the
token and its statement reaching the server is not lost (engine/cancel.py).

PostgreSQL ignores a cancel request that reaches a backend which is not running a
statement, so a request sent in that window alone let the statement run to its end.  The
window is held open for real, without a sleep: the reporter's ``start`` (called after the
runner's check, before the migration's query is sent) asks for the cancel, and the
mechanism's own test sends the first request before the statement while the backend is
idle, then a statement that ends only when cancelled.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.errors
import pytest
from conftest import Project
from scenarios import meanwhile, on_path, wait_until

from fraiseql_alembic import api, settings
from fraiseql_alembic.engine.cancel import CancelToken, MigrationInterrupted
from fraiseql_alembic.engine.events import NoEvents

#: an advisory lock key the tests hold, that the statement under test waits for
KEY = 4242
USER_CANCEL = "canceling statement due to user request"


class CancelAtStart(NoEvents):
    """Asks for the cancel when ``filename`` starts: the runner has checked the token and
    the backend is idle, its statements not sent yet."""

    def __init__(self, token: CancelToken, filename: str) -> None:
        self.token, self.filename = token, filename

    def start(self, filename: str, is_upgrade: bool) -> None:
        if filename == self.filename:
            self.token.cancel("SIGINT")


@pytest.mark.parametrize("path", ["direct", "alembic"])
def test_a_cancel_after_the_check_before_the_query_is_sent_stops_the_migration(
    project: Project, path: str,
) -> None:
    on_path(project, path, "001_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\n")
    project.write("002_b.sql", "-- migrate:up\nCREATE TABLE b (id int);\n")
    token = CancelToken()
    with pytest.raises(MigrationInterrupted, match=r"Stopped by SIGINT .*002_b\.sql"):
        api.upgrade(settings.resolve(project.migrations, project.database_url),
                    reporter=CancelAtStart(token, "002_b.sql"), cancel=token)
    assert "a" in project.tables()
    assert "b" not in project.tables()  # without the fix: applied, the cancel was ignored
    assert project.version() == ["001"]


PY_REVISION = ('"""B."""\nfrom alembic import op\n\nrevision = "002"\ndown_revision = "001"\n\n'
               "def upgrade() -> None:\n    op.execute('CREATE TABLE b (id int)')\n{more}\n"
               "def downgrade() -> None:\n    op.execute('DROP TABLE b')\n")


def test_a_python_revisions_statement_is_not_sent_after_a_cancel(project: Project) -> None:
    # its statements go through SQLAlchemy: the bridge marks them with its cursor events
    project.write("001_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\n")
    (project.migrations / "002_b.py").write_text(PY_REVISION.format(more=""))
    token = CancelToken()
    with pytest.raises(MigrationInterrupted, match=r"Stopped by SIGINT in 002_b\.py"):
        api.upgrade(settings.resolve(project.migrations, project.database_url),
                    reporter=CancelAtStart(token, "002_b.py"), cancel=token)
    assert "b" not in project.tables()  # without the fix: created, the cancel was ignored
    assert project.version() == ["001"]


def test_a_cancelled_python_revision_statement_is_told_as_a_stop(project: Project) -> None:
    # as a .sql revision's: MigrationInterrupted (exit 130/143), not a database error
    project.write("001_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\n")
    (project.migrations / "002_b.py").write_text(
        PY_REVISION.format(more=f"    op.execute('SELECT pg_advisory_lock({KEY})')\n"))
    token = CancelToken()

    def waiting() -> bool:
        return bool(project.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type "
                                  "= 'Lock' AND datname = current_database()")[0][0])

    with holding_lock(project), meanwhile(waiting, lambda: token.cancel("SIGTERM")), \
            pytest.raises(MigrationInterrupted, match=r"Stopped by SIGTERM in 002_b\.py; "
                          "that migration was rolled back"):
        api.upgrade(settings.resolve(project.migrations, project.database_url), cancel=token)
    assert "b" not in project.tables()
    assert project.version() == ["001"]


@contextmanager
def holding_lock(project: Project) -> Iterator[None]:
    holder = psycopg2.connect(project.database_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        yield
    finally:
        holder.close()


def waiting_for_the_lock(connection: psycopg2.extensions.connection) -> None:
    """A statement that ends only when cancelled (or after a minute, told apart)."""
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '60s'")
        cursor.execute("SELECT pg_advisory_lock(%s)", (KEY,))


def test_a_request_that_reaches_an_idle_backend_is_sent_again_until_the_statement_ends(
    project: Project,
) -> None:
    # two connections in flight on one token, as a fleet's targets are; the first request
    # to each is sent while its backend is idle (the statement not sent yet), which the
    # server drops: only a request sent again cancels the statement
    token = CancelToken()
    first, second = (psycopg2.connect(project.database_url) for _ in range(2))
    errors: list[BaseException] = []
    in_flight = threading.Event()

    def other() -> None:
        try:
            with token.sending(second):
                in_flight.set()
                waiting_for_the_lock(second)
        except BaseException as err:  # told to the test below
            errors.append(err)

    try:
        with holding_lock(project):
            thread = threading.Thread(target=other)
            with token.sending(first):
                thread.start()
                in_flight.wait(60)
                token.cancel("SIGINT")
                with pytest.raises(psycopg2.errors.QueryCanceled, match=USER_CANCEL):
                    waiting_for_the_lock(first)
            thread.join(60)
        assert len(errors) == 1 and USER_CANCEL in str(errors[0]), errors
        # the requests stop once no statement is in flight: what follows is not cancelled
        wait_until(lambda: not any(t.name == "fraiseql-cancel" for t in threading.enumerate()))
        for connection in (first, second):
            connection.rollback()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        with pytest.raises(MigrationInterrupted, match="Stopped by SIGINT before line 3"), \
                token.sending(first, "before line 3"):
            pytest.fail("a statement was sent after the cancel")
    finally:
        first.close()
        second.close()


def test_a_cancel_during_a_rehearsals_deferred_checks_stops_it(project: Project) -> None:
    # the deferred foreign key is checked by `SET CONSTRAINTS ALL IMMEDIATE`, which waits
    # for the parent row the test holds locked; the cancel stops the rehearsal, where it
    # was told as the migration failing at COMMIT (`canceling statement due to user request`)
    project.query("CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent VALUES (1)")
    project.write("001_child.sql", "-- migrate:up\nCREATE TABLE child (parent_id int "
                  "REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n"
                  "INSERT INTO child VALUES (1);\n")
    token = CancelToken()
    holder = psycopg2.connect(project.database_url)

    def checking() -> bool:
        return bool(project.query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                  "'SET CONSTRAINTS%' AND wait_event_type = 'Lock'")[0][0])

    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT * FROM parent FOR UPDATE")
        with meanwhile(checking, lambda: token.cancel("SIGINT")), \
                pytest.raises(MigrationInterrupted, match=r"Stopped by SIGINT in "
                              r"001_child\.sql during its deferred checks; nothing was written"):
            api.rehearse(settings.resolve(project.migrations, project.database_url),
                         cancel=token)
    finally:
        holder.close()
    assert "child" not in project.tables()
