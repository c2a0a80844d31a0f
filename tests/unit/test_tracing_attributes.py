"""Pure parts of the OpenTelemetry spans: the database's attributes from its URL, a
failure's attributes, the rows a command tag says were changed."""

from __future__ import annotations

import sys
import threading

import pytest

from fraiseql_alembic.engine import tracing
from fraiseql_alembic.engine.batchquery import changed_rows
from fraiseql_alembic.engine.tracing import database_attributes, error_attributes
from fraiseql_alembic.errors import MigrationError, MigrationExecutionError, MigrationFileError


def test_database_attributes_follow_the_semantic_conventions() -> None:
    assert database_attributes("postgresql://app:s3cret@db.internal:6432/shop?sslmode=require") == {
        "db.system.name": "postgresql",
        "db.system": "postgresql",
        "db.namespace": "shop",
        "server.address": "db.internal",
        "server.port": 6432,
        "fraiseql.database.url": "postgresql://app:***@db.internal:6432/shop?sslmode=require",
    }


def test_database_attributes_of_a_socket_url_without_a_password() -> None:
    attributes = database_attributes(
        "postgresql+psycopg2:///my%20db?host=/var/run/postgresql&port=5433&password=pw")
    assert attributes["db.namespace"] == "my db"
    assert attributes["server.address"] == "/var/run/postgresql"
    assert attributes["server.port"] == 5433
    assert "pw" not in str(attributes["fraiseql.database.url"])


def test_database_attributes_of_a_bad_port_keep_the_rest() -> None:
    attributes = database_attributes("postgresql://u@h:notaport/d")
    assert attributes["db.namespace"] == "d"
    assert "server.port" not in attributes


def test_a_statement_error_gives_its_sqlstate_and_place() -> None:
    err = MigrationExecutionError("002_x.sql", 4, 13, "INSERT INTO missing VALUES (1)",
                                  'relation "missing" does not exist', "42P01")
    assert error_attributes(err) == {
        "error.type": "42P01", "db.response.status_code": "42P01",
        "code.line.number": 4, "code.column.number": 13,
    }


def test_a_lock_timeout_given_up_on_is_read_from_its_cause() -> None:
    cause = MigrationExecutionError("003_y.sql", 2, 1, "ALTER TABLE t ADD c int",
                                    "canceling statement due to lock timeout", "55P03")
    try:
        raise MigrationError("Migration 003_y.sql could not get a lock") from cause
    except MigrationError as err:
        assert error_attributes(err) == {
            "error.type": "55P03", "db.response.status_code": "55P03",
            "code.line.number": 2, "code.column.number": 1,
        }


def test_a_cause_chain_that_loops_ends() -> None:
    """An error whose causes lead back to it (an error re-raised from the one it wraps)
    once made ``up`` spin at 100% CPU forever whenever tracing was on."""
    outer = MigrationError("Migration 002_x.sql was refused")
    inner = MigrationError("wrapped")
    outer.__cause__, inner.__cause__ = inner, outer
    found: list[dict[str, object]] = []
    worker = threading.Thread(target=lambda: found.append(dict(error_attributes(outer))),
                              daemon=True)
    worker.start()
    worker.join(5)
    assert found == [{"error.type": "MigrationError"}]


def test_other_errors_are_named_by_their_class() -> None:
    assert error_attributes(MigrationFileError("001_a.sql", "bad marker", line=3)) == {
        "error.type": "MigrationFileError", "code.line.number": 3}
    assert error_attributes(KeyboardInterrupt()) == {"error.type": "KeyboardInterrupt"}


@pytest.mark.parametrize(("tag", "rows"), [
    (b"INSERT 0 5", 5), (b"UPDATE 3", 3), (b"DELETE 0", 0), (b"MERGE 7", 7), ("COPY 10", 10),
    (b"SELECT 5", 0), (b"CREATE TABLE", 0), (b"", 0), (b"INSERT 0 x", 0),
])
def test_changed_rows_from_the_command_tag(tag: bytes | str, rows: int) -> None:
    assert changed_rows(tag) == rows


def test_a_named_provider_without_opentelemetry_installed_traces_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_PYTHON_TRACER_PROVIDER makes tracer() import the API; not installed (here:
    unimportable), the run is simply not traced."""
    monkeypatch.delitem(sys.modules, "opentelemetry.trace", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # type: ignore[arg-type]
    monkeypatch.setenv(tracing.PROVIDER_VARIABLE, "sdk_tracer_provider")
    assert tracing.tracer() is None
    monkeypatch.delenv(tracing.PROVIDER_VARIABLE)
    assert tracing.tracer() is None
