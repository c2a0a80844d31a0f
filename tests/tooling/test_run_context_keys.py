"""A scan of the sources: config.attributes is read through one key, no string key of ours is left."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fraiseql_alembic import api
from fraiseql_alembic.alembic_bridge import plugin
from fraiseql_alembic.engine import preflight

PACKAGE = Path(plugin.__file__).parent


SOURCES = sorted(PACKAGE.rglob("*.py"))


# config.attributes[...], .get(...), .setdefault(...), .pop(...): the key given
_ATTRIBUTE_USE = re.compile(r"\.attributes(?:\.(?:get|setdefault|pop))?\s*[\[(]\s*([^,\])]+)")


# "connection" is Alembic's cookbook key (pytest-alembic sets it), not ours
_ALLOWED_KEYS = {"RUN_CONTEXT_KEY", '"connection"'}


def test_config_attributes_are_read_through_one_key() -> None:
    keys = {
        (path.name, match.group(1).strip())
        for path in SOURCES
        for match in _ATTRIBUTE_USE.finditer(path.read_text(encoding="utf-8"))
    }
    assert keys, "the scan found no use of config.attributes at all"
    assert {key for _, key in keys} <= _ALLOWED_KEYS, sorted(keys)


def test_no_string_key_of_ours_is_left() -> None:
    """The old keys were string constants like "fraiseql.reporter"."""
    left = [
        (path.name, node.value)
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and re.fullmatch(r"fraiseql\.[a-z_]+", node.value)
    ]
    assert left == []


def test_the_checks_moved_down_stay_reachable_from_api() -> None:
    assert api.refuse_inconsistent is preflight.refuse_inconsistent
    assert api.validate_pending is preflight.validate_pending
    assert api.sql_migration is preflight.sql_migration
