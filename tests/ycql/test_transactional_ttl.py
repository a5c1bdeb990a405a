"""YugabyteDB refuses TTL writes on tables with transactions enabled ("Inserting rows with TTL is
not supported on tables with transactions enabled": docs api/ycql/dml_insert.md, Semantics), so a
--with-writetime dump writes such tables' cells with their write times and without TTL, and says
so once (issue 9, finding 8)."""

from __future__ import annotations

from ybrewind.ycql import schema as sch
from ybrewind.ycql.dump import DumpOptions, TableEncoder


def encoder(options: dict[str, object], warnings: list[str]) -> TableEncoder:
    table = sch.TableDef(
        "orders", [sch.ColumnDef("id", "int", "partition_key"), sch.ColumnDef("v", "text", "regular")], options
    )
    return TableEncoder("shop", table, [], [1], DumpOptions(with_writetime=True), warnings.append)


def test_transactional_table_written_without_ttl() -> None:
    warnings: list[str] = []
    enc = encoder({"transactions": {"enabled": "true"}}, warnings)
    assert enc._using(1_700_000_000_000_001, 3600) == " USING TIMESTAMP 1700000000000001"
    assert enc._using(1_700_000_000_000_002, 60) == " USING TIMESTAMP 1700000000000002"
    assert len(warnings) == 1 and "refuses TTL writes" in warnings[0] and '"shop"."orders"' in warnings[0]


def test_transactional_table_with_default_ttl_gets_no_ttl_zero() -> None:
    warnings: list[str] = []
    enc = encoder({"transactions": {"enabled": "true"}, "default_time_to_live": 600}, warnings)
    assert enc._using(1_700_000_000_000_001, None) == " USING TIMESTAMP 1700000000000001"
    assert warnings == []  # nothing lost: the cell had no TTL of its own


def test_other_tables_keep_their_ttl() -> None:
    warnings: list[str] = []
    enc = encoder({"transactions": {"enabled": "false"}}, warnings)
    assert enc._using(1_700_000_000_000_001, 3600) == " USING TIMESTAMP 1700000000000001 AND TTL 3600"
    assert encoder({}, warnings)._using(5, None) == " USING TIMESTAMP 5"
    assert warnings == []
