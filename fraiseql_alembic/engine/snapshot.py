"""The schema snapshot's source: ``pg_dump --schema-only --no-owner`` of a database.

pg_dump is found and called as for ``up --backup`` (:mod:`.backup`): ``$FRAISEQL_PG_DUMP``
or the one on PATH, refused when older than the server, the password in ``PGPASSWORD``
and never on its command line.  Our bookkeeping tables (:data:`.catalog.BOOKKEEPING`,
in any schema, and the history table's sequence) are left out.  Grants stay: they are
schema the migrations make (``GRANT``), and pg_dump writes only the ones that are not an
object's defaults.  The text is normalised by :mod:`fraiseql_alembic.project.snapshot`.
"""

from __future__ import annotations

import os
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
from .cancel import MigrationInterrupted
from .catalog import BOOKKEEPING
from .history import TABLE as HISTORY_TABLE
from .locking import libpq_url

if TYPE_CHECKING:
    from .cancel import CancelToken

#: What pg_dump leaves out, in every schema: our bookkeeping tables and the sequence of
#: the history table's ``id``.
EXCLUDED = (*sorted(BOOKKEEPING), f"{HISTORY_TABLE}_id_seq")


class SnapshotError(MigrationError):
    """The schema could not be dumped (pg_dump missing, too old or failing) or written."""


def dump_schema_text(
    url: str,
    *,
    instead: str,
    lock_timeout: str | None = None,
    cancel: CancelToken | None = None,
) -> str:
    """pg_dump's plain ``--schema-only --no-owner`` text of the database at ``url``.

    ``instead`` ends each error: how to go on without the snapshot (``or run without
    --dump-schema``).  ``lock_timeout`` becomes ``--lock-wait-timeout``.
    """
    use = PgDumpUse(SnapshotError, "Cannot dump the schema", instead)
    pg_dump = find_pg_dump(use)
    check_versions(pg_dump, server_version_num(url), use)
    connection = split_password(libpq_url(url))
    with tempfile.TemporaryDirectory(prefix="fraiseql-schema-") as folder:
        output = Path(folder) / "schema.sql"
        with private_service(connection, use) as (uri, secret_env):
            command = [pg_dump, "--schema-only", "--no-owner", "--encoding=UTF8",
                       "--file", str(output)]
            for table in EXCLUDED:
                command.append(f"--exclude-table=*.{table}")
            if lock_timeout and lock_timeout != "0":
                command.append(f"--lock-wait-timeout={lock_timeout}")
            command += ["--dbname", uri]
            returncode, stderr = run_pg_dump(command, {**os.environ, **secret_env}, cancel)
        if returncode != 0:
            if cancel is not None and cancel.cancelled:
                raise MigrationInterrupted(f"Stopped by {cancel.reason} while the schema "
                                           "was dumped")
            reason = first_error(stderr, lock_timeout, connection.password,
                                 *(value for _, value in connection.secrets))
            raise SnapshotError(
                f"pg_dump could not dump the schema of {mask_url(url)}: {reason} (pg_dump "
                f"exit {returncode}); fix the cause, {instead}"
            )
        return output.read_text(encoding="utf-8")
