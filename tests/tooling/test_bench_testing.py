"""bench/testing.py still works: a few migrations, one round, no timing asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fraiseql_alembic.devdb import DevCluster

REPO = Path(__file__).resolve().parents[2]


def test_testing_bench_measures_every_case(pg_cluster: DevCluster, tmp_path: Path) -> None:
    out = tmp_path / "testing-results.md"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "testing.py"), "--migrations", "4",
         "--rounds", "1", "--body-ms", "1", "--quiet",
         "--database-url", pg_cluster.url("postgres"), "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text(encoding="utf-8")
    assert "4 migrations; 1 rounds" in text and "a test body of 1 ms" in text
    for label in ("| copy of the template (CREATE DATABASE ... TEMPLATE, default strategy)",
                  "| copy of the template, STRATEGY FILE_COPY + drop |",
                  "| the fixture's wait: copy made ahead, drop behind (the default) |",
                  "| new database + every migration (api.upgrade) + drop | ",
                  "| template built | ", "| template reused by a later session | ",
                  "| up_down_up (4 migrations up, down, up; schemas compared) | "):
        assert label in text, text
    assert text in result.stdout  # the report is printed too
    leftovers = subprocess.run(
        ["psql", pg_cluster.url("postgres"), "-Atc",
         r"SELECT datname FROM pg_database WHERE datname LIKE 'fraiseql\_t%'"],
        capture_output=True, text=True, check=True).stdout
    assert leftovers == ""  # copies and the template dropped
