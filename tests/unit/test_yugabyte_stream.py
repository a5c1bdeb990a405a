"""YugabyteDB replication details that need no server: pgoutput options by version, the slot's
snapshot name, hybrid times, and the stream gaps the archive records around DDL."""

from __future__ import annotations

from ybrewind.check import yb_version
from ybrewind.ysql.archiver import yb_gaps_for_ddl
from ybrewind.ysql.stream import hybrid_time_to_unix_us, is_hybrid_time_snapshot, start_options


def test_messages_option_only_where_pgoutput_knows_it() -> None:
    # PostgreSQL 11-based YugabyteDB (2024.2 and earlier) rejects unknown pgoutput options.
    assert "messages" not in start_options("p", 110002).as_string(None)
    assert start_options("p", 150002).as_string(None) == ("proto_version '1', publication_names 'p', messages 'true'")


def test_snapshot_name_forms() -> None:
    # cdc_upgrade-test.cc: a hybrid time in decimal digits, or "<32 hex>-<32 hex>" with export on.
    assert is_hybrid_time_snapshot("7319277973024817152")
    assert not is_hybrid_time_snapshot("6972261563b7411e9f089cc10e259a0c-b1fd4d6c94479680854623cd51c56bec")
    assert not is_hybrid_time_snapshot(None)


def test_hybrid_time_to_unix_micros() -> None:
    physical_us = 1_764_000_000_123_456
    assert hybrid_time_to_unix_us((physical_us << 12) | 4095) == physical_us
    assert hybrid_time_to_unix_us(7319277973024817152) == 1_786_933_098_883_012


def test_gaps_for_ddl_on_yugabyte() -> None:
    assert yb_gaps_for_ddl("CREATE TABLE", "CREATE TABLE t (id int PRIMARY KEY)")[0][0] == "new-table"
    assert yb_gaps_for_ddl("CREATE TABLE AS", "CREATE TABLE t AS SELECT 1")[0][0] == "new-table"
    assert yb_gaps_for_ddl("DROP TABLE", "DROP TABLE t")[0][0] == "unsupported-ddl"
    assert yb_gaps_for_ddl("ALTER TABLE", "ALTER TABLE t ALTER COLUMN v TYPE bigint")[0][0] == "unsupported-ddl"
    assert yb_gaps_for_ddl("ALTER TABLE", "alter table t alter v set data type text")[0][0] == "unsupported-ddl"
    assert yb_gaps_for_ddl("ALTER TABLE", "ALTER TABLE t ADD COLUMN type text") == []
    assert yb_gaps_for_ddl("CREATE INDEX", "CREATE INDEX i ON t (v)") == []


def test_yb_version() -> None:
    assert yb_version("PostgreSQL 11.2-YB-2024.2.4.0-b0 on x86_64-pc-linux-gnu") == (2024, 2, 4, 0)
    assert yb_version("PostgreSQL 15.2-YB-2.25.0.0-b0 on x86_64") == (2, 25, 0, 0)
    assert yb_version("PostgreSQL 15.18") is None


def test_logical_replication_versions() -> None:
    from ybrewind.check import yb_has_logical_replication

    assert yb_has_logical_replication((2024, 1, 1, 0)) and yb_has_logical_replication((2025, 1, 0, 0))
    assert not yb_has_logical_replication((2, 20, 5, 0))
    assert yb_has_logical_replication((2, 25, 0, 0)) and not yb_has_logical_replication((2024, 1, 0, 0))


def _archiver_receiving_ddl(yugabyte: bool, tag: str, command: str) -> list[list[object]]:
    from types import SimpleNamespace

    from ybrewind.endpoints import PgEndpoint
    from ybrewind.ysql import pgoutput as po
    from ybrewind.ysql.archiver import DDL_SCHEMA, DDL_TABLE, Archiver, _Open

    archiver = Archiver(PgEndpoint("postgresql://u@127.0.0.1:1/db"), SimpleNamespace(url="mem://"))  # type: ignore[arg-type]
    archiver.yugabyte = yugabyte
    columns = ("id", "at", "pid", "statement_at", "tag", "command", "search_path")
    archiver.relations[7] = po.Relation(
        7, DDL_SCHEMA, DDL_TABLE, "d", tuple(po.RelationColumn(c, 25, -1, c == "id") for c in columns)
    )
    archiver._handle(po.Begin(0, 0, 1), None)  # type: ignore[arg-type]
    archiver._handle(po.Insert(7, ["1", "now", "42", "now", tag, command, "public"]), None)  # type: ignore[arg-type]
    assert isinstance(archiver.open, _Open)
    return archiver.open.changes


def test_archiver_records_gaps_after_yugabyte_ddl() -> None:
    changes = _archiver_receiving_ddl(True, "CREATE TABLE", "CREATE TABLE late (k int PRIMARY KEY)")
    assert changes[0] == ["DDL", "CREATE TABLE", "CREATE TABLE late (k int PRIMARY KEY)", "public"]
    assert changes[1][0] == "GAP" and changes[1][1] == "new-table"
    assert _archiver_receiving_ddl(False, "CREATE TABLE", "CREATE TABLE late (k int)")[1:] == []


def test_archiver_turns_capture_failure_into_gap() -> None:
    changes = _archiver_receiving_ddl(False, "ybrewind:capture-failed", "ALTER TABLE: permission denied")
    assert changes == [
        ["GAP", "ddl-not-captured", "a DDL statement could not be recorded (ALTER TABLE: permission denied)"]
    ]


def test_ddl_log_table_is_streamable_by_pgoutput_on_yugabyte() -> None:
    # The log is created after the archiver set DEFAULT on the user's tables: it sets its own.
    from ybrewind.ysql.archiver import DDL_CAPTURE_SQL

    assert "ALTER TABLE ybrewind.ddl_log REPLICA IDENTITY DEFAULT;" in DDL_CAPTURE_SQL
    body = "\n".join(line.split("--")[0] for line in DDL_CAPTURE_SQL.split("$$")[1].splitlines())
    assert "txid_current" not in body  # the trigger body, comments aside (YB has no txid_current)


class _SlotRow:
    """The one pg_replication_slots row yb_slot_start reads (no YugabyteDB here)."""

    def __init__(self, row: tuple[object, ...] | None) -> None:
        self.row = row

    def execute(self, query: str, params: list[object]) -> _SlotRow:
        assert "yb_restart_commit_ht" in query and "yb_stream_id" in query and params == ["s"]
        return self

    def fetchone(self) -> tuple[object, ...] | None:
        return self.row


def test_yugabyte_slot_start_point_and_time() -> None:
    from ybrewind.ysql.archiver import yb_slot_start
    from ybrewind.ysql.stream import CreatedSlot

    ht = (1_786_933_098_883_012 << 12) | 7
    # USE_SNAPSHOT without snapshot export: the name is the hybrid time; the command said 0/0.
    slot = CreatedSlot("s", 0, str(ht))
    lsn, time_us, stream = yb_slot_start(_SlotRow(("0/1", ht - (5 << 12), "a1b2")), slot)  # type: ignore[arg-type]
    assert (lsn, time_us, stream) == (1, 1_786_933_098_883_012, "a1b2")
    # An exported snapshot id: the time comes from yb_restart_commit_ht.
    slot = CreatedSlot("s", 0, "6972261563b7411e9f089cc10e259a0c-b1fd4d6c94479680854623cd51c56bec")
    assert yb_slot_start(_SlotRow(("0/2", ht, "c3")), slot)[1] == 1_786_933_098_883_012  # type: ignore[arg-type]


def test_ddl_during_the_initial_snapshot_is_a_gap_on_yugabyte() -> None:
    from types import SimpleNamespace

    from ybrewind.endpoints import PgEndpoint
    from ybrewind.ysql import pgoutput as po
    from ybrewind.ysql.archiver import DDL_SCHEMA, DDL_TABLE, Archiver

    archiver = Archiver(PgEndpoint("postgresql://u@127.0.0.1:1/db"), SimpleNamespace(url="mem://"))  # type: ignore[arg-type]
    archiver.yugabyte, archiver.base_done_us = True, 2_000
    columns = ("id", "at", "pid", "statement_at", "tag", "command", "search_path")
    archiver.relations[7] = po.Relation(
        7, DDL_SCHEMA, DDL_TABLE, "d", tuple(po.RelationColumn(c, 25, -1, False) for c in columns)
    )
    archiver._handle(po.Begin(0, 1_000, 1), None)  # type: ignore[arg-type]
    archiver._handle(po.Insert(7, ["1", "", "1", "", "CREATE INDEX", "CREATE INDEX i ON t (v)", ""]), None)  # type: ignore[arg-type]
    assert archiver.open is not None
    assert [c[1] for c in archiver.open.changes if c[0] == "GAP"] == ["snapshot-ddl"]
