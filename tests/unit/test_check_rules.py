"""`fraiseql migrate check`'s rules on file names and numbers, without git or a database."""

from __future__ import annotations

import pytest

from fraiseql_alembic.project.check import duplicate_numbers, misnamed, numbering_against_base
from fraiseql_alembic.sql.names import MigrationName, parse_filename


def name(filename: str) -> MigrationName:
    parsed = parse_filename(filename)
    assert parsed is not None
    return parsed


def test_duplicate_numbers_name_both_files_and_a_free_number() -> None:
    names = [name("001_a.sql"), name("002_b.sql"), name("002_c.sql"), name("003_d.sql")]
    ((duplicate, message),) = duplicate_numbers(names)
    assert duplicate.filename == "002_c.sql"
    assert message == (
        "shares number 002 with 002_b.sql (two branches merged?); renumber the one that is "
        "not applied anywhere yet, e.g. to 004_c.sql"
    )


def test_duplicate_numbers_compare_as_integers() -> None:
    found = duplicate_numbers([name("001_a.sql"), name("01_b.sql"), name("1000_c.sql")])
    assert [(item.filename, message.split(";")[0]) for item, message in found] == [
        ("01_b.sql", "shares number 01 with 001_a.sql (two branches merged?)")]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("4_Add-Users.sql", "rename it to 4_add_users.sql"),
        ("005_add users.SQL", "rename it to 005_add_users.sql"),
        ("notes.sql", "(rename it, or move it out of the migrations folder)"),
        ("006_.sql", "(rename it, or move it out of the migrations folder)"),
    ],
)
def test_misnamed_files_get_a_name_that_would_load(filename: str, expected: str) -> None:
    message = misnamed(filename)
    assert message.startswith("is not loaded: migration files are named NNN_snake_case_name.sql")
    assert message.endswith(expected)


def test_new_files_must_be_numbered_above_the_base() -> None:
    local = [name(f) for f in ("001_a.sql", "007_g.sql", "004_x.sql", "005_y.sql", "009_z.sql")]
    found = numbering_against_base(local, {"001_a.sql", "007_g.sql", "README.md"}, "main")
    assert [(item.filename, message) for item, message in found] == [
        ("004_x.sql", "numbered 004 but main already has 007: renumber it to 010_x.sql so "
                      "that it runs after the migrations already merged"),
        ("005_y.sql", "numbered 005 but main already has 007: renumber it to 011_y.sql so "
                      "that it runs after the migrations already merged"),
    ]
    # numbered .py revisions on the base count; an empty base accepts anything
    assert numbering_against_base([name("002_b.sql")], {"003_legacy.py"}, "main")[0][1].startswith(
        "numbered 002 but main already has 003")
    assert numbering_against_base([name("001_a.sql")], set(), "main") == []
