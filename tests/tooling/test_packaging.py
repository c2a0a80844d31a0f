"""The wheel carries the templates and the Alembic environment, and registers the plugin."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from scenarios import REPO


def test_wheel_contains_package_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("fraiseql_alembic-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "fraiseql_alembic/templates/migration.sql",
        "fraiseql_alembic/templates/migrations_README.md",
        "fraiseql_alembic/alembic_env/env.py",
        "fraiseql_alembic/alembic_env/script.py.mako",
        "fraiseql_alembic/alembic_bridge/plugin.py",
        "fraiseql_alembic/py.typed",  # PEP 561: the API's type hints reach its users
    ):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert ("[alembic.plugins]\nfraiseql_adopted = fraiseql_alembic.alembic_bridge.adopted\n"
            "fraiseql_sql = fraiseql_alembic.alembic_bridge.plugin\n") in text
    assert "fraiseql = fraiseql_alembic.console:main" in text
