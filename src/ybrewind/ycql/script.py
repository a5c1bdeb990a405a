"""The CQL script splitter: a streaming lexer that cuts a ``.cql`` file into statements.

It understands everything that can hide a ``;``: single-quoted strings (``''`` escapes), ``$$``
strings (function bodies), double-quoted identifiers, ``--``, ``//`` and ``/* */`` comments, and
``BEGIN [UNLOGGED | COUNTER] BATCH ... APPLY BATCH;`` and YugabyteDB's ``BEGIN TRANSACTION ...
END TRANSACTION;`` (one statement each, inner ``;`` included). Each
statement carries its file, first line and tokens (the loader parses data statements from them
without lexing twice). cqlsh shell commands (``SOURCE``, ``CONSISTENCY``, ``COPY``, ``DESCRIBE``...)
end at ``;`` or at the end of their line, as in cqlsh, and are marked ``shell``.

Why not ``cqlshlib.cql3handling.CqlRuleSet.cql_split_statements``: the PyPI ``cqlsh`` package
requires ``cassandra-driver``, which installs a second top-level ``cassandra`` package over
yb-cassandra-driver's (the one that knows ``jsonb``); both cannot be installed together.

Files are read in 1 MiB chunks (``.zst`` decompressed on the fly), so data files of any size
stream through in constant memory.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ybrewind.errors import ScriptError
from ybrewind.files import CHUNK, open_binary
from ybrewind.ycql.literals import Token, tokenize

SHELL_COMMANDS = frozenset(
    {"SOURCE", "CONSISTENCY", "SERIAL", "COPY", "DESCRIBE", "DESC", "CAPTURE", "TRACING", "EXPAND", "PAGING",
     "LOGIN", "EXIT", "QUIT", "SHOW", "CLEAR", "CLS", "HELP", "DEBUG", "UNICODE"}
)  # fmt: skip
MAX_SOURCE_DEPTH = 16

_LEX = re.compile(
    r"""
    (?P<nl>\n)
  | (?P<ws>[ \t\r\f\v]+|--[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*'|\$\$.*?\$\$)
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<open>'|"|\$\$|/\*)
  | (?P<hex>0[xX][0-9a-fA-F]*)
  | (?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
  | (?P<duration>(?:\d+(?:y|mo|w|d|h|ms|us|µs|ns|m|s))+(?![\w.]))
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_]*)
  | (?P<op><=|>=|!=|[(),;.=<>+\-*/\[\]{}:?])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL | re.IGNORECASE,
)
_OPENERS = {"'": "string", '"': "quoted identifier", "$$": "$$ string", "/*": "comment"}
# The fast path: whitespace and comments before a statement, then a whole statement up to its ';'
# (strings, identifiers and comments may hide ';'), matched at C speed. BATCH blocks, shell commands,
# unterminated constructs and statements cut by a chunk boundary take the token-by-token path.
# Possessive quantifiers: no backtracking, so a statement without ';' fails in linear time.
_LEADING = re.compile(r"(?:\s++|--[^\n]*+|//[^\n]*+|/\*.*?\*/)*+", re.DOTALL)
_STATEMENT = re.compile(
    r"""(?:[^;'"$/\-]++|'(?:[^']|'')*+'|"(?:[^"]|"")*+"|\$\$.*?\$\$|--[^\n]*+|//[^\n]*+|/\*.*?\*/|/(?![*/])|-(?!-)|\$(?!\$))*+;""",
    re.DOTALL,
)
_FIRST_WORD = re.compile(r"[A-Za-z_]\w*")


@dataclass
class Statement:
    """One statement (without its final ``;``), where it starts, and its tokens (made when first asked)."""

    sql: str
    file: str
    line: int
    _tokens: list[Token] | None = field(default=None, repr=False)
    shell: bool = False  # a cqlsh shell command

    @property
    def tokens(self) -> list[Token]:
        if self._tokens is None:
            self._tokens = tokenize(self.sql)
        return self._tokens

    @property
    def keyword(self) -> str:
        """The leading keyword(s), upper case: 'INSERT', 'CREATE TABLE', 'BEGIN BATCH', 'SOURCE'..."""
        words = [t.word for t in self.tokens[:3] if t.kind == "ident"]
        if not words:
            return ""
        if words[0] in ("CREATE", "DROP", "ALTER") and len(words) > 1:
            if words[1] in ("UNIQUE", "CUSTOM", "MATERIALIZED") and len(words) > 2:
                return " ".join(words[:3])
            return " ".join(words[:2])
        return words[0]


def _chunks(path: Path) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open_binary(path) as f:
            while True:
                raw = f.read(CHUNK)
                if not raw:
                    break
                yield decoder.decode(raw)
            yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise ScriptError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ScriptError(f"{path}: {e.strerror or e}") from None
    # A truncated or corrupt .zst raises DumpIntegrityError naming the file (files.open_binary).


def split_text(text: str, file: str = "<string>") -> list[Statement]:
    """All statements of ``text``."""
    return list(iter_statements([text], file))


def iter_statements(chunks: Iterable[str], file: str) -> Iterator[Statement]:
    """Statements from a stream of text chunks (see the module docstring for the rules)."""
    buf = ""
    pos = 0
    eof = False
    it = iter(chunks)
    line = 1
    parts: list[str] = []
    pending: list[str] = []  # whitespace and comments, kept only if another token follows
    tokens: list[Token] = []
    start_line = 0
    shell = False
    batch = 0  # 0: no; 1: inside BEGIN ... BATCH; 2: saw APPLY; 3: saw APPLY BATCH
    stmt_len = 0

    def finish() -> Statement | None:
        nonlocal parts, pending, tokens, shell, batch, stmt_len
        text = "".join(parts)
        stmt = Statement(text, file, start_line, tokens, shell) if tokens else None
        parts, pending, tokens, shell, batch, stmt_len = [], [], [], False, 0, 0
        return stmt

    while True:
        if not tokens and not pending and pos < len(buf):
            lead = _LEADING.match(buf, pos)
            start = lead.end() if lead else pos
            whole = _STATEMENT.match(buf, start) if start < len(buf) else None
            if whole is not None:
                word = _FIRST_WORD.match(buf, start)
                head = word.group().upper() if word else ""
                if head != "BEGIN" and head not in SHELL_COMMANDS:
                    line += buf.count("\n", pos, start)
                    text = buf[start : whole.end() - 1]
                    body = text.rstrip()
                    trailing = _trailing_comment_start(body)
                    if trailing is not None:
                        body = body[:trailing].rstrip()
                    if body:
                        yield Statement(body, file, line)
                    line += text.count("\n")
                    pos = whole.end()
                    continue
        m = _LEX.match(buf, pos) if pos < len(buf) else None
        if m is None or (not eof and (m.end() == len(buf) or m.lastgroup == "open")):
            if not eof:
                try:
                    chunk = next(it)
                except StopIteration:
                    eof = True
                    chunk = ""
                buf = buf[pos:] + chunk
                pos = 0
                continue
            if m is None:
                break
        kind = m.lastgroup or "other"
        text = m.group()
        pos = m.end()
        if kind == "open":
            raise ScriptError(f"{file}:{line}: unterminated {_OPENERS.get(text, text)} at end of file")
        if kind == "nl" or kind == "ws":
            if tokens:
                pending.append(text)
            if kind == "nl":
                line += 1
                if shell and tokens:
                    stmt = finish()
                    if stmt:
                        yield stmt
            elif "\n" in text:
                line += text.count("\n")
            continue
        if kind == "op" and text == ";" and batch in (0, 3):
            stmt = finish()
            if stmt:
                yield stmt
            continue
        if not tokens:
            start_line = line
            word = text.upper() if kind == "ident" else ""
            shell = word in SHELL_COMMANDS
            batch = 1 if word == "BEGIN" else 0
        elif batch:
            word = text.upper() if kind == "ident" else ""
            if batch == 1 and word in ("APPLY", "END"):
                batch = 2
            elif batch == 2:
                batch = 3 if word in ("BATCH", "TRANSACTION") else 1
        if pending:
            gap = "".join(pending)
            parts.append(gap)
            stmt_len += len(gap)
            pending.clear()
        tokens.append(Token(kind, text, stmt_len))
        parts.append(text)
        stmt_len += len(text)
        if kind in ("string", "qident") and "\n" in text:
            line += text.count("\n")
    if batch in (1, 2) and tokens:
        raise ScriptError(f"{file}:{start_line}: BEGIN without APPLY BATCH / END TRANSACTION at end of file")
    stmt = finish()
    if stmt:
        yield stmt


def iter_script_file(path: Path, *, follow_source: bool = True, _depth: int = 0) -> Iterator[Statement]:
    """Statements of a file; ``SOURCE 'other.cql'`` is followed (relative to the including file)."""
    name = str(path)
    for stmt in iter_statements(_chunks(path), name):
        if follow_source and stmt.shell and stmt.keyword == "SOURCE":
            target = _source_target(stmt)
            if _depth >= MAX_SOURCE_DEPTH:
                raise ScriptError(f"{name}:{stmt.line}: SOURCE nested more than {MAX_SOURCE_DEPTH} deep")
            included = (path.parent / target) if not Path(target).is_absolute() else Path(target)
            if not included.is_file():
                raise ScriptError(f"{name}:{stmt.line}: SOURCE file {target} not found")
            yield from iter_script_file(included, follow_source=True, _depth=_depth + 1)
            continue
        yield stmt


def _source_target(stmt: Statement) -> str:
    args = stmt.tokens[1:]
    if len(args) != 1 or args[0].kind != "string":
        raise ScriptError(f"{stmt.file}:{stmt.line}: SOURCE needs one quoted file name")
    return args[0].value()


def _trailing_comment_start(text: str) -> int | None:
    """Where comments at the end of a statement start (they are not part of it), or None."""
    if "--" not in text and "//" not in text and "*/" not in text:
        return None
    tokens_end = 0
    for m in _LEX.finditer(text):
        if m.lastgroup not in ("ws", "nl"):
            tokens_end = m.end()
    return tokens_end if tokens_end < len(text) else None
