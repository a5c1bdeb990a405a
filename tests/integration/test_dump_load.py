"""Dump + load round trips of the fixture database against a real PostgreSQL."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgServer
from ybrewind import manifest as mf
from ybrewind.endpoints import PgEndpoint
from ybrewind.ysql.catalog import Filters
from ybrewind.ysql.compare import compare
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import LoadOptions, load


def pg_dump_schema(pg: PgServer, dbname: str) -> list[str]:
    """pg_dump --schema-only, normalized: comments and psql restrict lines dropped, statements sorted."""
    out = subprocess.run(
        [pg.sandbox.binary("pg_dump"), "--schema-only", "-d", pg.url(dbname)],
        capture_output=True, text=True, check=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("--") and not ln.startswith("\\")]
    return sorted(s.strip() for s in "\n".join(lines).split(";\n") if s.strip())


def assert_same_database(pg: PgServer, a: str, b: str) -> None:
    assert pg_dump_schema(pg, a) == pg_dump_schema(pg, b)
    result = compare(pg.endpoint(a), pg.endpoint(b))
    assert result.schema_diff == []
    assert result.differing_tables == []
    assert len(result.tables) > 20 and result.identical


@pytest.mark.parametrize(("jobs", "compress", "use_psql"), [(1, False, True), (4, True, True), (2, False, False)])
def test_round_trip_fixture(
    pg: PgServer, fixture_db: str, tmp_path: Path, jobs: int, compress: bool, use_psql: bool
) -> None:
    """use_psql: COPY data read by psql children (the default when psql exists) or in-process."""
    out = tmp_path / "dump"
    options = DumpOptions(jobs=jobs, compress=compress, slice_bytes=1 << 20, use_psql=use_psql, psql_min_bytes=0)
    res = dump(pg.endpoint(fixture_db), out, options)
    assert res.rows > 50_000
    manifest = mf.read(out)
    data = manifest.files_of("data")
    assert all(f.path.endswith(".sql.zst") == compress for f in data)
    if jobs > 1:  # the 50,000-row table is bigger than the 1 MiB slice size: it is split
        per_table: dict[tuple[str, ...], int] = {}
        for f in data:
            per_table[tuple(f.table or ())] = per_table.get(tuple(f.table or ()), 0) + 1
        assert max(per_table.values()) > 1
    assert (out / "restore.sql").exists() != compress
    for path in out.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o077 == 0, path
    target = f"{fixture_db}_copy_{jobs}_{int(compress)}_{int(use_psql)}"
    result = load(out, pg.endpoint(target), LoadOptions(jobs=jobs, create=True))
    try:
        assert result.rows == res.rows
        assert_same_database(pg, fixture_db, target)
    finally:
        pg.drop_database(target)


def test_restore_with_psql_only(pg: PgServer, fixture_db: str, db: str, tmp_path: Path) -> None:
    out = tmp_path / "dump"
    dump(pg.endpoint(fixture_db), out, DumpOptions(jobs=2))
    pg.psql(db, "-f", str(out / "restore.sql"))
    assert_same_database(pg, fixture_db, db)


def test_plain_inserts_script_round_trip(pg: PgServer, fixture_db: str, db: str, tmp_path: Path) -> None:
    script = tmp_path / "fixture.sql"
    dump(pg.endpoint(fixture_db), script, DumpOptions(inserts=True), plain=True)
    assert "INSERT INTO" in script.read_text() and "FROM stdin" not in script.read_text()
    load(script, pg.endpoint(db))
    assert_same_database(pg, fixture_db, db)


def test_loads_pg_dump_plain_output(pg: PgServer, fixture_db: str, db: str, tmp_path: Path) -> None:
    script = tmp_path / "pg_dump.sql"
    subprocess.run([pg.sandbox.binary("pg_dump"), "-f", str(script), "-d", pg.url(fixture_db)], check=True)
    result = load(script, pg.endpoint(db))
    assert result.rows > 50_000
    assert_same_database(pg, fixture_db, db)


def test_filters(pg: PgServer, fixture_db: str, db: str, tmp_path: Path) -> None:
    out = tmp_path / "dump"
    filters = Filters(tables=["public.big_*", "public.types_numeric", "public.empty_table"],
                      exclude_tables=["*empty*"], exclude_table_data=["types_numeric"])
    res = dump(pg.endpoint(fixture_db), out, DumpOptions(filters=filters))
    assert res.rows == 50_000
    load(out, pg.endpoint(db))
    with pg.connect(db) as conn:
        tables = conn.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
                              "('pg_catalog', 'information_schema') ORDER BY 2").fetchall()
        assert tables == [("public", "big_slices"), ("public", "types_numeric")]
        assert conn.execute("SELECT count(*) FROM public.types_numeric").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM public.big_slices").fetchone() == (50_000,)


def test_schema_only_then_data_only(pg: PgServer, fixture_db: str, db: str, tmp_path: Path) -> None:
    dump(pg.endpoint(fixture_db), tmp_path / "schema", DumpOptions(schema_only=True))
    dump(pg.endpoint(fixture_db), tmp_path / "data", DumpOptions(data_only=True, jobs=2))
    assert not mf.read(tmp_path / "schema").files_of("data")
    load(tmp_path / "schema", pg.endpoint(db))
    load(tmp_path / "data", pg.endpoint(db), LoadOptions(jobs=2))  # FKs exist already: checks deferred
    assert_same_database(pg, fixture_db, db)


def test_dump_is_one_snapshot_under_concurrent_transfers(pg: PgServer, db: str, tmp_path: Path) -> None:
    accounts, initial = 2000, 1000
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL, pad text)")
        conn.execute(
            "INSERT INTO account SELECT g, %s, repeat('x', 400) FROM generate_series(1, %s) g", [initial, accounts]
        )
    stop = threading.Event()
    transfers = 0

    def move_money() -> None:
        nonlocal transfers
        import random

        rnd = random.Random(7)
        with pg.connect(db) as conn:
            while not stop.is_set():
                a, b = rnd.randint(1, accounts), rnd.randint(1, accounts)
                amount = rnd.randint(1, 50)
                with conn.transaction():
                    conn.execute("UPDATE account SET balance = balance - %s WHERE id = %s", [amount, a])
                    conn.execute("UPDATE account SET balance = balance + %s WHERE id = %s", [amount, b])
                transfers += 1

    mover = threading.Thread(target=move_money)
    mover.start()
    try:
        time.sleep(0.3)
        out = tmp_path / "dump"
        dump(pg.endpoint(db), out, DumpOptions(jobs=4, slice_bytes=64 << 10))
    finally:
        stop.set()
        mover.join()
    assert transfers > 0
    assert len(mf.read(out).files_of("data")) > 4  # the table really was sliced across workers
    target = db + "_copy"
    load(out, pg.endpoint(target), LoadOptions(create=True, jobs=2))
    try:
        with psycopg.connect(pg.url(target)) as conn:
            assert conn.execute("SELECT count(*), sum(balance) FROM account").fetchone() == (
                accounts, accounts * initial)
    finally:
        pg.drop_database(target)


def test_password_in_url_works_for_psql_workers_and_is_written_nowhere(pg: PgServer, db: str, tmp_path: Path) -> None:
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g")
        conn.execute("DROP ROLE IF EXISTS dumper_pw")
        conn.execute("CREATE ROLE dumper_pw LOGIN PASSWORD 's3cret-Pw'")
        conn.execute("GRANT SELECT ON t TO dumper_pw")
    url = f"postgresql://dumper_pw:s3cret-Pw@127.0.0.1:{pg.sandbox.port}/{db}"
    out = tmp_path / "dump"
    res = dump(PgEndpoint.parse(url), out, DumpOptions(jobs=2, slice_bytes=16 << 10, psql_min_bytes=0))  # psql children need it
    assert res.rows == 3000
    for path in out.rglob("*"):
        if path.is_file():
            assert b"s3cret" not in path.read_bytes(), path
