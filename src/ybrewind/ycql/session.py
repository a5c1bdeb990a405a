"""Driver connections for YCQL / Cassandra: connect, detect the server, read raw rows, explain errors.

* ``connect()`` opens a yb-cassandra-driver ``Cluster`` (protocol v4, token-aware DC-aware policy,
  user/password/TLS from the endpoint) and tells YugabyteDB from Apache Cassandra: YugabyteDB has
  a ``system.partitions`` table (Cassandra answers "unconfigured table partitions").
* Rows are read as raw wire bytes (``RawProtocolHandler``), never through the driver's
  deserializers (lossy for timestamps): ``literals.decode`` converts them by column type.
* Every driver failure becomes a one-line ``YbrewindError``: unreachable hosts and bad credentials
  are ``ConnectError``, server-side failures ``DatabaseError``. The driver's own log output is
  silenced (it would print tracebacks and warnings on stderr) unless ``YBREWIND_DEBUG`` is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

from cassandra import (
    AlreadyExists,
    AuthenticationFailed,
    ConsistencyLevel,
    DriverException,
    InvalidRequest,
    OperationTimedOut,
    ReadFailure,
    ReadTimeout,
    RequestExecutionException,
    RequestValidationException,
    Unauthorized,
    Unavailable,
    WriteFailure,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import ConnectionException, DefaultEndPoint
from cassandra.metadata import KeyspaceMetadata
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.protocol import ResultMessage, _ProtocolHandler, read_int
from cassandra.query import PreparedStatement, SimpleStatement, tuple_factory

from ybrewind.endpoints import YcqlEndpoint
from ybrewind.errors import ConnectError, DatabaseError, UsageError, YbrewindError
from ybrewind.ycql.literals import CqlType, decode, quote_ident

YUGABYTE = "yugabyte"
CASSANDRA = "cassandra"

_driver_log = logging.getLogger("cassandra")
if not os.environ.get("YBREWIND_DEBUG"):
    _driver_log.addHandler(logging.NullHandler())
    _driver_log.propagate = False
    _driver_log.setLevel(logging.CRITICAL + 1)


class RawResultMessage(ResultMessage):
    """A RESULT message whose rows stay lists of wire values (``bytes`` or ``None``)."""

    def recv_results_rows(  # type: ignore[override]
        self, f: Any, protocol_version: int, user_type_map: Any, result_metadata: Any, column_encryption_policy: Any
    ) -> None:
        self.recv_results_metadata(f, user_type_map)
        column_metadata = self.column_metadata or result_metadata
        count = read_int(f)
        ncols = len(column_metadata)
        recv = self.recv_row
        self.parsed_rows = [recv(f, ncols) for _ in range(count)]
        self.column_names = [c[2] for c in column_metadata]
        self.column_types = [c[3] for c in column_metadata]


class RawProtocolHandler(_ProtocolHandler):
    message_types_by_opcode: ClassVar[dict[int, type]] = {
        **_ProtocolHandler.message_types_by_opcode,
        RawResultMessage.opcode: RawResultMessage,
    }


@dataclass(frozen=True)
class ServerInfo:
    flavor: str  # YUGABYTE or CASSANDRA
    release_version: str
    cluster_name: str
    partitioner: str

    @property
    def is_yugabyte(self) -> bool:
        return self.flavor == YUGABYTE

    def describe(self) -> dict[str, str]:
        return {
            "server": self.flavor,
            "release_version": self.release_version,
            "cluster_name": self.cluster_name,
            "partitioner": self.partitioner,
        }


_SERVER_MESSAGE = re.compile(r'message="(.*)"', re.S)


def server_message(error: BaseException) -> str:
    """The informative part of a driver exception, on one line."""
    text = str(error)
    m = _SERVER_MESSAGE.search(text)
    if m:
        text = m.group(1)
    return " ".join(text.split()) or type(error).__name__


def is_transient(error: BaseException) -> bool:
    """Worth retrying: timeouts, unavailable replicas, lost connections."""
    return isinstance(
        error,
        OperationTimedOut
        | ReadTimeout
        | WriteTimeout
        | Unavailable
        | ReadFailure
        | WriteFailure
        | NoHostAvailable
        | ConnectionException,
    )


def translate(error: BaseException, what: str) -> YbrewindError:
    """A driver exception as a one-line ybrewind error ``what: reason``."""
    if isinstance(error, YbrewindError):
        return error
    if isinstance(error, NoHostAvailable):
        return ConnectError(f"{what}: {_no_host_reason(error)}")
    if isinstance(error, AuthenticationFailed):
        return ConnectError(f"{what}: authentication failed: {server_message(error)}")
    if isinstance(error, Unauthorized):
        return DatabaseError(f"{what}: permission denied: {server_message(error)}")
    if isinstance(error, OperationTimedOut):
        return DatabaseError(f"{what}: timed out waiting for the server ({server_message(error)})")
    if isinstance(error, RequestValidationException | RequestExecutionException | AlreadyExists | InvalidRequest):
        return DatabaseError(f"{what}: {server_message(error)}")
    if isinstance(error, DriverException | ConnectionException):
        return DatabaseError(f"{what}: {server_message(error)}")
    return DatabaseError(f"{what}: {type(error).__name__}: {server_message(error)}")


def _no_host_reason(error: NoHostAvailable) -> str:
    reasons: list[str] = []
    for err in (error.errors or {}).values():
        if isinstance(err, AuthenticationFailed):
            reason = "authentication failed: " + server_message(err)
            if "requires authentication" in reason or "Remote end requires" in reason:
                reason += " (set the user in the URL or YCQL_USER, and YCQL_PASSWORD)"
        elif isinstance(err, OSError) or "Last error:" in str(err):
            text = str(err)
            reason = (
                text.rsplit("Last error:", 1)[-1].strip()
                if "Last error:" in text
                else (err.strerror or text if isinstance(err, OSError) else text)
            )
        elif isinstance(err, OperationTimedOut):
            reason = "timed out"
        else:
            reason = server_message(err)
        reason = " ".join(str(reason).split())
        if reason and reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons) or "no host available"


def _consistency(name: str | None) -> int:
    if not name:
        return ConsistencyLevel.LOCAL_QUORUM
    value = ConsistencyLevel.name_to_value.get(name.upper())
    if value is None:
        raise UsageError(f"unknown consistency level {name!r}")
    return int(value)


def _ssl_context(endpoint: YcqlEndpoint) -> ssl.SSLContext | None:
    if not endpoint.ssl:
        return None
    try:
        context = ssl.create_default_context(cafile=endpoint.ssl_ca)
        if not endpoint.ssl_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if endpoint.ssl_cert:
            context.load_cert_chain(endpoint.ssl_cert, endpoint.ssl_key)
    except (OSError, ssl.SSLError) as e:
        raise UsageError(f"TLS settings for {endpoint.display()}: {e.strerror or e}") from None
    return context


class CqlConnection:
    """One driver Cluster + Session; rows come back as raw bytes (see ``decode_rows``)."""

    def __init__(self, endpoint: YcqlEndpoint, cluster: Cluster, session: Session, server: ServerInfo) -> None:
        self.endpoint = endpoint
        self.cluster = cluster
        self.session = session
        self.server = server

    def __enter__(self) -> CqlConnection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing must not mask the real error
            self.cluster.shutdown()

    def keyspace(self, name: str) -> KeyspaceMetadata | None:
        return self.cluster.metadata.keyspaces.get(name)

    def refresh_keyspace(self, name: str) -> KeyspaceMetadata | None:
        try:
            self.cluster.refresh_keyspace_metadata(name)
        except DriverException:
            self.cluster.refresh_schema_metadata()
        return self.keyspace(name)

    def drop_keyspace(self, name: str) -> None:
        """Drop a keyspace and everything in it.

        YugabyteDB refuses to drop a keyspace that still holds tables or types (docs:
        docs/content/stable/api/ycql/ddl_drop_keyspace.md, Semantics), so its contents go first:
        materialized views, tables (with their indexes), then types, dependents before what they use.
        """
        meta = self.refresh_keyspace(name)
        if meta is None:
            return
        ks = quote_ident(name)
        # Copies: the driver updates its metadata from schema events while we drop.
        views, tables, types = list(getattr(meta, "views", {})), list(meta.tables), list(meta.user_types)
        for view in views:
            self.execute(f"DROP MATERIALIZED VIEW IF EXISTS {ks}.{quote_ident(view)}", what=f"dropping view {view}")
        for table in tables:
            self.execute(f"DROP TABLE IF EXISTS {ks}.{quote_ident(table)}", what=f"dropping table {name}.{table}")
        while types:  # a type used by another type cannot go first: retry until a round frees nothing
            failed: list[str] = []
            for t in types:
                try:
                    self.execute(f"DROP TYPE IF EXISTS {ks}.{quote_ident(t)}", what=f"dropping type {name}.{t}")
                except YbrewindError:
                    failed.append(t)
            if len(failed) == len(types):
                raise DatabaseError(f"cannot drop the types of keyspace {name}: {', '.join(failed)}")
            types = failed
        self.execute(f"DROP KEYSPACE IF EXISTS {ks}", what=f"dropping keyspace {name}")

    def execute(self, statement: Any, params: Sequence[Any] | None = None, what: str = "") -> list[list[Any]]:
        """All rows (all pages) of a statement, as raw wire values."""
        try:
            return [list(r) for r in self.session.execute(statement, params)]
        except Exception as e:
            raise translate(e, what or f"on {self.endpoint.display()}") from None

    def query(self, cql: str, types: Sequence[CqlType], params: Sequence[Any] | None = None) -> list[list[Any]]:
        """Rows of a simple query, decoded by the given column types."""
        return [
            [decode(t, v) for t, v in zip(types, row, strict=False)]
            for row in self.execute(SimpleStatement(cql, fetch_size=5000), params)
        ]

    def prepare(self, cql: str, what: str) -> PreparedStatement:
        try:
            return self.session.prepare(cql)
        except Exception as e:
            raise translate(e, what) from None


TEXT = CqlType("text")


def connect(endpoint: YcqlEndpoint) -> CqlConnection:
    """Connect and detect the server; ConnectError (one line, no password) when that fails."""
    auth = PlainTextAuthProvider(endpoint.user, endpoint.password or "") if endpoint.user else None
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=_consistency(endpoint.consistency),
        request_timeout=endpoint.request_timeout,
        row_factory=tuple_factory,
    )
    cluster = Cluster(
        contact_points=[DefaultEndPoint(host, port) for host, port in endpoint.hosts],
        port=endpoint.hosts[0][1],
        protocol_version=4,
        auth_provider=auth,
        ssl_context=_ssl_context(endpoint),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=endpoint.connect_timeout,
        control_connection_timeout=endpoint.connect_timeout,
        compression=False,
    )
    where = f"cannot connect to {endpoint.display()}"
    try:
        session = cluster.connect()
    except Exception as e:
        cluster.shutdown()
        raise translate(e, where) from None
    session.client_protocol_handler = RawProtocolHandler
    conn = CqlConnection(endpoint, cluster, session, ServerInfo(CASSANDRA, "", "", ""))
    try:
        conn.server = _detect(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _detect(conn: CqlConnection) -> ServerInfo:
    rows = conn.query("SELECT release_version, cluster_name, partitioner FROM system.local", [TEXT, TEXT, TEXT])
    release, cluster_name, partitioner = rows[0] if rows else ["", "", ""]
    flavor = YUGABYTE
    try:
        conn.session.execute("SELECT keyspace_name FROM system.partitions LIMIT 1")
    except InvalidRequest:
        flavor = CASSANDRA
    except Exception as e:
        raise translate(e, f"detecting the server at {conn.endpoint.display()}") from None
    return ServerInfo(flavor, release or "", cluster_name or "", partitioner or "")
