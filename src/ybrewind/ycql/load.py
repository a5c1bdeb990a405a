"""Load a ybrewind YCQL dump directory, or any plain ``.cql`` script, into a YCQL / Cassandra keyspace.

Dump directories: every checksum is verified before the target is touched. A target keyspace that
already holds tables or types is refused unless ``--clean`` (which drops it first). Then the
schema runs (keyspace, types, tables; ``CREATE KEYSPACE`` is skipped when the keyspace exists),
the data files load in parallel (``-j`` files at once, each with a bounded window of in-flight
requests), and the indexes are created last (building an index once is cheaper than maintaining
it row by row). TTL writes are refused on tables with transactions enabled, which indexes need
(docs: api/ycql/dml_insert.md, Semantics): dumps write those tables without TTLs. The dump may be loaded
under another keyspace name: the schema is then rendered from the manifest's model.

Data statements are not sent as text: each INSERT / UPDATE written by ``ybrewind dump`` is parsed
(column names, typed literals, ``USING TIMESTAMP`` / ``TTL``), its values encoded to wire bytes by
column type, and executed through a prepared statement per statement shape. Anything else in a
data file runs as plain text, in order. The number of statements run is checked against the
manifest.

Plain scripts run statement by statement (split by ``script``), in order; ``SOURCE`` and
``CONSISTENCY`` are honored, other cqlsh shell commands are refused. The first failure stops the
load and names file, line and statement.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.query import BoundStatement, PreparedStatement, SimpleStatement

from ybrewind import manifest as mf
from ybrewind.endpoints import YcqlEndpoint
from ybrewind.errors import (
    DatabaseError,
    DumpIntegrityError,
    ScriptError,
    TargetNotEmptyError,
    UsageError,
    YbrewindError,
    one_line,
)
from ybrewind.files import check_compressed, open_binary
from ybrewind.progress import Progress
from ybrewind.ycql import schema as sch
from ybrewind.ycql.literals import (
    CqlType,
    LiteralError,
    LiteralParser,
    Token,
    UnsupportedType,
    encode,
    from_csv,
    parse_type,
    quote_ident,
)
from ybrewind.ycql.script import Statement, iter_script_file, split_text
from ybrewind.ycql.session import CqlConnection, connect, translate

BIGINT = CqlType("bigint")
INT = CqlType("int")
INDEX_KEYWORDS = ("CREATE INDEX", "CREATE UNIQUE INDEX", "CREATE CUSTOM INDEX")


@dataclass
class LoadOptions:
    jobs: int = 1
    clean: bool = False
    create: bool = False  # plain scripts: create the target keyspace if it does not exist
    in_flight: int = 64  # concurrent requests per data file

    def validate(self) -> None:
        if self.jobs < 1 or self.in_flight < 1:
            raise UsageError("-j/--jobs and the in-flight window must be at least 1")


@dataclass
class LoadResult:
    source: str
    target: str
    keyspace: str = ""
    tables: int = 0
    rows: int = 0
    statements: int = 0
    bytes: int = 0
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def statement_error(e: BaseException, stmt: Statement) -> YbrewindError:
    if isinstance(e, YbrewindError) and not isinstance(e, DatabaseError):
        return e
    reason = translate(e, f"{stmt.file}:{stmt.line}").message
    return DatabaseError(f"{reason} in: {one_line(stmt.sql)}")


# -------------------------------------------------------------------------------------------------
# Data statements -> prepared statement + wire values
# -------------------------------------------------------------------------------------------------


@dataclass
class Bound:
    shape: tuple[Any, ...]
    cql: str  # the prepared statement text
    values: list[bytes | None]


class DataParser:
    """Parses the INSERT / UPDATE statements ``ybrewind dump`` writes; ``None`` for anything else."""

    def __init__(self, model: sch.KeyspaceDef, target_keyspace: str) -> None:
        self.model = model
        self.target = target_keyspace
        self.udts = model.udts()
        self._types: dict[tuple[str, str], CqlType] = {}

    def _type(self, table: sch.TableDef, column: str) -> CqlType:
        key = (table.name, column)
        t = self._types.get(key)
        if t is None:
            t = parse_type(table.column(column).type, self.udts)
            self._types[key] = t
        return t

    def parse(self, stmt: Statement) -> Bound | None:
        tokens = stmt.tokens
        if not tokens or tokens[0].kind != "ident":
            return None
        word = tokens[0].word
        try:
            if word == "INSERT":
                return self._insert(tokens)
            if word == "UPDATE":
                return self._update(tokens)
        except (LiteralError, KeyError, IndexError, UnsupportedType, OverflowError, ValueError):
            return None
        return None

    def _table(self, p: LiteralParser) -> sch.TableDef:
        first = p.next()
        name = _ident(first)
        if p.accept("."):
            keyspace, name = name, _ident(p.next())
            if keyspace != self.model.name:
                raise KeyError(keyspace)
        return self.model.table(name)

    def _using(self, p: LiteralParser) -> tuple[int | None, int | None]:
        ts = ttl = None
        tok = p.peek()
        if tok is None or tok.word != "USING":
            return ts, ttl
        p.next()
        while True:
            word = p.next().word
            if word == "TIMESTAMP":
                ts = p.value(BIGINT)
            elif word == "TTL":
                ttl = p.value(INT)
            else:
                raise KeyError(word)
            tok = p.peek()
            if tok is None or tok.word != "AND":
                return ts, ttl
            p.next()

    def _insert(self, tokens: list[Token]) -> Bound | None:
        p = LiteralParser(tokens, 1)
        if p.next().word != "INTO":
            return None
        table = self._table(p)
        p.expect("(")
        columns = [_ident(p.next())]
        while p.accept(","):
            columns.append(_ident(p.next()))
        p.expect(")")
        if p.next().word != "VALUES":
            return None
        p.expect("(")
        values: list[bytes | None] = []
        for i, column in enumerate(columns):
            if i:
                p.expect(",")
            t = self._type(table, column)
            values.append(encode(t, p.value(t)))
        p.expect(")")
        ts, ttl = self._using(p)
        if p.peek() is not None:
            return None
        shape = ("I", table.name, tuple(columns), ts is not None, ttl is not None)
        cols = ", ".join(quote_ident(c) for c in columns)
        cql = (
            f"INSERT INTO {quote_ident(self.target)}.{quote_ident(table.name)} ({cols}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        using = []
        if ts is not None:
            using.append("TIMESTAMP ?")
            values.append(encode(BIGINT, ts))
        if ttl is not None:
            using.append("TTL ?")
            values.append(encode(INT, ttl))
        if using:
            cql += " USING " + " AND ".join(using)
        return Bound(shape, cql, values)

    def _update(self, tokens: list[Token]) -> Bound | None:
        """Counter updates only: UPDATE t SET "c" = "c" +|- n, ... WHERE "k" = v AND ..."""
        p = LiteralParser(tokens, 1)
        table = self._table(p)
        if not table.is_counter:
            return None
        ts, ttl = self._using(p)
        if ts is not None or ttl is not None or p.next().word != "SET":
            return None
        counters: list[str] = []
        values: list[bytes | None] = []
        while True:
            column = _ident(p.next())
            p.expect("=")
            if _ident(p.next()) != column:
                return None
            op = p.next()
            if op.kind != "op" or op.text not in "+-":
                return None
            delta = p.value(BIGINT)
            counters.append(column)
            values.append(encode(BIGINT, delta if op.text == "+" else -delta))
            if not p.accept(","):
                break
        if p.next().word != "WHERE":
            return None
        keys: list[str] = []
        while True:
            column = _ident(p.next())
            p.expect("=")
            t = self._type(table, column)
            keys.append(column)
            values.append(encode(t, p.value(t)))
            tok = p.peek()
            if tok is None:
                break
            if tok.word != "AND":
                return None
            p.next()
        shape = ("U", table.name, tuple(counters), tuple(keys))
        sets = ", ".join(f"{quote_ident(c)} = {quote_ident(c)} + ?" for c in counters)
        where = " AND ".join(f"{quote_ident(k)} = ?" for k in keys)
        cql = f"UPDATE {quote_ident(self.target)}.{quote_ident(table.name)} SET {sets} WHERE {where}"
        return Bound(shape, cql, values)


def _ident(tok: Token) -> str:
    if tok.kind == "qident":
        return tok.value()
    if tok.kind == "ident":
        return tok.text.lower()
    raise KeyError(tok.text)


# -------------------------------------------------------------------------------------------------
# Bounded asynchronous execution
# -------------------------------------------------------------------------------------------------


class Window:
    """At most ``size`` requests in flight; the first failure is kept and stops further submissions."""

    def __init__(self, size: int) -> None:
        self.slots = threading.Semaphore(size)
        self.size = size
        self.error: YbrewindError | None = None
        self.done = 0
        self._lock = threading.Lock()

    def submit(self, conn: CqlConnection, statement: Any, describe: Callable[[BaseException], YbrewindError]) -> None:
        if self.error is not None:
            raise self.error
        self.slots.acquire()
        if self.error is not None:
            self.slots.release()
            raise self.error
        try:
            future = conn.session.execute_async(statement)
        except Exception as e:
            self.slots.release()
            raise describe(e) from None

        def ok(_: Any) -> None:
            with self._lock:
                self.done += 1
            self.slots.release()

        def failed(e: BaseException) -> None:
            with self._lock:
                if self.error is None:
                    self.error = describe(e)
            self.slots.release()

        future.add_callbacks(ok, failed)

    def drain(self) -> None:
        for _ in range(self.size):
            self.slots.acquire()
        for _ in range(self.size):
            self.slots.release()
        if self.error is not None:
            raise self.error


# -------------------------------------------------------------------------------------------------
# The loader
# -------------------------------------------------------------------------------------------------


class Loader:
    def __init__(self, target: YcqlEndpoint, options: LoadOptions, progress: Progress | None = None) -> None:
        options.validate()
        self.target = target
        self.opt = options
        self.progress = progress or Progress()
        self._prepared: dict[tuple[Any, ...], PreparedStatement] = {}
        self._lock = threading.Lock()

    # -- dump directories ---------------------------------------------------------------------------
    def load_dump(self, directory: Path) -> LoadResult:
        started = time.monotonic()
        step = time.monotonic()
        manifest = mf.verify(directory, jobs=self.opt.jobs)
        if manifest.api != "ycql":
            raise UsageError(f"{directory} is a {manifest.api.upper()} dump; load it into a postgresql:// target")
        try:
            model = sch.KeyspaceDef.from_json(manifest.objects["keyspace"])
        except (KeyError, TypeError) as e:
            raise DumpIntegrityError(f"{directory}/manifest.json has no usable keyspace model ({e})") from None
        keyspace = self.target.keyspace or model.name
        result = LoadResult(str(directory), self.target.with_keyspace(keyspace).display(), keyspace)
        result.steps["verify"] = round(time.monotonic() - step, 3)
        data_only = bool(manifest.options.get("data_only"))
        with connect(self.target.with_keyspace(None)) as conn:
            step = time.monotonic()
            existing = conn.keyspace(keyspace)
            if existing is not None and not data_only and (existing.tables or existing.user_types):
                if not self.opt.clean:
                    raise TargetNotEmptyError(
                        f"target keyspace {keyspace} is not empty ({len(existing.tables)} tables, "
                        f"{len(existing.user_types)} types); load into a new keyspace or pass --clean to drop it first"
                    )
                conn.drop_keyspace(keyspace)  # contents first: YugabyteDB refuses a non-empty keyspace
                existing = None
            if data_only and existing is None:
                raise UsageError(f"{directory} is a data-only dump: keyspace {keyspace} must exist with its tables")
            pre, indexes = self._schema(directory, manifest, model, keyspace)
            for stmt in pre:
                if stmt.keyword == "CREATE KEYSPACE" and existing is not None:
                    continue
                self._execute_text(conn, stmt)
                result.statements += 1
            result.steps["schema"] = round(time.monotonic() - step, 3)
            step = time.monotonic()
            data = manifest.files_of("data")
            parser = DataParser(model, keyspace)
            result.rows, result.bytes, statements = self._load_data(conn, directory, manifest, data, parser)
            result.statements += statements
            result.tables = len(data)
            result.steps["data"] = round(time.monotonic() - step, 3)
            step = time.monotonic()
            for stmt in indexes:
                self._execute_text(conn, stmt)
                result.statements += 1
            result.steps["indexes"] = round(time.monotonic() - step, 3)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _schema(
        self, directory: Path, manifest: mf.Manifest, model: sch.KeyspaceDef, keyspace: str
    ) -> tuple[list[Statement], list[Statement]]:
        files = manifest.files_of("schema")
        if not files:
            return [], []
        if keyspace == model.name:
            statements = list(iter_script_file(directory / files[0].path, follow_source=False))
        else:
            names = set(manifest.objects.get("tables") or [t.name for t in model.tables])
            text = sch.render(model, [t for t in model.tables if t.name in names], keyspace).text()
            statements = split_text(text, f"{files[0].path} (rendered for keyspace {keyspace})")
        pre = [s for s in statements if s.keyword not in INDEX_KEYWORDS]
        return pre, [s for s in statements if s.keyword in INDEX_KEYWORDS]

    def _execute_text(self, conn: CqlConnection, stmt: Statement, consistency: int | None = None) -> None:
        if stmt.shell:
            raise ScriptError(
                f"{stmt.file}:{stmt.line}: cqlsh command {stmt.keyword} cannot run here (run the script with ycqlsh)"
            )
        try:
            statement = SimpleStatement(stmt.sql, consistency_level=consistency)
            conn.session.execute(statement)
        except Exception as e:
            raise statement_error(e, stmt) from None

    def _load_data(
        self,
        conn: CqlConnection,
        directory: Path,
        manifest: mf.Manifest,
        files: list[mf.FileEntry],
        parser: DataParser,
    ) -> tuple[int, int, int]:
        total = sum(f.bytes for f in files)
        bar = self.progress.task("load data", total or None)
        expected = (manifest.snapshot or {}).get("tables") or {}
        csv_format = manifest.options.get("format") == "csv"
        counts = {"rows": 0, "statements": 0}
        lock = threading.Lock()

        def one(entry: mf.FileEntry) -> None:
            path = directory / entry.path
            if csv_format:
                statements = self._load_csv(conn, path, entry, parser)
                rows = statements
            else:
                statements = self._load_cql(conn, path, parser)
                table = (entry.table or ["", ""])[1]
                want = (expected.get(table) or {}).get("statements")
                if want is not None and statements != int(want):
                    raise DumpIntegrityError(f"{entry.path}: ran {statements} statements, the manifest says {want}")
                rows = entry.rows or 0
            if entry.rows is not None and csv_format and rows != entry.rows:
                raise DumpIntegrityError(f"{entry.path}: loaded {rows} rows, the manifest says {entry.rows}")
            with lock:
                counts["rows"] += rows
                counts["statements"] += statements
            self.progress.advance(bar, entry.bytes)

        ordered = sorted(files, key=lambda f: -f.bytes)
        if ordered:
            with ThreadPoolExecutor(
                max_workers=min(self.opt.jobs, len(ordered)), thread_name_prefix="ybrewind-load"
            ) as pool:
                futures = [pool.submit(one, f) for f in ordered]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                error = next((f.exception() for f in done if f.exception() is not None), None)
                if error is not None:
                    for f in futures:
                        f.cancel()
                    raise error
        return counts["rows"], total, counts["statements"]

    def _prepare(self, conn: CqlConnection, bound: Bound, stmt: Statement) -> PreparedStatement:
        prepared = self._prepared.get(bound.shape)
        if prepared is None:
            with self._lock:
                prepared = self._prepared.get(bound.shape)
                if prepared is None:
                    try:
                        prepared = conn.session.prepare(bound.cql)
                    except Exception as e:
                        raise statement_error(e, stmt) from None
                    self._prepared[bound.shape] = prepared
        return prepared

    def _load_cql(self, conn: CqlConnection, path: Path, parser: DataParser) -> int:
        window = Window(self.opt.in_flight)
        count = 0
        try:
            for stmt in iter_script_file(path, follow_source=False):
                bound = parser.parse(stmt)
                if bound is None:
                    window.drain()  # anything else runs as text, in order
                    self._execute_text(conn, stmt)
                else:
                    prepared = self._prepare(conn, bound, stmt)
                    statement = BoundStatement(prepared)
                    statement.values = bound.values
                    window.submit(conn, statement, lambda e, s=stmt: statement_error(e, s))
                count += 1
        finally:
            try:
                window.drain()
            except YbrewindError:
                if window.error is None:
                    raise
        if window.error is not None:
            raise window.error
        return count

    def _load_csv(self, conn: CqlConnection, path: Path, entry: mf.FileEntry, parser: DataParser) -> int:
        table = parser.model.table((entry.table or ["", ""])[1])
        types = {c.name: parser._type(table, c.name) for c in table.columns}
        window = Window(self.opt.in_flight)
        count = 0
        with open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                return 0
            unknown = [h for h in header if h not in types]
            if unknown:
                raise DumpIntegrityError(f"{entry.path}: unknown columns {', '.join(unknown)} in the CSV header")
            for line_no, fields in enumerate(reader, start=2):
                stmt = Statement(",".join(fields), str(path), line_no)
                try:
                    values = {h: from_csv(types[h], f) for h, f in zip(header, fields, strict=True)}
                except (LiteralError, ValueError) as e:
                    raise ScriptError(f"{path}:{line_no}: {e}") from None
                bound = self._csv_statement(parser.target, table, types, values)
                if bound is None:
                    continue
                prepared = self._prepare(conn, bound, stmt)
                statement = BoundStatement(prepared)
                statement.values = bound.values
                window.submit(conn, statement, lambda e, s=stmt: statement_error(e, s))
                count += 1
        window.drain()
        return count

    @staticmethod
    def _csv_statement(
        keyspace: str, table: sch.TableDef, types: dict[str, CqlType], values: dict[str, Any]
    ) -> Bound | None:
        key = [c.name for c in table.partition_key]
        clustering = [c.name for c in table.clustering]
        static_only = bool(clustering) and all(values.get(c) is None for c in clustering)
        names = [c.name for c in table.columns if values.get(c.name) is not None and (
            not static_only or c.kind in ("partition_key", "static")
        )]  # fmt: skip
        target = f"{quote_ident(keyspace)}.{quote_ident(table.name)}"
        if table.is_counter:
            counters = [n for n in names if types[n].name == "counter"]
            where = key + ([] if static_only else clustering)
            if not counters:
                return None
            sets = ", ".join(f"{quote_ident(c)} = {quote_ident(c)} + ?" for c in counters)
            cql = f"UPDATE {target} SET {sets} WHERE {' AND '.join(f'{quote_ident(k)} = ?' for k in where)}"
            data = [encode(types[n], values[n]) for n in counters + where]
            return Bound(("CU", table.name, tuple(counters), tuple(where)), cql, data)
        cols = ", ".join(quote_ident(n) for n in names)
        cql = f"INSERT INTO {target} ({cols}) VALUES ({', '.join('?' * len(names))})"
        return Bound(("CI", table.name, tuple(names)), cql, [encode(types[n], values[n]) for n in names])

    # -- plain scripts ------------------------------------------------------------------------------
    def load_script(self, path: Path) -> LoadResult:
        started = time.monotonic()
        keyspace = self.target.keyspace
        result = LoadResult(str(path), self.target.display(), keyspace or "")
        with connect(self.target.with_keyspace(None)) as conn:
            if keyspace:
                if conn.keyspace(keyspace) is None:
                    if not self.opt.create:
                        raise UsageError(
                            f"keyspace {keyspace} does not exist on {self.target.display()} (pass --create to create it)"
                        )
                    conn.execute(
                        f"CREATE KEYSPACE IF NOT EXISTS {quote_ident(keyspace)} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': '1'}",
                        what=f"creating keyspace {keyspace}",
                    )
                conn.execute(f"USE {quote_ident(keyspace)}", what=f"using keyspace {keyspace}")
            consistency: int | None = None
            for stmt in iter_script_file(path):
                if stmt.shell and stmt.keyword == "CONSISTENCY":
                    consistency = _consistency_level(stmt)
                    continue
                self._execute_text(conn, stmt, consistency)
                result.statements += 1
        result.seconds = round(time.monotonic() - started, 3)
        return result


def _consistency_level(stmt: Statement) -> int:
    words = [t.text.upper() for t in stmt.tokens[1:]]
    value = ConsistencyLevel.name_to_value.get("_".join(words)) if words else None
    if value is None:
        raise ScriptError(f"{stmt.file}:{stmt.line}: unknown consistency level {' '.join(words) or '(none)'}")
    return int(value)


def load(
    path: Path | str, target: YcqlEndpoint, options: LoadOptions | None = None, progress: Progress | None = None
) -> LoadResult:
    """Load a dump directory or a plain CQL script (``.cql`` or ``.cql.zst``) into ``target``."""
    path = Path(path)
    loader = Loader(target, options or LoadOptions(), progress)
    if path.is_dir():
        return loader.load_dump(path)
    if path.is_file():
        check_compressed(path)  # a truncated .zst is refused before its first statement runs
        return loader.load_script(path)
    raise UsageError(f"{path} does not exist")
