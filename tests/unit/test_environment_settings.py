"""Pure: named environments resolved from pyproject.toml or fraiseql.toml (settings.resolve
and config.py), and their precedence over DATABASE_URL, FRAISEQL_LOCK, the project's
[tool.fraiseql.migrations] and under the CLI's flags.  No database."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraiseql_alembic.cli.options import RunFlags, run_settings
from fraiseql_alembic.errors import ConfigError, UsageError
from fraiseql_alembic.settings import resolve

PROD = "postgresql://deploy:${PROD_PW}@db.prod:5432/app"
AMBIENT = {"DATABASE_URL": "postgresql://me@localhost/scratch", "PROD_PW": "s3cret"}


def project(root: Path, text: str, name: str = "pyproject.toml") -> Path:
    (root / name).write_text(text, encoding="utf-8")
    return root


def prod_project(root: Path) -> Path:
    return project(root, f"""
[tool.fraiseql.migrations]
database_url = "postgresql://cfg@localhost/cfg"
history_schema = "audit"
lock_timeout = "20s"
lock_retries = 7

[tool.fraiseql.environments.prod]
url = "{PROD}"
lock_timeout = "3s"
lock = "advisory"
confirm = true
allow_down = false

[tool.fraiseql.environments.staging]
url = "postgresql://deploy@db.staging/app"
history_schema = "ops"
""")


def test_an_explicit_env_never_uses_the_ambient_database_url(tmp_path: Path) -> None:
    settings = resolve(env="prod", cwd=prod_project(tmp_path), environ=AMBIENT)
    assert settings.database_url == "postgresql://deploy:s3cret@db.prod:5432/app"
    assert settings.url_source == "environment prod"
    assert settings.environment is not None
    assert settings.environment.shown_url == "postgresql://deploy:***@db.prod:5432/app"
    assert (settings.environment.confirm, settings.environment.allow_down) == (True, False)


def test_without_an_environment_the_old_order_holds(tmp_path: Path) -> None:
    root = prod_project(tmp_path)
    assert resolve(cwd=root, environ=AMBIENT).database_url == AMBIENT["DATABASE_URL"]
    settings = resolve(cwd=root, environ={})
    assert (settings.database_url, settings.url_source) == (
        "postgresql://cfg@localhost/cfg", "pyproject.toml")
    assert settings.environment is None


def test_fraiseql_env_selects_and_the_flag_wins_over_it(tmp_path: Path) -> None:
    root = prod_project(tmp_path)
    chosen = resolve(cwd=root, environ={**AMBIENT, "FRAISEQL_ENV": "staging"})
    assert chosen.database_url == "postgresql://deploy@db.staging/app"
    assert chosen.environment is not None and chosen.environment.selected_by == "FRAISEQL_ENV"
    flag = resolve(env="prod", cwd=root, environ={**AMBIENT, "FRAISEQL_ENV": "staging"})
    assert flag.environment is not None and flag.environment.name == "prod"
    # "" asks for no environment at all (init, create, lint): FRAISEQL_ENV is not read
    none = resolve(env="", cwd=root, environ={**AMBIENT, "FRAISEQL_ENV": "nope"})
    assert none.environment is None and none.database_url == AMBIENT["DATABASE_URL"]
    # an empty FRAISEQL_ENV is unset, as an empty DATABASE_URL is
    assert resolve(cwd=root, environ={"FRAISEQL_ENV": ""}).environment is None


@pytest.mark.parametrize(("env", "environ", "named"), [
    ("prod", AMBIENT, "--env prod"),
    (None, {**AMBIENT, "FRAISEQL_ENV": "prod"}, "FRAISEQL_ENV=prod"),
])
def test_a_database_url_with_an_environment_is_refused(
        tmp_path: Path, env: str | None, environ: dict[str, str], named: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve(None, "postgresql://other@h/db", env=env, cwd=prod_project(tmp_path),
                environ=environ)
    assert caught.value.message == (
        f"--database-url cannot be combined with {named}: the environment names its "
        "database ([tool.fraiseql.environments.prod] in pyproject.toml); drop one of them")


def test_run_options_flag_then_environment_then_fraiseql_lock_then_project(
        tmp_path: Path) -> None:
    root = prod_project(tmp_path)
    environ = {**AMBIENT, "FRAISEQL_LOCK": "lease"}
    plain = resolve(cwd=root, environ=environ)
    assert (plain.run.lock, plain.run.lock_timeout, plain.history_schema) == (
        "lease", "20s", "audit")
    prod = resolve(env="prod", cwd=root, environ=environ)
    # the environment's values win; what it does not set comes from the project
    assert (prod.run.lock, prod.run.lock_timeout, prod.run.lock_retries) == (
        "advisory", "3s", 7)
    assert prod.history_schema == "audit"
    staging = resolve(env="staging", cwd=root, environ=environ)
    assert (staging.history_schema, staging.run.lock) == ("ops", "lease")


def test_a_flag_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.chdir(prod_project(tmp_path))
    monkeypatch.setenv("PROD_PW", "s3cret")
    monkeypatch.delenv("FRAISEQL_LOCK", raising=False)
    settings = run_settings(None, None, RunFlags(lock_timeout="1s", lock="lease"), "prod")
    assert (settings.run.lock_timeout, settings.run.lock) == ("1s", "lease")
    assert settings.environment is not None and settings.environment.name == "prod"


def test_an_unset_variable_is_one_line_naming_it_and_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(env="prod", cwd=prod_project(tmp_path), environ={})
    assert caught.value.message == (
        "url of environment prod ([tool.fraiseql.environments.prod] in pyproject.toml): "
        "environment variable PROD_PW is not set; export it before the run (the file says "
        "${PROD_PW})")


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    root = prod_project(tmp_path)
    with pytest.raises(UsageError, match=r"^Unknown environment 'prd' \(--env\); the known "
                       r"ones are: prod, staging$"):
        resolve(env="prd", cwd=root, environ=AMBIENT)
    with pytest.raises(UsageError, match=r"\(FRAISEQL_ENV\)"):
        resolve(cwd=root, environ={"FRAISEQL_ENV": "prd"})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match=r"none is defined; add \[tool\.fraiseql\."
                       r"environments\.prod\] to pyproject\.toml"):
        resolve(env="prod", cwd=empty, environ={})


@pytest.mark.parametrize(("table", "message"), [
    ('url = "postgresql://a@h/d"\nlock_timout = "3s"',
     "lock_timout in [tool.fraiseql.environments.x] in pyproject.toml is not an environment "
     "setting; use url, targets, history_schema, lock_wait, lock_timeout, statement_timeout, "
     "lock_retries, lock, lease_expiry, backup, confirm, allow_down (docs/environments.md)"),
    ('url = "postgresql://a@h/d"\ntargets = "t.txt"',
     "[tool.fraiseql.environments.x] in pyproject.toml must set url (one database) or "
     "targets (a fleet), and not both"),
    ('lock = "lease"',
     "[tool.fraiseql.environments.x] in pyproject.toml must set url (one database) or "
     "targets (a fleet), and not both"),
    ('url = "postgresql://a@h/d"\nconfirm = "yes"',
     "confirm = 'yes' in [tool.fraiseql.environments.x] in pyproject.toml must be true or "
     "false"),
    ('targets = "t.txt"\nbackup = true',
     "backup = true in [tool.fraiseql.environments.x] in pyproject.toml cannot be combined "
     "with targets: a fleet run takes no backup (back up each database first)"),
    ('url = "postgresql://a@h/d"\nlock_timeout = "soon"',
     "lock_timeout in [tool.fraiseql.environments.x] in pyproject.toml 'soon' is not a "
     "duration; use e.g. 500ms, 10s, 2min (0 turns it off)"),
    ('url = "mysql://a:pw@h/d"',
     "url of environment x ([tool.fraiseql.environments.x] in pyproject.toml): Database URL "
     "'mysql://a:***@h/d' is not a PostgreSQL URL; expected "
     "postgresql://user:password@host:5432/dbname"),
    ('url = "postgresql://a@h/d"\nhistory_schema = "a b"',
     "history_schema = 'a b' in [tool.fraiseql.environments.x] in pyproject.toml is not a "
     "plain identifier; use letters, digits and _ (at most 63)"),
])
def test_a_wrong_environment_table_is_one_line(tmp_path: Path, table: str, message: str
                                               ) -> None:
    root = project(tmp_path, f"[tool.fraiseql.environments.x]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        resolve(env="x", cwd=root, environ={})
    assert caught.value.message == message


def test_a_fleet_environment_names_its_targets_file_under_the_project(tmp_path: Path) -> None:
    root = project(tmp_path, '[tool.fraiseql.environments.fleet]\ntargets = "deploy/t.toml"\n')
    settings = resolve(env="fleet", cwd=root, environ=AMBIENT)
    assert settings.environment is not None
    assert settings.environment.targets == root / "deploy" / "t.toml"
    assert settings.database_url is None  # never DATABASE_URL
    with pytest.raises(ConfigError, match="is a fleet"):
        settings.require_url()


def test_fraiseql_toml_serves_a_project_without_pyproject(tmp_path: Path) -> None:
    root = project(tmp_path, f"""
[migrations]
path = "db"
lock_timeout = "4s"

[lint]
disable = ["FQL008"]

[environments.prod]
url = "{PROD}"
""", "fraiseql.toml")
    settings = resolve(env="prod", cwd=root, environ=AMBIENT)
    assert settings.path == root / "db"
    assert settings.run.lock_timeout == "4s"
    assert settings.lint.disable == ("FQL008",)
    assert settings.lint.source == "[lint] in fraiseql.toml"
    assert settings.environment is not None
    assert settings.environment.where == "[environments.prod] in fraiseql.toml"
    # a pyproject.toml that does not configure us leaves fraiseql.toml in charge
    project(root, '[project]\nname = "app"\n[tool.ruff]\nline-length = 99\n')
    assert resolve(env="prod", cwd=root, environ=AMBIENT).path == root / "db"


def test_fraiseql_toml_refuses_typos_and_a_second_configuration(tmp_path: Path) -> None:
    root = project(tmp_path, '[migration]\npath = "db"\n', "fraiseql.toml")
    with pytest.raises(ConfigError, match=r"^migration in fraiseql.toml is not a setting"):
        resolve(cwd=root, environ={})
    project(root, '[migrations]\npath = "db"\n', "fraiseql.toml")
    project(root, '[tool.fraiseql.migrations]\npath = "other"\n')
    with pytest.raises(ConfigError) as caught:
        resolve(cwd=root, environ={})
    assert caught.value.message == (
        "Both fraiseql.toml and [tool.fraiseql] in pyproject.toml configure fraiseql-alembic "
        "(pyproject.toml sets migrations): keep one of them, so that no setting is silently "
        "ignored")


def test_a_typo_in_the_migrations_table_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path, '[tool.fraiseql.migrations]\nlock_timout = "3s"\n')
    with pytest.raises(ConfigError) as caught:
        resolve(cwd=root, environ={})
    assert caught.value.message == (
        "lock_timout in [tool.fraiseql.migrations] in pyproject.toml is not a setting; use "
        "path, database_url, history_schema, lock_wait, lock_timeout, statement_timeout, "
        "lock_retries, lock, lease_expiry (docs/configuration.md)")
