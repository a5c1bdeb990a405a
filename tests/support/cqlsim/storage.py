"""In-memory schema and data: keyspaces, user types, tables, indexes and cells with timestamps and TTLs.

Data model (Cassandra semantics, simplified where noted):

* A table maps the serialized partition key to a ``Partition``; a partition holds static cells and
  rows keyed by their clustering values.
* Every non-key cell keeps its value, write timestamp (µs) and optional expiry (server clock, µs) and
  original TTL. A cell with ``value None`` is a tombstone.
* Writes reconcile last-write-wins by timestamp; on a timestamp tie a tombstone wins, otherwise the
  greater serialized value wins (as Cassandra does). Older writes arriving late lose.
* ``DELETE`` of a row or partition records a deletion timestamp: cells (and row markers) written at
  or before it are shadowed, later ones are live again.
* ``INSERT`` writes a row marker, so the row exists even when all its non-key columns are null; a row
  created only by ``UPDATE`` disappears once all its cells are null, deleted or expired.
* Non-frozen collections are stored as ONE cell with a whole-collection timestamp (no per-element
  timestamps or tombstones): appends/removals merge into the live value and keep the newest
  timestamp; a plain assignment replaces the value if its timestamp wins.
* Counters are a single cell holding the running total.

``token()`` is Cassandra's Murmur3 of the serialized partition key (CompositeType encoding for
multi-column keys). ``partition_hash()`` is the top 16 bits of the token shifted to 0..65535, so
partition_hash order and token order agree; partitions are kept in token order.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cassandra.murmur3 import murmur3

from . import cql
from .datatypes import CqlType, Desc, resolve, serialize, sort_key
from .errors import ALREADY_EXISTS, INVALID, CqlError, invalid

NO_DELETION = -(2**63)
MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
MAX_TTL = 630720000  # 20 years, Cassandra's limit


class Clock:
    """Server time in microseconds; ``advance()`` lets tests time-travel (TTL expiry) without sleeping."""

    def __init__(self) -> None:
        self.offset_us = 0

    def now_us(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def advance(self, seconds: float) -> None:
        self.offset_us += int(seconds * 1_000_000)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    value: Any  # None = tombstone
    ts: int  # write timestamp, µs
    expires: int | None = None  # server time (µs) after which the cell is gone
    ttl: int | None = None  # TTL in seconds as written

    def live(self, now: int, shadow: int) -> bool:
        return self.value is not None and self.ts > shadow and (self.expires is None or self.expires > now)


def reconcile(ctype: CqlType | None, old: Cell | None, new: Cell) -> Cell:
    """The surviving cell of two writes to the same place (last write wins)."""
    if old is None or new.ts > old.ts:
        return new
    if new.ts < old.ts:
        return old
    if old.value is None or new.value is None:
        return old if old.value is None else new
    if ctype is None:
        return new
    return new if serialize(ctype, new.value) > serialize(ctype, old.value) else old


@dataclass
class Row:
    marker: Cell | None = None  # written by INSERT: keeps the row alive
    deleted_at: int = NO_DELETION
    cells: dict[str, Cell] = field(default_factory=dict)

    def live(self, now: int, shadow: int) -> bool:
        shadow = max(shadow, self.deleted_at)
        if self.marker is not None and self.marker.live(now, shadow):
            return True
        return any(c.live(now, shadow) for c in self.cells.values())


@dataclass
class Partition:
    key: tuple  # partition key values, in key order
    key_bytes: bytes  # serialized partition key (the routing key)
    token: int
    deleted_at: int = NO_DELETION
    static: dict[str, Cell] = field(default_factory=dict)
    rows: dict[tuple, Row] = field(default_factory=dict)  # add rows with row(), which keeps the order cache
    _order: tuple[list, list[tuple]] | None = None

    def row(self, ck: tuple) -> Row:
        """The row at clustering values ``ck``, created (empty, not live) if needed."""
        row = self.rows.get(ck)
        if row is None:
            row = self.rows[ck] = Row()
            self._order = None
        return row

    def ordered(self, sort_key: Callable[[tuple], tuple]) -> tuple[list, list[tuple]]:
        """(sort keys, clustering tuples) of all rows in clustering order (cached until a row is added)."""
        if self._order is None:
            pairs = sorted(((sort_key(ck), ck) for ck in self.rows), key=lambda p: p[0])
            self._order = ([k for k, _ in pairs], [ck for _, ck in pairs])
        return self._order

    def static_live(self, now: int) -> bool:
        return any(c.live(now, self.deleted_at) for c in self.static.values())


def routing_key(types: list[CqlType], values: tuple) -> bytes:
    """Serialized partition key: the value itself, or CompositeType (<len><bytes><0>)* for several."""
    if len(types) == 1:
        return serialize(types[0], values[0])
    out = b""
    for t, v in zip(types, values, strict=True):
        b = serialize(t, v)
        out += struct.pack(">H", len(b)) + b + b"\x00"
    return out


def token_of(key: bytes) -> int:
    """Murmur3Partitioner token (Long.MIN_VALUE maps to Long.MAX_VALUE, as in Cassandra)."""
    h = int(murmur3(key))
    return MAX_TOKEN if h == MIN_TOKEN else h


def partition_hash_of(token: int) -> int:
    return (token - MIN_TOKEN) >> 48


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------


@dataclass
class Column:
    name: str
    type: CqlType
    kind: str  # partition_key, clustering, static, regular
    position: int = -1
    order: str = "none"  # asc / desc for clustering columns

    @property
    def is_key(self) -> bool:
        return self.kind in ("partition_key", "clustering")


@dataclass
class Index:
    name: str
    table: str
    hash_columns: list[str]
    range_columns: list[str]
    include: list[str]
    predicate: str | None
    unique: bool
    transactions: dict[str, str]
    tablets: int | None = None
    order: dict[str, str] = field(default_factory=dict)  # clustering column -> "desc" (default "asc")
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class Table:
    keyspace: str
    name: str
    columns: dict[str, Column]  # partition key, clustering, then others in definition order
    options: dict[str, Any] = field(default_factory=dict)
    extensions: dict[str, bytes] = field(default_factory=dict)  # unknown WITH options, verbatim
    indexes: dict[str, Index] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    partitions: dict[bytes, Partition] = field(default_factory=dict)
    _sorted: tuple[list[Partition], list[tuple[int, bytes]]] | None = None

    @property
    def partition_key(self) -> list[Column]:
        return [c for c in self.columns.values() if c.kind == "partition_key"]

    @property
    def clustering(self) -> list[Column]:
        return [c for c in self.columns.values() if c.kind == "clustering"]

    @property
    def is_counter(self) -> bool:
        return any(c.type.kind == "counter" for c in self.columns.values())

    def column(self, name: str) -> Column:
        try:
            return self.columns[name]
        except KeyError:
            raise invalid(f"Undefined column name {name} in table {self.keyspace}.{self.name}") from None

    def partition(self, key: tuple, create: bool = False) -> Partition | None:
        key_bytes = routing_key([c.type for c in self.partition_key], key)
        part = self.partitions.get(key_bytes)
        if part is None and create:
            part = Partition(key, key_bytes, token_of(key_bytes))
            self.partitions[key_bytes] = part
            self._sorted = None
        return part

    def sorted_partitions(self) -> tuple[list[Partition], list[tuple[int, bytes]]]:
        """Partitions in token order and their (token, key bytes) positions (cached)."""
        if self._sorted is None:
            parts = sorted(self.partitions.values(), key=lambda p: (p.token, p.key_bytes))
            self._sorted = (parts, [(p.token, p.key_bytes) for p in parts])
        return self._sorted

    def truncate(self) -> None:
        self.partitions.clear()
        self._sorted = None

    def clustering_key(self, ck: tuple | None) -> tuple:
        """Sort key of a row within its partition (honours DESC); ``None`` (static-only row) sorts first."""
        if ck is None:
            return ()
        out = []
        for col, value in zip(self.clustering, ck, strict=True):
            k = sort_key(col.type, value)
            out.append(Desc(k) if col.order == "desc" else k)
        return tuple(out)


@dataclass
class Keyspace:
    name: str
    replication: dict[str, str]
    durable_writes: bool = True
    tables: dict[str, Table] = field(default_factory=dict)
    types: dict[str, CqlType] = field(default_factory=dict)
    system: bool = False

    def find_index(self, name: str) -> tuple[Table, Index] | None:
        for table in self.tables.values():
            if name in table.indexes:
                return table, table.indexes[name]
        return None


class Catalog:
    """All keyspaces; ``schema_version`` changes with every schema change (reported in system.local)."""

    def __init__(self) -> None:
        self.keyspaces: dict[str, Keyspace] = {}
        self.schema_version = uuid.uuid4()
        # Materialized system tables, valid until the next schema change (drivers re-read system_schema
        # after every change, from every connected client: rebuilding it each time is quadratic).
        self.system_cache: dict[tuple[str, str, str, int], Table] = {}

    def bump(self) -> None:
        self.schema_version = uuid.uuid4()
        self.system_cache.clear()

    def keyspace(self, name: str) -> Keyspace:
        try:
            return self.keyspaces[name]
        except KeyError:
            raise CqlError(INVALID, f"Keyspace '{name}' does not exist") from None

    def table(self, keyspace: str, name: str) -> Table:
        ks = self.keyspace(keyspace)
        try:
            return ks.tables[name]
        except KeyError:
            raise CqlError(INVALID, f"unconfigured table {name}") from None

    def lookup_udt(self, keyspace: str, name: str) -> CqlType | None:
        ks = self.keyspaces.get(keyspace)
        return ks.types.get(name) if ks else None


# Table options cqlsim understands (they become columns of system_schema.tables); other WITH options
# are kept verbatim in Table.extensions. Values are the defaults each presentation reports.
CASSANDRA_TABLE_OPTIONS: dict[str, Any] = {
    "additional_write_policy": "99p",
    "bloom_filter_fp_chance": 0.01,
    "caching": {"keys": "ALL", "rows_per_partition": "NONE"},
    "cdc": None,
    "comment": "",
    "compaction": {
        "class": "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy",
        "max_threshold": "32",
        "min_threshold": "4",
    },
    "compression": {"chunk_length_in_kb": "16", "class": "org.apache.cassandra.io.compress.LZ4Compressor"},
    "crc_check_chance": 1.0,
    "default_time_to_live": 0,
    "gc_grace_seconds": 864000,
    "max_index_interval": 2048,
    "memtable_flush_period_in_ms": 0,
    "min_index_interval": 128,
    "read_repair": "BLOCKING",
    "speculative_retry": "99p",
}
YB_TABLE_OPTIONS: dict[str, Any] = {
    "comment": None,
    "default_time_to_live": 0,
    "transactions": {"enabled": "false"},
    "tablets": None,
}
_MAP_OPTIONS = ("caching", "compaction", "compression", "transactions")
_INT_OPTIONS = ("default_time_to_live", "gc_grace_seconds", "max_index_interval", "memtable_flush_period_in_ms",
                "min_index_interval", "tablets")
_FLOAT_OPTIONS = ("bloom_filter_fp_chance", "crc_check_chance")


def build_table(
    stmt: cql.CreateTable, keyspace: str, catalog: Catalog, cassandra: bool, system: bool = False
) -> Table:
    """Validate a CREATE TABLE statement and build the (empty) Table."""
    defs: dict[str, cql.ColumnDef] = {}
    for cdef in stmt.columns:
        if cdef.name in defs:
            raise invalid(f"Multiple definition of identifier {cdef.name}")
        defs[cdef.name] = cdef
    keys = stmt.partition_key + stmt.clustering
    for name in keys:
        if name not in defs:
            raise invalid(f"Unknown definition {name} referenced in PRIMARY KEY")
    if len(set(keys)) != len(keys):
        raise invalid("Duplicate column in PRIMARY KEY")
    if list(stmt.clustering_order) and list(stmt.clustering_order) != stmt.clustering[: len(stmt.clustering_order)]:
        raise invalid("Clustering key columns must exactly match columns in CLUSTERING ORDER BY directive")

    def typ(cdef: cql.ColumnDef) -> CqlType:
        return resolve(cdef.type, keyspace, catalog.lookup_udt, allow_jsonb=not cassandra)

    columns: dict[str, Column] = {}
    for i, name in enumerate(stmt.partition_key):
        columns[name] = Column(name, typ(defs[name]), "partition_key", i)
    for i, name in enumerate(stmt.clustering):
        columns[name] = Column(name, typ(defs[name]), "clustering", i, stmt.clustering_order.get(name, "asc"))
    for cdef in stmt.columns:
        if cdef.name in columns:
            if cdef.static:
                raise invalid(f"Static column {cdef.name} cannot be part of the PRIMARY KEY")
            continue
        if cdef.static and not stmt.clustering:
            raise invalid(f"Static column {cdef.name} cannot be defined in a table without clustering columns")
        columns[cdef.name] = Column(cdef.name, typ(cdef), "static" if cdef.static else "regular")
    for col in columns.values():
        if col.is_key and (col.type.multi_cell or col.type.kind in ("counter", "duration")):
            raise invalid(f"Invalid type {col.type.cql()} for PRIMARY KEY component {col.name}")
        if col.is_key and col.type.kind == "udt" and not col.type.frozen:
            raise invalid(f"Invalid non-frozen user-defined type for PRIMARY KEY component {col.name}")
    counters = [c for c in columns.values() if c.type.kind == "counter"]
    if counters and len(counters) != len([c for c in columns.values() if not c.is_key]):
        raise invalid("Cannot mix counter and non counter columns in the same table")

    known = CASSANDRA_TABLE_OPTIONS if cassandra else YB_TABLE_OPTIONS
    options: dict[str, Any] = {} if system else dict(known)
    extensions: dict[str, bytes] = {}
    for key, opt in stmt.options.items():
        if key not in known:
            extensions[key] = opt.text.encode()
            continue
        value = opt.value
        try:
            if key in _MAP_OPTIONS and not isinstance(value, dict):
                raise ValueError("a map is required")
            if key in _INT_OPTIONS:
                value = int(value)
            elif key in _FLOAT_OPTIONS:
                value = float(value)
            elif key == "cdc":
                value = bool(value)
        except (TypeError, ValueError) as exc:
            raise CqlError(0x2300, f"Invalid value for property '{key}': {opt.text} ({exc})") from None
        if key == "default_time_to_live" and not 0 <= value <= MAX_TTL:
            raise invalid(f"default_time_to_live must be between 0 and {MAX_TTL}")
        options[key] = value
    return Table(keyspace, stmt.name, columns, options, extensions)


def already_exists(what: str, keyspace: str, name: str = "") -> CqlError:
    if name:
        message = f"Cannot add already existing {what} \"{name}\" to keyspace \"{keyspace}\""
    else:
        message = f"Cannot add existing keyspace \"{keyspace}\""
    return CqlError(ALREADY_EXISTS, message, keyspace=keyspace, table=name)
