"""CQL native protocol v4 framing: frame headers, primitive notations, request parsing, response bodies.

Spec: apache/cassandra ``doc/native_protocol_v4.spec``. Frames are a 9-byte header (version, flags,
stream, opcode, body length) and a body; cqlsim never compresses and ignores tracing/custom payloads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from .datatypes import UNSET, CqlType, serialize
from .errors import INVALID, PROTOCOL_ERROR, CqlError

VERSION = 4
HEADER = struct.Struct(">BBhBi")

# opcodes
ERROR = 0x00
STARTUP = 0x01
READY = 0x02
AUTHENTICATE = 0x03
OPTIONS = 0x05
SUPPORTED = 0x06
QUERY = 0x07
RESULT = 0x08
PREPARE = 0x09
EXECUTE = 0x0A
REGISTER = 0x0B
EVENT = 0x0C
BATCH = 0x0D
AUTH_CHALLENGE = 0x0E
AUTH_RESPONSE = 0x0F
AUTH_SUCCESS = 0x10

# QUERY / EXECUTE / BATCH flags (a [byte] in v4)
FLAG_VALUES = 0x01
FLAG_SKIP_METADATA = 0x02
FLAG_PAGE_SIZE = 0x04
FLAG_PAGING_STATE = 0x08
FLAG_SERIAL_CONSISTENCY = 0x10
FLAG_TIMESTAMP = 0x20
FLAG_NAMES = 0x40

# result kinds and metadata flags
KIND_VOID = 0x0001
KIND_ROWS = 0x0002
KIND_SET_KEYSPACE = 0x0003
KIND_PREPARED = 0x0004
KIND_SCHEMA_CHANGE = 0x0005
META_GLOBAL_TABLES_SPEC = 0x0001
META_HAS_MORE_PAGES = 0x0002
META_NO_METADATA = 0x0004


@dataclass
class Frame:
    version: int
    flags: int
    stream: int
    opcode: int
    body: bytes


def encode_frame(stream: int, opcode: int, body: bytes, version: int = VERSION) -> bytes:
    return HEADER.pack(0x80 | version, 0, stream, opcode, len(body)) + body


# --------------------------------------------------------------------------------------------------
# Primitive notations
# --------------------------------------------------------------------------------------------------


class Reader:
    """Reads the spec's [byte] [short] [int] [long] [string] [long string] [bytes] [value] ... notations."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CqlError(PROTOCOL_ERROR, "Not enough bytes in message body")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self._take(size))[0]

    def byte(self) -> int:
        return self._unpack(">B")

    def short(self) -> int:
        return self._unpack(">H")

    def int(self) -> int:
        return self._unpack(">i")

    def long(self) -> int:
        return self._unpack(">q")

    def string(self) -> str:
        return self._take(self.short()).decode("utf-8")

    def long_string(self) -> str:
        return self._take(self.int()).decode("utf-8")

    def bytes(self) -> bytes | None:
        n = self.int()
        return None if n < 0 else self._take(n)

    def short_bytes(self) -> bytes:
        return self._take(self.short())

    def value(self) -> Any:
        """[value]: bytes, None (null, -1) or UNSET (-2)."""
        n = self.int()
        if n == -2:
            return UNSET
        return None if n < 0 else self._take(n)

    def string_map(self) -> dict[str, str]:
        return {self.string(): self.string() for _ in range(self.short())}

    def string_list(self) -> list[str]:
        return [self.string() for _ in range(self.short())]


class Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def getvalue(self) -> bytes:
        return b"".join(self.parts)

    def raw(self, b: bytes) -> Writer:
        self.parts.append(b)
        return self

    def short(self, n: int) -> Writer:
        return self.raw(struct.pack(">H", n))

    def int(self, n: int) -> Writer:
        return self.raw(struct.pack(">i", n))

    def string(self, s: str) -> Writer:
        b = s.encode("utf-8")
        return self.short(len(b)).raw(b)

    def bytes(self, b: bytes | None) -> Writer:
        if b is None:
            return self.int(-1)
        return self.int(len(b)).raw(b)

    def short_bytes(self, b: bytes) -> Writer:
        return self.short(len(b)).raw(b)

    def string_list(self, items: list[str]) -> Writer:
        self.short(len(items))
        for s in items:
            self.string(s)
        return self

    def string_multimap(self, m: dict[str, list[str]]) -> Writer:
        self.short(len(m))
        for k, v in m.items():
            self.string(k).string_list(v)
        return self


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


@dataclass
class QueryParams:
    consistency: int = 1
    values: list[Any] = field(default_factory=list)  # raw [value]s: bytes / None / UNSET
    skip_metadata: bool = False
    page_size: int = -1
    paging_state: bytes | None = None
    serial_consistency: int | None = None
    timestamp: int | None = None


def read_query_params(r: Reader) -> QueryParams:
    p = QueryParams(consistency=r.short())
    flags = r.byte()
    if flags & FLAG_NAMES:
        raise CqlError(INVALID, "cqlsim does not support named bind values")
    if flags & FLAG_VALUES:
        p.values = [r.value() for _ in range(r.short())]
    p.skip_metadata = bool(flags & FLAG_SKIP_METADATA)
    if flags & FLAG_PAGE_SIZE:
        p.page_size = r.int()
    if flags & FLAG_PAGING_STATE:
        p.paging_state = r.bytes()
    if flags & FLAG_SERIAL_CONSISTENCY:
        p.serial_consistency = r.short()
    if flags & FLAG_TIMESTAMP:
        p.timestamp = r.long()
    return p


@dataclass
class BatchEntry:
    query: str | None  # text, or None when prepared
    prepared_id: bytes | None
    values: list[Any]


@dataclass
class BatchRequest:
    kind: int  # 0 logged, 1 unlogged, 2 counter
    entries: list[BatchEntry]
    params: QueryParams


def read_batch(r: Reader) -> BatchRequest:
    kind = r.byte()
    entries = []
    for _ in range(r.short()):
        prepared = r.byte() == 1
        entry = BatchEntry(None, r.short_bytes(), []) if prepared else BatchEntry(r.long_string(), None, [])
        entry.values = [r.value() for _ in range(r.short())]
        entries.append(entry)
    params = QueryParams(consistency=r.short())
    flags = r.byte()
    if flags & FLAG_NAMES:
        raise CqlError(INVALID, "cqlsim does not support named bind values")
    if flags & FLAG_SERIAL_CONSISTENCY:
        params.serial_consistency = r.short()
    if flags & FLAG_TIMESTAMP:
        params.timestamp = r.long()
    return BatchRequest(kind, entries, params)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class VoidResult:
    pass


@dataclass
class SetKeyspaceResult:
    keyspace: str


@dataclass
class SchemaChangeResult:
    change: str  # CREATED, UPDATED, DROPPED
    target: str  # KEYSPACE, TABLE, TYPE
    keyspace: str
    name: str | None = None


@dataclass
class RowsResult:
    keyspace: str
    table: str
    columns: list[tuple[str, CqlType]]
    rows: list[list[Any]]
    paging_state: bytes | None = None


@dataclass
class PreparedResult:
    id: bytes
    keyspace: str
    table: str
    bind: list[tuple[str, CqlType]]
    pk_indexes: list[int]
    result_columns: list[tuple[str, CqlType]] | None  # None: not a SELECT


Result = VoidResult | SetKeyspaceResult | SchemaChangeResult | RowsResult | PreparedResult


def _column_specs(w: Writer, keyspace: str, table: str, columns: list[tuple[str, CqlType]]) -> None:
    w.string(keyspace).string(table)
    for name, ctype in columns:
        w.string(name).raw(ctype.option())


def schema_change_body(res: SchemaChangeResult) -> Writer:
    w = Writer().string(res.change).string(res.target).string(res.keyspace)
    if res.name is not None:
        w.string(res.name)
    return w


def encode_result(res: Result, skip_metadata: bool = False) -> bytes:
    """Body of a RESULT message."""
    w = Writer()
    if isinstance(res, VoidResult):
        w.int(KIND_VOID)
    elif isinstance(res, SetKeyspaceResult):
        w.int(KIND_SET_KEYSPACE).string(res.keyspace)
    elif isinstance(res, SchemaChangeResult):
        w.int(KIND_SCHEMA_CHANGE).raw(schema_change_body(res).getvalue())
    elif isinstance(res, RowsResult):
        w.int(KIND_ROWS)
        flags = META_NO_METADATA if skip_metadata else META_GLOBAL_TABLES_SPEC
        if res.paging_state is not None:
            flags |= META_HAS_MORE_PAGES
        w.int(flags).int(len(res.columns))
        if res.paging_state is not None:
            w.bytes(res.paging_state)
        if not skip_metadata:
            _column_specs(w, res.keyspace, res.table, res.columns)
        w.int(len(res.rows))
        types = [t for _, t in res.columns]
        for row in res.rows:
            for ctype, value in zip(types, row, strict=True):
                w.bytes(None if value is None else serialize(ctype, value))
    else:
        w.int(KIND_PREPARED).short_bytes(res.id)
        w.int(META_GLOBAL_TABLES_SPEC).int(len(res.bind)).int(len(res.pk_indexes))
        for i in res.pk_indexes:
            w.short(i)
        _column_specs(w, res.keyspace, res.table, res.bind)
        if res.result_columns is None:
            w.int(META_NO_METADATA).int(0)
        else:
            w.int(META_GLOBAL_TABLES_SPEC).int(len(res.result_columns))
            _column_specs(w, res.keyspace, res.table, res.result_columns)
    return w.getvalue()


def encode_error(err: CqlError) -> bytes:
    w = Writer().int(err.code).string(err.message)
    if err.code == 0x2400:  # already exists
        w.string(err.keyspace).string(err.table)
    elif err.code == 0x2500:  # unprepared
        w.short_bytes(err.prepared_id)
    return w.getvalue()
