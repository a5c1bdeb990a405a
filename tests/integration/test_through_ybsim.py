"""ybrewind run through ybsim, the YugabyteDB-flavoured endpoint (tests/support/ybsim).

These are YugabyteDB paths run against an emulator in front of PostgreSQL, not against
YugabyteDB. Each emulated behaviour a test relies on is cited in tests/support/ybsim/README.md.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PgServer
from tests.integration.test_yugabyte import YB_SCHEMA
from tests.support.archive import drop_slot, fast_options, running_archiver, wait_for_commit
from tests.support.cli import run_cli
from tests.support.ybsim.process import Ybsim
from ybrewind.archive.repo import Repository
from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import UsageError, YbrewindError
from ybrewind.ysql.clone import clone
from ybrewind.ysql.compare import compare, table_checksum
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import LoadOptions, load
from ybrewind.ysql.restore import RestoreOptions, restore
from ybrewind.ysql.stream import ReplicationConnection

_names = itertools.count()
Oracle = dict[str, tuple[int, str]]

WORKLOAD_SCHEMA = """
CREATE TABLE acct (id int, owner text NOT NULL, balance numeric(12,2), doc text, PRIMARY KEY (id HASH))
SPLIT INTO 2 TABLETS;
CREATE TABLE ranged (k int, v text, PRIMARY KEY (k ASC)) SPLIT AT VALUES ((50));
CREATE INDEX NONCONCURRENTLY acct_owner ON acct (owner HASH);
INSERT INTO acct SELECT g, 'o' || g, g, CASE WHEN g % 5 = 0 THEN repeat(md5(g::text), 300) END
FROM generate_series(1, 40) g;
INSERT INTO ranged SELECT g, md5(g::text) FROM generate_series(1, 60) g;
"""


def new_db(sim: Ybsim, prefix: str) -> str:
    return sim.create_database(f"{prefix}_{next(_names)}")


@pytest.fixture
def ydb(ybsim: Ybsim) -> Iterator[str]:
    name = new_db(ybsim, "thr")
    yield name
    ybsim.drop_database(name)


@pytest.fixture
def fdb(ybsim_full: Ybsim) -> Iterator[str]:
    name = new_db(ybsim_full, "thrf")
    yield name
    ybsim_full.drop_database(name)


def state(conn: psycopg.Connection) -> Oracle:
    tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return {t: table_checksum(conn, "public", t) for (t,) in tables}


def now_us(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").fetchone()[0])


def wait_started(repo: Repository, outcome: dict[str, Any], timeout: float = 60.0) -> None:
    """Like tests.support.archive.wait_until_started, but returns as soon as the archiver failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "error" in outcome:
            raise outcome.pop("error")
        st = repo.status()
        if st and st.get("running"):
            return
        time.sleep(0.05)
    raise AssertionError("archiver did not start")


def workload(
    conn: psycopg.Connection, steps: int, ddl: bool = False, seed: int = 3, first: int = 0
) -> tuple[list[tuple[int, Oracle]], int]:
    """One writer. After step i: (a time between its commit and the next step's, the state then),
    for every step but the last; and a time the last step committed after (wait for it).

    Commit times come from the clock around each step (txid_current() and commit timestamps do not
    exist on YugabyteDB): the step commits after ``before`` and before ``after``."""
    rnd = random.Random(seed)
    out: list[tuple[int, Oracle]] = []
    previous_after = None
    for i in range(first, first + steps):
        before = now_us(conn)
        if previous_after is not None:
            out[-1] = ((previous_after + before) // 2, out[-1][1])
        kind = rnd.choice(["insert", "update", "update", "key", "delete", "range"])
        with conn.transaction():
            if ddl and i == first + steps // 3:
                conn.execute("ALTER TABLE acct ADD COLUMN tier int DEFAULT 1")
            elif kind == "insert":
                conn.execute("INSERT INTO acct (id, owner, balance) VALUES (%s, %s, %s)", [1000 + i, f"n{i}", i])
            elif kind == "update":  # non-key columns
                conn.execute("UPDATE acct SET balance = balance + 1, owner = owner || '+' WHERE id %% 7 = %s", [i % 7])
            elif kind == "key":  # the key itself moves
                conn.execute("UPDATE ranged SET k = k + 1000 WHERE k = (SELECT min(k) FROM ranged)")
            elif kind == "delete":
                conn.execute("DELETE FROM acct WHERE id = (SELECT min(id) FROM acct)")
            else:
                conn.execute("UPDATE ranged SET v = v || 'x' WHERE k %% 5 = %s", [i % 5])
        after = now_us(conn)
        out.append((after, state(conn)))
        previous_after = after
        time.sleep(0.02)
    # the last step's time is after its commit, past what an archive holds: do not restore to it
    return out[:-1], before


def restore_and_check(sim: Ybsim, repo: Repository, oracle: list[tuple[int, Oracle]], picks: list[int]) -> None:
    for i in picks:
        at, expected = oracle[i]
        target = f"restored_{next(_names)}"
        try:
            restore(repo, sim.endpoint(target), RestoreOptions(target_us=at, jobs=2))
            with sim.connect(target) as conn:
                assert state(conn) == expected, f"state after step {i}"
        finally:
            sim.drop_database(target)


def archive_workload(
    sim: Ybsim, db: str, tmp_path: Path, steps: int, ddl: bool = False, prepare: str = "", restart: bool = False
) -> tuple[Repository, list[tuple[int, Oracle]], int | None]:
    """Archive a workload through the endpoint; with ``restart`` the archiver is stopped halfway and
    resumes from its slot (virtual LSNs both ways). Also returns the slot's snapshot hybrid time."""
    src = sim.endpoint(db)
    with sim.connect(db) as conn:
        conn.execute(WORKLOAD_SCHEMA.encode())
        if prepare:
            conn.execute(prepare.encode())
    repo = Repository.open(str(tmp_path / "repo"))
    slot = f"s_{db}"
    oracle: list[tuple[int, Oracle]] = []
    slot_ht = None
    try:
        for phase, n in enumerate([steps // 2, steps - steps // 2] if restart else [steps]):
            with running_archiver(src, repo, fast_options(slot)) as outcome, sim.connect(db) as conn:
                wait_started(repo, outcome)
                if slot_ht is None:
                    row = conn.execute(
                        "SELECT yb_restart_commit_ht FROM pg_replication_slots WHERE slot_name = %s", [slot]
                    ).fetchone()
                    slot_ht = int(row[0]) if row and row[0] is not None else None
                part, fence = workload(conn, n, ddl=ddl and phase == 0, seed=3 + phase, first=len(oracle) + phase)
                oracle += part
                wait_for_commit(repo, fence)
    finally:
        with sim.connect(db) as conn:
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone():
                drop_slot(conn, slot)
    return repo, oracle, slot_ht


# -- dump / load ---------------------------------------------------------------------------------
def test_dump_load_round_trip_keeps_sharding(ybsim: Ybsim, ydb: str, tmp_path: Path) -> None:
    with ybsim.connect(ydb) as conn:
        conn.execute(YB_SCHEMA.encode())
    src = ybsim.endpoint(ydb)
    # 1 KiB slices: yb_hash_code ranges over the hash key, at most 4 per job and table
    dump(src, tmp_path / "d", DumpOptions(jobs=3, slice_bytes=1 << 10))
    files = [p.name for p in (tmp_path / "d" / "data").iterdir()]
    assert len(files) > 3 and sum("hashed" in f for f in files) <= 12, files
    pre = (tmp_path / "d" / "pre-data.sql").read_text()
    assert 'PRIMARY KEY (("a", "b") HASH, "c" ASC)' in pre and "SPLIT INTO 3 TABLETS" in pre
    assert "SPLIT AT VALUES ((100), (200))" in pre
    copy = f"{ydb}_copy"
    try:
        load(tmp_path / "d", src.with_dbname(copy), LoadOptions(jobs=2, create=True))
        result = compare(src, src.with_dbname(copy))
        assert result.identical, result.schema_diff[:20]
        with ybsim.connect(copy) as conn:
            assert conn.execute("SELECT num_tablets FROM yb_table_properties('hashed'::regclass)").fetchone() == (3,)
    finally:
        ybsim.drop_database(copy)


def test_dump_yugabyte_to_postgres(ybsim: Ybsim, ydb: str, pg: PgServer, db: str, tmp_path: Path) -> None:
    with ybsim.connect(ydb) as conn:
        conn.execute(YB_SCHEMA.encode())
    src = ybsim.endpoint(ydb)
    dump(src, tmp_path / "d", DumpOptions(dialect="postgres", jobs=2))
    load(tmp_path / "d", pg.endpoint(db), LoadOptions(jobs=2))
    assert compare(src, pg.endpoint(db), owners=False, privileges=False).differing_tables == []


def test_postgres_fixture_loads_into_yugabyte(ybsim: Ybsim, pg: PgServer, fixture_db: str, tmp_path: Path) -> None:
    """A PostgreSQL source rendered for YugabyteDB goes through the endpoint's YSQL checks."""
    dump(pg.endpoint(fixture_db), tmp_path / "d", DumpOptions(dialect="yugabyte", jobs=2, owners=False, privileges=False))
    target = f"fixture_yb_{next(_names)}"
    with ybsim.connect() as conn:  # roles are cluster-wide: the fixture's policies name them
        for role in ("ybrewind_fixture_owner", "ybrewind_fixture_reader"):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                conn.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        load(tmp_path / "d", ybsim.endpoint(target), LoadOptions(jobs=2, create=True))
        result = compare(pg.endpoint(fixture_db), ybsim.endpoint(target), owners=False, privileges=False)
        assert result.differing_tables == []
    finally:
        ybsim.drop_database(target)


def test_colocated_database_round_trip(ybsim: Ybsim, tmp_path: Path) -> None:
    src_db = ybsim.create_database(f"coloc_{next(_names)}", colocated=True)
    copy = f"{src_db}_copy"
    try:
        with ybsim.connect(src_db) as conn:
            conn.execute("CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'x' FROM generate_series(1, 20) g")
            conn.execute("CREATE TABLE b (id int PRIMARY KEY, v text) WITH (colocation = false) SPLIT INTO 2 TABLETS")
        src = ybsim.endpoint(src_db)
        dump(src, tmp_path / "d", DumpOptions(jobs=2))
        load(tmp_path / "d", src.with_dbname(copy), LoadOptions(jobs=2, create=True))
        assert compare(src, src.with_dbname(copy)).identical
        with ybsim.connect(copy) as conn:
            assert conn.execute("SELECT yb_is_database_colocated()").fetchone()[0] is True
    finally:
        ybsim.drop_database(copy)
        ybsim.drop_database(src_db)


# -- clone ---------------------------------------------------------------------------------------
def test_clone_at_read_time(ybsim: Ybsim, ydb: str) -> None:
    with ybsim.connect(ydb) as conn:
        conn.execute(WORKLOAD_SCHEMA.encode())
        time.sleep(1.0)  # the endpoint's snapshot ring ticks every 0.25 s
        expected = state(conn)
        as_of = now_us(conn)
        time.sleep(1.0)  # the endpoint's snapshot ring ticks every 0.25 s
        conn.execute("DELETE FROM ranged WHERE k <= 30; UPDATE acct SET balance = 0")
    new = f"{ydb}_asof"
    try:
        result = clone(ybsim.endpoint(ydb), new, as_of)
        assert result.method == "read-time"
        with ybsim.connect(new) as conn:
            assert state(conn) == expected
    finally:
        ybsim.drop_database(new)


# -- archive and restore -------------------------------------------------------------------------
def test_archive_restore_to_several_times(ybsim_full: Ybsim, fdb: str, tmp_path: Path) -> None:
    """Replica identity FULL (ysql_yb_default_replica_identity=FULL): non-key and key UPDATEs, DDL
    on a streamed table, an archiver restart halfway, restored to several times and compared with
    the recorded content."""
    repo, oracle, slot_ht = archive_workload(ybsim_full, fdb, tmp_path, steps=24, ddl=True, restart=True)
    restore_and_check(ybsim_full, repo, oracle, [2, 9, 13, 21])
    # the base backup's time is the slot's snapshot: hybrid time >> 12 = Unix µs
    assert slot_ht is not None and repo.base_backups()[0].time_us == slot_ht >> 12


def test_archive_default_identity_updates(ybsim_full: Ybsim, fdb: str, tmp_path: Path) -> None:
    repo, oracle, _ = archive_workload(
        ybsim_full, fdb, tmp_path, steps=16,
        prepare="ALTER TABLE acct REPLICA IDENTITY DEFAULT; ALTER TABLE ranged REPLICA IDENTITY DEFAULT",
    )
    restore_and_check(ybsim_full, repo, oracle, [14])


def test_archive_with_yugabyte_defaults(ybsim: Ybsim, ydb: str, tmp_path: Path) -> None:
    try:
        repo, oracle, _ = archive_workload(ybsim, ydb, tmp_path, steps=8)
    except UsageError as e:  # a clear refusal is acceptable
        assert "replica identity" in str(e).lower()
        return
    restore_and_check(ybsim, repo, oracle, [6])


def test_archive_new_table_and_truncate(ybsim_full: Ybsim, fdb: str, tmp_path: Path) -> None:
    src = ybsim_full.endpoint(fdb)
    with ybsim_full.connect(fdb) as conn:
        conn.execute(WORKLOAD_SCHEMA.encode())
        conn.execute("CREATE TABLE parent (k int PRIMARY KEY); CREATE TABLE child (k int PRIMARY KEY, p int REFERENCES parent)")
        conn.execute("INSERT INTO parent SELECT generate_series(1, 5); INSERT INTO child SELECT g, g FROM generate_series(1, 5) g")
    repo = Repository.open(str(tmp_path / "repo"))
    slot = f"s_{fdb}"
    try:
        with running_archiver(src, repo, fast_options(slot)) as outcome, ybsim_full.connect(fdb) as conn:
            wait_started(repo, outcome)
            conn.execute("CREATE TABLE late (k int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO late SELECT g, md5(g::text) FROM generate_series(1, 30) g")
            conn.execute("TRUNCATE ranged")
            # one statement, two tables (cascade): replayed as one, or the foreign key refuses it
            conn.execute("TRUNCATE parent CASCADE; INSERT INTO parent VALUES (7)")
            fence = now_us(conn)  # the UPDATE commits after it: a streamed change to wait for
            conn.execute("UPDATE acct SET balance = 0 WHERE id = 1")
            expected = state(conn)
            wait_for_commit(repo, fence)
            # the archiver saw CREATE TABLE in the stream and put its TRUNCATE trigger on the new table
            deadline = time.monotonic() + 10
            while not conn.execute(
                "SELECT 1 FROM pg_trigger WHERE tgrelid = 'late'::regclass AND tgname = 'ybrewind_truncate'"
            ).fetchone():
                assert time.monotonic() < deadline, "no TRUNCATE trigger on a table created while archiving"
                time.sleep(0.1)
        target = f"{fdb}_pitr"
        try:
            result = restore(repo, ybsim_full.endpoint(target), RestoreOptions(jobs=2))
            with ybsim_full.connect(target) as conn:
                got = state(conn)
                # the archiver's TRUNCATE triggers stay on the source: not in the restored schema
                assert conn.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").fetchone() == (0,)
            # the TRUNCATE the archiver's trigger recorded is replayed at its place
            assert got["ranged"] == expected["ranged"] == (0, "0")
            assert (got["parent"], got["child"]) == (expected["parent"], expected["child"])
            assert expected["child"] == (0, "0") and expected["parent"][0] == 1
            # the new table: reproduced, or the restore says it could not (issue 9 finding 3)
            gaps = " ".join(result.gaps)
            assert got["late"] == expected["late"] or "late" in gaps, gaps
        finally:
            ybsim_full.drop_database(target)
    finally:
        with ybsim_full.connect(fdb) as conn:
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone():
                drop_slot(conn, slot)


def test_truncate_refused_while_a_slot_streams_the_table(ybsim: Ybsim, ydb: str) -> None:
    """With YugabyteDB's default enable_truncate_cdcsdk_table=false a streamed table cannot be
    truncated while a slot exists: nothing for the archive to miss (ybsim README)."""
    with ybsim.connect(ydb) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE loose (a int)")
        conn.execute("INSERT INTO t VALUES (1); TRUNCATE t")  # no slot yet
        repl = ReplicationConnection(ybsim.endpoint(ydb))
        try:
            repl.create_slot(f"s_{ydb}", snapshot="NOEXPORT_SNAPSHOT")
            conn.execute("INSERT INTO t VALUES (2)")
            with pytest.raises(psycopg.errors.FeatureNotSupported, match="CDC stream"):
                conn.execute("TRUNCATE t")
            conn.execute("TRUNCATE loose")  # no primary key: not in the stream
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        finally:
            repl.drop_slot(f"s_{ydb}")
            repl.close()
        conn.execute("TRUNCATE t")


def test_archive_table_without_primary_key(ybsim_full: Ybsim, fdb: str, tmp_path: Path) -> None:
    src = ybsim_full.endpoint(fdb)
    with ybsim_full.connect(fdb) as conn:
        conn.execute("CREATE TABLE nokey (a int, b text)")
    repo = Repository.open(str(tmp_path / "repo"))
    slot = f"s_{fdb}"
    try:
        try:
            with running_archiver(src, repo, fast_options(slot)) as outcome, ybsim_full.connect(fdb) as conn:
                wait_started(repo, outcome)
                conn.execute("INSERT INTO nokey SELECT g, 'x' FROM generate_series(1, 10) g")
                expected = state(conn)
                wait_for_commit(repo, now_us(conn) - 50_000, timeout=3)
        except UsageError as e:  # refusing to archive what cannot be archived is acceptable
            assert "primary key" in str(e)
            return
        except AssertionError:  # nothing archived: acceptable only if the archiver said why
            warnings = outcome["result"].warnings if "result" in outcome else []
            assert any("nokey" in w and "primary key" in w for w in warnings), warnings
            return
        target = f"{fdb}_pitr"
        try:
            restore(repo, ybsim_full.endpoint(target), RestoreOptions(jobs=2))
            with ybsim_full.connect(target) as conn:
                assert state(conn) == expected
        finally:
            ybsim_full.drop_database(target)
    finally:
        with ybsim_full.connect(fdb) as conn:
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone():
                drop_slot(conn, slot)


def test_postgres_archive_restores_into_yugabyte(pg: PgServer, db: str, ybsim: Ybsim, tmp_path: Path) -> None:
    """A plain PostgreSQL archive restored to a YugabyteDB target (YSQL DDL through the endpoint)."""
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric(12,2), doc text)")
        conn.execute("CREATE TABLE ranged (k int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO acct SELECT g, 'o' || g, g, NULL FROM generate_series(1, 40) g")
        conn.execute("INSERT INTO ranged SELECT g, md5(g::text) FROM generate_series(1, 60) g")
    repo = Repository.open(str(tmp_path / "repo"))
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")) as outcome, pg.connect(db) as conn:
        wait_started(repo, outcome)
        oracle, fence = workload(conn, 12)
        wait_for_commit(repo, fence)
    with pg.connect(db) as conn:
        drop_slot(conn, f"s_{db}")
    restore_and_check(ybsim, repo, oracle, [4, 10])


def test_dump_as_non_superuser(ybsim: Ybsim, ydb: str, tmp_path: Path) -> None:
    with ybsim.connect(ydb) as conn:
        conn.execute(WORKLOAD_SCHEMA.encode())
        conn.execute("DROP ROLE IF EXISTS ybsim_reader")
        conn.execute("CREATE ROLE ybsim_reader LOGIN PASSWORD 'pw'")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO ybsim_reader")
    try:
        src = PgEndpoint.parse(f"postgresql://ybsim_reader:pw@127.0.0.1:{ybsim.port}/{ydb}")
        # without yb_read_time: an exported snapshot (yb_enable_pg_export_snapshot, on by default in
        # the YugabyteDB versions the endpoint emulates: src/postgres/src/backend/utils/misc/pg_yb_utils.c)
        dump(src, tmp_path / "d", DumpOptions(jobs=2))
        assert (tmp_path / "d" / "manifest.json").exists()
        load(tmp_path / "d", ybsim.endpoint(f"{ydb}_copy"), LoadOptions(jobs=2, create=True))
        try:
            assert compare(ybsim.endpoint(ydb), ybsim.endpoint(f"{ydb}_copy")).differing_tables == []
        finally:
            ybsim.drop_database(f"{ydb}_copy")
        # a past time needs yb_read_time: one line that says a superuser is needed
        past = int(time.time() * 1e6) - 2_000_000
        for attempt in (
            lambda: dump(src, tmp_path / "d2", DumpOptions(jobs=2, read_time_us=past)),
            lambda: clone(src, f"{ydb}_asof", past),
        ):
            with pytest.raises(YbrewindError) as info:
                attempt()
            assert "needs a superuser" in str(info.value) and "\n" not in str(info.value)
            assert "permission denied" not in str(info.value)
    finally:
        with ybsim.connect(ydb) as conn:
            conn.execute("DROP OWNED BY ybsim_reader")
            conn.execute("DROP ROLE ybsim_reader")


def test_endpoint_is_seen_as_yugabyte_by_every_entry_point(ybsim: Ybsim, ydb: str) -> None:
    from ybrewind.ysql.archiver import source_identity

    with psycopg.connect(ybsim.url(ydb)) as conn:
        assert source_identity(conn)["dialect"] == "yugabyte"
    assert PgEndpoint.parse(ybsim.url(ydb)).display().endswith(f"/{ydb}")


# -- ybrewind check ------------------------------------------------------------------------------
def test_check_through_the_endpoint(
    ybsim: Ybsim, ydb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ybrewind check`` sees a YugabyteDB: its replica identities (CHANGE by default), tables
    without a primary key, no wal_level, history retention; a role without REPLICATION; --repo."""
    with ybsim.connect(ydb) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE nokey (a int)")
    code, out, _ = run_cli(capsys, "check", ybsim.url(ydb), "--json")
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0 and report["kind"] == "yugabyte", out
    assert checks["server"]["detail"].startswith("YugabyteDB 2025.1")
    assert checks["wal_level"]["status"] == "ok" and "no wal_level" in checks["wal_level"]["detail"]
    assert checks["history_retention"]["status"] == "ok"
    identity = checks["replica_identity"]
    assert identity["status"] == "warn" and "public.nokey" in identity["detail"] and "public.t" in identity["detail"]

    with ybsim.connect(ydb) as conn:
        conn.execute("DROP ROLE IF EXISTS ybsim_checker")
        conn.execute("CREATE ROLE ybsim_checker LOGIN PASSWORD 'pw'")
    try:
        monkeypatch.setenv("PGPASSWORD", "pw")
        code, out, err = run_cli(
            capsys, "check", f"postgresql://ybsim_checker@127.0.0.1:{ybsim.port}/{ydb}", "--json"
        )
        assert out, err
        got = {c["name"]: c for c in json.loads(out)["checks"]}
        assert code == 1 and got["replication"]["status"] == "fail" and got["superuser"]["status"] == "warn"
        assert "yb_read_time" in got["superuser"]["detail"]
    finally:
        with ybsim.connect(ydb) as conn:
            conn.execute("DROP ROLE ybsim_checker")

    repo_dir = tmp_path / "repo"
    slot = f"s_{ydb}"
    with ybsim.connect(ydb) as conn:
        conn.execute("DROP TABLE nokey")
    try:
        with running_archiver(ybsim.endpoint(ydb), Repository.open(str(repo_dir)), fast_options(slot)) as outcome:
            wait_started(Repository.open(str(repo_dir)), outcome)
        code, out, _ = run_cli(capsys, "check", ybsim.url(ydb), "--repo", str(repo_dir), "--json")
        got = {c["name"]: c for c in json.loads(out)["checks"]}
        assert code == 0 and got["repository"]["status"] == "ok" and got["repository_slot"]["status"] == "ok", out
        # the archiver set REPLICA IDENTITY DEFAULT before its slot
        assert got["replica_identity"]["status"] == "ok", out
    finally:
        with ybsim.connect(ydb) as conn:
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone():
                drop_slot(conn, slot)
