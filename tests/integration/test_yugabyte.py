"""YSQL tests against a real YugabyteDB: run only when YBREWIND_YSQL_URL names one.

No YugabyteDB can run on the development machine, so by default these are skipped with a visible
reason. Example: YBREWIND_YSQL_URL=postgresql://yugabyte@127.0.0.1:5433/yugabyte ./scripts/test
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from psycopg import sql

from tests.conftest import PgServer
from ybrewind.endpoints import PgEndpoint
from ybrewind.ysql.compare import compare
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import LoadOptions, load

YB_URL = os.environ.get("YBREWIND_YSQL_URL")
pytestmark = pytest.mark.skipif(not YB_URL, reason="no YugabyteDB endpoint: set YBREWIND_YSQL_URL to run")

YB_SCHEMA = """
CREATE TABLE hashed (a int, b int, c text, v jsonb, PRIMARY KEY ((a, b) HASH, c ASC)) SPLIT INTO 3 TABLETS;
CREATE TABLE ranged (id int, v text, PRIMARY KEY (id ASC)) SPLIT AT VALUES ((100), (200));
CREATE INDEX NONCONCURRENTLY hashed_c ON hashed (c HASH) INCLUDE (v);
CREATE INDEX NONCONCURRENTLY ranged_v ON ranged (v DESC);
INSERT INTO hashed SELECT g % 50, g, md5(g::text), jsonb_build_object('g', g) FROM generate_series(1, 3000) g;
INSERT INTO ranged SELECT g, md5(g::text) FROM generate_series(1, 300) g;
"""


@pytest.fixture
def yb_db() -> str:
    assert YB_URL
    name = f"ybrewind_{uuid.uuid4().hex[:8]}"
    admin = PgEndpoint.parse(YB_URL)
    with admin.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with admin.with_dbname(name).connect() as conn:
        conn.execute(YB_SCHEMA.encode())
    yield name
    with admin.connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def test_yugabyte_round_trip_keeps_sharding(yb_db: str, tmp_path: Path) -> None:
    assert YB_URL
    src = PgEndpoint.parse(YB_URL).with_dbname(yb_db)
    dump(src, tmp_path / "d", DumpOptions(jobs=3, slice_bytes=1 << 10))
    pre = (tmp_path / "d" / "pre-data.sql").read_text()
    assert 'PRIMARY KEY (("a", "b") HASH, "c" ASC)' in pre and "SPLIT INTO 3 TABLETS" in pre
    assert "SPLIT AT VALUES ((100), (200))" in pre
    target = src.with_dbname(yb_db + "_copy")
    load(tmp_path / "d", target, LoadOptions(jobs=2, create=True))
    assert compare(src, target).identical


def test_yugabyte_to_postgres(yb_db: str, pg: PgServer, db: str, tmp_path: Path) -> None:
    assert YB_URL
    src = PgEndpoint.parse(YB_URL).with_dbname(yb_db)
    dump(src, tmp_path / "d", DumpOptions(dialect="postgres", jobs=2))
    load(tmp_path / "d", pg.endpoint(db), LoadOptions(jobs=2))
    result = compare(src, pg.endpoint(db), owners=False, privileges=False)
    assert result.differing_tables == []


def test_yugabyte_clone_at_read_time(yb_db: str) -> None:
    """Without a repository, a YB clone is a dump read at yb_read_time = T (within history retention)."""
    import time

    from ybrewind.ysql.clone import clone

    assert YB_URL
    src = PgEndpoint.parse(YB_URL).with_dbname(yb_db)
    with src.connect() as conn:
        before = conn.execute("SELECT count(*) FROM ranged").fetchone()[0]
        as_of = int(conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").fetchone()[0])
        time.sleep(0.5)
        conn.execute("DELETE FROM ranged WHERE id <= 100")
    result = clone(src, yb_db + "_asof", as_of)
    assert result.method == "read-time"
    with src.with_dbname(yb_db + "_asof").connect() as conn:
        assert conn.execute("SELECT count(*) FROM ranged").fetchone()[0] == before


@pytest.mark.skipif(
    not os.environ.get("YBREWIND_YB_CLONE_SOURCE"),
    reason="native clone needs a database with a snapshot schedule: set YBREWIND_YB_CLONE_SOURCE",
)
def test_yugabyte_native_clone() -> None:
    from ybrewind.pitr import now_us
    from ybrewind.ysql.clone import clone

    assert YB_URL
    source_db = os.environ["YBREWIND_YB_CLONE_SOURCE"]
    src = PgEndpoint.parse(YB_URL).with_dbname(source_db)
    new_db = f"ybrewind_native_{uuid.uuid4().hex[:6]}"
    result = clone(src, new_db, now_us() - 5_000_000, native=True)
    assert result.method == "native"
    with PgEndpoint.parse(YB_URL).connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(new_db)))


def test_yugabyte_archive_and_restore(yb_db: str, tmp_path: Path) -> None:
    """The archiver's YugabyteDB path: USE_SNAPSHOT base backup, streaming, restore --latest."""
    from tests.support.archive import drop_slot, fast_options, running_archiver, wait_for_commit, wait_until_started
    from ybrewind.archive.repo import Repository
    from ybrewind.ysql.restore import RestoreOptions, restore

    assert YB_URL
    src = PgEndpoint.parse(YB_URL).with_dbname(yb_db)
    repo = Repository.open(str(tmp_path / "repo"))
    slot = f"s_{yb_db}"
    with running_archiver(src, repo, fast_options(slot)), src.connect() as conn:
        wait_until_started(repo, timeout=120)
        conn.execute("INSERT INTO ranged SELECT g, 'new' FROM generate_series(1001, 1100) g")
        conn.execute("UPDATE hashed SET v = '{\"k\": 1}' WHERE a = 1")
        # the last transaction commits after this time, the others before it: wait for that one
        ts = conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").fetchone()[0]
        conn.execute("DELETE FROM ranged WHERE id <= 10")
        wait_for_commit(repo, int(ts), timeout=120)
    # Issue 9: DEFAULT set before the slot (pgoutput refuses YB's CHANGE); the repository names the
    # cluster by its CDC stream id; the base backup's time is the slot snapshot's hybrid time.
    with src.connect() as conn:
        idents = {r[0] for r in conn.execute("SELECT relreplident FROM pg_class WHERE relname IN ('ranged', 'hashed')")}
        stream = conn.execute(
            "SELECT yb_stream_id::text FROM pg_replication_slots WHERE slot_name = %s", [slot]
        ).fetchone()
    assert idents == {"d"}
    assert repo.require_info().source["system_identifier"] == f"yb-stream:{stream[0]}"
    target = src.with_dbname(yb_db + "_pitr")
    try:
        restore(repo, target, RestoreOptions(jobs=2))
        assert compare(src, target).differing_tables == []
    finally:
        with src.connect() as conn:
            drop_slot(conn, slot)


def test_yugabyte_check(yb_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tests.support.cli import run_cli

    assert YB_URL
    _, out, _ = run_cli(capsys, "check", PgEndpoint.parse(YB_URL).with_dbname(yb_db).conninfo, "--json")
    report = json.loads(out)
    assert report["kind"] == "yugabyte", out
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["server"]["detail"].startswith("YugabyteDB") and "history_retention" in checks
