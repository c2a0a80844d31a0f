"""``squash``'s dump: what a database's migrations built (schema and the rows they
inserted) as one plain SQL text that our engine can run as a migration.

pg_dump writes it (plain format, ``--no-owner``, data as ``INSERT`` statements with
column names, so that no ``COPY ... FROM stdin`` block is needed), leaving out our
bookkeeping tables as the schema snapshot does (:data:`.snapshot.EXCLUDED`).  :func:`normalise`
then takes out what differs between runs and machines or what a migration must not do:
pg_dump's comment blocks (object names, owners, versions), the ``\\restrict`` keys of
pg_dump 17.6+, and the session settings that would undo ours (timeouts, an empty
``search_path``: pg_dump qualifies every name, so the objects come out the same
under any ``search_path``).  pg_dump is found, checked and called as for ``up
--backup`` (:mod:`.backup`): the password never on its command line.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MigrationError
from ..secrets import mask_url
from .backup import (
    PgDumpUse,
    check_versions,
    find_pg_dump,
    first_error,
    private_service,
    run_pg_dump,
    server_version_num,
    split_password,
)
from .locking import libpq_url
from .snapshot import EXCLUDED

if TYPE_CHECKING:
    from .cancel import CancelToken

# A pg_dump comment block: "--", one or more "-- ..." lines, "--".  Only the blocks
# pg_dump writes (they name an object, the dump or its versions) are taken out.
_BLOCK_RE = re.compile(
    r"^--\n(?:-- (?:Name: |Data for Name: |TOC entry |Dependencies: |PostgreSQL database "
    r"dump|Dumped from |Dumped by |Started on |Completed on )[^\n]*\n)+--\n",
    re.MULTILINE,
)
# Lines pg_dump writes at the top that a migration must not run: its session timeouts
# (ours apply), ``standard_conforming_strings = on`` (PostgreSQL's default since 9.1, which
# the engine reads files with: a statement that sets it makes the file run statement by
# statement, 1.6x slower for 200 tables), the empty search_path (it would outlive the
# statements that need it),
# and the \restrict / \unrestrict meta-commands (psql only).
_DROPPED_LINE_RE = re.compile(
    r"^(?:SET (?:statement_timeout|lock_timeout|idle_in_transaction_session_timeout|"
    r"transaction_timeout) = 0;|SET standard_conforming_strings = on;|"
    r"SELECT pg_catalog\.set_config\('search_path', '', false\);|"
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


#: ``squash``'s pg_dump messages (:class:`.backup.PgDumpUse`).
SQUASH_USE = PgDumpUse(DumpError, "Cannot dump the shadow database",
                       "or give a shadow database that pg_dump can dump "
                       "(--shadow-database-url)", " Nothing was written")


def dump(url: str, *, schema_only: bool = False, cancel: CancelToken | None = None) -> str:
    """The normalised dump of the database at ``url``: schema and data (rows as
    ``INSERT`` statements), or the schema alone; bookkeeping tables left out.  pg_dump
    is found, checked against the server's version and called as for ``up --backup``
    (``cancel`` terminates it: MigrationInterrupted)."""
    pg_dump = find_pg_dump(SQUASH_USE)
    check_versions(pg_dump, server_version_num(url), SQUASH_USE)
    connection = split_password(libpq_url(url))
    with tempfile.TemporaryDirectory(prefix="fraiseql-baseline-") as folder:
        output = Path(folder) / "dump.sql"
        command = [pg_dump, "--format=plain", "--no-owner", "--encoding=UTF8",
                   "--file", str(output)]
        command += ["--schema-only"] if schema_only else ["--column-inserts"]
        command += [f"--exclude-table=*.{table}" for table in EXCLUDED]
        with private_service(connection, SQUASH_USE) as (uri, secret_env):
            returncode, stderr = run_pg_dump([*command, "--dbname", uri],
                                             {**os.environ, **secret_env}, cancel)
        if returncode != 0:
            if cancel is not None:  # a cancel terminated it
                cancel.check("while pg_dump dumped the shadow database; nothing was written")
            reason = first_error(stderr, None, connection.password,
                                 *(value for _, value in connection.secrets))
            raise DumpError(f"pg_dump could not dump the shadow database {mask_url(url)}: "
                            f"{reason} (pg_dump exit {returncode}). Nothing was written")
        return normalise(output.read_text(encoding="utf-8"))
