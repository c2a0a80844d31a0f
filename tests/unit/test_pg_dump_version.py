"""`pg_dump --version` runs once a process for the same pg_dump (a squash or a fleet dumps
many times), and again when the file changes: a newer or older pg_dump is never judged
by an answer kept from another."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraiseql_alembic.engine.backup import BackupError, check_versions


def fake_pg_dump(path: Path, version: str, calls: Path) -> None:
    path.write_text(f"#!/bin/sh\necho run >> '{calls}'\necho 'pg_dump (PostgreSQL) {version}'\n")
    path.chmod(0o755)


def test_the_version_is_asked_once_and_again_when_the_file_changes(tmp_path: Path) -> None:
    pg_dump, calls = tmp_path / "pg_dump", tmp_path / "calls"
    fake_pg_dump(pg_dump, "15.4", calls)
    for _ in range(3):
        check_versions(str(pg_dump), 150004)
    assert calls.read_text().count("run") == 1
    fake_pg_dump(pg_dump, "14.9 (another build)", calls)  # the same path, a new file
    with pytest.raises(BackupError, match="is PostgreSQL 14, older than the server"):
        check_versions(str(pg_dump), 150004)
    assert calls.read_text().count("run") == 2
