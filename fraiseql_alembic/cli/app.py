"""The ``fraiseql`` command group: one-line errors, the options every verb takes, and the
table of ``fraiseql migrate`` verbs, loaded only when one is asked for.

This module imports click and nothing heavy: ``fraiseql --version`` and
``fraiseql --help`` never load a verb (nor, through it, psycopg2, Alembic or pglast).
Exit codes: 0 success, 1 a failure (one line on stderr), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

import click

from .. import __version__
from ..errors import ConnectError, MigrationError, file_access_error
from ..secrets import password_of, redact
from .streams import discard_stdout

if TYPE_CHECKING:
    from ..settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


class CliState:
    """What the group-level options hold for the verbs."""

    def __init__(self) -> None:
        self.verbose = False
        #: The run's settings, once a verb resolved them: a failure to connect names
        #: where their URL was set (:meth:`Settings.naming_source`).
        self.settings: Settings | None = None


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(CliState).verbose = True
    return value


verbose_option = click.option(
    "--verbose",
    "-v",
    is_flag=True,
    expose_value=False,
    callback=_set_verbose,
    help="Show tracebacks and more detail on errors.",
)


def common_options(func: F) -> F:
    """``--path`` and ``--database-url``, accepted by every verb."""
    func = click.option(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL (default: $DATABASE_URL, then the project config).",
    )(func)
    func = click.option(
        "--path",
        "path",
        type=click.Path(path_type=Path),
        default=None,
        help="Migrations folder (default: ./migrations).",
    )(func)
    return verbose_option(func)


def env_option(func: F) -> F:
    """``--env NAME``: a named environment of the project's configuration (the verbs
    that touch a database)."""
    return click.option(
        "--env", "env", metavar="NAME", default=None,
        help="Use the environment NAME of [tool.fraiseql.environments] (its database, "
        "timeouts and policy; default: $FRAISEQL_ENV). See docs/environments.md.",
    )(func)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """One line and a non-zero exit for every failure; a traceback only with --verbose."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx = click.get_current_context()
        state = ctx.ensure_object(CliState)
        database_url = kwargs.get("database_url")
        secret = password_of(database_url if isinstance(database_url, str) else None)
        try:
            return func(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except BrokenPipeError:  # `fraiseql migrate status | head`: the reader has enough
            discard_stdout()
            ctx.exit(141)  # what a process killed by SIGPIPE reports (128 + 13)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except (MigrationError, OSError) as err:
            # An OSError is one that no verb put into words (errors.py does).
            error = file_access_error(err) if isinstance(err, OSError) else err
            if isinstance(error, ConnectError) and state.settings is not None:
                error = state.settings.naming_source(error)
            if state.verbose:
                import traceback  # lazy: ~3 ms that only --verbose on a failure needs

                click.echo(redact(traceback.format_exc(), secret), err=True)
            click.echo(f"Error: {redact(error.message, secret)}", err=True)
            ctx.exit(error.exit_code)
        except Exception as err:  # a bug or an unforeseen failure: still one line
            if state.verbose:
                import traceback  # lazy: ~3 ms that only --verbose on a failure needs

                click.echo(redact(traceback.format_exc(), secret), err=True)
                hint = ""
            else:
                hint = " (run again with --verbose for the traceback)"
            text = str(err).strip().splitlines()
            detail = redact(text[0] if text else "", secret)
            click.echo(f"Error: {type(err).__name__}: {detail}{hint}", err=True)
            ctx.exit(1)

    return wrapper


class _OneLineErrors(click.Group):
    """Bad usage is one line too (`Error: ... (see `fraiseql migrate up --help`)`, exit 2),
    instead of Click's usage block."""

    def main(
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        complete_var: str | None = None, standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as err:
            hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            click.echo(f"Error: {err.format_message()}{hint}", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


class Verb(NamedTuple):
    """Where a verb lives, and its summary for the group's help (pip's ``CommandInfo``)."""

    module: str
    attribute: str
    summary: str  # the first sentence of its help (tests/unit/test_cli_app.py checks it)


_VERBS_MODULE = "fraiseql_alembic.cli.verbs"

#: ``fraiseql migrate`` verbs, imported when one runs or shows its own help, so that
#: ``--version`` and the groups' help load none of them (nor the API under them).
VERBS: dict[str, Verb] = {
    "init": Verb(_VERBS_MODULE, "init",
                 "Create the migrations folder and its README.md (safe to run twice)."),
    "create": Verb(_VERBS_MODULE, "create",
                   "Write migrations/NNN_<name>.sql with the next number (NAME in snake_case)."),
    "up": Verb(_VERBS_MODULE, "up", "Apply pending migrations in order."),
    "down": Verb(_VERBS_MODULE, "down", "Roll back the most recent migration(s), newest first."),
    "mark-applied": Verb(_VERBS_MODULE, "mark_applied",
                         "Record the next pending migration as applied without running it "
                         "(it was applied by hand)."),
    "repair": Verb(_VERBS_MODULE, "repair",
                   "Accept the current checksum of applied files that changed (all MODIFIED "
                   "ones, or VERSION); with --missing, record that an applied file was "
                   "deleted on purpose."),
    "status": Verb(_VERBS_MODULE, "status",
                   "Show every migration: applied (when), pending, modified or missing."),
    # lint needs no engine, Alembic or fleet code: its module loads none of them
    "lint": Verb("fraiseql_alembic.cli.lintverb", "lint",
                 "Find risky operations in migrations (default: every file in the folder)."),
    "check": Verb(_VERBS_MODULE, "check",
                  "Check the migrations folder before merging; no database needed."),
    "drift": Verb("fraiseql_alembic.cli.drift", "drift",
                  "Compare the live schema with what its applied migrations build."),
    "squash": Verb("fraiseql_alembic.cli.squash", "squash",
                   "Replace migrations 001..N by one baseline file built from a shadow "
                   "database."),
}


class _LazyVerbs(click.Group):
    """A group whose commands live in :data:`VERBS` and load on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        verb = VERBS.get(cmd_name)
        if verb is None:
            return None
        command = getattr(importlib.import_module(verb.module), verb.attribute)
        assert isinstance(command, click.Command), verb
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The verbs and their summaries, as Click lays them out, without loading one."""
        limit = formatter.width - 6 - max(len(name) for name in VERBS)
        rows = [(name, click.Command(name, help=VERBS[name].summary).get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fraiseql")
def main() -> None:
    """FraiseQL command line."""


@main.group(cls=_LazyVerbs)
@verbose_option
def migrate() -> None:
    """Numbered SQL migrations for PostgreSQL (Alembic underneath).

    Write migrations as migrations/NNN_name.sql; apply them with `up`, see where
    the database is with `status`, undo with `down`.  Docs: docs/ in the project.
    """
