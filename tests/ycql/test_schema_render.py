"""YugabyteDB schema rendering, exactly as ycqlsh's DESC prints it (the driver's export_as_string).

The driver metadata is built here by hand - what the driver's schema parser makes of YugabyteDB's
system_schema rows - so these tests need no server.
"""

from __future__ import annotations

from collections import OrderedDict

from cassandra.metadata import ColumnMetadata, IndexMetadata, KeyspaceMetadata, TableMetadataV3, UserType

from ybrewind.ycql import schema as sch


def _table(
    ks: KeyspaceMetadata, name: str, columns: list[tuple[str, str, str]], options: dict, reversed_: tuple[str, ...] = ()
) -> TableMetadataV3:
    table = TableMetadataV3(ks.name, name, options=options)
    for col, cql_type, kind in columns:
        meta = ColumnMetadata(table, col, cql_type, is_static=kind == "static", is_reversed=col in reversed_)
        table.columns[col] = meta
        if kind == "pk":
            table.partition_key.append(meta)
        elif kind == "ck":
            table.clustering_key.append(meta)
    ks._add_table_metadata(table)
    return table


def _index(
    table: TableMetadataV3,
    name: str,
    options: dict,
    transactions: dict | None,
    *,
    unique: bool = False,
    tablets: int | None = None,
    hash_cols: tuple[str, ...] = (),
    range_cols: tuple[tuple[str, bool], ...] = (),
) -> None:
    index = IndexMetadata(table.keyspace_name, table.name, name, "COMPOSITES", unique, options, transactions, tablets)
    for col in hash_cols:
        index.partition_key.append(table.columns[col])
    for col, rev in range_cols:
        meta = ColumnMetadata(table, col, table.columns[col].cql_type, is_reversed=rev)
        index.clustering_key.append(meta)
    table.indexes[name] = index


def yugabyte_keyspace() -> KeyspaceMetadata:
    ks = KeyspaceMetadata("shop", True, "org.apache.cassandra.locator.SimpleStrategy", {"replication_factor": "3"})
    ks.user_types["address"] = UserType(
        "shop", "address", ["street", "phones"], ["text", "frozen<list<frozen<phone>>>"]
    )
    ks.user_types["phone"] = UserType("shop", "phone", ["kind", "Number"], ["text", "text"])
    audit = _table(
        ks,
        "Audit Log",
        [("id", "uuid", "pk"), ("actor", "text", "r")],
        OrderedDict(comment=None, default_time_to_live=86400, transactions={"enabled": "false"}, tablets=None),
    )
    _index(
        audit,
        "audit_by_actor",
        {"target": "actor"},
        {"consistency_level": "user_enforced", "enabled": "false"},
        hash_cols=("actor",),
        range_cols=(("id", False),),
    )
    yb_options = OrderedDict(comment=None, default_time_to_live=0, transactions={"enabled": "true"}, tablets=4)
    orders = _table(
        ks,
        "orders",
        [
            ("customer", "int", "pk"),
            ("placed", "timestamp", "ck"),
            ("doc", "jsonb", "r"),
            ("ship_to", "frozen<address>", "r"),
            ("status", "text", "r"),
            ("total", "decimal", "r"),
        ],
        yb_options,
        reversed_=("placed",),
    )
    _index(
        orders,
        "orders_by_status",
        {"target": "status, placed", "include": "total"},
        {"enabled": "true"},
        unique=True,
        hash_cols=("status",),
        range_cols=(("placed", True), ("customer", False)),
    )
    _index(
        orders,
        "orders_open",
        {"target": "(customer, total)", "predicate": "status = 'open'"},
        {"enabled": "true"},
        tablets=2,
        hash_cols=("customer", "total"),
        range_cols=(("placed", False),),
    )
    return ks


EXPECTED = """CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '3'}  AND durable_writes = true;

CREATE TYPE shop.phone (
    kind text,
    "Number" text
);

CREATE TYPE shop.address (
    street text,
    phones frozen<list<frozen<phone>>>
);

CREATE TABLE shop."Audit Log" (
    id uuid PRIMARY KEY,
    actor text
) WITH default_time_to_live = 86400
    AND transactions = {'enabled': 'false'};
CREATE INDEX audit_by_actor ON shop."Audit Log" (actor)
    WITH CLUSTERING ORDER BY (id ASC)
    AND transactions = {'consistency_level': 'user_enforced', 'enabled': 'false'};

CREATE TABLE shop.orders (
    customer int,
    placed timestamp,
    doc jsonb,
    ship_to frozen<address>,
    status text,
    total decimal,
    PRIMARY KEY (customer, placed)
) WITH CLUSTERING ORDER BY (placed DESC)
    AND default_time_to_live = 0
    AND tablets = 4
    AND transactions = {'enabled': 'true'};
CREATE UNIQUE INDEX orders_by_status ON shop.orders (status, placed) INCLUDE (total)
    WITH CLUSTERING ORDER BY (placed DESC, customer ASC)
    AND transactions = {'enabled': 'true'};
CREATE INDEX orders_open ON shop.orders ((customer, total))
    WITH CLUSTERING ORDER BY (placed ASC)
    AND tablets = 2
    AND transactions = {'enabled': 'true'}
    WHERE status = 'open';"""


def test_yugabyte_schema_renders_as_desc_keyspace() -> None:
    ks = yugabyte_keyspace()
    model = sch.from_metadata(ks)
    assert sch.describe(model) == EXPECTED
    # The driver (= ycqlsh DESC) prints the same text, except that it puts a partial index's WHERE
    # before WITH; YugabyteDB's documented grammar is [INCLUDE] [WITH ...] [WHERE ...]
    # (docs: api/ycql/ddl_create_index.md, Grammar), which ybrewind follows.
    desc = EXPECTED.replace(
        "((customer, total))\n    WITH CLUSTERING ORDER BY (placed ASC)\n    AND tablets = 2\n"
        "    AND transactions = {'enabled': 'true'}\n    WHERE status = 'open';",
        "((customer, total)) WHERE status = 'open'\n    WITH CLUSTERING ORDER BY (placed ASC)\n    AND tablets = 2\n"
        "    AND transactions = {'enabled': 'true'};",
    )
    assert desc != EXPECTED and ks.export_as_string() == desc


def test_model_survives_the_manifest_and_renames() -> None:
    model = sch.from_metadata(yugabyte_keyspace())
    again = sch.KeyspaceDef.from_json(model.to_json())
    assert sch.describe(again) == EXPECTED
    renamed = sch.describe(again, "Shop Copy")
    assert renamed.startswith('CREATE KEYSPACE "Shop Copy" WITH')
    assert 'CREATE TABLE "Shop Copy".orders (' in renamed and 'ON "Shop Copy"."Audit Log" (actor)' in renamed
    script = sch.render(again)
    assert [s.split(" ON ")[0] for s in script.indexes] == [
        "CREATE INDEX audit_by_actor",
        "CREATE UNIQUE INDEX orders_by_status",
        "CREATE INDEX orders_open",
    ]
    assert script.text() == EXPECTED + "\n"


def test_types_come_in_dependency_order() -> None:
    ks = KeyspaceMetadata("k", True, "SimpleStrategy", {"replication_factor": "1"})
    ks.user_types["a"] = UserType("k", "a", ["x"], ["frozen<c>"])
    ks.user_types["b"] = UserType("k", "b", ["y"], ["int"])
    ks.user_types["c"] = UserType("k", "c", ["z"], ["frozen<list<frozen<b>>>"])
    assert [t.name for t in sch.from_metadata(ks).types] == ["b", "c", "a"]


def test_cassandra_index_without_properties_and_option_quoting() -> None:
    ks = KeyspaceMetadata("k", False, "NetworkTopologyStrategy", {"dc1": "3", "dc2": "1"})
    table = _table(
        ks,
        "t",
        [("k", "int", "pk"), ("c", "int", "ck"), ("s", "text", "static"), ("v", "text", "r")],
        OrderedDict(comment="it's", caching={"keys": "ALL"}, gc_grace_seconds=3600, speculative_retry="99p"),
    )
    _index(table, "t_v", {"target": "v"}, None)
    text = sch.describe(sch.from_metadata(ks))
    assert (
        "CREATE KEYSPACE k WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': '3', 'dc2': '1'}"
        "  AND durable_writes = false;" in text
    )
    assert "    s text static,\n" in text
    assert (
        ") WITH CLUSTERING ORDER BY (c ASC)\n    AND caching = {'keys': 'ALL'}\n    AND comment = 'it''s'\n"
        "    AND gc_grace_seconds = 3600\n    AND speculative_retry = '99p';" in text
    )
    assert text.endswith("CREATE INDEX t_v ON k.t (v);")  # the driver would print a dangling "WITH "


def test_unsupported_types_are_named() -> None:
    import pytest

    from ybrewind.errors import DatabaseError

    ks = KeyspaceMetadata("k", True, "SimpleStrategy", {"replication_factor": "1"})
    _table(ks, "emb", [("k", "int", "pk"), ("v", "vector<float, 3>", "r")], {})
    with pytest.raises(DatabaseError, match=r"k\.emb\.v has type vector<float, 3>"):
        sch.check_types(sch.from_metadata(ks))
