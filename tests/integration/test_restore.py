"""Point-in-time restore and clone, checked against an oracle recorded while the workload ran."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgServer
from tests.support.archive import (
    drop_slot,
    fast_options,
    last_commit_us,
    running_archiver,
    wait_for_commit,
    wait_until_started,
)
from tests.support.cli import assert_one_line_error, run_cli
from ybrewind.archive.repo import Repository
from ybrewind.pitr import to_iso
from ybrewind.ysql.archiver import ArchiveOptions, backup
from ybrewind.ysql.clone import clone
from ybrewind.ysql.compare import table_checksum
from ybrewind.ysql.restore import RestoreOptions, restore

SCHEMA = """
CREATE TABLE acct (id serial PRIMARY KEY, owner text NOT NULL, balance numeric(12,2), doc text, meta jsonb);
CREATE TABLE nokey (a int, b text);
ALTER TABLE nokey REPLICA IDENTITY FULL;
CREATE TABLE "Lo""g x" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "when" timestamptz, msg text);
INSERT INTO acct (owner, balance, doc)
SELECT 'o' || g, g, CASE WHEN g % 5 = 0 THEN (SELECT string_agg(md5((g * i)::text), '') FROM generate_series(1, 300) i) END
FROM generate_series(1, 50) g;
"""

Oracle = dict[str, tuple[int, str]]


# Row text forms depend on these session settings: the same on both sides of every comparison.
NEUTRAL_SESSION = (
    "SET timezone = 'UTC'; SET datestyle = 'ISO, YMD'; SET intervalstyle = 'postgres'; "
    "SET extra_float_digits = 3; SET bytea_output = 'hex'"
)


def snapshot(conn: psycopg.Connection) -> Oracle:
    conn.execute(NEUTRAL_SESSION)
    tables = conn.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1, 2"
    ).fetchall()
    return {f"{s}.{t}": table_checksum(conn, s, t) for s, t in tables}


def commit_us(conn: psycopg.Connection, xid: int) -> int:
    return int(
        conn.execute(
            "SELECT (extract(epoch FROM pg_xact_commit_timestamp(%s::text::xid)) * 1000000)::bigint", [xid]
        ).fetchone()[0]
    )


def workload_step(conn: psycopg.Connection, rnd: random.Random, i: int) -> None:
    kind = rnd.choice(["insert", "insert", "update", "update_toast_kept", "delete", "nokey", "log", "big"])
    if i == 25:
        conn.execute("ALTER TABLE acct ADD COLUMN tier int DEFAULT 1")
    elif i == 35:
        conn.execute("CREATE TABLE late (k int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO late SELECT g, md5(g::text) FROM generate_series(1, 30) g")
    elif i == 45:
        conn.execute("TRUNCATE nokey")
    elif kind == "insert":
        conn.execute(
            "INSERT INTO acct (owner, balance, meta) VALUES (%s, %s, %s)",
            [f"n{i}", rnd.randint(0, 999), '{"k": [1, "x\\u00e9"]}'],
        )
    elif kind in ("update", "update_toast_kept"):
        conn.execute("UPDATE acct SET balance = balance + 1 WHERE id %% 7 = %s", [i % 7])
    elif kind == "delete":
        conn.execute("DELETE FROM acct WHERE id = (SELECT min(id) FROM acct)")
    elif kind == "nokey":
        conn.execute("INSERT INTO nokey VALUES (%s, 'dup'), (%s, 'dup')", [i % 3, i % 3])
        conn.execute(
            "UPDATE nokey SET b = 'changed' WHERE ctid = (SELECT ctid FROM nokey WHERE a = %s LIMIT 1)", [i % 3]
        )
        conn.execute("DELETE FROM nokey WHERE ctid = (SELECT ctid FROM nokey WHERE b = 'dup' LIMIT 1)")
    elif kind == "log":
        conn.execute("""INSERT INTO "Lo""g x" ("when", msg) VALUES (clock_timestamp(), %s)""", [f"m\t{i}\n"])
    else:
        conn.execute("INSERT INTO acct (owner, doc) VALUES (%s, repeat(md5(%s), 2000))", [f"big{i}", str(i)])


def run_workload(
    pg: PgServer, db: str, repo: Repository, steps: int, backup_at: int | None, seed: int = 1
) -> list[tuple[int, Oracle]]:
    """Single writer: after each commit the database state is exactly the oracle's."""
    rnd = random.Random(seed)
    oracle: list[tuple[int, Oracle]] = []
    with pg.connect(db) as conn:
        for i in range(steps):
            with conn.transaction():
                xid = conn.execute("SELECT txid_current()").fetchone()[0]
                workload_step(conn, rnd, i)
            oracle.append((commit_us(conn, xid), snapshot(conn)))
            if backup_at is not None and i == backup_at:
                backup(pg.endpoint(db), repo, ArchiveOptions(base_jobs=1, base_compress=False))
        wait_for_commit(repo, last_commit_us(conn))
    return oracle


def restored_state(pg: PgServer, db: str) -> Oracle:
    with pg.connect(db) as conn:
        return snapshot(conn)


@pytest.fixture
def archived(pg: PgServer, db: str, tmp_path: Path) -> tuple[Repository, list[tuple[int, Oracle]], str]:
    repo = Repository.open(str(tmp_path / "repo"))
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
    initial_time = 0
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")):
        wait_until_started(repo)
        initial_time = repo.base_backups()[0].time_us
        oracle = run_workload(pg, db, repo, steps=60, backup_at=30)
    with pg.connect(db) as conn:
        drop_slot(conn, f"s_{db}")
    assert initial_time and len(repo.base_backups()) == 2
    return repo, oracle, db


def test_restore_to_many_times_matches_oracle(pg: PgServer, archived: tuple[Repository, list, str]) -> None:
    repo, oracle, _ = archived
    second_base = repo.base_backups()[1]
    picks = [5, 20, 29, 31, 40, 59]
    for n, i in enumerate(picks):
        ts, expected = oracle[i]
        # between commits: a time just before the next commit gives the same state
        target_us = ts if n % 2 == 0 else min(ts + 1, oracle[i + 1][0] - 1) if i + 1 < len(oracle) else ts
        target = pg.create_database("restored")
        try:
            result = restore(repo, pg.endpoint(target), RestoreOptions(target_us=target_us, jobs=2))
            assert restored_state(pg, target) == expected, f"state at step {i}"
            with pg.connect(target) as conn:  # sequences: never below a value the restored rows use
                last, used = conn.execute(
                    "SELECT (SELECT last_value FROM acct_id_seq), (SELECT max(id) FROM acct)"
                ).fetchone()
                assert used is None or last >= used
            assert (result.base_backup == second_base.name) == (ts >= second_base.time_us)
        finally:
            pg.drop_database(target)


def test_restore_from_s3(pg: PgServer, db: str, s3_repo_url: str, s3_options: object) -> None:
    repo = Repository.open(s3_repo_url, s3_options)  # type: ignore[arg-type]
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")):
        wait_until_started(repo)
        oracle = run_workload(pg, db, repo, steps=30, backup_at=15, seed=2)
    with pg.connect(db) as conn:
        drop_slot(conn, f"s_{db}")
    for i in (10, 29):
        target = pg.create_database("restored")
        try:
            restore(repo, pg.endpoint(target), RestoreOptions(target_us=oracle[i][0]))
            assert restored_state(pg, target) == oracle[i][1]
        finally:
            pg.drop_database(target)


def test_clone_as_of(pg: PgServer, archived: tuple[Repository, list, str]) -> None:
    repo, oracle, db = archived
    ts, expected = oracle[42]
    new_db = f"{db}_clone"
    try:
        result = clone(pg.endpoint(db), new_db, ts, repo=repo)
        assert result.method == "repository"
        assert restored_state(pg, new_db) == expected
    finally:
        pg.drop_database(new_db)


def replay_position(pg: PgServer, db: str) -> int | None:
    """The restore's committed replay position, read from its progress table in the target."""
    with pg.connect(db) as conn:
        if conn.execute("SELECT to_regclass('_ybrewind_restore.progress')").fetchone()[0] is None:
            return None
        row = conn.execute("SELECT applied_lsn FROM _ybrewind_restore.progress WHERE state = 'replaying'").fetchone()
        return int(row[0]) if row else None


def restore_argv(repo_dir: Path, target_url: str, *, batch_changes: int) -> list[str]:
    """``ybrewind restore --latest`` as a subprocess (so that it can be SIGKILLed)."""
    return [
        sys.executable, "-m", "ybrewind.cli", "restore", "-q", str(repo_dir), target_url,
        "--latest", "--batch-changes", str(batch_changes),
    ]  # fmt: skip


def kill_midway_then_finish(pg: PgServer, target: str, argv: list[str], kill_after: tuple[int, ...]) -> None:
    """SIGKILL the restore once per entry of ``kill_after``, after it committed that many replay
    batches (progress is visible in the target); then run it to completion."""
    for batches in kill_after:
        proc = subprocess.Popen(argv)
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and len(seen) <= batches:
            applied = replay_position(pg, target)
            if applied is not None:
                seen.add(applied)
            time.sleep(0.005)
        assert proc.poll() is None, "the restore finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert subprocess.run(argv).returncode == 0


def test_restore_killed_midway_resumes(pg: PgServer, db: str, tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    repo = Repository.open(str(repo_dir))
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")), pg.connect(db) as conn:
        wait_until_started(repo)
        for i in range(3000):
            conn.execute("INSERT INTO t VALUES (%s, md5(%s::text))", [i, i])
            if i % 3 == 0:
                conn.execute("UPDATE t SET v = 'u' WHERE id = %s", [i // 2])
        expected = snapshot(conn)
        wait_for_commit(repo, last_commit_us(conn))
    with pg.connect(db) as conn:
        drop_slot(conn, f"s_{db}")
    target = pg.create_database("resumed")
    argv = restore_argv(repo_dir, pg.url(target), batch_changes=20)
    try:
        # Small batches, so that a quiet machine still replays slowly enough to be caught midway.
        kill_midway_then_finish(pg, target, argv, (3, 8))
        assert restored_state(pg, target) == expected
        with pg.connect(target) as conn:
            assert conn.execute("SELECT to_regnamespace('_ybrewind_restore')").fetchone() == (None,)
    finally:
        pg.drop_database(target)


def test_restore_bad_input(
    pg: PgServer, archived: tuple[Repository, list, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _, db = archived
    url = repo.url
    target = pg.url(f"{db}_bad")
    code, _, err = run_cli(capsys, "restore", url, target, "--to-time", "yesterday-ish")
    assert_one_line_error(code, err, "cannot read time")
    code, _, err = run_cli(capsys, "restore", url, target, "--to-time", "2026-01-01T00:00:00")
    assert_one_line_error(code, err, "no UTC offset")
    code, _, err = run_cli(capsys, "restore", url, target, "--to-time", "2001-01-01T00:00:00+00:00")
    assert_one_line_error(code, err, "outside the restorable window", to_iso(repo.base_backups()[0].time_us)[:19])
    code, _, err = run_cli(capsys, "restore", url, pg.url(db), "--latest")
    assert_one_line_error(code, err, "not empty")
    code, _, err = run_cli(capsys, "restore", url, "postgresql://postgres@127.0.0.1:1/x", "--latest")
    assert_one_line_error(code, err, "cannot connect")
    code, out, _ = run_cli(capsys, "restore", url, "--list", "--json")
    assert code == 0 and '"windows"' in out
    # a corrupt segment: the restore names it and fails; nothing is reported as done
    segment = sorted((tmp_path / "repo" / "segments").iterdir())[-1]
    raw = bytearray(segment.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    segment.write_bytes(bytes(raw))
    code, _, err = run_cli(capsys, "restore", "-q", url, target, "--latest")
    assert_one_line_error(code, err, segment.name, "corrupt")
    pg.drop_database(f"{db}_bad")


def test_every_fixture_type_survives_archive_and_replay(pg: PgServer, fixture_db: str, tmp_path: Path) -> None:
    """Changes on every data type and hostile identifier of the fixture replay to an identical copy."""
    from ybrewind.ysql.compare import compare
    from ybrewind.ysql.dump import DumpOptions, dump
    from ybrewind.ysql.load import LoadOptions, load

    source = pg.create_database("fxsrc")
    dump(pg.endpoint(fixture_db), tmp_path / "d", DumpOptions(jobs=2))
    load(tmp_path / "d", pg.endpoint(source), LoadOptions(jobs=2))
    repo = Repository.open(str(tmp_path / "repo"))
    options = fast_options(f"s_{source}")
    options.replica_identity_full = True
    try:
        with running_archiver(pg.endpoint(source), repo, options), pg.connect(source) as conn:
            wait_until_started(repo)
            tables = conn.execute(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN "
                "('pg_catalog', 'information_schema', 'ybrewind') AND c.relname LIKE 'types%' OR c.relname IN "
                "('select', 'Tåble', 'weird \"name\"; DROP TABLE x; --') ORDER BY 1"
            ).fetchall()
            assert len(tables) >= 8
            for (table,) in tables:
                with conn.transaction():
                    conn.execute("SET session_replication_role = replica")  # fixture triggers stay out
                    # every column rewritten (new tuples carry every value), rows copied, one deleted
                    conn.execute(f"UPDATE {table} SET {first_column(conn, table)} = {first_column(conn, table)}")
                    conn.execute(f"DELETE FROM {table} WHERE ctid = (SELECT min(ctid) FROM {table})")
                    conn.execute("RESET session_replication_role")
            conn.execute("UPDATE public.toasted_docs SET title = title || '!'")  # TOASTed bodies unchanged
            wait_for_commit(repo, last_commit_us(conn))
        target = pg.create_database("fxrestored")
        try:
            restore(repo, pg.endpoint(target), RestoreOptions(jobs=2))
            result = compare(pg.endpoint(source), pg.endpoint(target), owners=True, privileges=True)
            assert result.differing_tables == []
        finally:
            pg.drop_database(target)
    finally:
        with pg.connect(source) as conn:
            drop_slot(conn, f"s_{source}")
        pg.drop_database(source)


def first_column(conn: psycopg.Connection, table: str) -> str:
    row = conn.execute(
        "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attidentity = '' AND attgenerated = '' ORDER BY attnum DESC LIMIT 1",
        [table],
    ).fetchone()
    return row[0]


def test_restore_to_lsn_and_archive_drop(
    pg: PgServer, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo_dir = tmp_path / "repo"
    repo = Repository.open(str(repo_dir))
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")), pg.connect(db) as conn:
        wait_until_started(repo)
        for i in range(5):
            conn.execute("INSERT INTO t VALUES (%s)", [i])
        wait_for_commit(repo, last_commit_us(conn))
    segments = [repo.read_segment(s) for s in repo.segments()]
    third = [tx for seg in segments for tx in seg.transactions][2]
    target = pg.create_database("bylsn")
    try:
        lsn = f"{third.commit_lsn >> 32:X}/{third.commit_lsn & 0xFFFFFFFF:X}"
        code, out, _ = run_cli(capsys, "restore", "-q", "--json", str(repo_dir), pg.url(target), "--to-lsn", lsn)
        assert code == 0 and '"transactions": 3' in out
        with pg.connect(target) as conn:
            assert conn.execute("SELECT array_agg(id ORDER BY id) FROM t").fetchone() == ([0, 1, 2],)
    finally:
        pg.drop_database(target)
    code, out, _ = run_cli(capsys, "archive", "drop", "--yes", "--json", "-q", pg.url(db), str(repo_dir))
    assert code == 0 and "slot" in out and "publication" in out
    with pg.connect(db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [f"s_{db}"]
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone() == (0,)
        assert conn.execute("SELECT to_regnamespace('ybrewind')").fetchone() == (None,)


def test_replay_of_key_changes_and_hot_rows(pg: PgServer, db: str, tmp_path: Path) -> None:
    """Primary keys moved by UPDATE, rows deleted and re-inserted, a unique column swapped between
    rows, all inside one replay batch: the net-effect applier must end on the source's state."""
    repo = Repository.open(str(tmp_path / "repo"))
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE k (id int PRIMARY KEY, email text UNIQUE, n int)")
        conn.execute("CREATE TABLE plain (id int PRIMARY KEY, n int)")
        conn.execute("INSERT INTO k SELECT g, 'e' || g, 0 FROM generate_series(1, 20) g")
        conn.execute("INSERT INTO plain SELECT g, 0 FROM generate_series(1, 20) g")
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")), pg.connect(db) as conn:
        wait_until_started(repo)
        for table in ("k", "plain"):
            conn.execute(f"UPDATE {table} SET id = id + 100 WHERE id <= 5")  # keys move
            conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id > 10")  # hot rows
            conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id > 10")
            conn.execute(f"DELETE FROM {table} WHERE id = 12")
            conn.execute(f"INSERT INTO {table} (id, n) VALUES (12, 7)")  # same key again
            conn.execute(f"DELETE FROM {table} WHERE id = 6")
            conn.execute(f"UPDATE {table} SET id = 6 WHERE id = 101")  # onto a key deleted just before
        with conn.transaction():  # swap two unique values
            conn.execute("UPDATE k SET email = 'tmp' WHERE id = 15")
            conn.execute("UPDATE k SET email = 'e15' WHERE id = 16")
            conn.execute("UPDATE k SET email = 'e16' WHERE id = 15")
        expected = snapshot(conn)
        wait_for_commit(repo, last_commit_us(conn))
    with pg.connect(db) as conn:
        drop_slot(conn, f"s_{db}")
    target = pg.create_database("netfx")
    try:
        restore(repo, pg.endpoint(target), RestoreOptions())
        assert restored_state(pg, target) == expected
    finally:
        pg.drop_database(target)
