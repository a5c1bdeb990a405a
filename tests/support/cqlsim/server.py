"""The asyncio CQL server: connections, the startup/auth handshake, request dispatch and events.

``CqlSimServer`` serves one in-memory database on a TCP port. ``start_in_thread()`` runs one in a
daemon thread for tests and returns a ``SimHandle`` (host, port, clock, stop()).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from . import cql, system_tables
from .errors import BAD_CREDENTIALS, PROTOCOL_ERROR, SERVER_ERROR, UNPREPARED, CqlError
from .executor import Analysis, ClientState, Executor
from .protocol import (
    AUTH_RESPONSE,
    AUTH_SUCCESS,
    AUTHENTICATE,
    BATCH,
    ERROR,
    EVENT,
    EXECUTE,
    HEADER,
    OPTIONS,
    PREPARE,
    QUERY,
    READY,
    REGISTER,
    RESULT,
    STARTUP,
    SUPPORTED,
    VERSION,
    Frame,
    PreparedResult,
    Reader,
    RowsResult,
    SchemaChangeResult,
    Writer,
    encode_error,
    encode_frame,
    encode_result,
    read_batch,
    read_query_params,
    schema_change_body,
)
from .storage import Catalog, Clock

log = logging.getLogger("cqlsim")
AUTHENTICATOR = "org.apache.cassandra.auth.PasswordAuthenticator"
BATCH_KINDS = {0: "LOGGED", 1: "UNLOGGED", 2: "COUNTER"}


@dataclass
class PreparedStatement:
    query: str
    keyspace: str | None
    parsed: cql.Parsed
    analysis: Analysis


class CqlSimServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        cassandra: bool = False,
        credentials: tuple[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.cassandra = cassandra
        self.credentials = credentials
        self.clock = clock or Clock()
        self.catalog = Catalog()
        system_tables.install(self.catalog, cassandra)
        self.executor = Executor(self.catalog, self.clock, cassandra)
        self.executor.schema_listeners.append(self._push_schema_event)
        self.prepared: dict[bytes, PreparedStatement] = {}
        self.connections: set[Connection] = set()
        self._parsed: OrderedDict[str, cql.Parsed] = OrderedDict()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.writer.close()  # the connection's reader sees EOF and its task ends
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections.add(conn)
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass
        finally:
            self.connections.discard(conn)
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    def parse(self, query: str) -> cql.Parsed:
        """Parse with a small cache (ASTs are never mutated after parsing)."""
        parsed = self._parsed.get(query)
        if parsed is None:
            parsed = cql.parse(query)
            self._parsed[query] = parsed
            if len(self._parsed) > 2000:
                self._parsed.popitem(last=False)
        return parsed

    def _push_schema_event(self, change: SchemaChangeResult) -> None:
        body = Writer().string("SCHEMA_CHANGE").raw(schema_change_body(change).getvalue()).getvalue()
        for conn in self.connections:
            if "SCHEMA_CHANGE" in conn.events:
                conn.writer.write(encode_frame(-1, EVENT, body))


@dataclass(eq=False)
class Connection:
    server: CqlSimServer
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    started: bool = False
    authenticated: bool = False
    events: set[str] = field(default_factory=set)
    session: ClientState = field(default_factory=ClientState)

    def __post_init__(self) -> None:
        sockname = self.writer.get_extra_info("sockname")
        self.session.address, self.session.port = sockname[0], sockname[1]
        self.authenticated = self.server.credentials is None

    async def run(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(HEADER.size)
                version, flags, stream, opcode, length = HEADER.unpack(header)
                body = await self.reader.readexactly(length)
                if version & 0x7F != VERSION:
                    message = (f"Invalid or unsupported protocol version ({version & 0x7F}); "
                               f"supported versions are ({VERSION}/v{VERSION})")
                    self.writer.write(encode_frame(stream, ERROR, encode_error(CqlError(PROTOCOL_ERROR, message))))
                    await self.writer.drain()
                    return
                opcode_out, out = self.handle(Frame(version, flags, stream, opcode, body))
                self.writer.write(encode_frame(stream, opcode_out, out))
                await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    def handle(self, frame: Frame) -> tuple[int, bytes]:
        """Answer one request frame: (response opcode, response body)."""
        try:
            return self._dispatch(frame)
        except CqlError as err:
            return ERROR, encode_error(err)
        except Exception as exc:  # a bug in cqlsim: report it to the client rather than hang
            log.exception("cqlsim internal error")
            return ERROR, encode_error(CqlError(SERVER_ERROR, f"cqlsim internal error: {exc!r}"))

    def _dispatch(self, frame: Frame) -> tuple[int, bytes]:
        r = Reader(frame.body)
        if frame.flags & 0x04:  # custom payload: skip it
            for _ in range(r.short()):
                r.string()
                r.bytes()
        op = frame.opcode
        if op == OPTIONS:
            cql_version = "3.4.5" if self.server.cassandra else "3.4.2"
            body = Writer().string_multimap(
                {"CQL_VERSION": [cql_version], "COMPRESSION": [], "PROTOCOL_VERSIONS": ["4/v4"]})
            return SUPPORTED, body.getvalue()
        if op == STARTUP:
            options = r.string_map()
            if options.get("COMPRESSION"):
                raise CqlError(PROTOCOL_ERROR, f"Unsupported compression {options['COMPRESSION']}")
            self.started = True
            if not self.authenticated:
                return AUTHENTICATE, Writer().string(AUTHENTICATOR).getvalue()
            return READY, b""
        if op == AUTH_RESPONSE:
            return self._authenticate(r.bytes() or b"")
        if not self.started:
            raise CqlError(PROTOCOL_ERROR, f"Unexpected message {op:#x}, expecting STARTUP or OPTIONS")
        if not self.authenticated:
            raise CqlError(PROTOCOL_ERROR, f"Unexpected message {op:#x}, expecting AUTH_RESPONSE")
        if op == REGISTER:
            self.events.update(r.string_list())
            return READY, b""
        if op == QUERY:
            query = r.long_string()
            params = read_query_params(r)
            result = self.server.executor.execute(self.server.parse(query), self.session, params)
            return RESULT, encode_result(result, params.skip_metadata and isinstance(result, RowsResult))
        if op == PREPARE:
            return RESULT, encode_result(self._prepare(r.long_string()))
        if op == EXECUTE:
            prepared = self._prepared(r.short_bytes())
            params = read_query_params(r)
            session = self.session
            if not isinstance(prepared.parsed.statement, cql.UseKeyspace):
                session = ClientState(prepared.keyspace or self.session.keyspace, self.session.address,
                                  self.session.port)
            result = self.server.executor.execute(prepared.parsed, session, params)
            return RESULT, encode_result(result, params.skip_metadata and isinstance(result, RowsResult))
        if op == BATCH:
            request = read_batch(r)
            entries = []
            for entry in request.entries:
                if entry.query is not None:
                    entries.append((self.server.parse(entry.query), entry.values))
                else:
                    entries.append((self._prepared(entry.prepared_id or b"").parsed, entry.values))
            kind = BATCH_KINDS.get(request.kind, "LOGGED")
            result = self.server.executor.execute_batch(kind, entries, self.session, request.params)
            return RESULT, encode_result(result)
        raise CqlError(PROTOCOL_ERROR, f"Unknown or unsupported opcode {op:#x}")

    def _authenticate(self, token: bytes) -> tuple[int, bytes]:
        parts = token.split(b"\x00")
        user, password = (parts[-2], parts[-1]) if len(parts) >= 2 else (b"", b"")
        expected = self.server.credentials
        if expected is None or (user.decode(errors="replace"), password.decode(errors="replace")) == expected:
            self.authenticated = True
            return AUTH_SUCCESS, Writer().bytes(None).getvalue()
        raise CqlError(BAD_CREDENTIALS,
                       f"Provided username {user.decode(errors='replace')} and/or password are incorrect")

    def _prepare(self, query: str) -> PreparedResult:
        parsed = self.server.parse(query)
        analysis = self.server.executor.analyze(parsed, self.session)
        keyspace = self.session.keyspace
        prepared_id = hashlib.md5(f"{keyspace or ''}\x00{query}".encode()).digest()
        self.server.prepared[prepared_id] = PreparedStatement(query, keyspace, parsed, analysis)
        return PreparedResult(prepared_id, analysis.keyspace, analysis.table, analysis.bind, analysis.pk_indexes,
                              analysis.result_columns)

    def _prepared(self, prepared_id: bytes) -> PreparedStatement:
        prepared = self.server.prepared.get(prepared_id)
        if prepared is None:
            raise CqlError(UNPREPARED, f"Prepared query with ID {prepared_id.hex()} not found",
                           prepared_id=prepared_id)
        return prepared


# --------------------------------------------------------------------------------------------------
# Running in a thread (tests)
# --------------------------------------------------------------------------------------------------


@dataclass
class SimHandle:
    host: str
    port: int
    server: CqlSimServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def clock(self) -> Clock:
        return self.server.clock

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    cassandra: bool = False,
    credentials: tuple[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> SimHandle:
    """Start a simulator on a daemon thread; returns once it accepts connections."""
    server = CqlSimServer(host, port, cassandra, credentials)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"cqlsim-{port}", daemon=True)
    thread.start()
    ready.wait(timeout=10)
    if failure:
        raise failure[0]
    return SimHandle(host, server.port, server, loop, thread)
