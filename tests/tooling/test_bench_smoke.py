"""The benchmark harness (bench/run.py) still works: 20 migrations, one run, no timing asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scenarios import REPO, bench_module

# Every case the issue asks for (bench/README.md says what each one runs).
CASES = {
    "python_pass",
    "fraiseql_version",
    "fraiseql_help",
    "psql_floor",
    "alembic_py_upgrade",
    "alembic_py_heads",
    "alembic_py_current",
    "fraiseql_up_empty",
    "fraiseql_up_noop",
    "fraiseql_status",
    "fraiseql_down_all",
    "fraiseql_up_dry_run",
    "alembic_sql_heads",
    "alembic_sql_current",
    "alembic_sql_upgrade",
}


def test_bench_harness_measures_every_case(database_url: str, tmp_path: Path) -> None:
    markdown, report = tmp_path / "results.md", tmp_path / "results.json"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    result = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "run.py"),
            "--sizes", "20", "--runs", "1", "--no-warmup", "--settle", "0", "--quiet",
            "--timeout", "300",
            "--database-url", database_url,
            "--out", str(markdown), "--json", str(report), "--workdir", str(tmp_path / "work"),
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    data = json.loads(report.read_text(encoding="utf-8"))
    rows = {row["case"]: row for row in data["cases"] if row["n"] == 20}
    assert set(rows) == CASES
    for name, row in rows.items():
        problems = [run for run in row["runs"] if run["status"] != "ok"]
        assert not problems, f"{name}: {problems}"
        assert isinstance(row["median_s"], float) and row["median_s"] > 0, name
        assert isinstance(row["peak_mb"], float) and row["peak_mb"] > 0, name
    assert {target["result"] for target in data["targets"]} <= {"PASS", "FAIL", "N/A"}

    text = markdown.read_text(encoding="utf-8")
    assert "## Targets" in text
    for name in CASES:
        assert f"| {name} | 20 |" in text
    assert "fraiseql_status" in result.stdout  # the table is printed too


def test_cluster_goes_to_a_tmpfs_only_when_one_has_room(tmp_path: Path) -> None:
    bench = bench_module("run")
    cluster_parent = bench.cluster_parent  # type: ignore[attr-defined]
    assert cluster_parent("disk")[0] is None
    assert cluster_parent(str(tmp_path)) == (tmp_path, f"{tmp_path} (--cluster-dir)")

    bench.TMPFS_CANDIDATES = (tmp_path,)  # type: ignore[attr-defined]  # not a mount point
    parent, where = cluster_parent("auto")
    assert parent is None and where.startswith("disk")

    mounts = Path("/proc/mounts").read_text(encoding="utf-8")
    shm_is_tmpfs = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in mounts.splitlines())
    bench.TMPFS_CANDIDATES = (Path("/dev/shm"),)  # type: ignore[attr-defined]
    bench.TMPFS_MIN_FREE = 0  # type: ignore[attr-defined]
    expected = Path("/dev/shm") if shm_is_tmpfs and os.access("/dev/shm", os.W_OK) else None
    assert cluster_parent("auto")[0] == expected
