"""Everything that talks to PostgreSQL.

Session, step runner, recorder, plan, lock, rehearsal, backup.
"""
