"""The targets file of a fleet run (project/targets.py): both formats, ${VAR}, waves, shards,
and one precise line for every mistake, never showing a password."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from fraiseql_alembic.engine.locking import LEASE_TABLE_KEY, LOCK_KEY, lock_key
from fraiseql_alembic.errors import ConfigError, UsageError
from fraiseql_alembic.project.targets import (
    Shard,
    Target,
    in_shard,
    only_wave,
    parse_shard,
    read_targets,
    schema_url,
    shard_of,
    waves_of,
)

ENV = {"PW": "s3cret", "HOST": "db1.internal", "CONTROL": "postgresql://ctl:k3y@ctl/control"}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        read_targets(path, ENV if environ is None else environ)
    message = caught.value.message
    assert "s3cret" not in message and "k3y" not in message
    assert "\n" not in message
    return message


def test_plain_text_urls_comments_blanks_and_variables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "targets.txt", "# tenants\n\npostgresql://app:${PW}@${HOST}/t1\n"
                 "  postgres://app@db2/t2  \n# the end\n")
    parsed = read_targets(path, ENV)
    assert [t.url for t in parsed.targets] == ["postgresql://app:s3cret@db1.internal/t1",
                                               "postgres://app@db2/t2"]
    # named by the URL as written, the password masked: never the expanded secret
    assert [t.name for t in parsed.targets] == ["postgresql://app:***@${HOST}/t1",
                                                "postgres://app@db2/t2"]
    assert parsed.targets[0].shown_url == "postgresql://app:***@db1.internal/t1"
    assert [t.where for t in parsed.targets] == ["targets.txt:3", "targets.txt:4"]


def test_plain_text_mistakes_name_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "t.txt", "postgresql://a@h/one\nmysql://app:s3cret@h/x\n")
    assert error_of(path).startswith("t.txt:2: Database URL 'mysql://app:***@h/x' is not a "
                                     "PostgreSQL URL")
    path = write(tmp_path, "t.txt", "postgresql://app:${NOPE}@h/x\n")
    assert error_of(path) == ("t.txt:1: environment variable NOPE is not set; export it "
                              "before the run (the file says ${NOPE})")
    path = write(tmp_path, "t.txt", "postgresql://app:s3cret@h/x extra\n")
    assert error_of(path).startswith("t.txt:1: expected one database URL on the line")
    path = write(tmp_path, "t.txt", "postgresql://a@h/x\n\npostgresql://a@h/x\n")
    assert error_of(path) == ("t.txt:3: target postgresql://a@h/x is also at t.txt:1; list "
                              "each target once")
    path = write(tmp_path, "t.txt", "postgresql://a:${1X}@h/x\n")
    assert "t.txt:1: ${1X} is not a variable name" in error_of(path)


def test_a_literal_dollar_brace_is_written_twice(tmp_path: Path) -> None:
    path = write(tmp_path, "t.txt", "postgresql://app:p$${x}@h/db\n")
    assert read_targets(path, {}).targets[0].url == "postgresql://app:p${x}@h/db"


TOML = """\
waves = ["canary", "rest"]

[targets.acme]
url = "postgresql://app:${PW}@db1/acme"
wave = "canary"

[targets."globex"]
url = "postgresql://app@db2/globex"
schema = "tenant_globex"
group = "rest"

[targets.initech]
url = "postgresql://app@db3/initech"

[[query]]
url = "${CONTROL}"
sql = "SELECT url FROM tenants"
"""


def test_toml_named_targets_waves_and_queries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = read_targets(write(tmp_path, "fleet.toml", TOML), ENV)
    assert parsed.targets == (
        Target("acme", "postgresql://app:s3cret@db1/acme", None, "canary", "fleet.toml:3"),
        Target("globex", "postgresql://app@db2/globex", "tenant_globex", "rest", "fleet.toml:7"),
        Target("initech", "postgresql://app@db3/initech", None, None, "fleet.toml:12"),
    )
    assert parsed.waves == ("canary", "rest")
    (query,) = parsed.queries
    assert (query.url, query.sql, query.where) == (
        "postgresql://ctl:k3y@ctl/control", "SELECT url FROM tenants", "fleet.toml:15")
    assert [(wave, [t.name for t in members])
            for wave, members in waves_of(parsed.targets, parsed.waves)] == [
        ("canary", ["acme"]), ("rest", ["globex"]), (None, ["initech"])]


@pytest.mark.parametrize(("text", "expected"), [
    ("[targets.a]\nurl = 'postgresql://h/a'\nschema = 'no-dash'\n",
     "f.toml:1: schema 'no-dash' of target a is not a plain identifier"),
    ("[targets.a]\nurl = 'postgresql://h/a'\nsceham = 'x'\n",
     "f.toml:1: unknown key 'sceham' in target a; expected url, schema, wave, group"),
    ("[targets.a]\nschema = 'x'\n", "f.toml:1: target a has no url"),
    ("colour = 1\n[targets.a]\nurl = 'postgresql://h/a'\n",
     "f.toml:1: unknown key 'colour' at the top level; expected waves, targets, query"),
    ("waves = ['one']\n\n[targets.a]\nurl = 'postgresql://h/a'\nwave = 'two'\n",
     "f.toml:3: target a is in wave 'two', which waves = ['one'] does not list"),
    ("[targets.a]\nurl = 'postgresql://h/a'\nwave = 'x'\ngroup = 'y'\n",
     "f.toml:1: target a has wave 'x' and group 'y'"),
    ("[targets.a]\nurl = 'postgresql://h/a'\n[targets.b]\nurl = 'postgresql://h/a'\n",
     "f.toml:3: target b is the same database as a (f.toml:1)"),
    ("[targets.a]\nurl = 'postgresql://app:${MISSING}@h/a'\n",
     "f.toml:1: environment variable MISSING is not set"),
    ("[targets.a]\nurl = 'postgresql://h/a\n", "f.toml:2: not valid TOML (Expected \"'\"); "),
    ("[targets.a]\nurl = 'postgresql://h/a' x\n", "f.toml:2: not valid TOML (Expected newline"),
    ("[[query]]\nurl = '${CONTROL}'\n", "f.toml:1: [[query]] needs sql ="),
    ("[targets.a]\nurl = 'postgresql://h/a'\n[[query]]\nsql = 'SELECT 1'\n",
     "f.toml:3: [[query]] needs url ="),
    ("# nothing\n", "f.toml: no targets"),
    ("waves = 'canary'\n[targets.a]\nurl = 'postgresql://h/a'\n",
     "f.toml:1: waves must be a list of wave names"),
    ("[targets.'a b']\nurl = 'postgresql://h/a'\n", "f.toml:1: target name 'a b' has spaces"),
])
def test_toml_mistakes_name_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     text: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert error_of(write(tmp_path, "f.toml", text)).startswith(expected)


def test_an_unreadable_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match=r"^Cannot read the targets file missing.txt: it does "
                       "not exist$"):
        read_targets(tmp_path / "missing.txt", {})


def test_only_wave_refuses_an_unknown_wave() -> None:
    targets = [Target("a", "postgresql://h/a", wave="canary"), Target("b", "postgresql://h/b")]
    assert only_wave(targets, "canary", (), "f.toml") == targets[:1]
    with pytest.raises(UsageError, match=r"^--wave nope: f.toml has no wave of that name "
                       r"\(waves: canary\)$"):
        only_wave(targets, "nope", (), "f.toml")


@pytest.mark.parametrize("spec", ["3/3", "1", "-1/2", "a/b", "0/0"])
def test_a_bad_shard_is_refused(spec: str) -> None:
    with pytest.raises(UsageError, match="is not a shard; give I/N"):
        parse_shard(spec)


def test_shards_cover_every_target_exactly_once_and_are_stable() -> None:
    targets = [Target(f"tenant_{n}", f"postgresql://h/t{n}") for n in range(500)]
    for count in (1, 2, 3, 7):
        shares = [in_shard(targets, parse_shard(f"{index}/{count}")) for index in range(count)]
        names = [target.name for share in shares for target in share]
        assert sorted(names) == sorted(target.name for target in targets)
        if count > 1:  # a share of a few hundred is near the mean
            assert all(len(share) > 500 / count * 0.7 for share in shares), count
    # a target's shard depends on its name alone: adding targets moves no other
    assert shard_of("tenant_7", 4) == shard_of("tenant_7", 4)
    more = [*targets, Target("tenant_new", "postgresql://h/new")]
    assert {t.name for t in in_shard(targets, Shard(1, 4))} <= {
        t.name for t in in_shard(more, Shard(1, 4))}


def test_a_schema_target_connects_with_its_schema_first_on_the_search_path() -> None:
    target = Target("acme", "postgresql://app:s3cret@h/db?sslmode=require", "Tenant_A",
                    where="f.toml:3")
    url = schema_url(target)
    assert url == ("postgresql://app:s3cret@h/db?sslmode=require&options=-c%20search_path"
                   "%3D%22Tenant_A%22%2Cpublic")
    assert parse_qs(urlsplit(url).query)["options"] == ['-c search_path="Tenant_A",public']
    assert schema_url(Target("plain", "postgresql://h/db")) == "postgresql://h/db"
    with pytest.raises(ConfigError, match=r"^f.toml:3: target acme has a schema and its URL "
                       "sets options= too; drop options from the URL"):
        schema_url(Target("acme", "postgresql://h/db?options=-cwork_mem%3D1MB", "acme",
                          where="f.toml:3"))


def test_the_lock_is_one_per_database_and_schema() -> None:
    assert lock_key("public") == LOCK_KEY
    keys = {lock_key(f"tenant_{n}") for n in range(2000)}
    assert len(keys) == 2000 and LOCK_KEY not in keys and LEASE_TABLE_KEY not in keys
    # the same upper half (pg_locks.classid): every key of ours is told apart from others'
    assert {key >> 32 for key in keys} == {LOCK_KEY >> 32}
    assert lock_key("tenant_7") == lock_key("tenant_7") != lock_key("Tenant_7")
