"""The endpoint over real connections (psycopg and ybrewind's replication client) in front of a
sandbox PostgreSQL: identification, catalog functions, YSQL DDL, refusals, yb_read_time and the
replication dialect. What each check stands for in YugabyteDB is cited in README.md."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.integration.test_yugabyte import YB_SCHEMA
from tests.support.ybsim.process import Ybsim
from tests.ybsim.test_replication import raw_update
from ybrewind.ysql import catalog
from ybrewind.ysql import pgoutput as po
from ybrewind.ysql.stream import Keepalive, ReplicationConnection, XLogData

_names = itertools.count()


@pytest.fixture
def ydb(ybsim: Ybsim) -> Iterator[str]:
    name = ybsim.create_database(f"ybsim_{next(_names)}")
    yield name
    ybsim.drop_database(name)


def error_of(conn: psycopg.Connection, query: str) -> str:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(query.encode())
    return info.value.diag.message_primary or ""


def test_identifies_as_yugabyte(ybsim: Ybsim, ydb: str) -> None:
    with ybsim.connect(ydb) as conn:
        server = catalog.read_server(conn)
        assert server.is_yugabyte and "-YB-2025.1" in server.version
        assert "-YB-" in (conn.info.parameter_status("server_version") or "")
        [(host, port)] = conn.execute("SELECT host, port FROM yb_servers()").fetchall()
        assert (host, port) == ("127.0.0.1", ybsim.port)
        # YugabyteDB parameters, also read with a bound name (extended protocol)
        assert conn.execute("SELECT current_setting(%s, true)", ["yb_enable_replication_commands"]).fetchone() == (
            "true",
        )
        assert conn.execute("SHOW yb_enable_replication_commands").fetchone() == ("true",)
        assert conn.execute("SELECT current_setting('search_path')").fetchone()[0]
        cols = [d.name for d in conn.execute("SELECT * FROM pg_replication_slots").description or []]
        assert cols[-2:] == ["yb_stream_id", "yb_restart_commit_ht"]  # docs .../monitor.md


def test_ysql_ddl_and_catalog_functions(ybsim: Ybsim, ydb: str) -> None:
    with ybsim.connect(ydb) as conn:
        conn.execute(YB_SCHEMA.encode())
        props = conn.execute(
            "SELECT c.relname, p.num_tablets, p.num_hash_key_columns, p.is_colocated, yb_get_range_split_clause(c.oid) "
            "FROM pg_class c, yb_table_properties(c.oid) p WHERE c.relname IN ('hashed', 'ranged', 'hashed_c') "
            "ORDER BY 1"
        ).fetchall()
        assert props == [
            ("hashed", 3, 2, False, None),
            ("hashed_c", 1, 1, False, None),
            ("ranged", 3, 0, False, "SPLIT AT VALUES ((100), (200))"),
        ]
        defs = dict(conn.execute(
            "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid IN ('hashed'::regclass, 'ranged'::regclass)"
        ).fetchall())
        assert defs["hashed_pkey"].endswith("USING lsm ((a, b) HASH, c ASC)")
        assert defs["hashed_c"].endswith("USING lsm (c HASH) INCLUDE (v)")
        assert defs["ranged_v"].endswith("USING lsm (v DESC)")
        assert defs["ranged_pkey"].endswith("USING lsm (id ASC)")
        # yb_hash_code(...) in 0..65535: disjoint ranges cover every row once
        halves = [
            conn.execute(f"SELECT count(*) FROM hashed WHERE yb_hash_code(a, b) BETWEEN {lo} AND {hi}").fetchone()[0]
            for lo, hi in ((0, 32767), (32768, 65535))
        ]
        assert sum(halves) == 3000 and all(halves)
        assert conn.execute("SELECT relreplident FROM pg_class WHERE relname = 'hashed'").fetchone()[0] == "c"


def test_colocation_and_tablegroups(ybsim: Ybsim, ydb: str) -> None:
    coloc = ybsim.create_database(f"ybsim_coloc_{next(_names)}", colocated=True)
    try:
        with ybsim.connect(coloc) as conn:
            assert conn.execute("SELECT yb_is_database_colocated()").fetchone()[0] is True
            conn.execute("CREATE TABLE inside (id int PRIMARY KEY, v text)")
            conn.execute("CREATE TABLE outside (id int PRIMARY KEY, v text) WITH (colocation = false) SPLIT INTO 2 TABLETS")
            rows = conn.execute(
                "SELECT c.relname, p.is_colocated, g.grpname, p.num_hash_key_columns, p.num_tablets "
                "FROM pg_class c CROSS JOIN yb_table_properties(c.oid) p "
                "LEFT JOIN pg_yb_tablegroup g ON g.oid = p.tablegroup_oid "
                "WHERE c.relname IN ('inside', 'outside') ORDER BY 1"
            ).fetchall()
            # ybccmds.c YBCCreateTable: colocated tables live in the implicit tablegroup "default"
            assert rows == [("inside", True, "default", 0, 1), ("outside", False, None, 1, 2)]
    finally:
        ybsim.drop_database(coloc)
    with ybsim.connect(ydb) as conn:
        assert conn.execute("SELECT yb_is_database_colocated()").fetchone()[0] is False
        assert "non-colocated" in error_of(conn, "CREATE TABLE c (id int PRIMARY KEY) WITH (colocation = true)")
        conn.execute("CREATE TABLEGROUP tg")
        conn.execute("CREATE TABLE grouped (id int, v text, PRIMARY KEY (id)) TABLEGROUP tg")
        row = conn.execute(
            "SELECT p.is_colocated, g.grpname FROM yb_table_properties('grouped'::regclass) p "
            "JOIN pg_yb_tablegroup g ON g.oid = p.tablegroup_oid"
        ).fetchone()
        assert row == (True, "tg")
        assert "not empty" in error_of(conn, "DROP TABLEGROUP tg")


def test_refusals(ybsim: Ybsim, ydb: str) -> None:
    with ybsim.connect(ydb) as conn:
        assert error_of(conn, "CREATE TABLE r (id int, PRIMARY KEY (id ASC)) SPLIT INTO 3 TABLETS") == (
            "HASH columns must be present to split by number of tablets"
        )
        assert "not supported" in error_of(conn, "SELECT txid_current()")
        assert "not supported" in error_of(conn, "SELECT pg_current_wal_lsn()")
        conn.execute("CREATE FUNCTION f() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RETURN txid_current(); END $$")
        assert "not supported" in error_of(conn, "SELECT f()")
        # the transaction state stays in step with the client after an emulated error
        conn.execute("BEGIN")
        error_of(conn, "SELECT txid_current()")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        conn.execute("ROLLBACK")
    repl = ReplicationConnection(ybsim.endpoint(ydb))
    try:
        with pytest.raises(Exception, match="IDENTIFY_SYSTEM is not supported"):
            repl.identify_system()
        with pytest.raises(Exception, match="Temporary replication slot is not yet supported"):
            repl.create_slot("tmp_slot", temporary=True)
        repl.create_slot("drop_me", snapshot="NOEXPORT_SNAPSHOT")
        with pytest.raises(Exception, match="Waiting for a replication slot is not yet supported"):
            repl.drop_slot("drop_me", wait=True)
        repl.drop_slot("drop_me")  # ybrewind leaves WAIT out on YugabyteDB
    finally:
        repl.close()
    with ybsim.connect(ydb) as conn:
        assert conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'drop_me'").fetchone() is None


def test_yb_read_time(ybsim: Ybsim, ydb: str) -> None:
    with ybsim.connect(ydb) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 10)")
        time.sleep(1.0)  # the endpoint's snapshot ring ticks every 0.25 s
        as_of = conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").fetchone()[0]
        time.sleep(1.0)  # the endpoint's snapshot ring ticks every 0.25 s
        conn.execute("INSERT INTO t SELECT generate_series(11, 15)")
        conn.execute(f"SET yb_read_time TO {as_of}")
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 10
        conn.execute("COMMIT")
        conn.execute("SET yb_read_time TO 0")
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 15
        conn.execute("DROP ROLE IF EXISTS ybsim_app")
        conn.execute("CREATE ROLE ybsim_app LOGIN PASSWORD 'pw'")
    with psycopg.connect(f"postgresql://ybsim_app:pw@127.0.0.1:{ybsim.port}/{ydb}", autocommit=True) as app:
        assert error_of(app, f"SET yb_read_time TO {as_of}") == 'permission denied to set parameter "yb_read_time"'
    with ybsim.connect(ydb) as conn:
        conn.execute("DROP ROLE ybsim_app")


def _collect(repl: ReplicationConnection, until_commits: int, timeout: float = 20.0) -> list[tuple[po.Message, bytes]]:
    """(decoded message, raw pgoutput bytes) until ``until_commits`` commits arrived."""
    out: list[tuple[po.Message, bytes]] = []
    deadline = time.monotonic() + timeout
    while sum(isinstance(m, po.Commit) for m, _ in out) < until_commits and time.monotonic() < deadline:
        msg = repl.read(0.5)
        if isinstance(msg, XLogData):
            out.append((po.decode(msg.payload), msg.payload))
        elif isinstance(msg, Keepalive) and msg.reply_requested:
            repl.send_status(0, 0)
    return out


def test_replication_dialect(ybsim: Ybsim, ydb: str) -> None:
    with ybsim.connect(ydb) as conn:
        conn.execute("CREATE TABLE tc (id int PRIMARY KEY, v text)")  # YugabyteDB default: CHANGE
        conn.execute("CREATE TABLE td (id int PRIMARY KEY, v text)")
        conn.execute("CREATE TABLE tf (id int PRIMARY KEY, v text)")
        conn.execute("ALTER TABLE td REPLICA IDENTITY DEFAULT")
        conn.execute("ALTER TABLE tf REPLICA IDENTITY FULL")
        conn.execute("INSERT INTO td VALUES (1, 'a'), (2, 'b'); INSERT INTO tf VALUES (1, 'a')")
        conn.execute("CREATE PUBLICATION pub_all FOR ALL TABLES")
        conn.execute("CREATE PUBLICATION pub_df FOR TABLE td, tf")
    repl = ReplicationConnection(ybsim.endpoint(ydb))
    slot = repl.create_slot("s1", snapshot="USE_SNAPSHOT")
    # walsender.c CreateReplicationSlot: consistent point 0/0, the snapshot is a hybrid time
    assert slot.consistent_point == 0 and slot.snapshot is not None and int(slot.snapshot) > 1 << 60
    with ybsim.connect(ydb) as conn:
        conn.execute("INSERT INTO td VALUES (3, 'c')")
        conn.execute("ALTER TABLE tc REPLICA IDENTITY FULL")  # after the slot: no effect for it
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute(f"SET LOCAL yb_read_time TO '{slot.snapshot} ht'")
        assert conn.execute("SELECT count(*) FROM td").fetchone()[0] == 2
        conn.execute("COMMIT")
    repl.close()

    repl = ReplicationConnection(ybsim.endpoint(ydb))
    with pytest.raises(Exception, match=r"replica identity CHANGE \(for table: \d+\) is not supported"):
        repl.start("s1", 0, "pub_all")
    repl.close()

    repl = ReplicationConnection(ybsim.endpoint(ydb))
    repl.start("s1", 0, "pub_df")
    with ybsim.connect(ydb) as conn:
        conn.execute("UPDATE td SET v = 'x' WHERE id = 1")
        conn.execute("UPDATE tf SET v = 'y' WHERE id = 1")
        # yb-master enable_truncate_cdcsdk_table=false (this endpoint's default): refused while streamed
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="CDC stream"):
            conn.execute("TRUNCATE tf")
        conn.execute("DELETE FROM td WHERE id = 2")
    got = _collect(repl, 4)
    msgs = [m for m, _ in got]
    updates = [raw_update(raw) for m, raw in got if isinstance(m, po.Update)]
    # DEFAULT: an all-NULL old key on every UPDATE; FULL: the before image
    assert updates == [(b"K", [None, None]), (b"O", [b"1", b"a"])]
    assert not any(isinstance(m, po.Truncate) for m in msgs)
    deletes = [m for m in msgs if isinstance(m, po.Delete)]
    assert deletes[0].key == ["2", None]
    commits = [m for m in msgs if isinstance(m, po.Commit)]
    # per-slot counters: BEGIN, one per change, COMMIT sharing the last change's LSN
    assert [c.commit_lsn for c in commits] == [2, 5, 8, 11] and [c.end_lsn for c in commits] == [3, 6, 9, 12]
    repl.send_status(6, 6)
    time.sleep(0.5)
    repl.close()
    with ybsim.connect(ydb) as conn:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 's1'").fetchone()
        assert row[0] == "0/6"
    repl = ReplicationConnection(ybsim.endpoint(ydb))
    repl.start("s1", 6, "pub_df")
    again = [m for m, _ in _collect(repl, 2)]
    assert [c.commit_lsn for c in again if isinstance(c, po.Commit)] == [8, 11]  # the same LSNs as before
    repl.close()
    with ybsim.connect(ydb) as conn:
        conn.execute("SELECT pg_drop_replication_slot('s1')")


def _render_and_read_back(ybsim: Ybsim, dbname: str, m: object) -> object:
    from ybrewind.ysql.ddl import DdlWriter, RenderOptions

    w = DdlWriter(m, RenderOptions("yugabyte", owners=False, privileges=False))  # type: ignore[arg-type]
    with ybsim.connect(dbname) as conn:
        for stmt in w.pre_data() + [p.sql for p in w.post_data()]:
            conn.execute(stmt.encode())
        return catalog.read_schema(conn)


def test_ddl_ybrewind_renders_reads_back_the_same(ybsim: Ybsim, ydb: str) -> None:
    """The YSQL DDL ybrewind renders (tests/unit/test_ddl_yugabyte.py models) is accepted and the
    catalog then says what the model said."""
    from tests.unit.test_ddl_yugabyte import model, yb_table
    from ybrewind.ysql.model import Index, IndexKey, KeyColumn, YbTableProps

    tables = [
        yb_table("orders", [KeyColumn("a", "HASH"), KeyColumn("b", "HASH"), KeyColumn("c", "ASC")],
                 YbTableProps(num_tablets=3, num_hash_key_columns=2)),
        yb_table("series", [KeyColumn("k", "HASH"), KeyColumn("t", "DESC")],
                 YbTableProps(num_tablets=2, num_hash_key_columns=1)),
        yb_table("events", [KeyColumn("id", "ASC")],
                 YbTableProps(num_tablets=3, split_clause="SPLIT AT VALUES ((1000), (5000))")),
        yb_table("g1", [KeyColumn("id", "ASC")], YbTableProps(num_tablets=1, colocated=True, tablegroup="grp")),
    ]
    m = model(*tables)
    m.indexes.append(Index(
        ("pg_class", 2), "public", "orders_v_idx", ("public", "orders"),
        "CREATE INDEX orders_v_idx ON public.orders USING lsm (v HASH, c DESC)",
        keys=[IndexKey("v", "HASH"), IndexKey("c", "DESC", nulls_first=True)], method="lsm",
        yb=YbTableProps(num_tablets=2, num_hash_key_columns=1),
    ))
    got = _render_and_read_back(ybsim, ydb, m)
    by_name = {t.name: t for t in got.tables()}
    for t in tables:
        back = by_name[t.name]
        assert back.primary_key is not None and t.primary_key is not None
        assert [(k.name, k.ordering) for k in back.primary_key.columns] == [
            (k.name, k.ordering) for k in t.primary_key.columns
        ], t.name
        assert back.yb == t.yb, t.name
    [idx] = [i for i in got.indexes if i.name == "orders_v_idx"]
    assert [(k.expression, k.ordering) for k in idx.keys] == [("v", "HASH"), ("c", "DESC")]
    assert idx.yb is not None and (idx.yb.num_tablets, idx.yb.num_hash_key_columns) == (2, 1)


def test_ddl_for_a_colocated_database(ybsim: Ybsim) -> None:
    from tests.unit.test_ddl_yugabyte import model, yb_table
    from ybrewind.ysql.model import KeyColumn, YbTableProps

    small = yb_table("small", [KeyColumn("id", "ASC")], YbTableProps(num_tablets=1, colocated=True))
    big = yb_table("big", [KeyColumn("id", "HASH")], YbTableProps(num_tablets=4, num_hash_key_columns=1))
    name = ybsim.create_database(f"ybsim_coloc_{next(_names)}", colocated=True)
    try:
        got = _render_and_read_back(ybsim, name, model(small, big, colocated=True))
        by_name = {t.name: t for t in got.tables()}
        assert got.database.colocated
        assert by_name["big"].yb == big.yb
        # the implicit tablegroup "default" shows (ybccmds.c YBCCreateTable)
        assert by_name["small"].yb is not None and by_name["small"].yb.tablegroup == "default"
    finally:
        ybsim.drop_database(name)
