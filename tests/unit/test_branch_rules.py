"""Numbered files next to hex Alembic revisions: which parent each takes, and check's branch rule (no database)."""

from __future__ import annotations

from scenarios import FEATURE

from fraiseql_alembic.project.check import Revision, branches
from fraiseql_alembic.project.loader import link_chain
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import normalize_text, parse_migration


def sql(filename: str, text: str = "SELECT 1;\n") -> object:
    name = parse_filename(filename)
    assert name is not None
    return parse_migration(name, normalize_text(text.encode(), filename))


def test_a_hex_revision_never_becomes_the_parent_of_a_numbered_file() -> None:
    files = [sql("003_c.sql"), sql("004_d.sql")]
    feature = [Revision(FEATURE, ("003",), f"{FEATURE}_feature.py")]
    assert link_chain(files, feature) == {"003": None, "004": "003"}  # 004 keeps its parent
    named = [sql("003_c.sql"), sql("004_d.sql", f"-- revises: {FEATURE}\nSELECT 1;\n")]
    assert link_chain(named, feature) == {"003": None, "004": FEATURE}


def test_only_a_purely_hex_history_is_adopted_by_the_first_sql_file() -> None:
    legacy = [Revision("aaa", (), "aaa.py"), Revision("bbb", ("aaa",), "bbb.py")]
    # `alembic revision` on top of the numbered 004 (a .py file) is not a legacy head
    above_numbered = [Revision("004", (), "004_x.py"), Revision("ccc", ("004",), "ccc.py")]
    assert link_chain([sql("001_a.sql")], legacy) == {"001": "bbb"}
    assert link_chain([sql("001_a.sql")], above_numbered) == {"001": None}


def test_check_rule_names_the_new_branch_and_the_parent_to_take() -> None:
    chain = [Revision("003", (), "003_c.sql"), Revision("004", ("003",), "004_d.sql"),
             Revision("005", ("004",), "005_e.sql"),
             Revision(FEATURE, ("003",), f"{FEATURE}_feature.py")]
    on_base = {"003_c.sql", "004_d.sql", "005_e.sql"}
    assert branches(chain, on_base, "main") == [(f"{FEATURE}_feature.py", (
        "follows 003_c.sql, but main already has 004_d.sql after it, so databases that ran "
        "that would skip this one (two heads): set `down_revision = \"005\"` in it so that it "
        "runs after the migrations already merged"))]
    assert branches(chain[:3], on_base, "main") == []
    (only,) = branches(chain)
    assert only[0] is None and "has 2 heads (005_e.sql, abc123def456_feature.py)" in only[1]
