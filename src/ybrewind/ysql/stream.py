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

PINNED_OPTIONS = "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 -c bytea_output=hex"
_XLOGDATA = struct.Struct("!QQq")
_KEEPALIVE = struct.Struct("!QqB")
_STATUS = struct.Struct("!QQQqB")


@dataclass(frozen=True)
class XLogData:
    start_lsn: int
    end_lsn: int
    payload: bytes


@dataclass(frozen=True)
class Keepalive:
    wal_end: int
    reply_requested: bool


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
        options = f"{endpoint.params().get('options', '')} {PINNED_OPTIONS}".strip()
        self.conn = endpoint.connect(replication=True, options=options)
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
        """``snapshot``: EXPORT_SNAPSHOT (PostgreSQL), USE_SNAPSHOT (YugabyteDB: its name is read
        through yb_read_time) or NOEXPORT_SNAPSHOT."""
        command = slot_command(name, temporary, snapshot)
        slot, point, snapshot, _plugin = self._command(command.as_bytes(self.conn))[0]
        return CreatedSlot(str(slot), str_to_lsn(str(point)), snapshot)

    def drop_slot(self, name: str) -> None:
        self._command(sql.SQL("DROP_REPLICATION_SLOT {} WAIT").format(sql.Identifier(name)).as_bytes(self.conn))

    def start(self, slot: str, start_lsn: int, publication: str, messages: bool = True) -> None:
        options = sql.SQL("proto_version '1', publication_names {}").format(sql.Literal(publication))
        if messages:
            options += sql.SQL(", messages 'true'")
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
                    start, end, _ = _XLOGDATA.unpack_from(data, 1)
                    return XLogData(start, end, bytes(data[25:]))
                if kind == b"k":
                    wal_end, _, reply = _KEEPALIVE.unpack_from(data, 1)
                    return Keepalive(wal_end, bool(reply))
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


def slot_command(name: str, temporary: bool, snapshot: str) -> sql.Composed:
    if snapshot not in ("EXPORT_SNAPSHOT", "USE_SNAPSHOT", "NOEXPORT_SNAPSHOT"):
        raise ValueError(snapshot)
    return sql.SQL("CREATE_REPLICATION_SLOT {} {}LOGICAL pgoutput {}").format(
        sql.Identifier(name), sql.SQL("TEMPORARY " if temporary else ""), sql.SQL(snapshot)
    )


def translate(error: psycopg.Error, what: str) -> DatabaseError:
    diag = getattr(error, "diag", None)
    return DatabaseError(f"{what}: {(diag.message_primary if diag else None) or str(error).strip()}")
