"""Alembic environment for FraiseQL SQL migrations.

The logic lives in :mod:`fraiseql_alembic.alembic_bridge.environment`.
"""

from fraiseql_alembic.alembic_bridge.environment import run_environment
from fraiseql_alembic.alembic_bridge.plugin import install_without_entry_points

install_without_entry_points()  # Alembic before 1.18 loads no plugin of its own
run_environment()
