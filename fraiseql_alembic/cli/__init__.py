"""``fraiseql migrate``: parse, call :mod:`fraiseql_alembic.api`, render."""
