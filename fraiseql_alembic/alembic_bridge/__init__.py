"""The Alembic bridge: the only package that imports alembic (and all private Alembic API)."""
