"""CQL text -> AST: a tokenizer and a recursive-descent parser for the statements cqlsim supports.

Only the statements (and clauses) that ybrewind and its tests use are accepted. Anything else raises
``CqlError(SYNTAX_ERROR, ...)`` naming the unsupported statement or clause, so the simulator never
silently accepts CQL it does not implement.

Unquoted identifiers are case-insensitive (folded to lower case); double-quoted identifiers (with
``""`` for an embedded quote) keep their case. Literal values stay untyped here (``Literal(kind, text)``); they are converted to typed values by
``datatypes.literal_value`` once the target column type is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .errors import SYNTAX_ERROR, CqlError

# --------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------

_DURATION_UNIT = r"(?:y|mo|w|d|h|ms|us|µs|ns|m|s)"
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|--[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<dollar>\$\$.*?\$\$)
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<hex>0[xX][0-9a-fA-F]*)
  | (?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
  | (?P<duration>(?:\d+"""
    + _DURATION_UNIT
    + r""")+(?!\w))
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_]*)
  | (?P<op><=|>=|!=|[(),;.=<>+\-*\[\]{}:?])
    """,
    re.VERBOSE | re.DOTALL | re.IGNORECASE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # string, qident, hex, uuid, duration, float, int, ident, op, eof
    text: str  # raw source text
    start: int
    end: int

    @property
    def word(self) -> str:
        """Upper-cased text, for keyword comparison."""
        return self.text.upper() if self.kind == "ident" else ""


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise CqlError(SYNTAX_ERROR, f"line 1:{pos} unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            if kind == "dollar":
                kind = "string"
            tokens.append(Token(kind, m.group(), m.start(), m.end()))
        pos = m.end()
    tokens.append(Token("eof", "", len(text), len(text)))
    return tokens


# --------------------------------------------------------------------------------------------------
# AST: terms (values)
# --------------------------------------------------------------------------------------------------


@dataclass
class Literal:
    """An untyped constant. kind: string, int, float, hex, uuid, duration, bool, null, nan, inf."""

    kind: str
    text: str  # for strings: the unescaped content; for numbers: the digits incl. sign


@dataclass
class Marker:
    """A ``?`` bind marker; ``index`` is its position among all markers of the statement."""

    index: int


@dataclass
class ListLit:
    items: list[Any]


@dataclass
class SetLit:
    items: list[Any]


@dataclass
class MapLit:
    """``{k: v, ...}`` - a map literal, or a UDT literal when the keys are field identifiers."""

    pairs: list[tuple[Any, Any]]


@dataclass
class TupleLit:
    items: list[Any]


@dataclass
class Ident:
    """A bare identifier in value position (valid only as a UDT field name)."""

    name: str


Term = Literal | Marker | ListLit | SetLit | MapLit | TupleLit | Ident


# --------------------------------------------------------------------------------------------------
# AST: statements
# --------------------------------------------------------------------------------------------------


@dataclass
class TypeExpr:
    """A type as written: ``name`` with ``params`` (``frozen`` wraps) - resolved by datatypes.resolve."""

    name: str
    params: list[TypeExpr] = field(default_factory=list)
    frozen: bool = False
    keyspace: str | None = None  # for qualified UDT names


@dataclass
class Using:
    timestamp: Term | None = None
    ttl: Term | None = None


@dataclass
class Relation:
    """``column op value``; ``function`` is 'token' / 'partition_hash' with ``columns`` as arguments."""

    columns: list[str]
    op: str  # = < <= > >= IN
    value: Term | list[Term]
    function: str | None = None


@dataclass
class Selector:
    """kind: column, writetime, ttl, token, partition_hash, count."""

    kind: str
    args: list[str]
    alias: str | None = None


@dataclass
class CreateKeyspace:
    name: str
    if_not_exists: bool
    replication: dict[str, str]
    durable_writes: bool = True


@dataclass
class DropKeyspace:
    name: str
    if_exists: bool


@dataclass
class UseKeyspace:
    name: str


@dataclass
class CreateType:
    keyspace: str | None
    name: str
    if_not_exists: bool
    fields: list[tuple[str, TypeExpr]]


@dataclass
class ColumnDef:
    name: str
    type: TypeExpr
    static: bool = False


@dataclass
class OptionValue:
    """A WITH option value: the parsed Python value plus the verbatim source text."""

    value: Any
    text: str


@dataclass
class CreateTable:
    keyspace: str | None
    name: str
    if_not_exists: bool
    columns: list[ColumnDef]
    partition_key: list[str]
    clustering: list[str]
    clustering_order: dict[str, str]
    options: dict[str, OptionValue]


@dataclass
class CreateIndex:
    keyspace: str | None
    name: str | None
    table: str
    if_not_exists: bool
    unique: bool
    hash_columns: list[str]
    range_columns: list[str]
    include: list[str]
    where: str | None
    options: dict[str, OptionValue]
    clustering_order: dict[str, str] = field(default_factory=dict)  # WITH CLUSTERING ORDER BY (c DESC, ...)


@dataclass
class Drop:
    what: str  # TABLE, INDEX, TYPE
    keyspace: str | None
    name: str
    if_exists: bool


@dataclass
class Truncate:
    keyspace: str | None
    table: str


@dataclass
class Insert:
    keyspace: str | None
    table: str
    columns: list[str]
    values: list[Term]
    if_not_exists: bool
    using: Using


@dataclass
class Assignment:
    """op: set (c = v), add (c = c + v), sub (c = c - v), prepend (c = v + c), set_elem (c[k] = v)."""

    column: str
    op: str
    value: Term
    key: Term | None = None


@dataclass
class Update:
    keyspace: str | None
    table: str
    using: Using
    assignments: list[Assignment]
    where: list[Relation]


@dataclass
class Delete:
    keyspace: str | None
    table: str
    targets: list[tuple[str, Term | None]]  # (column, element key or None)
    using: Using
    where: list[Relation]


@dataclass
class Batch:
    kind: str  # LOGGED, UNLOGGED, COUNTER
    statements: list[Insert | Update | Delete]
    using: Using


@dataclass
class Select:
    keyspace: str | None
    table: str
    distinct: bool
    selectors: list[Selector] | None  # None = *
    where: list[Relation]
    limit: Term | None
    allow_filtering: bool


Statement = (
    CreateKeyspace | DropKeyspace | UseKeyspace | CreateType | CreateTable | CreateIndex | Drop | Truncate
    | Insert | Update | Delete | Batch | Select
)


@dataclass
class Parsed:
    statement: Statement
    marker_count: int


# --------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------


def parse(text: str) -> Parsed:
    """Parse one CQL statement (a trailing ``;`` is allowed)."""
    parser = _Parser(text)
    stmt = parser.statement()
    parser.accept_op(";")
    if parser.peek().kind != "eof":
        parser.fail(f"unexpected input {parser.peek().text!r}")
    return Parsed(stmt, parser.markers)


def unsupported(what: str) -> CqlError:
    return CqlError(SYNTAX_ERROR, f"cqlsim does not support {what}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.markers = 0

    # -- token helpers -----------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def fail(self, message: str) -> NoReturn:
        tok = self.peek()
        raise CqlError(SYNTAX_ERROR, f"line 1:{tok.start} {message} (near {tok.text!r} in: {self.text})")

    def at_kw(self, *words: str) -> bool:
        return all(self.peek(i).word == w for i, w in enumerate(words))

    def accept_kw(self, *words: str) -> bool:
        if self.at_kw(*words):
            self.pos += len(words)
            return True
        return False

    def expect_kw(self, *words: str) -> None:
        if not self.accept_kw(*words):
            self.fail(f"expected {' '.join(words)}")

    def accept_op(self, op: str) -> bool:
        tok = self.peek()
        if tok.kind == "op" and tok.text == op:
            self.pos += 1
            return True
        return False

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            self.fail(f"expected {op!r}")

    def at_op(self, op: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text == op

    def ident(self) -> str:
        tok = self.next()
        if tok.kind == "ident":
            return tok.text.lower()
        if tok.kind == "qident":
            return tok.text[1:-1].replace('""', '"')
        self.pos -= 1
        self.fail("expected an identifier")

    def qualified_name(self) -> tuple[str | None, str]:
        first = self.ident()
        if self.accept_op("."):
            return first, self.ident()
        return None, first

    def if_not_exists(self) -> bool:
        return self.accept_kw("IF", "NOT", "EXISTS")

    def if_exists(self) -> bool:
        return self.accept_kw("IF", "EXISTS")

    # -- statements --------------------------------------------------------------------------------

    def statement(self) -> Statement:
        tok = self.peek()
        word = tok.word
        if word == "SELECT":
            return self.select()
        if word == "INSERT":
            return self.insert()
        if word == "UPDATE":
            return self.update()
        if word == "DELETE":
            return self.delete()
        if word == "BEGIN":
            return self.batch()
        if word == "USE":
            self.next()
            return UseKeyspace(self.ident())
        if word == "TRUNCATE":
            self.next()
            self.accept_kw("TABLE")
            ks, name = self.qualified_name()
            return Truncate(ks, name)
        if word == "CREATE":
            return self.create()
        if word == "DROP":
            return self.drop()
        raise unsupported(f"statement {self._statement_words()!r}")

    def _statement_words(self) -> str:
        """The leading keywords of a statement, e.g. 'ALTER TABLE' or 'CREATE MATERIALIZED VIEW'."""
        words = [self.peek(0).text.upper()]
        for i in (1, 2):
            tok = self.peek(i)
            if tok.kind != "ident" or (i == 2 and words[1] not in ("MATERIALIZED", "CUSTOM", "OR")):
                break
            words.append(tok.text.upper())
        return " ".join(words)

    def create(self) -> Statement:
        self.expect_kw("CREATE")
        if self.accept_kw("KEYSPACE") or self.accept_kw("SCHEMA"):
            return self.create_keyspace()
        if self.accept_kw("TABLE") or self.accept_kw("COLUMNFAMILY"):
            return self.create_table()
        if self.accept_kw("TYPE"):
            return self.create_type()
        if self.accept_kw("UNIQUE", "INDEX"):
            return self.create_index(unique=True)
        if self.accept_kw("INDEX"):
            return self.create_index(unique=False)
        self.pos -= 1
        raise unsupported(f"statement {self._statement_words()!r}")

    def drop(self) -> Statement:
        self.expect_kw("DROP")
        if self.accept_kw("KEYSPACE") or self.accept_kw("SCHEMA"):
            if_exists = self.if_exists()
            return DropKeyspace(self.ident(), if_exists)
        for what in ("TABLE", "INDEX", "TYPE"):
            if self.accept_kw(what) or (what == "TABLE" and self.accept_kw("COLUMNFAMILY")):
                if_exists = self.if_exists()
                ks, name = self.qualified_name()
                return Drop(what, ks, name, if_exists)
        self.pos -= 1
        raise unsupported(f"statement {self._statement_words()!r}")

    def create_keyspace(self) -> CreateKeyspace:
        if_not_exists = self.if_not_exists()
        name = self.ident()
        options = self.with_options() if self.accept_kw("WITH") else {}
        replication = options.pop("replication", None)
        if replication is None or not isinstance(replication.value, dict):
            raise CqlError(SYNTAX_ERROR, "CREATE KEYSPACE requires WITH replication = {...}")
        durable = options.pop("durable_writes", None)
        if options:
            raise unsupported(f"keyspace option(s) {sorted(options)}")
        return CreateKeyspace(
            name,
            if_not_exists,
            {str(k): str(v) for k, v in replication.value.items()},
            True if durable is None else bool(durable.value),
        )

    def create_type(self) -> CreateType:
        if_not_exists = self.if_not_exists()
        ks, name = self.qualified_name()
        self.expect_op("(")
        fields: list[tuple[str, TypeExpr]] = []
        while True:
            fname = self.ident()
            fields.append((fname, self.type_expr()))
            if not self.accept_op(","):
                break
        self.expect_op(")")
        return CreateType(ks, name, if_not_exists, fields)

    def create_table(self) -> CreateTable:
        if_not_exists = self.if_not_exists()
        ks, name = self.qualified_name()
        self.expect_op("(")
        columns: list[ColumnDef] = []
        partition_key: list[str] = []
        clustering: list[str] = []
        while True:
            if self.accept_kw("PRIMARY", "KEY"):
                if partition_key:
                    self.fail("multiple PRIMARY KEY definitions")
                self.expect_op("(")
                if self.accept_op("("):
                    partition_key = self.ident_list()
                    self.expect_op(")")
                else:
                    partition_key = [self.ident()]
                while self.accept_op(","):
                    clustering.append(self.ident())
                self.expect_op(")")
            else:
                cname = self.ident()
                ctype = self.type_expr()
                static = self.accept_kw("STATIC")
                if self.accept_kw("PRIMARY", "KEY"):
                    if partition_key:
                        self.fail("multiple PRIMARY KEY definitions")
                    partition_key = [cname]
                columns.append(ColumnDef(cname, ctype, static))
            if not self.accept_op(","):
                break
        self.expect_op(")")
        order: dict[str, str] = {}
        options: dict[str, OptionValue] = {}
        if self.accept_kw("WITH"):
            while True:
                if self.accept_kw("CLUSTERING", "ORDER", "BY"):
                    order.update(self.clustering_order_list())
                elif self.accept_kw("COMPACT", "STORAGE"):
                    raise unsupported("WITH COMPACT STORAGE")
                else:
                    key, value = self.option()
                    options[key] = value
                if not self.accept_kw("AND"):
                    break
        if not partition_key:
            raise CqlError(SYNTAX_ERROR, f"No PRIMARY KEY specified for table {name}")
        return CreateTable(ks, name, if_not_exists, columns, partition_key, clustering, order, options)

    def create_index(self, unique: bool) -> CreateIndex:
        if_not_exists = self.if_not_exists()
        name = None if self.at_kw("ON") else self.ident()
        self.expect_kw("ON")
        ks, table = self.qualified_name()
        self.expect_op("(")
        hash_columns: list[str] = []
        range_columns: list[str] = []
        if self.accept_op("("):
            hash_columns = self.ident_list()
            self.expect_op(")")
        else:
            hash_columns = [self._index_target()]
        while self.accept_op(","):
            range_columns.append(self._index_target())
        self.expect_op(")")
        include: list[str] = []
        if self.accept_kw("INCLUDE") or self.accept_kw("COVERING"):
            self.expect_op("(")
            include = self.ident_list()
            self.expect_op(")")
        where = None
        if self.accept_kw("WHERE"):
            start = self.peek().start
            while self.peek().kind != "eof" and not self.at_kw("WITH") and not self.at_op(";"):
                self.next()
            where = self.text[start : self.peek().start].strip()
        options: dict[str, OptionValue] = {}
        order: dict[str, str] = {}
        if self.accept_kw("WITH"):
            while True:
                if self.accept_kw("CLUSTERING", "ORDER", "BY"):
                    order.update(self.clustering_order_list())
                else:
                    key, value = self.option()
                    options[key] = value
                if not self.accept_kw("AND"):
                    break
        # YugabyteDB's documented order puts the predicate last (docs: api/ycql/ddl_create_index.md,
        # Grammar: [covering_columns] [index_properties] [WHERE index_predicate]).
        if where is None and self.accept_kw("WHERE"):
            start = self.peek().start
            while self.peek().kind != "eof" and not self.at_op(";"):
                self.next()
            where = self.text[start : self.peek().start].strip()
        return CreateIndex(ks, name, table, if_not_exists, unique, hash_columns, range_columns, include, where,
                           options, order)

    def clustering_order_list(self) -> dict[str, str]:
        """``(col [ASC|DESC], ...)`` after CLUSTERING ORDER BY."""
        order: dict[str, str] = {}
        self.expect_op("(")
        while True:
            col = self.ident()
            if self.accept_kw("DESC"):
                order[col] = "desc"
            else:
                self.accept_kw("ASC")
                order[col] = "asc"
            if not self.accept_op(","):
                break
        self.expect_op(")")
        return order

    def _index_target(self) -> str:
        if self.peek(1).kind == "op" and self.peek(1).text == "(":
            raise unsupported(f"index target function {self.peek().text}(...)")
        return self.ident()

    def ident_list(self) -> list[str]:
        names = [self.ident()]
        while self.accept_op(","):
            names.append(self.ident())
        return names

    def with_options(self) -> dict[str, OptionValue]:
        options: dict[str, OptionValue] = {}
        while True:
            key, value = self.option()
            options[key] = value
            if not self.accept_kw("AND"):
                return options

    def option(self) -> tuple[str, OptionValue]:
        key = self.ident()
        self.expect_op("=")
        start = self.peek().start
        term = self.term()
        text = self.text[start : self.tokens[self.pos - 1].end]
        return key, OptionValue(_option_python_value(term), text)

    def type_expr(self) -> TypeExpr:
        first = self.ident()
        keyspace = None
        if self.accept_op("."):
            keyspace, first = first, self.ident()
        name = first
        if name == "frozen" and keyspace is None:
            self.expect_op("<")
            inner = self.type_expr()
            self.expect_op(">")
            inner.frozen = True
            return inner
        params: list[TypeExpr] = []
        if keyspace is None and name in ("list", "set", "map", "tuple") and self.accept_op("<"):
            params.append(self.type_expr())
            while self.accept_op(","):
                params.append(self.type_expr())
            self.expect_op(">")
        return TypeExpr(name, params, False, keyspace)

    # -- DML ---------------------------------------------------------------------------------------

    def using(self) -> Using:
        using = Using()
        if self.accept_kw("USING"):
            while True:
                if self.accept_kw("TIMESTAMP"):
                    using.timestamp = self.term()
                elif self.accept_kw("TTL"):
                    using.ttl = self.term()
                else:
                    self.fail("expected TIMESTAMP or TTL")
                if not self.accept_kw("AND"):
                    break
        return using

    def insert(self) -> Insert:
        self.expect_kw("INSERT", "INTO")
        ks, table = self.qualified_name()
        if self.at_kw("JSON"):
            raise unsupported("INSERT ... JSON")
        self.expect_op("(")
        columns = self.ident_list()
        self.expect_op(")")
        self.expect_kw("VALUES")
        self.expect_op("(")
        values = [self.term()]
        while self.accept_op(","):
            values.append(self.term())
        self.expect_op(")")
        if_not_exists = self.if_not_exists()
        using = self.using()
        if not if_not_exists:
            if_not_exists = self.if_not_exists()
        if len(columns) != len(values):
            raise CqlError(SYNTAX_ERROR, "Unmatched column names/values")
        return Insert(ks, table, columns, values, if_not_exists, using)

    def update(self) -> Update:
        self.expect_kw("UPDATE")
        ks, table = self.qualified_name()
        using = self.using()
        self.expect_kw("SET")
        assignments = [self.assignment()]
        while self.accept_op(","):
            assignments.append(self.assignment())
        self.expect_kw("WHERE")
        where = self.where()
        if self.at_kw("IF"):
            raise unsupported("conditional UPDATE (IF ...)")
        return Update(ks, table, using, assignments, where)

    def assignment(self) -> Assignment:
        column = self.ident()
        if self.accept_op("["):
            key = self.term()
            self.expect_op("]")
            self.expect_op("=")
            return Assignment(column, "set_elem", self.term(), key)
        if self.accept_op("."):
            raise unsupported("UDT field assignment")
        self.expect_op("=")
        tok = self.peek()
        if tok.kind in ("ident", "qident") and self.peek(1).kind == "op" and self.peek(1).text in ("+", "-"):
            save = self.pos
            other = self.ident()
            if other == column:
                op = "add" if self.next().text == "+" else "sub"
                return Assignment(column, op, self.term())
            self.pos = save
        value = self.term()
        if self.accept_op("+"):
            other = self.ident()
            if other != column:
                self.fail("expected the assigned column after '+'")
            return Assignment(column, "prepend", value)
        return Assignment(column, "set", value)

    def delete(self) -> Delete:
        self.expect_kw("DELETE")
        targets: list[tuple[str, Term | None]] = []
        if not self.at_kw("FROM"):
            while True:
                col = self.ident()
                key = None
                if self.accept_op("["):
                    key = self.term()
                    self.expect_op("]")
                targets.append((col, key))
                if not self.accept_op(","):
                    break
        self.expect_kw("FROM")
        ks, table = self.qualified_name()
        using = self.using()
        self.expect_kw("WHERE")
        where = self.where()
        if self.at_kw("IF"):
            raise unsupported("conditional DELETE (IF ...)")
        return Delete(ks, table, targets, using, where)

    def batch(self) -> Batch:
        self.expect_kw("BEGIN")
        kind = "LOGGED"
        if self.accept_kw("UNLOGGED"):
            kind = "UNLOGGED"
        elif self.accept_kw("COUNTER"):
            kind = "COUNTER"
        elif self.accept_kw("LOGGED"):
            kind = "LOGGED"
        self.expect_kw("BATCH")
        using = self.using()
        statements: list[Insert | Update | Delete] = []
        while not self.at_kw("APPLY"):
            word = self.peek().word
            if word == "INSERT":
                statements.append(self.insert())
            elif word == "UPDATE":
                statements.append(self.update())
            elif word == "DELETE":
                statements.append(self.delete())
            else:
                raise unsupported(f"statement {self._statement_words()!r} inside BATCH")
            self.accept_op(";")
        self.expect_kw("APPLY", "BATCH")
        return Batch(kind, statements, using)

    def select(self) -> Select:
        self.expect_kw("SELECT")
        if self.at_kw("JSON"):
            raise unsupported("SELECT JSON")
        distinct = self.accept_kw("DISTINCT")
        selectors: list[Selector] | None = None
        if not self.accept_op("*"):
            selectors = [self.selector()]
            while self.accept_op(","):
                selectors.append(self.selector())
        self.expect_kw("FROM")
        ks, table = self.qualified_name()
        where: list[Relation] = []
        if self.accept_kw("WHERE"):
            where = self.where()
        for clause in (("GROUP", "BY"), ("ORDER", "BY"), ("PER", "PARTITION")):
            if self.at_kw(*clause):
                raise unsupported(f"SELECT ... {' '.join(clause)}")
        limit = self.term() if self.accept_kw("LIMIT") else None
        allow = self.accept_kw("ALLOW", "FILTERING")
        return Select(ks, table, distinct, selectors, where, limit, allow)

    def selector(self) -> Selector:
        tok = self.peek()
        is_call = self.peek(1).kind == "op" and self.peek(1).text == "(" and tok.kind == "ident"
        if is_call:
            fname = self.ident()
            self.expect_op("(")
            if fname == "count":
                if not (self.accept_op("*") or self._accept_int("1")):
                    raise unsupported("count(<column>); use count(*)")
                self.expect_op(")")
                sel = Selector("count", [])
            elif fname in ("writetime", "ttl", "token", "partition_hash"):
                args = self.ident_list()
                self.expect_op(")")
                if fname in ("writetime", "ttl") and len(args) != 1:
                    self.fail(f"{fname}() takes exactly one column")
                sel = Selector(fname, args)
            else:
                raise unsupported(f"function {fname}() in SELECT")
        else:
            sel = Selector("column", [self.ident()])
        if self.accept_kw("AS"):
            sel.alias = self.ident()
        return sel

    def _accept_int(self, text: str) -> bool:
        tok = self.peek()
        if tok.kind == "int" and tok.text == text:
            self.pos += 1
            return True
        return False

    def where(self) -> list[Relation]:
        relations = [self.relation()]
        while self.accept_kw("AND"):
            relations.append(self.relation())
        return relations

    def relation(self) -> Relation:
        function = None
        if self.peek().kind == "ident" and self.peek().word in ("TOKEN", "PARTITION_HASH") and self.peek(1).text == "(":
            function = self.ident()
            self.expect_op("(")
            columns = self.ident_list()
            self.expect_op(")")
        elif self.at_op("("):
            raise unsupported("multi-column relations in WHERE")
        else:
            columns = [self.ident()]
        tok = self.next()
        if tok.kind == "ident" and tok.word == "IN":
            if self.peek().kind == "op" and self.peek().text == "?":
                return Relation(columns, "IN", self.term(), function)
            self.expect_op("(")
            values: list[Term] = []
            if not self.at_op(")"):
                values.append(self.term())
                while self.accept_op(","):
                    values.append(self.term())
            self.expect_op(")")
            return Relation(columns, "IN", values, function)
        if tok.kind == "ident" and tok.word in ("CONTAINS", "LIKE", "IS"):
            raise unsupported(f"WHERE ... {tok.word}")
        if tok.kind != "op" or tok.text not in ("=", "<", "<=", ">", ">="):
            self.pos -= 1
            if tok.text == "!=":
                raise unsupported("WHERE ... !=")
            self.fail("expected a relation operator")
        return Relation(columns, tok.text, self.term(), function)

    # -- terms -------------------------------------------------------------------------------------

    def term(self) -> Term:
        tok = self.next()
        kind = tok.kind
        if kind == "op":
            if tok.text == "?":
                marker = Marker(self.markers)
                self.markers += 1
                return marker
            if tok.text == "-":
                nxt = self.next()
                if nxt.kind in ("int", "float", "duration"):
                    return Literal(nxt.kind, "-" + nxt.text)
                if nxt.kind == "ident" and nxt.word == "INFINITY":
                    return Literal("inf", "-Infinity")
                if nxt.kind == "ident" and nxt.word == "NAN":
                    return Literal("nan", "NaN")
                self.pos -= 1
                self.fail("expected a number after '-'")
            if tok.text == "[":
                items = self._items("]")
                return ListLit(items)
            if tok.text == "(":
                items = self._items(")")
                return TupleLit(items)
            if tok.text == "{":
                return self._brace()
            self.pos -= 1
            self.fail("expected a value")
        if kind == "string":
            if tok.text.startswith("$$"):
                return Literal("string", tok.text[2:-2])
            return Literal("string", tok.text[1:-1].replace("''", "'"))
        if kind in ("int", "float", "hex", "uuid", "duration"):
            return Literal(kind, tok.text)
        if kind == "qident":
            return Ident(tok.text[1:-1].replace('""', '"'))
        if kind == "ident":
            word = tok.word
            if self.at_op("("):
                raise unsupported(f"function call {tok.text}() as a value")
            if word in ("TRUE", "FALSE"):
                return Literal("bool", word.lower())
            if word == "NULL":
                return Literal("null", "null")
            if word == "NAN":
                return Literal("nan", "NaN")
            if word == "INFINITY":
                return Literal("inf", "Infinity")
            return Ident(tok.text.lower())
        self.pos -= 1
        self.fail("expected a value")

    def _items(self, closer: str) -> list[Term]:
        items: list[Term] = []
        if self.accept_op(closer):
            return items
        items.append(self.term())
        while self.accept_op(","):
            items.append(self.term())
        self.expect_op(closer)
        return items

    def _brace(self) -> Term:
        if self.accept_op("}"):
            return MapLit([])
        first = self.term()
        if self.accept_op(":"):
            pairs = [(first, self.term())]
            while self.accept_op(","):
                key = self.term()
                self.expect_op(":")
                pairs.append((key, self.term()))
            self.expect_op("}")
            return MapLit(pairs)
        items = [first]
        while self.accept_op(","):
            items.append(self.term())
        self.expect_op("}")
        return SetLit(items)


def _option_python_value(term: Term) -> Any:
    """Convert a WITH option value (constant or map) to a plain Python value."""
    if isinstance(term, Literal):
        if term.kind == "int":
            return int(term.text)
        if term.kind == "float":
            return float(term.text)
        if term.kind == "bool":
            return term.text == "true"
        return term.text
    if isinstance(term, MapLit):
        return {str(_option_python_value(k)): _option_text(_option_python_value(v)) for k, v in term.pairs}
    if isinstance(term, Ident):
        return term.name
    raise CqlError(SYNTAX_ERROR, f"unsupported option value {term!r}")


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
