"""The installed `fraiseql` command sends spans to the tracer provider a program set before
it ran, as `opentelemetry-instrument` does: here a sitecustomize on PYTHONPATH sets the
SDK's provider with an in-memory exporter and writes the finished spans to a JSON file
as the process exits (docs/observability.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ProcessRunner, Project
from scenarios import UP_DOWN, on_path

SITECUSTOMIZE = """
import atexit, json, os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

def dump():
    with open(os.environ["TEST_SPANS_FILE"], "w", encoding="utf-8") as out:
        json.dump([json.loads(span.to_json()) for span in exporter.get_finished_spans()], out)

atexit.register(dump)
"""


class Traced:
    """Runs `fraiseql ARGS` with the provider set; returns the process and its spans."""

    def __init__(self, run_process: ProcessRunner, tmp_path: Path) -> None:
        self.run_process = run_process
        self.site = tmp_path / "site"
        self.site.mkdir()
        (self.site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        self.spans_file = tmp_path / "spans.json"

    def __call__(self, *argv: str) -> tuple[int, str, dict[str, dict[str, Any]]]:
        self.spans_file.unlink(missing_ok=True)
        result = self.run_process("fraiseql", *argv, env={
            "PYTHONPATH": str(self.site), "TEST_SPANS_FILE": str(self.spans_file)})
        spans = json.loads(self.spans_file.read_text(encoding="utf-8"))
        named = {span["name"]: span for span in spans}
        assert len(named) == len(spans), [span["name"] for span in spans]
        return result.returncode, result.stdout + result.stderr, named


@pytest.fixture
def traced(run_process: ProcessRunner, tmp_path: Path) -> Traced:
    return Traced(run_process, tmp_path)


def parent_of(span: dict[str, Any], spans: dict[str, dict[str, Any]]) -> str | None:
    parents = [name for name, other in spans.items()
               if other["context"]["span_id"] == span["parent_id"]]
    return parents[0] if parents else None


@pytest.mark.parametrize("path", ["direct", "alembic"])
def test_up_and_down_as_typed_send_spans(project: Project, traced: Traced, path: str) -> None:
    on_path(project, path, "001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    code, output, spans = traced("migrate", "up")
    assert code == 0, output
    run = spans.pop("fraiseql migrate up")
    assert run["parent_id"] is None
    assert run["status"]["status_code"] == "OK"
    assert run["attributes"]["db.system.name"] == "postgresql"
    assert run["attributes"]["fraiseql.migrations.run"] == len(spans)
    assert set(spans) == {"up 001_a.sql", "up 002_b.sql"} | (
        {"up 000_py.py"} if path == "alembic" else set())
    for span in spans.values():
        assert span["parent_id"] == run["context"]["span_id"]
        assert span["context"]["trace_id"] == run["context"]["trace_id"]
        assert span["status"]["status_code"] == "OK"
    assert spans["up 002_b.sql"]["attributes"]["fraiseql.migration.version"] == "002"

    code, output, spans = traced("migrate", "down", "--force")
    assert code == 0, output
    assert set(spans) == {"fraiseql migrate down", "down 002_b.sql"}
    assert parent_of(spans["down 002_b.sql"], spans) == "fraiseql migrate down"


@pytest.mark.parametrize("path", ["direct", "alembic"])
def test_a_failing_migration_as_typed(project: Project, traced: Traced, path: str) -> None:
    on_path(project, path, "001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_c.sql", "-- migrate:up\nSELECT 1;\nSELECT 1/0;\n")
    code, output, spans = traced("migrate", "up")
    assert code == 1
    assert "002_c.sql failed at line 3" in output
    failed = spans["up 002_c.sql"]
    assert failed["status"]["status_code"] == "ERROR"
    assert failed["attributes"]["db.response.status_code"] == "22012"
    assert failed["attributes"]["error.type"] == "22012"
    assert failed["attributes"]["code.line.number"] == 3
    assert [event["name"] for event in failed["events"]] == ["exception"]
    assert parent_of(failed, spans) == "fraiseql migrate up"
    assert spans["fraiseql migrate up"]["status"]["status_code"] == "ERROR"
    assert spans["up 001_a.sql"]["status"]["status_code"] == "OK"


def test_a_refused_run_is_one_failed_span(project: Project, traced: Traced) -> None:
    """A failure before any migration (a changed applied file) fails the run's span."""
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    assert project.cli("up").exit_code == 0  # set-up, in-process
    project.write("001_a.sql", UP_DOWN.format(t="changed"))
    code, output, spans = traced("migrate", "up")
    assert code != 0, output
    (run,) = spans.values()
    assert run["name"] == "fraiseql migrate up"
    assert run["status"]["status_code"] == "ERROR"
    assert run["attributes"]["error.type"] == "ChecksumMismatchError"
    assert run["attributes"]["fraiseql.migrations.run"] == 0
