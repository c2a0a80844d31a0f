"""PostgreSQL error codes (SQLSTATE) this package reacts to, by name.

Every SQLSTATE the package compares with or writes into a message is spelled here
once (``tests/tooling/test_sqlstate_literals.py`` scans the package for literals elsewhere).  Names
follow PostgreSQL's ``errcodes.txt`` (and psycopg2's ``errors`` classes).
"""

from __future__ import annotations

#: Class 08, connection exception: the connection is gone or never was.
CONNECTION_EXCEPTION_CLASS = "08"

DIVISION_BY_ZERO = "22012"
INVALID_TEXT_REPRESENTATION = "22P02"
#: ``EXECUTE`` of a prepared statement that does not exist (any more).
INVALID_SQL_STATEMENT_NAME = "26000"
INSUFFICIENT_PRIVILEGE = "42501"
LOCK_NOT_AVAILABLE = "55P03"
#: ``unsafe use of new value`` of an enum, before the ``ALTER TYPE ... ADD VALUE`` commits.
UNSAFE_NEW_ENUM_VALUE_USAGE = "55P04"
ADMIN_SHUTDOWN = "57P01"
CRASH_SHUTDOWN = "57P02"
CANNOT_CONNECT_NOW = "57P03"

#: The server went away (shut down, crashed or restarting), like a lost connection.
SERVER_GONE = (ADMIN_SHUTDOWN, CRASH_SHUTDOWN, CANNOT_CONNECT_NOW)


def shown(sqlstate: str | None) -> str:
    """`` [SQLSTATE xxxxx]`` for a message, or "" without a code."""
    return f" [SQLSTATE {sqlstate}]" if sqlstate else ""
