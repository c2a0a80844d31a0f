"""pyproject.toml and TOML targets files are read on Python 3.10 too, through tomli."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tomllib

from fraiseql_alembic import settings
from fraiseql_alembic.errors import ConfigError
from fraiseql_alembic.project.targets import parse_toml

PYPROJECT = '[tool.fraiseql.migrations]\npath = "db/migrations"\nlock_timeout = "3s"\n'


@pytest.fixture
def python_3_10(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tomllib (Python 3.10); tomli, its backport, installed (the 3.10 dependency)."""
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    monkeypatch.setitem(sys.modules, "tomllib", None)  # import tomllib: ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "tomli", tomllib)


@pytest.mark.usefixtures("python_3_10")
def test_pyproject_settings_are_read_without_tomllib(tmp_path: Path) -> None:
    # It used to give up silently on 3.10: the project's settings were ignored.
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    resolved = settings.resolve(cwd=tmp_path)
    assert resolved.path == tmp_path / "db/migrations"
    assert resolved.run.lock_timeout == "3s"


@pytest.mark.usefixtures("python_3_10")
def test_a_toml_targets_file_is_read_without_tomllib(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    text = '[targets.acme]\nurl = "postgresql://app@db1/acme"\n'
    (target,) = parse_toml(text, path, {}).targets
    assert (target.name, target.url) == ("acme", "postgresql://app@db1/acme")


def test_a_broken_pyproject_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.fraiseql\n")
    with pytest.raises(ConfigError, match=r"^Cannot read .*pyproject\.toml: .*line 1"):
        settings.resolve(cwd=tmp_path)
