"""Pure: config.alembic_ini_option, which settings (target_metadata, dump_schema) and the
adopted-env.py check (script_location, without Alembic) read alembic.ini through."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraiseql_alembic.config import alembic_ini_option
from fraiseql_alembic.errors import ConfigError


def test_an_option_of_the_alembic_section_as_written(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/env\n\n[other]\nx = 1\n",
                   encoding="utf-8")
    assert alembic_ini_option(ini, "script_location") == "%(here)s/env"  # no interpolation
    assert alembic_ini_option(ini, "x") is None
    assert alembic_ini_option(tmp_path / "absent.ini", "script_location") is None


def test_a_file_configparser_cannot_read_is_one_line_naming_it(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\na = 1\na = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^Cannot read .*alembic\.ini: .*'a'"):
        alembic_ini_option(ini, "a")
