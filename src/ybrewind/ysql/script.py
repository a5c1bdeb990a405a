"""Split a PostgreSQL/psql script into statements, COPY blocks and meta-commands, streaming.

``ybrewind load`` runs plain SQL scripts that ybrewind did not write -- ``pg_dump -Fp`` output,
YugabyteDB ``ysql_dump`` output, hand-written fixtures -- one statement at a time so that a failure
can be reported as ``file:line``. This module finds the statement boundaries exactly the way psql
does (``src/fe_utils/psqlscan.l`` and ``src/bin/psql/psqlscanslash.l``) and hands the loader a
stream of :class:`Statement`, :class:`CopyIn` and :class:`MetaCommand` items.

Why a hand-written lexer rather than pglast: ``pglast.split`` needs the whole script in memory
(dumps are many GB), it only understands SQL, so it chokes on the inline data of ``COPY ... FROM
stdin`` and on psql meta-commands (``\\connect``, ``\\restrict``, ysql_dump's ``\\if``), and it
reports no line numbers. Deciding where a statement ends only needs the *lexical* layer (quotes,
comments, dollar quotes, parentheses, psql's ``BEGIN ATOMIC`` heuristic), which is small enough to
reproduce faithfully and to run line by line.

What psql does and this module therefore does too:

* A statement ends at a ``;`` that is outside quotes ('' / E'' / U&'' / B'' / X'' strings,
  "identifiers", $tag$ strings), comments (``--`` and nested ``/* */``) and parentheses -- so a
  ``CREATE RULE ... DO (a; b)`` list stays one statement -- and, after ``CREATE [OR REPLACE]
  FUNCTION|PROCEDURE``, outside ``BEGIN ... END`` (``BEGIN ATOMIC`` bodies, with ``CASE ... END``
  counted inside them). Unbalanced parentheses therefore swallow the rest of the file, as in psql.
* Plain '...' strings honour backslash escapes when ``standard_conforming_strings`` is off; the
  setting is followed through ``SET``/``RESET standard_conforming_strings`` statements from the
  next line on, because psql takes the server's value of it once per input line. A string
  continued on the next line ('a' <newline> 'b') keeps its kind, so E'...' escapes carry over.
* A backslash outside quotes starts a meta-command that runs to the end of the line, or to ``\\\\``
  (after which SQL continues), or to the next unquoted backslash (another meta-command).
* After ``COPY ... FROM STDIN`` the data starts on the next line and runs to a line that is
  exactly ``\\.`` (CSV or not: psql does not parse the data either); the rest of the COPY line, if
  any, is lexed after the data.

Statement text: ``Statement.sql`` is the statement as written, without the terminating ``;``,
without the whitespace and comments that precede it and without trailing whitespace; comments
inside it are kept, and a statement that ends in a ``--`` comment keeps a final newline so the
text is safe to send or to concatenate.

Meta-commands: ``\\i``/``\\include``/``\\ir``/``\\include_relative`` are inlined (``\\ir``
relative to the including file, ``\\i`` to the working directory; include loops are refused);
``\\connect``/``\\c``, ``\\echo``, ``\\qecho`` and ``\\warn`` are yielded as :class:`MetaCommand`
for the caller to decide about; ``\\set`` of ON_ERROR_STOP/ECHO/VERBOSITY/QUIET, ``\\restrict``/
``\\unrestrict`` and ``\\encoding UTF8`` are honoured silently. ysql_dump wraps OWNER and
tablespace statements in ``\\if :use_roles`` blocks, so ``\\if``/``\\elif``/``\\else``/``\\endif``
with ``\\set``/``\\unset`` of ordinary (not all-uppercase) variables are supported too; the
expression must be a single boolean after ``:name``/``:{?name}`` substitution. Everything else
raises :class:`ScriptError`. Variables are never interpolated into SQL: a ``:name`` in SQL that
psql would replace (a variable that is set, or one of psql's built-in ones) is refused, and a
``:name`` that psql would leave alone is left alone.

Input is read as bytes in 1 MiB chunks and lexed per line: most lines of a dump (one-line
statements, rows of multi-row INSERTs, blank and comment lines) are recognised whole by one regex
match, the rest by jumping between the few bytes that can change the lexer state; COPY data is
passed on in line-aligned blocks without being split into lines. Only UTF-8 scripts are supported;
everything handed out is validated, and a leading byte-order mark is dropped.

Limitations: ``SET LOCAL standard_conforming_strings`` is treated like ``SET`` (not undone at
transaction end) and ``set_config()`` of it is not followed; psql's ``:'name'``/``:"name"`` forms
are not expanded inside meta-command arguments; ``\\if`` and friends may not appear inside an
unfinished statement (psql allows it); number/identifier junk right before a ``$`` is lexed by
PostgreSQL 15+ rules; psql drops ``--`` comments from the text it sends, this module keeps them.
"""

from __future__ import annotations

import codecs
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from ybrewind.errors import ScriptError
from ybrewind.files import open_binary

__all__ = [
    "CopyIn",
    "MetaCommand",
    "ScriptItem",
    "Statement",
    "iter_script",
    "iter_script_file",
    "parse_psql_bool",
]


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement; ``sql`` has no terminating ';' (see the module docstring)."""

    sql: str
    file: str
    line: int  # 1-based line of the statement's first character that is not blank or comment


@dataclass
class CopyIn:
    """A ``COPY ... FROM STDIN`` statement and its inline data.

    ``data`` yields the data as UTF-8 bytes in chunks that end at line boundaries (except inside
    a line longer than the read buffer), up to but not including the ``\\.`` line. It reads
    straight from the script, so it must be consumed before the next item is requested; what is
    left unread then is skipped by the splitter, and reading ``data`` afterwards raises
    ``RuntimeError``.
    """

    sql: str
    file: str
    line: int
    data: Iterator[bytes] = field(repr=False)


@dataclass(frozen=True, slots=True)
class MetaCommand:
    """A psql meta-command the caller must decide about: connect, echo, qecho or warn.

    ``name`` has no backslash and ``\\c`` is reported as ``connect``. ``args`` is the raw text after
    the name; ``argv`` holds the arguments split and unquoted the way psql does for that command
    (for ``connect``, double quotes are removed, as psql's ``\\connect`` does).
    """

    name: str
    args: str
    file: str
    line: int
    argv: tuple[str, ...] = ()


ScriptItem = Statement | CopyIn | MetaCommand

_CHUNK = 1 << 20
_MAX_INCLUDE_DEPTH = 64
_BOM = b"\xef\xbb\xbf"

# Lexer states: inside which construct the current line starts.
_NORMAL, _SQ, _EQ, _BQ, _DQ, _DOLLAR, _COMMENT = range(7)
_KIND = {
    _SQ: "quoted string",
    _EQ: "quoted string",
    _BQ: "quoted string",
    _DQ: "quoted identifier",
    _DOLLAR: "dollar-quoted string",
    _COMMENT: "/* comment",
}

# Everything in SQL text that can change the lexer state. The '::' alternative only exists so that
# a typecast is skipped as one token instead of looking like a ':name' variable reference.
_SPECIAL = re.compile(rb"[;'\"$\\()]|--|/\*|::|:[A-Za-z0-9_\x80-\xff'\"{]")
# Rest of a quoted construct up to and including its closing quote; possessive so that a '' pair
# at the end of a line can never be split into "close + open".
_SQ_REST = re.compile(rb"[^']*+(?:''[^']*+)*+'")
_EQ_REST = re.compile(rb"[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+'", re.S)
_BQ_REST = re.compile(rb"[^']*+'")
_DQ_REST = re.compile(rb'[^"]*+(?:""[^"]*+)*+"')
_COMMENT_TOKEN = re.compile(rb"/\*|\*/")
_NONSPACE = re.compile(rb"[^ \t\n\r\f\v]")
_DOLQ = re.compile(rb"\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$")
_WORD = re.compile(rb"[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*")
_DECIMAL_RUN = re.compile(rb"[0-9](?:_?[0-9])*")
_PARAM_RUN = re.compile(rb"\$[0-9]+")
_VARREF = re.compile(
    rb":(?:'([A-Za-z0-9_\x80-\xff]+)'|\"([A-Za-z0-9_\x80-\xff]+)\"|\{\?([A-Za-z0-9_\x80-\xff]+)\}"
    rb"|([A-Za-z0-9_\x80-\xff]+))"
)
_TRACK_TOKEN = re.compile(
    rb"(?P<ident>[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)"
    rb"|(?P<num>[0-9][A-Za-z0-9_$\x80-\xff.]*)"
    rb"|(?P<op>[^ \t\n\r\f\vA-Za-z0-9_\x80-\xff])"
)
# Whole-line fast path: one complete statement on its own line followed only by blanks, made of
# plain text, single-quoted strings and quoted identifiers without backslashes (so neither
# standard_conforming_strings nor an E prefix matters), and parentheses that balance within three
# levels (psql ends a statement only at depth 0); no dollar quotes, comments, variable references
# or ';' inside parentheses, and not a statement whose first word the general path must see.
_FAST_ATOM = (  # strings first: measurably faster on INSERT-heavy dumps
    rb"'[^'\\\n]*+'|[^;'\"$\\:\-/\n\r()]++|\"[^\"\n]*+\"|-(?!-)|/(?!\*)|::"
    rb"|:(?![A-Za-z0-9_\x80-\xff'\"{])"
)
_FAST_NEST = rb"(?:" + _FAST_ATOM + rb")*+"
for _ in range(3):
    _FAST_NEST = rb"(?:" + _FAST_ATOM + rb"|\(" + _FAST_NEST + rb"\))*+"
# A line inside an unfinished statement that cannot change the lexer state: the same atoms and
# balanced parentheses, no ';'.
_FAST_CONTINUATION = re.compile(_FAST_NEST + rb"\r?\n")
# A blank or comment-only line between statements (a CR would end the comment, so none inside).
_SKIP_LINE = re.compile(rb"[ \t\r\f\v]*+(?:--[^\n\r]*+\r?)?\n")
_FAST_LINE = re.compile(
    rb"[ \t]*+(?P<sql>(?!(?i:create|copy|set|reset)(?![A-Za-z0-9_$\x80-\xff]))[A-Za-z_\x80-\xff]"
    + _FAST_NEST
    + rb");[ \t\r]*+\n"
)
_IDENT_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$" + bytes(range(128, 256)))
_PREFIX_BYTES = frozenset(b"eEbBxX&")

_BEGIN_CASE_END = re.compile(rb"(?i)begin|case|end")
_FUNC_WORDS = frozenset((b"create", b"function", b"procedure", b"or", b"replace"))
_C, _F, _P, _O, _R = b"cfpor"
_TRACKED_FIRST_WORDS = frozenset((b"create", b"copy", b"set", b"reset"))

# Meta-commands psql parses to the end of the line regardless of backslashes.
_WHOLE_LINE_COMMANDS = frozenset(("!", "copy", "ef", "ev", "sf", "sv", "h", "help"))
_INCLUDE_COMMANDS = frozenset(("i", "include", "ir", "include_relative"))
_YIELDED_COMMANDS = {"connect": "connect", "c": "connect", "echo": "echo", "qecho": "qecho", "warn": "warn"}
_CONDITIONAL_COMMANDS = frozenset(("if", "elif", "else", "endif"))
# psql behaviour switches that cannot change what the loader does: it always stops at the first
# error, and echo/verbosity/quiet only affect psql's own output.
_IGNORED_SETTINGS = frozenset(("ON_ERROR_STOP", "ECHO", "VERBOSITY", "QUIET"))
# Variables psql defines by itself; a ':NAME' reference to one would be replaced by psql.
_PSQL_BUILTIN_VARIABLES = frozenset(
    (
        "AUTOCOMMIT", "COMP_KEYWORD_CASE", "DBNAME", "ECHO", "ECHO_HIDDEN", "ENCODING", "ERROR",
        "FETCH_COUNT", "HIDE_TABLEAM", "HIDE_TOAST_COMPRESSION", "HISTCONTROL", "HISTFILE",
        "HISTSIZE", "HOST", "IGNOREEOF", "LASTOID", "LAST_ERROR_MESSAGE", "LAST_ERROR_SQLSTATE",
        "ON_ERROR_ROLLBACK", "ON_ERROR_STOP", "PORT", "PROMPT1", "PROMPT2", "PROMPT3", "QUIET",
        "ROW_COUNT", "SERVER_VERSION_NAME", "SERVER_VERSION_NUM", "SHELL_ERROR", "SHELL_EXIT_CODE",
        "SHOW_ALL_RESULTS", "SHOW_CONTEXT", "SINGLELINE", "SINGLESTEP", "SQLSTATE", "USER",
        "VERBOSITY", "VERSION", "VERSION_NAME", "VERSION_NUM", "WATCH_INTERVAL",
    )
)  # fmt: skip
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_\x80-\U0010ffff]+")

# Conditional-stack states, as in psql's conditional.h.
_IF_TRUE, _IF_FALSE, _IF_IGNORED, _ELSE_TRUE, _ELSE_FALSE = range(5)


def parse_psql_bool(value: str) -> bool | None:
    """Interpret ``value`` the way psql's ParseVariableBool does; None if it is not a boolean."""
    v = value.strip().lower()
    if not v:
        return None
    if "true".startswith(v) or "yes".startswith(v) or v == "1" or v == "on":
        return True
    if "false".startswith(v) or "no".startswith(v) or v == "0" or (len(v) >= 2 and "off".startswith(v)):
        return False
    return None


# --------------------------------------------------------------------------------------------
# Input: bytes, line by line for SQL, in large chunks for COPY data.


class _Source:
    """A byte stream read in large chunks and handed out as lines (SQL) or blocks (COPY data)."""

    def __init__(self, read: Callable[[int], bytes], file: str) -> None:
        self._read = read
        self.file = file
        self.buf = b""
        self.pos = 0
        self._eof = False
        self._first = True
        self.lineno = 0  # number of the last line handed out

    def _chunk(self) -> bytes:
        if self._eof:
            return b""
        data = self._read(_CHUNK)
        if not data:
            self._eof = True
        elif self._first:
            self._first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]  # editors add it; it would stick to the first keyword
        return data

    def readline(self) -> bytes | None:
        """The next line including its b"\\n" (absent on a last unterminated line), or None."""
        buf, pos = self.buf, self.pos
        nl = buf.find(b"\n", pos)
        if nl >= 0:
            self.pos = nl + 1
            self.lineno += 1
            return buf[pos : nl + 1]
        # A line spanning chunks is collected in a list so a huge line costs O(n), not O(n^2).
        parts = [buf[pos:]]
        while True:
            chunk = self._chunk()
            if not chunk:
                self.buf, self.pos = b"", 0
                line = b"".join(parts)
                if not line:
                    return None
                self.lineno += 1
                return line
            nl = chunk.find(b"\n")
            if nl >= 0:
                parts.append(chunk[: nl + 1])
                self.buf, self.pos = chunk, nl + 1
                self.lineno += 1
                return b"".join(parts)
            parts.append(chunk)

    def copy_blocks(self, owner: _CopyData) -> Iterator[bytes]:
        """Yield COPY data up to the ``\\.`` line, which is consumed but not yielded."""
        at_line_start = True
        decoder = codecs.getincrementaldecoder("utf-8")()
        while True:
            buf, pos = self.buf, self.pos
            last_nl = buf.rfind(b"\n", pos)
            if last_nl < 0:
                chunk = self._chunk()
                if chunk:
                    rest = buf[pos:]
                    if len(rest) >= _CHUNK:
                        # One line longer than the buffer: pass its head on rather than hold it.
                        self.buf, self.pos = chunk, 0
                        self._check_utf8(owner, decoder, rest)
                        at_line_start = False
                        yield rest
                    else:
                        self.buf, self.pos = rest + chunk, 0
                    continue
                rest = buf[pos:]
                if at_line_start and rest == b"\\.":  # terminator on the last, unterminated line
                    self.buf, self.pos = b"", 0
                    self.lineno += 1
                    return
                raise ScriptError(f"{self.file}:{owner.line}: COPY data is truncated: end of file before the \\. line")
            end = last_nl + 1
            term = -1
            term_len = 0
            if at_line_start and buf.startswith(b"\\.", pos):
                if buf.startswith(b"\n", pos + 2):
                    term, term_len = pos, 3
                elif buf.startswith(b"\r\n", pos + 2):
                    term, term_len = pos, 4
            if term < 0:
                # One pass for "\\." at a line start; what follows decides (rarely more than once).
                i = buf.find(b"\n\\.", pos, end)
                while i >= 0:
                    if buf.startswith(b"\n", i + 3):
                        term, term_len = i + 1, 3
                        break
                    if buf.startswith(b"\r\n", i + 3):
                        term, term_len = i + 1, 4
                        break
                    i = buf.find(b"\n\\.", i + 1, end)
            if term >= 0:
                data = buf[pos:term]
                self.pos = term + term_len
                self._check_utf8(owner, decoder, data)
                self.lineno += data.count(b"\n") + 1
                if data:
                    yield data
                return
            data = buf[pos:end]
            self.pos = end
            self._check_utf8(owner, decoder, data)
            self.lineno += data.count(b"\n")
            at_line_start = True
            yield data

    def _check_utf8(self, owner: _CopyData, decoder: codecs.IncrementalDecoder, data: bytes) -> None:
        if owner.skipping or (data.isascii() and not decoder.getstate()[0]):
            return  # ASCII is valid unless it follows a character cut at the previous chunk
        try:
            decoder.decode(data)
        except UnicodeDecodeError as e:
            line = self.lineno + 1 + data.count(b"\n", 0, max(e.start, 0))
            raise ScriptError(f"{self.file}:{line}: invalid UTF-8 in COPY data") from None


class _CopyData(Iterator[bytes]):
    """The ``CopyIn.data`` iterator; the splitter drains it if the consumer did not."""

    def __init__(self, source: _Source, line: int) -> None:
        self.line = line
        self.skipping = False
        self._abandoned = False
        self._gen = source.copy_blocks(self)

    def __iter__(self) -> _CopyData:
        return self

    def __next__(self) -> bytes:
        if self._abandoned:
            raise RuntimeError("COPY data read after the script splitter moved past it")
        return next(self._gen)

    def finish(self) -> None:
        """Skip whatever the consumer left unread; called before the next item is lexed."""
        self.skipping = True
        for _ in self._gen:
            self._abandoned = True


# --------------------------------------------------------------------------------------------
# Meta-command arguments (psqlscanslash.l).


def _meta_args_end(line: bytes, i: int) -> int:
    """Index where the arguments starting at ``i`` end: the first unquoted backslash or EOL."""
    n = len(line)
    while i < n:
        c = line[i]
        if c == 0x5C:  # backslash
            return i
        if c == 0x27:  # 'quoted', with '' and backslash escapes
            i += 1
            while i < n:
                c = line[i]
                if c == 0x5C:
                    i += 2
                elif c == 0x27:
                    i += 1
                    if i < n and line[i] == 0x27:
                        i += 1
                    else:
                        break
                else:
                    i += 1
            continue
        if c in (0x22, 0x60):  # "quoted" or `backquoted`: no escapes
            j = line.find(bytes((c,)), i + 1)
            i = n if j < 0 else j + 1
            continue
        i += 1
    return n


_SLASH_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "r": "\r", "f": "\f"}
_OCTAL = re.compile(r"[0-7]{1,3}")
_HEX = re.compile(r"x([0-9A-Fa-f]{1,2})")


def _split_meta_args(
    raw: str,
    variables: Mapping[str, str],
    *,
    where: str,
    dequote: bool = False,
    strip_semicolon: bool = False,
) -> list[str]:
    """Split meta-command arguments like psql's OT_NORMAL (or OT_SQLIDHACK if ``dequote``)."""
    args: list[str] = []
    i, n = 0, len(raw)
    while True:
        while i < n and raw[i] in " \t\n\r\f":
            i += 1
        if i >= n:
            return args
        out: list[str] = []
        unquoted_tail = 0
        while i < n and raw[i] not in " \t\n\r\f":
            c = raw[i]
            if c == "'":
                i += 1
                while True:
                    if i >= n:
                        raise ScriptError(f"{where}: unterminated quoted string in meta-command argument")
                    c = raw[i]
                    if c == "'":
                        if raw.startswith("'", i + 1):
                            out.append("'")
                            i += 2
                            continue
                        i += 1
                        break
                    if c == "\\" and i + 1 < n:
                        e = raw[i + 1]
                        if e in _SLASH_ESCAPES:
                            out.append(_SLASH_ESCAPES[e])
                            i += 2
                        elif m := _OCTAL.match(raw, i + 1):
                            out.append(chr(int(m.group(), 8)))
                            i = m.end()
                        elif m := _HEX.match(raw, i + 1):
                            out.append(chr(int(m.group(1), 16)))
                            i = m.end()
                        else:
                            out.append(e)
                            i += 2
                        continue
                    out.append(c)
                    i += 1
                unquoted_tail = 0
            elif c == '"':
                j = raw.find('"', i + 1)
                if j < 0:
                    raise ScriptError(f"{where}: unterminated quoted string in meta-command argument")
                out.append(raw[i : j + 1])
                i = j + 1
                unquoted_tail = 0
            elif c == "`":
                raise ScriptError(f"{where}: backquoted shell commands in meta-command arguments are not supported")
            elif c == ":" and (m := _META_VARREF.match(raw, i)):
                name = m.group(2)
                if m.group(1):  # :{?name}
                    out.append("TRUE" if name in variables else "FALSE")
                elif name in variables:
                    out.append(variables[name])
                elif name in _PSQL_BUILTIN_VARIABLES:
                    raise ScriptError(f"{where}: the value of psql variable :{name} is not known here")
                else:
                    out.append(m.group())  # psql leaves unknown variables as written
                i = m.end()
                unquoted_tail = 0
            else:
                out.append(c)
                i += 1
                unquoted_tail += 1
        arg = "".join(out)
        if strip_semicolon:
            while unquoted_tail > 0 and arg.endswith(";"):
                arg = arg[:-1]
                unquoted_tail -= 1
        if dequote:
            arg = _dequote_identifier(arg)
        args.append(arg)


_META_VARREF = re.compile(r":(\{\?)?([A-Za-z0-9_\x80-\U0010ffff]+)(?(1)\})")


def _dequote_identifier(arg: str) -> str:
    """psql's dequote_downcase_identifier without downcasing (used for \\connect)."""
    out: list[str] = []
    inquotes = False
    i, n = 0, len(arg)
    while i < n:
        c = arg[i]
        if c == '"':
            if inquotes and arg.startswith('"', i + 1):
                out.append('"')
                i += 2
                continue
            inquotes = not inquotes
        else:
            out.append(c)
        i += 1
    return "".join(out)


# --------------------------------------------------------------------------------------------
# The lexer.


@dataclass
class _Session:
    """State shared by a script and the files it includes (psql keeps these per connection)."""

    std_strings: bool
    variables: dict[str, str]
    include_stack: list[Path]
    restrict_key: str | None = None


@dataclass(frozen=True)
class _Include:
    path: Path
    file: str
    line: int


class _FileLexer:
    """Lexes one file; included files get their own lexer, as psql gives them their own buffer."""

    def __init__(self, source: _Source, session: _Session, base_dir: Path | None) -> None:
        self._src = source
        self._file = source.file
        self._sess = session
        self._base_dir = base_dir
        self._out: list[ScriptItem | _Include] = []
        self._state = _NORMAL
        self._construct_line = 0
        self._delim = b""
        self._cdepth = 0
        self._cond: list[tuple[int, int]] = []  # (state, line of its \if)
        self._std = session.std_strings
        self._reset_statement()

    def _reset_statement(self) -> None:
        self._started = False
        self._buf: list[bytes] = []
        self._stmt_line = 0
        self._first_word: bytes | None = None
        self._paren = 0
        self._begin_depth = 0
        self._ident_count = 0
        self._idents = [0, 0, 0, 0]
        self._track_begin = False
        self._tokens: list[tuple[int, str, bytes | None]] | None = None
        self._cont_mode: int | None = None  # pending string continuation (see _line)
        self._cont_nl = False
        self._comment_at = -1  # offset in the statement text of its last -- comment
        self._slow = True  # plain text between specials needs looking at (see _range)

    def _update_slow(self) -> None:
        self._slow = not self._started or self._track_begin or self._tokens is not None or self._cont_mode is not None

    def _active(self) -> bool:
        return not self._cond or self._cond[-1][0] in (_IF_TRUE, _ELSE_TRUE)

    def _where(self, line: int) -> str:
        return f"{self._file}:{line}"

    # ---- driving

    def run(self) -> Iterator[ScriptItem]:
        src, out = self._src, self._out
        readline = src.readline
        fast_match = _FAST_LINE.match
        skip_match = _SKIP_LINE.match
        continuation_match = _FAST_CONTINUATION.match
        while True:
            # Fast paths: whole lines whose effect is known without lexing, taken straight from
            # the read buffer (a line cut by the buffer end just goes the general way).
            if self._state == _NORMAL:
                if not self._started:
                    while True:
                        if (m := fast_match(src.buf, src.pos)) is not None:
                            stmt = self._fast_statement(m, src.lineno + 1)
                            if stmt is False:
                                break
                            src.pos = m.end()
                            src.lineno += 1
                            if stmt is not True:
                                yield stmt
                        elif (m := skip_match(src.buf, src.pos)) is not None:
                            src.pos = m.end()
                            src.lineno += 1
                        else:
                            break
                elif not self._slow:
                    while (m := continuation_match(src.buf, src.pos)) is not None:
                        text = m.group()
                        if text.rstrip().endswith(b"'"):
                            break  # an E'' string here may continue on the next line (see _line)
                        self._buf.append(text)
                        src.pos = m.end()
                        src.lineno += 1
            line = readline()
            if line is None:
                break
            lineno = src.lineno
            # psql samples the server's standard_conforming_strings once per input line, so a SET
            # takes effect from the next line on.
            self._std = self._sess.std_strings
            pos = 0
            while True:
                resume = self._line(line, pos, lineno)
                if out:
                    items = out[:]
                    out.clear()
                    for item in items:
                        if isinstance(item, _Include):
                            yield from self._include(item)
                        else:
                            yield item
                            if isinstance(item, CopyIn):
                                data = item.data
                                assert isinstance(data, _CopyData)
                                data.finish()
                if resume < 0:
                    break
                pos = resume
        yield from self._end_of_file()

    def _end_of_file(self) -> Iterator[ScriptItem]:
        if self._state != _NORMAL:
            raise ScriptError(f"{self._where(self._construct_line)}: unterminated {_KIND[self._state]} starting here")
        if self._started:
            item = self._finish(b"".join(self._buf))
            if isinstance(item, CopyIn):
                yield item
                data = item.data
                assert isinstance(data, _CopyData)
                data.finish()
            elif item is not None:
                yield item
        if self._cond:
            raise ScriptError(f"{self._where(self._cond[-1][1])}: \\if without a matching \\endif")

    def _include(self, inc: _Include) -> Iterator[ScriptItem]:
        sess = self._sess
        try:
            resolved = inc.path.resolve()
        except OSError as e:
            raise ScriptError(f"{self._where(inc.line)}: cannot open included file {inc.file}: {e}") from None
        if resolved in sess.include_stack:
            chain = " -> ".join(str(p) for p in [*sess.include_stack, resolved])
            raise ScriptError(f"{self._where(inc.line)}: include loop: {chain}")
        if len(sess.include_stack) >= _MAX_INCLUDE_DEPTH:
            raise ScriptError(f"{self._where(inc.line)}: includes nested more than {_MAX_INCLUDE_DEPTH} deep")
        try:
            stream = open_binary(inc.path)
        except OSError as e:
            raise ScriptError(
                f"{self._where(inc.line)}: cannot open included file {inc.file}: {e.strerror or e}"
            ) from None
        sess.include_stack.append(resolved)
        try:
            with stream:
                lexer = _FileLexer(_Source(stream.read, inc.file), sess, inc.path.parent)
                yield from lexer.run()
        finally:
            sess.include_stack.pop()

    # ---- one line

    def _line(self, line: bytes, pos: int, lineno: int) -> int:
        """Lex ``line`` from ``pos``, appending finished items to ``self._out``.

        Returns -1 when the line is done, or the index to resume at once the caller has dealt
        with the last item: a COPY block (its data follows this line) or an include.
        """
        n = len(line)
        piece = pos if self._started else -1  # where this line's share of the statement starts
        if self._state != _NORMAL:
            end = self._scan_construct(line, pos)
            if end < 0:
                if piece >= 0:
                    self._buf.append(line[piece:])
                return -1
            pos = end
        seg = floor = pos  # seg: start of unexamined plain text; floor: start of the current token
        search = _SPECIAL.search
        while True:
            m = search(line, pos)
            p = m.start() if m is not None else n
            if m is not None and line[p] == 0x24:  # $
                delim = self._dollar_quote(line, p, floor)
                if delim is None:
                    # A $n parameter or part of an identifier: plain text, so the range goes on.
                    if not self._started:
                        k = _NONSPACE.search(line, seg, p)
                        piece = self._start(line, k.start() if k is not None else p, lineno)
                    elif self._cont_mode is not None:
                        self._cont_mode = None
                        self._update_slow()
                    pos = p + 1
                    continue
            if self._slow and seg < p:
                k = self._range(line, seg, p, lineno)
                if k >= 0:
                    piece = k
            if m is None:
                break
            c = line[p]
            if self._cont_mode is not None and c != 0x27 and m.group() != b"--":
                self._cont_mode = None  # only whitespace and -- comments may separate continued strings
                self._update_slow()

            if c == 0x3B:  # ;
                pos = seg = floor = p + 1
                if not self._started:
                    self._reset_statement()  # an empty statement
                    continue
                if self._paren or self._begin_depth:
                    continue
                text = line[piece:p]
                if self._buf:
                    self._buf.append(text)
                    text = b"".join(self._buf)
                piece = -1
                item = self._finish(text)
                if item is not None:
                    self._out.append(item)
                    if isinstance(item, CopyIn):
                        return p + 1
                continue

            if c == 0x27:  # '
                if not self._started:
                    piece = self._start(line, p, lineno)
                mode = _SQ if self._std else _EQ
                if self._cont_mode is not None:
                    if self._cont_nl:
                        mode = self._cont_mode
                    self._cont_mode = None
                    self._update_slow()
                elif p > floor and line[p - 1] in _PREFIX_BYTES:
                    mode = self._string_prefix(line, p, floor, mode)
                self._state = mode
                self._construct_line = lineno
                end = self._scan_construct(line, p + 1)
                if self._tokens is not None:
                    self._tokens.append((self._paren, "lit", line[p:end] if end >= 0 else None))
                if end < 0:
                    break
                if mode != (_SQ if self._std else _EQ):
                    # A string continued after a newline keeps its kind (psql's xqs state).
                    self._cont_mode = mode
                    self._cont_nl = False
                    self._slow = True
                pos = seg = floor = end
                continue

            if c == 0x22:  # "
                if not self._started:
                    piece = self._start(line, p, lineno)
                self._state = _DQ
                self._construct_line = lineno
                end = self._scan_construct(line, p + 1)
                if self._tokens is not None:
                    self._tokens.append((self._paren, "qident", None))
                if end < 0:
                    break
                pos = seg = floor = end
                continue

            if c == 0x24:  # $ opening a dollar quote (see above)
                if not self._started:
                    piece = self._start(line, p, lineno)
                self._state = _DOLLAR
                self._delim = delim
                self._construct_line = lineno
                end = self._scan_construct(line, p + len(delim))
                if self._tokens is not None:
                    self._tokens.append((self._paren, "lit", None))
                if end < 0:
                    break
                pos = seg = floor = end
                continue

            if c == 0x28:  # (
                if not self._started:
                    piece = self._start(line, p, lineno)
                self._paren += 1
                pos = seg = floor = p + 1
                continue

            if c == 0x29:  # )
                if not self._started:
                    piece = self._start(line, p, lineno)
                if self._paren:
                    self._paren -= 1
                pos = seg = floor = p + 1
                continue

            if c == 0x2D:  # -- comment, to the end of the line (psql also ends it at a CR)
                if self._started:
                    self._comment_at = sum(map(len, self._buf)) + p - piece
                cr = line.find(b"\r", p + 2)
                if cr < 0:
                    break
                pos = seg = floor = cr
                continue

            if c == 0x2F:  # /* comment
                self._state = _COMMENT
                self._cdepth = 1
                self._construct_line = lineno
                end = self._scan_construct(line, p + 2)
                if end < 0:
                    break
                pos = seg = floor = end
                continue

            if c == 0x3A:  # : -- '::' or a possible variable reference
                if not self._started:
                    piece = self._start(line, p, lineno)
                if line[p + 1] == 0x3A:
                    pos = seg = floor = p + 2
                    continue
                ref = _VARREF.match(line, p)
                if ref is None:
                    pos = seg = floor = p + 1
                    continue
                self._check_variable_reference(ref, lineno)
                pos = seg = floor = ref.end()
                continue

            # backslash
            if line.startswith(b";", p + 1):
                raise ScriptError(f"{self._where(lineno)}: unsupported psql meta-command \\;")
            if line.startswith(b":", p + 1):  # \: puts a literal ':' into the query
                if self._started:
                    self._buf.append(line[piece:p])
                    piece = p + 1
                else:
                    piece = self._start(line, p + 1, lineno)
                pos = seg = floor = p + 2
                continue
            if self._started:
                self._buf.append(line[piece:p])
            resume = self._meta(line, p, lineno)
            if resume < 0:
                # The rest of the line belonged to the meta-command; an include may be pending.
                return n if self._out and isinstance(self._out[-1], _Include) else -1
            if self._out and isinstance(self._out[-1], _Include):
                return resume
            if self._started:
                piece = resume
            pos = seg = floor = resume

        if piece >= 0:
            self._buf.append(line[piece:] if piece else line)
        if self._cont_mode is not None:
            self._cont_nl = True
        return -1

    def _fast_statement(self, m: re.Match[bytes], lineno: int) -> Statement | bool:
        """The statement of a line matched by _FAST_LINE; False if the general path must decide.

        True means the line was a statement in a skipped \\if branch.
        """
        sql_b = m.group("sql").rstrip(b" \t\f\v")
        try:
            sql = sql_b.decode("utf-8")
        except UnicodeDecodeError:
            return False  # let the general path report it
        if self._cond and not self._active():
            return True
        return Statement(sql, self._file, lineno)

    def _range(self, line: bytes, a: int, b: int, lineno: int) -> int:
        """Look at plain SQL text ``line[a:b]``; returns where the statement starts if it does."""
        started_at = -1
        if not self._started:
            m = _NONSPACE.search(line, a, b)
            if m is None:
                return -1
            a = started_at = self._start(line, m.start(), lineno)
        if self._cont_mode is not None:
            if _NONSPACE.search(line, a, b) is not None:
                self._cont_mode = None
                self._update_slow()
            elif line.find(b"\r", a, b) >= 0:
                self._cont_nl = True
        if self._track_begin or self._tokens is not None:
            self._track(line, a, b)
        return started_at

    def _start(self, line: bytes, k: int, lineno: int) -> int:
        self._started = True
        self._stmt_line = lineno
        m = _WORD.match(line, k)
        word = m.group().lower() if m is not None else None
        self._first_word = word
        if word in _TRACKED_FIRST_WORDS:
            if word == b"create":
                self._track_begin = True
            else:
                self._tokens = []
        self._update_slow()
        return k

    def _track(self, line: bytes, a: int, b: int) -> None:
        """Tokenize plain text of statements whose first word matters (CREATE, COPY, SET)."""
        tokens = self._tokens
        if tokens is None and self._ident_count >= 4 and _BEGIN_CASE_END.search(line, a, b) is None:
            return  # past the first four identifiers only these words count
        for m in _TRACK_TOKEN.finditer(line, a, b):
            kind = m.lastgroup
            assert kind is not None
            if kind == "ident":
                word = m.group().lower()
                if self._track_begin:
                    self._on_identifier(word)
                if tokens is not None:
                    tokens.append((self._paren, kind, word))
            elif tokens is not None:
                tokens.append((self._paren, kind, m.group()))

    def _on_identifier(self, word: bytes) -> None:
        """psqlscan.l's BEGIN ... END tracking after CREATE [OR REPLACE] FUNCTION|PROCEDURE."""
        count = self._ident_count
        ids = self._idents
        if count < 4 and word in _FUNC_WORDS:
            ids[count] = word[0]
        self._ident_count = count + 1
        if ids[0] == _C and (ids[1] in (_F, _P) or (ids[1] == _O and ids[2] == _R and ids[3] in (_F, _P))):
            if self._paren == 0:
                if word == b"begin":
                    self._begin_depth += 1
                elif word == b"case":
                    if self._begin_depth >= 1:
                        self._begin_depth += 1
                elif word == b"end" and self._begin_depth > 0:
                    self._begin_depth -= 1
        elif count + 1 >= 4:
            self._track_begin = False  # the first four identifiers rule it out for good
            self._update_slow()

    def _string_prefix(self, line: bytes, p: int, floor: int, mode: int) -> int:
        """Kind of the string whose quote is at ``p``, given the character before it."""
        pc = line[p - 1]
        if pc == 0x26:  # U&'...'
            if p - 2 >= floor and line[p - 2] in b"uU" and (p - 2 == floor or line[p - 3] not in _IDENT_BYTES):
                return _SQ
            return mode
        if p - 1 > floor and line[p - 2] in _IDENT_BYTES:
            return mode  # the letter ends an identifier, it is no prefix
        if pc in b"eE":
            return _EQ
        return _BQ  # B'...' or X'...'

    def _dollar_quote(self, line: bytes, p: int, floor: int) -> bytes | None:
        """The delimiter if the '$' at ``p`` opens a dollar quote, else None."""
        k = p
        while k > floor and line[k - 1] in _IDENT_BYTES:
            k -= 1
        # Re-lex the identifier-like run before the '$': it only starts a new token after a
        # complete $n parameter or number; an identifier (or a number or parameter with
        # trailing junk) swallows it.
        i = k
        while i < p:
            if line[i] == 0x24:
                m = _PARAM_RUN.match(line, i, p)
                if m is None:  # a '$' that opened nothing: the identifier after it swallows ours
                    return None
            elif 0x30 <= line[i] <= 0x39:
                m = _DECIMAL_RUN.match(line, i, p)
                assert m is not None
            else:
                return None
            i = m.end()
            if i < p and line[i] != 0x24:
                return None  # junk after a number or parameter runs on through the '$'
        m = _DOLQ.match(line, p)
        return m.group() if m is not None else None

    def _scan_construct(self, line: bytes, i: int) -> int:
        """Continue the open construct from ``i``; index after its end, or -1 if still open."""
        st = self._state
        if st == _SQ:
            m = _SQ_REST.match(line, i)
        elif st == _EQ:
            m = _EQ_REST.match(line, i)
        elif st == _BQ:
            m = _BQ_REST.match(line, i)
        elif st == _DQ:
            m = _DQ_REST.match(line, i)
        elif st == _DOLLAR:
            q = line.find(self._delim, i)
            if q < 0:
                return -1
            self._state = _NORMAL
            return q + len(self._delim)
        else:
            depth = self._cdepth
            for t in _COMMENT_TOKEN.finditer(line, i):
                if line[t.start()] == 0x2F:
                    depth += 1
                else:
                    depth -= 1
                    if depth == 0:
                        self._state = _NORMAL
                        return t.end()
            self._cdepth = depth
            return -1
        if m is None:
            return -1
        self._state = _NORMAL
        return m.end()

    def _check_variable_reference(self, ref: re.Match[bytes], lineno: int) -> None:
        if not self._active():
            return  # psql does not substitute in skipped branches
        raw = next(g for g in ref.groups() if g is not None)
        name = raw.decode("utf-8", "replace")
        if name in self._sess.variables or name in _PSQL_BUILTIN_VARIABLES or ref.group().startswith(b":{?"):
            raise ScriptError(
                f"{self._where(lineno)}: psql variable interpolation ({ref.group().decode('utf-8', 'replace')})"
                " in SQL is not supported"
            )

    # ---- statements

    def _finish(self, text: bytes) -> ScriptItem | None:
        """Turn a finished statement's bytes into an item; resets the statement state."""
        line = self._stmt_line
        word = self._first_word
        tokens = self._tokens
        comment_at = self._comment_at
        self._reset_statement()
        sql_b = text.rstrip(b" \t\n\r\f\v")
        if comment_at >= 0 and sql_b.find(b"\n", comment_at) < 0 and sql_b.find(b"\r", comment_at) < 0:
            sql_b += b"\n"  # it ends in a -- comment: keep it from swallowing what may follow
        try:
            sql = sql_b.decode("utf-8")
        except UnicodeDecodeError as e:
            bad_line = line + sql_b.count(b"\n", 0, e.start)
            raise ScriptError(f"{self._where(bad_line)}: invalid UTF-8") from None
        if not self._active() or not sql:
            return None
        if tokens is not None:
            if word == b"copy":
                if _copy_from_stdin(tokens, self._where(line)):
                    return CopyIn(sql, self._file, line, _CopyData(self._src, line))
            else:
                self._note_setting(tokens)
        return Statement(sql, self._file, line)

    def _note_setting(self, tokens: list[tuple[int, str, bytes | None]]) -> None:
        """Follow standard_conforming_strings, which changes how '...' strings are lexed."""
        words = [t[2] for t in tokens if t[0] == 0]
        if not words:
            return
        if words[0] == b"reset":
            if words[1:] in ([b"standard_conforming_strings"], [b"all"]):
                self._sess.std_strings = True
            return
        i = 2 if len(words) > 1 and words[1] in (b"session", b"local") else 1
        if words[i : i + 1] != [b"standard_conforming_strings"] or len(words) != i + 3:
            return
        if words[i + 1] not in (b"=", b"to"):
            return
        value = words[i + 2]
        if value is None:
            return
        if value == b"default":
            self._sess.std_strings = True
            return
        text = value.decode("utf-8", "replace")
        if len(text) >= 2 and text[0] == text[-1] == "'":
            text = text[1:-1]
        parsed = parse_psql_bool(text)
        if parsed is not None:
            self._sess.std_strings = parsed

    # ---- meta-commands

    def _meta(self, line: bytes, p: int, lineno: int) -> int:
        """Handle the meta-command whose backslash is at ``p``.

        Returns the index where lexing continues on this line, or -1 if the line is used up.
        """
        n = len(line)
        i = p + 1
        while i < n and line[i] not in b" \t\n\r\f\\":
            i += 1
        try:
            name = line[p + 1 : i].decode("utf-8")
        except UnicodeDecodeError:
            raise ScriptError(f"{self._where(lineno)}: invalid UTF-8") from None
        end = n if name in _WHOLE_LINE_COMMANDS else _meta_args_end(line, i)
        try:
            raw_args = line[i:end].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ScriptError(f"{self._where(lineno)}: invalid UTF-8") from None
        if end >= n:
            resume = -1
        elif line.startswith(b"\\\\", end):
            resume = end + 2
        else:
            resume = end
        self._dispatch(name, raw_args, lineno)
        return resume

    def _dispatch(self, name: str, raw: str, lineno: int) -> None:
        where = self._where(lineno)
        sess = self._sess
        if name in _CONDITIONAL_COMMANDS:
            if sess.restrict_key is not None:
                raise ScriptError(f"{where}: meta-command \\{name} not allowed after \\restrict")
            self._no_statement_pending(name, lineno)
            self._conditional(name, raw, lineno)
            return
        if not self._active():
            return  # psql skips every other meta-command in a false branch
        if sess.restrict_key is not None and name != "unrestrict":
            raise ScriptError(f"{where}: meta-command \\{name} not allowed after \\restrict")

        def argv(**kw: bool) -> list[str]:
            return _split_meta_args(raw, sess.variables, where=where, **kw)

        if name in _INCLUDE_COMMANDS:
            self._no_statement_pending(name, lineno)
            args = argv(strip_semicolon=True)
            if not args:
                raise ScriptError(f"{where}: \\{name} needs a file name")
            path = Path(args[0]).expanduser()
            if name in ("ir", "include_relative") and not path.is_absolute() and self._base_dir is not None:
                path = self._base_dir / path
            self._out.append(_Include(path, str(path), lineno))
        elif name in _YIELDED_COMMANDS:
            self._no_statement_pending(name, lineno)
            canonical = _YIELDED_COMMANDS[name]
            # psql reads \connect's arguments as identifiers (quotes removed, case kept).
            connect = canonical == "connect"
            values = argv(dequote=connect, strip_semicolon=connect)
            self._out.append(MetaCommand(canonical, raw, self._file, lineno, tuple(values)))
        elif name == "set":
            args = argv()
            if not args:
                return  # psql would list the variables
            var = args[0]
            if var in _IGNORED_SETTINGS:
                sess.variables[var] = "".join(args[1:])
            elif _VARIABLE_NAME.fullmatch(var) is None:
                raise ScriptError(f"{where}: invalid psql variable name {var!r}")
            elif var.isupper():
                # psql's own switches are upper case; AUTOCOMMIT, SINGLESTEP and friends would
                # change what the script does.
                raise ScriptError(f"{where}: unsupported psql meta-command \\set {var}")
            else:
                sess.variables[var] = "".join(args[1:])
        elif name == "unset":
            args = argv()
            if not args:
                raise ScriptError(f"{where}: \\unset needs a variable name")
            if args[0].isupper() and args[0] not in _IGNORED_SETTINGS:
                raise ScriptError(f"{where}: unsupported psql meta-command \\unset {args[0]}")
            sess.variables.pop(args[0], None)
        elif name == "restrict":
            args = argv(strip_semicolon=True)
            if not args:
                raise ScriptError(f"{where}: \\restrict needs a key")
            if sess.restrict_key is not None:
                raise ScriptError(f"{where}: \\restrict: already in restricted mode")
            sess.restrict_key = args[0]
        elif name == "unrestrict":
            args = argv(strip_semicolon=True)
            if not args:
                raise ScriptError(f"{where}: \\unrestrict needs a key")
            if sess.restrict_key is None:
                raise ScriptError(f"{where}: \\unrestrict: not currently in restricted mode")
            if args[0] != sess.restrict_key:
                raise ScriptError(f"{where}: \\unrestrict: wrong key")
            sess.restrict_key = None
        elif name == "encoding":
            args = argv(strip_semicolon=True)
            if args and re.sub(r"[^a-z0-9]", "", args[0].lower()) not in ("utf8", "unicode"):
                raise ScriptError(f"{where}: \\encoding {args[0]}: only UTF8 scripts are supported")
        else:
            raise ScriptError(f"{where}: unsupported psql meta-command \\{name}")

    def _no_statement_pending(self, name: str, lineno: int) -> None:
        if self._started:
            raise ScriptError(
                f"{self._where(lineno)}: psql meta-command \\{name} inside an unfinished SQL statement"
                f" (started at line {self._stmt_line})"
            )

    def _conditional(self, name: str, raw: str, lineno: int) -> None:
        where = self._where(lineno)
        cond = self._cond
        if name == "if":
            if self._active():
                cond.append((_IF_TRUE if self._condition(raw, where) else _IF_FALSE, lineno))
            else:
                cond.append((_IF_IGNORED, lineno))
            return
        if not cond:
            raise ScriptError(f"{where}: \\{name}: no matching \\if")
        state, if_line = cond[-1]
        if name == "endif":
            cond.pop()
        elif state in (_ELSE_TRUE, _ELSE_FALSE):
            raise ScriptError(f"{where}: \\{name}: cannot occur after \\else")
        elif name == "elif":
            if state == _IF_FALSE:
                cond[-1] = (_IF_TRUE if self._condition(raw, where) else _IF_FALSE, if_line)
            else:
                cond[-1] = (_IF_IGNORED, if_line)  # an earlier branch was taken, or all are skipped
        else:
            cond[-1] = (_ELSE_TRUE if state == _IF_FALSE else _ELSE_FALSE, if_line)

    def _condition(self, raw: str, where: str) -> bool:
        expr = " ".join(_split_meta_args(raw, self._sess.variables, where=where))
        if not expr:
            raise ScriptError(f"{where}: \\if/\\elif needs an expression")
        value = parse_psql_bool(expr)
        if value is None:
            raise ScriptError(f"{where}: unrecognized value {expr!r} for \\if expression: Boolean expected")
        return value


def _copy_from_stdin(tokens: list[tuple[int, str, bytes | None]], where: str) -> bool:
    """Whether a COPY statement's tokens read ``FROM STDIN``; refuses binary format."""
    top = [(kind, text) for depth, kind, text in tokens if depth == 0]
    from_stdin = any(a == ("ident", b"from") and b == ("ident", b"stdin") for a, b in itertools.pairwise(top))
    if not from_stdin:
        return False
    binary = ("ident", b"binary") in top
    for (_, kind, text), (_, kind2, text2) in itertools.pairwise(tokens):
        if kind == "ident" and text == b"format" and text2 is not None:
            value = text2.lower()
            if (kind2 == "ident" and value == b"binary") or (kind2 == "lit" and value == b"'binary'"):
                binary = True
    if binary:
        raise ScriptError(f"{where}: COPY FROM STDIN in binary format cannot be read from a script")
    return True


# --------------------------------------------------------------------------------------------
# Entry points.


def _text_reader(stream: TextIO, source: list[_Source], file: str) -> Callable[[int], bytes]:
    def read(size: int) -> bytes:
        try:
            return stream.read(size).encode("utf-8")
        except UnicodeError:
            # The text layer decodes ahead of us, so the exact line is not known.
            line = source[0].lineno + 1 if source else 1
            raise ScriptError(f"{file}:{line}: invalid UTF-8 (at or after this line)") from None

    return read


def iter_script(
    stream: TextIO | BinaryIO,
    file: str,
    *,
    variables: Mapping[str, str] | None = None,
    standard_conforming_strings: bool = True,
) -> Iterator[ScriptItem]:
    """Split a psql script read from ``stream``; ``file`` names it in items and errors.

    A binary stream is preferred: it is read as UTF-8 with exact error lines and COPY data passes
    through without decoding; a text stream works too, but an encoding error can then only be
    placed "at or after" a line. ``\\ir`` is resolved against the directory of ``file`` when that
    names an existing file, else against the working directory (as psql does for stdin).
    ``variables`` presets psql variables for ``\\if`` (e.g. ``{"use_roles": "false"}`` for a
    ysql_dump script); ``standard_conforming_strings`` is the server's setting when the script
    starts.
    """
    path = Path(file)
    top = path if path.is_file() else None
    return _split(stream, file, top, variables, standard_conforming_strings)


def iter_script_file(
    path: Path,
    *,
    variables: Mapping[str, str] | None = None,
    standard_conforming_strings: bool = True,
) -> Iterator[ScriptItem]:
    """Split the script at ``path`` (plain or zstd-compressed), inlining its includes."""
    path = Path(path)
    try:
        stream = open_binary(path)
    except OSError as e:
        raise ScriptError(f"{path}: cannot open script: {e.strerror or e}") from None
    with stream:
        yield from _split(stream, str(path), path, variables, standard_conforming_strings)


def _split(
    stream: TextIO | BinaryIO,
    file: str,
    top: Path | None,
    variables: Mapping[str, str] | None,
    std_strings: bool,
) -> Iterator[ScriptItem]:
    holder: list[_Source] = []
    text = isinstance(stream.read(0), str)
    read = _text_reader(stream, holder, file) if text else stream.read  # type: ignore[arg-type]
    source = _Source(read, file)
    holder.append(source)
    stack = [top.resolve()] if top is not None else []
    session = _Session(std_strings, dict(variables or {}), stack)
    return _FileLexer(source, session, top.parent if top is not None else None).run()
