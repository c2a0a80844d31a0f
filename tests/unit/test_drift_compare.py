"""The pure half of ``fraiseql migrate drift`` (``project/drift.py``): catalogs in,
differences out; ignore patterns; the normalised text behind ``--diff``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fraiseql_alembic.errors import ConfigError
from fraiseql_alembic.project.drift import (
    CHANGED,
    MISSING,
    UNEXPECTED,
    check_patterns,
    compare,
    describe,
    ignored,
    unified_diff,
)

EXPECTED = {
    "table": {"public.tb_user": {"type": "table", "unlogged": False}},
    "column": {"public.tb_user.email": {"type": "text", "not_null": True, "default": None},
               "public.tb_user.name": {"type": "text", "not_null": False, "default": None}},
    "index": {"public.ix_email": {"table": "public.tb_user", "valid": True,
                                  "definition": "CREATE INDEX ix_email ON public.tb_user"}},
}
LIVE = {
    "table": {"public.tb_user": {"type": "table", "unlogged": False},
              "public.tmp_load": {"type": "table", "unlogged": True}},
    "column": {"public.tb_user.email": {"type": "text", "not_null": False, "default": None},
               "public.tmp_load.id": {"type": "integer", "not_null": False, "default": None}},
    "index": {"public.ix_email": {"table": "public.tb_user", "valid": False,
                                  "definition": "CREATE INDEX ix_email ON public.tb_user"}},
    "extension": {"pg_stat_statements": {"schema": "public", "version": "1.10"}},
}


def test_compare_names_each_object_its_state_and_what_changed() -> None:
    found = [(each.kind, each.name, each.state, each.changed)
             for each in compare(LIVE, EXPECTED)]
    assert found == [
        ("extension", "pg_stat_statements", UNEXPECTED, ("schema", "version")),
        ("table", "public.tmp_load", UNEXPECTED, ("type", "unlogged")),
        ("column", "public.tb_user.email", CHANGED, ("not_null",)),
        ("column", "public.tb_user.name", MISSING, ("default", "not_null", "type")),
        ("column", "public.tmp_load.id", UNEXPECTED, ("default", "not_null", "type")),
        ("index", "public.ix_email", CHANGED, ("valid",)),
    ]
    assert compare(EXPECTED, EXPECTED) == ()


def test_ignore_patterns_cover_names_tables_and_kinds() -> None:
    patterns = ("public.tmp_*", "extension:pg_stat_statements")
    assert [each.name for each in compare(LIVE, EXPECTED, patterns)] == [
        "public.tb_user.email", "public.tb_user.name", "public.ix_email"]
    # an index is covered through its table, a comment on a constraint through "on"
    assert ignored("index", "public.ix_other", {"table": "public.tmp_x"}, patterns)
    assert ignored("comment", "pk on public.tmp_x", {"on": "table constraint"}, patterns)
    # KIND: keeps the glob to that kind
    assert not ignored("schema", "pg_stat_statements", {}, patterns)
    assert ignored("schema", "pg_stat_statements", {}, ("pg_stat_*",))


@pytest.mark.parametrize("pattern", ["", "  ", 3, "views:public.*", "table:"])
def test_bad_patterns_are_refused_naming_the_setting(pattern: object) -> None:
    with pytest.raises(ConfigError, match=r"^\[tool\.fraiseql\.drift\] in pyproject\.toml: "):
        check_patterns([pattern], "[tool.fraiseql.drift] in pyproject.toml")


def test_describe_is_sorted_and_diffs_from_expected_to_live() -> None:
    catalog = {"function": {"public.f()": {"definition": "CREATE FUNCTION\nAS $$x$$\n",
                                           "volatility": "STABLE"}},
               "schema": {"public": {}}}
    assert describe(catalog) == [
        "schema public",
        "function public.f()",
        "    definition: CREATE FUNCTION",
        "        AS $$x$$",
        "    volatility: STABLE",
    ]
    diff = unified_diff(LIVE, EXPECTED, ("public.tmp_*", "extension:*"))
    assert diff[:2] == ["--- expected", "+++ live"]
    assert diff[-2:] == ["-    valid: true", "+    valid: false"]
    # the diff's - side is the expected text, its + side the live text
    kept = ("public.tmp_*", "extension:*")
    assert diff[2] == "@@ -3,13 +3,9 @@"  # from 3 lines before the first change
    assert [line[1:] for line in diff[3:] if line[0] in " -"] == describe(EXPECTED, kept)[2:]
    assert [line[1:] for line in diff[3:] if line[0] in " +"] == describe(LIVE, kept)[2:]
    # aligned by object: a missing object is all "-", never matched with another's lines
    assert diff[9:13] == ["-column public.tb_user.name", "-    default: null",
                          "-    not_null: false", "-    type: text"]


def test_diff_hunks_apply_with_patch(tmp_path: Path) -> None:
    """Far apart changes make several hunks, each with 3 lines of context, that patch(1)
    applies to the expected text to give the live one."""
    expected = {"column": {f"public.t.c{n:02}": {"type": "integer"} for n in range(20)}}
    live = {"column": {**expected["column"], "public.t.c03": {"type": "bigint"},
                       "public.t.c17": {"type": "text"}}}
    diff = unified_diff(live, expected)
    assert [line for line in diff if line.startswith("@@")] == [
        "@@ -5,7 +5,7 @@", "@@ -33,7 +33,7 @@"]
    (tmp_path / "schema").write_text("\n".join(describe(expected)) + "\n", encoding="utf-8")
    (tmp_path / "drift.diff").write_text("\n".join(diff) + "\n", encoding="utf-8")
    subprocess.run(["patch", "-s", "schema", "drift.diff"], cwd=tmp_path, check=True)
    assert (tmp_path / "schema").read_text(encoding="utf-8") == "\n".join(describe(live)) + "\n"
    assert not any("tmp_load" in line or "pg_stat" in line for line in diff)
