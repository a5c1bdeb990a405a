"""The PostgreSQL streaming replication protocol, over psycopg's libpq wrapper.

psycopg's cursor API refuses COPY_BOTH, so this talks to ``conn.pgconn`` directly (checked with
psycopg 3.3 / PostgreSQL 15, see docs/architecture.md). It is the only logical replication
interface YugabyteDB supports, so nothing here uses the SQL polling functions.
"""

from __future__ import annotations

import select
import struct
import time
from dataclasses import dataclass

import psycopg
from psycopg import pq, sql

from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError
from ybrewind.ysql.pgoutput import PG_EPOCH_US, lsn_to_str, str_to_lsn

_XLOGDATA = struct.Struct("!QQq")
_KEEPALIVE = struct.Struct("!QqB")
_STATUS = struct.Struct("!QQQqB")


@dataclass(frozen=True)
class XLogData:
    start_lsn: int
    end_lsn: int
    payload: bytes
    send_us: int = 0  # the server's clock when it sent this (Unix µs)


@dataclass(frozen=True)
class Keepalive:
    wal_end: int
    reply_requested: bool
    send_us: int = 0  # the server's clock when it sent this (Unix µs)


@dataclass(frozen=True)
class CreatedSlot:
    name: str
    consistent_point: int
    snapshot: str | None


def _now_pg_us() -> int:
    return int(time.time() * 1_000_000) - PG_EPOCH_US


class ReplicationConnection:
    """A ``replication=database`` connection: slot commands and the COPY_BOTH stream."""

    def __init__(self, endpoint: PgEndpoint) -> None:
        self.endpoint = endpoint
        # pgoutput prints values with this session's settings: pin the ones their text depends on,
        # as PostgreSQL's own apply worker does (PostgreSQL 15 libpqwalreceiver.c, libpqrcv_connect;
        # the user's own options are kept). Not verified against YugabyteDB's walsender.
        self.conn = endpoint.with_pinned_text_settings().connect(replication=True)
        self.pgconn = self.conn.pgconn
        self.streaming = False

    def close(self) -> None:
        self.conn.close()

    def _command(self, command: bytes) -> list[tuple[str | None, ...]]:
        result = self.pgconn.exec_(command)
        if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            message = (result.error_message or self.pgconn.error_message).decode(errors="replace")
            raise DatabaseError(
                f"{command.split(b' ')[0].decode()} failed on {self.endpoint.display()}: {' '.join(message.split())}"
            )
        rows = []
        for i in range(result.ntuples):
            rows.append(
                tuple(
                    None if result.get_value(i, j) is None else bytes(result.get_value(i, j) or b"").decode()
                    for j in range(result.nfields)
                )
            )
        return rows

    def identify_system(self) -> tuple[str, int, int, str]:
        """(system identifier, timeline, current WAL position, database). PostgreSQL only."""
        sysid, tli, xlogpos, dbname = self._command(b"IDENTIFY_SYSTEM")[0]
        return str(sysid), int(tli or 0), str_to_lsn(str(xlogpos)), str(dbname)

    def create_slot(self, name: str, *, temporary: bool = False, snapshot: str = "EXPORT_SNAPSHOT") -> CreatedSlot:
        """``snapshot``: EXPORT_SNAPSHOT (PostgreSQL), USE_SNAPSHOT or NOEXPORT_SNAPSHOT."""
        command = slot_command(name, temporary, snapshot)
        slot, point, snapshot, _plugin = self._command(command.as_bytes(self.conn))[0]
        return CreatedSlot(str(slot), str_to_lsn(str(point)), snapshot)

    def create_slot_yugabyte(self, name: str) -> CreatedSlot:
        """A YugabyteDB slot with the snapshot its base backup must read.

        Releases without ``ysql_enable_pg_export_snapshot`` refuse EXPORT_SNAPSHOT and answer
        USE_SNAPSHOT outside a transaction with the snapshot's hybrid time as its name
        (src/postgres/src/backend/replication/walsender.c, CreateReplicationSlot: "Exporting
        snapshot is not yet supported", snapshot_name = consistent_snapshot_time). With the flag on,
        USE_SNAPSHOT must be the first command of a transaction (docs: api/ysql/the-sql-language/
        statements/streaming-replication-protocol-statements create_replication_slot) and
        EXPORT_SNAPSHOT returns a PostgreSQL-style snapshot id
        (src/yb/integration-tests/upgrade-tests/cdc_upgrade-test.cc): so USE_SNAPSHOT is tried
        alone first and EXPORT_SNAPSHOT second. Temporary slots do not exist on YugabyteDB
        (walsender.c, issue #19263).
        """
        try:
            return self.create_slot(name, snapshot="USE_SNAPSHOT")
        except DatabaseError as first:
            try:
                return self.create_slot(name, snapshot="EXPORT_SNAPSHOT")
            except DatabaseError as second:
                raise DatabaseError(f"{first}; with EXPORT_SNAPSHOT: {second}") from None

    def drop_slot(self, name: str, *, wait: bool | None = None) -> None:
        """``wait``: WAIT for an active slot to be released; by default on PostgreSQL only, as
        YugabyteDB refuses it ("Waiting for a replication slot is not yet supported":
        src/postgres/src/backend/replication/walsender.c, DropReplicationSlot)."""
        if wait is None:
            wait = "-YB-" not in (self.conn.info.parameter_status("server_version") or "")
        command = sql.SQL("DROP_REPLICATION_SLOT {}" + (" WAIT" if wait else "")).format(sql.Identifier(name))
        self._command(command.as_bytes(self.conn))

    def start(self, slot: str, start_lsn: int, publication: str, server_version_num: int = 150000) -> None:
        options = start_options(publication, server_version_num)
        command = sql.SQL("START_REPLICATION SLOT {} LOGICAL {} ({})").format(
            sql.Identifier(slot), sql.SQL(lsn_to_str(start_lsn)), options
        )
        self.pgconn.send_query(command.as_bytes(self.conn))
        result = self.pgconn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            message = (result.error_message if result else self.pgconn.error_message).decode(errors="replace")
            raise DatabaseError(f"START_REPLICATION failed on {self.endpoint.display()}: {' '.join(message.split())}")
        self.streaming = True

    def read(self, timeout: float) -> XLogData | Keepalive | None:
        """The next stream message, or None when nothing arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            n, data = self.pgconn.get_copy_data(1)
            if n > 0:
                kind = data[0:1]
                if kind == b"w":
                    start, end, sent = _XLOGDATA.unpack_from(data, 1)
                    return XLogData(start, end, bytes(data[25:]), sent + PG_EPOCH_US)
                if kind == b"k":
                    wal_end, sent, reply = _KEEPALIVE.unpack_from(data, 1)
                    return Keepalive(wal_end, bool(reply), sent + PG_EPOCH_US)
                continue
            if n == -1:
                result = self.pgconn.get_result()
                msg = (result.error_message if result else b"") or self.pgconn.error_message
                reason = " ".join(msg.decode(errors="replace").split()) or (
                    f"the server ended the stream ({result.status.name if result else 'no result'})"
                )
                raise DatabaseError(f"replication stream from {self.endpoint.display()} ended: {reason}")
            if n == -2:
                raise DatabaseError(
                    f"replication stream from {self.endpoint.display()} failed: "
                    f"{self.pgconn.error_message.decode(errors='replace').strip()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            select.select([self.pgconn.socket], [], [], remaining)
            self.pgconn.consume_input()

    def send_status(self, written: int, flushed: int, reply: bool = False) -> None:
        """Standby status update. ``flushed`` must only cover what is durably archived."""
        self.pgconn.put_copy_data(b"r" + _STATUS.pack(written, flushed, flushed, _now_pg_us(), 1 if reply else 0))
        self.pgconn.flush()


def start_options(publication: str, server_version_num: int) -> sql.Composed:
    """pgoutput options the server accepts. ``messages`` exists from PostgreSQL 14 on; older
    pgoutput (PostgreSQL 11-based YugabyteDB up to 2024.2) fails on any option it does not know
    ("unrecognized pgoutput option": parse_output_parameters in
    src/postgres/src/backend/replication/pgoutput/pgoutput.c; the PG15-based file accepts it)."""
    options = sql.SQL("proto_version '1', publication_names {}").format(sql.Literal(publication))
    if server_version_num >= 140000:
        options += sql.SQL(", messages 'true'")
    return options


def is_hybrid_time_snapshot(name: str | None) -> bool:
    """YugabyteDB without snapshot export names a slot's snapshot by its hybrid time, in decimal
    digits (src/yb/integration-tests/upgrade-tests/cdc_upgrade-test.cc, IsHybridTimeFormat)."""
    return bool(name) and str(name).isdigit()


def hybrid_time_to_unix_us(ht: int) -> int:
    """A YugabyteDB hybrid time is microseconds << 12 | a 12-bit logical counter
    (src/yb/common/hybrid_time.h, kBitsForLogicalComponent = 12)."""
    return ht >> 12


def slot_command(name: str, temporary: bool, snapshot: str) -> sql.Composed:
    if snapshot not in ("EXPORT_SNAPSHOT", "USE_SNAPSHOT", "NOEXPORT_SNAPSHOT"):
        raise ValueError(snapshot)
    return sql.SQL("CREATE_REPLICATION_SLOT {} {}LOGICAL pgoutput {}").format(
        sql.Identifier(name), sql.SQL("TEMPORARY " if temporary else ""), sql.SQL(snapshot)
    )


def translate(error: psycopg.Error, what: str) -> DatabaseError:
    diag = getattr(error, "diag", None)
    return DatabaseError(f"{what}: {(diag.message_primary if diag else None) or str(error).strip()}")
