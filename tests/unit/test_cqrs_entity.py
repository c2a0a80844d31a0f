"""`create --cqrs ENTITY`: an entity that is not a snake_case identifier is refused with the
one it could be (no database, no file written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraiseql_alembic import api
from fraiseql_alembic.errors import UsageError


def test_entity_suggestion(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\(e\.g\. --cqrs blog_post\)"):
        api.create(tmp_path, "x", cqrs="Blog Post")
    assert list(tmp_path.iterdir()) == []
