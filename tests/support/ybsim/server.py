"""The asyncio proxy: one upstream connection per client connection, messages rewritten in between.

Client -> upstream: Query texts go through ``sqlrewrite`` (as a sequence of steps), Parse texts
through its name rewrite, replication commands through the YugabyteDB dialect here, CopyData
feedback of a replication stream through ``replication``. Upstream -> client: results of
bookkeeping statements are dropped, command tags replaced, ParameterStatus server_version set to
YugabyteDB's, the pgoutput stream rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tests.support.ybsim import protocol as pr
from tests.support.ybsim import replication as rp
from tests.support.ybsim.catalog import INSTALL_VERSION, MARKER, SERVER_VERSION, install_sql
from tests.support.ybsim.snapshots import DatabaseSnapshots
from tests.support.ybsim.sqlrewrite import Step, Stmt, YbError, needs_session, rewrite_extended, rewrite_query

TEMPLATES = ("template0", "template1")


@dataclass
class Options:
    upstream: str  # postgresql://user@host:port (superuser, trusted or with password)
    host: str
    port: int
    snapshot_interval: float = 0.25
    history_seconds: float = 60.0
    slot_snapshot_seconds: float = 900.0
    publication_refresh_seconds: float = 900.0  # cdcsdk_publication_list_refresh_interval_secs
    default_replica_identity: str = "CHANGE"  # ysql_yb_default_replica_identity
    enable_truncate_cdcsdk_table: bool = False  # yb-master flag of that name


class Database:
    """Per upstream database: the installed catalog, an admin session, the snapshot keeper."""

    def __init__(self, server: ProxyServer, name: str) -> None:
        self.server = server
        self.name = name
        self.lock = asyncio.Lock()
        self.admin: psycopg.AsyncConnection | None = None
        self.snapshots: DatabaseSnapshots | None = None
        self.colocated = False

    @property
    def url(self) -> str:
        return self.server.url_for(self.name)

    async def ensure(self) -> bool:
        async with self.lock:
            if self.admin is not None and not self.admin.closed:
                return True
            try:
                self.admin = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            except psycopg.Error:
                return False  # no such database: the client's own connection reports it
            cur = await self.admin.execute(
                "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'pg_catalog' AND c.relname = %s",
                [MARKER],
            )
            row = await cur.fetchone()
            if row is None or row[0] != f"ybsim {INSTALL_VERSION}":
                await self.admin.execute(install_sql().encode())
            cur = await self.admin.execute("SELECT pg_catalog.yb_is_database_colocated()")
            row = await cur.fetchone()
            self.colocated = bool(row and row[0])
            if self.name not in TEMPLATES:
                self.snapshots = DatabaseSnapshots(
                    self.url, self.server.opt.snapshot_interval, self.server.opt.history_seconds,
                    self.server.opt.slot_snapshot_seconds,
                )
                self.snapshots.start()
            return True

    async def release(self) -> None:
        """Close every session we hold on this database (before DROP DATABASE / TEMPLATE use)."""
        async with self.lock:
            if self.snapshots is not None:
                await self.snapshots.close()
                self.snapshots = None
            if self.admin is not None:
                with contextlib.suppress(psycopg.Error):
                    await self.admin.close()
                self.admin = None

    async def execute(self, query: str | sql.Composable, params: list[object] | None = None) -> list[tuple]:
        await self.ensure()
        assert self.admin is not None
        cur = await self.admin.execute(query, params)
        return await cur.fetchall() if cur.description else []


@dataclass
class Pending:
    """The statements of the step running upstream, in order, and the steps still to send."""

    stmts: deque[Stmt] = field(default_factory=deque)
    steps: deque[Step] = field(default_factory=deque)
    failed: bool = False


class ClientSession:
    def __init__(self, server: ProxyServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.creader, self.cwriter = reader, writer
        self.ureader: asyncio.StreamReader | None = None
        self.uwriter: asyncio.StreamWriter | None = None
        self.db: Database | None = None
        self.user = ""
        self.replication = False
        self.superuser = False
        self.in_transaction = False
        self.read_time_us: int | None = None
        self.pending: Pending | None = None
        self.mode = "sql"  # sql | create_slot | stream
        self.slot_request: tuple[str, str] | None = None  # (slot, snapshot mode)
        self.rewriter: rp.StreamRewriter | None = None
        self.stream_slot = ""
        self.refresh_origin = 0.0
        self._after: list[tuple[str, str]] = []
        self.special: dict[bytes, bytes] = {}  # prepared statements the endpoint runs itself

    # -- the Session protocol sqlrewrite needs -------------------------------------------------------
    @property
    def colocated(self) -> bool:
        return bool(self.db and self.db.colocated)

    @property
    def truncate_streamed_allowed(self) -> bool:
        return self.server.opt.enable_truncate_cdcsdk_table

    def snapshot_for(self, value: str) -> str:
        if self.db is None or self.db.snapshots is None:
            raise YbError("yb_read_time is not available on this database", "0A000")
        return self.db.snapshots.lookup(value)

    # -- connection set-up ---------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            for w in (self.cwriter, self.uwriter):
                if w is not None:
                    w.close()

    async def _run(self) -> None:
        startup = await pr.read_startup(self.creader)
        while startup.code in (pr.SSL_REQUEST, pr.GSSENC_REQUEST):
            self.cwriter.write(b"N")  # no TLS: the client continues in clear text
            await self.cwriter.drain()
            startup = await pr.read_startup(self.creader)
        self.ureader, self.uwriter = await asyncio.open_connection(self.server.up_host, self.server.up_port)
        if startup.code == pr.CANCEL_REQUEST:
            self.uwriter.write(startup.raw)
            await self.uwriter.drain()
            return
        params = startup.params
        self.user = params.get("user", "")
        dbname = params.get("database", self.user)
        self.replication = params.get("replication", "").lower() in ("database", "true", "on", "yes", "1")
        self.db = self.server.database(dbname)
        await self.db.ensure()
        # The server's flags reach every session as placeholder settings (what the catalog reads).
        opt = self.server.opt
        flags = (
            f"-c yb_sim.flag_default_replica_identity={opt.default_replica_identity} "
            f"-c yb_sim.flag_host={opt.host} -c yb_sim.flag_port={opt.port} "
            # YugabyteDB parameters ybrewind reads; walsender.c checks yb_enable_replication_commands
            "-c yb_sim.yb_enable_replication_commands=true"
        )
        params["options"] = (params.get("options", "") + " " + flags).strip()
        self.uwriter.write(pr.startup_packet(params))
        await self.uwriter.drain()
        if not await self._authenticate():
            return
        rows = await self.db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [self.user])
        self.superuser = bool(rows and rows[0][0])
        pump = asyncio.create_task(self._pump())
        try:
            await self._client_loop()
        finally:
            pump.cancel()

    async def _authenticate(self) -> bool:
        assert self.ureader is not None
        while True:
            kind, body = await pr.read_message(self.ureader)
            if kind == b"S":
                self.cwriter.write(self._parameter_status(body))
            else:
                self.cwriter.write(pr.message(kind, body))
            await self.cwriter.drain()
            if kind == b"E":
                return False
            if kind == b"Z":
                return True
            if kind == b"R" and body[:4] not in (b"\0\0\0\0", b"\0\0\0\x0c"):  # needs an answer
                ckind, cbody = await pr.read_message(self.creader)
                self._send_up(pr.message(ckind, cbody))

    @staticmethod
    def _parameter_status(body: bytes) -> bytes:
        name, _offset = pr.read_cstring(body)
        if name == b"server_version":
            return pr.parameter_status("server_version", SERVER_VERSION)
        return pr.message(b"S", body)

    def _send_up(self, data: bytes) -> None:
        assert self.uwriter is not None
        self.uwriter.write(data)

    # -- client -> upstream --------------------------------------------------------------------------
    async def _client_loop(self) -> None:
        assert self.uwriter is not None
        batch: list[tuple[bytes, bytes]] = []  # extended-protocol messages up to the next Sync
        while True:
            kind, body = await pr.read_message(self.creader)
            if kind == b"X":
                self._send_up(pr.message(kind, body))
                await self.uwriter.drain()
                return
            if kind == b"Q":
                await self._query(body.rstrip(b"\0"))
            elif kind in (b"P", b"B", b"D", b"E", b"C"):
                batch.append((kind, body))
                continue
            elif kind in (b"S", b"H"):
                batch.append((kind, body))
                await self._extended(batch)
                batch = []
            elif kind == b"d" and self.mode == "stream" and self.rewriter is not None:
                self._send_up(pr.message(b"d", self.rewriter.from_client(body)))
            else:
                self._send_up(pr.message(kind, body))
            await self.uwriter.drain()

    async def _extended(self, batch: list[tuple[bytes, bytes]]) -> None:
        """Forward an extended-protocol batch, or run it here when it only concerns statements the
        endpoint must rewrite with the session's state (SET yb_read_time, BEGIN, YSQL DDL)."""
        names = {name for name, _ in self.special.items()}
        portals: dict[bytes, bytes] = {}
        local = bytearray()
        execute: list[bytes] = []
        emulated = True
        for kind, body in batch:
            if kind == b"P":
                name, query, _rest = pr.parse_parse(body)
                if needs_session(query):
                    self.special[name] = query
                    names.add(name)
                    local += pr.message(b"1")
                    continue
                self.special.pop(name, None)
                emulated = False
            elif kind == b"B":
                portal, offset = pr.read_cstring(body)
                stmt, _ = pr.read_cstring(body, offset)
                if stmt in names:
                    portals[portal] = self.special[stmt]
                    local += pr.message(b"2")
                    continue
                emulated = False
            elif kind == b"D":
                target, _ = pr.read_cstring(body, 1)
                if (body[:1] == b"S" and target in names) or (body[:1] == b"P" and target in portals):
                    local += (pr.message(b"t", b"\0\0") if body[:1] == b"S" else b"") + pr.message(b"n")
                    continue
                emulated = False
            elif kind == b"E":
                portal, _ = pr.read_cstring(body)
                if portal in portals:
                    execute.append(portals[portal])
                    continue
                emulated = False
            elif kind == b"C":
                target, _ = pr.read_cstring(body, 1)
                if target in names or target in portals:
                    local += pr.message(b"3")
                    continue
                emulated = False
        if not emulated or batch[-1][0] != b"S" or not (local or execute):
            for kind, body in batch:
                if kind == b"P":
                    name, query, rest = pr.parse_parse(body)
                    body = pr.build_parse(name, rewrite_extended(query), rest)[5:]
                self._send_up(pr.message(kind, body))
            return
        self.cwriter.write(bytes(local))
        steps: deque[Step] = deque()
        for text in execute:
            try:
                steps += rewrite_query(text, self)
            except YbError as e:
                steps.append(Step([Stmt(_raise(e))]))
        if not steps:
            self.cwriter.write(pr.ready_for_query(b"T" if self.in_transaction else b"I"))
            await self.cwriter.drain()
            return
        await self._start_steps(steps)

    async def _query(self, text: bytes) -> None:
        if self.replication:
            handled = await self._replication_command(text)
            if handled:
                return
        try:
            wants_snapshot = b"yb_read_time" in text.lower() or (self.read_time_us is not None and not self.in_transaction)
            if wants_snapshot and self.db is not None and self.db.snapshots is not None:
                await self.db.snapshots.tick()  # a read time of "now" needs a snapshot of now
            steps = rewrite_query(text, self)
        except YbError as e:
            steps = [Step([Stmt(_raise(e))])]
        await self._start_steps(deque(steps))

    async def _start_steps(self, steps: deque[Step]) -> None:
        if not steps:
            self.cwriter.write(pr.message(b"I") + pr.ready_for_query(b"T" if self.in_transaction else b"I"))
            await self.cwriter.drain()
            return
        self.pending = Pending(steps=steps)
        await self._send_next_step()

    async def _send_next_step(self) -> None:
        assert self.pending is not None
        step = self.pending.steps.popleft()
        for action, name in step.before:
            if action == "release":
                await self.server.database(name).release()
        self.pending.stmts = deque(step.stmts)
        self._after = step.after
        text = b"; ".join(s.sql for s in step.stmts)
        self._send_up(pr.message(b"Q", text + b"\0"))
        assert self.uwriter is not None
        await self.uwriter.drain()

    # -- upstream -> client --------------------------------------------------------------------------
    async def _pump(self) -> None:
        assert self.ureader is not None
        try:
            while True:
                kind, body = await pr.read_message(self.ureader)
                await self._from_upstream(kind, body)
                await self.cwriter.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            self.cwriter.close()
        except rp.StreamError as e:
            self.cwriter.write(pr.error_response(e.message, "XX000", hint=e.hint))
            await self.cwriter.drain()
            self.cwriter.close()
            if self.uwriter is not None:
                self.uwriter.close()

    async def _from_upstream(self, kind: bytes, body: bytes) -> None:
        if self.mode == "stream" and kind == b"d" and self.rewriter is not None:
            relid = self.rewriter.unknown_relation(body)
            if relid is not None:
                self.rewriter.tables[relid] = await self._table_info(relid)
            for out in self.rewriter.from_upstream(body):
                self.cwriter.write(pr.message(b"d", out))
            await self._persist_lsns()
            return
        if self.mode == "create_slot" and kind == b"D":
            self.cwriter.write(await self._slot_created(pr.parse_data_row(body)))
            return
        if kind == b"S":
            self.cwriter.write(self._parameter_status(body))
            return
        p = self.pending
        if kind == b"Z":
            self.in_transaction = body[:1] in (b"T", b"E")
            if self.mode != "sql":  # a slot creation or a stream ended
                self.mode = "sql"
                self.rewriter = None
            if p is not None:
                if not p.failed:
                    for action, name in self._after:
                        if action == "colocate":
                            await self._colocate(name)
                if p.steps and not p.failed:
                    await self._send_next_step()
                    return
                self.pending = None
            self.cwriter.write(pr.message(kind, body))
            return
        if p is not None and kind == b"E":
            p.failed = True
            p.stmts.clear()
            self.cwriter.write(pr.message(kind, body))
            return
        if p is not None and p.stmts and kind in (b"T", b"D", b"C", b"I"):
            stmt = p.stmts[0]
            if kind in (b"C", b"I"):
                p.stmts.popleft()
                if stmt.hide:
                    return
                if stmt.tag is not None:
                    self.cwriter.write(pr.command_complete(stmt.tag))
                    return
            elif stmt.hide or stmt.tag is not None:
                return
        self.cwriter.write(pr.message(kind, body))

    async def _colocate(self, name: str) -> None:
        db = self.server.database(name)
        await db.release()
        await self.server.database("postgres").execute(
            sql.SQL("ALTER DATABASE {} SET yb_sim.colocated = 'true'").format(sql.Identifier(name))
        )

    # -- replication dialect -------------------------------------------------------------------------
    async def _replication_command(self, text: bytes) -> bool:
        if rp.IDENTIFY.match(text):
            await self._fail(YbError("IDENTIFY_SYSTEM is not supported in YugabyteDB", "0A000"))
            return True
        m = rp.DROP_SLOT.match(text)
        if m:
            if m.group("wait"):
                # walsender.c DropReplicationSlot
                await self._fail(YbError("Waiting for a replication slot is not yet supported", "0A000"))
                return True
            name = rp.unquote(m.group("name"))
            await self._forget_slot(name)
            return False
        m = rp.CREATE_SLOT.match(text)
        if m:
            return await self._create_slot(m)
        m = rp.START.match(text)
        if m:
            return await self._start(m)
        return False

    async def _fail(self, error: YbError) -> None:
        await self._start_steps(deque([Step([Stmt(_raise(error))])]))

    async def _create_slot(self, m: rp.re.Match[bytes]) -> bool:
        name = rp.unquote(m.group("name"))
        plugin = rp.unquote(m.group("plugin"))
        if m.group("temp"):
            # walsender.c CreateReplicationSlot
            await self._fail(
                YbError(
                    "Temporary replication slot is not yet supported", "0A000",
                    hint="See https://github.com/yugabyte/yugabyte-db/issues/19263. React with thumbs up to raise its priority",
                )
            )
            return True
        if plugin != "pgoutput":
            await self._fail(YbError(f"output plugin {plugin} is not emulated by ybsim (only pgoutput)", "0A000"))
            return True
        mode = rp.snapshot_mode(m.group("rest"))
        self.slot_request = (name, mode)
        self.mode = "create_slot"
        upstream_mode = "nothing" if mode == "NOEXPORT_SNAPSHOT" else "export"
        command = sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT {})").format(
            sql.Identifier(name), sql.Literal(upstream_mode)
        )
        self._send_up(pr.message(b"Q", command.as_string(None).encode() + b"\0"))
        return True

    async def _slot_created(self, values: list[bytes | None]) -> bytes:
        assert self.slot_request is not None and self.db is not None
        name, mode = self.slot_request
        exported = values[2].decode() if values[2] else None
        upstream_point = values[1].decode() if values[1] else "0/0"
        ht = rp.hybrid_time(int(time.time() * 1e6))
        if exported and self.db.snapshots is not None:
            await self.db.snapshots.keep_slot_snapshot(exported, ht)
        await self.db.execute("DELETE FROM pg_catalog.yb_sim_slot WHERE slot_name = %s", [name])
        await self.db.execute("DELETE FROM pg_catalog.yb_sim_slot_identity WHERE slot_name = %s", [name])
        await self.db.execute("DELETE FROM pg_catalog.yb_sim_lsn WHERE slot_name = %s", [name])
        await self.db.execute(
            "INSERT INTO pg_catalog.yb_sim_slot VALUES (%s, clock_timestamp(), %s)", [name, ht]
        )
        # The slot keeps the replica identity each table had when it was created.
        await self.db.execute(
            "INSERT INTO pg_catalog.yb_sim_slot_identity "
            "SELECT %s, c.oid, pg_catalog.yb_sim_relreplident(c.oid, c.relreplident) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'",
            [name],
        )
        await self.db.execute(
            "INSERT INTO pg_catalog.yb_sim_lsn VALUES (%s, '0/0', %s)", [name, upstream_point]
        )
        # walsender.c CreateReplicationSlot: "0/0" as the consistent point, the hybrid time as
        # snapshot name for USE_SNAPSHOT.
        return pr.data_row(
            [name.encode(), b"0/0", str(ht).encode() if mode == "USE_SNAPSHOT" else None, b"pgoutput"]
        )

    async def _forget_slot(self, name: str) -> None:
        assert self.db is not None
        for table in ("yb_sim_slot", "yb_sim_slot_identity", "yb_sim_lsn"):
            await self.db.execute(
                sql.SQL("DELETE FROM pg_catalog.{} WHERE slot_name = %s").format(sql.Identifier(table)), [name]
            )

    async def _start(self, m: rp.re.Match[bytes]) -> bool:
        assert self.db is not None
        name = rp.unquote(m.group("name"))
        virtual = (int(m.group("hi"), 16) << 32) | int(m.group("lo"), 16)
        rest = m.group("rest")
        slot = await self.db.execute(
            "SELECT extract(epoch FROM created_at)::float8 FROM pg_catalog.yb_sim_slot WHERE slot_name = %s", [name]
        )
        self.refresh_origin = float(slot[0][0]) if slot else time.time()
        self.stream_slot = name
        frozen = dict(
            await self.db.execute(
                "SELECT relid, replident::text FROM pg_catalog.yb_sim_slot_identity WHERE slot_name = %s", [name]
            )
        )
        pubs = rp.publication_names(rest)
        published = await self.db.execute(
            "SELECT DISTINCT (quote_ident(schemaname) || '.' || quote_ident(tablename))::regclass::oid "
            "FROM pg_publication_tables WHERE pubname = ANY(%s)",
            [pubs],
        )
        tables: dict[int, rp.TableInfo] = {}
        for (relid,) in published:
            if relid in frozen:
                info = await self._table_info(relid, frozen[relid])
                if info.replident == "c" and info.has_pk:
                    # yb_virtual_wal_client.c InitVirtualWal -> ValidateReplicaIdentities
                    await self._fail(
                        YbError(
                            f"replica identity CHANGE (for table: {relid}) is not supported for output plugin pgoutput",
                            "XX000", hint="Consider using output plugin yboutput instead. ",
                        )
                    )
                    return True
                tables[relid] = info
        entries = [
            (rp.parse_lsn(v), rp.parse_lsn(u))
            for v, u in await self.db.execute(
                "SELECT vend::text, uend::text FROM pg_catalog.yb_sim_lsn WHERE slot_name = %s ORDER BY vend", [name]
            )
        ]
        lsns = rp.LsnMap(entries or [(0, 0)])
        self.rewriter = rp.StreamRewriter(tables, lsns)
        upstream = lsns.to_upstream(virtual) if virtual else 0
        command = (
            sql.SQL("START_REPLICATION SLOT {} LOGICAL {}").format(sql.Identifier(name), sql.SQL(rp.lsn_str(upstream)))
            .as_string(None)
            .encode()
            + rest
        )
        self.mode = "stream"
        self._send_up(pr.message(b"Q", command + b"\0"))
        return True

    async def _table_info(self, relid: int, frozen: str | None = None) -> rp.TableInfo:
        assert self.db is not None
        rows = await self.db.execute(
            "SELECT pg_catalog.yb_sim_relreplident(c.oid, c.relreplident)::text, "
            "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), "
            "extract(epoch FROM coalesce(p.created_at, '-infinity'))::float8, "
            "ARRAY(SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary "
            "                     AND a.attnum = ANY(i.indkey::int2[])) "
            "      FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "      AND a.attgenerated = '' ORDER BY a.attnum) "
            "FROM pg_class c LEFT JOIN pg_catalog.yb_sim_relprops p ON p.relid = c.oid WHERE c.oid = %s",
            [relid],
        )
        if not rows:
            return rp.TableInfo("d", False, float("inf"))
        ident, has_pk, created, keys = rows[0]
        if frozen is not None:
            return rp.TableInfo(frozen, bool(has_pk), 0.0, list(keys))
        # Created after the slot: YugabyteDB adds it at the next publication refresh
        # (cdcsdk_publication_list_refresh_interval_secs after the previous one).
        interval = self.server.opt.publication_refresh_seconds
        origin = self.refresh_origin
        created = float(created) if created is not None and created != float("-inf") else origin
        periods = max(0, int((created - origin) // interval) + 1)
        return rp.TableInfo(str(ident), bool(has_pk), origin + periods * interval, list(keys))

    async def _persist_lsns(self) -> None:
        rw = self.rewriter
        if rw is None or self.db is None or not rw.lsns.added:
            return
        for vend, uend in rw.lsns.added:
            await self.db.execute(
                "INSERT INTO pg_catalog.yb_sim_lsn VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [self.stream_slot, rp.lsn_str(vend), rp.lsn_str(uend)],
            )
        rw.lsns.added.clear()


def _raise(error: YbError) -> bytes:
    """A statement that makes the upstream raise ``error`` (so transaction state stays in step)."""
    return (
        sql.SQL("SELECT pg_catalog.yb_sim_raise({}, {}, {})")
        .format(sql.Literal(error.message), sql.Literal(error.code), sql.Literal(error.hint))
        .as_string(None)
        .encode()
    )


class ProxyServer:
    def __init__(self, options: Options) -> None:
        self.opt = options
        parts = urlsplit(options.upstream)
        self.up_host = parts.hostname or "127.0.0.1"
        self.up_port = parts.port or 5432
        self._parts = parts
        self.databases: dict[str, Database] = {}

    def url_for(self, dbname: str) -> str:
        p = self._parts
        return urlunsplit((p.scheme, p.netloc, "/" + dbname, p.query, ""))

    def database(self, name: str) -> Database:
        if name not in self.databases:
            self.databases[name] = Database(self, name)
        return self.databases[name]

    async def serve(self) -> None:
        server = await asyncio.start_server(self._accept, self.opt.host, self.opt.port)
        port = server.sockets[0].getsockname()[1]
        self.opt.port = port  # --port 0: the one the system picked
        print(f"ybsim listening on {self.opt.host}:{port} (upstream {self.up_host}:{self.up_port})", flush=True)
        async with server:
            await server.serve_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await ClientSession(self, reader, writer).run()
        except Exception as e:  # one broken session must not stop the endpoint
            print(f"ybsim: session failed: {type(e).__name__}: {e}", file=sys.stderr)
