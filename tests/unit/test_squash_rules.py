"""Squash and `repair --missing` without a database: the dump's normalisation, the baseline's
header, how status reads a baseline, and the plans of `repair --missing`."""

from __future__ import annotations

import types

import pytest
from test_plan import FOLDER, applied, chain, sql

from fraiseql_alembic.api.squashing import (
    SquashRefused,
    _squashed_chain,
    baseline_text,
    target_problem,
)
from fraiseql_alembic.engine import plan as planning
from fraiseql_alembic.engine import status as status_view
from fraiseql_alembic.engine.baseline import normalise
from fraiseql_alembic.engine.database import DatabaseState
from fraiseql_alembic.errors import MigrationError, MigrationLayoutError
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import parse_migration

PG_DUMP = """--
-- PostgreSQL database dump
--

\\restrict AbC123xyz

-- Dumped from database version 17.6
-- Dumped by pg_dump version 17.6

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    AS $$
--
-- a comment of the function, kept
SELECT 1
$$;


--
-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.t (id) VALUES (1);

--
-- PostgreSQL database dump complete
--

\\unrestrict AbC123xyz

"""


def test_normalise_keeps_the_objects_and_drops_what_differs_between_runs() -> None:
    assert normalise(PG_DUMP) == """SET client_encoding = 'UTF8';
SET check_function_bodies = false;

CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    AS $$
--
-- a comment of the function, kept
SELECT 1
$$;

INSERT INTO public.t (id) VALUES (1);
"""
    assert normalise(PG_DUMP.replace("\n", "\r\n")) == normalise(PG_DUMP)


ONE, TWO, THREE, FOUR = (sql("001_a.sql"), sql("002_b.sql"), sql("003_c.sql"),
                         sql("004_d.sql"))


def baseline_of(*migrations: object) -> object:
    text = baseline_text(list(migrations), "CREATE TABLE t (id int);\n")  # type: ignore[arg-type]
    last = migrations[-1].name  # type: ignore[attr-defined]
    name = parse_filename(f"{last.version}_baseline.sql")
    assert name is not None
    return parse_migration(name, text)


def test_the_baseline_header_lists_each_file_with_its_checksums() -> None:
    baseline = baseline_of(ONE, TWO, THREE)
    assert baseline.title == "Baseline of 001..003"  # type: ignore[attr-defined]
    assert [(entry.version, entry.filename, entry.checksum, entry.up_checksum)
            for entry in baseline.squashes] == [  # type: ignore[attr-defined]
        (m.name.version, m.name.filename, m.checksum, m.up_checksum) for m in (ONE, TWO, THREE)]
    assert baseline.down is None and baseline.up.sql == "CREATE TABLE t (id int);\n"  # type: ignore[attr-defined]
    again = baseline_of(baseline, FOUR)  # a baseline among the files passes its list on
    assert [entry.filename for entry in again.squashes] == [  # type: ignore[attr-defined]
        "001_a.sql", "002_b.sql", "003_c.sql", "003_baseline.sql", "004_d.sql"]


def test_status_reads_a_baseline_on_databases_made_before_and_after_it() -> None:
    baseline = baseline_of(ONE, TWO, THREE)
    scripts = chain(baseline, FOUR)  # type: ignore[arg-type]
    before = planning.reconcile(scripts, applied(ONE, TWO, THREE, FOUR))
    assert [(row.filename, row.state, row.squashed_into) for row in before.rows] == [
        ("001_a.sql", status_view.SQUASHED, "003_baseline.sql"),
        ("002_b.sql", status_view.SQUASHED, "003_baseline.sql"),
        ("003_baseline.sql", status_view.APPLIED, None),
        ("004_d.sql", status_view.APPLIED, None)]
    assert not before.inconsistent
    fresh = planning.reconcile(scripts, applied(baseline, FOUR))  # type: ignore[arg-type]
    assert [row.state for row in fresh.rows] == [status_view.APPLIED] * 2

    below = planning.reconcile(scripts, applied(ONE, TWO))
    assert [(row.filename, row.state) for row in below.rows] == [
        ("001_a.sql", status_view.SQUASHED), ("002_b.sql", status_view.BELOW_BASELINE),
        ("003_baseline.sql", status_view.PENDING), ("004_d.sql", status_view.PENDING)]
    with pytest.raises(MigrationLayoutError, match=r"which 003_baseline\.sql replaced"):
        planning.plan_upgrade(below, below.heads, None, folder=FOLDER)

    other_file = sql("003_c.sql", up="CREATE TABLE other (id int);")  # not what was squashed
    changed = planning.reconcile(scripts, applied(ONE, TWO, other_file))
    assert changed.rows[2].state == status_view.MODIFIED


def test_target_problem_names_what_keeps_a_database_from_the_squash() -> None:
    versions = ["001", "002"]
    scripts = chain(ONE, TWO, THREE)
    assert target_problem(planning.reconcile(scripts, applied(ONE, TWO)), versions) is None
    assert target_problem(planning.reconcile(scripts, applied(ONE)), versions) == (
        "behind: at 001_a.sql; 002_b.sql is not applied")
    assert target_problem(planning.reconcile(scripts, DatabaseState((), {})), versions) == (
        "behind: at nothing applied; 001_a.sql is not applied")
    edited = sql("002_b.sql", up="CREATE TABLE t2 (id int);")
    problem = target_problem(planning.reconcile(scripts, applied(ONE, edited)), versions)
    assert problem is not None and problem.startswith("modified: 002_b.sql changed")


def test_repair_missing_plans() -> None:
    scripts = chain(ONE, THREE)  # 002 was deleted
    state = applied(ONE, TWO, THREE)
    report = planning.reconcile(scripts, state)
    row, entry, move = planning.plan_missing(scripts, report, "2", folder=FOLDER,
                                             reason="gone")
    assert (row.filename, entry.action, entry.checksum, entry.note, move) == (
        "002_b.sql", "file_deleted", TWO.checksum, "file deleted on purpose; gone", None)
    head = chain(ONE, TWO)  # 003, the head, was deleted
    _, entry, move = planning.plan_missing(head, planning.reconcile(head, state), "003",
                                           folder=FOLDER)
    assert move == ("003", "002")
    assert entry.note == "file deleted on purpose; alembic_version moved from 003 to 002"
    renamed = chain(ONE, THREE, sql("005_b.sql"))  # 002's text under a new number
    with pytest.raises(MigrationError, match=r"renamed: 005_b\.sql holds the content"):
        planning.plan_missing(renamed, planning.reconcile(renamed, state), "002", folder=FOLDER)
    with pytest.raises(MigrationError, match=r"001_a\.sql is not missing"):
        planning.plan_missing(scripts, report, "001", folder=FOLDER)


def test_the_squashed_files_must_be_one_line_of_sql_files() -> None:
    scripts = chain(ONE, TWO, THREE)
    assert [m.name.filename for m in _squashed_chain(scripts, "002", FOLDER)] == [
        "001_a.sql", "002_b.sql"]
    python = types.SimpleNamespace(revision="002", down_revision="001",
                                   path="migrations/002_b.py", module=types.SimpleNamespace(),
                                   dependencies=())
    with pytest.raises(SquashRefused, match=r"002_b\.py is a Python revision"):
        _squashed_chain([scripts[0], python, scripts[2]], "3", FOLDER)
    skips_two = types.SimpleNamespace(**{**vars(scripts[2]), "down_revision": "001"})
    with pytest.raises(SquashRefused, match=r"002_b\.sql is numbered below 3 but is not"):
        _squashed_chain([scripts[0], scripts[1], skips_two], "3", FOLDER)
    with pytest.raises(SquashRefused, match="Nothing to squash"):
        _squashed_chain(scripts, "001", FOLDER)
