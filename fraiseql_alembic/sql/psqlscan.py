"""Where ``psql -f`` would end each statement of a file, and what it would do besides.

Pure code: text in, spans out.  The rules are those of psql's own lexer
(``src/fe_utils/psqlscan.l``), not of the server's grammar, because psql decides what
reaches the server:

- a ``;`` ends a statement outside quotes, comments, parentheses and the ``BEGIN ... END``
  body of ``CREATE [OR REPLACE] FUNCTION|PROCEDURE`` (psql's own heuristic);
- ``'...'`` reads backslash escapes when ``standard_conforming_strings`` is off, as
  ``E'...'`` always does; a ``SET standard_conforming_strings`` takes effect from the next
  line, as psql learns the new value only after it ran the statement;
- ``U&'...'``, ``B'...'``, ``X'...'``, ``"..."``, ``$tag$...$tag$``, nested ``/* */``
  comments and string continuation over a newline are read as psql reads them;
- ``COPY ... FROM stdin;`` is followed by data lines up to a line ``\\.``;
- a backslash starts a psql meta-command and ``:name`` a psql variable: psql-only, refused
  with their position (``\\restrict`` / ``\\unrestrict``, which pg_dump writes and which do
  nothing to what runs, are skipped).

It reads a large file in linear time, with no token objects: regular expressions skip
what cannot end a statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .psqlwords import SCS_RE, copy_direction, strings_setting


class ScanError(Exception):
    """The text cannot be read as psql would send it; ``offset`` is where."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(frozen=True)
class Span:
    """One statement: ``start``/``end`` of its text (first token to last, no ``;``).

    ``copy_data`` is the (start, end) of the data lines that follow ``COPY ... FROM
    stdin;`` (without the closing ``\\.`` line).  ``standard_strings`` is the setting the
    statement was read with.
    """

    start: int
    end: int
    copy_data: tuple[int, int] | None = None
    standard_strings: bool = True


@dataclass(frozen=True)
class Scan:
    """The statements of a text; ``changes_lexing`` when one of them changes
    ``standard_conforming_strings``, so that the following ones must each be sent on
    their own (the server reads a query string whole, with the setting it had before)."""

    spans: list[Span]
    changes_lexing: bool


# Character classes written as "not these ASCII characters" (psql's lexer works on bytes:
# every non-ASCII character is a letter to it); a class spelling out the range up to
# U+10FFFF takes milliseconds to compile, this one microseconds.
_NOT_IDENT = r"\x00-\x40\x5b-\x5e\x60\x7b-\x7f"  # ASCII but letters and _
_NOT_IDENT_CONT = r"\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f"  # ... digits and $
_NOT_DOLQ_CONT = r"\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f"  # ASCII but letters, digits, _
_IDENT = f"[^{_NOT_IDENT}][^{_NOT_IDENT_CONT}]*+"
_IDENT_RE = re.compile(_IDENT)
_SPACE_RE = re.compile(r"[ \t\n\r\f]+")
# A number as psql 15 reads it: the longest of integer, decimal and real, or of one of
# them with an identifier glued on (its "junk" rules: ``1e5$$`` is 1 and the word
# ``e5$$``, no dollar quote; ``1e'x'`` is ``1e`` and a plain literal; the word counts as
# no identifier).  ``1..`` is 1 (then ``..``); ``1e-`` is one token even when no digit
# follows (``1e--x`` is no comment).
_NUMBER = (rf"(?>[0-9]++(?=\.\.)|(?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)"
           rf"(?:[Ee][-+](?:[0-9]++(?:{_IDENT})?)?|{_IDENT})?)")
# A parameter, with an identifier glued on as above (``$1e5$$`` is no dollar quote).
_PARAM_RE = re.compile(rf"\$[0-9]++(?:{_IDENT})?")
# Text that cannot open a quote, a comment or a dollar quote, end a statement, change a
# depth or start a psql feature: numbers, operators and punctuation.
_PLAIN_RE = re.compile(
    rf"(?:{_NUMBER}"
    r"|[!#%&*+,.<=>?@^`{|}~\x00-\x08\x0b\x0e-\x1f\x7f]|-(?!-)|/(?!\*))+"
)
_LINE_COMMENT_RE = re.compile(r"--[^\n\r]*")
# After a closing quote: whitespace holding a newline, then a quote.  PostgreSQL's lexer
# continues the string there, in the mode of its first part; psql's does not (it lexes a
# file line by line, so it never sees the newline): it reads a new literal, in the mode
# of the session.  (Written so that no two ways match the same text: a nested repeat such
# as ``(?:\s+)*`` takes exponential time on a long blank run that is not followed by a
# quote.)
_CONTINUE = r"[ \t\f]*(?:--[^\n\r]*)?[\n\r](?:[ \t\n\r\f]|--[^\n\r]*[\n\r])*'"
_CONTINUE_RE = re.compile(_CONTINUE)
# Once a statement is known not to start CREATE [OR REPLACE] FUNCTION|PROCEDURE, its words
# no longer matter, except a one-letter word that opens a literal (E'', B'', X'', N'', U&):
# runs of such words, numbers, operators and blanks are skipped in one match.
# Literals that end on the same line are skipped the same way.  Their bodies are
# possessive: a literal must never be matched shorter than it is (``E'x''\\'...`` cut
# after ``E'x'`` would read the rest as a literal of another kind).
_WORD = rf"(?![EeBbXxNn]'|[Uu]&['\"]){_IDENT}"
_ESCAPED = r"'[^'\\\n\r]*+(?:(?:''|\\[^\n\r])[^'\\\n\r]*+)*+'"
_STANDARD = r"'[^'\n\r]*+(?:''[^'\n\r]*+)*+'"


_QUIET_WORDS = (_WORD, _PLAIN_RE.pattern, "::", ":=")
_QUIET_TOKENS = {  # by standard_conforming_strings; None while a change of it is pending
    # an E'' literal that PostgreSQL would continue in another mode than psql's is
    # left to the slow path, which checks that both end it in the same place
    True: (f"[Ee]{_ESCAPED}(?!{_CONTINUE})", _STANDARD, *_QUIET_WORDS),
    False: (f"[Ee]{_ESCAPED}", _ESCAPED, *_QUIET_WORDS),
    None: _QUIET_WORDS,
}
#: The patterns of :data:`_QUIET_TOKENS`, compiled when first needed (a millisecond each:
#: most runs never change standard_conforming_strings).
_QUIET_RUN: dict[bool | None, re.Pattern[str]] = {}


def _quiet_run(strings: bool | None) -> re.Pattern[str]:
    token = "|".join(_QUIET_TOKENS[strings])
    pattern = _QUIET_RUN[strings] = re.compile(rf"(?:{token})(?:[ \t\n\r\f]*(?:{token}))*")
    return pattern
_COMMENT_TOKEN_RE = re.compile(r"/\*|\*/")
_DOLLAR_RE = re.compile(rf"\$(?:[^{_NOT_IDENT}][^{_NOT_DOLQ_CONT}]*)?\$")
_ESCAPED_END_RE = re.compile(r"[\\']")
_VARIABLE_RE = re.compile(rf":(?:[^{_NOT_DOLQ_CONT}]+|'[^{_NOT_DOLQ_CONT}]+'"
                          rf"|\"[^{_NOT_DOLQ_CONT}]+\"|\{{\?[^{_NOT_DOLQ_CONT}]+\}})")
_META_RE = re.compile(r"\\(?:[A-Za-z]+|.)", re.DOTALL)
#: Meta-commands pg_dump writes that change nothing about what runs, with their key: any
#: other argument could be a backquoted shell command, a variable, or a ``\\`` after which
#: psql reads the rest of the line as SQL.
_HARMLESS_META_RE = re.compile(r"\\(?:un)?restrict(?:[ \t\f]+[A-Za-z0-9]+)?[ \t\f]*(?=[\n\r]|\Z)")
#: Blanks and a ``--`` comment: all psql may find after ``COPY ... FROM stdin;`` on its line.
_COPY_LINE_END_RE = re.compile(r"[ \t\f\r]*(?:--[^\n\r]*)?(?=\n|\Z)")
_HEAD_WORDS = frozenset({"create", "function", "procedure", "or", "replace"})

#: The names psql gives its own variables (DBNAME, USER, PORT, ROW_COUNT, ...).
_PSQL_VARIABLE_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]*\Z")
#: ``COPY`` as a whole word (used with match(text, pos)).
_COPY_RE = re.compile(rf"copy(?![^{_NOT_IDENT_CONT}])", re.IGNORECASE | re.ASCII)
_RESET_START_RE = re.compile(r"(?:reset|discard)\b", re.IGNORECASE | re.ASCII)


def scan(text: str, start: int = 0, end: int | None = None, *,
         standard_strings: bool = True) -> Scan:
    """The statements of ``text[start:end]`` as psql would send them, offsets into
    ``text``.  ``standard_strings`` is the session's ``standard_conforming_strings`` when
    the text starts (on unless the database or role was set otherwise).

    Raises :class:`ScanError` for text psql would send unfinished (an unterminated quote,
    comment or dollar quote, an unclosed parenthesis or ``BEGIN ATOMIC`` body, COPY data
    without its ``\\.`` line), for psql meta-commands and variables, and for a change of
    ``standard_conforming_strings`` it cannot follow.
    """
    return _Scanner(text, start, len(text) if end is None else end, standard_strings).run()


class _Scanner:
    def __init__(self, text: str, start: int, end: int, standard_strings: bool) -> None:
        self.text = text
        self.pos = start
        self.end = end
        self.initial_strings = standard_strings
        self.strings = standard_strings
        self.pending: tuple[int, bool] | None = None  # (from offset, new setting)
        self.spans: list[Span] = []
        self.changes_lexing = False
        self._new_statement()

    def _new_statement(self) -> None:
        self.first: int | None = None  # offset of the statement's first token
        self.last = 0  # end of its last token
        self.parens = 0
        self.brackets = 0
        self.begin_depth = 0
        self.idents = 0  # identifiers seen (psql's identifier_count)
        self.head = ""  # initials of CREATE/OR/REPLACE/FUNCTION/PROCEDURE among the first 4
        self.quiet = False  # the head says no BEGIN ... END tracking: words can be skipped
        self.statement_strings = self.strings

    def run(self) -> Scan:
        text, end = self.text, self.end
        while True:
            match = _SPACE_RE.match(text, self.pos, end)
            if match:
                self.pos = match.end()
            if self.pos >= end:
                break
            if self.pending is not None and self.pos >= self.pending[0]:
                self.strings = self.pending[1]
                self.pending = None
            if self.quiet:
                mode = self.strings if self.pending is None else None
                quiet = _QUIET_RUN.get(mode) or _quiet_run(mode)
                match = quiet.match(text, self.pos, end)
                if match:
                    self._token(self.pos, match.end())
                    self.pos = match.end()
                    continue
            char = text[self.pos]
            if char == ";":
                self.pos += 1
                if self.parens == 0 and self.begin_depth == 0:
                    self._end_statement(terminated=True)
                else:
                    self._token(self.pos - 1, self.pos)
                continue
            if char == "-" and text.startswith("--", self.pos):
                match = _LINE_COMMENT_RE.match(text, self.pos, end)
                assert match is not None
                self.pos = match.end()
                continue
            if char == "/" and text.startswith("/*", self.pos):
                self.pos = self._comment_end(self.pos)
                continue
            begin = self.pos
            if char == "'":
                self.pos = self._string_end(begin + 1, "q" if self.strings else "e")
            elif char == '"':
                self.pos = self._quoted_end(begin + 1, '"', "quoted identifier")
            elif char == "$":
                match = _DOLLAR_RE.match(text, begin, end)
                if match is None:
                    param = _PARAM_RE.match(text, begin, end)
                    self.pos = param.end() if param else begin + 1  # $1, or a lone $
                else:
                    close = text.find(match.group(), match.end(), end)
                    if close < 0:
                        raise ScanError(begin, _unterminated(text, begin,
                                                             "dollar-quoted string"))
                    self.pos = close + len(match.group())
            elif char == "(":
                self.parens += 1
                self.pos += 1
            elif char == ")":
                self.parens = max(self.parens - 1, 0)
                self.pos += 1
            elif char == "[":
                self.brackets += 1
                self.pos += 1
            elif char == "]":
                self.brackets = max(self.brackets - 1, 0)
                self.pos += 1
            elif char == "\\":
                self._meta_command(begin)
                continue
            elif char == ":":
                self.pos = self._colon(begin)
            else:
                match = _IDENT_RE.match(text, begin, end)
                if match is not None:
                    self.pos = self._identifier(match.group(), match.end())
                else:
                    match = _PLAIN_RE.match(text, begin, end)
                    self.pos = match.end() if match else begin + 1
            self._token(begin, self.pos)
        self._end_statement(terminated=False)
        return Scan(self.spans, self.changes_lexing)

    def _token(self, begin: int, finish: int) -> None:
        if self.first is None:
            self.first = begin
            self.statement_strings = self.strings
        self.last = finish

    # -- quotes and comments -------------------------------------------------------

    def _comment_end(self, begin: int) -> int:
        depth = 0
        position = begin + 2
        while True:
            match = _COMMENT_TOKEN_RE.search(self.text, position, self.end)
            if match is None:
                raise ScanError(begin, "unterminated /* comment")
            position = match.end()
            if match.group() == "/*":
                depth += 1
            elif depth == 0:
                return position
            else:
                depth -= 1

    def _string_end(self, position: int, mode: str, prefix: str = "") -> int:
        """End of a '...' literal whose text starts at ``position`` (after its quote).

        ``mode`` is how it is read: ``"e"`` with backslash escapes, ``"q"`` without,
        ``"b"`` (B'', X'') without doubled quotes either.  A literal continued over a
        newline (``'a'`` newline ``'b'``) is read as psql reads it, as two literals; the
        server reads one, in the mode of its first part.  Where the two readings could
        end it in different places, the file is refused: sent alone, as psql sends it,
        the statement would not mean to the server what it meant to psql.
        """
        start = position - 1 - len(prefix)
        if not prefix and self._server_mode() != mode:
            # the server reads a plain literal with the setting in force when it runs the
            # statement: on the line of a SET, that is the new one, psql's the old one
            psql_end = self._literal_end_or_none(position, mode)
            if psql_end != self._literal_end_or_none(position, self._server_mode()):
                raise ScanError(start, _SAME_LINE_AS_SET)
        end = self._literal_end(position, mode, start)
        if not prefix:
            mode = self._server_mode()
        while True:
            more = _CONTINUE_RE.match(self.text, end, self.end)
            if more is None:
                return end
            part = more.end()  # after the quote that starts the next part
            fresh = "q" if self._strings_at(part) else "e"  # psql's reading of it
            if mode == fresh:
                return end  # read alike: the main loop reads it as psql does
            psql_end = self._literal_end_or_none(part, fresh)
            server_end = self._literal_end_or_none(part, mode)
            if mode == "b" and server_end is not None and self.text.startswith("'", server_end):
                # a quote right after the end of B''/X'' starts a new literal
                mode = fresh
                server_end = self._literal_end_or_none(server_end + 1, mode)
            if psql_end is None and server_end is None:
                raise ScanError(part - 1, _unterminated(self.text, part - 1))
            if psql_end is None or psql_end != server_end:
                raise ScanError(part - 1, _CONTINUED_IN_ANOTHER_MODE)
            end = psql_end

    def _literal_end(self, position: int, mode: str, start: int) -> int:
        text, end = self.text, self.end
        if mode == "e":
            while True:
                match = _ESCAPED_END_RE.search(text, position, end)
                if match is None:
                    raise ScanError(start, _unterminated(text, start))
                if match.group() == "\\":
                    position = match.end() + 1
                    continue
                position = match.end()
                if text.startswith("'", position):
                    position += 1
                    continue
                return position
        while True:
            close = text.find("'", position, end)
            if close < 0:
                raise ScanError(start, _unterminated(text, start))
            position = close + 1
            if mode == "q" and text.startswith("'", position):
                position += 1  # '' inside the literal
                continue
            return position

    def _literal_end_or_none(self, position: int, mode: str) -> int | None:
        try:
            return self._literal_end(position, mode, position)
        except ScanError:
            return None

    def _strings_at(self, position: int) -> bool:
        """psql's standard_conforming_strings for a token at ``position``."""
        if self.pending is not None and position >= self.pending[0]:
            return self.pending[1]
        return self.strings

    def _server_mode(self) -> str:
        """How the server reads a plain literal of the current statement."""
        strings = self.pending[1] if self.pending is not None else self.strings
        return "q" if strings else "e"

    def _quoted_end(self, position: int, quote: str, what: str) -> int:
        text = self.text
        while True:
            close = text.find(quote, position, self.end)
            if close < 0:
                raise ScanError(position - 1, _unterminated(text, position - 1, what))
            position = close + 1
            if text.startswith(quote, position):
                position += 1
                continue
            return position

    # -- words ---------------------------------------------------------------------

    def _identifier(self, word: str, after: int) -> int:
        text = self.text
        if len(word) == 1 and after < self.end:
            follow = text[after]
            lower = word.lower()
            if follow == "'" and lower == "e":
                return self._string_end(after + 1, "e", prefix="E")
            if follow == "'" and lower in ("b", "x"):
                return self._string_end(after + 1, "b", prefix=lower)
            if follow == "'" and lower == "n":
                return after  # N'...': psql reads the n alone, then an ordinary literal
            if lower == "u" and follow == "&":
                quote = text[after + 1] if after + 1 < self.end else ""
                if quote == "'":
                    return self._string_end(after + 2, "q", prefix="U&")
                if quote == '"':
                    return self._quoted_end(after + 2, '"', "quoted identifier")
                return after  # psql reads ``u&`` as no identifier (its xufailed rule)
        # psql's heuristic for BEGIN ... END bodies: only in a statement that starts
        # CREATE [OR REPLACE] FUNCTION|PROCEDURE, outside parentheses.
        if self.idents < 4:
            lower = word.lower()
            self.head += lower[0] if lower in _HEAD_WORDS else " "
        self.idents += 1
        head = self.head
        self.quiet = _cannot_open_a_body(head)
        if self.parens == 0 and head[:1] == "c" and (
            head[1:2] in ("f", "p") or head[1:4] in ("orf", "orp")
        ):
            lower = word.lower()
            if lower == "begin":
                self.begin_depth += 1
            elif lower == "case":
                if self.begin_depth >= 1:
                    self.begin_depth += 1
            elif lower == "end" and self.begin_depth > 0:
                self.begin_depth -= 1
        return after

    def _colon(self, begin: int) -> int:
        text = self.text
        if text.startswith("::", begin) or text.startswith(":=", begin):
            return begin + 2
        match = _VARIABLE_RE.match(text, begin, self.end)
        if match is None:
            return begin + 1
        name = match.group()[1:]
        if self.brackets > 0 and name[0] not in "'\"{" and not _PSQL_VARIABLE_NAME_RE.match(name):
            return begin + 1  # an array slice a[1:n]: psql keeps it unless n is a variable
        if self.brackets > 0 and name[0] not in "'\"{":
            raise ScanError(
                begin,
                f"`{match.group()}` in an array subscript: psql substitutes its own variable "
                f"{name} there (write `: {name}`, with a space, for a column)",
            )
        raise ScanError(
            begin,
            f"`{match.group()}` is a psql variable, which only psql substitutes (`psql -v` or "
            "`\\set`); write the value into the migration",
        )

    def _meta_command(self, begin: int) -> None:
        match = _META_RE.match(self.text, begin, self.end)
        command = match.group() if match else "\\"
        name = command[1:]
        harmless = _HARMLESS_META_RE.match(self.text, begin, self.end)
        if harmless:
            self.pos = harmless.end()
            return
        if name in ("restrict", "unrestrict"):
            raise ScanError(begin, f"`{command}` is skipped only with one key after it, as "
                                   "pg_dump writes it; psql would read more of this line")
        if name in (";", ":"):
            raise ScanError(begin, f"`{command}` is psql's way to put a {name!r} into a "
                                   "statement; write the statements separately")
        if name == ".":
            raise ScanError(begin, "`\\.` ends COPY data, but no `COPY ... FROM stdin;` "
                                   "comes before it")
        raise ScanError(
            begin,
            f"`{command}` is a psql meta-command, which only psql runs; a migration is plain "
            "SQL run on one connection (see \"Read as psql -f reads it\" in docs/file-format.md)",
        )

    # -- end of a statement ---------------------------------------------------------

    def _end_statement(self, *, terminated: bool) -> None:
        first = self.first
        if first is None:
            if not terminated:
                return
            self._new_statement()
            return
        if (self.parens or self.begin_depth) and not terminated:
                raise ScanError(first, "the statement starting here never ends (an unclosed "
                                       "parenthesis or BEGIN ATOMIC block?); nothing after it "
                                       "could be read")
        text = self.text
        last = self.last
        copy_data = None
        if _COPY_RE.match(text, first, last):
            copy_data = self._copy_data(first, last, terminated)
        self.spans.append(Span(first, last, copy_data, self.statement_strings))
        if SCS_RE.search(text, first, last) or (
            (self.strings != self.initial_strings or self.pending is not None)
            and _RESET_START_RE.match(text, first, last)
        ):
            self._follow_setting(first, last)
        self._new_statement()

    def _copy_data(self, first: int, last: int, terminated: bool) -> tuple[int, int] | None:
        text = self.text
        direction = copy_direction(text[first:last])
        if direction == "stdout":
            raise ScanError(first, "`COPY ... TO STDOUT` writes rows to psql's output; a "
                                   "migration has none: remove it")
        if direction != "stdin":
            return None
        if not terminated:
            return (self.end, self.end)
        rest = _COPY_LINE_END_RE.match(text, self.pos, self.end)
        if rest is None:
            raise ScanError(self.pos, "text after `COPY ... FROM stdin;` on the same line; "
                                      "the data starts on the next line")
        data = min(rest.end() + 1, self.end)
        if data >= self.end:  # nothing follows: psql reads no data either
            self.pos = self.end
            return (self.end, self.end)
        if text.startswith("\\.\n", data, self.end):
            self.pos = data + 3
            return (data, data)
        marker = text.find("\n\\.\n", data - 1, self.end)
        if marker < 0:
            if text.endswith("\\.", data, self.end) and (
                self.end - 2 == data or text[self.end - 3] == "\n"
            ):
                raise ScanError(first, "the `\\.` line that ends the data of this `COPY ... "
                                       "FROM stdin` has no newline after it: psql sends it as "
                                       "data, which PostgreSQL rejects; end the line")
            raise ScanError(first, "the data of this `COPY ... FROM stdin` never ends: add a "
                                   "line `\\.` after its last row")
        self.pos = min(marker + 4, self.end)
        return (data, marker + 1)

    def _follow_setting(self, first: int, last: int) -> None:
        """A statement naming standard_conforming_strings: follow it from the next line,
        or refuse what cannot be followed."""
        setting = strings_setting(self.text[first:last])
        if not setting:
            return  # named in a comment only, or a default for later sessions
        if setting == "unknown":
            raise ScanError(
                first,
                "this statement may change standard_conforming_strings, which changes how "
                "the rest of the file is read; only `SET standard_conforming_strings = on` "
                "(or off) can be followed",
            )
        value = self.initial_strings if setting == "initial" else setting == "on"
        self.changes_lexing = True
        line_end = self.text.find("\n", self.pos, self.end)
        self.pending = (self.end if line_end < 0 else line_end + 1, value)


def _cannot_open_a_body(head: str) -> bool:
    """Whether the first identifiers of a statement already rule out psql's
    CREATE [OR REPLACE] FUNCTION|PROCEDURE (whose BEGIN ... END bodies it tracks)."""
    return (
        head[:1] not in ("", "c")
        or head[1:2] not in ("", "f", "p", "o")
        or (head[1:2] == "o" and (head[2:3] not in ("", "r") or head[3:4] not in ("", "f", "p")))
    )


_SAME_LINE_AS_SET = (
    "this literal is on the line of a `SET standard_conforming_strings` before it: psql reads "
    "it with the old setting, PostgreSQL with the new one, and they end it in different "
    "places; start the statement on the next line"
)
_CONTINUED_IN_ANOTHER_MODE = (
    "this literal continues the one before it on an earlier line: PostgreSQL reads both as "
    "one literal of the first one's kind (E'', B'', X'', U&''), psql this one alone as a "
    "plain literal, and they end it in different places; write the literal on one line, or "
    "join the parts with ||"
)


def _unterminated(text: str, start: int, what: str = "quoted string") -> str:
    """PostgreSQL's words for it, near the rest of the line where it starts."""
    line_end = text.find("\n", start)
    near = text[start:line_end if line_end >= 0 else len(text)].rstrip()
    return f'unterminated {what} at or near "{near}"'
