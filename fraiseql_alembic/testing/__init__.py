"""What a project's own tests use: template databases and the up/down/up check.

The pytest plugin (:mod:`fraiseql_alembic.pytest_plugin`, loaded through the ``pytest11``
entry point) gives these as fixtures; they work without pytest as well.
"""

from __future__ import annotations

from .databases import TemplateDatabases as TemplateDatabases
from .databases import dbapi_connection as dbapi_connection
from .databases import folder_digest as folder_digest
from .databases import sqlalchemy_engine as sqlalchemy_engine
from .databases import template_name as template_name
