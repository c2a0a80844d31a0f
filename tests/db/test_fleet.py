"""``--targets``: up and status on a fleet of real databases (and a control database's
query), the failure policy, waves, shards; every output masks the password."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg2
import pytest
from conftest import Cli, Tenants
from scenarios import UP_DOWN, execute, fetch_one

from fraiseql_alembic.devdb import DevCluster
from fraiseql_alembic.engine.locking import lock_key


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two migrations: tables a and b."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_a.sql").write_text(UP_DOWN.format(t="a"), encoding="utf-8")
    (migrations / "002_b.sql").write_text(UP_DOWN.format(t="b"), encoding="utf-8")
    return migrations


def applied(url: str) -> object:
    """The database's alembic_version, or "none"."""
    if not fetch_one(url, "SELECT to_regclass('alembic_version') IS NOT NULL"):
        return "none"
    return fetch_one(url, "SELECT coalesce(string_agg(version_num, ','), 'none') "
                          "FROM alembic_version")


def password(pg_cluster: DevCluster) -> str:
    assert len(pg_cluster.password) >= 6
    return pg_cluster.password


def totals(output: str) -> str:
    """The line of totals after the table."""
    (line,) = [line for line in output.splitlines() if re.match(r"\d+ targets?: ", line)]
    return line


def write_plain(tmp_path: Path, urls: list[str]) -> Path:
    path = tmp_path / "targets.txt"
    path.write_text("# the fleet\n\n" + "\n".join(urls) + "\n", encoding="utf-8")
    return path


def test_up_migrates_every_target_and_status_shows_them(
    cli: Cli, folder: Path, tenants: Tenants, pg_cluster: DevCluster, tmp_path: Path,
) -> None:
    urls = tenants(12)
    targets = write_plain(tmp_path, urls)
    result = cli("migrate", "status", "--targets", str(targets), "--exit-code")
    assert result.exit_code == 3, result.output
    result = cli("migrate", "up", "--targets", str(targets), "--jobs", "4")
    assert result.exit_code == 0, result.output
    assert password(pg_cluster) not in result.output
    assert [applied(url) for url in urls] == ["002"] * 12
    lines = result.output.splitlines()
    first = urls[0].replace(pg_cluster.password, "***")
    assert f"[{first}] ✓ Running migration: 001_a.sql" in lines
    assert f"[{first}] ✓ Applied 2 migrations" in [line.split(" (")[0] for line in lines]
    assert totals(result.output) == "12 targets: 12 succeeded"
    # again: nothing to do, every target says so
    result = cli("migrate", "up", "--targets", str(targets))
    assert result.exit_code == 0 and result.output.count("Already up to date") == 12
    result = cli("migrate", "status", "--targets", str(targets), "--exit-code")
    assert result.exit_code == 0, result.output
    assert password(pg_cluster) not in result.output
    assert result.output.splitlines()[-1] == ("12 targets: 12 up to date, 0 behind, "
                                              "0 inconsistent, 0 could not be read")
    row = next(line for line in result.output.splitlines() if first in line)
    # a plain-text file names each target by its masked URL: no second column repeats it
    assert re.split(r"\s{2,}", result.output.splitlines()[0].strip()) == [
        "target", "schema", "current", "pending", "problems"]
    assert re.split(r"\s{2,}", row) == [f"✓ {first}", "-", "002_b.sql", "0", "0"]
    report = json.loads(cli("migrate", "status", "--targets", str(targets), "--json").output)
    assert report["totals"]["up_to_date"] == 12
    assert {row["current"] for row in report["targets"]} == {"002_b.sql"}


def test_the_first_failure_stops_new_targets_and_the_policy_can_go_on(
    cli: Cli, folder: Path, tenants: Tenants, pg_cluster: DevCluster, tmp_path: Path,
) -> None:
    urls = tenants(5)
    execute(urls[1], "CREATE TABLE b (x int)")  # 002 fails on the second target
    targets = write_plain(tmp_path, urls)
    result = cli("migrate", "up", "--targets", str(targets), "--jobs", "1")
    assert result.exit_code == 1, result.output
    assert password(pg_cluster) not in result.output
    assert [applied(url) for url in urls] == ["002", "001", "none", "none", "none"]
    assert totals(result.output) == (
        "5 targets: 1 succeeded, 1 failed, 3 not started (stopped starting targets after "
        "1 failure (--continue-on-error or --max-failures to go on))")
    assert 'relation "b" already exists' in result.output
    result = cli("migrate", "up", "--targets", str(targets), "--jobs", "2",
                 "--max-failures", "2", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["counts"] == {"succeeded": 4, "failed": 1, "interrupted": 0,
                                 "not started": 0}
    failed = [row for row in summary["targets"] if row["state"] == "failed"]
    assert [row["url"] for row in failed] == [urls[1].replace(pg_cluster.password, "***")]
    assert "Migration 002_b.sql failed" in failed[0]["error"]
    assert password(pg_cluster) not in result.output
    events = [json.loads(line) for line in result.output.splitlines()[:-1]]
    assert {event["target"] for event in events} == {row["target"] for row in
                                                     summary["targets"]}
    execute(urls[1], "DROP TABLE b")
    assert cli("migrate", "up", "--targets", str(targets), "--continue-on-error"
               ).exit_code == 0
    assert [applied(url) for url in urls] == ["002"] * 5


def test_waves_run_in_order_and_a_failed_wave_stops_the_next(
    cli: Cli, folder: Path, tenants: Tenants, tmp_path: Path,
) -> None:
    canary, early, rest = tenants(1), tenants(2), tenants(3)
    execute(canary[0], "CREATE TABLE a (x int)")  # the canary fails
    lines = ['waves = ["canary", "early"]']
    for wave, urls in (("canary", canary), ("early", early), (None, rest)):
        for url in urls:
            name = url.rsplit("/", 1)[1]
            lines += [f"[targets.{name}]", f'url = "{url}"'] + (
                [f'wave = "{wave}"'] if wave else [])
    targets = tmp_path / "fleet.toml"
    targets.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("migrate", "up", "--targets", str(targets), "--continue-on-error")
    assert result.exit_code == 1
    assert "wave canary did not succeed, so the waves after it did not start" in result.output
    assert [applied(url) for url in canary + early + rest] == ["none"] * 6
    result = cli("migrate", "up", "--targets", str(targets), "--wave", "early")
    assert result.exit_code == 0, result.output
    assert [applied(url) for url in canary + early + rest] == ["none", "002", "002"] + [
        "none"] * 3
    result = cli("migrate", "up", "--targets", str(targets), "--wave", "nope")
    assert result.exit_code == 2
    assert "--wave nope: fleet.toml has no wave of that name (waves: canary, early)" in \
        result.output.replace(str(tmp_path) + "/", "")


def test_two_shards_cover_every_target_once(
    cli: Cli, folder: Path, tenants: Tenants, tmp_path: Path,
) -> None:
    urls = tenants(10)
    targets = write_plain(tmp_path, urls)
    names: list[list[str]] = []
    for index in (0, 1):
        env = {"JOB_COMPLETION_INDEX": str(index), "FRAISEQL_SHARDS": "2"}
        result = cli("migrate", "up", "--targets", str(targets), "--json", env=env)
        assert result.exit_code == 0, result.output
        names.append([row["target"] for row in json.loads(
            result.output.splitlines()[-1])["targets"]])
    everyone = json.loads(cli("migrate", "status", "--targets", str(targets), "--json").output)
    assert names[0] and names[1]
    assert sorted(names[0] + names[1]) == sorted(row["target"] for row in everyone["targets"])
    assert [applied(url) for url in urls] == ["002"] * 10
    same = cli("migrate", "status", "--targets", str(targets), "--shard", "1/2", "--json")
    assert [row["target"] for row in json.loads(same.output)["targets"]] == names[1]
    result = cli("migrate", "up", "--targets", str(targets),
                 env={"JOB_COMPLETION_INDEX": "0"})
    assert result.exit_code == 2
    assert "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job?) but the number of " \
        "shards is not" in result.output


def test_targets_from_a_query_on_a_control_database(
    cli: Cli, folder: Path, tenants: Tenants, pg_cluster: DevCluster, tmp_path: Path,
) -> None:
    (control,) = tenants(1)
    urls = tenants(3)
    secret = pg_cluster.password
    execute(control, "CREATE TABLE tenants (name text, url text, active bool)")
    for number, url in enumerate(urls):
        stored = url.replace(secret, "${TENANT_PASSWORD}")  # no password in the table
        execute(control, f"INSERT INTO tenants VALUES ('t{number}', '{stored}', "
                         f"{number != 2})")
    targets = tmp_path / "fleet.toml"
    targets.write_text('[[query]]\nurl = "${CONTROL_URL}"\n'
                       'sql = "SELECT name, url FROM tenants WHERE active ORDER BY name"\n',
                       encoding="utf-8")
    env = {"CONTROL_URL": control, "TENANT_PASSWORD": secret}
    result = cli("migrate", "up", "--targets", str(targets), env=env)
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    assert "[t0] ✓ Running migration: 001_a.sql" in result.output
    assert [applied(url) for url in urls] == ["002", "002", "none"]
    targets.write_text('[[query]]\nurl = "${CONTROL_URL}"\nsql = "SELECT name FROM tenants"\n',
                       encoding="utf-8")
    result = cli("migrate", "status", "--targets", str(targets), env=env)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {targets.relative_to(tmp_path)}:1: the targets "
                                    "query returns no url column (it returns name)")
    assert secret not in result.output


def test_an_unreachable_target_fails_alone(
    cli: Cli, folder: Path, tenants: Tenants, pg_cluster: DevCluster, tmp_path: Path,
) -> None:
    urls = tenants(2)
    gone = urls[0].rsplit("/", 1)[0] + "/no_such_database"
    targets = write_plain(tmp_path, [urls[0], gone, urls[1]])
    result = cli("migrate", "status", "--targets", str(targets))
    assert result.exit_code == 1
    assert 'could not be read: Cannot connect to' in result.output
    assert 'database "no_such_database" does not exist' in result.output
    assert password(pg_cluster) not in result.output
    result = cli("migrate", "up", "--targets", str(targets), "--continue-on-error")
    assert result.exit_code == 1
    assert [applied(url) for url in urls] == ["002", "002"]
    assert password(pg_cluster) not in result.output


def test_fleet_options_are_checked(cli: Cli, folder: Path, tmp_path: Path) -> None:
    targets = write_plain(tmp_path, ["postgresql://app@127.0.0.1:1/x"])
    for args, message in (
        (["--jobs", "2"], "--jobs needs --targets FILE"),
        (["--targets", str(targets), "--dry-run"], "--dry-run cannot be combined with "
         "--targets"),
        (["--targets", str(targets), "--database-url", "postgresql://h/x"],
         "--database-url cannot be combined with --targets"),
        (["--targets", str(targets), "--continue-on-error", "--max-failures", "2"],
         "--continue-on-error and --max-failures cannot be combined"),
        (["--targets", str(targets), "--shard", "2/2"], "--shard '2/2' is not a shard"),
    ):
        result = cli("migrate", "up", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_down_mark_applied_and_repair_on_every_target(
    cli: Cli, folder: Path, tenants: Tenants, pg_cluster: DevCluster, tmp_path: Path,
) -> None:
    urls = tenants(3)
    targets = write_plain(tmp_path, urls)
    assert cli("migrate", "up", "--targets", str(targets)).exit_code == 0
    refused = cli("migrate", "down", "--targets", str(targets))
    assert refused.exit_code == 1
    assert ("Error: Refusing to roll back the most recent migration on 3 targets without "
            "confirmation: there is no terminal to ask on") in refused.output
    assert [applied(url) for url in urls] == ["002"] * 3
    result = cli("migrate", "down", "--targets", str(targets), "--force", "--jobs", "3")
    assert result.exit_code == 0, result.output
    assert result.output.count("✓ Rolled back 1 migration") == 3
    assert [applied(url) for url in urls] == ["001"] * 3
    result = cli("migrate", "mark-applied", "002", "--targets", str(targets),
                 "--reason", "made by hand")
    assert result.exit_code == 0, result.output
    assert result.output.count("✓ Marked 002_b.sql as applied without running it") == 3
    assert [applied(url) for url in urls] == ["002"] * 3
    assert [fetch_one(url, "SELECT to_regclass('b') IS NULL") for url in urls] == [True] * 3
    (folder / "001_a.sql").write_text(  # the up section changed after it ran
        UP_DOWN.format(t="a").replace("(id int);", "(id int);  -- edited", 1), encoding="utf-8")
    assert cli("migrate", "status", "--targets", str(targets), "--exit-code").exit_code == 4
    result = cli("migrate", "repair", "--targets", str(targets), "--reason", "comment")
    assert result.exit_code == 0, result.output
    assert result.output.count("✓ Repaired 001_a.sql") == 3
    assert totals(result.output) == "3 targets: 3 succeeded"
    assert password(pg_cluster) not in result.output
    assert cli("migrate", "status", "--targets", str(targets), "--exit-code").exit_code == 0


def test_schema_per_tenant_keeps_everything_in_its_schema(
    cli: Cli, folder: Path, tenants: Tenants, pg_cluster: DevCluster, tmp_path: Path,
) -> None:
    (url,) = tenants(1)
    # the database's own project, in public: no tenant may read or move its alembic_version
    execute(url, "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); "
                 "INSERT INTO alembic_version VALUES ('999')")
    schemas = [f"tenant_{number}" for number in range(16)] + ["Mixed_Case"]
    targets = tmp_path / "fleet.toml"
    targets.write_text("".join(f'[targets.{schema.lower()}]\nurl = "{url}"\n'
                               f'schema = "{schema}"\n' for schema in schemas),
                       encoding="utf-8")
    result = cli("migrate", "up", "--targets", str(targets), "--jobs", "4")
    assert result.exit_code == 0, result.output
    assert password(pg_cluster) not in result.output
    for schema in schemas:
        assert fetch_one(url, f'SELECT string_agg(version_num, \',\') FROM "{schema}".'
                              "alembic_version") == "002"
        assert fetch_one(url, f"SELECT count(*) FROM \"{schema}\".fraiseql_migrations "
                              "WHERE action = 'applied'") == 2
        assert fetch_one(url, f"SELECT to_regclass('\"{schema}\".b') IS NOT NULL") is True
    assert fetch_one(url, "SELECT version_num FROM public.alembic_version") == "999"
    assert fetch_one(url, "SELECT to_regclass('public.a') IS NULL") is True
    report = json.loads(cli("migrate", "status", "--targets", str(targets), "--json").output)
    assert report["totals"]["up_to_date"] == 17
    assert {row["schema"] for row in report["targets"]} == set(schemas)

    # one lock per (database, schema): another deploy holding tenant_0's stops only it
    (folder / "003_c.sql").write_text(UP_DOWN.format(t="c"), encoding="utf-8")
    holder = psycopg2.connect(url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (lock_key("tenant_0"),))
        result = cli("migrate", "up", "--targets", str(targets), "--lock-wait", "0",
                     "--continue-on-error")
    finally:
        holder.close()
    assert result.exit_code == 1
    assert totals(result.output) == "17 targets: 16 succeeded, 1 failed"
    assert "[tenant_0] ✗ Failed: Gave up after waiting 0s for the migration lock" in \
        result.output
    # read on one session per job, its search_path moved from schema to schema
    report = json.loads(cli("migrate", "status", "--targets", str(targets), "--json",
                            "--jobs", "2").output)
    behind = {row["target"]: (row["current"], row["pending"]) for row in report["targets"]
              if row["pending"]}
    assert behind == {"tenant_0": ("002_b.sql", 1)}
    assert report["totals"]["up_to_date"] == 16
    assert cli("migrate", "up", "--targets", str(targets)).exit_code == 0
    result = cli("migrate", "down", "--targets", str(targets), "--force", "--wave", "x")
    assert result.exit_code == 2  # no waves in this file
    result = cli("migrate", "down", "--targets", str(targets), "--force")
    assert result.exit_code == 0, result.output
    assert fetch_one(url, 'SELECT version_num FROM "Mixed_Case".alembic_version') == "002"

    # a tenant not migrated yet: status says so; up creates its schema
    with targets.open("a", encoding="utf-8") as file:
        file.write(f'[targets.newcomer]\nurl = "{url}"\nschema = "newcomer"\n')
    result = cli("migrate", "status", "--targets", str(targets))
    assert result.exit_code == 1
    assert ("could not be read: schema newcomer does not exist: nothing was migrated there "
            "yet; `fraiseql migrate up --targets` creates it") in result.output
    assert cli("migrate", "up", "--targets", str(targets), "--wave", "x").exit_code == 2
    assert cli("migrate", "up", "--targets", str(targets)).exit_code == 0
    assert fetch_one(url, "SELECT version_num FROM newcomer.alembic_version") == "003"
    assert fetch_one(url, "SELECT version_num FROM public.alembic_version") == "999"
    # a pooler in transaction mode would not keep the search_path: refused up front
    result = cli("migrate", "up", "--targets", str(targets), "--lock", "lease")
    assert result.exit_code == 2
    assert "targets with a schema cannot use --lock lease" in result.output


def test_schema_targets_on_the_alembic_path(
    cli: Cli, folder: Path, tenants: Tenants, tmp_path: Path,
) -> None:
    """A folder with a .py revision runs through Alembic, one target at a time."""
    (folder / "000_py.py").write_text('revision = "000"\ndown_revision = None\n'
                                      "def upgrade():\n    pass\n\n"
                                      "def downgrade():\n    pass\n", encoding="utf-8")
    (folder / "001_a.sql").write_text("-- revises: 000\n" + UP_DOWN.format(t="a"),
                                      encoding="utf-8")
    (url,) = tenants(1)
    targets = tmp_path / "fleet.toml"
    targets.write_text("".join(f'[targets.{schema}]\nurl = "{url}"\nschema = "{schema}"\n'
                               for schema in ("one", "two")), encoding="utf-8")
    result = cli("migrate", "up", "--targets", str(targets), "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert ("Warning: the folder holds .py revisions, which Alembic runs one database at a "
            "time: running with 1 job instead of 2") in result.output
    for schema in ("one", "two"):
        assert fetch_one(url, f"SELECT version_num FROM {schema}.alembic_version") == "002"
        assert fetch_one(url, f"SELECT to_regclass('{schema}.b') IS NOT NULL") is True
    assert fetch_one(url, "SELECT to_regclass('public.alembic_version') IS NULL") is True


def test_the_run_record(
    cli: Cli, folder: Path, tenants: Tenants, pg_cluster: DevCluster, tmp_path: Path,
) -> None:
    urls = tenants(3)
    execute(urls[1], "CREATE TABLE b (x int)")  # 002 fails on the second target
    targets = write_plain(tmp_path, urls)
    result = cli("migrate", "up", "--targets", str(targets), "--jobs", "1")
    assert result.exit_code == 1
    record = tmp_path / "targets.runs.jsonl"
    events = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    (run,) = {event["run"] for event in events}
    assert result.output.splitlines()[-1] == f"Run {run} recorded in {record.name}"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", run)
    assert [(event["event"], event.get("state")) for event in events] == [
        ("start", None), ("target", "succeeded"), ("target", "failed"), ("end", None)]
    assert events[0]["verb"] == "up" and events[0]["targets"] == 3
    assert events[1]["applied"] == ["001", "002"] and events[1]["error"] is None
    assert "applied" not in events[2]  # it failed: nothing it did is kept
    assert "Migration 002_b.sql failed" in events[2]["error"]
    assert events[1]["started_at"] <= events[1]["finished_at"]
    assert events[3]["not_started"] == [urls[2].replace(pg_cluster.password, "***")]
    assert pg_cluster.password not in record.read_text(encoding="utf-8")
    # elsewhere, or nowhere; a record that cannot be written does not stop the run
    elsewhere = tmp_path / "runs" / "fleet.jsonl"
    elsewhere.parent.mkdir()
    assert cli("migrate", "status", "--targets", str(targets)).exit_code == 0
    execute(urls[1], "DROP TABLE b")
    result = cli("migrate", "up", "--targets", str(targets), "--record", str(elsewhere),
                 "--json")
    assert result.exit_code == 0
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["record"] == str(elsewhere)
    assert [json.loads(line)["run"] for line in elsewhere.read_text().splitlines()] == [
        summary["run"]] * 5
    result = cli("migrate", "down", "--targets", str(targets), "--force", "--record",
                 str(tmp_path / "missing" / "x.jsonl"))
    assert result.exit_code == 0
    assert result.output.count("Warning: Cannot write the run record missing/x.jsonl: ") == 1
    assert "; the run goes on without it" in result.output
    assert "recorded in" not in result.output
    before = record.read_text(encoding="utf-8")
    assert cli("migrate", "up", "--targets", str(targets), "--no-record").exit_code == 0
    assert record.read_text(encoding="utf-8") == before


def test_on_a_terminal_one_status_line_replaces_the_target_lines(
    cli: Cli, folder: Path, tenants: Tenants, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("fraiseql_alembic.cli.fleet.isatty", lambda stream: True)
    urls = tenants(3)
    execute(urls[2], "CREATE TABLE a (x int)")
    result = cli("migrate", "up", "--targets", str(write_plain(tmp_path, urls)),
                 "--continue-on-error")
    assert result.exit_code == 1
    assert "Running migration" not in result.output
    assert "\r\x1b[2K" in result.output and " running" in result.output
    shown = [line.split("\r\x1b[2K")[-1] for line in result.output.split("\n")]
    failed = urls[2].rsplit("/", 1)[1]
    assert [line for line in shown if "✗ Failed" in line and failed in line
            and line.startswith("[")], shown
    assert totals(result.output.replace("\r\x1b[2K", "\n")) == (
        "3 targets: 2 succeeded, 1 failed")


def test_resume_a_recorded_run(
    cli: Cli, folder: Path, tenants: Tenants, tmp_path: Path,
) -> None:
    urls = tenants(3)
    execute(urls[1], "CREATE TABLE b (x int)")
    targets = write_plain(tmp_path, urls)
    result = cli("migrate", "up", "--targets", str(targets), "--jobs", "1")
    assert result.exit_code == 1
    run = result.output.splitlines()[-1].split()[1]
    execute(urls[1], "DROP TABLE b")
    for args, message in (
        (["down", "--force", "--resume", run], f"--resume {run}: that run was `up`, not "
         "`down`; resume it with `fraiseql migrate up`"),
        (["up", "--resume", "20200101T000000Z-abcd"], "--resume 20200101T000000Z-abcd: "
         f"targets.runs.jsonl has no run 20200101T000000Z-abcd (its last runs: {run})"),
        (["up", "--resume", "done"], "--resume done cannot be combined with --targets"),
        (["up", "--resume", "bogus"], "'bogus' is not done, again or a run id"),
    ):
        failed = cli("migrate", *args, "--targets", str(targets))
        assert failed.exit_code == 2, failed.output
        assert message in failed.output, failed.output
    single = cli("migrate", "up", "--resume", run, env={"DATABASE_URL": urls[0]})
    assert single.exit_code == 2
    assert f"--resume {run} continues a fleet run: it needs --targets FILE" in single.output
    result = cli("migrate", "up", "--targets", str(targets), "--resume", run)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (f"Resuming run {run}: 1 target that succeeded "
                                             "in it skipped, 2 to run")
    assert totals(result.output) == "2 targets: 2 succeeded"
    assert [applied(url) for url in urls] == ["002"] * 3
    last = json.loads((tmp_path / "targets.runs.jsonl").read_text().splitlines()[-4])
    assert last["event"] == "start" and last["resumes"] == run and last["targets"] == 2
