"""Pure: what our API hands to env.py travels as one typed RunContext (that env.py never
imports the API above it is checked with every other layer rule in test_layers.py)."""

from __future__ import annotations

from pathlib import Path

from fraiseql_alembic import api
from fraiseql_alembic.alembic_bridge import environment
from fraiseql_alembic.alembic_bridge.plugin import RUN_CONTEXT_KEY, RunContext, run_context
from fraiseql_alembic.settings import RunOptions, Settings


def test_a_plain_alembic_run_gets_the_defaults() -> None:
    from alembic.config import Config

    for config in (None, Config()):
        context = run_context(config)
        assert context == RunContext()
        assert context.schema == "public"
        assert context.url is None and context.run_options is None
        assert not context.lock_held and not context.history_ready


def test_something_else_under_our_key_is_not_taken_for_a_context() -> None:
    from alembic.config import Config

    config = Config()
    config.attributes[RUN_CONTEXT_KEY] = {"reporter": object()}
    assert run_context(config) == RunContext()


def test_our_api_hands_its_settings_over_in_one_context(tmp_path: Path) -> None:
    options = RunOptions(lock_wait=7)
    settings = Settings(tmp_path, "postgresql://u@h/db", "test", history_schema="ops",
                        run=options)
    config = api.alembic_config(settings, lock_held=True)
    assert [key for key in config.attributes if key != "connection"] == [RUN_CONTEXT_KEY]
    context = run_context(config)
    assert context.url == "postgresql://u@h/db"
    assert context.schema == "ops"
    assert context.run_options is options
    assert context.lock_held
    assert context.reporter is None and context.cancel is None
    assert context.script_directory is None
    assert environment.run_options(config) is options
    assert environment.configured_url(config) == "postgresql://u@h/db"
