"""`COPY ... TO STDOUT` writes rows to psql's output, which a migration has none of: it is
refused before anything runs, naming its file and line, on both paths, however it is
spelled (a comment may stand between TO and STDOUT)."""

from __future__ import annotations

import pytest
from conftest import Project
from scenarios import on_path


@pytest.mark.parametrize("path", ["direct", "alembic"])
@pytest.mark.parametrize("copy", ["COPY t TO STDOUT;", "COPY t TO /* psql shows it */ STDOUT;",
                                  "COPY (SELECT 1) TO\n-- the rows\nstdout;"])
def test_copy_to_stdout_is_refused_before_anything_runs(
    project: Project, path: str, copy: str,
) -> None:
    on_path(project, path, "001_t.sql", "CREATE TABLE t (id int);\n")
    project.write("002_copy.sql", f"INSERT INTO t VALUES (1);\n{copy}\nCREATE TABLE u (id int);\n")
    result = project.cli("up")
    assert result.exit_code != 0, result.output
    assert "002_copy.sql:2" in result.output and "COPY ... TO STDOUT" in result.output, \
        result.output
    assert "t" not in project.tables() and project.version() == []
