"""Alembic environment for FraiseQL SQL migrations.

The logic lives in :mod:`fraiseql_alembic.alembic_bridge.environment`.
"""

from fraiseql_alembic.alembic_bridge.environment import run_environment

run_environment()
