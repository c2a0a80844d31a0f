"""The Alembic environment of fraiseql-alembic.

Use it as ``script_location = fraiseql_alembic:alembic_env``.
"""
