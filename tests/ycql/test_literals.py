"""Exact literals by column type: bytes -> value -> literal text -> value -> the same bytes."""

from __future__ import annotations

import ipaddress
import math
import struct
import uuid
from decimal import Decimal

import pytest

from ybrewind.ycql.literals import (
    EMPTY,
    CqlType,
    LiteralError,
    UnsupportedType,
    decode,
    encode,
    float_text,
    from_csv,
    parse_literal,
    parse_type,
    to_csv,
    to_literal,
)

UDTS = {
    "phone": [("kind", "text"), ('Number; it\'s "quoted"', "text")],
    "Address": [("street", "text"), ("phones", "frozen<list<frozen<phone>>>")],
}

CASES: list[tuple[str, object, str]] = [
    ("text", "it's 'quoted'\nline", "'it''s ''quoted''\nline'"),
    ("text", "", "''"),
    ("text", "ünïcödé ✓ $$", "'ünïcödé ✓ $$'"),
    ("ascii", "plain", "'plain'"),
    ("jsonb", '{"a":[1,null]}', "'{\"a\":[1,null]}'"),
    ("bigint", -(2**63), "-9223372036854775808"),
    ("tinyint", 127, "127"),
    ("varint", -(10**40) + 7, str(-(10**40) + 7)),
    (
        "decimal",
        Decimal("3.14159265358979323846264338327950288419716939937510"),
        "3.14159265358979323846264338327950288419716939937510",
    ),
    ("decimal", Decimal("1.0E+3"), "1.0E+3"),
    ("decimal", Decimal("-1E-28"), "-1E-28"),
    ("decimal", Decimal("0.10"), "0.10"),
    ("double", 0.1, "0.1"),
    ("double", -0.0, "-0.0"),
    ("double", 1.7976931348623157e308, "1.7976931348623157e+308"),
    ("double", 5e-324, "5e-324"),
    ("float", struct.unpack(">f", struct.pack(">f", 0.1))[0], "0.1"),
    ("float", struct.unpack(">f", struct.pack(">f", 3.4028235e38))[0], "3.4028235e+38"),
    ("float", struct.unpack(">f", struct.pack(">f", 1.4e-45))[0], "1e-45"),
    ("float", 16777216.0, "16777216.0"),
    ("boolean", False, "false"),
    ("blob", b"", "0x"),
    ("blob", b"\x00\xca\xfe", "0x00cafe"),
    ("uuid", uuid.UUID("5b6962dd-3f90-4c93-8f61-eabfa4a803e2"), "5b6962dd-3f90-4c93-8f61-eabfa4a803e2"),
    ("timeuuid", uuid.UUID("50554d6e-29bb-11e5-b345-feff819cdc9f"), "50554d6e-29bb-11e5-b345-feff819cdc9f"),
    ("timestamp", 1709251199999, "'2024-02-29 23:59:59.999+0000'"),
    ("timestamp", -14182940000 + 1, "'1969-07-20 20:17:40.001+0000'"),
    ("timestamp", -62135596800000, "-62135596800000"),  # year 1: integer (calendar-safe)
    ("timestamp", 2**62, str(2**62)),
    ("date", 19782, "'2024-02-29'"),
    ("date", -25567, "'1900-01-01'"),
    ("date", -(2**31), "'0'"),
    ("time", 86399999999999, "'23:59:59.999999999'"),
    ("time", 0, "'00:00:00.000000000'"),
    (
        "duration",
        (1, 2, 3 * 3600 * 10**9 + 4 * 60 * 10**9 + 5 * 10**9 + 6 * 10**6 + 7 * 10**3 + 8),
        "1mo2d3h4m5s6ms7us8ns",
    ),
    ("duration", (0, -3, 0), "-3d"),
    ("duration", (0, 0, 0), "0s"),
    ("inet", ipaddress.ip_address("10.0.0.1"), "'10.0.0.1'"),
    ("inet", ipaddress.ip_address("2001:db8::ff00:42:8329"), "'2001:db8::ff00:42:8329'"),
    ("list<text>", ["b", "a", "a"], "['b', 'a', 'a']"),
    ("frozen<list<int>>", [], "[]"),
    ("set<int>", [1, 2, 3], "{1, 2, 3}"),
    ("frozen<set<text>>", [], "{}"),
    ("map<text, bigint>", [("x", 1), ("y", -2)], "{'x': 1, 'y': -2}"),
    (
        "frozen<map<text, frozen<list<frozen<set<int>>>>>>",
        [("one", [[1, 2], []]), ("two", [])],
        "{'one': [{1, 2}, {}], 'two': []}",
    ),
    ("map<blob, frozen<list<decimal>>>", [(b"", []), (b"\x00", [Decimal("1.5")])], "{0x: [], 0x00: [1.5]}"),
    ("frozen<tuple<int, text>>", [2, None], "(2, null)"),
    ("tuple<text, frozen<list<int>>>", ["x", [1, 2]], "('x', [1, 2])"),
    ("frozen<phone>", ["home", None], '{"kind": \'home\', "Number; it\'s ""quoted""": null}'),
    (
        'frozen<"Address">',
        ["1 Loop", [["mobile", "+1"]]],
        '{"street": \'1 Loop\', "phones": [{"kind": \'mobile\', "Number; it\'s ""quoted""": \'+1\'}]}',
    ),
]


@pytest.mark.parametrize(("type_text", "value", "literal"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_exact_round_trip(type_text: str, value: object, literal: str) -> None:
    t = parse_type(type_text, UDTS)
    wire = encode(t, value)
    assert decode(t, wire) == value or (isinstance(value, float) and math.isnan(value))
    assert to_literal(t, value) == literal
    parsed = parse_literal(t, literal)
    assert encode(t, parsed) == wire
    csv_field = to_csv(t, value)
    assert csv_field is not None
    if csv_field != "":
        assert encode(t, from_csv(t, csv_field)) == wire


def test_special_floats() -> None:
    for type_text in ("double", "float"):
        t = parse_type(type_text)
        assert to_literal(t, math.nan) == "NaN" and math.isnan(parse_literal(t, "NaN"))
        assert to_literal(t, math.inf) == "Infinity" and parse_literal(t, "Infinity") == math.inf
        assert to_literal(t, -math.inf) == "-Infinity" and parse_literal(t, "-Infinity") == -math.inf


def test_float32_text_is_shortest_exact() -> None:
    for bits in (0x3DCCCCCD, 0x00000001, 0x7F7FFFFF, 0x3F800001, 0xC2F6E979):
        v = struct.unpack(">I", struct.pack(">I", bits))[0]
        f = struct.unpack(">f", struct.pack(">I", v))[0]
        text = float_text(f, single=True)
        assert struct.pack(">f", float(text)) == struct.pack(">I", v), text
        assert len(text.replace("-", "").replace(".", "").split("e")[0]) <= 10


def test_null_and_empty_are_different() -> None:
    t = parse_type("int")
    assert decode(t, None) is None and to_literal(t, None) == "null"
    assert decode(t, b"") is EMPTY  # zero-length int: legal on the wire, no CQL literal
    assert decode(parse_type("text"), b"") == "" and decode(parse_type("blob"), b"") == b""
    assert to_csv(t, None) is None and from_csv(t, "") is None


def test_udt_missing_trailing_fields_read_as_null() -> None:
    t = parse_type("frozen<phone>", UDTS)
    wire = struct.pack(">i", 4) + b"home"  # a value written before the second field existed
    assert decode(t, wire) == ["home", None]


def test_parse_type_forms() -> None:
    t = parse_type('frozen<map<text, frozen<"Address">>>', UDTS)
    assert t.name == "map" and t.frozen and t.params[1].udt == "Address" and t.params[1].fields[0] == "street"
    assert parse_type("list<text>").multi_cell and not parse_type("frozen<list<text>>").multi_cell
    assert parse_type("varchar") == CqlType("text")
    assert parse_type("tuple<int, text>").frozen
    for bad in (
        "vector<float, 3>",
        "'org.apache.cassandra.db.marshal.DynamicCompositeType'",
        "unknown_udt",
        "map<int>",
        "frozen<list<int>",
    ):
        with pytest.raises(UnsupportedType):
            parse_type(bad, UDTS)


def test_bad_literals() -> None:
    for type_text, text in (
        ("int", "'1'"),
        ("int", "2147483648"),
        ("uuid", "'x'"),
        ("blob", "0xabc"),
        ("boolean", "1"),
        ("frozen<list<int>>", "[1, 2"),
        ("timestamp", "'yesterday'"),
        ("frozen<phone>", "{nope: 1}"),
        ("text", "'a' 'b'"),
    ):
        with pytest.raises(LiteralError):
            parse_literal(parse_type(text_type := type_text, UDTS), text)
        assert text_type


def test_csv_fields_match_cqlsh_forms() -> None:
    assert to_csv(parse_type("timestamp"), 1709251199999) == "2024-02-29 23:59:59.999+0000"
    assert to_csv(parse_type("boolean"), True) == "True"
    assert to_csv(parse_type("text"), "a,b") == "a,b"
    assert to_csv(parse_type("list<text>"), ["a", "it's"]) == "['a', 'it''s']"
    assert from_csv(parse_type("boolean"), "false") is False
    assert from_csv(parse_type("date"), "2024-02-29") == 19782
