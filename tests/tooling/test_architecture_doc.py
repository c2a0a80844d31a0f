"""docs/architecture.md names every module of the package, so the map cannot fall behind
the code (a module added, moved or renamed without it fails here)."""

from __future__ import annotations

from pathlib import Path

import fraiseql_alembic

PACKAGE = Path(fraiseql_alembic.__file__).parent
DOC = PACKAGE.parent / "docs" / "architecture.md"


def modules() -> list[str]:
    """Each module as the page spells it (`engine/run.py`, `errors.py`, `sql/lint/`)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("templates", "alembic_env") or "__pycache__" in relative.parts:
            continue
        if path.name in ("__init__.py", "__main__.py"):
            if len(relative.parts) > 2:  # a package inside a layer: named as a folder
                found.append("/".join(relative.parts[:-1]) + "/")
            continue
        if len(relative.parts) > 2:  # a module of sql/lint/: the folder stands for it
            continue
        found.append(relative.as_posix())
    return found


def test_every_module_is_on_the_architecture_page() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in modules() if f"`{name}`" not in text]
    assert missing == [], f"name them in docs/architecture.md: {missing}"


def test_the_scan_sees_the_layers() -> None:
    names = modules()
    assert "engine/run.py" in names and "sql/lint/" in names and "api/migrate.py" in names
