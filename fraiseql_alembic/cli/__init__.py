"""``fraiseql migrate``: parse, call :mod:`fraiseql_alembic.api`, render.

- :mod:`.app`: the command group, one-line errors, common options, the lazy verb table;
- :mod:`.verbs`: the verbs (parse, call one API function, hand the result on);
- :mod:`.render`: status, plans, rehearsal summary, GitHub annotations (strings);
- :mod:`.reporting`: what ``up``/``down`` print as they run, text or JSON lines;
- :mod:`.signals`: the worker thread and SIGINT/SIGTERM handling.
"""
