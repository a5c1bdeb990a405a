"""The statements a YugabyteDB dump session runs to read as of one time (no server)."""

from __future__ import annotations

from ybrewind.ysql.catalog import _size_expression
from ybrewind.ysql.dump import yb_pinned_setup


def test_slot_snapshot_setup_like_ysql_dump_read_time() -> None:
    # SET LOCAL yb_read_time first in the transaction (advanced-topic.md, Initial snapshot); the
    # catalog version check off as ysql_dump --read-time does (yb-tserver.md).
    assert yb_pinned_setup(hybrid_time="7319277973024817152") == [
        "SET yb_disable_catalog_version_check = true",
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        "SET LOCAL yb_read_time TO '7319277973024817152 ht'",
    ]


def test_read_time_setup() -> None:
    assert yb_pinned_setup(read_time_us=1_786_933_098_883_012) == [
        "SET yb_disable_catalog_version_check = true",
        "SET yb_read_time TO 1786933098883012",
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    ]


def test_table_size_on_yugabyte_is_docdb_size() -> None:
    # pg_relation_size() is 0 for YB tables (no local files): yb_hash_code slicing never triggered.
    assert "pg_table_size" in _size_expression(True)
    assert _size_expression(False) == "pg_relation_size(c.oid)"
