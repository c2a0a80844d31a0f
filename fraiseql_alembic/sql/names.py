"""Migration file names: ``003_add_indexes.sql`` -> version ``003``, number 3, slug.

Pure naming rules, shared by the folder scan, ``create`` and ``check``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A migration file: digits, underscore, snake_case slug, ``.sql``.
#: ASCII digits only: ``٠٠٤_x.sql`` is not migration 4.
FILENAME_RE = re.compile(r"^(?P<version>[0-9]+)_(?P<slug>[a-z][a-z0-9_]*)\.sql$")
#: A name accepted by ``create``.
SLUG_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_SLUG_LENGTH = 100


def suggest_slug(text: str) -> str | None:
    """``text`` as a snake_case name (``'Add User Bio!'`` -> ``add_user_bio``), if it makes one."""
    words = "".join(ch if ch.isalnum() and ch.isascii() else " " for ch in text).lower().split()
    suggestion = "_".join(words).lstrip("0123456789_")
    return suggestion if SLUG_RE.match(suggestion) else None


# Numbers, not Alembic's 12-character hex ids (which can be all digits by chance).
NUMERIC_ID_RE = re.compile(r"^\d{1,11}$")


def is_numeric_id(revision: str) -> bool:
    """True for a numbered revision id (``004``), false for Alembic's hex ids."""
    return bool(NUMERIC_ID_RE.match(revision))


@dataclass(frozen=True)
class MigrationName:
    """What a file name says: ``003_add_indexes.sql`` -> version ``003``, number 3."""

    filename: str
    version: str
    number: int
    slug: str

    @property
    def stem(self) -> str:
        return f"{self.version}_{self.slug}"

    def renumbered(self, number: int) -> str:
        """The file name with ``number`` in place of the version, as wide as before."""
        return f"{str(number).zfill(len(self.version))}_{self.slug}.sql"


def parse_filename(filename: str) -> MigrationName | None:
    """Return the parts of a migration file name, or None if it is not one."""
    match = FILENAME_RE.match(filename)
    if match is None:
        return None
    version = match.group("version")
    return MigrationName(filename, version, int(version), match.group("slug"))
