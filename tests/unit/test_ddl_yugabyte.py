"""The DDL writer's YugabyteDB forms, from constructed models (no server).

Expected texts follow ../shared/docs/yugabyte.md: HASH/ASC/DESC keys, SPLIT clauses, colocation,
tablegroups, NONCONCURRENTLY indexes, COLOCATION on CREATE DATABASE; and their absence in the
postgres dialect, so a YugabyteDB database loads into vanilla PostgreSQL (YB issue #13407).
"""

from __future__ import annotations

from ybrewind.ysql.ddl import DdlWriter, RenderOptions, yb_primary_key
from ybrewind.ysql.model import (
    Column,
    Constraint,
    DatabaseInfo,
    Index,
    IndexKey,
    KeyColumn,
    PrimaryKey,
    SchemaModel,
    Server,
    Table,
    YbTableProps,
)

YB = Server("PostgreSQL 15.2-YB-2.25.0.0-b0 on x86_64", 150002, True)
PG = Server("PostgreSQL 15.18", 150018, False)


def yb_table(name: str, keys: list[KeyColumn], props: YbTableProps) -> Table:
    cols = [Column(k.name, "integer", not_null=True) for k in keys] + [Column("v", "text")]
    return Table(("pg_class", 1), "public", name, columns=cols, primary_key=PrimaryKey(f"{name}_pkey", keys), yb=props)


def model(*tables: Table, server: Server = YB, colocated: bool = False) -> SchemaModel:
    return SchemaModel(server, DatabaseInfo("app", colocated=colocated), objects=list(tables))


def render(m: SchemaModel, dialect: str) -> tuple[list[str], list[str]]:
    w = DdlWriter(m, RenderOptions(dialect, owners=False, privileges=False))  # type: ignore[arg-type]
    return w.pre_data(), [p.sql for p in w.post_data()]


def test_primary_key_forms() -> None:
    assert yb_primary_key([KeyColumn("a", "HASH"), KeyColumn("b", "HASH"), KeyColumn("c", "ASC")]) == (
        'PRIMARY KEY (("a", "b") HASH, "c" ASC)'
    )
    assert yb_primary_key([KeyColumn("id", "ASC")]) == 'PRIMARY KEY ("id" ASC)'
    assert yb_primary_key([KeyColumn("k", "HASH"), KeyColumn("t", "DESC")]) == 'PRIMARY KEY ("k" HASH, "t" DESC)'


def test_hash_table_with_tablets_yugabyte_and_postgres() -> None:
    t = yb_table(
        "orders",
        [KeyColumn("a", "HASH"), KeyColumn("b", "HASH"), KeyColumn("c", "ASC")],
        YbTableProps(num_tablets=3, num_hash_key_columns=2),
    )
    pre, post = render(model(t), "yugabyte")
    assert pre[0].endswith('CONSTRAINT "orders_pkey" PRIMARY KEY (("a", "b") HASH, "c" ASC)\n)\nSPLIT INTO 3 TABLETS')
    assert not any("PRIMARY KEY" in s for s in post)
    pre, post = render(model(t), "postgres")
    assert "PRIMARY KEY" not in pre[0] and "SPLIT" not in pre[0] and "HASH" not in pre[0]
    assert post == ['ALTER TABLE "public"."orders" ADD CONSTRAINT "orders_pkey" PRIMARY KEY ("a", "b", "c")']


def test_range_table_split_at_values() -> None:
    t = yb_table(
        "events", [KeyColumn("id", "ASC")], YbTableProps(num_tablets=3, split_clause="SPLIT AT VALUES ((1000), (5000))")
    )
    pre, _ = render(model(t), "yugabyte")
    assert pre[0].endswith('PRIMARY KEY ("id" ASC)\n)\nSPLIT AT VALUES ((1000), (5000))')
    pre, _ = render(model(t), "postgres")
    assert "SPLIT" not in pre[0]


def test_colocated_database() -> None:
    """A colocated database: colocated tables (in the implicit tablegroup "default", never created
    by a statement) and tables opted out. No CREATE TABLEGROUP: YugabyteDB refuses it there for any
    name (tablegroup.c CreateTableGroup)."""
    colocated = yb_table("small", [KeyColumn("id", "ASC")], YbTableProps(num_tablets=1, colocated=True))
    implicit = yb_table("tiny", [KeyColumn("id", "ASC")], YbTableProps(num_tablets=1, colocated=True, tablegroup="default"))
    opted_out = yb_table("big", [KeyColumn("id", "HASH")], YbTableProps(num_tablets=4, num_hash_key_columns=1))
    m = model(colocated, implicit, opted_out, colocated=True)
    w = DdlWriter(m, RenderOptions("yugabyte"))
    assert w.create_database().endswith(" COLOCATION = true")
    pre, _ = render(m, "yugabyte")
    pre = [s for s in pre if "REPLICA IDENTITY" not in s]
    assert not any("TABLEGROUP" in s for s in pre), pre
    small, tiny, big = pre
    assert "colocation" not in small and "SPLIT" not in small
    assert "colocation" not in tiny and "SPLIT" not in tiny
    assert big.endswith("WITH (colocation = false)\nSPLIT INTO 4 TABLETS")
    assert "COLOCATION" not in DdlWriter(m, RenderOptions("postgres")).create_database()
    pre, _ = render(m, "postgres")
    assert not any("TABLEGROUP" in s or "colocation" in s for s in pre)


def test_tablegroups_in_a_database_that_is_not_colocated() -> None:
    grouped = yb_table("g1", [KeyColumn("id", "ASC")], YbTableProps(num_tablets=1, colocated=True, tablegroup="grp"))
    alone = yb_table("t", [KeyColumn("id", "HASH")], YbTableProps(num_tablets=2, num_hash_key_columns=1))
    m = model(grouped, alone)
    assert "COLOCATION" not in DdlWriter(m, RenderOptions("yugabyte")).create_database()
    pre, _ = render(m, "yugabyte")
    pre = [s for s in pre if "REPLICA IDENTITY" not in s]
    assert pre[0] == 'CREATE TABLEGROUP "grp"'
    g1, t = pre[1], pre[2]
    assert g1.endswith('TABLEGROUP "grp"') and "SPLIT" not in g1 and "colocation" not in g1
    assert "TABLEGROUP" not in t and t.endswith("SPLIT INTO 2 TABLETS")
    pre, _ = render(m, "postgres")
    assert not any("TABLEGROUP" in s or "colocation" in s for s in pre)


def test_indexes_nonconcurrently_with_split_and_rebuilt_for_postgres() -> None:
    t = yb_table("t", [KeyColumn("id", "HASH")], YbTableProps(num_tablets=2, num_hash_key_columns=1))
    idx = Index(
        ("pg_class", 2),
        "public",
        "t_a_b_idx",
        ("public", "t"),
        "CREATE INDEX t_a_b_idx ON public.t USING lsm (a HASH, b DESC)",
        keys=[IndexKey("a", "HASH"), IndexKey("b", "DESC", nulls_first=True)],
        method="lsm",
        include=["v"],
        predicate="(v IS NOT NULL)",
        yb=YbTableProps(num_tablets=2, num_hash_key_columns=1),
    )
    m = model(t)
    m.indexes.append(idx)
    _, post = render(m, "yugabyte")
    assert post == [
        "CREATE INDEX NONCONCURRENTLY t_a_b_idx ON public.t USING lsm (a HASH, b DESC)\nSPLIT INTO 2 TABLETS"
    ]
    _, post = render(m, "postgres")
    assert post[-1] == (
        'CREATE INDEX "t_a_b_idx" ON "public"."t" USING btree (a, b DESC) INCLUDE (v) WHERE (v IS NOT NULL)'
    )


def test_postgres_source_rendered_for_yugabyte_declares_key_inline() -> None:
    t = Table(("pg_class", 1), "public", "acct", columns=[Column("id", "integer", not_null=True)])
    m = model(t, server=PG)
    m.constraints.append(Constraint(("public", "acct"), "acct_pkey", "p", "PRIMARY KEY (id)"))
    pre, post = render(m, "yugabyte")
    assert pre[0].endswith('CONSTRAINT "acct_pkey" PRIMARY KEY (id)\n)')
    assert post == []
    pre, post = render(m, "postgres")
    assert post == ['ALTER TABLE "public"."acct" ADD CONSTRAINT "acct_pkey" PRIMARY KEY (id)']


def test_snapshot_statements_for_workers() -> None:
    """How parallel dump workers (and psql children) join the dump's instant, per server kind."""
    from ybrewind.ysql.dump import Snapshot

    snap = Snapshot.__new__(Snapshot)
    snap.is_yugabyte, snap.name, snap.read_time_us, snap.hybrid_time = False, "00000003-0000001B-1", None, None
    assert snap.setup_statements() == [
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
        "SET LOCAL lock_timeout = '1s'",  # a worker's lock wait is a deadlock with a queued TRUNCATE
    ]
    # YugabyteDB with ysql_enable_pg_export_snapshot: a slot's snapshot id is imported the same way.
    snap.is_yugabyte = True
    snap.name = "6972261563b7411e9f089cc10e259a0c-b1fd4d6c94479680854623cd51c56bec"
    assert snap.setup_statements()[1].startswith("SET TRANSACTION SNAPSHOT '6972261563b7411e9f089cc10e259a0c-")
    snap.name, snap.read_time_us = None, 1795000000000000
    assert snap.setup_statements() == [
        "SET yb_disable_catalog_version_check = true",
        "SET yb_read_time TO 1795000000000000",
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    ]
    snap.read_time_us, snap.hybrid_time = None, "7081234567890123456"  # a slot's USE_SNAPSHOT name
    assert snap.setup_statements()[2] == "SET LOCAL yb_read_time TO '7081234567890123456 ht'"


def test_replication_slot_commands() -> None:
    from ybrewind.ysql.stream import slot_command

    assert slot_command("s", False, "EXPORT_SNAPSHOT").as_string(None) == (
        'CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput EXPORT_SNAPSHOT'
    )
    assert slot_command("tmp", True, "USE_SNAPSHOT").as_string(None) == (
        'CREATE_REPLICATION_SLOT "tmp" TEMPORARY LOGICAL pgoutput USE_SNAPSHOT'
    )


def test_colocated_tables_never_name_the_implicit_default_tablegroup() -> None:
    # yb_table_properties() reports colocated tables in the implicit tablegroup "default"
    # (ybccmds.c, YBCCreateTable; tablegroup.h DEFAULT_TABLEGROUP_NAME): YB creates it itself.
    t = yb_table("c", [KeyColumn("id", "ASC")], YbTableProps(num_tablets=1, colocated=True, tablegroup="default"))
    pre, _ = render(model(t, colocated=True), "yugabyte")
    assert not any("TABLEGROUP" in s for s in pre), pre
    # A tablegroup named "default" in a database that is not colocated is the user's own.
    pre, _ = render(model(t, colocated=False), "yugabyte")
    assert pre[0] == 'CREATE TABLEGROUP "default"'


def test_replica_identity_spelled_out_for_yugabyte_targets() -> None:
    def identities(ident: str, dialect: str, server: Server = YB) -> list[str]:
        t = yb_table("t", [KeyColumn("id", "HASH")], YbTableProps(num_tablets=1, num_hash_key_columns=1))
        t.replica_identity = ident
        pre, _ = render(model(t, server=server), dialect)
        return [s for s in pre if "REPLICA IDENTITY" in s]

    # YB tables start as CHANGE (ysql_yb_default_replica_identity), so DEFAULT must be said.
    assert identities("d", "yugabyte") == ['ALTER TABLE "public"."t" REPLICA IDENTITY DEFAULT']
    assert identities("c", "yugabyte") == ['ALTER TABLE "public"."t" REPLICA IDENTITY CHANGE']
    assert identities("f", "yugabyte") == ['ALTER TABLE "public"."t" REPLICA IDENTITY FULL']
    assert identities("c", "postgres") == [] and identities("d", "postgres") == []
    assert identities("n", "postgres") == ['ALTER TABLE "public"."t" REPLICA IDENTITY NOTHING']
    assert identities("d", "yugabyte", PG) == ['ALTER TABLE "public"."t" REPLICA IDENTITY DEFAULT']
