"""`fraiseql migrate up --backup` never puts a secret on pg_dump's command line (the run
is in-process, ``run_process.in_process``; pg_dump is the real program it starts)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg2
from conftest import ProcessRunner, Project
from scenarios import UP_DOWN

from fraiseql_alembic.engine.backup import (
    split_password,
)


def test_no_secret_is_on_pg_dumps_command_line(project: Project, run_process: ProcessRunner) -> None:
    """`up --backup` with a password and an sslpassword (a client key's passphrase) in the
    URL: the real pg_dump, watched in /proc while it waits for a locked table, has neither
    on its command line (which `ps` shows every user). The password is in its environment,
    the sslpassword in a service file only this user can read, removed afterwards."""
    import threading
    import time

    project.write("001_a.sql", UP_DOWN.format(t="a"))
    assert project.cli("up").exit_code == 0
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    key_passphrase = f"KeyPass{uuid.uuid4().hex[:10]}"
    url = f"{project.database_url}?sslmode=disable&sslpassword={key_passphrase}"
    password = split_password(project.database_url).password
    assert password
    blocker = psycopg2.connect(project.database_url)
    blocker.cursor().execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")  # pg_dump waits on it
    seen: dict[str, object] = {}

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "argv" not in seen:
            for proc in Path("/proc").iterdir():
                try:
                    argv = (proc / "cmdline").read_bytes().split(b"\0")
                    if not argv[0].endswith(b"pg_dump") or b"--dbname" not in argv:
                        continue
                    if Path(os.readlink(proc / "cwd")) != project.root:
                        continue  # another test's (parallel workers)
                    environ = dict(item.split(b"=", 1) for item in
                                   (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
                except OSError:
                    continue
                service = environ.get(b"PGSERVICEFILE", b"").decode()
                seen["argv"] = b" ".join(argv).decode()
                seen["pgpassword"] = environ.get(b"PGPASSWORD", b"").decode()
                seen["service_file"] = service
                seen["service_mode"] = os.stat(service).st_mode & 0o777 if service else None
                seen["service_text"] = Path(service).read_text() if service else ""
                break
            time.sleep(0.02)
        blocker.close()  # let pg_dump go on

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = run_process.in_process("fraiseql", "migrate", "up", "--backup", "b.dump",
                                    "--lock-timeout", "0", url=url)
    watcher.join()
    assert result.returncode == 0, result.stderr
    assert "argv" in seen, "pg_dump was not seen running"
    argv = str(seen["argv"])
    assert key_passphrase not in argv and password not in argv, argv
    assert "service=fraiseql_backup" in argv and "sslmode=disable" in argv
    assert seen["pgpassword"] == password
    assert seen["service_mode"] == 0o600
    assert seen["service_text"] == f"[fraiseql_backup]\nsslpassword={key_passphrase}\n"
    assert not Path(str(seen["service_file"])).exists()  # removed once pg_dump ended
    assert key_passphrase not in result.stdout + result.stderr
    assert password not in result.stdout + result.stderr
    assert (project.root / "b.dump").stat().st_size > 0
    assert project.version() == ["002"]
