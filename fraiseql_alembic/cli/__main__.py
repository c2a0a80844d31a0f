"""``python -m fraiseql_alembic.cli``: the ``fraiseql`` command without the console
script's early SIGTERM handler (for ``-X importtime`` and ``cProfile``)."""

from .app import main

main()
