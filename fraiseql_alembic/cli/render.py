"""What the verbs print, as text: status (text and JSON), plans, the rehearsal summary,
and the small helpers every line uses (``elapsed_text``; the marks and GitHub
annotations are :mod:`.marks`', re-exported; counts go through
:func:`fraiseql_alembic.errors.plural`, paths through ``errors.shown_path``).

Pure: values in, strings out; nothing here writes to a stream.
"""

from __future__ import annotations

import json

from .. import api
from ..config import Environment
from ..engine.events import NOT_REHEARSED, WOULD_APPLY, WOULD_RECORD
from ..engine.history import MARKED_APPLIED, Progress
from ..engine.status import (
    APPLIED,
    BELOW_BASELINE,
    MISSING,
    MODIFIED,
    OUT_OF_ORDER,
    PENDING,
    SQUASHED,
    UNRECORDED,
    UNTRACKED,
    StatusReport,
    StatusRow,
    below_baseline_message,
    out_of_order_message,
    warnings,
)
from ..errors import plural as plural  # the CLI's lines count with it
from .marks import CHECK as CHECK
from .marks import PARTIAL_MARK as PARTIAL_MARK
from .marks import PENDING_MARK as PENDING_MARK
from .marks import PROBLEM_MARK as PROBLEM_MARK
from .marks import escape_data as escape_data
from .marks import github_annotation as github_annotation


def elapsed_text(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``2m05s``, ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# -- status -------------------------------------------------------------------------


def render_status_json(report: StatusReport, environment: Environment | None = None) -> str:
    """The status as one JSON document (docs/status.md describes the fields); with the
    named environment in use, its name and masked URL."""

    def state(row: StatusRow) -> str:
        return "partial" if row.partial is not None and row.state == PENDING else str(row.state)

    migrations = [
        {
            "version": row.version,
            "file": row.filename,
            "state": state(row),
            "applied_at": row.applied_at.isoformat() if row.applied_at else None,
            "execution_ms": row.execution_ms,
            "applied_by": row.applied_by,
            "checksum": row.checksum,
            "recorded_checksum": row.recorded_checksum,
            "resumes_at_line": row.partial.next_line if row.partial is not None else None,
            "interrupted_at_line": (
                row.partial.statement_line
                if row.partial is not None and row.partial.state == "running" else None),
            "marked_by_hand": row.marked_by_hand is not None,
            "action": row.action,
            "repaired_at": row.repair.applied_at.isoformat() if row.repair else None,
            "squashed_into": row.squashed_into,
        }
        for row in report.rows
    ]
    return json.dumps(
        {
            "heads": list(report.heads),
            "folder_heads": list(report.folder_heads),
            "pending": len(report.pending),
            "problems": len(report.problems) + (report.version_rows_problem is not None),
            "environment": None if environment is None else {
                "name": environment.name, "url": environment.shown_url},
            "version_rows_problem": report.version_rows_problem,
            "migrations": migrations,
            "ignored_files": [path.name for path in report.ignored],
        },
        indent=2,
    )


def render_status(report: StatusReport, environment: Environment | None = None) -> str:
    """``Migration Status:`` and one line per migration, then problems and warnings; first
    ``Environment NAME: URL`` (masked) when a named environment is in use."""
    lines = [] if environment is None else [
        f"Environment {environment.name}: {environment.shown_url}"]
    lines.append("Migration Status:")
    problems: list[str] = []
    if not report.rows:
        lines.append("  (no migrations yet: create one with `fraiseql migrate create <name>`)")
    for row in report.rows:
        line, problem = _status_line(row)
        if line is not None:
            lines.append(line)
        if problem is not None:
            problems.append(problem)
    if report.version_rows_problem is not None:
        problems.insert(0, report.version_rows_problem)
    lines += [f"Problem: {problem}" for problem in problems]
    lines += [f"Warning: {warning}" for warning in warnings(report)]
    return "\n".join(lines)


def _status_line(row: StatusRow) -> tuple[str | None, str | None]:
    """One row's line, and the problem it adds below the list (if any)."""
    when = (
        f"applied {row.applied_at.astimezone():%Y-%m-%d %H:%M:%S}"
        if row.applied_at is not None
        else "applied"
    )
    if row.state == APPLIED and row.partial is not None:
        return (f"  {PARTIAL_MARK} {row.filename} ({when}; PARTLY ROLLED BACK: "
                f"{_resume_point(row.partial, 'down')})"), None
    if row.state == APPLIED:
        return f"  {CHECK} {row.filename} ({when}{_record_note(row)})", None
    if row.state == PENDING and row.partial is not None:
        return (f"  {PARTIAL_MARK} {row.filename} (PARTIALLY APPLIED: "
                f"{_resume_point(row.partial, 'up')})"), None
    if row.state == PENDING and row.marked_by_hand is not None:
        return (f"  {PENDING_MARK} {row.filename} (pending; marked applied by hand "
                f"{row.marked_by_hand.applied_at.astimezone():%Y-%m-%d %H:%M:%S}: "
                "`fraiseql migrate up` records it without running it)"), None
    if row.state == PENDING and row.migration is not None and row.migration.up.is_empty:
        return (f"  {PENDING_MARK} {row.filename} (pending; EMPTY: write its SQL below "
                "`-- migrate:up`)"), None
    if row.state == PENDING:
        return f"  {PENDING_MARK} {row.filename} (pending)", None
    if row.state == MODIFIED:
        return (f"  {PROBLEM_MARK} {row.filename} ({when}; MODIFIED since: checksum "
                "mismatch)"), None
    if row.state == MISSING:
        return f"  {PROBLEM_MARK} {row.filename} ({when}; file MISSING)", None
    if row.state == SQUASHED:
        return f"  {CHECK} {row.filename} ({when}; squashed into {row.squashed_into})", None
    if row.state == BELOW_BASELINE:
        line = (f"  {PROBLEM_MARK} {row.filename} ({when}; SQUASHED into "
                f"{row.squashed_into}, which this database has not reached)")
        return line, below_baseline_message(row)
    if row.state == OUT_OF_ORDER:
        return (f"  {PROBLEM_MARK} {row.filename} (NOT APPLIED: merged out of order)",
                out_of_order_message(row))
    if row.state == UNTRACKED and row.fork is not None:
        return (f"  {PROBLEM_MARK} {row.filename} ({when}; NOT in alembic_version: "
                "the chain changed under it)", out_of_order_message(row))
    if row.state == UNTRACKED:
        return (f"  {PROBLEM_MARK} {row.filename} (NOT in alembic_version, but "
                f"fraiseql_migrations says {when}: alembic_version edited by hand?)"), None
    if row.state == UNRECORDED:
        return (f"  {PROBLEM_MARK} {row.filename} (NEVER RAN HERE, yet below applied "
                "migrations: merged late, or its history row was deleted)"), None
    return None, None


def _resume_point(partial: Progress, direction: str) -> str:
    """Where `up`/`down` goes on in a partly run file, for the status line."""
    if partial.state == "running":
        return (f"stopped while line {partial.statement_line} ran outside a transaction; "
                f"`fraiseql migrate {direction}` checks whether it took effect")
    return f"`fraiseql migrate {direction}` resumes at line {partial.next_line}"


def _record_note(row: StatusRow) -> str:
    """``; marked applied without running it`` and ``; checksum accepted by repair ...``."""
    notes = []
    if row.action == MARKED_APPLIED:
        notes.append("marked applied without running it")
    if row.repair is not None:
        repaired = row.repair.applied_at.astimezone()
        notes.append(f"checksum accepted by repair {repaired:%Y-%m-%d %H:%M:%S}")
    return "".join(f"; {note}" for note in notes)


# -- up, down, rehearsal ------------------------------------------------------------


def render_plan(title: str, plan: tuple[api.PlannedMigration, ...], *, show_sql: bool) -> str:
    """``Dry run: would apply 2 migrations:`` and their names (and SQL)."""
    lines = [f"{title} {plural(len(plan))}:"]
    for item in plan:
        lines.append(f"  {item.filename}")
        if show_sql:
            body = item.sql if item.sql is not None else "(Python revision: see the file)"
            lines += [f"    {line}" for line in body.splitlines()]
            lines.append("")
    return "\n".join(lines)


def rehearsal_summary(result: api.RehearsalResult) -> str:
    """``Rehearsal: 1 of 3 migrations would apply; 003_x.sql would fail; nothing was
    written.``"""
    if result.up_to_date:
        return "Already up to date; nothing to rehearse"
    outcomes = result.outcomes
    count = {kind: sum(1 for item in outcomes if item.result == kind)
             for kind in (WOULD_APPLY, WOULD_RECORD, NOT_REHEARSED)}
    parts = [f"{count[WOULD_APPLY]} of {plural(len(outcomes))} would apply"]
    if count[WOULD_RECORD]:
        parts.append(f"{count[WOULD_RECORD]} would be recorded as applied (marked by hand)")
    if result.failed is not None:
        parts.append(f"{result.failed.filename} would fail")
    if count[NOT_REHEARSED]:
        first = next(item for item in outcomes if item.result == NOT_REHEARSED)
        parts.append(f"{count[NOT_REHEARSED]} not rehearsed, from {first.filename} on "
                     "(run them with `fraiseql migrate up`)")
    return f"Rehearsal: {'; '.join(parts)}; nothing was written."


def human_size(size: int) -> str:
    """``12.3 MB``: decimal units, like ``ls -h --si``."""
    if size < 1000:
        return f"{size} B"
    value = size / 1000
    for unit in ("kB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
