"""The CQRS migration template (``create NAME --cqrs ENTITY``): pure, no I/O.

The spec's pattern: a normalized command table ``tb_<entity>``, a denormalized query
table ``tv_<entity>`` holding one JSONB document per row with a GIN index, and
optionally the ``sync_history`` table shared by every entity.  The template texts
are package data (``templates/cqrs*.sql``); the caller reads them and passes them in.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from ..errors import UsageError
from ..sql.names import SLUG_RE, suggest_slug

#: PostgreSQL truncates longer identifiers (NAMEDATALEN - 1 bytes).
MAX_IDENTIFIER_BYTES = 63

ENTITY_RE = SLUG_RE  # a snake_case SQL identifier, like a migration name

#: Files of ``templates/`` that :func:`render` needs.
TEMPLATES = ("cqrs.sql", "cqrs_sync_history_up.sql", "cqrs_sync_history_down.sql")


def identifiers(entity: str) -> tuple[str, ...]:
    """Every name the template creates for ``entity`` (tables and index)."""
    return f"tb_{entity}", f"tv_{entity}", f"idx_tv_{entity}_data"


def validate_entity(entity: str) -> str:
    """Return ``entity`` if it makes valid, untruncated identifiers, else raise UsageError."""
    if not ENTITY_RE.match(entity):
        suggestion = suggest_slug(entity)
        hint = f" (e.g. --cqrs {suggestion})" if suggestion else ""
        raise UsageError(
            f"CQRS entity {entity!r} is not a snake_case SQL identifier: use lower-case "
            f"letters, digits and _, starting with a letter{hint}"
        )
    longest = max(identifiers(entity), key=len)
    if len(longest.encode()) > MAX_IDENTIFIER_BYTES:
        room = MAX_IDENTIFIER_BYTES - (len(longest) - len(entity))
        raise UsageError(
            f"CQRS entity {entity!r} is too long: {longest} would be {len(longest)} bytes and "
            f"PostgreSQL truncates identifiers to {MAX_IDENTIFIER_BYTES}; use at most {room} "
            "characters"
        )
    return entity


def render(
    templates: Mapping[str, str],
    *,
    version: str,
    title: str,
    date: str,
    entity: str,
    sync_history: bool,
) -> str:
    """The migration file for ``entity``: ``templates`` maps each of :data:`TEMPLATES`
    to its text."""
    validate_entity(entity)
    values = {"version": version, "title": title, "date": date, "entity": entity}

    def fill(name: str) -> str:
        return string.Template(templates[name]).substitute(values)

    return string.Template(templates["cqrs.sql"]).substitute(
        values,
        sync_history_up=fill("cqrs_sync_history_up.sql") if sync_history else "",
        sync_history_down=fill("cqrs_sync_history_down.sql") if sync_history else "",
    )
