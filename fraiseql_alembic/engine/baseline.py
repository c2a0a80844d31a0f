"""``squash``'s dump: what a database's migrations built (schema and the rows they
inserted) as one plain SQL text that our engine can run as a migration.

pg_dump writes it (plain format, ``--no-owner``, data as ``INSERT`` statements with
column names, so that no ``COPY ... FROM stdin`` block is needed), leaving out our
bookkeeping tables (``alembic_version``, ``fraiseql_migration*``).  :func:`normalise`
then takes out what differs between runs and machines or what a migration must not do:
pg_dump's comment blocks (object names, owners, versions), the ``\\restrict`` keys of
pg_dump 17.6+, and the session settings that would undo ours (timeouts, an empty
``search_path``: pg_dump qualifies every name, so the objects come out the same
under any ``search_path``).  The password travels as for ``up --backup``
(:mod:`.backup`): never on pg_dump's command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from ..errors import MigrationError
from ..secrets import redact
from .backup import private_service, split_password
from .locking import libpq_url

#: Tables pg_dump leaves out: where a database is, and our history, progress and lock
#: tables (``--exclude-table`` patterns: in every schema, their sequences too).
BOOKKEEPING = ("*.alembic_version", "*.fraiseql_migration*")

# A pg_dump comment block: "--", one or more "-- ..." lines, "--".  Only the blocks
# pg_dump writes (they name an object, the dump or its versions) are taken out.
_BLOCK_RE = re.compile(
    r"^--\n(?:-- (?:Name: |Data for Name: |TOC entry |Dependencies: |PostgreSQL database "
    r"dump|Dumped from |Dumped by |Started on |Completed on )[^\n]*\n)+--\n",
    re.MULTILINE,
)
# Lines pg_dump writes at the top that a migration must not run: its session timeouts
# (ours apply), the empty search_path (it would outlive the statements that need it),
# and the \restrict / \unrestrict meta-commands (psql only).
_DROPPED_LINE_RE = re.compile(
    r"^(?:SET (?:statement_timeout|lock_timeout|idle_in_transaction_session_timeout|"
    r"transaction_timeout) = 0;|SELECT pg_catalog\.set_config\('search_path', '', false\);|"
    r"\\(?:un)?restrict \S+|-- Dumped (?:from|by) [^\n]*)\n",
    re.MULTILINE,
)


class DumpError(MigrationError):
    """pg_dump is missing or failed."""


def normalise(text: str) -> str:
    """Pure: a plain pg_dump output without what differs between runs or machines and
    without what a migration must not run (see the module's docstring); blank lines
    collapsed, one newline at the end."""
    text = text.replace("\r\n", "\n")
    text = _BLOCK_RE.sub("", text)
    text = _DROPPED_LINE_RE.sub("", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def dump(url: str, *, schema_only: bool = False) -> str:
    """The normalised dump of the database at ``url``: schema and data (rows as
    ``INSERT`` statements), or the schema alone; bookkeeping tables left out."""
    pg_dump = find_pg_dump()
    connection = split_password(libpq_url(url))
    command = [pg_dump, "--format=plain", "--no-owner", "--encoding=UTF8"]
    command += ["--schema-only"] if schema_only else ["--column-inserts"]
    command += [f"--exclude-table={pattern}" for pattern in BOOKKEEPING]
    with private_service(connection) as (uri, secret_env):
        try:
            done = subprocess.run(
                [*command, "--dbname", uri], env={**os.environ, **secret_env},
                stdin=subprocess.DEVNULL, capture_output=True, check=False,
            )
        except OSError as err:
            raise DumpError(f"Cannot run {pg_dump}: {err.strerror or err}") from err
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace")
        lines = [" ".join(line.split()) for line in said.splitlines() if line.strip()]
        first = next((line for line in lines if "error" in line.lower()),
                     lines[0] if lines else "no message")
        first = re.sub(r"^pg_dump:\s*(error:\s*)?", "", first)
        secrets = (connection.password, *(value for _, value in connection.secrets))
        raise DumpError(f"pg_dump failed: {redact(first, *secrets)} (exit {done.returncode})")
    return normalise(done.stdout.decode("utf-8"))


def find_pg_dump() -> str:
    """pg_dump on PATH (``$FRAISEQL_PG_DUMP`` wins), else a DumpError saying what to do."""
    override = os.environ.get("FRAISEQL_PG_DUMP")
    found = override or shutil.which("pg_dump")
    if not found or not os.access(found, os.X_OK):
        where = (f"FRAISEQL_PG_DUMP={override} is not an executable" if override
                 else "pg_dump is not on PATH")
        raise DumpError(f"Cannot dump the shadow database: {where}. Install PostgreSQL's "
                        "client tools (the server's major version or newer)")
    return found
