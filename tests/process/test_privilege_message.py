"""A role without CREATE rights gets one message from `fraiseql migrate up` (in-process:
``run_process.in_process`` gives the run's exit code, stdout and stderr as the installed
command does; the message is the subject)."""

from __future__ import annotations

from conftest import ProcessRunner, Project
from scenarios import PERMISSION_RE, login_role

from fraiseql_alembic.devdb import DevCluster


def test_a_role_without_create_rights_gets_one_message(
    project: Project, pg_cluster: DevCluster, run_process: ProcessRunner
) -> None:
    """Without CREATE on public (alembic_version) and without CREATE on the history
    schema (fraiseql_migrations): the same sentence, naming the schema when it is known."""
    with login_role(project, "create_less", "create-less-pw-9") as (url, admin):
        with admin.cursor() as cursor:
            cursor.execute("CREATE SCHEMA audit")
            cursor.execute("GRANT USAGE ON SCHEMA audit TO create_less")
        project.write("001_a.sql", "SELECT 1;\n")
        seen = []
        for schema in ("public", "audit"):
            if schema == "audit":
                with admin.cursor() as cursor:
                    cursor.execute("GRANT CREATE, USAGE ON SCHEMA public TO create_less")
                (project.root / "pyproject.toml").write_text(
                    '[tool.fraiseql.migrations]\nhistory_schema = "audit"\n', encoding="utf-8")
            result = run_process.in_process("fraiseql", "migrate", "up", url=url)
            assert result.returncode == 1, result.stdout + result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            match = PERMISSION_RE.match(lines[0])
            assert match, lines[0]
            assert match.group(1) == schema
            assert "create-less-pw-9" not in result.stdout + result.stderr
            seen.append(lines[0])
        assert "on schema audit (e.g." in seen[1]
        assert project.query("SELECT to_regclass('audit.fraiseql_migrations')") == [(None,)]
        with admin.cursor() as cursor:
            cursor.execute("DROP SCHEMA audit CASCADE")
