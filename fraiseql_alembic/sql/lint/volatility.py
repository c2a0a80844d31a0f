"""Whether a column default is volatile, by PostgreSQL's rules (rule FQL003).

``ALTER TABLE ... ADD COLUMN ... DEFAULT expr`` is instant (PostgreSQL 11+) unless
``expr`` contains a volatile function (``contain_volatile_functions``): then every row
gets its own value and the table is rewritten.  A pure linter cannot read pg_proc, so
the volatility of the built-in functions comes from :mod:`.builtin_volatility`
(generated from PostgreSQL 15's pg_proc); a function the migrations create is as its
``CREATE FUNCTION`` says (VOLATILE unless it says IMMUTABLE or STABLE); any other
function (an extension's, one created outside these migrations) cannot be proved
immutable or stable, so it counts as volatile.
"""

from __future__ import annotations

from .nodes import ast
from .state import Catalog, FileState, text_of, walk

_LETTER = {"immutable": "i", "stable": "s", "volatile": "v"}


def remember_function(node: ast.CreateFunctionStmt, state: FileState, catalog: Catalog) -> None:
    """``CREATE [OR REPLACE] FUNCTION``: its volatility, VOLATILE unless it says otherwise."""
    if node.is_procedure or not node.funcname:
        return
    volatility = "v"
    for option in node.options or ():
        if isinstance(option, ast.DefElem) and option.defname == "volatility":
            volatility = _LETTER.get(text_of(getattr(option.arg, "sval", None)).lower(), "v")
    catalog.functions[state.qualified([part.sval for part in node.funcname])] = volatility


def volatile_call(expression: ast.Node | None, state: FileState,
                  catalog: Catalog) -> tuple[str, bool] | None:
    """The first function ``expression`` calls that is volatile or not known to be
    immutable or stable, with whether it is known to be volatile; None when there is none."""
    if expression is None:
        return None
    for call in walk(expression):
        if not isinstance(call, ast.FuncCall) or not call.funcname:
            continue
        parts = [text_of(getattr(part, "sval", None)) for part in call.funcname]
        schema, name = (parts[-2] if len(parts) > 1 else None), parts[-1]
        known = _volatility(schema, name, state, catalog)
        if known is None or "v" in known:
            shown = f"{schema}.{name}" if schema else name
            return shown, known is not None
    return None


def _volatility(schema: str | None, name: str, state: FileState,
                catalog: Catalog) -> str | None:
    """The volatilities of the overloads of a function (``"i"``, ``"is"``, ``"v"``...),
    None when unknown.  pg_catalog comes first in every search path."""
    if schema in (None, "pg_catalog"):
        found = _builtin(name)
        if found is not None or schema == "pg_catalog":
            return found
    return catalog.functions.get(state.qualified([schema, name] if schema else [name]))


def _builtin(name: str) -> str | None:
    # lazy: ~5 ms of tables, which only a default or expression calling a function needs
    from . import builtin_volatility as builtin

    if name in builtin.MIXED:
        return builtin.MIXED[name]
    for letter, names in (("i", builtin.IMMUTABLE), ("s", builtin.STABLE),
                          ("v", builtin.VOLATILE)):
        if name in names:
            return letter
    return None
