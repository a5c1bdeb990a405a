"""Virtual system tables: system.local/peers and the system_schema tables the driver reads for metadata.

Each system table is declared with CREATE TABLE text (parsed by cqlsim's own parser) and its rows are
computed from the catalog on every query, then loaded into a throw-away ``Table`` so that the normal
SELECT path (WHERE, column selection, paging) serves them.

Presentation differences (the product's YB-vs-Cassandra detection signal):

* YugabyteDB YCQL (default): ``release_version = '3.9-SNAPSHOT'``, table ``system.partitions`` exists
  (one row per table/index), ``partition_hash()`` and the ``jsonb`` type exist, system_schema.tables
  has ``transactions``/``tablets`` columns and system_schema.indexes has ``is_unique``/``transactions``/
  ``tablets`` plus system_schema.columns rows describing each index table (as real YB reports).
* Apache Cassandra (``--cassandra``): ``release_version = '4.0.11'``, no ``system.partitions`` (querying
  it fails with 0x2200 "unconfigured table partitions"), ``system.peers_v2`` and the (empty)
  ``system_virtual_schema`` tables exist, Cassandra 4.0 table options are reported.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any

from . import cql
from .datatypes import CqlType, canonical_map, canonical_set, quote_name
from .storage import (
    CASSANDRA_TABLE_OPTIONS,
    YB_TABLE_OPTIONS,
    Catalog,
    Cell,
    Index,
    Keyspace,
    Table,
    build_table,
)

YB_RELEASE_VERSION = "3.9-SNAPSHOT"
CASSANDRA_RELEASE_VERSION = "4.0.11"
PARTITIONER = "org.apache.cassandra.dht.Murmur3Partitioner"
HOST_ID = uuid.UUID("5c1e3d4a-0000-4000-8000-00000000c0de")
LOCAL_STRATEGY = {"class": "org.apache.cassandra.locator.LocalStrategy"}

_OPTION_TYPES = {
    "additional_write_policy": "text",
    "bloom_filter_fp_chance": "double",
    "caching": "frozen<map<text, text>>",
    "cdc": "boolean",
    "comment": "text",
    "compaction": "frozen<map<text, text>>",
    "compression": "frozen<map<text, text>>",
    "crc_check_chance": "double",
    "default_time_to_live": "int",
    "gc_grace_seconds": "int",
    "max_index_interval": "int",
    "memtable_flush_period_in_ms": "int",
    "min_index_interval": "int",
    "read_repair": "text",
    "speculative_retry": "text",
    "transactions": "frozen<map<text, text>>",
    "tablets": "int",
}

_COLUMNS_DDL = """(keyspace_name text, table_name text, column_name text, clustering_order text,
    column_name_bytes blob, kind text, position int, type text,
    PRIMARY KEY ((keyspace_name), table_name, column_name))"""


def _ddl(cassandra: bool) -> dict[str, list[str]]:
    options = CASSANDRA_TABLE_OPTIONS if cassandra else YB_TABLE_OPTIONS
    option_columns = ", ".join(f"{name} {_OPTION_TYPES[name]}" for name in options)
    index_extra = "" if cassandra else ", table_id uuid, index_id uuid, transactions frozen<map<text, text>>, " \
        "is_unique boolean, tablets int"
    system = [
        """CREATE TABLE local (key text PRIMARY KEY, bootstrapped text, broadcast_address inet,
            cluster_name text, cql_version text, data_center text, gossip_generation int, host_id uuid,
            listen_address inet, native_protocol_version text, partitioner text, rack text,
            release_version text, rpc_address inet, rpc_port int, schema_version uuid, tokens set<text>)""",
        """CREATE TABLE peers (peer inet PRIMARY KEY, data_center text, host_id uuid, preferred_ip inet,
            rack text, release_version text, rpc_address inet, schema_version uuid, tokens set<text>)""",
    ]
    if cassandra:
        system.append(
            """CREATE TABLE peers_v2 (peer inet, peer_port int, data_center text, host_id uuid,
            native_address inet, native_port int, preferred_ip inet, preferred_port int, rack text,
            release_version text, schema_version uuid, tokens set<text>, PRIMARY KEY ((peer), peer_port))"""
        )
    else:
        system.append(
            """CREATE TABLE partitions (keyspace_name text, table_name text, start_key blob, end_key blob,
            id uuid, replica_addresses frozen<map<inet, text>>,
            PRIMARY KEY ((keyspace_name), table_name, start_key))"""
        )
    schema = [
        """CREATE TABLE keyspaces (keyspace_name text PRIMARY KEY, durable_writes boolean,
            replication frozen<map<text, text>>)""",
        f"""CREATE TABLE tables (keyspace_name text, table_name text, {option_columns},
            extensions frozen<map<text, blob>>, flags frozen<set<text>>, id uuid,
            PRIMARY KEY ((keyspace_name), table_name))""",
        "CREATE TABLE columns " + _COLUMNS_DDL,
        """CREATE TABLE types (keyspace_name text, type_name text, field_names frozen<list<text>>,
            field_types frozen<list<text>>, PRIMARY KEY ((keyspace_name), type_name))""",
        f"""CREATE TABLE indexes (keyspace_name text, table_name text, index_name text, kind text,
            options frozen<map<text, text>>{index_extra}, PRIMARY KEY ((keyspace_name), table_name, index_name))""",
        """CREATE TABLE views (keyspace_name text, view_name text, base_table_id uuid, base_table_name text,
            id uuid, include_all_columns boolean, where_clause text, PRIMARY KEY ((keyspace_name), view_name))""",
        """CREATE TABLE functions (keyspace_name text, function_name text, argument_types frozen<list<text>>,
            argument_names frozen<list<text>>, body text, called_on_null_input boolean, language text,
            return_type text, PRIMARY KEY ((keyspace_name), function_name, argument_types))""",
        """CREATE TABLE aggregates (keyspace_name text, aggregate_name text, argument_types frozen<list<text>>,
            final_func text, initcond text, return_type text, state_func text, state_type text,
            PRIMARY KEY ((keyspace_name), aggregate_name, argument_types))""",
        """CREATE TABLE triggers (keyspace_name text, table_name text, trigger_name text,
            options frozen<map<text, text>>, PRIMARY KEY ((keyspace_name), table_name, trigger_name))""",
    ]
    ddl = {"system": system, "system_schema": schema}
    if cassandra:
        ddl["system_virtual_schema"] = [
            "CREATE TABLE keyspaces (keyspace_name text PRIMARY KEY)",
            """CREATE TABLE tables (keyspace_name text, table_name text, comment text,
                PRIMARY KEY ((keyspace_name), table_name))""",
            "CREATE TABLE columns " + _COLUMNS_DDL,
        ]
    return ddl


VIRTUAL_KEYSPACES = ("system_virtual_schema",)


def install(catalog: Catalog, cassandra: bool) -> None:
    """Create the system keyspaces (schema only; rows are computed per query)."""
    for ks_name, statements in _ddl(cassandra).items():
        ks = Keyspace(ks_name, dict(LOCAL_STRATEGY), True, system=True)
        catalog.keyspaces[ks_name] = ks
        for text in statements:
            stmt = cql.parse(text).statement
            assert isinstance(stmt, cql.CreateTable)
            ks.tables[stmt.name] = build_table(stmt, ks_name, catalog, cassandra, system=True)


@dataclass
class SystemContext:
    catalog: Catalog
    cassandra: bool
    address: str  # the address the client connected to (reported as rpc_address)
    port: int


def materialize(schema: Table, ctx: SystemContext) -> Table:
    """A fresh Table with the same columns, filled with the current rows of system table ``schema``."""
    table = Table(schema.keyspace, schema.name, schema.columns, schema.options, schema.extensions)
    producer = _PRODUCERS.get((schema.keyspace, schema.name))
    for values in producer(ctx) if producer else []:
        key = tuple(_internal(c.type, values.get(c.name)) for c in table.partition_key)
        part = table.partition(key, create=True)
        assert part is not None
        row = part.row(tuple(_internal(c.type, values.get(c.name)) for c in table.clustering))
        row.marker = Cell(True, 0)
        for col in table.columns.values():
            if col.kind in ("regular", "static") and values.get(col.name) is not None:
                row.cells[col.name] = Cell(_internal(col.type, values[col.name]), 0)
    return table


def _internal(t: CqlType, v: Any) -> Any:
    """Plain Python values (dict, list, set, str addresses) -> cqlsim's internal representation."""
    if v is None:
        return None
    if t.kind == "map":
        return canonical_map(t, [(_internal(t.params[0], k), _internal(t.params[1], x)) for k, x in v.items()])
    if t.kind == "set":
        return canonical_set(t, [_internal(t.params[0], x) for x in v])
    if t.kind == "list":
        return tuple(_internal(t.params[0], x) for x in v)
    if t.kind == "inet" and isinstance(v, str):
        return ipaddress.ip_address(v)
    return v


# --------------------------------------------------------------------------------------------------
# Row producers
# --------------------------------------------------------------------------------------------------


def _local(ctx: SystemContext) -> list[dict[str, Any]]:
    return [{
        "key": "local",
        "bootstrapped": "COMPLETED",
        "broadcast_address": ctx.address,
        "cluster_name": "cqlsim",
        "cql_version": "3.4.5" if ctx.cassandra else "3.4.2",
        "data_center": "datacenter1",
        "gossip_generation": 0,
        "host_id": HOST_ID,
        "listen_address": ctx.address,
        "native_protocol_version": "4",
        "partitioner": PARTITIONER,
        "rack": "rack1",
        "release_version": CASSANDRA_RELEASE_VERSION if ctx.cassandra else YB_RELEASE_VERSION,
        "rpc_address": ctx.address,
        "rpc_port": ctx.port,
        "schema_version": ctx.catalog.schema_version,
        "tokens": {str(-(2**63))},
    }]


def _listed_keyspaces(ctx: SystemContext) -> list[Keyspace]:
    return [ks for ks in ctx.catalog.keyspaces.values() if ks.name not in VIRTUAL_KEYSPACES]


def _keyspaces(ctx: SystemContext) -> list[dict[str, Any]]:
    return [
        {"keyspace_name": ks.name, "durable_writes": ks.durable_writes, "replication": ks.replication}
        for ks in _listed_keyspaces(ctx)
    ]


def _tables(ctx: SystemContext) -> list[dict[str, Any]]:
    rows = []
    for ks in _listed_keyspaces(ctx):
        for table in ks.tables.values():
            row = {"keyspace_name": ks.name, "table_name": table.name, "flags": {"compound"}, "id": table.id,
                   "extensions": table.extensions}
            row.update(table.options)
            rows.append(row)
    return rows


def _column_row(ks: str, table: str, name: str, kind: str, position: int, order: str, ctype: str) -> dict:
    return {"keyspace_name": ks, "table_name": table, "column_name": name, "clustering_order": order,
            "column_name_bytes": name.encode(), "kind": kind, "position": position, "type": ctype}


def _columns(ctx: SystemContext) -> list[dict[str, Any]]:
    rows = []
    for ks in _listed_keyspaces(ctx):
        for table in ks.tables.values():
            for col in table.columns.values():
                rows.append(_column_row(ks.name, table.name, col.name, col.kind, col.position, col.order,
                                        col.type.cql()))
            if not ctx.cassandra:
                for index in table.indexes.values():
                    rows += _index_table_columns(table, index)
    return rows


def _index_table_columns(table: Table, index: Index) -> list[dict[str, Any]]:
    """YugabyteDB stores an index as a table; system_schema.columns describes its columns."""
    keyspace = table.keyspace
    rows = [
        _column_row(keyspace, index.name, name, "partition_key", i, "none", table.columns[name].type.cql())
        for i, name in enumerate(index.hash_columns)
    ]
    range_columns = list(index.range_columns)
    range_columns += [c.name for c in table.columns.values()
                      if c.is_key and c.name not in index.hash_columns and c.name not in range_columns]
    rows += [
        _column_row(keyspace, index.name, name, "clustering", i, index.order.get(name, "asc"),
                    table.columns[name].type.cql())
        for i, name in enumerate(range_columns)
    ]
    rows += [
        _column_row(keyspace, index.name, name, "regular", -1, "none", table.columns[name].type.cql())
        for name in index.include
    ]
    return rows


def _types(ctx: SystemContext) -> list[dict[str, Any]]:
    return [
        {"keyspace_name": ks.name, "type_name": t.name, "field_names": list(t.fields),
         "field_types": [p.cql() for p in t.params]}
        for ks in _listed_keyspaces(ctx)
        for t in ks.types.values()
    ]


def index_target(index: Index) -> str:
    hash_part = ", ".join(quote_name(c) for c in index.hash_columns)
    if len(index.hash_columns) > 1:
        hash_part = f"({hash_part})"
    return ", ".join([hash_part] + [quote_name(c) for c in index.range_columns])


def _indexes(ctx: SystemContext) -> list[dict[str, Any]]:
    rows = []
    for ks in _listed_keyspaces(ctx):
        for table in ks.tables.values():
            for index in table.indexes.values():
                options = {"target": index_target(index)}
                if index.include:
                    options["include"] = ", ".join(quote_name(c) for c in index.include)
                if index.predicate:
                    options["predicate"] = index.predicate
                row = {"keyspace_name": ks.name, "table_name": table.name, "index_name": index.name,
                       "kind": "COMPOSITES", "options": options}
                if not ctx.cassandra:
                    row.update(table_id=table.id, index_id=index.id, transactions=index.transactions,
                               is_unique=index.unique, tablets=index.tablets)
                rows.append(row)
    return rows


def _partitions(ctx: SystemContext) -> list[dict[str, Any]]:
    rows = []
    for ks in ctx.catalog.keyspaces.values():
        if ks.system:
            continue
        for table in ks.tables.values():
            for name, object_id in [(table.name, table.id)] + [(i.name, i.id) for i in table.indexes.values()]:
                rows.append({"keyspace_name": ks.name, "table_name": name, "start_key": b"", "end_key": b"",
                             "id": object_id, "replica_addresses": {ctx.address: "LEADER"}})
    return rows


_PRODUCERS = {
    ("system", "local"): _local,
    ("system", "partitions"): _partitions,
    ("system_schema", "keyspaces"): _keyspaces,
    ("system_schema", "tables"): _tables,
    ("system_schema", "columns"): _columns,
    ("system_schema", "types"): _types,
    ("system_schema", "indexes"): _indexes,
}
