"""Schema statements and the driver's metadata model built from the simulated system_schema tables."""

from __future__ import annotations

import pytest
from cassandra import AlreadyExists, InvalidRequest
from cassandra.cluster import Session

from tests.support.cqlsim import start_in_thread

from .conftest import make_cluster


def test_table_columns_kinds_and_order(session: Session, ks: str) -> None:
    session.execute(
        'CREATE TABLE t (k1 int, "K2" text, c1 timestamp, c2 int, s int STATIC, v text, "Weird ""name""" int, '
        "PRIMARY KEY ((k1, \"K2\"), c1, c2)) WITH CLUSTERING ORDER BY (c1 DESC, c2 ASC)"
    )
    table = session.cluster.metadata.keyspaces[ks].tables["t"]
    assert [c.name for c in table.partition_key] == ["k1", "K2"]
    assert [c.name for c in table.clustering_key] == ["c1", "c2"]
    assert table.columns["c1"].is_reversed and not table.columns["c2"].is_reversed
    assert table.columns["s"].is_static and not table.columns["v"].is_static
    assert table.columns['Weird "name"'].cql_type == "int"
    assert table.columns["c1"].cql_type == "timestamp"
    cql = table.export_as_string()
    assert 'PRIMARY KEY ((k1, "K2"), c1, c2)' in cql
    assert "CLUSTERING ORDER BY (c1 DESC, c2 ASC)" in cql


def test_table_options(session: Session, ks: str) -> None:
    session.execute(
        "CREATE TABLE t (k int PRIMARY KEY, v text) WITH default_time_to_live = 100 "
        "AND transactions = {'enabled': 'true'} AND tablets = 4 AND comment = 'hello' AND bogus_option = 'x y'"
    )
    table = session.cluster.metadata.keyspaces[ks].tables["t"]
    assert table.options["default_time_to_live"] == 100
    assert table.options["transactions"] == {"enabled": "true"}
    assert table.options["tablets"] == 4
    assert table.options["comment"] == "hello"
    assert table.extensions == {"bogus_option": b"'x y'"}
    row = session.execute(
        "SELECT * FROM system_schema.tables WHERE keyspace_name = %s AND table_name = 't'", [ks]).one()
    assert row.flags == {"compound"} and row.default_time_to_live == 100


def test_keyspace_metadata_and_errors(session: Session) -> None:
    session.execute("CREATE KEYSPACE IF NOT EXISTS meta_ks WITH replication = "
                    "{'class': 'NetworkTopologyStrategy', 'dc1': '3'} AND durable_writes = false")
    session.execute("CREATE KEYSPACE IF NOT EXISTS meta_ks WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")  # no-op
    meta = session.cluster.metadata.keyspaces["meta_ks"]
    assert meta.durable_writes is False
    assert meta.replication_strategy.export_for_schema() == "{'class': 'NetworkTopologyStrategy', 'dc1': '3'}"
    with pytest.raises(AlreadyExists):
        session.execute("CREATE KEYSPACE meta_ks WITH replication = {'class': 'SimpleStrategy', "
                        "'replication_factor': 1}")
    session.execute("CREATE TABLE meta_ks.t (k int PRIMARY KEY)")
    with pytest.raises(AlreadyExists):
        session.execute("CREATE TABLE meta_ks.t (k int PRIMARY KEY)")
    session.execute("CREATE TABLE IF NOT EXISTS meta_ks.t (k int PRIMARY KEY)")
    with pytest.raises(InvalidRequest, match="Cannot delete keyspace which has table: t"):
        session.execute("DROP KEYSPACE meta_ks")  # as YugabyteDB does
    session.execute("DROP TABLE meta_ks.t")
    session.execute("DROP TABLE IF EXISTS meta_ks.t")
    with pytest.raises(InvalidRequest):
        session.execute("DROP TABLE meta_ks.t")
    session.execute("DROP KEYSPACE meta_ks")
    session.execute("DROP KEYSPACE IF EXISTS meta_ks")
    assert "meta_ks" not in session.cluster.metadata.keyspaces


def test_user_types(session: Session, ks: str) -> None:
    session.execute("CREATE TYPE IF NOT EXISTS phone (kind text, number text)")
    session.execute("CREATE TYPE address (street text, zip int, phones frozen<list<frozen<phone>>>)")
    session.execute("CREATE TABLE people (id uuid PRIMARY KEY, home frozen<address>)")
    types = session.cluster.metadata.keyspaces[ks].user_types
    assert types["address"].field_names == ["street", "zip", "phones"]
    assert types["address"].field_types == ["text", "int", "frozen<list<frozen<phone>>>"]
    assert session.cluster.metadata.keyspaces[ks].tables["people"].columns["home"].cql_type == "frozen<address>"
    with pytest.raises(InvalidRequest, match="still used"):
        session.execute("DROP TYPE phone")
    session.execute("DROP TABLE people")
    session.execute("DROP TYPE address")
    session.execute("DROP TYPE phone")
    session.execute("DROP TYPE IF EXISTS phone")
    assert session.cluster.metadata.keyspaces[ks].user_types == {}


def test_yugabyte_indexes(session: Session, ks: str) -> None:
    session.execute("CREATE TABLE t (k int, c int, a text, b int, x text, PRIMARY KEY (k, c)) "
                    "WITH transactions = {'enabled': 'true'}")
    session.execute("CREATE UNIQUE INDEX IF NOT EXISTS by_a ON t (a) INCLUDE (x)")
    session.execute("CREATE INDEX by_ab ON t ((a, b), c) WHERE b > 0 WITH transactions = {'enabled': 'true'}")
    session.execute("CREATE TABLE plain (k int PRIMARY KEY, v int)")
    with pytest.raises(InvalidRequest, match="Transactions must be enabled"):
        session.execute("CREATE INDEX plain_v ON plain (v)")
    session.execute("CREATE INDEX plain_v ON plain (v) WITH transactions = "
                    "{'enabled': 'false', 'consistency_level': 'user_enforced'}")
    session.cluster.refresh_schema_metadata()
    table = session.cluster.metadata.keyspaces[ks].tables["t"]
    by_a = table.indexes["by_a"]
    assert by_a.is_unique is True
    assert by_a.index_options == {"target": "a", "include": "x"}
    assert [c.name for c in by_a.partition_key] == ["a"]
    assert [c.name for c in by_a.clustering_key] == ["k", "c"]
    assert by_a.transactions_options == {"enabled": "true"}
    by_ab = table.indexes["by_ab"]
    assert by_ab.index_options == {"target": "(a, b), c", "predicate": "b > 0"}
    assert by_ab.as_cql_query().startswith(f"CREATE INDEX by_ab ON {ks}.t ((a, b), c) WHERE b > 0")
    plain = session.cluster.metadata.keyspaces[ks].tables["plain"].indexes["plain_v"]
    assert plain.transactions_options == {"enabled": "false", "consistency_level": "user_enforced"}
    session.execute("DROP INDEX by_ab")
    session.execute("DROP INDEX IF EXISTS by_ab")
    assert "by_ab" not in session.cluster.metadata.keyspaces[ks].tables["t"].indexes


def test_cassandra_metadata() -> None:
    with start_in_thread(cassandra=True) as sim:
        cluster = make_cluster(sim)
        try:
            session = cluster.connect()
            session.execute("CREATE KEYSPACE c WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
            session.execute("CREATE TABLE c.t (k int, c int, v text, PRIMARY KEY (k, c)) "
                            "WITH CLUSTERING ORDER BY (c DESC) AND gc_grace_seconds = 3600 AND comment = 'x'")
            session.execute("CREATE INDEX t_v ON c.t (v)")
            cluster.refresh_schema_metadata()
            table = cluster.metadata.keyspaces["c"].tables["t"]
            assert table.options["gc_grace_seconds"] == 3600
            assert table.options["comment"] == "x"
            assert table.options["compaction"]["class"].endswith("SizeTieredCompactionStrategy")
            assert table.indexes["t_v"].index_options == {"target": "v"}
            assert table.clustering_key[0].is_reversed
            assert "system_schema" in cluster.metadata.keyspaces
        finally:
            cluster.shutdown()


def test_schema_changes_reach_other_clusters(sim, session: Session, ks: str) -> None:
    """A second driver instance sees schema made by the first (schema_version + events)."""
    other = make_cluster(sim)
    try:
        other.connect()
        session.execute("CREATE TABLE later (k int PRIMARY KEY)")
        other.refresh_schema_metadata()
        assert "later" in other.metadata.keyspaces[ks].tables
    finally:
        other.shutdown()


def test_index_clustering_order_round_trips_through_desc(session: Session, ks: str) -> None:
    """CREATE INDEX ... WITH CLUSTERING ORDER BY, as ycqlsh DESC prints it, runs and reads back the same."""
    session.execute("CREATE TABLE t (k int, c int, a text, b int, PRIMARY KEY (k, c)) "
                    "WITH transactions = {'enabled': 'true'}")
    session.execute("CREATE INDEX by_ab ON t (a, b) WITH CLUSTERING ORDER BY (b DESC, k ASC) "
                    "AND transactions = {'enabled': 'true'}")
    with pytest.raises(InvalidRequest, match="CLUSTERING ORDER BY"):
        session.execute("CREATE INDEX bad ON t (a) WITH CLUSTERING ORDER BY (b DESC)")
    session.cluster.refresh_schema_metadata()
    index = session.cluster.metadata.keyspaces[ks].tables["t"].indexes["by_ab"]
    assert [(c.name, c.is_reversed) for c in index.clustering_key] == [("b", True), ("k", False), ("c", False)]
    text = index.as_cql_query()
    assert "WITH CLUSTERING ORDER BY (b DESC, k ASC, c ASC)" in text
    session.execute("DROP INDEX by_ab")
    session.execute(text)  # DESC output is runnable
    session.cluster.refresh_schema_metadata()
    again = session.cluster.metadata.keyspaces[ks].tables["t"].indexes["by_ab"]
    assert again.as_cql_query() == text


def test_system_schema_reflects_each_change_immediately(session: Session, ks: str) -> None:
    """System tables are cached per schema version: every change must invalidate them."""
    query = "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s"
    before = {r.table_name for r in session.execute(query, [ks])}
    session.execute("CREATE TABLE cache_probe (k int PRIMARY KEY)")
    assert {r.table_name for r in session.execute(query, [ks])} == before | {"cache_probe"}
    session.execute("DROP TABLE cache_probe")
    assert {r.table_name for r in session.execute(query, [ks])} == before
