"""Consistent, parallel logical dump of one YSQL/PostgreSQL database into plain SQL scripts.

Layout of a dump directory (see README):

    manifest.json        written last; files with sha256, row counts, snapshot, objects
    pre-data.sql         schemas, types, functions, sequences, tables, views
    data/NNNN-name.sql   one COPY ... FROM stdin block per table or table slice (.sql.zst if compressed)
    post-data.sql        constraints, indexes, triggers, policies, privileges, sequence values, refreshes
    restore.sql          \\ir's the above in order, so `psql -f restore.sql` restores without ybrewind

Consistency: the coordinator opens a REPEATABLE READ transaction and exports its snapshot
(PostgreSQL), or pins a read time (YugabyteDB ``yb_read_time``); every worker reads inside that
same snapshot, so the dump is one instant of the database even under concurrent writes.
"""

from __future__ import annotations

import math
import queue
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import psycopg
from psycopg import pq, sql
from psycopg.errors import error_from_result

from ybrewind import manifest as mf
from ybrewind.check import YB_DEFAULT_HISTORY_RETENTION_S, estimated_dump_seconds
from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError, StorageError, UsageError, YbrewindError
from ybrewind.files import CHUNK, ZSTD_SUFFIX, atomic_write, fsync_dir, fsync_files, storage_error
from ybrewind.progress import Progress
from ybrewind.ysql import catalog, pgdump, subset
from ybrewind.ysql.ddl import (
    PHASE_REFRESH,
    PHASE_SEQUENCES,
    SCRIPT_PREAMBLE,
    DdlWriter,
    Dialect,
    PostDataStatement,
    RenderOptions,
    ident,
)
from ybrewind.ysql.model import SchemaModel, Server, Table
from ybrewind.ysql.stream import hybrid_time_to_unix_us, is_hybrid_time_snapshot

DEFAULT_SLICE_BYTES = 256 << 20
# Slices of one table per worker at most: enough to keep every worker busy when slices are uneven;
# each further slice only adds a file to write, fsync and list (and, on YugabyteDB, a scan).
MAX_SLICES_PER_JOB = 4
ROWS_PER_INSERT = 100
YB_HASH_MAX = 65535


@dataclass
class DumpOptions:
    jobs: int = 1
    compress: bool = False
    inserts: bool = False
    dialect: Dialect | None = None  # default: the source's
    owners: bool = True
    privileges: bool = True
    schema_only: bool = False
    data_only: bool = False
    filters: catalog.Filters = field(default_factory=catalog.Filters)
    slice_bytes: int = DEFAULT_SLICE_BYTES
    # An exported snapshot to read in (e.g. from CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT), so a
    # base backup meets the change log at the slot's consistent point with no gap or overlap.
    snapshot: str | None = None
    # YugabyteDB: read as of this time (Unix µs) instead of now, within the history retention.
    read_time_us: int | None = None
    # YugabyteDB: the cluster's timestamp_history_retention_interval_sec (SQL cannot read it).
    yb_history_retention_s: int = YB_DEFAULT_HISTORY_RETENTION_S
    # Read COPY data through a psql child process when psql is installed (faster; see copy_via_psql),
    # for slices of at least psql_min_bytes: starting a child costs tens of milliseconds, which a
    # small table never wins back, so small tables are read in-process on the worker's connection.
    use_psql: bool = True
    psql_min_bytes: int = 32 << 20
    subset: Any = None  # ysql/subset.SubsetSpec: --subset / --mask

    def validate(self) -> None:
        if self.schema_only and self.data_only:
            raise UsageError("--schema-only and --data-only cannot be used together")
        if self.jobs < 1:
            raise UsageError("-j/--jobs must be at least 1")
        if self.subset is not None and self.inserts:
            raise UsageError("--subset/--mask work with COPY data, not --inserts")


@dataclass
class DumpResult:
    output: str
    dialect: str
    tables: int
    rows: int
    bytes: int
    files: int
    seconds: float
    snapshot: dict[str, Any]
    warnings: list[str]


@dataclass(frozen=True)
class Slice:
    """One unit of data work: a whole table, or a page / hash range of it."""

    table: Table
    index: int  # position among the table's slices
    where: sql.Composable | None  # None: the whole table
    select: sql.Composable | None = None  # ysql/subset.py: column expressions (masks) instead of the columns

    @property
    def label(self) -> str:
        return f"{self.table.schema}.{self.table.name}" + (f" [{self.index + 1}]" if self.where is not None else "")


@dataclass
class SchemaScripts:
    """A dump's schema: pre-data text, post-data statements (phase 0: session settings) and the
    statements that fill large objects (from pg_dump's data section)."""

    pre: str
    post: list[PostDataStatement]
    large_objects: list[str] = field(default_factory=list)


def _script_text(statements: list[str]) -> str:
    return "".join(stmt + ";\n\n" for stmt in statements)


def _post_text(post: list[PostDataStatement]) -> str:
    return "".join((f"--\n{p.header}\n--\n\n" if p.header else "") + p.sql + ";\n\n" for p in post)


def large_object_statements(entries: list[pgdump.Entry]) -> list[str]:
    """pg_dump's BLOBS data as one ``lo_put`` per chunk.

    pg_dump writes ``lo_open``/``lowrite(0, ...)``/``lo_close`` inside BEGIN/COMMIT, which only works
    in one transaction; ``lo_put`` at an explicit offset is the same write and runs anywhere (psql's
    autocommit, or the loader's transaction per data file).
    """
    out: list[str] = []
    oid, offset = None, 0
    for e in entries:
        if e.type != "BLOBS":
            continue
        for stmt in e.statements:
            if stmt in ("BEGIN", "COMMIT"):
                continue
            if m := re.fullmatch(r"SELECT pg_catalog\.lo_open\('(\d+)', \d+\)", stmt):
                oid, offset = m.group(1), 0
            elif m := re.fullmatch(r"SELECT pg_catalog\.lowrite\(0, '(\\x[0-9a-f]*)'\)", stmt):
                if oid is None:
                    raise DatabaseError(f"pg_dump's large object data: lowrite without lo_open: {stmt[:60]}")
                out.append(f"SELECT pg_catalog.lo_put('{oid}', {offset}, '{m.group(1)}')")
                offset += (len(m.group(1)) - 2) // 2
            elif re.fullmatch(r"SELECT pg_catalog\.lo_close\(0\)", stmt):
                oid = None
            else:
                raise DatabaseError(f"pg_dump's large object data: unexpected statement {stmt[:60]}")
    return out


def _translate(error: psycopg.Error, what: str) -> DatabaseError:
    diag = getattr(error, "diag", None)
    primary = (diag.message_primary if diag else None) or str(error).strip().splitlines()[0]
    return DatabaseError(f"{what}: {primary}")


def yb_pinned_setup(read_time_us: int | None = None, hybrid_time: str | None = None) -> list[str]:
    """What a YugabyteDB session runs to read as of one time: a Unix µs time (``SET yb_read_time``,
    before the transaction) or a slot snapshot's hybrid time (``SET LOCAL yb_read_time TO '<ht> ht'``
    as the transaction's first statement: docs develop/change-data-capture/using-logical-replication/
    advanced-topic.md, Initial snapshot). Like ``ysql_dump --read-time``, catalog version checks are
    off: the catalog is read as of that time too (yb_disable_catalog_version_check, docs
    reference/configuration/yb-tserver.md: "used by ysql_dump to read pg catalog as of time"). Both
    settings are superuser-only (advanced-topic.md, Permissions; yb-tserver.md, Context superuser)."""
    begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    no_check = "SET yb_disable_catalog_version_check = true"
    if hybrid_time is not None:
        return [
            no_check,
            begin,
            sql.SQL("SET LOCAL yb_read_time TO {}").format(sql.Literal(f"{hybrid_time} ht")).as_string(None),
        ]
    return [no_check, sql.SQL("SET yb_read_time TO {}").format(sql.Literal(read_time_us)).as_string(None), begin]


def yb_superuser_needed(what: str) -> UsageError:
    return UsageError(
        f"{what} on YugabyteDB needs a superuser: SET yb_read_time is superuser-only "
        "(YugabyteDB docs, logical replication advanced topics, Permissions)"
    )


class Snapshot:
    """The dump's single point in time, shared by the coordinator and all workers."""

    def __init__(
        self,
        coordinator: psycopg.Connection,
        is_yugabyte: bool,
        imported: str | None = None,
        read_time_us: int | None = None,
        history_retention_s: int = YB_DEFAULT_HISTORY_RETENTION_S,
    ) -> None:
        self.is_yugabyte = is_yugabyte
        self.name: str | None = None
        self.read_time_us: int | None = None
        self.hybrid_time: str | None = None  # YugabyteDB slot snapshot read through yb_read_time
        self.lsn: str | None = None
        superuser = coordinator.execute("SELECT current_setting('is_superuser')").fetchone() == ("on",)
        coordinator.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if is_yugabyte and imported and is_hybrid_time_snapshot(imported):
            # A YugabyteDB slot's snapshot without snapshot export: its name is the hybrid time to
            # read at (walsender.c, CreateReplicationSlot); its time is that hybrid time's µs.
            coordinator.execute("ROLLBACK")
            if not superuser:
                raise yb_superuser_needed("a base backup in the replication slot's snapshot")
            self.hybrid_time = imported
            self.enter(coordinator)
            self.time = datetime.fromtimestamp(hybrid_time_to_unix_us(int(imported)) / 1e6, UTC)
        elif is_yugabyte and (read_time_us is not None or (not imported and superuser)):
            # yb_read_time pins every session to the same time; it must be set before the first read.
            coordinator.execute("ROLLBACK")
            if not superuser:
                raise yb_superuser_needed("reading as of a past time")
            now_us = int(
                coordinator.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").fetchone()[0]
            )  # type: ignore[index]
            if read_time_us is not None and now_us - read_time_us >= history_retention_s * 1_000_000:
                raise UsageError(
                    f"{datetime.fromtimestamp(read_time_us / 1e6, UTC).isoformat()} is older than the cluster's "
                    f"history retention ({history_retention_s} s, timestamp_history_retention_interval_sec): "
                    "YugabyteDB can no longer read as of it"
                )
            self.read_time_us = read_time_us if read_time_us is not None else now_us
            self.enter(coordinator)
            self.time = datetime.fromtimestamp(self.read_time_us / 1e6, UTC)
        elif imported:
            # PostgreSQL, or YugabyteDB with ysql_enable_pg_export_snapshot (snapshot ids
            # "<hex>-<hex>": src/yb/integration-tests/upgrade-tests/cdc_upgrade-test.cc).
            self.name = imported
            coordinator.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(imported)))
            row = coordinator.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            self.time = row[0]
        else:
            # PostgreSQL; or YugabyteDB for a role that may not set yb_read_time: exported snapshots
            # work there when ysql_enable_pg_export_snapshot is on (docs: explore/ysql-language-features/
            # advanced-features/snapshot-synchronization.md).
            try:
                row = coordinator.execute(
                    "SELECT pg_export_snapshot(), clock_timestamp(), "
                    + (
                        "NULL"
                        if is_yugabyte
                        else "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END"
                    )
                ).fetchone()
            except psycopg.Error as e:
                if not is_yugabyte:
                    raise
                raise UsageError(
                    f"a consistent YugabyteDB dump needs a superuser (SET yb_read_time) or the yb-tserver flag "
                    f"ysql_enable_pg_export_snapshot ({_translate(e, 'pg_export_snapshot').message})"
                ) from None
            assert row is not None
            self.name, self.time, self.lsn = row

    def setup_statements(self) -> list[str]:
        """What a fresh session runs to read inside the snapshot (also used for psql workers)."""
        if self.hybrid_time is not None:
            return yb_pinned_setup(hybrid_time=self.hybrid_time)
        if self.read_time_us is not None:
            return yb_pinned_setup(read_time_us=self.read_time_us)
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        # The coordinator holds ACCESS SHARE on every table, so a worker's lock waits only behind an
        # ACCESS EXCLUSIVE request (TRUNCATE, ALTER...) queued after it, which waits for the coordinator:
        # a deadlock the server cannot see. Fail instead, as pg_dump's workers do (LOCK ... NOWAIT).
        setup = [begin, sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.name)).as_string(None)]
        return setup if self.is_yugabyte else [*setup, "SET LOCAL lock_timeout = '1s'"]

    def enter(self, conn: psycopg.Connection) -> None:
        """Make ``conn`` (autocommit, idle) read inside the snapshot."""
        for statement in self.setup_statements():
            conn.execute(statement.encode())
        conn.execute("SELECT pg_catalog.set_config('search_path', '', false)")

    def describe(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "lsn": self.lsn,
            "snapshot": self.name or self.hybrid_time,
            "yb_read_time": self.read_time_us,
        }


def plan_slices(
    tables: list[Table], is_yugabyte: bool, slice_bytes: int, jobs: int, block_size: int = 8192
) -> list[Slice]:
    """Split big tables so one table does not serialize a parallel dump; biggest work first.

    PostgreSQL: ctid page ranges (TID range scans, PG14+); the last slice is open-ended so rows in
    pages added since the size was read are not missed. YugabyteDB: yb_hash_code ranges over the
    hash key; range-sharded tables are not sliced. At most ``MAX_SLICES_PER_JOB`` × ``jobs`` slices
    per table, whatever ``slice_bytes`` says.
    """
    out: list[Slice] = []
    for t in sorted(tables, key=lambda t: -t.estimated_bytes):
        n = 1
        if jobs > 1 and slice_bytes > 0:
            n = min(math.ceil(t.estimated_bytes / slice_bytes), jobs * MAX_SLICES_PER_JOB)
        if n <= 1:
            out.append(Slice(t, 0, None))
        elif is_yugabyte:
            hashed = [k.name for k in (t.primary_key.columns if t.primary_key else []) if k.ordering == "HASH"]
            if not hashed:
                out.append(Slice(t, 0, None))
                continue
            hash_expr = sql.SQL("yb_hash_code({})").format(sql.SQL(", ").join(map(sql.Identifier, hashed)))
            width = (YB_HASH_MAX + 1) // n + 1
            for i in range(n):
                lo, hi = i * width, min((i + 1) * width - 1, YB_HASH_MAX)
                if lo > YB_HASH_MAX:
                    break
                out.append(Slice(t, i, sql.SQL("{} BETWEEN {} AND {}").format(hash_expr, lo, hi)))
        else:
            pages = max(1, math.ceil(t.estimated_bytes / block_size))
            step = math.ceil(pages / n)
            for i in range(n):
                lo = sql.Literal(f"({i * step},0)")
                if i == n - 1:
                    where = sql.SQL("ctid >= {}::tid").format(lo)
                else:
                    hi = sql.Literal(f"({(i + 1) * step},0)")
                    where = sql.SQL("ctid >= {}::tid AND ctid < {}::tid").format(lo, hi)
                out.append(Slice(t, i, where))
    return out


def copy_header(t: Table) -> str:
    cols = ", ".join(ident(c) for c in t.copy_columns())
    return f"COPY {ident(t.schema or '', t.name)}{f' ({cols})' if cols else ''} FROM stdin;\n"


def _select(s: Slice, expressions: sql.Composable) -> sql.Composed:
    query = sql.SQL("SELECT {} FROM ONLY {}").format(expressions, sql.Identifier(s.table.schema or "", s.table.name))
    if s.where is not None:
        query += sql.SQL(" WHERE ") + s.where
    return query


def copy_query(s: Slice) -> sql.Composed:
    names = s.table.copy_columns()
    cols = sql.SQL(", ").join(map(sql.Identifier, names))
    if s.where is None and s.select is None:
        table = sql.Identifier(s.table.schema or "", s.table.name)
        if not names:  # a table without columns (CREATE TABLE t ()) still has rows
            return sql.SQL("COPY {} TO STDOUT").format(table)
        return sql.SQL("COPY {} ({}) TO STDOUT").format(table, cols)
    return sql.SQL("COPY ({}) TO STDOUT").format(_select(s, s.select or cols))


def copy_via_psql(psql: str, source: PgEndpoint, setup: list[str], query: str, sink: Callable[[bytes], None]) -> int:
    """Run the COPY in a ``psql`` child and stream its output; returns rows.

    libpq hands COPY data over one row per call; psql's loop around that call is C, ours is Python,
    which on a small machine costs the dump a third of its speed. The child imports the dump's
    snapshot first, so it reads the same instant. The password goes through the child's environment,
    never its command line.
    """
    env, dbname = pgdump.child_connection(source)
    argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", *dbname]
    for statement in [*setup, query]:
        argv += ["-c", statement]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        rows = 0
        while chunk := proc.stdout.read(CHUNK):
            rows += chunk.count(b"\n")  # COPY text escapes newlines inside values: one per row
            sink(chunk)
        errors = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            lines = [ln for ln in errors.splitlines() if "ERROR" in ln or "FATAL" in ln] or errors.splitlines()
            detail = lines[0].split(":", 2)[-1].strip() if lines else f"psql exited with {proc.returncode}"
            raise DatabaseError(" ".join(detail.split()))
    return rows


def find_psql() -> str | None:
    """psql for fast COPY reads, if installed (ysqlsh works too); None: read in-process."""
    found = shutil.which("psql")
    if found:
        return found
    try:
        from ybrewind.sandbox import find_bindir

        candidate = find_bindir() / "psql"
        return str(candidate) if candidate.exists() else None
    except YbrewindError:
        return None


def copy_to(conn: psycopg.Connection, query: bytes, sink: Callable[[bytes], None]) -> int:
    """Run ``COPY ... TO STDOUT`` and hand the data to ``sink`` in ~1 MiB blocks; returns rows.

    libpq returns COPY data one row per call. psycopg's ``Copy`` iterator costs several Python
    frames per row (measured: 3-4x slower than pg_dump on pgbench_accounts), so this loop talks
    to libpq directly through ``conn.pgconn``, as the replication stream does.
    """
    pgconn = conn.pgconn
    pgconn.send_query(query)
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _drain(pgconn)
        raise _error(conn, result)
    buf = bytearray()
    socket_fd = pgconn.socket
    while True:
        # Non-blocking reads: a blocking read drops and retakes the GIL for every row, which makes
        # parallel workers thrash (measured 1.5x slower with two workers); waiting happens in select().
        n, data = pgconn.get_copy_data(1)
        if n > 0:
            buf += data
            if len(buf) >= CHUNK:
                sink(bytes(buf))
                buf.clear()
        elif n == 0:
            select.select([socket_fd], [], [])
            pgconn.consume_input()
        else:
            break
    if buf:
        sink(bytes(buf))
    result = pgconn.get_result()
    _drain(pgconn)
    if n == -2 or result is None or result.status != pq.ExecStatus.COMMAND_OK:
        raise _error(conn, result)
    return int(result.command_status.split()[-1]) if result.command_status else 0


def _drain(pgconn: pq.abc.PGconn) -> None:
    while pgconn.get_result() is not None:
        pass


def _error(conn: psycopg.Connection, result: pq.abc.PGresult | None) -> psycopg.Error:
    if result is not None and result.status == pq.ExecStatus.FATAL_ERROR:
        return error_from_result(result, encoding=conn.info.encoding)
    return psycopg.OperationalError(conn.pgconn.error_message.decode(errors="replace").strip() or "COPY failed")


def _inserts_out(conn: psycopg.Connection, s: Slice, sink: Callable[[bytes], None]) -> int:
    """Multi-row INSERTs; values are quoted by the server (quote_nullable), never by us."""
    t = s.table
    cols = t.copy_columns()
    if not cols:  # a table without columns: one row each
        with conn.cursor() as cur:
            cur.execute(_select(s, sql.SQL("")))
            rows = len(cur.fetchall())
        sink(f"INSERT INTO {ident(t.schema or '', t.name)} DEFAULT VALUES;\n".encode() * rows)
        return rows
    row_expr = sql.SQL("'(' || concat_ws(', ', {}) || ')'").format(
        sql.SQL(", ").join(sql.SQL("quote_nullable({}::text)").format(sql.Identifier(c)) for c in cols)
    )
    overriding = " OVERRIDING SYSTEM VALUE" if any(c.identity == "ALWAYS" for c in t.columns) else ""
    head = f"INSERT INTO {ident(t.schema or '', t.name)} ({', '.join(ident(c) for c in cols)}){overriding} VALUES\n"
    rows = 0
    batch: list[str] = []
    with conn.cursor(name=f"ybrewind_inserts_{threading.get_ident()}") as cur:
        cur.itersize = 2000
        cur.execute(_select(s, row_expr))
        for (values,) in cur:
            batch.append(values)
            rows += 1
            if len(batch) >= ROWS_PER_INSERT:
                sink((head + ",\n".join(batch) + ";\n").encode())
                batch.clear()
    if batch:
        sink((head + ",\n".join(batch) + ";\n").encode())
    return rows


def safe_filename(index: int, schema: str, name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{schema}.{name}")[:80].strip("._") or "table"
    return f"{index:04d}-{stem}"


class Dumper:
    def __init__(self, source: PgEndpoint, options: DumpOptions, progress: Progress | None = None) -> None:
        options.validate()
        # Every connection (coordinator, workers, psql and pg_dump children) prints values the same
        # way whatever the source's defaults: see TEXT_SETTINGS_OPTIONS.
        self.source = source.with_pinned_text_settings()
        self.opt = options
        self.progress = progress or Progress()
        # A subset's row lists do not fit a psql command line: read in-process.
        self.psql = find_psql() if options.use_psql and options.subset is None else None
        self.snapshot_setup: list[str] = []
        self.warnings: list[str] = []
        self.pg_dump: pgdump.PgDumpTool | None = None

    # -- shared -----------------------------------------------------------------------------
    def _open(self) -> tuple[psycopg.Connection, Snapshot, SchemaModel]:
        conn = self.source.connect()
        try:
            server = catalog.read_server(conn)
            if self.opt.read_time_us is not None and not server.is_yugabyte:
                raise UsageError("reading at a past time (yb_read_time) needs a YugabyteDB source")
            snapshot = Snapshot(
                conn, server.is_yugabyte, self.opt.snapshot, self.opt.read_time_us, self.opt.yb_history_retention_s
            )
            self.pg_dump, why = self._pg_dump_tool(server)
            # With pg_dump rendering the schema, the model only serves the data (tables, sequences).
            model = catalog.read_schema(conn, self.opt.filters, full=self.pg_dump is None)
            if why:
                model.warnings.insert(0, why)
            self._check_history_retention(snapshot, model)
            if not server.is_yugabyte:
                self._lock_tables(conn, model)
        except psycopg.Error as e:
            conn.close()
            raise _translate(e, f"reading the schema of {self.source.display()}") from None
        return conn, snapshot, model

    def _check_history_retention(self, snapshot: Snapshot, model: SchemaModel) -> None:
        """A YugabyteDB read pinned to one time fails once that time is older than the history
        retention (docs: manage/backup-restore/time-travel-query.md): say so before a long dump
        dies midway."""
        if snapshot.read_time_us is None and snapshot.hybrid_time is None:
            return
        age = max(0.0, (datetime.now(UTC) - snapshot.time).total_seconds())
        needed = estimated_dump_seconds(sum(t.estimated_bytes for t in model.tables()), self.opt.jobs)
        if age + needed >= self.opt.yb_history_retention_s:
            self.progress.warn(
                f"the dump reads as of {snapshot.time.isoformat()} ({age:.0f} s ago) and may take about "
                f"{needed:.0f} s: past the history retention ({self.opt.yb_history_retention_s} s, "
                "timestamp_history_retention_interval_sec) its reads fail; raise the flag or dump with more jobs"
            )

    @staticmethod
    def _lock_tables(conn: psycopg.Connection, model: SchemaModel) -> None:
        # Like pg_dump: ACCESS SHARE locks keep tables from being dropped or altered mid-dump.
        names = [sql.Identifier(t.schema or "", t.name) for t in model.tables()]
        for i in range(0, len(names), 1000):  # one statement for many tables: a round trip each is slow
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(sql.SQL(", ").join(names[i : i + 1000])))
        # TRUNCATE and table rewrites are not MVCC-safe: one committed after the snapshot but before
        # the lock leaves the snapshot a new, empty file to read. The snapshot still sees the old
        # pg_class row; the relation cache, refreshed by the lock, has the new file.
        rewritten = conn.execute(
            "SELECT oid::regclass::text FROM pg_catalog.pg_class WHERE oid = ANY(%s) "
            "AND relfilenode <> 0 AND relfilenode <> pg_catalog.pg_relation_filenode(oid)",
            [[t.key[1] for t in model.tables()]],
        ).fetchall()
        if rewritten:
            raise DatabaseError(
                f"table {rewritten[0][0]} was truncated or rewritten after the dump's snapshot was taken: "
                "its rows as of the snapshot cannot be read; dump again"
            )

    def _render(self, model: SchemaModel) -> SchemaScripts:
        """The built-in reader's schema (YugabyteDB sources, --dialect yugabyte, no usable pg_dump)."""
        dialect = self.opt.dialect or model.server.dialect
        writer = DdlWriter(model, RenderOptions(dialect, self.opt.owners, self.opt.privileges))
        pre = [] if self.opt.data_only else writer.pre_data()
        post = writer.post_data()
        if self.opt.data_only:
            post = [p for p in post if p.phase in (PHASE_SEQUENCES, PHASE_REFRESH)]
        elif self.opt.schema_only:
            post = [p for p in post if p.phase != PHASE_SEQUENCES]
        settings = [PostDataStatement(s, "", 0) for s in SCRIPT_PREAMBLE]
        return SchemaScripts(_script_text(SCRIPT_PREAMBLE + pre), settings + post)

    def _pg_dump_tool(self, server: Server) -> tuple[pgdump.PgDumpTool | None, str]:
        """pg_dump for a PostgreSQL source rendered for PostgreSQL, or None (the built-in reader)
        and, if pg_dump was wanted, a warning saying what the built-in reader may lose.

        YugabyteDB sources keep the built-in reader: pg_dump cannot render YB's HASH/SPLIT/colocation
        clauses.
        """
        if server.is_yugabyte or (self.opt.dialect or server.dialect) != "postgres":
            return None, ""
        tool, why = pgdump.find_pg_dump(server.version_num)
        if tool is not None:
            return tool, ""
        return None, (
            f"{why}: the schema is read by ybrewind's built-in reader instead, which renders tables, "
            "types, functions, views, sequences, constraints, indexes, triggers, rules, policies, "
            "statistics and privileges but may lose details pg_dump keeps (column storage and "
            "compression, NOT VALID domain constraints, partition index names); the kinds it does not "
            "render at all are named in the warnings that follow. Install pg_dump to dump the whole schema"
        )

    def _start_schema(
        self, conn: psycopg.Connection, snapshot: Snapshot, model: SchemaModel, pool: ThreadPoolExecutor
    ) -> Callable[[], SchemaScripts]:
        """Start producing the schema; the returned function waits for it.

        pg_dump runs in the background (its own processes, inside the dump's snapshot) while the
        workers dump the data.
        """
        tool = self.pg_dump
        if tool is None:
            scripts = self._render(model)
            self.warnings = list(model.warnings)
            return lambda: scripts
        self.warnings = []
        assert snapshot.name is not None
        common = [f"--snapshot={snapshot.name}", *pgdump.filter_args(self.opt.filters)]
        common += [] if self.opt.owners else ["--no-owner"]
        common += [] if self.opt.privileges else ["--no-privileges"]
        sections = ["post-data"] if self.opt.data_only else ["pre-data", "post-data"]
        common += ["--no-blobs"] if self.opt.schema_only else []
        texts = pool.submit(pgdump.schema_sections, tool, self.source, common, sections)
        data: Future[str] | None = None
        if not self.opt.schema_only:
            # Large objects from pg_dump's data section without the table data. Sequence values come
            # from the model (read in the same snapshot): pg_dump -t cannot select an identity
            # sequence without its table's data.
            whole_database = not (self.opt.filters.schemas or self.opt.filters.tables or self.opt.data_only)
            row = conn.execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_largeobject_metadata)").fetchone()
            if whole_database and row and row[0]:
                args = ["--section=data", f"--snapshot={snapshot.name}", "--blobs", "--exclude-table-data=*.*"]
                data = pool.submit(pgdump.run_pg_dump, tool, self.source, args)
            elif self.opt.data_only and row and row[0]:
                # A large object is created by pre-data (lo_create), which a data-only dump has not.
                self.warnings.append("large objects are not dumped by a data-only dump (dump them with the schema)")
        sequences = [] if self.opt.schema_only else DdlWriter(model).sequence_values()

        def collect() -> SchemaScripts:
            *pre, post = texts.result()
            preamble, entries = pgdump.parse(post)
            statements = pgdump.post_data_statements(preamble, entries, data_only=self.opt.data_only)
            statements += [PostDataStatement(s, "", PHASE_SEQUENCES) for s in sequences]
            large_objects = large_object_statements(pgdump.parse(data.result())[1]) if data is not None else []
            statements.sort(key=lambda p: p.phase)
            return SchemaScripts(pre[0] if pre else "", statements, large_objects)

        return collect

    def _data_tables(self, model: SchemaModel) -> list[Table]:
        if self.opt.schema_only:
            return []
        return [
            t for t in model.tables() if not t.is_partitioned and self.opt.filters.data_selected(t.schema or "", t.name)
        ]

    # -- directory format -------------------------------------------------------------------
    def dump_directory(self, outdir: Path) -> DumpResult:
        started = time.monotonic()
        outdir = Path(outdir)
        if outdir.exists() and any(outdir.iterdir()):
            raise UsageError(f"output directory {outdir} exists and is not empty")
        try:
            (outdir / "data").mkdir(parents=True, exist_ok=True, mode=0o700)
            outdir.chmod(0o700)
        except OSError as e:
            raise storage_error(outdir, e) from None
        conn, snapshot, model = self._open()
        try:
            with ThreadPoolExecutor(max_workers=3) as pool:
                schema = self._start_schema(conn, snapshot, model, pool)
                for w in self.warnings:
                    self.progress.warn(w)
                suffix = ".sql" + (ZSTD_SUFFIX if self.opt.compress else "")
                slices = plan_slices(
                    self._data_tables(model), model.server.is_yugabyte, self.opt.slice_bytes, self.opt.jobs
                )
                if self.opt.subset is not None:
                    slices = subset.restrict(conn, slices, self.opt.subset, model.server.is_yugabyte)
                data_files = self._dump_data(outdir, slices, snapshot, conn)
                scripts = schema()
            files = [self._write_text(outdir, f"pre-data{suffix}", "pre-data", scripts.pre or _script_text(SCRIPT_PREAMBLE))]
            if scripts.large_objects:
                name = f"data/0000-large-objects{suffix}"
                files.append(self._write_text(outdir, name, "data", _script_text(scripts.large_objects)))
            files += data_files
            post = scripts.post
            files.append(self._write_text(outdir, f"post-data{suffix}", "post-data", _post_text(post)))
            if not self.opt.compress:
                files.append(self._write_restore(outdir, files))
        except psycopg.Error as e:
            raise _translate(e, f"dumping {self.source.display()}") from None
        finally:
            conn.close()
        manifest = mf.Manifest(
            api="ysql",
            source={
                "server_version": model.server.version,
                "dialect": model.server.dialect,
                "database": model.database.name,
                "endpoint": self.source.display(),
                "colocated": model.database.colocated,
            },
            dialect=self.opt.dialect or model.server.dialect,
            snapshot=snapshot.describe(),
            compression="zstd" if self.opt.compress else "none",
            options={
                "inserts": self.opt.inserts,
                "owners": self.opt.owners,
                "privileges": self.opt.privileges,
                "schema_only": self.opt.schema_only,
                "data_only": self.opt.data_only,
                "jobs": self.opt.jobs,
            },
            objects=_object_summary(model, scripts if self.pg_dump else None),
            files=files,
            post_data=[[p.phase, p.group] for p in post],
            warnings=self.warnings,
        )
        manifest.write(outdir)
        data = manifest.files_of("data")
        return DumpResult(
            str(outdir),
            manifest.dialect,
            len({tuple(f.table or ()) for f in data}),
            manifest.total_rows,
            sum(f.bytes for f in manifest.files),
            len(manifest.files) + 1,
            round(time.monotonic() - started, 3),
            manifest.snapshot,
            self.warnings,
        )

    def _write_text(self, outdir: Path, name: str, kind: str, text: str) -> mf.FileEntry:
        with atomic_write(outdir / name, compress=self.opt.compress) as w:
            w.write(f"-- ybrewind {kind}\n\n".encode())
            w.write(text.encode())
        return mf.FileEntry(name, kind, w.sha256, w.bytes, compressed=self.opt.compress)

    def _write_restore(self, outdir: Path, files: list[mf.FileEntry]) -> mf.FileEntry:
        lines = [
            "-- Restore this dump without ybrewind:  psql -X -f restore.sql -d TARGET_DATABASE",
            "\\set ON_ERROR_STOP on",
        ]
        lines += [f"\\ir {f.path}" for f in files]
        lines.append("ANALYZE;")
        with atomic_write(outdir / "restore.sql") as w:
            w.write(("\n".join(lines) + "\n").encode())
        return mf.FileEntry("restore.sql", "restore", w.sha256, w.bytes)

    def _dump_data(
        self, outdir: Path, slices: list[Slice], snapshot: Snapshot, coordinator: psycopg.Connection
    ) -> list[mf.FileEntry]:
        total = sum(s.table.estimated_bytes for s in slices if s.index == 0)
        bar = self.progress.task("dump data", total or None)
        self.snapshot_setup = snapshot.setup_statements()
        tasks: queue.Queue[tuple[int, Slice]] = queue.Queue()
        for i, s in enumerate(slices, start=1):
            tasks.put((i, s))
        results: list[mf.FileEntry] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        suffix = ".sql" + (ZSTD_SUFFIX if self.opt.compress else "")

        def work(conn: psycopg.Connection) -> None:
            while not errors:
                try:
                    i, s = tasks.get_nowait()
                except queue.Empty:
                    return
                name = f"data/{safe_filename(i, s.table.schema or '', s.table.name)}{suffix}"
                try:
                    entry = self._dump_slice(conn, outdir / name, name, s, bar)
                except BaseException as e:
                    with lock:
                        errors.append(e)
                    return
                with lock:
                    results.append(entry)

        workers = min(self.opt.jobs, max(1, len(slices)))
        conns = [coordinator]
        try:
            for _ in range(workers - 1):
                c = self.source.connect()
                snapshot.enter(c)
                conns.append(c)
            threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in conns]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            for c in conns[1:]:
                c.close()
        if errors:
            e = errors[0]
            if isinstance(e, psycopg.Error):
                raise _translate(e, "dumping data") from None
            raise e
        # The files were written without a sync each: syncing them together is faster, and the
        # manifest, written last, vouches for none of them before this.
        paths = [outdir / f.path for f in results]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fsync_files, [paths[i :: workers] for i in range(workers)]))
        fsync_dir(outdir / "data")
        self.progress.done(bar)
        return sorted(results, key=lambda f: f.path)

    def _dump_slice(self, conn: psycopg.Connection, path: Path, name: str, s: Slice, bar: Any) -> mf.FileEntry:
        t = s.table
        with atomic_write(path, compress=self.opt.compress, sync=False) as w:

            def sink(data: bytes) -> None:
                w.write(data)
                self.progress.advance(bar, len(data))

            try:
                if self.opt.inserts:
                    rows = _inserts_out(conn, s, sink)
                else:
                    w.write(copy_header(t).encode())
                    size = t.estimated_bytes if s.where is None else self.opt.slice_bytes
                    if self.psql and size >= self.opt.psql_min_bytes:
                        rows = copy_via_psql(
                            self.psql, self.source, self.snapshot_setup, copy_query(s).as_string(conn), sink
                        )
                    else:
                        rows = copy_to(conn, copy_query(s).as_bytes(conn), sink)
                    w.write(b"\\.\n")
            except psycopg.Error as e:
                raise _translate(e, f"dumping {s.label}") from None
            except DatabaseError as e:
                raise DatabaseError(f"dumping {s.label}: {e.message}") from None
        return mf.FileEntry(
            name, "data", w.sha256, w.bytes, table=[t.schema or "", t.name], rows=rows, compressed=self.opt.compress
        )

    # -- plain format -----------------------------------------------------------------------
    def dump_plain(self, out: IO[bytes]) -> DumpResult:
        """One script on ``out`` (like pg_dump -Fp): pre-data, data, post-data; sequential."""
        started = time.monotonic()
        conn, snapshot, model = self._open()
        rows = 0
        written = 0

        def emit(data: bytes) -> None:
            nonlocal written
            try:
                out.write(data)
            except OSError as e:
                raise StorageError(f"cannot write the dump: {e.strerror or e}") from None
            written += len(data)

        try:
            with ThreadPoolExecutor(max_workers=3) as pool:
                schema = self._start_schema(conn, snapshot, model, pool)
                for w in self.warnings:
                    self.progress.warn(w)
                scripts = schema()
            emit(f"-- ybrewind dump of {model.database.name} at {snapshot.time.isoformat()}\n".encode())
            emit(b"\\set ON_ERROR_STOP on\n")
            emit((scripts.pre or _script_text(SCRIPT_PREAMBLE)).encode())
            emit(_script_text(scripts.large_objects).encode())
            tables = self._data_tables(model)
            for s in plan_slices(tables, model.server.is_yugabyte, 0, 1):
                if self.opt.inserts:
                    rows += _inserts_out(conn, s, emit)
                else:
                    emit(copy_header(s.table).encode())
                    rows += copy_to(conn, copy_query(s).as_bytes(conn), emit)
                    emit(b"\\.\n\n")
            emit(_post_text(scripts.post).encode())
            out.flush()
        except psycopg.Error as e:
            raise _translate(e, "dumping") from None
        finally:
            conn.close()
        return DumpResult(
            "-",
            self.opt.dialect or model.server.dialect,
            len(self._data_tables(model)),
            rows,
            written,
            1,
            round(time.monotonic() - started, 3),
            snapshot.describe(),
            self.warnings,
        )


def _object_summary(model: SchemaModel, scripts: SchemaScripts | None = None) -> dict[str, Any]:
    """Counts per object kind (pg_dump's TOC types when pg_dump wrote the schema), schemas, tables."""
    if scripts is not None:
        text = scripts.pre + "".join(p.header + "\n" for p in scripts.post)
        toc = Counter(m.group("type") for m in re.finditer(r"(?m)^" + pgdump.HEADER.pattern, text))
        return {
            "counts": dict(sorted(toc.items())),
            "schemas": [o.name for o in model.objects if type(o).__name__ == "Schema"],
            "tables": [[t.schema, t.name] for t in model.tables()],
        }
    counts: dict[str, int] = {}
    for o in model.objects:
        kind = type(o).__name__
        counts[kind] = counts.get(kind, 0) + 1
    counts.update(
        Constraint=len(model.constraints),
        Index=len(model.indexes),
        Trigger=len(model.triggers),
        Policy=len(model.policies),
        Rule=len(model.rules),
        Statistics=len(model.statistics),
    )
    return {
        "counts": {k: v for k, v in counts.items() if v},
        "schemas": [o.name for o in model.objects if type(o).__name__ == "Schema"],
        "tables": [[t.schema, t.name] for t in model.tables()],
    }


def dump(
    source: PgEndpoint,
    output: Path | Literal["-"] | IO[bytes],
    options: DumpOptions | None = None,
    progress: Progress | None = None,
    plain: bool = False,
) -> DumpResult:
    """Dump ``source``: a directory (default) or, with ``plain``, one script to a file or stdout."""
    dumper = Dumper(source, options or DumpOptions(), progress)
    if not plain:
        assert isinstance(output, (str, Path))
        return dumper.dump_directory(Path(output))
    if dumper.opt.subset is not None:
        raise UsageError("--subset/--mask write a dump directory, not --format plain")
    if output == "-":
        return dumper.dump_plain(sys.stdout.buffer)
    if isinstance(output, (str, Path)):
        path = Path(output)
        with atomic_write(path) as w:
            return dumper.dump_plain(w)  # type: ignore[arg-type]
    return dumper.dump_plain(output)
