"""Decoder for the pgoutput logical replication message format (protocol version 1).

Pure functions from bytes to dataclasses; no I/O. Reference: PostgreSQL docs, "Logical Replication
Message Formats". Column values stay in PostgreSQL's text output format (strings), which is what
the archive stores and the restore feeds back as query parameters; ``UNCHANGED`` marks an
unchanged TOASTed value that an UPDATE must leave alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

PG_EPOCH_US: Final = 946_684_800_000_000  # 2000-01-01 in Unix microseconds


class _Unchanged:
    """Sentinel for an unchanged TOASTed column value ('u' in TupleData)."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
Value = str | None | _Unchanged


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time_us: int  # Unix microseconds
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time_us: int


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    typmod: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    relid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[RelationColumn, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Insert:
    relid: int
    new: list[Value]


@dataclass(frozen=True)
class Update:
    relid: int
    old: list[Value] | None  # full old row (REPLICA IDENTITY FULL) ...
    key: list[Value] | None  # ... or the old key when it changed
    new: list[Value]


@dataclass(frozen=True)
class Delete:
    relid: int
    old: list[Value] | None
    key: list[Value] | None


@dataclass(frozen=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True)
class TypeMessage:
    oid: int
    namespace: str
    name: str


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | LogicalMessage | Origin | TypeMessage

_I8 = struct.Struct("!B")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_U64 = struct.Struct("!Q")


class DecodeError(ValueError):
    pass


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def byte(self) -> int:
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def unpack(self, s: struct.Struct) -> int:
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return int(v)

    def string(self) -> str:
        end = self.buf.index(b"\0", self.pos)
        v = self.buf[self.pos : end].decode()
        self.pos = end + 1
        return v

    def raw(self, n: int) -> bytes:
        v = self.buf[self.pos : self.pos + n]
        if len(v) != n:
            raise DecodeError("truncated message")
        self.pos += n
        return bytes(v)

    def tuple_data(self) -> list[Value]:
        n = self.unpack(_I16)
        values: list[Value] = []
        for _ in range(n):
            kind = self.byte()
            if kind == 0x74:  # 't' text
                size = self.unpack(_I32)
                values.append(self.raw(size).decode())
            elif kind == 0x6E:  # 'n' null
                values.append(None)
            elif kind == 0x75:  # 'u' unchanged toast
                values.append(UNCHANGED)
            else:
                raise DecodeError(f"unsupported tuple column kind {chr(kind)!r} (binary mode is not used)")
        return values


def pg_time_to_unix_us(pg_us: int) -> int:
    return pg_us + PG_EPOCH_US


def _carries_values(values: list[Value]) -> bool:
    return any(v is not None and v is not UNCHANGED for v in values)


def decode(buf: bytes, *, yugabyte: bool = False) -> Message:
    """Decode one pgoutput message (the payload of an XLogData 'w' message).

    ``yugabyte``: the stream comes from YugabyteDB, whose UPDATE never changes a key (primary-key
    updates stream as DELETE + INSERT: src/postgres/src/backend/replication/logical/yb_decode.c,
    YBDecodeUpdate), so an old tuple without a single value is "no before image", never a row.
    """
    r = _Reader(buf)
    kind = chr(r.byte())
    try:
        if kind == "B":
            lsn, ts, xid = r.unpack(_U64), r.unpack(_I64), r.unpack(_U32)
            return Begin(lsn, pg_time_to_unix_us(ts), xid)
        if kind == "C":
            flags = r.byte()
            commit_lsn, end_lsn, ts = r.unpack(_U64), r.unpack(_U64), r.unpack(_I64)
            return Commit(flags, commit_lsn, end_lsn, pg_time_to_unix_us(ts))
        if kind == "R":
            relid, namespace, name = r.unpack(_U32), r.string(), r.string()
            ident = chr(r.byte())
            cols = []
            for _ in range(r.unpack(_I16)):
                flags = r.byte()
                cols.append(RelationColumn(r.string(), r.unpack(_U32), r.unpack(_I32), bool(flags & 1)))
            return Relation(relid, namespace, name, ident, tuple(cols))
        if kind == "I":
            relid = r.unpack(_U32)
            if chr(r.byte()) != "N":
                raise DecodeError("insert without new tuple")
            return Insert(relid, r.tuple_data())
        if kind == "U":
            relid = r.unpack(_U32)
            old = key = None
            marker = chr(r.byte())
            if marker == "O":
                old = r.tuple_data()
                marker = chr(r.byte())
                # YugabyteDB under FULL: a row inserted and updated in one transaction comes with an
                # all-NULL before image (TestPgReplicationSlot.java, "All columns for before image
                # in FULL come out as null"). On PostgreSQL that would be a real all-NULL row.
                if yugabyte and not _carries_values(old):
                    old = None
            elif marker == "K":
                key = r.tuple_data()
                marker = chr(r.byte())
                # A key tuple without any value is YugabyteDB's "no before image": all NULL under
                # DEFAULT (TestPgReplicationSlot.java: "No before image in DEFAULT, so all columns
                # come as NULL"), all unchanged ('u') under CHANGE ("No before image in CHANGE, so
                # all columns come as Toasted"). A real old key is never NULL: PostgreSQL requires
                # key and replica-identity-index columns to be NOT NULL.
                if not _carries_values(key):
                    key = None
            if marker != "N":
                raise DecodeError("update without new tuple")
            return Update(relid, old, key, r.tuple_data())
        if kind == "D":
            relid = r.unpack(_U32)
            marker = chr(r.byte())
            data = r.tuple_data()
            return Delete(relid, data if marker == "O" else None, data if marker == "K" else None)
        if kind == "T":
            n = r.unpack(_I32)
            options = r.byte()
            relids = tuple(r.unpack(_U32) for _ in range(n))
            return Truncate(relids, bool(options & 1), bool(options & 2))
        if kind == "M":
            flags = r.byte()
            lsn, prefix = r.unpack(_U64), r.string()
            size = r.unpack(_I32)
            return LogicalMessage(bool(flags & 1), lsn, prefix, r.raw(size))
        if kind == "O":
            return Origin(r.unpack(_U64), r.string())
        if kind == "Y":
            return TypeMessage(r.unpack(_U32), r.string(), r.string())
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise DecodeError(f"malformed pgoutput {kind!r} message: {e}") from None
    raise DecodeError(f"unknown pgoutput message type {kind!r}")


def lsn_to_str(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def str_to_lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)
