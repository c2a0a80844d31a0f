"""The Alembic plugin in isolation: opt-in rules and failure containment."""

from __future__ import annotations

import importlib.metadata
import logging
import re
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from fraiseql_alembic.alembic_bridge import commands, plugin
from fraiseql_alembic.errors import ConfigError
from fraiseql_alembic.project.loader import Revision, link_chain
from fraiseql_alembic.settings import Settings
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import parse_migration


def sql(filename: str, text: str = "SELECT 1;\n"):  # type: ignore[no-untyped-def]
    name = parse_filename(filename)
    assert name is not None
    return parse_migration(name, text)


def test_setup_never_raises(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise AttributeError("ScriptDirectory changed shape")

    monkeypatch.setattr(plugin, "install", broken)
    with caplog.at_level(logging.WARNING, logger="fraiseql_alembic.alembic_bridge.plugin"):
        plugin.setup(object())  # type: ignore[arg-type]
    assert "could not install the SQL revision loader" in caplog.text


def test_opt_in_rules() -> None:
    ours = Config()
    ours.set_main_option("script_location", "fraiseql_alembic:alembic_env")
    assert plugin.opted_in(ours)
    theirs = Config()
    theirs.set_main_option("script_location", "/somewhere/alembic")
    assert not plugin.opted_in(theirs)
    theirs.set_main_option("fraiseql_migrations", "true")
    assert plugin.opted_in(theirs)


def test_sql_files_invisible_without_opt_in(tmp_path: Path) -> None:
    (tmp_path / "env.py").write_text("")
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "001_x.sql").write_text("SELECT 1;\n")
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    assert ScriptDirectory.from_config(config).get_heads() == []
    config.set_main_option("fraiseql_migrations", "true")
    assert ScriptDirectory.from_config(config).get_heads() == ["001"]


def test_parents_follow_numbers_as_integers() -> None:
    parents = link_chain([sql("999_a.sql"), sql("1000_b.sql"), sql("02_c.sql")], [])
    assert parents == {"02": None, "999": "02", "1000": "999"}


def test_sql_chains_onto_numeric_py_revision() -> None:
    parents = link_chain(
        [sql("003_a.sql"), sql("005_b.sql")],
        [Revision("004", ("003",), "004_add_tags.py")],
    )
    assert parents == {"003": None, "005": "004"}


def test_first_sql_chains_onto_single_legacy_head_or_revises() -> None:
    legacy = [Revision("aaa", (), "aaa_first.py"), Revision("bbb", ("aaa",), "bbb_second.py")]
    assert link_chain([sql("001_a.sql")], legacy) == {"001": "bbb"}
    assert link_chain([sql("001_a.sql", "-- revises: aaa\nSELECT 1;\n")], legacy) == {"001": "aaa"}


def test_several_legacy_heads_need_revises() -> None:
    from fraiseql_alembic.errors import MigrationLayoutError

    legacy = [Revision("aaa", (), "aaa.py"), Revision("bbb", (), "bbb.py")]
    with pytest.raises(MigrationLayoutError, match=r"001_a\.sql could chain onto several"):
        link_chain([sql("001_a.sql")], legacy)


def test_py_and_sql_with_same_number_refused() -> None:
    from fraiseql_alembic.errors import MigrationLayoutError

    with pytest.raises(MigrationLayoutError, match=r"004_a\.sql and 004_b\.py"):
        link_chain([sql("004_a.sql")], [Revision("004", (), "004_b.py")])


def test_an_alembic_older_than_supported_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forced install of Alembic 1.15 (pip refuses it: alembic>=1.16) is refused when
    our environment or API first meets it, instead of an empty `alembic heads`."""
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.15.2")
    assert plugin.alembic_version() == (1, 15)
    line = ("fraiseql-alembic runs on Alembic 1.16 and later, and this is Alembic 1.15: "
            "pip install 'alembic>=1.16'")
    with pytest.raises(CommandError, match="^" + re.escape(line) + "$"):
        plugin.install_without_entry_points()
    with pytest.raises(ConfigError, match="^" + re.escape(line) + "$"):
        commands.alembic_config(Settings(Path("migrations"), None, None))
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.21.0rc1")
    assert plugin.alembic_version() == (1, 21)
    plugin.install_without_entry_points()  # 1.18+: Alembic loads the entry points itself


def test_our_error_back_from_alembic_has_a_cause_chain_that_ends() -> None:
    """One of our errors wrapped for Alembic (raised from it) and unwrapped again must not
    name its wrapper as its cause: the chain looped, and walking it (OpenTelemetry's error
    attributes) spun forever on every Alembic-path refusal."""
    driver = RuntimeError("the driver's error")
    ours = ConfigError("refused")
    ours.__cause__ = driver
    with pytest.raises(ConfigError) as caught, commands.alembic_errors():
        raise plugin.as_command_error(ours) from ours
    chain, seen = [], caught.value
    while seen is not None:
        assert seen not in chain, f"the cause chain loops: {chain}"
        chain.append(seen)
        seen = seen.__cause__
    assert chain == [ours, driver]
