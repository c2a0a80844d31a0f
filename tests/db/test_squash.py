"""`fraiseql migrate squash --through N`: one baseline file in place of 001..N, built from
a shadow database, on real PostgreSQL."""

from __future__ import annotations

import functools
import json
import shutil
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import ProcessRunner, Project, Tenants
from scenarios import EXTENSION, REPO, UP_DOWN, execute, git, init_repo

from fraiseql_alembic import api, settings
from fraiseql_alembic.engine.baseline import dump
from fraiseql_alembic.engine.cancel import CancelToken, MigrationInterrupted
from fraiseql_alembic.errors import (
    IrreversibleMigrationError,
    MigrationLayoutError,
    UsageError,
)

#: 001..003 touch most kinds of object, insert seed rows and drop a column (the baseline
#: has no gap where it was); 004 comes after the squash point.
FILES = {
    "001_initial.sql": "-- migrate:up\n" + EXTENSION + """CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('happy', 'sad');
CREATE TABLE tb_user (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE CHECK (email LIKE '%@%'),
    mood app.mood DEFAULT 'happy',
    legacy text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tb_role (id serial PRIMARY KEY, name text NOT NULL UNIQUE,
                      key uuid NOT NULL DEFAULT uuid_generate_v4());
INSERT INTO tb_role (name, key) VALUES
    ('admin', '6f1c1c1e-0000-4000-8000-000000000001'),
    ('it''s', '6f1c1c1e-0000-4000-8000-000000000002');
-- migrate:down
DROP TABLE tb_role; DROP TABLE tb_user; DROP SCHEMA app CASCADE;
""",
    "002_posts.sql": """-- migrate:up
CREATE TABLE tb_post (
    id serial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES tb_user (id) ON DELETE CASCADE,
    body text,
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(body, ''))) STORED
);
CREATE INDEX idx_post_user ON tb_post (user_id) WHERE body IS NOT NULL;
CREATE VIEW v_post AS SELECT p.id, u.email FROM tb_post p JOIN tb_user u ON u.id = p.user_id;
CREATE MATERIALIZED VIEW mv_post_count AS SELECT count(*) AS n FROM tb_post;
COMMENT ON TABLE tb_post IS 'posts, one per row';
ALTER TABLE tb_user DROP COLUMN legacy;
-- migrate:down
DROP MATERIALIZED VIEW mv_post_count; DROP VIEW v_post; DROP TABLE tb_post;
""",
    "003_audit.sql": """-- migrate:up
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- keep the body as written
    NEW.body := trim(NEW.body);
    RETURN NEW;
END
$$;
CREATE TRIGGER trg_post_touch BEFORE INSERT OR UPDATE ON tb_post
    FOR EACH ROW EXECUTE FUNCTION app.touch();
INSERT INTO tb_role (name, key) VALUES ('editor', '6f1c1c1e-0000-4000-8000-000000000003');
CREATE SEQUENCE app.invoice_no START 1000;
SELECT nextval('app.invoice_no');
-- migrate:down
DROP TRIGGER trg_post_touch ON tb_post; DROP FUNCTION app.touch();
""",
    "004_tags.sql": UP_DOWN.format(t="tb_tag"),
}


def write_files(project: Project) -> None:
    for name, text in FILES.items():
        project.write(name, text)


def own(project: Project, url: str | None) -> settings.Settings:
    return settings.resolve(project.migrations, url)


def history(url: str, project: Project) -> list[tuple[Any, ...]]:
    return Project(project.root, url).query(
        "SELECT id, version, action, checksum FROM fraiseql_migrations ORDER BY id")


def versions(url: str, project: Project) -> list[str]:
    return Project(project.root, url).version()


def states(project: Project, url: str) -> dict[str, str]:
    result = Project(project.root, url).cli("status", "--json")
    assert result.exit_code == 0, result.output
    return {row["file"]: row["state"] for row in json.loads(result.output)["migrations"]}


def committed(project: Project) -> None:
    init_repo(project.root)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "migrations")


def listing(project: Project) -> list[str]:
    return sorted(path.name for path in project.migrations.iterdir())


def test_round_trip_and_databases_at_or_past_n_stay_clean(
        project: Project, tenants: Tenants, shadow_url: str,
        run_process: ProcessRunner) -> None:
    write_files(project)
    at_n, past_n = tenants(2)
    api.upgrade(own(project, at_n), steps=3)
    api.upgrade(own(project, past_n))
    expected_schema, expected_all = dump(at_n, schema_only=True), dump(at_n)
    before = {url: (history(url, project), versions(url, project)) for url in (at_n, past_n)}
    committed(project)
    targets = project.root / "all.targets"
    targets.write_text(f"{past_n}\n")

    result = api.squash(own(project, at_n), "3", fleet=api.fleet(targets),
                        shadow_database_url=shadow_url)

    assert listing(project) == ["003_baseline.sql", "004_tags.sql"]
    assert result.squashed == ("001_initial.sql", "002_posts.sql", "003_audit.sql")
    assert [path.name for path in result.removed] == list(result.squashed)
    assert result.verified and len(result.targets) == 2
    text = (project.migrations / "003_baseline.sql").read_text()
    assert text.startswith("-- Migration 003: Baseline of 001..003\n")
    assert "\n-- squashed: 002 002_posts.sql checksum=" in text
    assert "\n-- migrate:up\n" in text and "-- migrate:down" not in text
    for noise in ("Owner:", "Dumped from", "\\restrict", "set_config('search_path'"):
        assert noise not in text

    # a fresh database from the baseline: the same pg_dump --schema-only, the same rows
    fresh = project.database_url
    api.upgrade(own(project, fresh), steps=1)
    assert dump(fresh, schema_only=True) == expected_schema
    assert dump(fresh) == expected_all
    assert states(project, fresh) == {"003_baseline.sql": "applied", "004_tags.sql": "pending"}

    # databases at N and past N: untouched, and clean
    for url in (at_n, past_n):
        assert (history(url, project), versions(url, project)) == before[url]
        report = api.status(own(project, url))
        assert not report.inconsistent, report
        assert Project(project.root, url).cli("check").exit_code == 0
    assert states(project, at_n) == {
        "001_initial.sql": "squashed", "002_posts.sql": "squashed",
        "003_baseline.sql": "applied", "004_tags.sql": "pending"}
    shown = Project(project.root, past_n).cli("status").output
    assert "✓ 001_initial.sql (applied " in shown
    assert "; squashed into 003_baseline.sql)" in shown
    assert api.upgrade(own(project, past_n)).applied == ()
    assert api.upgrade(own(project, at_n)).applied == ("004",)
    drift = api.drift(own(project, past_n), shadow_database_url=shadow_url)
    assert drift.identical, drift.differences

    # rolling back below the baseline is refused with one clear line
    api.downgrade(own(project, past_n), steps=1)
    with pytest.raises(IrreversibleMigrationError, match="is a baseline"):
        api.downgrade(own(project, past_n), steps=1)

    # `check --base` on the squash commit: the deletions and the baseline are expected
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "squash")
    base = api.check(own(project, None), base="HEAD~1")
    assert base.problems == (), base.problems

    # plain Alembic on the squashed folder, on a fresh database (in-process: what Alembic
    # makes of the folder is the subject; tests/process/test_alembic_cli types alembic)
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    other = tenants(1)[0]
    alembic = functools.partial(run_process.in_process, "alembic", url=other, check=True)
    alembic("upgrade", "head")
    assert versions(other, project) == ["004"]
    api.upgrade(own(project, past_n))
    assert dump(other, schema_only=True) == dump(past_n, schema_only=True)
    assert alembic("current").stdout == "004 (head)\n"
    assert alembic("history").stdout.splitlines() == [
        "003 -> 004 (head), Tags",
        "<base> -> 003, Baseline of 001..003"]


def test_refused_when_a_target_is_behind(project: Project, tenants: Tenants) -> None:
    write_files(project)
    at_n, behind, tenant_db = tenants(3)
    api.upgrade(own(project, at_n), steps=3)
    api.upgrade(own(project, behind), steps=2)
    committed(project)
    single = project.cli("squash", "--through", "3")  # project.database_url: nothing applied
    assert single.exit_code == 1
    assert "1 target of 1 not ready" in single.output
    assert "] behind: at nothing applied; 001_initial.sql is not applied" in single.output

    targets = _plain(project, at_n, behind)
    result = Project(project.root, at_n).cli("squash", "--through", "003",
                                              "--targets", str(targets))
    assert result.exit_code == 1, result.output
    name = api.fleet(targets).targets[1].name
    assert ("Error: Refusing to squash through 003: 1 target of 3 not ready (each must "
            "have applied it, unchanged); nothing was written") in result.output
    assert f"  [{name}] behind: at 002_posts.sql; 003_audit.sql is not applied" in result.output
    assert listing(project) == sorted(FILES)

    # a fleet environment's targets are the databases squash checks (--env, as up's)
    (project.root / "pyproject.toml").write_text(
        f'[tool.fraiseql.environments.prod]\ntargets = "{targets}"\n')
    by_env = project.cli("squash", "--through", "3", "--env", "prod")
    assert by_env.exit_code == 1, by_env.output
    assert by_env.output.startswith(f"Environment prod: the targets in {targets}\n")
    assert "1 target of 2 not ready" in by_env.output
    assert f"  [{name}] behind: at 002_posts.sql; 003_audit.sql is not applied" in by_env.output
    (project.root / "pyproject.toml").unlink()

    # schema-per-tenant targets are checked too; one behind is named
    api.upgrade(own(project, behind))
    toml = project.root / "tenants.toml"
    toml.write_text(f'[targets.acme]\nurl = "{tenant_db}"\nschema = "tenant_acme"\n')
    Project(project.root, tenant_db).query("CREATE SCHEMA tenant_acme")
    by_schema = api.target_settings(own(project, None), api.fleet(toml).targets[0])
    api.upgrade(by_schema, steps=2)
    refused = Project(project.root, at_n).cli("squash", "--through", "3", "--targets", str(toml))
    assert refused.exit_code == 1
    assert "  [acme] behind: at 002_posts.sql; 003_audit.sql is not applied" in refused.output
    api.upgrade(by_schema)
    whole = Project(project.root, at_n).cli("squash", "--through", "3", "--targets", str(toml))
    assert whole.exit_code == 1 and "target acme is a schema of a shared database" in whole.output
    assert listing(project) == sorted(FILES)


def _plain(project: Project, *urls: str) -> Path:
    """A plain-text targets file of ``urls``."""
    path = project.root / f"{len(urls)}.targets"
    path.write_text("".join(f"{url}\n" for url in urls))
    return path


def test_other_refusals_and_dry_run(project: Project, shadow_url: str) -> None:
    write_files(project)
    api.upgrade(own(project, project.database_url), steps=3)
    unknown = project.cli("squash", "--through", "9")
    assert unknown.exit_code == 2 and "--through 9: no migration '9'" in unknown.output
    first = project.cli("squash", "--through", "1")
    assert first.exit_code == 1 and "Nothing to squash" in first.output

    # not in git yet: squash would lose them
    init_repo(project.root)
    uncommitted = project.cli("squash", "--through", "3")
    assert uncommitted.exit_code == 1
    assert "001_initial.sql is not in git (untracked); squash removes it" in uncommitted.output
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "migrations")

    dry = project.cli("squash", "--through", "3", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert ("Dry run: would write migrations/003_baseline.sql in place of 001_initial.sql .. "
            "003_audit.sql (3 migrations), and remove 001_initial.sql, 002_posts.sql, "
            "003_audit.sql; 1 database checked, each at 003 or past it. Nothing was built or "
            "written") in dry.output
    assert listing(project) == sorted(FILES)

    # an applied file changed since: refused, named
    path = project.migrations / "002_posts.sql"
    path.write_text(path.read_text().replace("one per row", "one a row"))
    git(project.root, "commit", "-q", "-am", "edit")
    modified = project.cli("squash", "--through", "3")
    assert modified.exit_code == 1
    assert "modified: 002_posts.sql changed after it was applied here" in modified.output

    project.write("002_posts.sql", FILES["002_posts.sql"])
    git(project.root, "commit", "-q", "-am", "restore")
    with pytest.raises(UsageError, match="needs the databases"):
        api.squash(own(project, None), "3")

    # a file above N that follows one below N would lose its parent
    project.write("005_late.sql", "-- revises: 002\n" + UP_DOWN.format(t="late"))
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "late")
    with pytest.raises(api.SquashRefused, match=r"005_late\.sql follows 002_posts\.sql"):
        api.squash(own(project, project.database_url), "3", shadow_database_url=shadow_url)


def test_a_database_below_n_is_told_how_to_go_on(project: Project, tenants: Tenants,
                                                 shadow_url: str) -> None:
    write_files(project)
    at_n, missed = tenants(2)
    api.upgrade(own(project, at_n), steps=3)
    api.upgrade(own(project, missed), steps=2)  # nobody listed it
    api.squash(own(project, at_n), "3", shadow_database_url=shadow_url)
    status = Project(project.root, missed).cli("status")
    assert ("✗ 002_posts.sql (applied " in status.output
            and "SQUASHED into 003_baseline.sql, which this database has not reached)"
            in status.output), status.output
    up = Project(project.root, missed).cli("up")
    assert up.exit_code == 1
    assert "Check out the commit before the squash, run `fraiseql migrate up` there" in up.output
    with pytest.raises(MigrationLayoutError, match=r"002_posts\.sql is below baseline"):
        api.drift(own(project, missed), shadow_database_url=shadow_url)
    marked = Project(project.root, at_n).cli("mark-applied", "001")
    assert marked.exit_code == 1
    assert ("001_initial.sql is already applied on " in marked.output
            and "; 003_baseline.sql replaced it; nothing to mark" in marked.output), marked.output


def test_squashing_again_keeps_the_first_baselines_list(project: Project,
                                                        shadow_url: str) -> None:
    write_files(project)
    url = project.database_url
    api.upgrade(own(project, url))
    api.squash(own(project, url), "2", shadow_database_url=shadow_url)
    api.squash(own(project, url), "4", shadow_database_url=shadow_url)
    assert listing(project) == ["004_baseline.sql"]
    text = (project.migrations / "004_baseline.sql").read_text()
    lines = [line.split(" checksum=")[0] for line in text.splitlines()
             if line.startswith("-- squashed:")]
    assert lines == ["-- squashed: 001 001_initial.sql", "-- squashed: 002 002_posts.sql",
                     "-- squashed: 002 002_baseline.sql", "-- squashed: 003 003_audit.sql",
                     "-- squashed: 004 004_tags.sql"]
    assert not api.status(own(project, url)).inconsistent
    assert states(project, url) == {"001_initial.sql": "squashed", "002_posts.sql": "squashed",
                                    "003_audit.sql": "squashed", "004_baseline.sql": "applied"}


def test_a_cancel_terminates_the_dump_of_the_shadow_database(database_url: str) -> None:
    """pg_dump waits for a locked table; a cancel (Ctrl-C, SIGTERM during squash) stops it
    and says so, not "pg_dump could not dump"."""
    execute(database_url, "CREATE TABLE a (id int)")
    token = CancelToken()
    token.cancel("SIGINT")
    with closing(psycopg2.connect(database_url)) as blocker:
        blocker.cursor().execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(MigrationInterrupted, match=r"^Stopped by SIGINT while pg_dump "
                           "dumped the shadow database; nothing was written$"):
            dump(database_url, cancel=token)
