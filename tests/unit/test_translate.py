"""Foreign errors become ours in one place (``fraiseql_alembic.engine.translate``), with the
SQLSTATEs named once (``fraiseql_alembic.sqlstate``)."""

from __future__ import annotations

import psycopg2
import pytest
from scenarios import PERMISSION_RE

from fraiseql_alembic.engine import history
from fraiseql_alembic.engine.translate import database_error, permission_denied
from fraiseql_alembic.errors import DatabaseError


def _insufficient_privilege(text: str) -> psycopg2.Error:
    err = psycopg2.errors.InsufficientPrivilege(text)
    err.__setstate__({"pgerror": text, "pgcode": "42501"})  # as the server would set them
    return err


def test_42501_has_one_message_wherever_it_is_met() -> None:
    err = _insufficient_privilege("permission denied for schema public")
    generic = database_error(err)
    assert isinstance(generic, DatabaseError)
    assert str(generic) == str(permission_denied("permission denied for schema public"))

    class _Connection:
        def cursor(self) -> object:
            return self

        def close(self) -> None:
            pass

    with pytest.raises(DatabaseError) as raised, history.writing(_Connection(), "audit"):
        raise _insufficient_privilege("permission denied for schema audit")
    assert str(raised.value) == str(permission_denied("permission denied for schema audit",
                                                      "audit"))
    for message in (str(generic), str(raised.value)):
        assert PERMISSION_RE.match(f"Error: {message}"), message


