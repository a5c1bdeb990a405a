"""Load a ybrewind dump directory, or any plain SQL script, into a YSQL/PostgreSQL database.

Dump directories: every checksum is verified before the target is touched; pre-data runs in one
transaction (all or nothing); data files are COPYed in parallel, each streamed and decompressed
on the fly, in its own transaction; post-data runs phase by phase (indexes and constraints in
parallel across tables, then foreign keys, triggers and policies, privileges, sequence values,
materialized view refreshes); then ANALYZE.

Plain scripts (a pg_dump -Fp output, a hand-written fixture) run statement by statement through
``script.iter_script_file``; the first failure stops the load and names file, line and statement.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ybrewind import manifest as mf
from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import ConnectError, DatabaseError, DumpIntegrityError, TargetNotEmptyError, UsageError, one_line
from ybrewind.files import CHUNK, check_compressed, open_binary
from ybrewind.progress import Progress
from ybrewind.ysql import script
from ybrewind.ysql.catalog import NOT_IN_EXTENSION, USER_NAMESPACES
from ybrewind.ysql.ddl import PHASE_FOREIGN_KEYS, PHASE_REFRESH, PHASE_SEQUENCES, SCRIPT_PREAMBLE

COPY_END = b"\\.\n"


@dataclass
class LoadOptions:
    jobs: int = 1
    create: bool = False
    clean: bool = False
    analyze: bool = True
    single_transaction: bool = False  # plain scripts only: all or nothing
    check_empty: bool = True  # restore manages emptiness itself (its progress schema is in the target)


@dataclass
class LoadResult:
    source: str
    target: str
    tables: int = 0
    rows: int = 0
    bytes: int = 0
    statements: int = 0
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def db_error(e: psycopg.Error, where: str, statement: str | None = None) -> DatabaseError:
    diag = getattr(e, "diag", None)
    primary = (diag.message_primary if diag else None) or str(e).strip().splitlines()[0]
    detail = f"{where}: {primary}"
    context = diag.context if diag else None
    if context and context.startswith("COPY"):
        detail += f" ({context.splitlines()[0]})"
    if statement:
        detail += f" in: {one_line(statement)}"
    return DatabaseError(detail)


def ensure_database(target: PgEndpoint, colocated: bool = False) -> bool:
    """Create the target database if missing; True if it was created."""
    name = target.dbname
    last: ConnectError | None = None
    for maintenance in ("postgres", "template1", "yugabyte"):
        try:
            conn = target.with_dbname(maintenance).connect()
        except ConnectError as e:
            last = e
            continue
        with conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                return False
            stmt = sql.SQL("CREATE DATABASE {} WITH TEMPLATE = template0 ENCODING = 'UTF8'").format(
                sql.Identifier(name)
            )
            if colocated:
                stmt += sql.SQL(" COLOCATION = true")
            try:
                conn.execute(stmt)
            except psycopg.Error as e:
                raise db_error(e, f"creating database {name}") from None
            return True
    raise last or ConnectError(f"cannot connect to a maintenance database on {target.display()}")


def user_objects(conn: psycopg.Connection) -> dict[str, int]:
    """Counts of user objects; an empty database has none (extension members are not counted)."""
    q = (
        "SELECT "
        f"(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_NAMESPACES} "
        f"AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND "
        + NOT_IN_EXTENSION.format(catalog="'pg_class'", oid="c.oid")
        + f") AS relations, (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        f"WHERE {USER_NAMESPACES} AND "
        + NOT_IN_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")
        + f") AS functions, (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        f"WHERE {USER_NAMESPACES} AND t.typtype IN ('e', 'd', 'r') AND "
        + NOT_IN_EXTENSION.format(catalog="'pg_type'", oid="t.oid")
        + f") AS types, (SELECT count(*) FROM pg_namespace n WHERE {USER_NAMESPACES} AND n.nspname <> 'public' AND "
        + NOT_IN_EXTENSION.format(catalog="'pg_namespace'", oid="n.oid")
        + ") AS schemas"
    )
    with conn.cursor() as cur:
        cur.execute(q)
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return {d.name: int(v) for d, v in zip(cur.description, row, strict=True) if v}


class Loader:
    def __init__(self, target: PgEndpoint, options: LoadOptions, progress: Progress | None = None) -> None:
        if options.jobs < 1:
            raise UsageError("-j/--jobs must be at least 1")
        self.target = target
        self.opt = options
        self.progress = progress or Progress()
        self.session_settings: list[str] = []

    def connect(self) -> psycopg.Connection:
        conn = self.target.connect()
        try:
            for stmt in SCRIPT_PREAMBLE + self.session_settings:
                conn.execute(stmt)
        except psycopg.Error as e:
            conn.close()
            raise db_error(e, f"preparing a session on {self.target.display()}") from None
        return conn

    # -- dump directories -------------------------------------------------------------------
    def load_dump(self, directory: Path) -> LoadResult:
        started = time.monotonic()
        result = LoadResult(str(directory), self.target.display())
        step = time.monotonic()
        manifest = mf.verify(directory, jobs=self.opt.jobs)
        if manifest.api != "ysql":
            raise UsageError(f"{directory} is a {manifest.api.upper()} dump; load it into a ycql:// target")
        result.steps["verify"] = round(time.monotonic() - step, 3)
        for w in manifest.warnings:  # what the dump could not render, said again before anything changes
            self.progress.warn(w)
        # A data-only dump goes into tables whose foreign keys and triggers already exist: like
        # pg_restore --disable-triggers, load with replication role "replica" (superuser only).
        self.session_settings = ["SET session_replication_role = replica"] if manifest.options.get("data_only") else []
        if self.opt.create:
            ensure_database(self.target, colocated=manifest.dialect == "yugabyte" and manifest.source.get("colocated"))
        with self.connect() as conn:
            self._prepare_target(conn, manifest)
            step = time.monotonic()
            pre = manifest.files_of("pre-data")
            if pre:
                result.statements += self._run_in_transaction(conn, directory / pre[0].path)
            result.steps["pre-data"] = round(time.monotonic() - step, 3)
        step = time.monotonic()
        data = manifest.files_of("data")
        result.rows, result.bytes = self._load_data(directory, data)
        result.tables = len({tuple(f.table or ()) for f in data})
        result.steps["data"] = round(time.monotonic() - step, 3)
        step = time.monotonic()
        post = manifest.files_of("post-data")
        if post:
            result.statements += self._post_data(directory / post[0].path, manifest.post_data)
        result.steps["post-data"] = round(time.monotonic() - step, 3)
        if self.opt.analyze and data:
            step = time.monotonic()
            self._analyze(sorted({tuple(f.table) for f in data if f.table}))
            result.steps["analyze"] = round(time.monotonic() - step, 3)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _prepare_target(self, conn: psycopg.Connection, manifest: mf.Manifest) -> None:
        if manifest.options.get("data_only") or not self.opt.check_empty:
            return
        found = user_objects(conn)
        if not found:
            return
        if not self.opt.clean:
            what = ", ".join(f"{v} {k}" for k, v in found.items())
            raise TargetNotEmptyError(
                f"target database {self.target.dbname} is not empty ({what}); load into a new database "
                "(--create) or pass --clean to drop the dump's schemas first"
            )
        schemas = manifest.objects.get("schemas") or []
        try:
            with conn.transaction():
                for s in schemas:
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)))
                if "public" in schemas:
                    conn.execute("CREATE SCHEMA public")
                if not schemas:
                    for schema, name in manifest.objects.get("tables") or []:
                        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, name)))
        except psycopg.Error as e:
            raise db_error(e, f"cleaning {self.target.dbname}") from None

    def _run_in_transaction(self, conn: psycopg.Connection, path: Path) -> int:
        count = 0
        try:
            with conn.transaction():
                for item in script.iter_script_file(path):
                    self._execute(conn, item)
                    count += 1
        except psycopg.Error as e:  # raised by _execute with location already attached
            raise db_error(e, str(path)) from None
        return count

    def _execute(self, conn: psycopg.Connection, item: script.Statement | script.CopyIn | script.MetaCommand) -> int:
        """Run one script item; returns rows copied. Errors carry file:line."""
        try:
            if isinstance(item, script.CopyIn):
                with conn.cursor() as cur:
                    with cur.copy(item.sql) as copy:
                        for chunk in item.data:
                            copy.write(chunk)
                    return max(cur.rowcount, 0)
            if isinstance(item, script.MetaCommand):
                self._meta(item)
                return 0
            conn.execute(item.sql.encode())  # bytes: no client-side placeholder parsing of '%'
            return 0
        except psycopg.Error as e:
            raise db_error(
                e, f"{item.file}:{item.line}", item.sql if not isinstance(item, script.MetaCommand) else None
            ) from None

    def _meta(self, item: script.MetaCommand) -> None:
        if item.name in ("connect", "c"):
            # psql's forms: \connect db, \connect -reuse-previous=on "dbname='db'", \connect -
            words = [w for w in item.argv if not w.startswith("-reuse-previous")] or ["-"]
            wanted = words[0]
            if "=" in wanted:
                from psycopg.conninfo import conninfo_to_dict

                wanted = str(conninfo_to_dict(wanted).get("dbname") or "-")
            if wanted not in ("-", self.target.dbname):
                raise UsageError(
                    f"{item.file}:{item.line}: the script switches to database {wanted!r} (\\connect); "
                    f"load it into that database, or remove the line"
                )
        elif item.name in ("echo", "qecho"):
            self.progress.log(item.args)

    def _load_data(self, directory: Path, files: list[mf.FileEntry]) -> tuple[int, int]:
        total = sum(f.bytes for f in files)
        bar = self.progress.task("load data", total or None)
        rows = 0
        lock = threading.Lock()

        def one(conn: psycopg.Connection, entry: mf.FileEntry) -> None:
            nonlocal rows
            n = self._load_file(conn, directory, entry)
            if entry.rows is not None and n != entry.rows:
                raise DumpIntegrityError(f"{entry.path}: loaded {n} rows, the manifest says {entry.rows}")
            with lock:
                rows += n
            self.progress.advance(bar, entry.bytes)

        ordered = sorted(files, key=lambda f: -f.bytes)
        self._parallel([(lambda c, e=e: one(c, e)) for e in ordered])
        return rows, total

    def _load_file(self, conn: psycopg.Connection, directory: Path, entry: mf.FileEntry) -> int:
        path = directory / entry.path
        with open_binary(path) as f:
            header = f.readline()
            if not header.startswith(b"COPY "):
                f.close()
                with conn.transaction():
                    rows = 0
                    for item in script.iter_script_file(path):
                        rows += self._execute(conn, item)
                    return rows
            statement = header.decode().rstrip().rstrip(";")
            try:
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(statement.encode()) as copy:
                        _stream_copy_block(f, copy.write, entry.path)
                    return max(cur.rowcount, 0)
            except psycopg.Error as e:
                raise db_error(e, entry.path) from None

    def _post_data(self, path: Path, layout: list[list[Any]]) -> int:
        statements = [s for s in script.iter_script_file(path)]
        if len(statements) != len(layout):
            raise DumpIntegrityError(
                f"{path.name} holds {len(statements)} statements, the manifest lists {len(layout)}"
            )
        phases: dict[int, dict[str, list[script.Statement]]] = defaultdict(lambda: defaultdict(list))
        settings: list[str] = []
        for stmt, (phase, group) in zip(statements, layout, strict=True):
            if phase == 0:  # session settings (pg_dump's or ybrewind's): every post-data connection runs them
                assert isinstance(stmt, script.Statement)
                settings.append(stmt.sql)
                continue
            assert isinstance(stmt, script.Statement)
            # Foreign keys, sequence values and refreshes run in one ordered stream: parallel FK
            # validation can deadlock, and materialized views refresh in dependency order.
            key = "" if phase in (PHASE_FOREIGN_KEYS, PHASE_SEQUENCES, PHASE_REFRESH) else group
            phases[phase][key].append(stmt)
        bar = self.progress.task("post-data", len(statements), unit="statements")
        for phase in sorted(phases):
            jobs = []
            for stmts in sorted(phases[phase].values(), key=len, reverse=True):

                def run(conn: psycopg.Connection, stmts: list[script.Statement] = stmts) -> None:
                    for s in stmts:
                        self._execute(conn, s)
                        self.progress.advance(bar, 1)

                jobs.append(run)
            self._parallel(jobs, settings)
        return len(statements)

    def _analyze(self, tables: list[tuple[str, ...]]) -> None:
        self._parallel([(lambda c, t=t: c.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(*t)))) for t in tables])

    def _parallel(self, jobs: list[Callable[[psycopg.Connection], None]], settings: list[str] | None = None) -> None:
        """Run jobs on up to ``jobs`` connections (each first runs ``settings``); the first failure
        cancels the rest and is raised."""
        if not jobs:
            return
        n = min(self.opt.jobs, len(jobs))
        conns = [self.connect() for _ in range(n)]
        try:
            for c in conns:
                for stmt in settings or []:
                    c.execute(stmt.encode())
        except psycopg.Error as e:
            for c in conns:
                c.close()
            raise db_error(e, "preparing a post-data session", stmt) from None
        free = list(conns)
        lock = threading.Lock()
        failed = threading.Event()

        def run(job: Callable[[psycopg.Connection], None]) -> None:
            if failed.is_set():
                return
            with lock:
                conn = free.pop()
            try:
                job(conn)
            except BaseException:
                failed.set()
                raise
            finally:
                with lock:
                    free.append(conn)

        try:
            with ThreadPoolExecutor(max_workers=n) as pool:
                futures = [pool.submit(run, j) for j in jobs]
                wait(futures, return_when=FIRST_EXCEPTION)
                for fut in futures:
                    fut.cancel()
                for fut in futures:
                    if not fut.cancelled() and (error := fut.exception()) is not None:
                        raise error
        finally:
            for c in conns:
                c.close()

    # -- plain scripts ----------------------------------------------------------------------
    def load_script(self, path: Path) -> LoadResult:
        started = time.monotonic()
        result = LoadResult(str(path), self.target.display())
        if self.opt.create:
            ensure_database(self.target)
        with self.target.connect() as conn:
            try:
                if self.opt.single_transaction:
                    with conn.transaction():
                        self._run_script(conn, path, result)
                else:
                    self._run_script(conn, path, result)
            except psycopg.Error as e:
                raise db_error(e, str(path)) from None
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _run_script(self, conn: psycopg.Connection, path: Path, result: LoadResult) -> None:
        for item in script.iter_script_file(path):
            result.rows += self._execute(conn, item)
            result.statements += 1


def _stream_copy_block(f: Any, write: Callable[[bytes], None], name: str) -> None:
    """Send a data file's COPY block to the server, holding back the final ``\\.`` line.

    A ybrewind data file ends with exactly one terminator line; its absence means truncation.
    """
    pending = b""
    while chunk := f.read(CHUNK):
        data = pending + chunk
        if len(data) > len(COPY_END):
            write(data[: -len(COPY_END)])
            pending = data[-len(COPY_END) :]
        else:
            pending = data
    if pending != COPY_END:
        raise DumpIntegrityError(f"{name} is truncated (no end-of-data marker)")


def load(
    path: Path, target: PgEndpoint, options: LoadOptions | None = None, progress: Progress | None = None
) -> LoadResult:
    """Load a dump directory or a plain SQL script (``.sql`` or ``.sql.zst``) into ``target``."""
    path = Path(path)
    loader = Loader(target, options or LoadOptions(), progress)
    if path.is_dir():
        return loader.load_dump(path)
    if path.is_file():
        check_compressed(path)  # a truncated .zst is refused before its first statement runs
        return loader.load_script(path)
    raise UsageError(f"{path} does not exist")
