"""TemplateDatabases in-process (what the pytest plugin's fixtures call), copies made in
the foreground and ahead in the background; nothing of a session is left at its close."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraiseql_alembic.devdb import DevCluster
from fraiseql_alembic.engine.templatedb import STRATEGIES, TemplateServer
from fraiseql_alembic.errors import ConfigError, DatabaseError
from fraiseql_alembic.settings import resolve
from fraiseql_alembic.testing import (
    TemplateDatabases,
    dbapi_connection,
    folder_digest,
    template_name,
)
from tests.scenarios import UP_DOWN, fetch_one


def project(root: Path) -> Path:
    (root / "migrations").mkdir(parents=True)
    (root / "migrations" / "001_users.sql").write_text(UP_DOWN.format(t="users"))
    return root


def mine(cluster: DevCluster, prefix: str) -> list[str]:
    return TemplateServer(cluster.url("postgres")).databases(prefix)


@pytest.mark.parametrize("background", [False, True])
def test_copies_are_separate_and_all_dropped_at_close(
        pg_cluster: DevCluster, tmp_path: Path, background: bool) -> None:
    root = project(tmp_path)
    databases = TemplateDatabases(resolve("migrations", cwd=root), pg_cluster.url("postgres"),
                                  "gw9", background=background)
    assert databases.prefix.endswith("_gw9_")
    try:
        first, first_url = databases.clone()
        second, second_url = databases.clone()
        assert first != second and first.startswith(databases.prefix)
        connection = dbapi_connection(first_url)
        with connection, connection.cursor() as cursor:
            cursor.execute("INSERT INTO users VALUES (1)")
        connection.close()
        assert fetch_one(second_url, "SELECT count(*) FROM users") == 0
        assert fetch_one(first_url, "SELECT count(*) FROM users") == 1
        databases.drop(first)
        databases.settle()
        assert first not in mine(pg_cluster, databases.prefix)
        # made ahead in the background: the next copy exists before it is asked for
        assert (len(mine(pg_cluster, databases.prefix)) == 2) is background
    finally:
        databases.close()
    assert mine(pg_cluster, databases.prefix) == []
    template = databases.template()
    assert template.name in mine(pg_cluster, "fraiseql_tpl_")


def test_the_digest_follows_the_files(tmp_path: Path) -> None:
    folder = project(tmp_path) / "migrations"
    before = folder_digest(folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert folder_digest(folder) == before  # bytecode does not count
    assert folder_digest(folder, "audit") != before  # the history schema does
    (folder / "001_users.sql").write_text(UP_DOWN.format(t="people"))
    assert folder_digest(folder) != before


def test_a_failing_build_leaves_no_template(pg_cluster: DevCluster, tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "migrations" / "002_bad.sql").write_text("CREATE TABLE users (id int);\n")
    databases = TemplateDatabases(resolve("migrations", cwd=root), pg_cluster.url("postgres"))
    try:
        with pytest.raises(Exception, match="already exists"):
            databases.template()
    finally:
        databases.close()
    folder = (root / "migrations").resolve()
    assert mine(pg_cluster, template_name(folder, folder_digest(folder))) == []


def test_the_strategy_is_checked_and_errors_are_ours(pg_cluster: DevCluster) -> None:
    server = TemplateServer(pg_cluster.url("postgres"))
    try:
        assert STRATEGIES == ("WAL_LOG", "FILE_COPY")
        with pytest.raises(ValueError, match="strategy must be one of WAL_LOG, FILE_COPY"):
            server.clone("template1", "x", "COPY")
        with pytest.raises(DatabaseError, match=r"Cannot copy template nope on .*: "
                                                r"Database error: .*nope.* does not exist"):
            server.clone("nope", "fraiseql_t_never")
    finally:
        server.close()


def test_a_missing_folder_names_the_settings(tmp_path: Path) -> None:
    databases = TemplateDatabases(resolve("db", cwd=tmp_path), "postgresql://x@127.0.0.1:1/p")
    with pytest.raises(ConfigError, match=r"Migrations folder .*/db does not exist; point "
                                          r"the ini option fraiseql_migrations"):
        databases.template()
    databases.close()  # nothing was made: nothing to do, no server reached


def test_a_template_not_kept_is_the_session_s_own(pg_cluster: DevCluster, tmp_path: Path) -> None:
    root = project(tmp_path)
    settings = resolve("migrations", cwd=root)
    kept = TemplateDatabases(settings, pg_cluster.url("postgres"))
    try:
        shared = kept.template().name
    finally:
        kept.close()
    own = TemplateDatabases(settings, pg_cluster.url("postgres"), keep_template=False)
    try:
        template = own.template()
        assert template.built and template.name == own.prefix + "template"
        _, url = own.clone()
        assert fetch_one(url, "SELECT count(*) FROM users") == 0
    finally:
        own.close()
    assert mine(pg_cluster, own.prefix) == []
    assert mine(pg_cluster, shared) == [shared]  # the kept one of the folder is left alone


def test_two_folders_with_the_same_files_have_a_template_each(
        pg_cluster: DevCluster, tmp_path: Path) -> None:
    names = []
    for side in ("one", "two"):
        databases = TemplateDatabases(resolve("migrations", cwd=project(tmp_path / side)),
                                      pg_cluster.url("postgres"))
        try:
            names.append(databases.template().name)
        finally:
            databases.close()
    assert names[0] != names[1]
    assert mine(pg_cluster, names[0]) == [names[0]] and mine(pg_cluster, names[1]) == [names[1]]
