"""Numbered plain-SQL migrations for PostgreSQL as real Alembic revisions."""

__version__ = "0.1.0"
