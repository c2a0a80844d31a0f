"""Alembic environment for FraiseQL SQL migrations.

The logic lives in :mod:`fraiseql_alembic.environment`.
"""

from fraiseql_alembic.environment import run_environment

run_environment()
