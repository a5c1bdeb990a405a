"""CQL data types: type model, wire [option] encoding, value (de)serialization, literals and ordering.

Internal value representation (what storage keeps and what ``serialize`` accepts):

=====================  ===========================================================================
ascii, text, jsonb     ``str`` (jsonb is validated and stored as compact JSON text)
bigint, int, smallint, ``int``
tinyint, varint,
counter
decimal                ``decimal.Decimal``
float, double          ``float`` (float values are rounded to 32 bits on the way in)
boolean                ``bool``
blob                   ``bytes``
uuid, timeuuid         ``uuid.UUID``
timestamp              ``int`` milliseconds since the epoch
date                   ``int`` days since the epoch (may be negative)
time                   ``int`` nanoseconds since midnight
duration               ``(months, days, nanoseconds)`` tuple
inet                   ``ipaddress.IPv4Address`` / ``IPv6Address``
list, tuple, UDT       ``tuple`` (UDT: one item per field, in field order; ``None`` for null)
set                    ``tuple`` of unique elements sorted by the element type's order
map                    ``tuple`` of ``(key, value)`` pairs sorted by key
=====================  ===========================================================================

All of these are hashable, so frozen collections can be clustering keys, set elements and map keys.
The wire codes are those of native protocol v4; YugabyteDB's ``jsonb`` uses code 0x0080 and UTF-8 text,
which is how yb-cassandra-driver decodes it (``cassandra.cqltypes.JsonType``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import total_ordering
from typing import Any

from cassandra.cqltypes import DecimalType
from cassandra.marshal import varint_pack, varint_unpack, vints_pack, vints_unpack

from .cql import Ident, ListLit, Literal, MapLit, Marker, SetLit, Term, TupleLit, TypeExpr
from .errors import INVALID, CqlError, invalid

NATIVE_CODES: dict[str, int] = {
    "ascii": 0x0001,
    "bigint": 0x0002,
    "blob": 0x0003,
    "boolean": 0x0004,
    "counter": 0x0005,
    "decimal": 0x0006,
    "double": 0x0007,
    "float": 0x0008,
    "int": 0x0009,
    "timestamp": 0x000B,
    "uuid": 0x000C,
    "text": 0x000D,  # protocol v4 reports text as varchar (0x000A is gone from the v4 spec)
    "varint": 0x000E,
    "timeuuid": 0x000F,
    "inet": 0x0010,
    "date": 0x0011,
    "time": 0x0012,
    "smallint": 0x0013,
    "tinyint": 0x0014,
    "duration": 0x0015,
    "jsonb": 0x0080,
}
ALIASES = {"varchar": "text"}
COLLECTIONS = ("list", "set", "map")
_INT_RANGES = {"tinyint": 8, "smallint": 16, "int": 32, "bigint": 64, "counter": 64}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Unset:
    """The protocol's 'unset' bind value: the assignment or value is skipped."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


@dataclass(frozen=True)
class CqlType:
    kind: str  # a NATIVE_CODES name, or list / set / map / tuple / udt
    params: tuple[CqlType, ...] = ()
    frozen: bool = False
    keyspace: str = ""  # UDT only
    name: str = ""  # UDT only
    fields: tuple[str, ...] = ()  # UDT field names; params holds the field types

    @property
    def multi_cell(self) -> bool:
        """Non-frozen collections: updated element-wise (stored whole, see storage.py)."""
        return self.kind in COLLECTIONS and not self.frozen

    def cql(self) -> str:
        """The type as system_schema reports it, e.g. ``frozen<map<text, int>>``."""
        if self.kind in NATIVE_CODES:
            return self.kind
        if self.kind in ("list", "set"):
            inner = f"{self.kind}<{self.params[0].cql()}>"
        elif self.kind == "map":
            inner = f"map<{self.params[0].cql()}, {self.params[1].cql()}>"
        elif self.kind == "tuple":
            inner = f"tuple<{', '.join(p.cql() for p in self.params)}>"
        else:
            inner = quote_name(self.name)
        return f"frozen<{inner}>" if self.frozen else inner

    def option(self) -> bytes:
        """The protocol [option] describing this type in result metadata."""
        if self.kind in NATIVE_CODES:
            return struct.pack(">H", NATIVE_CODES[self.kind])
        if self.kind == "list":
            return b"\x00\x20" + self.params[0].option()
        if self.kind == "set":
            return b"\x00\x22" + self.params[0].option()
        if self.kind == "map":
            return b"\x00\x21" + self.params[0].option() + self.params[1].option()
        if self.kind == "tuple":
            return b"\x00\x31" + struct.pack(">H", len(self.params)) + b"".join(p.option() for p in self.params)
        out = b"\x00\x30" + _string(self.keyspace) + _string(self.name) + struct.pack(">H", len(self.fields))
        for fname, ftype in zip(self.fields, self.params, strict=True):
            out += _string(fname) + ftype.option()
        return out


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


_SIMPLE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def quote_name(name: str) -> str:
    """Quote an identifier the way Cassandra prints it (only when needed)."""
    return name if _SIMPLE_NAME.match(name) else '"' + name.replace('"', '""') + '"'


def native(kind: str) -> CqlType:
    return CqlType(kind)


def resolve(
    expr: TypeExpr,
    keyspace: str,
    lookup_udt: Callable[[str, str], CqlType | None],
    allow_jsonb: bool,
    freeze: bool = False,
    in_collection: bool = False,
) -> CqlType:
    """Turn a parsed type into a CqlType; types nested in collections, tuples and UDTs are frozen."""
    name = ALIASES.get(expr.name, expr.name)
    if expr.keyspace is None and name in NATIVE_CODES:
        if name == "jsonb" and not allow_jsonb:
            raise CqlError(INVALID, "Unknown type jsonb")
        return CqlType(name)
    if expr.keyspace is None and name in ("list", "set", "map", "tuple"):
        want = {"list": 1, "set": 1, "map": 2}.get(name)
        if (want is not None and len(expr.params) != want) or not expr.params:
            raise CqlError(INVALID, f"Invalid number of type parameters for {name}")
        if in_collection and name in COLLECTIONS and not expr.frozen:
            raise CqlError(INVALID, "Non-frozen collections are not allowed inside collections")
        params = tuple(
            resolve(p, keyspace, lookup_udt, allow_jsonb, freeze=True, in_collection=name in COLLECTIONS)
            for p in expr.params
        )
        return CqlType(name, params, frozen=expr.frozen or freeze or name == "tuple")
    udt = lookup_udt(expr.keyspace or keyspace, name)
    if udt is None:
        raise CqlError(INVALID, f"Unknown type {expr.keyspace or keyspace}.{name}")
    return replace(udt, frozen=expr.frozen or freeze)


# --------------------------------------------------------------------------------------------------
# Serialization
# --------------------------------------------------------------------------------------------------


def serialize(t: CqlType, v: Any) -> bytes:
    k = t.kind
    if k in ("text", "jsonb"):
        return v.encode("utf-8")
    if k == "ascii":
        return v.encode("ascii")
    if k in ("bigint", "counter", "timestamp", "time"):
        return struct.pack(">q", v)
    if k == "int":
        return struct.pack(">i", v)
    if k == "smallint":
        return struct.pack(">h", v)
    if k == "tinyint":
        return struct.pack(">b", v)
    if k == "varint":
        return varint_pack(v)
    if k == "decimal":
        return DecimalType.serialize(v, 4)
    if k == "float":
        return struct.pack(">f", v)
    if k == "double":
        return struct.pack(">d", v)
    if k == "boolean":
        return b"\x01" if v else b"\x00"
    if k == "blob":
        return bytes(v)
    if k in ("uuid", "timeuuid"):
        return v.bytes
    if k == "inet":
        return v.packed
    if k == "date":
        return struct.pack(">I", v + 2**31)
    if k == "duration":
        return vints_pack(list(v))
    if k in ("list", "set"):
        return _pack_items([serialize(t.params[0], item) for item in v])
    if k == "map":
        parts: list[bytes] = []
        for key, value in v:
            parts += [serialize(t.params[0], key), serialize(t.params[1], value)]
        return struct.pack(">i", len(v)) + b"".join(struct.pack(">i", len(p)) + p for p in parts)
    if k in ("tuple", "udt"):
        out = b""
        for ftype, item in zip(t.params, v, strict=True):
            out += struct.pack(">i", -1) if item is None else _packed(serialize(ftype, item))
        return out
    raise AssertionError(f"unknown type {k}")


def _packed(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


def _pack_items(items: list[bytes]) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(_packed(i) for i in items)


def deserialize(t: CqlType, b: bytes) -> Any:
    """Decode a non-null [value] sent by a client; raises CqlError(INVALID) on malformed input."""
    try:
        return _deserialize(t, b)
    except CqlError:
        raise
    except Exception as exc:
        raise CqlError(INVALID, f"Invalid value for type {t.cql()}: {exc}") from exc


def _deserialize(t: CqlType, b: bytes) -> Any:
    k = t.kind
    if not b and k not in ("text", "ascii", "blob", "jsonb"):
        return None  # an "empty" value: treated as null
    if k in ("text", "ascii"):
        return b.decode("ascii" if k == "ascii" else "utf-8")
    if k == "jsonb":
        return normalize_json(b.decode("utf-8"))
    if k in ("bigint", "counter", "timestamp", "time"):
        return struct.unpack(">q", b)[0]
    if k == "int":
        return struct.unpack(">i", b)[0]
    if k == "smallint":
        return struct.unpack(">h", b)[0]
    if k == "tinyint":
        return struct.unpack(">b", b)[0]
    if k == "varint":
        return varint_unpack(b)
    if k == "decimal":
        return DecimalType.deserialize(b, 4)
    if k == "float":
        return struct.unpack(">f", b)[0]
    if k == "double":
        return struct.unpack(">d", b)[0]
    if k == "boolean":
        return b != b"\x00"
    if k == "blob":
        return bytes(b)
    if k in ("uuid", "timeuuid"):
        return uuid.UUID(bytes=b)
    if k == "inet":
        return ipaddress.ip_address(b)
    if k == "date":
        return struct.unpack(">I", b)[0] - 2**31
    if k == "duration":
        return tuple(vints_unpack(b))
    if k in ("list", "set", "map"):
        count = struct.unpack_from(">i", b)[0]
        pos = 4
        items = []
        for _ in range(count * (2 if k == "map" else 1)):
            size = struct.unpack_from(">i", b, pos)[0]
            pos += 4
            items.append(b[pos : pos + size])
            pos += size
        if k == "list":
            return tuple(_deserialize(t.params[0], i) for i in items)
        if k == "set":
            return canonical_set(t, [_deserialize(t.params[0], i) for i in items])
        return canonical_map(
            t, [(_deserialize(t.params[0], a), _deserialize(t.params[1], v)) for a, v in zip(items[::2], items[1::2], strict=True)]
        )
    if k in ("tuple", "udt"):
        values: list[Any] = []
        pos = 0
        for ftype in t.params:
            if pos >= len(b):
                values.append(None)
                continue
            size = struct.unpack_from(">i", b, pos)[0]
            pos += 4
            if size < 0:
                values.append(None)
            else:
                values.append(_deserialize(ftype, b[pos : pos + size]))
                pos += size
        return tuple(values)
    raise AssertionError(f"unknown type {k}")


def canonical_set(t: CqlType, items: list[Any]) -> tuple:
    unique = {item: None for item in items}
    return tuple(sorted(unique, key=lambda v: sort_key(t.params[0], v)))


def canonical_map(t: CqlType, pairs: list[tuple[Any, Any]]) -> tuple:
    merged = dict(pairs)
    return tuple(sorted(merged.items(), key=lambda kv: sort_key(t.params[0], kv[0])))


def normalize_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except ValueError as exc:
        raise CqlError(INVALID, f"Invalid jsonb value: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Ordering
# --------------------------------------------------------------------------------------------------


def sort_key(t: CqlType, v: Any) -> Any:
    """A Python-comparable key that orders values like Cassandra's comparator for type ``t``."""
    k = t.kind
    if k in ("text", "ascii", "jsonb"):
        return v.encode("utf-8")
    if k == "inet":
        return v.packed
    if k == "uuid":
        return (v.version or 0, v.time if v.version == 1 else 0, v.bytes)
    if k == "timeuuid":
        return (v.time, v.bytes)
    if k in ("list", "set"):
        return tuple(sort_key(t.params[0], i) for i in v)
    if k == "map":
        return tuple((sort_key(t.params[0], a), sort_key(t.params[1], b)) for a, b in v)
    if k in ("tuple", "udt"):
        return tuple((0,) if i is None else (1, sort_key(p, i)) for p, i in zip(t.params, v, strict=True))
    return v


@total_ordering
class Desc:
    """Wraps a sort key to invert its order (clustering columns declared DESC)."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and self.key == other.key

    def __lt__(self, other: Desc) -> bool:
        return other.key < self.key

    def __hash__(self) -> int:
        return hash(self.key)


# --------------------------------------------------------------------------------------------------
# Literals
# --------------------------------------------------------------------------------------------------


def collect_markers(t: CqlType, term: Any, name: str, out: dict[int, tuple[str, CqlType]]) -> None:
    """Record the (name, type) of every bind marker inside ``term`` when it is assigned to type ``t``."""
    if isinstance(term, Marker):
        out[term.index] = (name, t)
    elif isinstance(term, ListLit | SetLit | TupleLit):
        for i, item in enumerate(term.items):
            if t.kind in ("tuple", "udt"):
                sub = t.params[i] if i < len(t.params) else t
            else:
                sub = t.params[0] if t.params else t
            collect_markers(sub, item, name, out)
    elif isinstance(term, MapLit):
        for key, value in term.pairs:
            if t.kind == "udt" and isinstance(key, Ident) and key.name in t.fields:
                collect_markers(t.params[t.fields.index(key.name)], value, name, out)
            elif t.kind == "map":
                collect_markers(t.params[0], key, name, out)
                collect_markers(t.params[1], value, name, out)


def literal_value(t: CqlType, term: Term, bound: Callable[[int], Any], nested: bool = False,
                  field: bool = False) -> Any:
    """Convert a parsed term to the internal value of type ``t`` (``bound(i)`` gives marker values).

    ``nested``: inside a collection, tuple or UDT; ``field``: a tuple or UDT field, which may be null.
    """
    if isinstance(term, Marker):
        value = bound(term.index)
        if nested and value is UNSET:
            raise invalid("Invalid unset value inside a collection, tuple or UDT")
        return value
    if isinstance(term, Literal) and term.kind == "null":
        if nested and not field:
            raise invalid("null is not supported inside collections")
        return None
    k = t.kind
    if k in COLLECTIONS or k in ("tuple", "udt"):
        return _composite_literal(t, term, bound)
    if isinstance(term, Ident):
        if k == "duration" and term.name.upper().startswith("P"):
            return parse_duration(term.name.upper())
        raise invalid(f"Undefined name {term.name} in value position")
    if not isinstance(term, Literal):
        raise invalid(f"Invalid {type(term).__name__} literal for type {t.cql()}")
    return _scalar_literal(t, term)


def _composite_literal(t: CqlType, term: Term, bound: Callable[[int], Any]) -> Any:
    k = t.kind
    if k == "list" and isinstance(term, ListLit):
        return tuple(literal_value(t.params[0], i, bound, nested=True) for i in term.items)
    if k == "set" and (isinstance(term, SetLit) or (isinstance(term, MapLit) and not term.pairs)):
        items = term.items if isinstance(term, SetLit) else []
        return canonical_set(t, [literal_value(t.params[0], i, bound, nested=True) for i in items])
    if k == "map" and isinstance(term, MapLit):
        pairs = [
            (literal_value(t.params[0], a, bound, nested=True), literal_value(t.params[1], b, bound, nested=True))
            for a, b in term.pairs
        ]
        return canonical_map(t, pairs)
    if k == "tuple" and isinstance(term, TupleLit):
        if len(term.items) > len(t.params):
            raise invalid(f"Too many values for {t.cql()}")
        values = [literal_value(p, i, bound, nested=True, field=True)
                  for p, i in zip(t.params, term.items, strict=False)]
        return tuple(values + [None] * (len(t.params) - len(values)))
    if k == "udt" and isinstance(term, MapLit):
        values = [None] * len(t.fields)
        for key, item in term.pairs:
            fname = key.name if isinstance(key, Ident) else None
            if fname not in t.fields:
                raise invalid(f"Unknown field {key} in value of user-defined type {t.name}")
            idx = t.fields.index(fname)
            values[idx] = literal_value(t.params[idx], item, bound, nested=True, field=True)
        return tuple(values)
    raise invalid(f"Invalid {type(term).__name__} literal for type {t.cql()}")


def _scalar_literal(t: CqlType, lit: Literal) -> Any:
    k, kind, text = t.kind, lit.kind, lit.text

    def bad() -> CqlError:
        return invalid(f"Invalid {kind.upper()} constant ({text}) for column of type {t.cql()}")

    if k in _INT_RANGES or k == "varint":
        if kind != "int":
            raise bad()
        value = int(text)
        bits = _INT_RANGES.get(k)
        if bits is not None and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise invalid(f"Value {text} out of range for type {k}")
        return value
    if k in ("float", "double"):
        if kind in ("int", "float"):
            value = float(text)
        elif kind == "nan":
            value = math.nan
        elif kind == "inf":
            value = -math.inf if text.startswith("-") else math.inf
        else:
            raise bad()
        return struct.unpack(">f", struct.pack(">f", value))[0] if k == "float" else value
    if k == "decimal":
        if kind not in ("int", "float"):
            raise bad()
        try:
            return Decimal(text)
        except InvalidOperation as exc:
            raise bad() from exc
    if k == "boolean":
        if kind != "bool":
            raise bad()
        return text == "true"
    if k in ("text", "ascii", "jsonb"):
        if kind != "string":
            raise bad()
        if k == "ascii" and not text.isascii():
            raise invalid(f"Invalid ASCII value {text!r}")
        return normalize_json(text) if k == "jsonb" else text
    if k == "blob":
        if kind != "hex" or len(text) % 2:
            raise bad()
        return bytes.fromhex(text[2:])
    if k in ("uuid", "timeuuid"):
        if kind != "uuid":
            raise bad()
        value = uuid.UUID(text)
        if k == "timeuuid" and value.version != 1:
            raise invalid(f"Unsupported UUID for timeuuid (version {value.version}): {text}")
        return value
    if k == "timestamp":
        if kind == "int":
            return int(text)
        if kind == "string":
            return parse_timestamp(text)
        raise bad()
    if k == "date":
        if kind == "int" or (kind == "string" and text.isdigit()):
            return int(text) - 2**31
        if kind == "string":
            try:
                return (date.fromisoformat(text) - date(1970, 1, 1)).days
            except ValueError as exc:
                raise invalid(f"Unable to coerce '{text}' to a formatted date (yyyy-mm-dd)") from exc
        raise bad()
    if k == "time":
        if kind == "int":
            return int(text)
        if kind == "string":
            return parse_time(text)
        raise bad()
    if k == "duration":
        if kind in ("duration", "string"):
            return parse_duration(text)
        raise bad()
    if k == "inet":
        if kind != "string":
            raise bad()
        try:
            return ipaddress.ip_address(text)
        except ValueError as exc:
            raise invalid(f"Unable to make inet address from '{text}'") from exc
    raise bad()


def parse_timestamp(text: str) -> int:
    """'2020-01-02', '2020-01-02 03:04:05.678+0000', ISO 8601 with T/Z... -> ms since epoch (UTC)."""
    s = text.strip()
    if len(s) > 10 and s[10] == " ":
        s = s[:10] + "T" + s[11:]
    try:
        dt = datetime.fromisoformat(s)
    except ValueError as exc:
        raise invalid(f"Unable to coerce '{text}' to a formatted date (long)") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


_TIME_RE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\Z")


def parse_time(text: str) -> int:
    m = _TIME_RE.match(text.strip())
    if not m:
        raise invalid(f"Unable to coerce '{text}' to a formatted time (long)")
    hours, minutes, seconds = int(m[1]), int(m[2]), int(m[3])
    nanos = int((m[4] or "").ljust(9, "0"))
    if hours > 23 or minutes > 59 or seconds > 59:
        raise invalid(f"Invalid time {text!r}")
    return ((hours * 60 + minutes) * 60 + seconds) * 1_000_000_000 + nanos


_UNIT_NANOS = {"h": 3_600_000_000_000, "m": 60_000_000_000, "s": 1_000_000_000, "ms": 1_000_000,
               "us": 1_000, "µs": 1_000, "ns": 1}
_DURATION_PART = re.compile(r"(\d+)(y|mo|w|d|h|ms|us|µs|ns|m|s)", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?\Z", re.IGNORECASE
)
_ISO_WEEKS = re.compile(r"P(\d+)W\Z", re.IGNORECASE)


def parse_duration(text: str) -> tuple[int, int, int]:
    """'1h2m3s', '-2d', 'P1Y2M3DT4H5M6S', 'P3W' -> (months, days, nanoseconds)."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("-")
    months = days = nanos = 0
    if s[:1].upper() == "P":
        m = _ISO_DURATION.match(s)
        w = _ISO_WEEKS.match(s)
        if w:
            days = 7 * int(w[1])
        elif m and s.upper() not in ("P", "PT"):
            y, mo, d, h, mi, sec = (int(g or 0) for g in m.groups())
            months, days = 12 * y + mo, d
            nanos = h * _UNIT_NANOS["h"] + mi * _UNIT_NANOS["m"] + sec * _UNIT_NANOS["s"]
        else:
            raise invalid(f"Unable to convert '{text}' to a duration")
    else:
        pos = 0
        for m in _DURATION_PART.finditer(s):
            if m.start() != pos:
                break
            pos = m.end()
            amount, unit = int(m[1]), m[2].lower()
            if unit == "y":
                months += 12 * amount
            elif unit == "mo":
                months += amount
            elif unit == "w":
                days += 7 * amount
            elif unit == "d":
                days += amount
            else:
                nanos += amount * _UNIT_NANOS[unit]
        if pos != len(s) or not s:
            raise invalid(f"Unable to convert '{text}' to a duration")
    return (sign * months, sign * days, sign * nanos)
