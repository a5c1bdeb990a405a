"""Unit tests of the CQL parser, literal conversion and storage helpers (no network)."""

from __future__ import annotations

import pytest

from tests.support.cqlsim import cql
from tests.support.cqlsim.datatypes import (
    CqlType,
    literal_value,
    native,
    parse_duration,
    parse_time,
    parse_timestamp,
    serialize,
)
from tests.support.cqlsim.errors import INVALID, SYNTAX_ERROR, CqlError
from tests.support.cqlsim.storage import partition_hash_of, routing_key, token_of


def test_tokenizer_kinds() -> None:
    tokens = cql.tokenize("SELECT \"A\"\"b\", 'it''s', 0xFF, -1.5e3, 1h30m, 123e4567-e89b-12d3-a456-426655440000, ?")
    kinds = [t.kind for t in tokens]
    assert kinds == ["ident", "qident", "op", "string", "op", "hex", "op", "op", "float", "op", "duration", "op",
                     "uuid", "op", "op", "eof"]


def test_parse_create_table() -> None:
    stmt = cql.parse(
        'CREATE TABLE IF NOT EXISTS ks."T" (k1 int, k2 text, c frozen<map<text, list<int>>>, s int static, '
        "PRIMARY KEY ((k1, k2), c)) WITH CLUSTERING ORDER BY (c DESC) AND comment = 'x' "
        "AND transactions = {'enabled': true};"
    ).statement
    assert isinstance(stmt, cql.CreateTable)
    assert (stmt.keyspace, stmt.name, stmt.if_not_exists) == ("ks", "T", True)
    assert stmt.partition_key == ["k1", "k2"] and stmt.clustering == ["c"]
    assert stmt.clustering_order == {"c": "desc"}
    assert stmt.columns[2].type.frozen and stmt.columns[3].static
    assert stmt.options["transactions"].value == {"enabled": "true"}
    assert stmt.options["comment"].text == "'x'"


def test_parse_update_assignments() -> None:
    stmt = cql.parse("UPDATE t USING TTL 5 AND TIMESTAMP ? SET c = c + 1, l = [1] + l, m[?] = ?, s = s - {'a'} "
                     "WHERE k = ?").statement
    assert isinstance(stmt, cql.Update)
    assert [(a.column, a.op) for a in stmt.assignments] == [("c", "add"), ("l", "prepend"), ("m", "set_elem"),
                                                           ("s", "sub")]
    assert isinstance(stmt.using.timestamp, cql.Marker) and stmt.using.timestamp.index == 0
    assert isinstance(stmt.where[0].value, cql.Marker) and stmt.where[0].value.index == 3


def test_parse_select() -> None:
    parsed = cql.parse("SELECT DISTINCT k, writetime(v) AS w, partition_hash(k) FROM t "
                       "WHERE partition_hash(k) >= ? AND token(k) < 5 AND c IN (1, 2) LIMIT 3 ALLOW FILTERING")
    stmt = parsed.statement
    assert isinstance(stmt, cql.Select) and stmt.distinct and stmt.allow_filtering
    assert stmt.selectors is not None
    assert [(s.kind, s.alias) for s in stmt.selectors] == [("column", None), ("writetime", "w"),
                                                           ("partition_hash", None)]
    assert [(r.function, r.op) for r in stmt.where] == [("partition_hash", ">="), ("token", "<"), (None, "IN")]
    assert parsed.marker_count == 1


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("ALTER TABLE t ADD x int", "'ALTER TABLE'"),
        ("CREATE MATERIALIZED VIEW v AS SELECT * FROM t", "'CREATE MATERIALIZED VIEW'"),
        ("CREATE FUNCTION f() RETURNS int", "'CREATE FUNCTION'"),
        ("LIST ROLES", "'LIST ROLES'"),
        ("SELECT JSON * FROM t", "SELECT JSON"),
        ("UPDATE t SET v = 1 WHERE k = 1 IF v = 2", "conditional UPDATE"),
        ("SELECT * FROM t WHERE k = 1 ORDER BY c DESC", "ORDER BY"),
        ("SELECT max(v) FROM t", "function max()"),
        ("INSERT INTO t (k, v) VALUES (1, now())", "function call now()"),
    ],
)
def test_unsupported_statements_are_named(query: str, named: str) -> None:
    with pytest.raises(CqlError) as info:
        cql.parse(query)
    assert info.value.code == SYNTAX_ERROR
    assert named in info.value.message


def test_syntax_error_message() -> None:
    with pytest.raises(CqlError) as info:
        cql.parse("SELECT * FROM")
    assert info.value.code == SYNTAX_ERROR and "expected an identifier" in info.value.message


def test_duration_time_timestamp_parsing() -> None:
    assert parse_duration("1y2mo3w4d5h6m7s8ms9us10ns") == (14, 25, ((5 * 60 + 6) * 60 + 7) * 10**9 + 8_009_010)
    assert parse_duration("PT1H") == (0, 0, 3600 * 10**9)
    assert parse_duration("P2W") == (0, 14, 0)
    assert parse_time("00:00:01.5") == 1_500_000_000
    assert parse_timestamp("1970-01-01T00:00:01.250+00:00") == 1250
    with pytest.raises(CqlError):
        parse_duration("5 hours")


def test_literal_conversion() -> None:
    udt = CqlType("udt", (native("text"), native("int")), False, "ks", "a", ("x", "y"))
    term = cql.parse("INSERT INTO t (k) VALUES ({y: 2})").statement.values[0]  # type: ignore[union-attr]
    assert literal_value(udt, term, lambda i: None) == (None, 2)
    set_type = CqlType("set", (native("int"),))
    term = cql.parse("INSERT INTO t (k) VALUES ({3, 1, 3})").statement.values[0]  # type: ignore[union-attr]
    assert literal_value(set_type, term, lambda i: None) == (1, 3)
    with pytest.raises(CqlError) as info:
        literal_value(native("smallint"), cql.Literal("int", "40000"), lambda i: None)
    assert info.value.code == INVALID


def test_token_and_partition_hash() -> None:
    int_type, text_type = native("int"), native("text")
    single = routing_key([int_type], (1,))
    assert single == serialize(int_type, 1)
    composite = routing_key([int_type, text_type], (1, "a"))
    assert composite == b"\x00\x04\x00\x00\x00\x01\x00" + b"\x00\x01a\x00"
    assert token_of(single) == -4069959284402364209  # Cassandra's token(1) for an int key
    assert partition_hash_of(-(2**63)) == 0 and partition_hash_of(2**63 - 1) == 65535
