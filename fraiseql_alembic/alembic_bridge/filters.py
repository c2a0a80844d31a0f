"""Autogenerate filters that keep our bookkeeping tables out of every comparison.

``fraiseql_migrations``, its progress and segment tables, the lease table and
``alembic_version`` live in the migrated database but in no model, so a plain
``alembic revision --autogenerate`` proposes dropping them; applying that deletes the
history.  Pass these to ``context.configure`` in your own env.py::

    from fraiseql_alembic.alembic_bridge.filters import include_name, include_object

    context.configure(connection=connection, target_metadata=target_metadata,
                      include_name=include_name, include_object=include_object)

Both are pure functions of names; they never touch the database.  ``fraiseql migrate
create --autogenerate``, ``alembic check`` and ``alembic revision --autogenerate`` in our
environment use them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.database import VERSION_TABLE
from ..engine.history import PROGRESS_TABLE, SEGMENTS_TABLE
from ..engine.history import TABLE as HISTORY_TABLE
from ..engine.locking import LEASE_TABLE

__all__ = ["BOOKKEEPING_TABLES", "include_name", "include_object"]

#: The tables fraiseql-alembic and Alembic keep in a migrated database (in any schema).
BOOKKEEPING_TABLES = frozenset(
    {HISTORY_TABLE, PROGRESS_TABLE, SEGMENTS_TABLE, LEASE_TABLE, VERSION_TABLE}
)


def include_name(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
    """Alembic's ``include_name`` hook: False for our bookkeeping tables and for the
    indexes, constraints and columns that belong to them."""
    if type_ == "table":
        return name not in BOOKKEEPING_TABLES
    return parent_names.get("table_name") not in BOOKKEEPING_TABLES


def include_object(
    object: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's ``include_object`` hook: False for our bookkeeping tables (a model
    that declares one, or one reflected from the database) and for what belongs to them."""
    if type_ == "table":
        return name not in BOOKKEEPING_TABLES
    table = getattr(object, "table", None)
    return getattr(table, "name", None) not in BOOKKEEPING_TABLES
