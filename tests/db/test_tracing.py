"""OpenTelemetry spans of `up` and `down` on a real PostgreSQL, in-process through the API
and the CLI, on the direct path and the Alembic path (a folder holding a `.py` revision):
one span per run, one child span per migration, the error of a failing one
(docs/observability.md).  The SDK's InMemorySpanExporter receives them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import Project, Tenants
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from scenarios import UP_DOWN, blocker, execute, hold_lock, on_path

from fraiseql_alembic import api, settings
from fraiseql_alembic.engine import tracing
from fraiseql_alembic.engine.events import NoEvents
from fraiseql_alembic.errors import MigrationError

FAILING = "-- migrate:up\nCREATE TABLE c (id int);\n\nINSERT INTO missing VALUES (1);\n"


def _reset_global_provider() -> None:
    """Forget the global tracer provider, as OpenTelemetry's own test utilities do
    (``set_tracer_provider`` takes one provider per process)."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # noqa: SLF001 (no public way to unset it)
    trace._TRACER_PROVIDER = None  # noqa: SLF001


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """A real tracer provider, set globally for the test, exporting to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global_provider()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        _reset_global_provider()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    finished = exporter.get_finished_spans()
    named = {span.name: span for span in finished}
    assert len(named) == len(finished), [span.name for span in finished]
    return named


def children(run: ReadableSpan, exporter: InMemorySpanExporter) -> list[str]:
    """Names of ``run``'s child spans, in the order they started."""
    assert run.context is not None
    found = [span for span in exporter.get_finished_spans()
             if span.parent is not None and span.parent.span_id == run.context.span_id]
    return [span.name for span in sorted(found, key=lambda span: span.start_time or 0)]


def resolved(project: Project) -> settings.Settings:
    return settings.resolve(project.migrations, project.database_url, environ={})


@pytest.mark.parametrize("path", ["direct", "alembic"])
def test_up_is_a_span_with_a_child_per_migration(
        project: Project, spans: InMemorySpanExporter, path: str,
        caplog: pytest.LogCaptureFixture) -> None:
    on_path(project, path, "001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    api.upgrade(resolved(project))
    assert not caplog.records  # e.g. OpenTelemetry's "Failed to detach context"
    assert trace.get_current_span() is trace.INVALID_SPAN  # every context detached
    named = by_name(spans)
    run = named["fraiseql migrate up"]
    expected = ["up 001_a.sql", "up 002_b.sql"]
    assert children(run, spans) == (["up 000_py.py", *expected] if path == "alembic"
                                    else expected)
    url = urlsplit(project.database_url)
    assert run.parent is None and run.kind == SpanKind.INTERNAL
    assert run.status.status_code == StatusCode.OK
    assert run.instrumentation_scope is not None
    assert run.instrumentation_scope.name == "fraiseql_alembic"
    attributes = dict(run.attributes or {})
    assert attributes["db.system.name"] == attributes["db.system"] == "postgresql"
    assert attributes["db.namespace"] == url.path.lstrip("/")
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == url.port
    assert url.password and url.password not in str(attributes["fraiseql.database.url"])
    assert attributes["fraiseql.command"] == "up"
    assert attributes["fraiseql.migrations.planned"] == len(children(run, spans))
    assert attributes["fraiseql.migrations.run"] == len(children(run, spans))
    step = named["up 002_b.sql"]
    assert step.status.status_code == StatusCode.OK
    assert dict(step.attributes or {}) == {
        **{key: value for key, value in attributes.items() if key.startswith(
            ("db.", "server.", "fraiseql.database"))},
        "fraiseql.migration.file": "002_b.sql",
        "fraiseql.migration.version": "002",
        "fraiseql.migration.direction": "up",
        "code.file.path": str(project.migrations.resolve() / "002_b.sql"),
        "fraiseql.migration.rows_affected": 0,
    }
    assert run.start_time is not None and step.start_time is not None
    assert run.end_time is not None and step.end_time is not None
    assert run.start_time <= step.start_time <= step.end_time <= run.end_time


@pytest.mark.parametrize("path", ["direct", "alembic"])
def test_a_failing_migration_ends_its_span_and_the_runs_with_the_error(
        project: Project, spans: InMemorySpanExporter, path: str) -> None:
    on_path(project, path, "001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_c.sql", FAILING)
    with pytest.raises(MigrationError, match=r"002_c\.sql failed at line 4"):
        api.upgrade(resolved(project))
    assert trace.get_current_span() is trace.INVALID_SPAN  # detached on the way out
    named = by_name(spans)
    assert named["up 001_a.sql"].status.status_code == StatusCode.OK
    failed = named["up 002_c.sql"]
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description is not None
    assert 'relation "missing" does not exist' in failed.status.description
    attributes = dict(failed.attributes or {})
    assert attributes["error.type"] == attributes["db.response.status_code"] == "42P01"
    assert attributes["code.line.number"] == 4
    assert attributes["code.column.number"] == 13
    assert attributes["code.file.path"].endswith("/002_c.sql")  # type: ignore[union-attr]
    events = [event for event in failed.events if event.name == "exception"]
    assert len(events) == 1
    assert dict(events[0].attributes or {})["exception.type"].endswith(  # type: ignore[union-attr]
        "MigrationExecutionError")
    run = named["fraiseql migrate up"]
    assert run.status.status_code == StatusCode.ERROR
    assert dict(run.attributes or {})["db.response.status_code"] == "42P01"
    assert dict(run.attributes or {})["fraiseql.migrations.run"] == (
        2 if path == "alembic" else 1)
    assert "c" not in project.tables()  # the failed migration was rolled back


@pytest.mark.parametrize("path", ["direct", "alembic"])
def test_down_through_the_cli_is_traced(
        project: Project, spans: InMemorySpanExporter, path: str) -> None:
    on_path(project, path, "001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    assert project.cli("up").exit_code == 0
    spans.clear()
    result = project.cli("down", "--steps", "2", "--force")
    assert result.exit_code == 0, result.output
    named = by_name(spans)
    run = named["fraiseql migrate down"]
    assert children(run, spans) == ["down 002_b.sql", "down 001_a.sql"]
    assert dict(named["down 001_a.sql"].attributes or {})[
        "fraiseql.migration.direction"] == "down"
    assert run.status.status_code == StatusCode.OK


def test_nothing_pending_is_one_span(project: Project, spans: InMemorySpanExporter) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    api.upgrade(resolved(project))
    spans.clear()
    api.upgrade(resolved(project))
    (run,) = spans.get_finished_spans()
    assert run.name == "fraiseql migrate up"
    assert dict(run.attributes or {})["fraiseql.migrations.run"] == 0


def test_a_span_of_the_caller_is_the_runs_parent(
        project: Project, spans: InMemorySpanExporter) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    with trace.get_tracer("app").start_as_current_span("deploy") as deploy:
        api.upgrade(resolved(project))
    run = by_name(spans)["fraiseql migrate up"]
    assert run.parent is not None
    assert run.parent.span_id == deploy.get_span_context().span_id


def test_without_a_provider_the_api_tracer_records_nothing(project: Project) -> None:
    """OpenTelemetry loaded but not configured: the API's no-op tracer."""
    _reset_global_provider()
    assert tracing.tracer() is not None  # the module is loaded: asked, it answers no-op
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    assert api.upgrade(resolved(project)).applied == ("001",)


def test_not_loaded_means_not_traced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delitem(__import__("sys").modules, "opentelemetry.trace")
    monkeypatch.delenv(tracing.PROVIDER_VARIABLE, raising=False)
    assert tracing.tracer() is None
    with tracing.run_span(settings.Settings(tmp_path, None, None), "up") as observer:
        assert observer is None


#: 5 inserted, 3 updated, 1 deleted; the SELECT's 5 rows changed nothing.
ROWS = ("-- migrate:up{marker}\nCREATE TABLE r (id int);\n"
        "INSERT INTO r SELECT generate_series(1, 5);\n"
        "UPDATE r SET id = id + 10 WHERE id > 2;\nSELECT * FROM r;\nDELETE FROM r WHERE id = 1;\n")


@pytest.mark.parametrize("path", ["direct", "alembic"])
@pytest.mark.parametrize(("marker", "rows"), [
    ("", 9),  # one query
    (" lock_timeout:2s", 9),  # statement by statement
    (" transaction:false", None),  # in segments, outside a transaction: not counted
])
def test_rows_affected(project: Project, spans: InMemorySpanExporter, path: str,
                       marker: str, rows: int | None) -> None:
    on_path(project, path, "001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_r.sql", ROWS.format(marker=marker))
    api.upgrade(resolved(project))
    named = by_name(spans)
    assert dict(named["up 002_r.sql"].attributes or {}).get(
        "fraiseql.migration.rows_affected") == rows
    assert dict(named["up 001_a.sql"].attributes or {})["fraiseql.migration.rows_affected"] == 0


def test_a_fleet_is_a_span_over_each_targets_run(
        project: Project, spans: InMemorySpanExporter, tenants: Tenants) -> None:
    """`up --targets`: the targets run on worker threads, each run span a child of the
    fleet's span (the thread is given the caller's context), named by its target."""
    urls = tenants(3)
    (project.root / "targets.txt").write_text("\n".join(urls) + "\n", encoding="utf-8")
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    execute(urls[2], "CREATE TABLE a (id int)")  # its 001_a.sql fails
    result = project.cli("up", "--targets", "targets.txt", "--jobs", "2",
                         "--continue-on-error")
    assert result.exit_code == 1, result.output
    finished = spans.get_finished_spans()
    (fleet,) = [span for span in finished if span.name == "fraiseql fleet"]
    assert fleet.parent is None and fleet.context is not None
    assert fleet.status.status_code == StatusCode.ERROR
    assert dict(fleet.attributes or {}) == {
        "fraiseql.fleet.targets": 3, "fraiseql.fleet.jobs": 2,
        "fraiseql.migrations.folder": str(project.migrations),
        "fraiseql.fleet.succeeded": 2, "fraiseql.fleet.failed": 1, "fraiseql.fleet.not_run": 0,
    }
    runs = [span for span in finished if span.name == "fraiseql migrate up"]
    assert len(runs) == 3
    assert {span.parent.span_id for span in runs if span.parent} == {fleet.context.span_id}
    by_target = {dict(span.attributes or {})["fraiseql.target"]: span for span in runs}
    assert len(by_target) == 3
    for url in urls:
        (run,) = [span for span in runs if dict(span.attributes or {})[
            "db.namespace"] == urlsplit(url).path.lstrip("/")]
        assert children(run, spans) == ["up 001_a.sql"]
        assert run.status.status_code == (StatusCode.ERROR if url == urls[2] else StatusCode.OK)


def test_waiting_for_the_lock_is_an_event_and_giving_up_fails_the_run(
        project: Project, spans: InMemorySpanExporter) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    holder = hold_lock(project)
    try:
        quick = resolved(project)
        quick = dataclasses.replace(quick, run=dataclasses.replace(quick.run, lock_wait=0.5))
        with pytest.raises(MigrationError, match="someone else's deploy"):
            api.upgrade(quick)
    finally:
        holder.close()
    (run,) = spans.get_finished_spans()
    assert run.status.status_code == StatusCode.ERROR
    assert dict(run.attributes or {})["error.type"] == "LockTimeoutError"
    waits = [event for event in run.events if event.name == "fraiseql.lock.wait"]
    assert len(waits) == 1
    assert "someone else's deploy" in str(dict(waits[0].attributes or {})["message"])


def test_rows_of_a_migration_run_again_after_the_session_check(
        project: Project, spans: InMemorySpanExporter) -> None:
    """A prepared statement left by 001 makes 002's query fail its session check; the
    session is cleaned and 002's query sent again, and its rows still counted."""
    project.write("001_p.sql", "-- migrate:up\nPREPARE mine AS SELECT 1;\n")
    project.write("002_r.sql", "-- migrate:up\nCREATE TABLE r (id int);\n"
                               "INSERT INTO r SELECT generate_series(1, 4);\n")
    api.upgrade(resolved(project))
    step = by_name(spans)["up 002_r.sql"]
    assert dict(step.attributes or {}).get("fraiseql.migration.rows_affected") == 4


def test_each_attempt_at_a_lock_timeout_is_a_span(
        project: Project, spans: InMemorySpanExporter) -> None:
    """--lock-retries 1: the first attempt's span ends ERROR when it is retried, the
    second's when the run gives up; both say 55P03."""
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    api.upgrade(resolved(project))
    project.write("002_b.sql", "-- migrate:up\nALTER TABLE a ADD COLUMN b int;\n")
    spans.clear()
    quick = resolved(project)
    quick = dataclasses.replace(quick, run=dataclasses.replace(
        quick.run, lock_timeout="100ms", lock_retries=1))
    with blocker(project, "BEGIN; LOCK TABLE a IN ACCESS EXCLUSIVE MODE"), \
            pytest.raises(MigrationError, match="Gave up after 2 attempts"):
        api.upgrade(quick)
    finished = spans.get_finished_spans()
    attempts = [span for span in finished if span.name == "up 002_b.sql"]
    assert len(attempts) == 2
    for span in attempts:
        assert span.status.status_code == StatusCode.ERROR
        assert dict(span.attributes or {})["db.response.status_code"] == "55P03"
        assert dict(span.attributes or {})["code.line.number"] == 2
    (run,) = [span for span in finished if span.name == "fraiseql migrate up"]
    assert run.status.status_code == StatusCode.ERROR
    assert dict(run.attributes or {})["error.type"] == "55P03"


@pytest.mark.parametrize("path", ["direct", "alembic"])
def test_a_reporter_with_rows_hears_them_without_tracing(
        project: Project, path: str) -> None:
    """The rows a migration changed reach the API's reporter (its optional ``rows``),
    traced or not."""

    class Rows(NoEvents):
        def __init__(self) -> None:
            self.heard: list[tuple[str, int]] = []

        def rows(self, filename: str, count: int) -> None:
            self.heard.append((filename, count))

    on_path(project, path, "001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_r.sql", ROWS.format(marker=""))
    reporter = Rows()
    api.upgrade(resolved(project), reporter=reporter)
    assert reporter.heard == [("001_a.sql", 0), ("002_r.sql", 9)]
