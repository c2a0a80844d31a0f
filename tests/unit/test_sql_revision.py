"""The SQL revision writer autogenerate calls (alembic_bridge/revision.py), on a folder."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from fraiseql_alembic.alembic_bridge.plugin import ENV_LOCATION
from fraiseql_alembic.alembic_bridge.revision import slug_of, write_sql_revision
from fraiseql_alembic.project import scaffold
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import parse_migration


def directory(folder: Path) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", ENV_LOCATION)
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(folder))
    return ScriptDirectory.from_config(config)


def test_up_down_and_header_fill_the_create_template(tmp_path: Path) -> None:
    (tmp_path / "001_first.sql").write_text("-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 1;\n")
    path = write_sql_revision(
        directory(tmp_path), "Add the tb_tag table",
        up="CREATE TABLE tb_tag (id int);\n\n", down="\nDROP TABLE tb_tag;",
        header=["WARNING: drops nothing", "-- already a comment", "two\nlines"],
    )
    assert path == tmp_path / "002_add_the_tb_tag_table.sql"
    (tmp_path / "plain").mkdir()
    plain = scaffold.create(tmp_path / "plain", "add_the_tb_tag_table")
    expected = plain.read_text().replace("001_", "002_").replace("Migration 001", "Migration 002")
    expected = expected.replace(
        "\n-- migrate:up\n\n\n-- migrate:down\n\n",
        "\n-- WARNING: drops nothing\n-- already a comment\n-- two\n-- lines\n\n"
        "-- migrate:up\nCREATE TABLE tb_tag (id int);\n\n-- migrate:down\nDROP TABLE tb_tag;\n",
    )
    assert path.read_text() == expected
    name = parse_filename(path.name)
    assert name is not None
    parsed = parse_migration(name, path.read_text())
    assert parsed.up is not None and parsed.up.sql.strip() == "CREATE TABLE tb_tag (id int);"
    assert parsed.down is not None and parsed.down.sql.strip() == "DROP TABLE tb_tag;"
    assert parsed.title == "Add the tb tag table"


def test_no_text_is_the_create_file(tmp_path: Path) -> None:
    path = write_sql_revision(directory(tmp_path), "first")
    (tmp_path / "plain").mkdir()
    plain = scaffold.create(tmp_path / "plain", "first", today=date.today())
    assert path.read_text() == plain.read_text()


def test_slug_of_long_message_is_cut_at_a_word() -> None:
    slug = slug_of("word " * 40)
    assert len(slug) <= 100 and slug.endswith("word") and "__" not in slug
