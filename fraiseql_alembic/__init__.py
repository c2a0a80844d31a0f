"""Numbered plain-SQL migrations for PostgreSQL as real Alembic revisions."""

import sys

__version__ = "0.1.0"

# Alembic imports this package to find `script_location = fraiseql_alembic:alembic_env`.
# Alembic 1.18+ loads our plugin through its `alembic.plugins` entry point; before 1.18
# there are no plugin entry points, so the plugin is installed from here instead (the
# `fraiseql` command imports this package before Alembic, and does nothing here).
if "alembic" in sys.modules and "alembic.runtime.plugins" not in sys.modules:
    from .alembic_bridge.plugin import install_without_entry_points

    install_without_entry_points()
