"""Every CQL type: literal parsing, bind-marker decoding and wire encoding, through the real driver."""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.util import Date, Duration, Time

COLUMNS = """k int PRIMARY KEY, a ascii, t text, vc varchar, bi bigint, i int, si smallint, ti tinyint,
    vi varint, de decimal, f float, d double, b boolean, bl blob, u uuid, tu timeuuid, ts timestamp, dt date,
    tm time, du duration, ip inet, j jsonb, li list<int>, se set<text>, ma map<text, int>,
    fl frozen<list<frozen<set<int>>>>, tp tuple<int, text>, ud frozen<addr>, nm map<text, frozen<list<int>>>"""

UUID = uuid.UUID("123e4567-e89b-42d3-a456-426655440000")
TIMEUUID = uuid.UUID("d2177dd0-eaa2-11de-a572-001b779c76e3")

LITERALS = {
    "a": "'abc'", "t": "'héllo ''quoted'''", "vc": "'var'", "bi": "-9223372036854775808", "i": "2147483647",
    "si": "-32768", "ti": "127", "vi": "123456789012345678901234567890", "de": "3.14159", "f": "1.5",
    "d": "2.25e10", "b": "true", "bl": "0xcafe", "u": str(UUID), "tu": str(TIMEUUID),
    "ts": "'2020-01-02 03:04:05.678+0000'", "dt": "'2020-01-01'", "tm": "'12:34:56.123456789'",
    "du": "1h2m3s", "ip": "'::1'", "j": "'{\"b\": [1, 2], \"a\": null}'", "li": "[3, 1, 2]",
    "se": "{'b', 'a', 'b'}", "ma": "{'y': 2, 'x': 1}", "fl": "[{2, 1}, {}]", "tp": "(1, 'one')",
    "ud": "{street: 'Main', zip: 12345}", "nm": "{'k': [1, 2]}",
}

EXPECTED = {
    "a": "abc", "t": "héllo 'quoted'", "vc": "var", "bi": -(2**63), "i": 2**31 - 1, "si": -32768, "ti": 127,
    "vi": 123456789012345678901234567890, "de": Decimal("3.14159"), "f": 1.5, "d": 2.25e10, "b": True,
    "bl": b"\xca\xfe", "u": UUID, "tu": TIMEUUID, "ts": datetime(2020, 1, 2, 3, 4, 5, 678000),
    "dt": Date(date(2020, 1, 1)), "tm": Time(45296123456789), "du": Duration(0, 0, 3723 * 10**9), "ip": "::1",
    "j": '{"b":[1,2],"a":null}', "li": [3, 1, 2], "se": {"a", "b"}, "ma": {"x": 1, "y": 2},
    "fl": [{1, 2}, set()], "tp": (1, "one"), "ud": ("Main", 12345), "nm": {"k": [1, 2]},
}


def normalize(name: str, value: object) -> object:
    if value is None:
        return None
    if name in ("se",):
        return set(value)
    if name in ("ma", "nm"):
        return {k: list(v) if isinstance(v, list | tuple) else v for k, v in dict(value).items()}
    if name == "fl":
        return [set(s) for s in value]
    if name == "ud":
        return tuple(value)
    return value


@pytest.fixture
def types_table(session: Session, ks: str) -> str:
    session.execute("CREATE TYPE addr (street text, zip int)")
    session.execute(f"CREATE TABLE all_types ({COLUMNS})")
    return "all_types"


def check_row(session: Session, k: int) -> None:
    row = session.execute("SELECT * FROM all_types WHERE k = %s", [k]).one()
    for name, expected in EXPECTED.items():
        assert normalize(name, getattr(row, name)) == expected, name


def test_literal_round_trip(session: Session, types_table: str) -> None:
    names = ", ".join(LITERALS)
    values = ", ".join(LITERALS.values())
    session.execute(f"INSERT INTO all_types (k, {names}) VALUES (1, {values})")
    check_row(session, 1)
    result = session.execute("SELECT j, t, du FROM all_types WHERE k = 1")
    assert [t.typename for t in result.column_types] == ["jsonb", "varchar", "duration"]  # jsonb: code 0x0080


def test_prepared_round_trip(session: Session, types_table: str) -> None:
    addr = session.cluster.metadata.keyspaces[session.keyspace].user_types["addr"]
    assert addr is not None
    names = list(EXPECTED)
    insert = session.prepare(f"INSERT INTO all_types (k, {', '.join(names)}) VALUES (?, {', '.join('?' * len(names))})")
    params = dict(EXPECTED)
    params["ud"] = ("Main", 12345)  # the driver binds UDTs from tuples or registered classes
    params["ip"] = "::1"
    session.execute(insert, [2, *[params[n] for n in names]])
    check_row(session, 2)
    select = session.prepare("SELECT * FROM all_types WHERE k = ?")
    row = session.execute(select, [2]).one()
    assert row.ts == EXPECTED["ts"] and row.du == EXPECTED["du"]
    assert next(iter(select.result_metadata))[2] == "k"


def test_nulls_and_empty_collections(session: Session, types_table: str) -> None:
    session.execute("INSERT INTO all_types (k, t, li, se, ma, i) VALUES (3, null, [], {}, {}, null)")
    row = session.execute("SELECT * FROM all_types WHERE k = 3").one()
    assert row is not None  # INSERT keeps the row alive although every column is null
    assert all(getattr(row, n) is None for n in EXPECTED)


@pytest.mark.parametrize(
    ("literal", "check"),
    [
        ("NaN", math.isnan),
        ("Infinity", lambda v: v == math.inf),
        ("-Infinity", lambda v: v == -math.inf),
        ("-1.5E-3", lambda v: math.isclose(v, -1.5e-3, rel_tol=1e-6)),
        ("7", lambda v: v == 7.0),
    ],
)
def test_floating_point_literals(session: Session, ks: str, literal: str, check) -> None:
    session.execute("CREATE TABLE IF NOT EXISTS fp (k int PRIMARY KEY, f float, d double)")
    session.execute(f"INSERT INTO fp (k, f, d) VALUES (1, {literal}, {literal})")
    row = session.execute("SELECT f, d FROM fp WHERE k = 1").one()
    assert check(row.f) and check(row.d)


@pytest.mark.parametrize(
    ("column", "literal", "expected"),
    [
        ("ts", "1577836800123", datetime(2020, 1, 1, 0, 0, 0, 123000)),
        ("ts", "'2020-01-01T10:00:00Z'", datetime(2020, 1, 1, 10)),
        ("ts", "'2020-01-01 12:00:00+0200'", datetime(2020, 1, 1, 10)),
        ("ts", "'2020-01-01'", datetime(2020, 1, 1)),
        ("dt", "2147483648", Date(0)),
        ("dt", "'1969-12-31'", Date(-1)),
        ("tm", "'08:00:00'", Time(8 * 3600 * 10**9)),
        ("tm", "1000", Time(1000)),
        ("du", "P1Y2M3DT4H5M6S", Duration(14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9)),
        ("du", "-2d10ms", Duration(0, -2, -10**7)),
        ("du", "3w", Duration(0, 21, 0)),
        ("ip", "'10.1.2.3'", "10.1.2.3"),
        ("bl", "0x", b""),
    ],
)
def test_other_literal_forms(session: Session, types_table: str, column: str, literal: str, expected) -> None:
    session.execute(f"INSERT INTO all_types (k, {column}) VALUES (4, {literal})")
    assert getattr(session.execute(f"SELECT {column} FROM all_types WHERE k = 4").one(), column) == expected


@pytest.mark.parametrize(
    ("column", "literal", "message"),
    [
        ("i", "2147483648", "out of range"),
        ("i", "'1'", "Invalid STRING constant"),
        ("tu", str(UUID), "timeuuid"),
        ("j", "'{not json'", "Invalid jsonb"),
        ("ip", "'300.1.1.1'", "inet"),
        ("ud", "{nope: 1}", "Unknown field"),
        ("a", "'héllo'", "ASCII"),
    ],
)
def test_invalid_literals(session: Session, types_table: str, column: str, literal: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        session.execute(f"INSERT INTO all_types (k, {column}) VALUES (5, {literal})")


def test_quoted_identifiers_and_case(session: Session, ks: str) -> None:
    session.execute('CREATE TABLE "MixedCase" ("Key" int PRIMARY KEY, "Odd ""col""" text, plain int)')
    session.execute('INSERT INTO "MixedCase" ("Key", "Odd ""col""", PLAIN) VALUES (1, \'x\', 2)')
    row = session.execute('SELECT "Key", "Odd ""col""", Plain FROM "MixedCase"').one()
    assert tuple(row) == (1, "x", 2)
    with pytest.raises(InvalidRequest, match="unconfigured table mixedcase"):
        session.execute("SELECT * FROM MixedCase")


def test_null_fields_in_tuple_and_udt_literals(session: Session, ks: str) -> None:
    """Tuple and UDT fields may be null in literals (collection elements may not)."""
    session.execute("CREATE TYPE pt (x int, \"Y y\" text)")
    session.execute("CREATE TABLE nf (k int PRIMARY KEY, p frozen<pt>, t tuple<int, text>, l frozen<list<int>>)")
    session.execute("INSERT INTO nf (k, p, t) VALUES (1, {x: null, \"Y y\": 'a'}, (null, 'b'))")
    row = session.execute("SELECT p, t FROM nf WHERE k = 1").one()
    assert row.p.x is None and getattr(row.p, "Y y", None) in ("a", None)
    assert tuple(row.t) == (None, "b")
    with pytest.raises(InvalidRequest, match="null"):
        session.execute("INSERT INTO nf (k, l) VALUES (2, [1, null])")
