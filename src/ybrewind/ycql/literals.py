"""CQL types and exact values: wire bytes <-> Python values <-> CQL literal text (and CSV fields).

The driver's ``cassandra.encoder.Encoder`` is lossy for a dump (Decimal through float, tuples as
lists, UDTs through ``str()``, timestamps cut), and its deserializers turn timestamps into
``datetime`` through a float. ybrewind therefore reads every cell as raw bytes (see
``session.RawResultMessage``) and converts it here, by column type, exactly:

=====================  ====================================================================
type                   Python value              literal written
=====================  ====================================================================
text, varchar, ascii   ``str``                   ``'it''s'``  (quotes doubled)
jsonb (YugabyteDB)     ``str`` (JSON text)       ``'{"a":1}'``
tinyint .. bigint,     ``int``                   ``-42``
varint, counter
decimal                ``Decimal`` (exact)       ``1.50``, ``1E+3`` (scale kept)
float, double          ``float``                 shortest text that reads back to the same bits;
                                                 ``NaN``, ``Infinity``, ``-Infinity``
boolean                ``bool``                  ``true`` / ``false``
blob                   ``bytes``                 ``0xcafe`` (``0x`` when empty)
uuid, timeuuid         ``uuid.UUID``             ``6ba7b810-9dad-11d1-80b4-00c04fd430c8``
timestamp              ``int`` ms since epoch    ``'2024-02-29 12:00:00.123+0000'`` (integer
                                                 ms outside years 1600..9999)
date                   ``int`` days since epoch  ``'2024-02-29'`` (``'<unsigned days>'`` outside)
time                   ``int`` ns since midnight ``'12:00:00.000000001'``
duration               ``(months, days, ns)``    ``1mo2d3h4m5s6ms7us8ns``, ``-3d``
inet                   ``IPv4/IPv6Address``      ``'10.0.0.1'``, ``'::1'``
list / set             ``list``                  ``[1, 2]`` / ``{1, 2}``
map                    ``list`` of pairs         ``{'a': 1}``
tuple                  ``list`` (None = null)    ``(1, null)``
user-defined type      ``list`` by field         ``{"street": 'x', "zip": null}``
=====================  ====================================================================

NULL (no value) and empty values are different: ``''``, ``0x``, ``[]`` and ``{}`` are values. A
zero-length value of a fixed-size type (legal on the wire, inexpressible as a CQL literal) decodes
to ``EMPTY``; the dump reports it and writes NULL.
"""

from __future__ import annotations

import ipaddress
import math
import re
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from cassandra.marshal import varint_pack, varint_unpack, vints_pack, vints_unpack
from cassandra.metadata import protect_name

NATIVE_TYPES = frozenset(
    {
        "ascii", "bigint", "blob", "boolean", "counter", "date", "decimal", "double", "duration", "float",
        "inet", "int", "smallint", "text", "time", "timestamp", "timeuuid", "tinyint", "uuid", "varint",
        "jsonb",
    }
)  # fmt: skip
ALIASES = {"varchar": "text"}
COLLECTIONS = ("list", "set", "map")
TEXT_TYPES = ("text", "ascii", "jsonb")
_INT_FORMATS = {"tinyint": ">b", "smallint": ">h", "int": ">i", "bigint": ">q", "counter": ">q"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Text forms only between 1600 and 9999: before the Gregorian reform Java's parsers may read dates
# in the Julian calendar, and years outside 4 digits do not parse; integers are exact everywhere.
_MIN_DATETIME_MS = -11676096000000  # 1600-01-01T00:00:00Z
_MAX_DATETIME_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_MIN_DATE_DAYS = (date(1600, 1, 1) - date(1970, 1, 1)).days
_MAX_DATE_DAYS = (date(9999, 12, 31) - date(1970, 1, 1)).days
NANOS_PER_DAY = 86_400_000_000_000


class UnsupportedType(ValueError):
    """A column type ybrewind cannot dump exactly (custom class, vector, unknown name...)."""


class LiteralError(ValueError):
    """A literal or CSV field that does not parse as the column's type."""


class _Empty:
    """A zero-length value of a fixed-size type."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()


# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CqlType:
    """A resolved CQL type; UDTs carry their field names and types."""

    name: str  # a NATIVE_TYPES name, or list / set / map / tuple / udt
    params: tuple[CqlType, ...] = ()
    frozen: bool = False
    udt: str = ""  # UDT name (unqualified)
    fields: tuple[str, ...] = ()  # UDT field names; params holds the field types

    @property
    def multi_cell(self) -> bool:
        """A non-frozen collection or UDT: element-wise cells (writetime() is not always allowed)."""
        return not self.frozen and (self.name in COLLECTIONS or self.name == "udt")

    def cql(self) -> str:
        if self.name in NATIVE_TYPES:
            return self.name
        if self.name in ("list", "set", "tuple", "map"):
            inner = f"{self.name}<{', '.join(p.cql() for p in self.params)}>"
        else:
            inner = protect_name(self.udt)
        return f"frozen<{inner}>" if self.frozen and self.name != "tuple" else inner


_TYPE_TOKEN = re.compile(r'\s*(?:(?P<q>"(?:[^"]|"")*")|(?P<w>[A-Za-z_][A-Za-z0-9_.$]*)|(?P<p>[<>,])|(?P<s>\'[^\']*\'))')


def parse_type(text: str, udts: Mapping[str, Sequence[tuple[str, str]]] | None = None, _depth: int = 0) -> CqlType:
    """Parse a type as system_schema writes it (``frozen<map<text, "My Type">>``).

    ``udts`` maps user type names of the keyspace to their ``(field, type text)`` lists.
    Raises ``UnsupportedType`` for anything ybrewind cannot encode exactly.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TYPE_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise UnsupportedType(f"unsupported type {text!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "s":
            raise UnsupportedType(f"unsupported custom type {text}")
        if kind == "q":
            value = value[1:-1].replace('""', '"')
        tokens.append((kind, value))
        pos = m.end()
    resolver = _TypeParser(tokens, udts or {}, text)
    result = resolver.parse(frozen=False, depth=_depth)
    if resolver.pos != len(tokens):
        raise UnsupportedType(f"unsupported type {text!r}")
    return result


class _TypeParser:
    def __init__(self, tokens: list[tuple[str, str]], udts: Mapping[str, Sequence[tuple[str, str]]], text: str):
        self.tokens = tokens
        self.udts = udts
        self.text = text
        self.pos = 0

    def _next(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise UnsupportedType(f"unsupported type {self.text!r}")
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _expect(self, punct: str) -> None:
        if self._next() != ("p", punct):
            raise UnsupportedType(f"unsupported type {self.text!r}")

    def _peek(self, punct: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos] == ("p", punct)

    def parse(self, frozen: bool, depth: int) -> CqlType:
        if depth > 32:
            raise UnsupportedType(f"type nested too deeply: {self.text}")
        kind, word = self._next()
        if kind == "p":
            raise UnsupportedType(f"unsupported type {self.text!r}")
        lower = word.lower() if kind == "w" else word
        if kind == "w" and lower == "frozen":
            self._expect("<")
            inner = self.parse(frozen=True, depth=depth + 1)
            self._expect(">")
            return inner
        if kind == "w" and lower in ("list", "set", "map", "tuple") and self._peek("<"):
            self._expect("<")
            params = [self.parse(frozen=True, depth=depth + 1)]
            while self._peek(","):
                self._expect(",")
                params.append(self.parse(frozen=True, depth=depth + 1))
            self._expect(">")
            want = {"list": 1, "set": 1, "map": 2}.get(lower)
            if want is not None and len(params) != want:
                raise UnsupportedType(f"unsupported type {self.text!r}")
            return CqlType(lower, tuple(params), frozen or lower == "tuple")
        if kind == "w":
            lower = ALIASES.get(lower, lower)
            if lower in NATIVE_TYPES and word == word.lower():
                if self._peek("<"):
                    raise UnsupportedType(f"unsupported type {self.text}")
                return CqlType(lower)
            if "." in word:
                raise UnsupportedType(f"unsupported type {self.text}")
        if self._peek("<"):
            raise UnsupportedType(f"unsupported type {self.text}")
        fields = self.udts.get(word)
        if fields is None:
            raise UnsupportedType(f"unsupported type {word} in {self.text}")
        if depth > 16:
            raise UnsupportedType(f"user type {word} nests too deeply")
        names = tuple(f for f, _ in fields)
        types = tuple(parse_type(t, self.udts, depth + 1) for _, t in fields)
        return CqlType("udt", types, frozen, word, names)


# ---------------------------------------------------------------------------------------------
# Wire codec
# ---------------------------------------------------------------------------------------------


def decode(t: CqlType, b: bytes | None) -> Any:
    """Wire bytes of one value (``None`` = NULL) -> Python value (see the module table)."""
    if b is None:
        return None
    k = t.name
    if k == "text" or k == "jsonb":
        return b.decode("utf-8")
    if k == "ascii":
        return b.decode("ascii", errors="surrogateescape")
    if k == "blob":
        return bytes(b)
    if not b:
        return EMPTY
    fmt = _INT_FORMATS.get(k)
    if fmt is not None:
        return struct.unpack(fmt, b)[0]
    if k in ("timestamp", "time"):
        return struct.unpack(">q", b)[0]
    if k == "varint":
        return varint_unpack(b)
    if k == "decimal":
        scale = struct.unpack(">i", b[:4])[0]
        unscaled = varint_unpack(b[4:])
        return Decimal((0 if unscaled >= 0 else 1, tuple(int(d) for d in str(abs(unscaled))), -scale))
    if k == "double":
        return struct.unpack(">d", b)[0]
    if k == "float":
        return struct.unpack(">f", b)[0]
    if k == "boolean":
        return b != b"\x00"
    if k in ("uuid", "timeuuid"):
        return uuid.UUID(bytes=bytes(b))
    if k == "inet":
        return ipaddress.ip_address(bytes(b))
    if k == "date":
        return struct.unpack(">I", b)[0] - 2**31
    if k == "duration":
        months, days, nanos = vints_unpack(b)
        return (months, days, nanos)
    if k in ("list", "set"):
        return [decode(t.params[0], item) for item in _unpack_items(b, 1)]
    if k == "map":
        items = _unpack_items(b, 2)
        return [(decode(t.params[0], a), decode(t.params[1], v)) for a, v in zip(items[::2], items[1::2], strict=True)]
    if k in ("tuple", "udt"):
        values: list[Any] = []
        pos = 0
        for ftype in t.params:
            if pos >= len(b):
                values.append(None)
                continue
            (size,) = struct.unpack_from(">i", b, pos)
            pos += 4
            if size < 0:
                values.append(None)
            else:
                values.append(decode(ftype, b[pos : pos + size]))
                pos += size
        return values
    raise UnsupportedType(f"unsupported type {t.cql()}")


def _unpack_items(b: bytes, per: int) -> list[bytes | None]:
    (count,) = struct.unpack_from(">i", b, 0)
    pos = 4
    out: list[bytes | None] = []
    for _ in range(count * per):
        (size,) = struct.unpack_from(">i", b, pos)
        pos += 4
        if size < 0:
            out.append(None)
        else:
            out.append(b[pos : pos + size])
            pos += size
    return out


def encode(t: CqlType, v: Any) -> bytes | None:
    """Python value -> wire bytes (``None`` -> NULL)."""
    if v is None:
        return None
    k = t.name
    if k in ("text", "jsonb"):
        return v.encode("utf-8")
    if k == "ascii":
        return v.encode("ascii", errors="surrogateescape")
    if k == "blob":
        return bytes(v)
    fmt = _INT_FORMATS.get(k)
    if fmt is not None:
        return struct.pack(fmt, v)
    if k in ("timestamp", "time"):
        return struct.pack(">q", v)
    if k == "varint":
        return varint_pack(v)
    if k == "decimal":
        sign, digits, exponent = v.as_tuple()
        if not isinstance(exponent, int):
            raise LiteralError(f"{v} is not a valid decimal")
        unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        return struct.pack(">i", -exponent) + varint_pack(unscaled)
    if k == "double":
        return struct.pack(">d", v)
    if k == "float":
        return struct.pack(">f", v)
    if k == "boolean":
        return b"\x01" if v else b"\x00"
    if k in ("uuid", "timeuuid"):
        return v.bytes
    if k == "inet":
        return v.packed
    if k == "date":
        return struct.pack(">I", v + 2**31)
    if k == "duration":
        return vints_pack(list(v))
    if k in ("list", "set"):
        return _pack_items([encode(t.params[0], item) for item in v])
    if k == "map":
        parts: list[bytes | None] = []
        for key, value in v:
            parts += [encode(t.params[0], key), encode(t.params[1], value)]
        return struct.pack(">i", len(v)) + b"".join(_packed(p) for p in parts)
    if k in ("tuple", "udt"):
        return b"".join(_packed(encode(ft, item)) for ft, item in zip(t.params, v, strict=False))
    raise UnsupportedType(f"unsupported type {t.cql()}")


def _packed(b: bytes | None) -> bytes:
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


def _pack_items(items: list[bytes | None]) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(_packed(i) for i in items)


# ---------------------------------------------------------------------------------------------
# Values -> literal text
# ---------------------------------------------------------------------------------------------


def quote_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """Always-quoted CQL identifier (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def float_text(v: float, single: bool) -> str:
    """Shortest decimal text that reads back to exactly ``v`` (as a 32-bit float when ``single``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if not single:
        return repr(v)
    packed = struct.pack(">f", v)
    for digits in range(1, 10):
        text = f"{v:.{digits}g}"
        try:
            if struct.pack(">f", float(text)) == packed:
                break
        except OverflowError:  # rounded up past the largest float
            continue
    if "e" not in text and "." not in text and "n" not in text:
        text += ".0"
    return text


def timestamp_text(ms: int) -> str:
    """'YYYY-MM-DD HH:MM:SS.mmm+0000' (UTC); integer milliseconds outside years 1600..9999."""
    if not _MIN_DATETIME_MS <= ms <= _MAX_DATETIME_MS:
        return str(ms)
    dt = _EPOCH + timedelta(milliseconds=ms)
    return f"{dt.year:04d}-{dt:%m-%d %H:%M:%S}.{dt.microsecond // 1000:03d}+0000"


def date_text(days: int) -> str:
    if not _MIN_DATE_DAYS <= days <= _MAX_DATE_DAYS:
        return str(days + 2**31)
    return (date(1970, 1, 1) + timedelta(days=days)).isoformat()


def time_text(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{sec:02d}.{nanos:09d}"


_NANO_UNITS = (("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000),
               ("us", 1_000), ("ns", 1))  # fmt: skip


def duration_text(value: tuple[int, int, int]) -> str:
    months, days, nanos = value
    negative = months < 0 or days < 0 or nanos < 0
    months, days, nanos = abs(months), abs(days), abs(nanos)
    parts = []
    if months:
        parts.append(f"{months}mo")
    if days:
        parts.append(f"{days}d")
    for unit, size in _NANO_UNITS:
        if nanos >= size:
            amount, nanos = divmod(nanos, size)
            parts.append(f"{amount}{unit}")
    text = "".join(parts) or "0s"
    return ("-" if negative else "") + text


def to_literal(t: CqlType, v: Any) -> str:
    """The exact CQL literal of ``v`` as a value of type ``t``."""
    if v is None:
        return "null"
    k = t.name
    if k in TEXT_TYPES:
        return quote_string(v)
    if k in _INT_FORMATS or k == "varint":
        return str(v)
    if k == "decimal":
        return str(v)
    if k in ("double", "float"):
        return float_text(v, k == "float")
    if k == "boolean":
        return "true" if v else "false"
    if k == "blob":
        return "0x" + v.hex()
    if k in ("uuid", "timeuuid"):
        return str(v)
    if k == "timestamp":
        text = timestamp_text(v)
        return text if text.lstrip("-").isdigit() else quote_string(text)
    if k == "date":
        return quote_string(date_text(v))
    if k == "time":
        return quote_string(time_text(v))
    if k == "duration":
        return duration_text(v)
    if k == "inet":
        return quote_string(str(v))
    if k == "list":
        return "[" + ", ".join(to_literal(t.params[0], i) for i in v) + "]"
    if k == "set":
        return "{" + ", ".join(to_literal(t.params[0], i) for i in v) + "}"
    if k == "map":
        return "{" + ", ".join(f"{to_literal(t.params[0], a)}: {to_literal(t.params[1], b)}" for a, b in v) + "}"
    if k == "tuple":
        return "(" + ", ".join(to_literal(p, i) for p, i in zip(t.params, v, strict=False)) + ")"
    if k == "udt":
        return "{" + ", ".join(
            f"{quote_ident(f)}: {to_literal(p, i)}" for f, p, i in zip(t.fields, t.params, v, strict=False)
        ) + "}"  # fmt: skip
    raise UnsupportedType(f"unsupported type {t.cql()}")


def to_csv(t: CqlType, v: Any) -> str | None:
    """A field for ``ycqlsh`` ``COPY FROM`` (``None`` for NULL): scalars bare, collections as literals."""
    if v is None:
        return None
    k = t.name
    if k in TEXT_TYPES:
        return v
    if k == "boolean":
        return "True" if v else "False"
    if k == "timestamp":
        return timestamp_text(v)
    if k == "date":
        return date_text(v)
    if k == "time":
        return time_text(v)
    if k == "inet":
        return str(v)
    return to_literal(t, v)


# ---------------------------------------------------------------------------------------------
# Literal text -> values
# ---------------------------------------------------------------------------------------------

_DURATION_UNIT = r"(?:y|mo|w|d|h|ms|us|µs|ns|m|s)"
TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|--[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<dollar>\$\$.*?\$\$)
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<hex>0[xX][0-9a-fA-F]*)
  | (?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
  | (?P<duration>(?:\d+"""
    + _DURATION_UNIT
    + r""")+(?![\w.]))
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_]*)
  | (?P<op><=|>=|!=|[(),;.=<>+\-*/\[\]{}:?])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL | re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # string, qident, hex, uuid, duration, float, int, ident, op, other
    text: str
    start: int

    @property
    def word(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""

    def value(self) -> str:
        """Unquoted content of strings and quoted identifiers; the text otherwise."""
        if self.kind == "string":
            return self.text[2:-2] if self.text.startswith("$$") else self.text[1:-1].replace("''", "'")
        if self.kind == "qident":
            return self.text[1:-1].replace('""', '"')
        return self.text


def tokenize(text: str) -> list[Token]:
    """CQL tokens of ``text`` (whitespace and comments dropped); stray characters are ``other`` tokens."""
    tokens: list[Token] = []
    pos = 0
    n = len(text)
    match = TOKEN_RE.match
    while pos < n:
        m = match(text, pos)
        if m is None:  # an unterminated string or identifier
            raise LiteralError(f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            if kind == "dollar":
                kind = "string"
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


class LiteralParser:
    """Reads typed literals from a token list, from position ``pos`` on."""

    def __init__(self, tokens: list[Token], pos: int = 0) -> None:
        self.tokens = tokens
        self.pos = pos

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise LiteralError("unexpected end of statement")
        self.pos += 1
        return tok

    def accept(self, op: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == op:
            self.pos += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            tok = self.peek()
            raise LiteralError(f"expected {op!r}, found {tok.text if tok else 'end of statement'!r}")

    def value(self, t: CqlType) -> Any:
        tok = self.peek()
        if tok is not None and tok.kind == "ident" and tok.word == "NULL":
            self.pos += 1
            return None
        k = t.name
        if k == "list":
            return self._items("[", "]", t.params[0])
        if k == "set":
            return self._items("{", "}", t.params[0])
        if k == "map":
            self.expect("{")
            pairs: list[tuple[Any, Any]] = []
            if not self.accept("}"):
                while True:
                    key = self.value(t.params[0])
                    self.expect(":")
                    pairs.append((key, self.value(t.params[1])))
                    if not self.accept(","):
                        break
                self.expect("}")
            return pairs
        if k == "tuple":
            items = self._items("(", ")", None, t.params)
            if len(items) > len(t.params):
                raise LiteralError(f"too many values for {t.cql()}")
            return items + [None] * (len(t.params) - len(items))
        if k == "udt":
            return self._udt(t)
        return self._scalar(t)

    def _items(self, opener: str, closer: str, item: CqlType | None, types: tuple[CqlType, ...] = ()) -> list[Any]:
        self.expect(opener)
        out: list[Any] = []
        if self.accept(closer):
            return out
        while True:
            if item is not None:
                out.append(self.value(item))
            else:
                if len(out) >= len(types):
                    raise LiteralError("too many values in tuple")
                out.append(self.value(types[len(out)]))
            if not self.accept(","):
                break
        self.expect(closer)
        return out

    def _udt(self, t: CqlType) -> list[Any]:
        self.expect("{")
        values: list[Any] = [None] * len(t.fields)
        if self.accept("}"):
            return values
        while True:
            tok = self.next()
            if tok.kind not in ("ident", "qident"):
                raise LiteralError(f"expected a field name of {t.udt}, found {tok.text!r}")
            name = tok.value() if tok.kind == "qident" else tok.text.lower()
            if name not in t.fields:
                raise LiteralError(f"unknown field {name!r} of type {t.udt}")
            self.expect(":")
            idx = t.fields.index(name)
            values[idx] = self.value(t.params[idx])
            if not self.accept(","):
                break
        self.expect("}")
        return values

    def _scalar(self, t: CqlType) -> Any:
        tok = self.next()
        negative = False
        if tok.kind == "op" and tok.text == "-":
            negative = True
            tok = self.next()
        try:
            return scalar_from_token(t, tok, negative)
        except (ValueError, ArithmeticError, struct.error) as e:
            if isinstance(e, LiteralError):
                raise
            raise LiteralError(f"invalid {t.cql()} literal {tok.text!r}") from None


def scalar_from_token(t: CqlType, tok: Token, negative: bool = False) -> Any:
    k = t.name
    kind = tok.kind
    sign = "-" if negative else ""

    def bad() -> LiteralError:
        return LiteralError(f"invalid {t.cql()} literal {sign}{tok.text!r}")

    if k in _INT_FORMATS or k == "varint":
        if kind != "int":
            raise bad()
        value = int(sign + tok.text)
        if k != "varint":
            struct.pack(_INT_FORMATS[k], value)  # range check
        return value
    if k in ("float", "double"):
        if kind in ("int", "float"):
            value = float(sign + tok.text)
        elif kind == "ident" and tok.word == "NAN":
            value = math.nan
        elif kind == "ident" and tok.word == "INFINITY":
            value = -math.inf if negative else math.inf
        else:
            raise bad()
        return struct.unpack(">f", struct.pack(">f", value))[0] if k == "float" else value
    if k == "decimal":
        if kind not in ("int", "float"):
            raise bad()
        try:
            return Decimal(sign + tok.text)
        except InvalidOperation:
            raise bad() from None
    if negative and k not in ("timestamp", "time", "duration"):
        raise bad()
    if k == "boolean":
        if kind != "ident" or tok.word not in ("TRUE", "FALSE"):
            raise bad()
        return tok.word == "TRUE"
    if k in TEXT_TYPES:
        if kind != "string":
            raise bad()
        return tok.value()
    if k == "blob":
        if kind != "hex" or len(tok.text) % 2:
            raise bad()
        return bytes.fromhex(tok.text[2:])
    if k in ("uuid", "timeuuid"):
        if kind != "uuid":
            raise bad()
        return uuid.UUID(tok.text)
    if k == "timestamp":
        if kind == "int":
            return int(sign + tok.text)
        if kind == "string" and not negative:
            return parse_timestamp(tok.value())
        raise bad()
    if k == "date":
        if kind == "int":
            return int(tok.text) - 2**31
        if kind == "string":
            return parse_date(tok.value())
        raise bad()
    if k == "time":
        if kind == "int" and not negative:
            return int(tok.text)
        if kind == "string" and not negative:
            return parse_time(tok.value())
        raise bad()
    if k == "duration":
        if kind in ("duration", "int", "string", "ident"):
            return parse_duration(sign + tok.value())
        raise bad()
    if k == "inet":
        if kind != "string":
            raise bad()
        return ipaddress.ip_address(tok.value())
    raise UnsupportedType(f"unsupported type {t.cql()}")


def parse_literal(t: CqlType, text: str) -> Any:
    """One complete literal of type ``t``."""
    tokens = tokenize(text)
    parser = LiteralParser(tokens)
    value = parser.value(t)
    if parser.pos != len(tokens):
        raise LiteralError(f"unexpected {tokens[parser.pos].text!r} after a {t.cql()} literal")
    return value


def parse_timestamp(text: str) -> int:
    """'2024-02-29 12:00:00.123+0000', ISO 8601 with T/Z, a date alone, or integer ms."""
    s = text.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    if len(s) > 10 and s[10] == " ":
        s = s[:10] + "T" + s[11:]
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise LiteralError(f"invalid timestamp {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def parse_date(text: str) -> int:
    s = text.strip()
    if s.isdigit():
        return int(s) - 2**31
    try:
        return (date.fromisoformat(s) - date(1970, 1, 1)).days
    except ValueError:
        raise LiteralError(f"invalid date {text!r}") from None


_TIME_RE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\Z")


def parse_time(text: str) -> int:
    s = text.strip()
    if s.isdigit():
        return int(s)
    m = _TIME_RE.match(s)
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3]) > 59:
        raise LiteralError(f"invalid time {text!r}")
    nanos = int((m[4] or "").ljust(9, "0"))
    return ((int(m[1]) * 60 + int(m[2])) * 60 + int(m[3])) * 1_000_000_000 + nanos


_DURATION_PART = re.compile(r"(\d+)(y|mo|w|d|h|ms|us|µs|ns|m|s)", re.IGNORECASE)
_UNIT_NANOS = {"h": 3_600_000_000_000, "m": 60_000_000_000, "s": 1_000_000_000, "ms": 1_000_000, "us": 1_000,
               "µs": 1_000, "ns": 1}  # fmt: skip
_ISO_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?\Z", re.I)
_ISO_WEEKS = re.compile(r"P(\d+)W\Z", re.I)


def parse_duration(text: str) -> tuple[int, int, int]:
    """'1mo2d3h', '-3d', 'P1Y2M3DT4H5M6S', 'P3W' -> (months, days, nanoseconds)."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("-")
    months = days = nanos = 0
    if s[:1].upper() == "P":
        weeks = _ISO_WEEKS.match(s)
        iso = _ISO_DURATION.match(s)
        if weeks:
            days = 7 * int(weeks[1])
        elif iso and s.upper() not in ("P", "PT"):
            y, mo, d, h, mi, sec = (int(g or 0) for g in iso.groups())
            months, days = 12 * y + mo, d
            nanos = h * _UNIT_NANOS["h"] + mi * _UNIT_NANOS["m"] + sec * _UNIT_NANOS["s"]
        else:
            raise LiteralError(f"invalid duration {text!r}")
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
            raise LiteralError(f"invalid duration {text!r}")
    return (sign * months, sign * days, sign * nanos)


def from_csv(t: CqlType, field: str | None) -> Any:
    """The inverse of ``to_csv`` (an empty or missing field is NULL, as for ``COPY FROM``)."""
    if field is None or field == "":
        return None
    k = t.name
    try:
        if k in TEXT_TYPES:
            return field
        if k == "boolean":
            lowered = field.strip().lower()
            if lowered not in ("true", "false"):
                raise LiteralError(f"invalid boolean {field!r}")
            return lowered == "true"
        if k == "timestamp":
            return parse_timestamp(field)
        if k == "date":
            return parse_date(field)
        if k == "time":
            return parse_time(field)
        if k == "inet":
            return ipaddress.ip_address(field.strip())
        if k == "duration":
            return parse_duration(field)
        return parse_literal(t, field)
    except (ValueError, ArithmeticError, struct.error) as e:
        if isinstance(e, LiteralError):
            raise
        raise LiteralError(f"invalid {t.cql()} value {field!r}") from None
