"""Parallel logical dump of one YCQL / Cassandra keyspace into plain CQL scripts (or CSV).

Layout of a dump directory (see README):

    manifest.json          written last: files with sha256 and row counts, scan window, schema model
    schema.cql             CREATE KEYSPACE, types (dependency order), tables, indexes (DESC layout)
    data/NNNN-ks.t.cql     INSERT statements (counter tables: UPDATE c = c + n), runnable by ycqlsh -f
    data/NNNN-ks.t.csv     with --format csv: for ycqlsh COPY FROM ... WITH HEADER = true
    restore.cql            SOURCEs (or COPYs) everything in order: ycqlsh -f restore.cql, from the dump dir

Scanning: each table is cut into ranges of ``partition_hash(pk)`` (0..65535, YugabyteDB) or
``token(pk)`` (the Murmur3 ring, Cassandra); ``-j`` workers scan ranges in parallel with paging. A
failed page is retried from its paging state (timeouts, unavailable replicas, lost connections),
so no row is written twice. Ranges are written to the table's file in ring order whatever order
they finish in, so a dump of unchanged data is byte-for-byte reproducible.

Consistency: CQL has no snapshot. A row is read once, at the moment its range is scanned; the
manifest records the scan window (first request .. last response) per table and overall. With
``--with-writetime`` every cell keeps its write time and remaining TTL (``USING TIMESTAMP t AND
TTL s``, one INSERT per group of cells sharing both), so replaying the dump over a copy that moved
on does not overwrite newer writes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from cassandra import InvalidRequest
from cassandra.query import BoundStatement, PreparedStatement, SimpleStatement

from ybrewind import manifest as mf
from ybrewind.endpoints import YcqlEndpoint
from ybrewind.errors import ConnectError, UsageError, YbrewindError
from ybrewind.files import ZSTD_SUFFIX, AtomicWriter, atomic_write, fsync_dir, storage_error
from ybrewind.progress import Progress
from ybrewind.ycql import schema as sch
from ybrewind.ycql.literals import EMPTY, CqlType, decode, parse_type, quote_ident, to_csv, to_literal
from ybrewind.ycql.session import CqlConnection, connect, is_transient, translate
from ybrewind.ysql.dump import safe_filename

YB_HASH_MAX = 65535
MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
SPOOL_BYTES = 8 << 20
TRAILER = "-- ybrewind: end of data: rows={rows} statements={statements}\n"
Format = Literal["cql", "csv"]


@dataclass
class DumpOptions:
    jobs: int = 1
    with_writetime: bool = False
    format: Format = "cql"
    compress: bool = False
    tables: list[str] = field(default_factory=list)  # -t patterns
    exclude_tables: list[str] = field(default_factory=list)  # -T patterns
    exclude_table_data: list[str] = field(default_factory=list)
    schema_only: bool = False
    data_only: bool = False
    page_size: int = 5000
    ranges: int | None = None  # per table; default 8 x jobs (at least 16)
    retries: int = 5
    retry_delay: float = 0.2

    def validate(self) -> None:
        if self.jobs < 1:
            raise UsageError("-j/--jobs must be at least 1")
        if self.schema_only and self.data_only:
            raise UsageError("--schema-only and --data-only cannot be used together")
        if self.format not in ("cql", "csv"):
            raise UsageError(f"unknown YCQL dump format {self.format!r} (cql or csv)")
        if self.format == "csv" and self.with_writetime:
            raise UsageError("--with-writetime needs the default cql format (COPY FROM cannot set write times)")
        if self.page_size < 1 or (self.ranges is not None and self.ranges < 1):
            raise UsageError("page size and range count must be positive")

    @property
    def range_count(self) -> int:
        return self.ranges or max(16, 8 * self.jobs)


@dataclass
class DumpResult:
    output: str
    server: str
    keyspace: str
    tables: int
    rows: int
    statements: int
    bytes: int
    files: int
    seconds: float
    scan: dict[str, Any]
    retries: int
    warnings: list[str]


def ranges(is_yugabyte: bool, count: int) -> list[tuple[int, int]]:
    """``count`` contiguous inclusive ranges covering partition_hash 0..65535 or the whole token ring."""
    lo, hi = (0, YB_HASH_MAX) if is_yugabyte else (MIN_TOKEN, MAX_TOKEN)
    count = max(1, min(count, hi - lo + 1))
    span = hi - lo + 1
    bounds = [lo + (span * i) // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(count)]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _bigint(b: bytes | None) -> int | None:
    return None if not b else struct.unpack(">q", b)[0]


def _int(b: bytes | None) -> int | None:
    return None if not b else struct.unpack(">i", b)[0]


# -------------------------------------------------------------------------------------------------
# Row encoding
# -------------------------------------------------------------------------------------------------


class TableEncoder:
    """Turns pages of raw rows of one table into INSERT / UPDATE statements or CSV lines.

    The SELECT returns every column (in ``table.columns`` order), then ``writetime(c), ttl(c)``
    for each column in ``timed`` (with --with-writetime). One encoder serves one range at a time
    (it remembers the partition it is in, so static cells are written once per partition).
    """

    def __init__(
        self,
        keyspace: str,
        table: sch.TableDef,
        types: list[CqlType],
        timed: list[int],
        options: DumpOptions,
        warn: Callable[[str], None],
    ) -> None:
        self.table = table
        self.types = types
        self.target = f"{quote_ident(keyspace)}.{quote_ident(table.name)}"
        self.names = [quote_ident(c.name) for c in table.columns]
        kinds = [c.kind for c in table.columns]
        self.pk = [i for i, k in enumerate(kinds) if k == "partition_key"]
        self.ck = [i for i, k in enumerate(kinds) if k == "clustering"]
        self.static = [i for i, k in enumerate(kinds) if k == "static"]
        self.regular = [i for i, k in enumerate(kinds) if k == "regular"]
        self.timed = {ci: len(table.columns) + 2 * n for n, ci in enumerate(timed)}
        self.with_writetime = options.with_writetime
        self.csv = options.format == "csv"
        self.counter = table.is_counter
        self.default_ttl = table.default_ttl
        self.ttl_refused = table.transactional
        self.warn = warn
        self._warned: set[int] = set()
        self._prefixes: dict[tuple[int, ...], str] = {}
        self.last_partition: tuple[bytes | None, ...] | None = None
        self.pk_literals: list[str] = []
        self.max_writetime: int | None = None

    def reset(self) -> None:
        self.last_partition = None

    def _literal(self, ci: int, raw: bytes | None) -> str | None:
        value = decode(self.types[ci], raw)
        if value is EMPTY:
            if ci not in self._warned:
                self._warned.add(ci)
                self.warn(
                    f"{self.target}.{self.names[ci]} holds zero-length {self.types[ci].cql()} values, which CQL "
                    "literals cannot express; they are dumped as NULL"
                )
            return None
        return to_literal(self.types[ci], value)

    def _prefix(self, cols: tuple[int, ...]) -> str:
        text = self._prefixes.get(cols)
        if text is None:
            text = f"INSERT INTO {self.target} ({', '.join(self.names[i] for i in cols)}) VALUES ("
            self._prefixes[cols] = text
        return text

    def _using(self, wt: int | None, ttl: int | None) -> str:
        if wt is None:
            return ""
        if self.ttl_refused:
            # YugabyteDB refuses TTL writes on transactional tables (TableDef.transactional): keep
            # the write time, say once that remaining TTLs are lost.
            if ttl and -1 not in self._warned:
                self._warned.add(-1)
                self.warn(
                    f"{self.target} has transactions enabled, where YugabyteDB refuses TTL writes: its cells "
                    "are dumped with their write times but without their remaining TTL (they will not expire)"
                )
            return f" USING TIMESTAMP {wt}"
        if ttl:
            return f" USING TIMESTAMP {wt} AND TTL {ttl}"
        if self.default_ttl:
            return f" USING TIMESTAMP {wt} AND TTL 0"  # no TTL, even though the table has a default
        return f" USING TIMESTAMP {wt}"

    def _groups(self, row: list[Any], columns: list[int]) -> list[tuple[int | None, int | None, list[int], list[str]]]:
        """Non-null cells grouped by (write time, ttl), oldest first."""
        groups: dict[tuple[int | None, int | None], tuple[list[int], list[str]]] = {}
        untimed: tuple[list[int], list[str]] = ([], [])
        for ci in columns:
            raw = row[ci]
            if raw is None:
                continue
            lit = self._literal(ci, raw)
            if lit is None:
                continue
            pos = self.timed.get(ci) if self.with_writetime else None
            if pos is None:
                key: tuple[int | None, int | None] = (None, None)
                if self.with_writetime:
                    untimed[0].append(ci)
                    untimed[1].append(lit)
                    continue
            else:
                key = (_bigint(row[pos]), _int(row[pos + 1]))
                if key[0] is not None and (self.max_writetime is None or key[0] > self.max_writetime):
                    self.max_writetime = key[0]
            cols, lits = groups.setdefault(key, ([], []))
            cols.append(ci)
            lits.append(lit)
        if untimed[0]:
            # Cells whose write time CQL cannot read (non-frozen collections on some servers) join
            # the newest group of the row: the usual case is one INSERT that wrote them all.
            target = max(groups, key=lambda k: (k[0] is not None, k[0] or 0), default=(None, None))
            cols, lits = groups.setdefault(target, ([], []))
            cols += untimed[0]
            lits += untimed[1]
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0] is not None, kv[0][0] or 0, kv[0][1] or 0))
        return [(wt, ttl, cols, lits) for (wt, ttl), (cols, lits) in ordered]

    def encode(self, rows: list[list[Any]], out: list[str]) -> int:
        """Append the statements for ``rows`` to ``out``; returns the number of statements."""
        if self.csv:
            return self._encode_csv(rows, out)
        count = 0
        pk = self.pk
        for row in rows:
            key = tuple(row[i] for i in pk)
            if key != self.last_partition:
                self.last_partition = key
                self.pk_literals = [self._literal(i, row[i]) or "null" for i in pk]
                if self.static:
                    count += self._statics(row, out)
            if self.ck and all(row[i] is None for i in self.ck):
                continue  # a partition with static cells only
            key_cols = tuple(pk + self.ck)
            key_lits = self.pk_literals + [self._literal(i, row[i]) or "null" for i in self.ck]
            if self.counter:
                count += self._counter_update(row, self.regular, key_cols, key_lits, out)
                continue
            groups = self._groups(row, self.regular)
            if not groups:
                out.append(self._prefix(key_cols) + ", ".join(key_lits) + ");\n")
                count += 1
                continue
            for wt, ttl, cols, lits in groups:
                out.append(
                    self._prefix(key_cols + tuple(cols))
                    + ", ".join(key_lits + lits)
                    + ")"
                    + self._using(wt, ttl)
                    + ";\n"
                )
                count += 1
        return count

    def _statics(self, row: list[Any], out: list[str]) -> int:
        key_cols = tuple(self.pk)
        if self.counter:
            return self._counter_update(row, self.static, key_cols, self.pk_literals, out)
        count = 0
        for wt, ttl, cols, lits in self._groups(row, self.static):
            out.append(
                self._prefix(key_cols + tuple(cols))
                + ", ".join(self.pk_literals + lits)
                + ")"
                + self._using(wt, ttl)
                + ";\n"
            )
            count += 1
        return count

    def _counter_update(
        self, row: list[Any], columns: list[int], key_cols: tuple[int, ...], key_lits: list[str], out: list[str]
    ) -> int:
        sets = []
        for ci in columns:
            value = decode(self.types[ci], row[ci])
            if value is None or value is EMPTY:
                continue
            name = self.names[ci]
            sets.append(f"{name} = {name} + {value}" if value >= 0 else f"{name} = {name} - {-value}")
        if not sets:
            return 0
        where = " AND ".join(f"{self.names[ci]} = {lit}" for ci, lit in zip(key_cols, key_lits, strict=True))
        out.append(f"UPDATE {self.target} SET {', '.join(sets)} WHERE {where};\n")
        return 1

    def csv_header(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([c.name for c in self.table.columns])
        return buf.getvalue()

    def _encode_csv(self, rows: list[list[Any]], out: list[str]) -> int:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        n = len(self.table.columns)
        for row in rows:
            fields = []
            for ci in range(n):
                value = decode(self.types[ci], row[ci])
                fields.append("" if value is EMPTY else to_csv(self.types[ci], value))
            writer.writerow(fields)
        out.append(buf.getvalue())
        return len(rows)


# -------------------------------------------------------------------------------------------------
# Per-table output: ranges finish in any order, the file gets them in ring order
# -------------------------------------------------------------------------------------------------


class TableOutput:
    def __init__(self, path: Path, name: str, table: str, compress: bool, nranges: int, header: str) -> None:
        self.name = name
        self.table = table
        self.compress = compress
        self._stack = ExitStack()
        self.writer: AtomicWriter = self._stack.enter_context(atomic_write(path, compress=compress))
        self.writer.write(header.encode())
        self.nranges = nranges
        self.done: dict[int, tuple[IO[bytes], int, int]] = {}
        self.next = 0
        self.rows = 0
        self.statements = 0
        self.lock = threading.Lock()
        self.started = ""
        self.finished = ""

    def complete(self, index: int, spool: IO[bytes], rows: int, statements: int) -> bool:
        """Store a finished range; True when it was the table's last one."""
        with self.lock:
            self.done[index] = (spool, rows, statements)
            while self.next in self.done:
                part, n, s = self.done.pop(self.next)
                part.seek(0)
                while chunk := part.read(1 << 20):
                    self.writer.write(chunk)
                part.close()
                self.rows += n
                self.statements += s
                self.next += 1
            return self.next == self.nranges

    def finish(self, trailer: str, rows_label: list[str]) -> mf.FileEntry:
        self.writer.write(trailer.encode())
        self._stack.close()
        return mf.FileEntry(
            self.name, "data", self.writer.sha256, self.writer.bytes, table=rows_label, rows=self.rows,
            compressed=self.compress,
        )  # fmt: skip

    def abort(self, error: BaseException) -> None:
        """Drop the unfinished file (atomic_write removes its temporary) and the spooled ranges."""
        with contextlib.suppress(BaseException):
            self._stack.__exit__(type(error), error, None)
        for spool, _, _ in self.done.values():
            spool.close()


@dataclass
class _TablePlan:
    number: int
    table: sch.TableDef
    types: list[CqlType]
    timed: list[int]
    query: str
    ranges: list[tuple[int, int]]
    prepared: PreparedStatement | None = None
    output: TableOutput | None = None
    pending: int = 0


# -------------------------------------------------------------------------------------------------
# The dumper
# -------------------------------------------------------------------------------------------------


class Dumper:
    def __init__(self, source: YcqlEndpoint, options: DumpOptions, progress: Progress | None = None) -> None:
        options.validate()
        if not source.keyspace:
            raise UsageError("the source needs a keyspace: ycql://host[:port]/KEYSPACE")
        self.source = source
        self.opt = options
        self.progress = progress or Progress()
        self.warnings: list[str] = []
        self.retries = 0
        self._lock = threading.Lock()

    def warn(self, message: str) -> None:
        with self._lock:
            if message not in self.warnings:
                self.warnings.append(message)
                self.progress.warn(message)

    def dump(self, outdir: Path) -> DumpResult:
        started = time.monotonic()
        outdir = Path(outdir)
        if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
            raise UsageError(f"output directory {outdir} exists and is not empty")
        with connect(self.source) as conn:
            keyspace = self.source.keyspace or ""
            meta = conn.keyspace(keyspace)
            if meta is None:
                raise ConnectError(f"keyspace {keyspace} does not exist on {self.source.display()}")
            model = sch.from_metadata(meta)
            for w in model.warnings:
                self.warn(w)
            sch.check_types(model)
            tables = sch.select_tables(model, self.opt.tables, self.opt.exclude_tables)
            if self.opt.tables and not tables:
                raise UsageError(f"no table of keyspace {keyspace} matches {', '.join(self.opt.tables)}")
            try:
                (outdir / "data").mkdir(parents=True, exist_ok=True, mode=0o700)
                outdir.chmod(0o700)
            except OSError as e:
                raise storage_error(outdir, e) from None
            files: list[mf.FileEntry] = []
            if not self.opt.data_only:
                files.append(self._write_schema(outdir, model, tables))
            no_data = {t.name for t in sch.select_tables(model, self.opt.exclude_table_data, [])} if (
                self.opt.exclude_table_data
            ) else set()  # fmt: skip
            data_tables = [] if self.opt.schema_only else [t for t in tables if t.name not in no_data]
            scan_started = _now()
            data_files, per_table, max_wt = self._dump_data(conn, outdir, model, data_tables)
            scan_finished = _now()
            files += data_files
            if not self.opt.compress:
                files.append(self._write_restore(outdir, model, files))
            server = conn.server
        manifest = mf.Manifest(
            api="ycql",
            source={**server.describe(), "keyspace": keyspace, "endpoint": self.source.display()},
            dialect=server.flavor,
            snapshot={
                "consistent": False,
                "scan_started": scan_started,
                "scan_finished": scan_finished,
                "tables": per_table,
                "max_writetime": max_wt,
                "note": "no snapshot: each row is read once while its range is scanned, within the scan window",
            },
            compression="zstd" if self.opt.compress else "none",
            options={
                "format": self.opt.format,
                "with_writetime": self.opt.with_writetime,
                "schema_only": self.opt.schema_only,
                "data_only": self.opt.data_only,
                "jobs": self.opt.jobs,
                "ranges": self.opt.range_count,
            },
            objects={
                "keyspace": model.to_json(),
                "tables": [t.name for t in tables],
                "types": [t.name for t in model.types],
                "indexes": [i.name for t in tables for i in t.indexes],
            },
            files=files,
            warnings=self.warnings,
        )
        manifest.write(outdir)
        data = manifest.files_of("data")
        return DumpResult(
            output=str(outdir),
            server=f"{server.flavor} {server.release_version}",
            keyspace=keyspace,
            tables=len(data),
            rows=manifest.total_rows,
            statements=sum(int(v.get("statements", 0)) for v in per_table.values()),
            bytes=sum(f.bytes for f in manifest.files),
            files=len(manifest.files) + 1,
            seconds=round(time.monotonic() - started, 3),
            scan=manifest.snapshot,
            retries=self.retries,
            warnings=self.warnings,
        )

    # -- schema and restore script ----------------------------------------------------------------
    def _write_schema(self, outdir: Path, model: sch.KeyspaceDef, tables: list[sch.TableDef]) -> mf.FileEntry:
        text = sch.render(model, tables).text()
        with atomic_write(outdir / "schema.cql") as w:
            w.write(text.encode())
        return mf.FileEntry("schema.cql", "schema", w.sha256, w.bytes)

    def _write_restore(self, outdir: Path, model: sch.KeyspaceDef, files: list[mf.FileEntry]) -> mf.FileEntry:
        lines = ["-- Restore this dump without ybrewind, from this directory:  ycqlsh -f restore.cql"]
        for f in files:
            if f.kind == "schema":
                lines.append(f"SOURCE '{f.path}';")
            elif f.kind == "data" and self.opt.format == "csv" and f.table:
                table = model.table(f.table[1])
                cols = ", ".join(quote_ident(c.name) for c in table.columns)
                lines.append(
                    f"COPY {quote_ident(f.table[0])}.{quote_ident(f.table[1])} ({cols}) FROM '{f.path}' "
                    "WITH HEADER = true;"
                )
            elif f.kind == "data":
                lines.append(f"SOURCE '{f.path}';")
        with atomic_write(outdir / "restore.cql") as w:
            w.write(("\n".join(lines) + "\n").encode())
        return mf.FileEntry("restore.cql", "restore", w.sha256, w.bytes)

    # -- data -------------------------------------------------------------------------------------
    def _plan(self, conn: CqlConnection, model: sch.KeyspaceDef, number: int, table: sch.TableDef) -> _TablePlan:
        udts = model.udts()
        types = [parse_type(c.type, udts) for c in table.columns]
        target = f"{quote_ident(model.name)}.{quote_ident(table.name)}"
        timed: list[int] = []
        if self.opt.with_writetime and not table.is_counter:
            for i, (c, t) in enumerate(zip(table.columns, types, strict=True)):
                if c.kind in ("static", "regular") and (not t.multi_cell or self._writetime_readable(conn, target, c)):
                    timed.append(i)
        selectors = [quote_ident(c.name) for c in table.columns]
        for i in timed:
            name = quote_ident(table.columns[i].name)
            selectors += [f"writetime({name})", f"ttl({name})"]
        pk = ", ".join(quote_ident(c.name) for c in table.partition_key)
        fn = "partition_hash" if conn.server.is_yugabyte else "token"
        query = f"SELECT {', '.join(selectors)} FROM {target} WHERE {fn}({pk}) >= ? AND {fn}({pk}) <= ?"
        return _TablePlan(number, table, types, timed, query, ranges(conn.server.is_yugabyte, self.opt.range_count))

    def _writetime_readable(self, conn: CqlConnection, target: str, column: sch.ColumnDef) -> bool:
        """Servers differ on writetime() of non-frozen collections: ask once per column."""
        name = quote_ident(column.name)
        try:
            rs = conn.session.execute(SimpleStatement(f"SELECT writetime({name}), ttl({name}) FROM {target} LIMIT 1"))
        except InvalidRequest:
            self.warn(
                f"{target}.{name}: the server cannot read write times of non-frozen collections; its cells take the "
                "write time and TTL of the newest other cells of their row"
            )
            return False
        except Exception as e:
            raise translate(e, f"reading {target}") from None
        types = getattr(rs, "column_types", None) or []
        return bool(types) and getattr(types[0], "typename", "") == "bigint"

    def _dump_data(
        self, conn: CqlConnection, outdir: Path, model: sch.KeyspaceDef, tables: list[sch.TableDef]
    ) -> tuple[list[mf.FileEntry], dict[str, dict[str, Any]], int | None]:
        suffix = (".csv" if self.opt.format == "csv" else ".cql") + (ZSTD_SUFFIX if self.opt.compress else "")
        plans = [self._plan(conn, model, n, t) for n, t in enumerate(tables, start=1)]
        for p in plans:
            p.prepared = conn.prepare(p.query, f"preparing the scan of {model.name}.{p.table.name}")
            p.prepared.fetch_size = self.opt.page_size
            p.pending = len(p.ranges)
        total = sum(len(p.ranges) for p in plans)
        bar = self.progress.task("dump ranges", total or None, unit="ranges")
        entries: list[mf.FileEntry] = []
        per_table: dict[str, dict[str, Any]] = {}
        max_wt: list[int] = []
        failed = threading.Event()
        lock = threading.Lock()

        def open_output(p: _TablePlan) -> TableOutput:
            with lock:
                if p.output is None:
                    name = f"data/{safe_filename(p.number, model.name, p.table.name)}{suffix}"
                    encoder = self._encoder(model, p)
                    header = (
                        encoder.csv_header()
                        if self.opt.format == "csv"
                        else (f"-- ybrewind data: {quote_ident(model.name)}.{quote_ident(p.table.name)}\n")
                    )
                    p.output = TableOutput(outdir / name, name, p.table.name, self.opt.compress, len(p.ranges), header)
                    p.output.started = _now()
                return p.output

        def run(p: _TablePlan, index: int) -> None:
            if failed.is_set():
                return
            output = open_output(p)
            encoder = self._encoder(model, p)
            spool, rows, statements = self._scan_range(conn, p, index, encoder, outdir, failed)
            if encoder.max_writetime is not None:
                with lock:
                    max_wt.append(encoder.max_writetime)
            if output.complete(index, spool, rows, statements):
                output.finished = _now()
                trailer = "" if self.opt.format == "csv" else TRAILER.format(
                    rows=output.rows, statements=output.statements
                )  # fmt: skip
                entry = output.finish(trailer, [model.name, p.table.name])
                with lock:
                    entries.append(entry)
                    per_table[p.table.name] = {
                        "rows": output.rows,
                        "statements": output.statements,
                        "scan_started": output.started,
                        "scan_finished": output.finished,
                        "file": entry.path,
                    }
            self.progress.advance(bar, 1)

        workers = max(1, min(self.opt.jobs, total))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ybrewind-dump") as pool:
            futures: list[Future[None]] = [pool.submit(run, p, i) for p in plans for i in range(len(p.ranges))]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            error = next((f.exception() for f in done if f.exception() is not None), None)
            if error is not None:
                failed.set()
                for f in futures:
                    f.cancel()
                wait(futures)
        if error is not None:
            for p in plans:
                if p.output is not None and p.output.next < p.output.nranges:
                    p.output.abort(error)
            if isinstance(error, YbrewindError):
                raise error
            raise translate(error, "dumping data")
        fsync_dir(outdir / "data")
        return sorted(entries, key=lambda f: f.path), per_table, (max(max_wt) if max_wt else None)

    def _encoder(self, model: sch.KeyspaceDef, p: _TablePlan) -> TableEncoder:
        return TableEncoder(model.name, p.table, p.types, p.timed, self.opt, self.warn)

    def _scan_range(
        self,
        conn: CqlConnection,
        p: _TablePlan,
        index: int,
        encoder: TableEncoder,
        outdir: Path,
        failed: threading.Event,
    ) -> tuple[IO[bytes], int, int]:
        lo, hi = p.ranges[index]
        assert p.prepared is not None
        bound = BoundStatement(p.prepared).bind([lo, hi])
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=outdir)  # noqa: SIM115
        rows = statements = 0
        state: bytes | None = None
        attempts = 0
        what = f"dumping {p.table.name} ({'partition_hash' if lo >= 0 and hi <= YB_HASH_MAX else 'token'} {lo}..{hi})"
        try:
            while not failed.is_set():
                try:
                    rs = self._execute(conn, bound, state)
                except Exception as e:
                    if is_transient(e) and attempts < self.opt.retries:
                        attempts += 1
                        with self._lock:
                            self.retries += 1
                        time.sleep(self.opt.retry_delay * attempts)
                        continue
                    raise translate(e, what) from None
                page = rs.current_rows
                out: list[str] = []
                statements += encoder.encode(page, out)
                rows += len(page)
                if out:
                    spool.write("".join(out).encode("utf-8", errors="surrogateescape"))
                state = rs.paging_state
                if not state:
                    break
        except BaseException:
            spool.close()
            raise
        return spool, rows, statements

    @staticmethod
    def _execute(conn: CqlConnection, bound: BoundStatement, state: bytes | None) -> Any:
        """One page (a seam for tests that inject failures)."""
        return conn.session.execute(bound, paging_state=state)


def dump(
    source: YcqlEndpoint, output: Path | str, options: DumpOptions | None = None, progress: Progress | None = None
) -> DumpResult:
    """Dump the keyspace of ``source`` into the directory ``output``."""
    return Dumper(source, options or DumpOptions(), progress).dump(Path(output))
