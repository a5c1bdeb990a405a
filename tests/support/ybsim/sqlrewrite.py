"""Rewrite SQL text sent to the emulator into what the upstream PostgreSQL runs.

Works on pglast's scanner tokens (byte offsets into the UTF-8 text), so statements PostgreSQL's
grammar rejects (YSQL's HASH key columns, SPLIT clauses, TABLEGROUP, NONCONCURRENTLY) can still be
taken apart. A query becomes a list of ``Step``s; each step is sent to the upstream as one Query
message and the next one only after it succeeded, so the bookkeeping statements that follow a
YSQL DDL statement never become part of the DDL's own query text (``current_query()``).
Every behaviour here is cited in README.md.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol

from pglast import parser
from psycopg import sql

_NOT_WORDS = {"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST", "PARAM", "Op"}
HASH_CODE_SQL = (b"(pg_catalog.hashtextextended(ROW(", b")::text, 0) & 65535)::integer")

# Functions YugabyteDB's logical replication docs list as unsupported (README: "unsupported
# functions"), rewritten to a call that raises; the replacement keeps the result type so the
# surrounding expression still parses.
UNSUPPORTED = {
    "txid_current": "pg_catalog.yb_sim_unsupported_bigint",
    "pg_current_wal_lsn": "pg_catalog.yb_sim_unsupported_lsn",
    "pg_wal_lsn_diff": "pg_catalog.yb_sim_unsupported_lsn",
    "pg_logical_slot_get_changes": "pg_catalog.yb_sim_unsupported_changes",
    "pg_logical_slot_peek_changes": "pg_catalog.yb_sim_unsupported_changes",
    "pg_logical_slot_get_binary_changes": "pg_catalog.yb_sim_unsupported_changes",
    "pg_logical_slot_peek_binary_changes": "pg_catalog.yb_sim_unsupported_changes",
    "pg_control_system": "pg_catalog.yb_sim_unsupported_changes",
}
RENAMED_FUNCTIONS = {
    "version": "pg_catalog.yb_sim_version",
    "pg_get_indexdef": "pg_catalog.yb_sim_get_indexdef",
    "current_setting": "pg_catalog.yb_sim_current_setting",
}
RENAMED_RELATIONS = {"pg_replication_slots": "pg_catalog.yb_sim_replication_slots"}


class YbError(Exception):
    """An error YugabyteDB raises for this statement (the emulator answers it without the upstream)."""

    def __init__(self, message: str, code: str = "0A000", hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint


@dataclass
class Stmt:
    sql: bytes
    hide: bool = False  # drop its result rows and CommandComplete
    tag: bytes | None = None  # replace its result with this CommandComplete tag


@dataclass
class Step:
    stmts: list[Stmt] = field(default_factory=list)
    # Proxy-side work: ("release", dbname) before sending (close the snapshot keeper's sessions),
    # ("colocate", dbname) after success.
    before: list[tuple[str, str]] = field(default_factory=list)
    after: list[tuple[str, str]] = field(default_factory=list)


class Session(Protocol):
    """What the rewrite needs to know about the client session."""

    superuser: bool
    colocated: bool
    in_transaction: bool
    read_time_us: int | None  # session-level yb_read_time
    truncate_streamed_allowed: bool  # yb-master flag enable_truncate_cdcsdk_table

    def snapshot_for(self, value: str) -> str:
        """The upstream snapshot name serving yb_read_time ``value`` (µs, or '<n> ht')."""
        ...


@dataclass(frozen=True)
class Tok:
    start: int
    end: int  # exclusive
    name: str
    text: bytes

    @property
    def word(self) -> str | None:
        """The lower-cased keyword/identifier, None for literals, operators and quoted names."""
        if self.name in _NOT_WORDS or self.name.startswith("ASCII_") or self.text.startswith(b'"'):
            return None
        return self.text.decode().lower()

    def is_(self, char: str) -> bool:
        return self.name == f"ASCII_{ord(char)}"


def tokens(text: bytes) -> list[Tok] | None:
    """Scanner tokens with byte offsets, or None when the text does not scan (the upstream reports
    the error). pglast reports character offsets."""
    try:
        decoded = text.decode()
        scanned = [t for t in parser.scan(decoded) if t.name not in ("SQL_COMMENT", "C_COMMENT")]
    except Exception:
        return None
    if decoded.isascii():
        return [Tok(t.start, t.end + 1, t.name, text[t.start : t.end + 1]) for t in scanned]
    offsets = list(itertools.accumulate((len(ch.encode()) for ch in decoded), initial=0))
    return [
        Tok(offsets[t.start], offsets[t.end + 1], t.name, text[offsets[t.start] : offsets[t.end + 1]]) for t in scanned
    ]


def split_statements(text: bytes, toks: list[Tok]) -> list[tuple[bytes, list[Tok]]]:
    """Statements (text, tokens rebased to it), split at top-level semicolons."""
    out: list[tuple[bytes, list[Tok]]] = []
    depth = 0
    begin = 0
    current: list[Tok] = []
    for t in toks:
        if t.is_("("):
            depth += 1
        elif t.is_(")"):
            depth = max(0, depth - 1)
        if t.is_(";") and depth == 0:
            if current:
                out.append(_rebase(text, begin, t.start, current))
            current, begin = [], t.end
            continue
        current.append(t)
    if current:
        out.append(_rebase(text, begin, len(text), current))
    return out


def _rebase(text: bytes, begin: int, end: int, toks: list[Tok]) -> tuple[bytes, list[Tok]]:
    start = toks[0].start
    piece = text[start:end].rstrip()
    return piece, [Tok(t.start - start, t.end - start, t.name, t.text) for t in toks]


def _matching(toks: list[Tok], i: int) -> int:
    """Index of the ')' closing the '(' at ``i``."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].is_("("):
            depth += 1
        elif toks[j].is_(")"):
            depth -= 1
            if depth == 0:
                return j
    raise YbError("syntax error: unbalanced parentheses", "42601")


def _split_commas(toks: list[Tok], lo: int, hi: int) -> list[tuple[int, int]]:
    """Index ranges [a, b) of the comma-separated items in toks[lo:hi] (at that nesting level)."""
    items = []
    depth = 0
    a = lo
    for j in range(lo, hi):
        if toks[j].is_("("):
            depth += 1
        elif toks[j].is_(")"):
            depth -= 1
        elif toks[j].is_(",") and depth == 0:
            items.append((a, j))
            a = j + 1
    if a < hi:
        items.append((a, hi))
    return items


def _apply(text: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = []
    pos = 0
    for start, end, replacement in sorted(edits):
        if start < pos:
            continue  # overlapping edit: the outer one already covers it
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return b"".join(out)


def _literal(value: object) -> bytes:
    return sql.Literal(value).as_string(None).encode()


# -- names: functions and relations YugabyteDB has differently --------------------------------------
def rewrite_names(text: bytes, toks: list[Tok], bodies: bool = False) -> bytes:
    """Rename calls and relations; with ``bodies``, also inside dollar-quoted function bodies
    (a function created through the endpoint calls what YugabyteDB has, e.g. no txid_current)."""
    edits: list[tuple[int, int, bytes]] = []
    for i, t in enumerate(toks):
        if bodies and t.name == "SCONST" and t.text.startswith(b"$"):
            tag = t.text[: t.text.index(b"$", 1) + 1]
            inner = t.text[len(tag) : len(t.text) - len(tag)]
            inner_toks = tokens(inner)
            if inner_toks:
                edits.append((t.start, t.end, tag + rewrite_names(inner, inner_toks) + tag))
            continue
        word = t.word
        if word is None:
            continue
        calls = i + 1 < len(toks) and toks[i + 1].is_("(")
        if word == "relreplident" and not calls:
            edits.append(_relreplident(toks, i))
            continue
        qualified = i >= 2 and toks[i - 1].is_(".")
        if qualified and toks[i - 2].word != "pg_catalog":
            continue
        if i + 1 < len(toks) and toks[i - 1].word in ("function", "procedure", "table", "into"):
            continue  # CREATE FUNCTION version(...): a definition, not a call
        first = toks[i - 2].start if qualified else t.start
        if calls and word in UNSUPPORTED:
            close = _matching(toks, i + 1)
            edits.append((first, toks[close].end, UNSUPPORTED[word].encode() + b"(" + _literal(word) + b")"))
        elif calls and word in RENAMED_FUNCTIONS:
            edits.append((first, t.end, RENAMED_FUNCTIONS[word].encode()))
        elif calls and word == "yb_hash_code":
            close = _matching(toks, i + 1)
            inner = text[toks[i + 1].end : toks[close].start]
            # inline (no function call per row): the emulator's own hash of the key, 0..65535
            edits.append((first, toks[close].end, HASH_CODE_SQL[0] + inner + HASH_CODE_SQL[1]))
        elif not calls and word in RENAMED_RELATIONS:
            edits.append((first, t.end, RENAMED_RELATIONS[word].encode()))
    return _apply(text, edits)


def _relreplident(toks: list[Tok], i: int) -> tuple[int, int, bytes]:
    """``c.relreplident`` -> the identity YugabyteDB reports (CHANGE is 'c')."""
    t = toks[i]
    if i >= 2 and toks[i - 1].is_("."):
        alias = toks[i - 2].text
        start = toks[i - 2].start
        before = toks[i - 3] if i >= 3 else None
    else:
        alias = b"pg_class"
        start = t.start
        before = toks[i - 1] if i >= 1 else None
    expr = b"pg_catalog.yb_sim_relreplident(" + alias + b".oid, " + alias + b".relreplident)"
    after = toks[i + 1] if i + 1 < len(toks) else None
    in_select_list = before is not None and (before.word == "select" or before.is_(",")) and (
        after is None or after.is_(",") or after.word == "from"
    )
    return start, t.end, expr + (b" AS relreplident" if in_select_list else b"")


# -- statements ---------------------------------------------------------------------------------
def rewrite_query(text: bytes, session: Session) -> list[Step]:
    """The upstream steps for one simple-protocol Query message."""
    toks = tokens(text)
    if toks is None or not toks:
        return [Step([Stmt(text)])]
    steps: list[Step] = [Step()]
    for stmt_text, stmt_toks in split_statements(text, toks):
        for n, step in enumerate(rewrite_statement(stmt_text, stmt_toks, session)):
            if n == 0 and not step.before and not steps[-1].after:
                steps[-1].stmts += step.stmts
                steps[-1].after += step.after
            else:
                steps.append(step)
    return [s for s in steps if s.stmts or s.after or s.before]


def rewrite_statement(text: bytes, toks: list[Tok], session: Session) -> list[Step]:
    words = [t.word for t in toks[:8]]
    head = words[0]
    if head in ("set", "reset", "show"):
        return _settings(text, toks, session)
    if head in ("begin", "start") and session.read_time_us is not None and not session.in_transaction:
        # A session-level yb_read_time applies to every transaction the session starts.
        snap = session.snapshot_for(str(session.read_time_us))
        return [
            Step(
                [
                    Stmt(text),
                    Stmt(b"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", hide=True),
                    Stmt(b"SET TRANSACTION SNAPSHOT " + _literal(snap), hide=True),
                ]
            )
        ]
    if head == "create":
        rest = [w for w in words[1:] if w not in ("global", "local", "temp", "temporary", "unlogged")]
        if rest and rest[0] == "table":
            steps = _create_table(text, toks, session)
            if steps is not None:
                return steps
        if rest and rest[0] in ("index", "unique"):
            return _create_index(text, toks)
        if rest and rest[0] == "tablegroup":
            if session.colocated:  # tablegroup.c CreateTableGroup
                raise YbError("cannot use tablegroups in a colocated database", "0A000")
            return _create_tablegroup(toks)
        if rest and rest[0] == "database":
            return _create_database(text, toks)
    if head == "drop" and len(words) > 1:
        if words[1] == "tablegroup":
            exists = words[2:4] == ["if", "exists"]
            name = toks[4 if exists else 2].text.strip(b'"').decode()
            call = b"SELECT pg_catalog.yb_sim_drop_tablegroup(" + _literal(name) + b", " + _literal(exists) + b")"
            return [Step([Stmt(call, tag=b"DROP TABLEGROUP")])]
        if words[1] == "database":
            exists = words[2:4] == ["if", "exists"]
            name = toks[4 if exists else 2].text.strip(b'"').decode()
            return [Step([Stmt(text)], before=[("release", name)])]
    if head == "truncate" and not session.truncate_streamed_allowed:
        return _truncate(text, toks)
    if head == "alter" and len(words) > 1 and words[1] == "table":
        steps = _replica_identity(text, toks)
        if steps is not None:
            return steps
    bodies = head == "do" or (head == "create" and ("function" in words or "procedure" in words))
    return [Step([Stmt(rewrite_names(text, toks, bodies))])]


def _settings(text: bytes, toks: list[Tok], session: Session) -> list[Step]:
    """SET/RESET/SHOW of YugabyteDB parameters: yb_read_time is emulated, other yb_* are kept as
    placeholders (yb_sim.<name>) so that setting and showing them works."""
    words = [t.word for t in toks]
    i = 1
    local = False
    if words[0] == "set" and len(words) > 1 and words[1] in ("local", "session"):
        local = words[1] == "local"
        i = 2
    if i >= len(toks) or not (words[i] or "").startswith("yb_"):
        return [Step([Stmt(rewrite_names(text, toks))])]
    name = words[i] or ""
    if name == "yb_read_time" and words[0] in ("set", "reset"):
        if not session.superuser:
            raise YbError('permission denied to set parameter "yb_read_time"', "42501")
        value = ""
        if words[0] == "set" and i + 2 < len(toks):
            value = b" ".join(t.text for t in toks[i + 2 :]).decode().strip("'")
        if words[0] == "reset" or value in ("0", "default", ""):
            session.read_time_us = None
            return [Step([Stmt(b"SET yb_sim.yb_read_time = '0'", tag=b"SET" if words[0] == "set" else b"RESET")])]
        if local:
            if not session.in_transaction:
                return [Step([Stmt(b"SET LOCAL yb_sim.yb_read_time = " + _literal(value), tag=b"SET")])]
            snap = session.snapshot_for(value)
            return [Step([Stmt(b"SET TRANSACTION SNAPSHOT " + _literal(snap), tag=b"SET")])]
        snap = session.snapshot_for(value)  # checks the time now, as YugabyteDB does on SET
        if value.endswith(" ht"):
            session.read_time_us = int(value[:-3]) >> 12
        else:
            session.read_time_us = int(value)
        del snap
        return [Step([Stmt(b"SET yb_sim.yb_read_time = " + _literal(value), tag=b"SET")])]
    renamed = text[: toks[i].start] + b"yb_sim." + toks[i].text + text[toks[i].end :]
    return [Step([Stmt(renamed)])]


@dataclass
class _Table:
    name: bytes = b""
    ords: list[str] | None = None
    tablets: int | None = None
    split: str | None = None
    tablegroup: str | None = None
    colocation: bool | None = None
    has_pk: bool = False
    temporary: bool = False
    split_kind: str | None = None  # "into" or "at"


def _qualified_name(toks: list[Tok], i: int) -> int:
    """Index after a possibly qualified name starting at ``i``."""
    j = i + 1
    while j + 1 < len(toks) and toks[j].is_("."):
        j += 2
    return j


def _create_table(text: bytes, toks: list[Tok], session: Session) -> list[Step] | None:
    info = _Table()
    i = 1
    while toks[i].word in ("global", "local", "temp", "temporary", "unlogged"):
        info.temporary = info.temporary or toks[i].word in ("temp", "temporary")
        i += 1
    i += 1  # TABLE
    if [t.word for t in toks[i : i + 3]] == ["if", "not", "exists"]:
        i += 3
    end_name = _qualified_name(toks, i)
    info.name = text[toks[i].start : toks[end_name - 1].end]
    i = end_name
    edits: list[tuple[int, int, bytes]] = []
    if i < len(toks) and toks[i].word == "partition" and toks[i + 1].word == "of":
        i = _qualified_name(toks, i + 2)
    if i < len(toks) and toks[i].word == "of":
        return None  # typed table
    close = None
    if i < len(toks) and toks[i].is_("("):
        close = _matching(toks, i)
        for a, b in _split_commas(toks, i + 1, close):
            _table_element(text, toks, a, b, info, edits)
        i = close + 1
    elif i >= len(toks) or toks[i].word in ("as", "execute"):
        return None  # CREATE TABLE AS: no key, nothing YugabyteDB-specific
    _table_tail(text, toks, i, info, edits)
    _check_table(info, session)
    pg_text = _apply(text, edits).rstrip()
    pg_text = rewrite_names(pg_text, tokens(pg_text) or [])
    steps = [Step([Stmt(pg_text)])]
    if info.tablegroup is not None:
        check = b"SELECT pg_catalog.yb_sim_check_tablegroup(" + _literal(info.tablegroup) + b")"
        steps.insert(0, Step([Stmt(check, hide=True)]))
    if not info.temporary:  # YugabyteDB keeps temporary tables local: no sharding to record
        note = (
            b"SELECT pg_catalog.yb_sim_note_table("
            + b", ".join(
                [
                    _literal(info.name.decode()),
                    _literal(info.ords) + b"::text[]" if info.ords is not None else b"NULL",
                    _literal(info.tablets),
                    _literal(info.split),
                    _literal(info.tablegroup),
                    _literal(info.colocation),
                ]
            )
            + b")"
        )
        steps.append(Step([Stmt(note, hide=True)]))
    return steps


def _table_element(
    text: bytes, toks: list[Tok], a: int, b: int, info: _Table, edits: list[tuple[int, int, bytes]]
) -> None:
    words = [t.word for t in toks[a:b]]
    j = a
    if words and words[0] == "constraint":
        j = a + 2
    if toks[j].word == "primary" and j + 2 < b and toks[j + 1].word == "key" and toks[j + 2].is_("("):
        open_ = j + 2
        close = _matching(toks, open_)
        cols, ords = _key_columns(text, toks, open_ + 1, close, allow_groups=True)
        info.ords = ords
        info.has_pk = True
        edits.append((toks[open_].end, toks[close].start, ", ".join(cols).encode()))
    elif "primary" in words:
        info.has_pk = True  # a column's inline PRIMARY KEY: YugabyteDB's default ordering applies


def _key_columns(
    text: bytes, toks: list[Tok], lo: int, hi: int, allow_groups: bool
) -> tuple[list[str], list[str]]:
    """Key items ``(a, b) HASH``, ``c ASC``, ``d HASH``: the PostgreSQL column texts, and one
    ordering per column (HASH/ASC/DESC/DEFAULT)."""
    cols: list[str] = []
    ords: list[str] = []
    for a, b in _split_commas(toks, lo, hi):
        last = toks[b - 1].word
        if allow_groups and toks[a].is_("(") and _matching(toks, a) == b - 2 and last == "hash":
            inner = _split_commas(toks, a + 1, b - 2)
            for x, y in inner:
                cols.append(text[toks[x].start : toks[y - 1].end].decode())
                ords.append("HASH")
            continue
        end = b
        ordering = "DEFAULT"
        if last == "hash":
            ordering, end = "HASH", b - 1
        else:
            for k in range(a, b):
                if toks[k].word in ("asc", "desc"):
                    ordering = toks[k].word.upper()  # type: ignore[union-attr]
        if ordering == "ASC" and allow_groups:
            end = next(k for k in range(a, b) if toks[k].word == "asc")
        if ordering == "DESC" and allow_groups:
            end = next(k for k in range(a, b) if toks[k].word == "desc")
        cols.append(text[toks[a].start : toks[end - 1].end].decode())
        ords.append(ordering)
    return cols, ords


def _split_values(toks: list[Tok], lo: int, hi: int) -> str:
    """``SPLIT AT VALUES ((1), (100))`` normalised the way yb_get_range_split_clause prints it."""
    rows = []
    for a, b in _split_commas(toks, lo, hi):
        if not toks[a].is_("("):
            raise YbError("syntax error in SPLIT AT VALUES", "42601")
        values = [b"".join(t.text for t in toks[x:y]).decode() for x, y in _split_commas(toks, a + 1, b - 1)]
        rows.append("(" + ", ".join(values) + ")")
    return "SPLIT AT VALUES (" + ", ".join(rows) + ")"


def _split_clause(toks: list[Tok], i: int) -> tuple[int, int | None, str | None, int]:
    """Parse SPLIT INTO n TABLETS / SPLIT AT VALUES (...) at ``i``: (end, tablets, clause, points)."""
    if toks[i + 1].word == "into":
        if len(toks) <= i + 3 or toks[i + 2].name != "ICONST" or toks[i + 3].word != "tablets":
            raise YbError("syntax error at or near \"SPLIT\"", "42601")
        return i + 4, int(toks[i + 2].text), None, 0
    if toks[i + 1].word == "at" and toks[i + 2].word == "values" and toks[i + 3].is_("("):
        close = _matching(toks, i + 3)
        clause = _split_values(toks, i + 4, close)
        points = len(_split_commas(toks, i + 4, close))
        return close + 1, points + 1, clause, points
    raise YbError("syntax error at or near \"SPLIT\"", "42601")


def _table_tail(text: bytes, toks: list[Tok], i: int, info: _Table, edits: list[tuple[int, int, bytes]]) -> None:
    while i < len(toks):
        w = toks[i].word
        if w == "with" and i + 1 < len(toks) and toks[i + 1].is_("("):
            close = _matching(toks, i + 1)
            kept = []
            for a, b in _split_commas(toks, i + 2, close):
                key = toks[a].word
                if key in ("colocation", "colocated"):
                    value = toks[b - 1].word if b - a >= 3 else "true"
                    info.colocation = value in ("true", "on", "1", "yes")
                elif key == "colocation_id":
                    continue
                else:
                    kept.append(text[toks[a].start : toks[b - 1].end])
            replacement = b"WITH (" + b", ".join(kept) + b")" if kept else b""
            edits.append((toks[i].start, toks[close].end, replacement))
            i = close + 1
        elif w == "tablegroup":
            info.tablegroup = toks[i + 1].text.strip(b'"').decode()
            edits.append((toks[i].start, toks[i + 1].end, b""))
            i += 2
        elif w == "split":
            end, tablets, clause, _ = _split_clause(toks, i)
            info.tablets, info.split = tablets, clause
            info.split_kind = "at" if clause else "into"
            edits.append((toks[i].start, toks[end - 1].end, b""))
            i = end
        else:
            i += 1


def _check_table(info: _Table, session: Session) -> None:
    """The checks YugabyteDB's CREATE TABLE makes that PostgreSQL's grammar cannot."""
    if info.colocation and not session.colocated:
        raise YbError("cannot set colocation true on a non-colocated database", "0A000")
    colocated = info.tablegroup is not None or (session.colocated and info.colocation is not False)
    kind = info.split_kind
    if kind is None:
        return
    if colocated:
        raise YbError("cannot create colocated table with split option", "0A000")
    first = (info.ords or ["DEFAULT"])[0] if info.has_pk else None
    hashed = first in ("HASH", "DEFAULT") if info.has_pk else True
    if kind == "into" and not hashed:
        raise YbError("HASH columns must be present to split by number of tablets", "42P17")
    if kind == "at":
        if not info.has_pk:
            raise YbError("cannot split table that does not have primary key", "42P17")
        if hashed:
            raise YbError("SPLIT AT option is not yet supported for hash partitioned tables", "0A000")


def _create_index(text: bytes, toks: list[Tok]) -> list[Step]:
    edits: list[tuple[int, int, bytes]] = []
    i = 1
    if toks[i].word == "unique":
        i += 1
    i += 1  # INDEX
    if toks[i].word == "nonconcurrently":
        edits.append((toks[i].start, toks[i].end + 1, b""))
        i += 1
    elif toks[i].word == "concurrently":
        i += 1
    if [t.word for t in toks[i : i + 3]] == ["if", "not", "exists"]:
        i += 3
    name = None
    if toks[i].word != "on":
        name = toks[i].text.strip(b'"').decode()
        i += 1
    i += 1  # ON
    if toks[i].word == "only":
        i += 1
    end_name = _qualified_name(toks, i)
    table = text[toks[i].start : toks[end_name - 1].end].decode()
    i = end_name
    if toks[i].word == "using":
        method = toks[i + 1].word
        if method == "lsm":
            edits.append((toks[i + 1].start, toks[i + 1].end, b"btree"))
        elif method == "ybgin":
            edits.append((toks[i + 1].start, toks[i + 1].end, b"gin"))
        i += 2
    if not toks[i].is_("("):
        return [Step([Stmt(rewrite_names(text, toks))])]
    close = _matching(toks, i)
    _, ords = _key_columns(text, toks, i + 1, close, allow_groups=True)
    # HASH goes (the upstream index is a btree); ASC/DESC/NULLS/opclass stay as written.
    pieces = []
    for a, b in _split_commas(toks, i + 1, close):
        if toks[b - 1].word == "hash":
            if toks[a].is_("(") and _matching(toks, a) == b - 2:
                pieces.append(text[toks[a + 1].start : toks[b - 3].end])
            else:
                pieces.append(text[toks[a].start : toks[b - 2].end])
        else:
            pieces.append(text[toks[a].start : toks[b - 1].end])
    edits.append((toks[i].end, toks[close].start, b", ".join(pieces)))
    i = close + 1
    tablets = None
    split = None
    while i < len(toks):
        if toks[i].word == "split":
            end, tablets, split, _ = _split_clause(toks, i)
            if split is None and ords and ords[0] in ("ASC", "DESC"):
                raise YbError("HASH columns must be present to split by number of tablets", "42P17")
            if split is not None and ords and ords[0] == "HASH":
                raise YbError("SPLIT AT option is not yet supported for hash partitioned tables", "0A000")
            edits.append((toks[i].start, toks[end - 1].end, b""))
            i = end
        else:
            i += 1
    pg_text = _apply(text, edits).rstrip()
    pg_text = rewrite_names(pg_text, tokens(pg_text) or [])
    note = (
        b"SELECT pg_catalog.yb_sim_note_index("
        + b", ".join([_literal(table), _literal(name), _literal(ords) + b"::text[]", _literal(tablets), _literal(split)])
        + b")"
    )
    return [Step([Stmt(pg_text)]), Step([Stmt(note, hide=True)])]


def _create_tablegroup(toks: list[Tok]) -> list[Step]:
    name = toks[2].text.strip(b'"').decode()
    owner = None
    for k in range(3, len(toks) - 1):
        if toks[k].word == "owner":
            owner = toks[k + 1].text.strip(b'"').decode()
    call = b"SELECT pg_catalog.yb_sim_create_tablegroup(" + _literal(name) + b", " + _literal(owner) + b")"
    return [Step([Stmt(call, tag=b"CREATE TABLEGROUP")])]


def _create_database(text: bytes, toks: list[Tok]) -> list[Step]:
    name = toks[2].text.strip(b'"').decode()
    edits: list[tuple[int, int, bytes]] = []
    colocated = False
    template = None
    for k in range(3, len(toks)):
        w = toks[k].word
        if w in ("colocation", "colocated"):
            j = k + 1
            if j < len(toks) and toks[j].is_("="):
                j += 1
            colocated = (toks[j].word if j < len(toks) else "true") in ("true", "on", "1", "yes")
            edits.append((toks[k].start, toks[j].end, b""))
        elif w == "template" and k + 1 < len(toks):
            j = k + 2 if toks[k + 1].is_("=") else k + 1
            template = toks[j].text.strip(b'"').decode()
        elif w == "as" and k + 1 < len(toks) and toks[k + 1].word == "of":
            raise YbError(
                "CREATE DATABASE ... AS OF (instant database clone) is not emulated by ybsim", "0A000"
            )
    steps = Step([Stmt(_apply(text, edits))])
    if template:
        steps.before.append(("release", template))
    if colocated:
        steps.after.append(("colocate", name))
    return [steps]


def _truncate(text: bytes, toks: list[Tok]) -> list[Step]:
    """TRUNCATE of a table in a CDC stream fails unless the yb-master flag enable_truncate_cdcsdk_table
    is true (docs reference/configuration/yb-master.md; src/yb/integration-tests/cdcsdk_ysql-test.cc,
    TestTruncateTable: ASSERT_NOK after CreateDBStreamWithReplicationSlot). Emulated as: a slot exists
    in this database and a named table has a primary key (the tables such a stream holds). Tables
    reached only through CASCADE are not checked."""
    i = 2 if len(toks) > 1 and toks[1].word == "table" else 1
    end = next((k for k in range(i, len(toks)) if toks[k].word in _TRUNCATE_TAIL), len(toks))
    names = []
    for a, b in _split_commas(toks, i, end):
        while a < b and toks[a].word == "only":
            a += 1
        while b > a and toks[b - 1].is_("*"):
            b -= 1
        if a < b:
            names.append(text[toks[a].start : toks[b - 1].end].decode())
    array = b"ARRAY[" + b", ".join(_literal(n) for n in names) + b"]::text[]"
    check = b"SELECT pg_catalog.yb_sim_check_truncate(" + array + b")"
    return [Step([Stmt(check, hide=True), Stmt(text)])]


_TRUNCATE_TAIL = ("restart", "continue", "cascade", "restrict")


def _replica_identity(text: bytes, toks: list[Tok]) -> list[Step] | None:
    words = [t.word for t in toks]
    if "replica" not in words:
        return None
    k = words.index("replica")
    if k + 2 >= len(toks) or words[k + 1] != "identity":
        return None
    i = 2
    if words[i] == "if":
        i += 2
    if words[i] == "only":
        i += 1
    end_name = _qualified_name(toks, i)
    table = text[toks[i].start : toks[end_name - 1].end].decode()
    kind = words[k + 2]
    if kind == "using":
        raise YbError("replica identity INDEX is not supported in YugabyteDB", "0A000")
    if kind not in ("change", "default", "full", "nothing"):
        return None
    upstream = {"change": b"DEFAULT", "default": b"DEFAULT", "full": b"FULL", "nothing": b"NOTHING"}[kind or ""]
    pg_text = text[: toks[k + 2].start] + upstream + text[toks[k + 2].end :]
    note = b"SELECT pg_catalog.yb_sim_set_identity(" + _literal(table) + b", " + _literal(kind.upper()) + b")"
    return [Step([Stmt(pg_text)]), Step([Stmt(note, hide=True)])]


def needs_session(text: bytes) -> bool:
    """Whether a statement's rewrite depends on the session or takes several steps; such statements
    sent with the extended protocol are run by the endpoint as a simple query at Execute."""
    toks = tokens(text)
    if not toks:
        return False
    words = [t.word for t in toks[:6]]
    head = words[0]
    if head in ("set", "reset", "show"):
        return any((w or "").startswith("yb_") for w in words[1:3])
    if head in ("begin", "start", "truncate"):
        return True
    rest = [w for w in words[1:] if w not in ("global", "local", "temp", "temporary", "unlogged", "unique")]
    if head == "create" and rest and rest[0] in ("table", "index", "tablegroup", "database"):
        return True
    if head == "drop" and len(words) > 1 and words[1] in ("tablegroup", "database"):
        return True
    return head == "alter" and "replica" in [t.word for t in toks]


def rewrite_extended(text: bytes) -> bytes:
    """A Parse message's query: only name rewrites (one statement, no bookkeeping steps)."""
    toks = tokens(text)
    if not toks:
        return text
    return rewrite_names(text, toks)
