"""Pure parts of autogenerate: where the models are, the bookkeeping filters, which type
changes may lose data."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from fraiseql_alembic.alembic_bridge.filters import include_name, include_object
from fraiseql_alembic.alembic_bridge.sqlrender import narrowing
from fraiseql_alembic.errors import ConfigError
from fraiseql_alembic.settings import models_setting, shadow_database_url


def test_models_from_pyproject_alembic_ini_or_the_flag(tmp_path: Path) -> None:
    assert models_setting(cwd=tmp_path) is None
    (tmp_path / "alembic.ini").write_text(
        "[alembic]\nfraiseql.target_metadata = app.a:Base.metadata, app.b:meta\n")
    found = models_setting(cwd=tmp_path)
    assert found is not None
    assert found.paths == ("app.a:Base.metadata", "app.b:meta")
    assert found.source == "fraiseql.target_metadata in alembic.ini"
    assert found.root == tmp_path
    (tmp_path / "pyproject.toml").write_text(
        '[tool.fraiseql]\ntarget_metadata = ["app.models:Base.metadata", "app.x:m"]\n')
    found = models_setting(cwd=tmp_path)
    assert found is not None and found.paths == ("app.models:Base.metadata", "app.x:m")
    assert found.source == "target_metadata under [tool.fraiseql] in pyproject.toml"
    given = models_setting(("other:meta",), cwd=tmp_path)
    assert given is not None and given.paths == ("other:meta",)
    assert given.source == "--metadata"


@pytest.mark.parametrize(("toml", "message"), [
    ('target_metadata = "app.models"',
     r"^target_metadata under \[tool.fraiseql\] in pyproject.toml: 'app.models' is not a "
     r"models path; write module:attribute, e.g. myapp.models:Base.metadata$"),
    ('target_metadata = "app-x:meta"', r"'app-x:meta' is not a models path"),
    ("target_metadata = 3", r"must be a string or a list of strings"),
    ('target_metadata = [""]', r"is empty; write module:attribute"),
])
def test_a_malformed_models_setting_is_one_line(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.fraiseql]\n{toml}\n")
    with pytest.raises(ConfigError, match=message):
        models_setting(cwd=tmp_path)


def test_shadow_url_from_the_flag_then_the_environment() -> None:
    environ = {"FRAISEQL_SHADOW_DATABASE_URL": "postgresql://s/env"}
    assert shadow_database_url("postgresql://s/flag", environ=environ) == (
        "postgresql://s/flag", "--shadow-database-url")
    assert shadow_database_url(None, environ=environ) == (
        "postgresql://s/env", "FRAISEQL_SHADOW_DATABASE_URL")
    assert shadow_database_url(None, environ={}) == (None, None)


@pytest.mark.parametrize("table", ["fraiseql_migrations", "fraiseql_migration_progress",
                                   "fraiseql_migration_segments", "fraiseql_migration_lock",
                                   "alembic_version"])
def test_bookkeeping_tables_are_never_compared(table: str) -> None:
    assert not include_name(table, "table", {"schema_name": "ops"})
    assert not include_name("ix_x", "index", {"table_name": table, "schema_name": None})
    metadata = sa.MetaData()
    model = sa.Table(table, metadata, sa.Column("id", sa.Integer))
    assert not include_object(model, table, "table", True, None)
    assert not include_object(model.c.id, "id", "column", True, None)
    users = sa.Table("tb_user", metadata, sa.Column("id", sa.Integer))
    assert include_name("tb_user", "table", {}) and include_name(None, "schema", {})
    assert include_object(users, "tb_user", "table", False, None)
    assert include_object(users.c.id, "id", "column", False, None)


@pytest.mark.parametrize(("old", "new", "loses"), [
    (sa.String(50), sa.String(100), False),
    (sa.String(50), sa.Text(), False),
    (sa.Text(), sa.String(20), True),
    (sa.String(100), sa.String(50), True),
    (sa.SmallInteger(), sa.BigInteger(), False),
    (sa.BigInteger(), sa.Integer(), True),
    (sa.Numeric(10, 2), sa.Numeric(12, 2), False),
    (sa.Numeric(10, 2), sa.Numeric(), False),
    (sa.Numeric(10, 2), sa.Numeric(10, 1), True),
    (sa.Numeric(), sa.Numeric(10, 2), True),
    (sa.Integer(), sa.Numeric(), False),
    (sa.Text(), sa.Integer(), True),
    (sa.DateTime(), sa.Date(), True),
])
def test_narrowing(old: sa.types.TypeEngine[object], new: sa.types.TypeEngine[object],
                   loses: bool) -> None:
    assert (narrowing(old, new) is not None) is loses
