"""YugabyteDB's logical replication dialect on top of PostgreSQL's walsender.

Pure parts, no I/O: parsing replication commands, the per-slot LSN counter (YugabyteDB LSNs
count records, they are not WAL byte positions) with its translation both ways, and the rewrite of
the pgoutput stream: replica identity DEFAULT sends an all-NULL old-key tuple with every UPDATE,
CHANGE is refused by pgoutput, TRUNCATE and logical messages are not streamed, tables created
after the slot are picked up at the next publication refresh, tables without a primary key are
not streamed. Sources: README.md, table "What is emulated".
"""

from __future__ import annotations

import bisect
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_XLOG = struct.Struct("!QQq")
_KEEPALIVE = struct.Struct("!QqB")
_STATUS = struct.Struct("!QQQqB")

CREATE_SLOT = re.compile(
    rb"^\s*CREATE_REPLICATION_SLOT\s+(?P<name>\"[^\"]+\"|\S+)\s+(?P<temp>TEMPORARY\s+)?LOGICAL\s+"
    rb"(?P<plugin>\"[^\"]+\"|\S+)(?P<rest>.*?);?\s*$",
    re.IGNORECASE | re.DOTALL,
)
START = re.compile(
    rb"^\s*START_REPLICATION\s+SLOT\s+(?P<name>\"[^\"]+\"|\S+)\s+LOGICAL\s+(?P<hi>[0-9A-Fa-f]+)/(?P<lo>[0-9A-Fa-f]+)"
    rb"(?P<rest>.*?);?\s*$",
    re.IGNORECASE | re.DOTALL,
)
DROP_SLOT = re.compile(
    rb"^\s*DROP_REPLICATION_SLOT\s+(?P<name>\"[^\"]+\"|\S+)(?P<wait>\s+WAIT)?\s*;?\s*$", re.IGNORECASE
)
IDENTIFY = re.compile(rb"^\s*IDENTIFY_SYSTEM\s*;?\s*$", re.IGNORECASE)


def unquote(name: bytes) -> str:
    text = name.decode()
    return text[1:-1].replace('""', '"') if text.startswith('"') else text.lower()


def lsn_str(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def snapshot_mode(rest: bytes) -> str:
    """EXPORT_SNAPSHOT / USE_SNAPSHOT / NOEXPORT_SNAPSHOT from the options after the plugin name
    (old syntax, or the PostgreSQL 15 ``(SNAPSHOT 'use')`` form); PostgreSQL's default is export."""
    upper = rest.upper()
    for mode in (b"NOEXPORT_SNAPSHOT", b"EXPORT_SNAPSHOT", b"USE_SNAPSHOT"):
        if mode in upper:
            return mode.decode()
    m = re.search(rb"SNAPSHOT\s+'(\w+)'", upper)
    if m:
        return {b"EXPORT": "EXPORT_SNAPSHOT", b"USE": "USE_SNAPSHOT", b"NOTHING": "NOEXPORT_SNAPSHOT"}.get(
            m.group(1), "EXPORT_SNAPSHOT"
        )
    return "EXPORT_SNAPSHOT"


def publication_names(rest: bytes) -> list[str]:
    m = re.search(rb"publication_names\s+'((?:[^']|'')*)'", rest, re.IGNORECASE)
    if not m:
        return []
    return [n.strip().strip('"') for n in m.group(1).decode().replace("''", "'").split(",") if n.strip()]


class LsnMap:
    """Per-slot virtual LSNs: each transaction's virtual end against the upstream end it came from.

    ``entries`` are (virtual end, upstream end), both non-decreasing (one virtual position can stand
    for several upstream ones: a transaction's end, then the idle stretch after it). The first
    entry, (0, upstream start), stands for the slot's consistent point.
    """

    def __init__(self, entries: list[tuple[int, int]]) -> None:
        self.entries = sorted(entries)
        self.by_upstream = {u: v for v, u in self.entries}
        self.added: list[tuple[int, int]] = []  # not yet persisted

    @property
    def last_virtual(self) -> int:
        return self.entries[-1][0] if self.entries else 0

    @property
    def last_upstream(self) -> int:
        return self.entries[-1][1] if self.entries else 0

    def to_upstream(self, virtual: int) -> int:
        """The upstream position everything up to ``virtual`` corresponds to."""
        keys = [v for v, _ in self.entries]
        k = bisect.bisect_right(keys, virtual) - 1
        return self.entries[k][1] if k >= 0 else 0

    def add(self, virtual_end: int, upstream_end: int) -> None:
        self.entries.append((virtual_end, upstream_end))
        self.by_upstream[upstream_end] = virtual_end
        self.added.append((virtual_end, upstream_end))

    def advance_idle(self, upstream: int) -> bool:
        """Nothing to stream up to ``upstream``: the last virtual position now also stands for it
        (a new entry: the upstream end of the last transaction must stay known for re-sends)."""
        if not self.entries or upstream <= self.entries[-1][1]:
            return False
        self.add(self.entries[-1][0], upstream)
        return True


@dataclass
class TableInfo:
    """What the slot knows of a published table."""

    replident: str  # YugabyteDB identity: c (CHANGE), d, f, n
    has_pk: bool
    streamed_from: float = 0.0  # unix time it joins the slot's table list (next publication refresh)
    # Primary key columns among the published ones; None: the Relation message's key flags (which
    # mark every column under REPLICA IDENTITY FULL).
    key_columns: list[bool] | None = None


@dataclass
class _Txn:
    upstream_begin: bytes
    changes: list[tuple[bytes, bool]] = field(default_factory=list)  # (payload, counts as a record)


class StreamError(Exception):
    """An ERROR the YugabyteDB walsender raises mid-stream."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class StreamRewriter:
    """Rewrites one START_REPLICATION stream (pgoutput protocol 1) and the client's feedback."""

    def __init__(self, tables: dict[int, TableInfo], lsns: LsnMap, clock: Callable[[], float] = time.time) -> None:
        self.tables = tables
        self.lsns = lsns
        self.clock = clock
        self.relations: dict[int, bytes] = {}  # relid -> its latest Relation message
        self.sent_relations: set[int] = set()  # Relation messages the client has for the current shape
        self.txn: _Txn | None = None

    def unknown_relation(self, payload: bytes) -> int | None:
        """The relid of a Relation message for a table the slot has not looked up yet."""
        if payload[:1] == b"w" and payload[25:26] == b"R":
            (relid,) = struct.unpack_from("!I", payload, 26)
            if relid not in self.tables:
                return relid
        return None

    def from_upstream(self, payload: bytes) -> list[bytes]:
        kind = payload[:1]
        if kind == b"k":
            wal_end, sent, reply = _KEEPALIVE.unpack_from(payload, 1)
            if self.txn is None:
                self.lsns.advance_idle(wal_end)
            return [b"k" + _KEEPALIVE.pack(self.lsns.last_virtual, sent, reply)]
        if kind != b"w":
            return [payload]
        _, _, sent = _XLOG.unpack_from(payload, 1)
        msg = payload[25:]
        tag = msg[:1]
        if tag == b"B":
            self.txn = _Txn(msg)
            return []
        if tag == b"C":
            return self._commit(msg, sent)
        if tag == b"R":
            (relid,) = struct.unpack_from("!I", msg, 1)
            self.relations[relid] = msg
            self.sent_relations.discard(relid)  # a new shape: send it again before the next change
            return []
        if self.txn is None:
            return []  # non-transactional logical messages: not in YugabyteDB's stream
        if tag in (b"I", b"U", b"D"):
            (relid,) = struct.unpack_from("!I", msg, 1)
            info = self.tables.get(relid)
            if info is None or self.clock() < info.streamed_from or not info.has_pk:
                return []
            if relid not in self.sent_relations:
                if info.replident == "c":
                    # yb_virtual_wal_client.c ValidateReplicaIdentities
                    raise StreamError(
                        f"replica identity CHANGE (for table: {relid}) is not supported for output plugin pgoutput",
                        "Consider using output plugin yboutput instead. ",
                    )
                self.txn.changes.append((self.relations[relid], False))
                self.sent_relations.add(relid)
            if tag == b"U":
                moved = self._key_move(msg, relid)
                if moved is not None:
                    # yb_decode.c YBDecodeUpdate: "primary key updates are sent as DELETE + INSERT"
                    self.txn.changes += [(moved[0], True), (moved[1], True)]
                    return []
                if info.replident == "d":
                    msg = self._default_update(msg, relid)
            self.txn.changes.append((msg, True))
        # TRUNCATE ('T') and logical messages ('M') are not streamed; origin/type messages neither.
        return []

    def _natts(self, relid: int) -> int:
        msg = self.relations[relid]
        offset = 5
        for _ in range(2):
            offset = msg.index(b"\0", offset) + 1
        return int(struct.unpack_from("!h", msg, offset + 1)[0])

    def _key_columns(self, relid: int) -> list[bool]:
        msg = self.relations[relid]
        offset = 5
        for _ in range(2):
            offset = msg.index(b"\0", offset) + 1
        (natts,) = struct.unpack_from("!h", msg, offset + 1)
        offset += 3
        keys = []
        for _ in range(natts):
            keys.append(bool(msg[offset] & 1))
            offset = msg.index(b"\0", offset + 1) + 1 + 8
        return keys

    def _key_move(self, msg: bytes, relid: int) -> tuple[bytes, bytes] | None:
        """(DELETE, INSERT) for an UPDATE that changed the primary key, else None."""
        body = msg[5:]
        if body[:1] not in (b"K", b"O"):
            return None  # no old tuple: PostgreSQL sends one whenever the key changed
        kind = body[:1]
        old = body[1 : 1 + _tuple_length(body[1:])]
        new = body[1 + len(old) :]  # 'N' + tuple
        info = self.tables[relid]
        keys = info.key_columns if info.key_columns is not None else self._key_columns(relid)
        old_cols, new_cols = _columns(old), _columns(new[1:])
        if all(not k or o == n for k, o, n in zip(keys, old_cols, new_cols, strict=False)):
            return None
        return msg[:1].replace(b"U", b"D") + msg[1:5] + kind + old, b"I" + msg[1:5] + new

    def _default_update(self, msg: bytes, relid: int) -> bytes:
        """Replica identity DEFAULT: YugabyteDB has no before image and sends an old-key tuple of
        all NULLs with every UPDATE (TestPgReplicationSlot.java, expected output)."""
        body = msg[5:]
        if body[:1] in (b"K", b"O"):
            body = body[1:]
            body = body[_tuple_length(body) :]
        natts = self._natts(relid)
        nulls = b"K" + struct.pack("!h", natts) + b"n" * natts
        return msg[:5] + nulls + body

    def _commit(self, msg: bytes, sent: int) -> list[bytes]:
        txn, self.txn = self.txn, None
        _, _, upstream_end, commit_ts = struct.unpack_from("!BQQq", msg, 1)
        if txn is None:
            return []
        records = [m for m, counts in txn.changes if counts]
        if not records:
            # Nothing YugabyteDB would stream: no transaction at all, only the position moves.
            self.lsns.advance_idle(upstream_end)
            return []
        known = self.lsns.by_upstream.get(upstream_end)
        if known is not None:
            end = known  # sent again after a restart: the same LSNs as the first time
        elif upstream_end <= self.lsns.last_upstream:
            return []  # already covered by an acknowledged position
        else:
            end = self.lsns.last_virtual + len(records) + 2
            self.lsns.add(end, upstream_end)
        commit = end - 1
        lsn = commit - len(records)  # BEGIN; then one LSN per change, the last one shared with COMMIT
        _, _, xid = struct.unpack_from("!QqI", txn.upstream_begin, 1)
        out = [_wrap(lsn, sent, b"B" + struct.pack("!QqI", commit, _begin_ts(txn.upstream_begin), xid))]
        for m, counts in txn.changes:
            if counts:
                lsn += 1
            out.append(_wrap(lsn, sent, m))
        out.append(_wrap(commit, sent, b"C" + struct.pack("!BQQq", 0, commit, end, commit_ts)))
        return out

    def from_client(self, payload: bytes) -> bytes:
        """Standby status update: virtual positions back to upstream ones."""
        if payload[:1] != b"r":
            return payload
        write, flush, apply, sent, reply = _STATUS.unpack_from(payload, 1)
        return b"r" + _STATUS.pack(
            self.lsns.to_upstream(write), self.lsns.to_upstream(flush), self.lsns.to_upstream(apply), sent, reply
        )


def _begin_ts(begin: bytes) -> int:
    return int(struct.unpack_from("!Qq", begin, 1)[1])


def _wrap(lsn: int, sent: int, msg: bytes) -> bytes:
    return b"w" + _XLOG.pack(lsn, lsn, sent) + msg


def _columns(body: bytes) -> list[bytes]:
    """The raw column entries of one TupleData (kind byte and value)."""
    (natts,) = struct.unpack_from("!h", body)
    offset = 2
    out = []
    for _ in range(natts):
        start = offset
        kind = body[offset : offset + 1]
        offset += 1
        if kind in (b"t", b"b"):
            (n,) = struct.unpack_from("!i", body, offset)
            offset += 4 + n
        out.append(body[start:offset])
    return out


def _tuple_length(body: bytes) -> int:
    """Bytes taken by one TupleData (pgoutput) at the start of ``body``."""
    (natts,) = struct.unpack_from("!h", body)
    offset = 2
    for _ in range(natts):
        kind = body[offset : offset + 1]
        offset += 1
        if kind in (b"t", b"b"):
            (n,) = struct.unpack_from("!i", body, offset)
            offset += 4 + n
    return offset


def hybrid_time(unix_us: int) -> int:
    """A YugabyteDB HybridTime: physical microseconds shifted left by 12 bits of logical time."""
    return unix_us << 12
