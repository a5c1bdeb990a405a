"""Pure planning and parsing logic: slices, filters, endpoints, manifests (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ybrewind import manifest as mf
from ybrewind.endpoints import PgEndpoint, libpq_reason
from ybrewind.errors import DumpIntegrityError, UsageError
from ybrewind.files import atomic_write, open_binary
from ybrewind.ysql.catalog import Filters
from ybrewind.ysql.dump import plan_slices, safe_filename
from ybrewind.ysql.model import KeyColumn, PrimaryKey, Table


def table(name: str, size: int, pk: list[KeyColumn] | None = None) -> Table:
    return Table(
        ("pg_class", 1), "public", name, estimated_bytes=size, primary_key=PrimaryKey("pk", pk) if pk else None
    )


def test_slices_cover_pages_and_last_is_open_ended() -> None:
    slices = plan_slices([table("small", 10), table("big", 10 * 8192 * 4)], False, 8192 * 4, jobs=4)
    assert [s.table.name for s in slices] == ["big"] * 10 + ["small"]  # biggest first
    wheres = [s.where.as_string(None) for s in slices if s.where is not None]
    assert wheres[0] == "ctid >= '(0,0)'::tid AND ctid < '(4,0)'::tid"
    assert wheres[-1] == "ctid >= '(36,0)'::tid"
    assert slices[-1].where is None


def test_no_slicing_with_one_job() -> None:
    assert [s.where for s in plan_slices([table("big", 1 << 40)], False, 1 << 20, jobs=1)] == [None]


def test_yugabyte_slices_by_hash_code_cover_0_to_65535() -> None:
    t = table("h", 4 << 20, [KeyColumn("a", "HASH"), KeyColumn("b", "HASH"), KeyColumn("c", "ASC")])
    slices = plan_slices([t], True, 1 << 20, jobs=2)
    texts = [s.where.as_string(None) for s in slices if s.where is not None]
    assert texts[0] == 'yb_hash_code("a", "b") BETWEEN 0 AND 16384'
    assert texts[-1].endswith("BETWEEN 49155 AND 65535")
    ranges = [tuple(int(x) for x in w.split("BETWEEN ")[1].split(" AND ")) for w in texts]
    assert all(ranges[i][1] + 1 == ranges[i + 1][0] for i in range(len(ranges) - 1))
    range_sharded = table("r", 4 << 20, [KeyColumn("id", "ASC")])
    assert [s.where for s in plan_slices([range_sharded], True, 1 << 20, jobs=2)] == [None]


def test_slices_per_table_are_bounded_by_the_jobs() -> None:
    """Tiny slices would make one file (written, fsynced, listed) per hash range or page range."""
    t = table("h", 1 << 30, [KeyColumn("a", "HASH")])
    slices = plan_slices([t], True, 1 << 10, jobs=3)
    texts = [s.where.as_string(None) for s in slices if s.where is not None]
    assert len(slices) == 12 and texts[0].endswith("BETWEEN 0 AND 5461") and texts[-1].endswith("AND 65535")
    ranges = [tuple(int(x) for x in w.split("BETWEEN ")[1].split(" AND ")) for w in texts]
    assert all(ranges[i][1] + 1 == ranges[i + 1][0] for i in range(len(ranges) - 1))
    assert len(plan_slices([table("big", 1 << 30)], False, 1 << 10, jobs=2)) == 8


def test_filters() -> None:
    f = Filters(schemas=["Sales", "pub*"], exclude_tables=["public.secret*"], exclude_table_data=["big"])
    assert f.schema_selected("Sales") and f.schema_selected("public") and not f.schema_selected("other")
    assert f.relation_selected("public", "orders") and not f.relation_selected("public", "secret_x")
    assert not f.data_selected("Sales", "big") and f.data_selected("Sales", "small")
    only = Filters(tables=["Sales.*"])
    assert only.only_relations and only.relation_selected("Sales", "x") and not only.relation_selected("public", "x")


def test_safe_filename_for_hostile_names() -> None:
    assert safe_filename(3, 'We"ird', "; DROP TABLE x; --") == "0003-We_ird._DROP_TABLE_x_--"
    assert safe_filename(1, "Ünï", "ç") == "0001-n"
    assert safe_filename(2, "", "") == "0002-table"


def test_endpoint_display_never_shows_password() -> None:
    e = PgEndpoint.parse("postgresql://bob:hunter2@db.example:5433/shop?sslmode=require")
    assert e.display() == "bob@db.example:5433/shop"
    assert "hunter2" not in e.display()
    with pytest.raises(UsageError):
        PgEndpoint.parse("ycql://host/ks")
    with pytest.raises(UsageError):
        PgEndpoint.parse("nonsense")  # not key=value


def test_libpq_reason_is_one_line() -> None:
    err = Exception(
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    assert "\n" not in libpq_reason(err) and libpq_reason(err).startswith("Connection refused")


def test_atomic_write_compressed_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x.sql.zst"
    with atomic_write(path, compress=True) as w:
        for i in range(1000):
            w.write(f"line {i}\n".encode())
    assert w.sha256 and w.bytes == path.stat().st_size
    assert path.stat().st_mode & 0o777 == 0o600
    with open_binary(path) as f:
        assert f.read().decode().count("\n") == 1000


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "x.sql"
    with pytest.raises(RuntimeError), atomic_write(path) as w:
        w.write(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_manifest_checks(tmp_path: Path) -> None:
    with pytest.raises(DumpIntegrityError, match="missing"):
        mf.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DumpIntegrityError, match="not valid JSON"):
        mf.read(tmp_path)
    m = mf.Manifest(api="ysql", source={}, dialect="postgres", snapshot={})
    with atomic_write(tmp_path / "a.sql") as w:
        w.write(b"SELECT 1;\n")
    m.files.append(mf.FileEntry("a.sql", "pre-data", w.sha256, w.bytes))
    m.write(tmp_path)
    assert mf.verify(tmp_path).files[0].sha256 == w.sha256
    data = json.loads((tmp_path / "manifest.json").read_text())
    data["format_version"] = 2
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(DumpIntegrityError, match="format version 2"):
        mf.read(tmp_path)


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("\\connect shop", True),
        ("\\connect -reuse-previous=on \"dbname='shop'\"", True),  # pg_dump --create output
        ("\\c -", True),
        ("\\connect other", False),
        ("\\connect -reuse-previous=on \"dbname='other'\"", False),
    ],
)
def test_connect_meta_commands_are_honored_only_for_the_target(line: str, ok: bool) -> None:
    import io

    from ybrewind.ysql import script
    from ybrewind.ysql.load import Loader, LoadOptions

    loader = Loader(PgEndpoint.parse("postgresql://u@h/shop"), LoadOptions())
    item = next(iter(script.iter_script(io.StringIO(line + "\n"), "x.sql")))
    if ok:
        loader._meta(item)  # type: ignore[arg-type]
    else:
        with pytest.raises(UsageError, match=r"x\.sql:1: the script switches to database 'other'"):
            loader._meta(item)  # type: ignore[arg-type]


def test_storage_errors_are_named() -> None:
    import errno

    from ybrewind.files import storage_error

    assert (
        storage_error("/d/x.sql", OSError(errno.ENOSPC, "No space left")).message == "disk full while writing /d/x.sql"
    )
    assert "permission denied" in storage_error("/d", OSError(errno.EACCES, "denied")).message
