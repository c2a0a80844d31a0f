"""PostgreSQL's parser (libpg_query, as pglast bundles it) called without pglast's Python.

pglast's package, once imported, loads its node classes and enums (about 60 ms, half of
``fraiseql migrate lint``'s start).  The parser itself is C code inside pglast's
extension module, which exports libpg_query's functions: :func:`parse_json` and
:func:`parse_plpgsql_json` call ``pg_query_parse`` and ``pg_query_parse_plpgsql`` there
through ctypes, and return what ``pglast.parser.parse_sql_json`` and
``parse_plpgsql_json`` return, raising :class:`ParseError` with the same arguments (the
message and the 0-based character index, or None).  Where the library cannot be loaded
so (another platform's build, a pglast without those symbols), they call pglast's
functions instead.  tests/unit/test_lint_nodes.py checks both ways against pglast.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from collections.abc import Callable
from importlib.machinery import EXTENSION_SUFFIXES
from typing import Any

__all__ = ["ParseError", "bind", "load_library", "parse_json", "parse_plpgsql_json"]


class ParseError(Exception):
    """PostgreSQL's parser refused the text: ``args`` are its message and the 0-based
    index of the character it points at (None: the end, or no position), as pglast's
    ``ParseError`` has them."""


class _Error(ctypes.Structure):  # libpg_query's PgQueryError
    _fields_ = [("message", ctypes.c_char_p), ("funcname", ctypes.c_char_p),
                ("filename", ctypes.c_char_p), ("lineno", ctypes.c_int),
                ("cursorpos", ctypes.c_int), ("context", ctypes.c_char_p)]


class _ParseResult(ctypes.Structure):  # PgQueryParseResult
    _fields_ = [("parse_tree", ctypes.c_char_p), ("stderr_buffer", ctypes.c_char_p),
                ("error", ctypes.POINTER(_Error))]


class _PlpgsqlResult(ctypes.Structure):  # PgQueryPlpgsqlParseResult
    _fields_ = [("plpgsql_funcs", ctypes.c_char_p), ("error", ctypes.POINTER(_Error))]


def load_library() -> ctypes.CDLL | None:
    """pglast's extension module as a C library, found without importing pglast; None
    when it cannot be loaded so, or does not export libpg_query's functions."""
    spec = importlib.util.find_spec("pglast")  # the package's folder; runs none of it
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in EXTENSION_SUFFIXES:
            path = os.path.join(folder, f"parser{suffix}")
            if not os.path.isfile(path):
                continue
            try:
                library = ctypes.CDLL(path)
                functions = (library.pg_query_parse, library.pg_query_free_parse_result,
                             library.pg_query_parse_plpgsql,
                             library.pg_query_free_plpgsql_parse_result)
            except (OSError, AttributeError):  # not loadable, or the symbols not exported
                return None
            for function, result in zip(functions[::2], (_ParseResult, _PlpgsqlResult),
                                        strict=True):
                function.argtypes, function.restype = [ctypes.c_char_p], result
            for function, result in zip(functions[1::2], (_ParseResult, _PlpgsqlResult),
                                        strict=True):
                function.argtypes, function.restype = [result], None
            return library
    return None


def _error_index(text: str, cursorpos: int) -> int | None:
    """PostgreSQL's 1-based character position as pglast gives it: 0-based, or None."""
    index = cursorpos - 1
    return index if 0 <= index < len(text) else None


def _ctypes_call(parse: Any, free: Any, field: str) -> Callable[[str], str]:
    """``parse`` (a libpg_query function returning a result struct whose text is in
    ``field``), its result freed by ``free``; an error raised as :class:`ParseError`."""

    def call(sql: str) -> str:
        result = parse(sql.encode("utf-8"))
        try:
            if result.error:
                error = result.error.contents
                raise ParseError((error.message or b"").decode("utf-8"),
                                 _error_index(sql, error.cursorpos))
            return (getattr(result, field) or b"").decode("utf-8")
        finally:
            free(result)
    return call


def _pglast(name: str) -> Callable[[str], str]:
    """pglast's own function ``name`` of ``pglast.parser``, raising our ParseError."""
    def call(sql: str) -> str:
        import pglast.parser  # lazy: only where the library could not be called directly

        try:
            text: str = getattr(pglast.parser, name)(sql)
        except pglast.parser.ParseError as err:
            raise ParseError(*err.args) from None
        return text
    return call


def bind(library: ctypes.CDLL | None) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """:func:`parse_json` and :func:`parse_plpgsql_json` calling ``library``
    (:func:`load_library`), or pglast's own functions when it is None."""
    if library is None:
        return _pglast("parse_sql_json"), _pglast("parse_plpgsql_json")
    return (_ctypes_call(library.pg_query_parse, library.pg_query_free_parse_result,
                         "parse_tree"),
            _ctypes_call(library.pg_query_parse_plpgsql,
                         library.pg_query_free_plpgsql_parse_result, "plpgsql_funcs"))


_parse_json, _parse_plpgsql_json = bind(load_library())


def parse_json(sql: str) -> str:
    """libpg_query's JSON parse tree of ``sql``, as ``pglast.parser.parse_sql_json``."""
    return _parse_json(sql)


def parse_plpgsql_json(sql: str) -> str:
    """libpg_query's JSON of the PL/pgSQL function ``sql`` creates, as
    ``pglast.parser.parse_plpgsql_json``."""
    return _parse_plpgsql_json(sql)
