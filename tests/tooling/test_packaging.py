"""The wheel carries the templates and the Alembic environment, and registers the plugin;
installed into a fresh virtualenv (the README tour's set-up), its commands run from there."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from scenarios import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from the checkout (what `pip install .` installs)."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    (built,) = folder.glob("fraiseql_alembic-*.whl")
    return built


def test_wheel_contains_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "fraiseql_alembic/templates/migration.sql",
        "fraiseql_alembic/templates/migrations_README.md",
        "fraiseql_alembic/alembic_env/env.py",
        "fraiseql_alembic/alembic_env/script.py.mako",
        "fraiseql_alembic/alembic_bridge/plugin.py",
        "fraiseql_alembic/py.typed",  # PEP 561: the API's type hints reach its users
        "fraiseql_alembic/pytest_plugin.py",  # the pytest11 entry point and what it loads
        "fraiseql_alembic/testing/databases.py",
    ):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert ("[alembic.plugins]\nfraiseql_adopted = fraiseql_alembic.alembic_bridge.adopted\n"
            "fraiseql_sql = fraiseql_alembic.alembic_bridge.plugin\n") in text
    assert "fraiseql = fraiseql_alembic.console:main" in text
    assert "[pytest11]\nfraiseql = fraiseql_alembic.pytest_plugin\n" in text


def test_wheel_installs_into_a_fresh_virtualenv_offline(wheel: Path, tmp_path: Path) -> None:
    """The README tour's set-up, `python3 -m venv` then `pip install .`, without the network:
    the wheel goes into a new virtualenv with `--no-index`; its dependencies come from this
    one (a .pth line after the new site-packages, so our package is the new copy).  The
    tour test (tests/process/test_readme_tour.py) runs the rest of the tour."""
    venv = tmp_path / "venv"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)],
                   check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"

    def run(*argv: str) -> str:
        result = subprocess.run([*argv], capture_output=True, text=True, timeout=300,
                                cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    version, purelib = run(str(python), "-c", "import sys, sysconfig; print(sys.version_info[:2]);"
                           "print(sysconfig.get_path('purelib'))").splitlines()
    assert version == str(sys.version_info[:2]), "python3 is not this virtualenv's Python"
    Path(purelib, "_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n",
                                                        encoding="utf-8")
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
        "--no-deps", str(wheel))
    where = run(str(python), "-c", "import fraiseql_alembic; print(fraiseql_alembic.__file__)")
    assert Path(where.strip()).is_relative_to(venv)
    assert run(str(venv / "bin" / "fraiseql"), "--version").startswith("fraiseql")
    assert "--export" in run(str(python), "-m", "fraiseql_alembic.devdb", "start", "--help")
