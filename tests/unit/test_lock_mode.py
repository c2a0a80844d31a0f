"""Where the lock mode (advisory or lease) comes from: option, environment, project settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraiseql_alembic.settings import resolve


def test_lock_mode_sources(tmp_path: Path) -> None:
    """--lock > FRAISEQL_LOCK > lock in pyproject.toml > advisory; bad values are refused."""
    from fraiseql_alembic.errors import ConfigError

    assert resolve(cwd=tmp_path, environ={}).run.lock == "advisory"
    (tmp_path / "pyproject.toml").write_text(
        '[tool.fraiseql.migrations]\nlock = "lease"\nlease_expiry = 5\n')
    settings = resolve(cwd=tmp_path, environ={})
    assert (settings.run.lock, settings.run.lease_expiry) == ("lease", 5.0)
    (tmp_path / "pyproject.toml").write_text('[tool.fraiseql.migrations]\nlock = "advisory"\n')
    assert resolve(cwd=tmp_path, environ={"FRAISEQL_LOCK": "Lease"}).run.lock == "lease"
    with pytest.raises(ConfigError, match="FRAISEQL_LOCK 'session' is not a lock mode"):
        resolve(cwd=tmp_path, environ={"FRAISEQL_LOCK": "session"})
    (tmp_path / "pyproject.toml").write_text('[tool.fraiseql.migrations]\nlease_expiry = 0\n')
    with pytest.raises(ConfigError, match="is not a lease expiry"):
        resolve(cwd=tmp_path, environ={})
