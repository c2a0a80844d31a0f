"""Pure SQL: read a migration file as psql would, split it, lint it.

No I/O, no psycopg2, no alembic.
"""
