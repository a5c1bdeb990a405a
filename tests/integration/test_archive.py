"""The change-log archiver against a real PostgreSQL, with local and S3 (moto) repositories."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgServer
from tests.support.archive import (
    archived_transactions,
    drop_slot,
    fast_options,
    last_commit_us,
    running_archiver,
    wait_for_commit,
    wait_until_started,
)
from ybrewind.archive.format import UNCHANGED_TOAST
from ybrewind.archive.repo import Repository
from ybrewind.files import open_binary

SCHEMA = """
CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric(12,2), doc text);
CREATE TABLE "Wei""rd T" ("k ey" int PRIMARY KEY, "v;al" text);
CREATE TABLE nokey (a int, b text);
ALTER TABLE nokey REPLICA IDENTITY FULL;
CREATE SEQUENCE ticket_seq;
"""


def run_tx(conn: psycopg.Connection, *statements: str) -> tuple[int, int]:
    """Run statements in one transaction; returns (xid, commit time in Unix µs)."""
    with conn.transaction():
        xid = conn.execute("SELECT txid_current()").fetchone()[0]
        for s in statements:
            conn.execute(s.encode())
    ts = conn.execute(
        "SELECT (extract(epoch FROM pg_xact_commit_timestamp(%s::text::xid)) * 1000000)::bigint", [xid]
    ).fetchone()[0]
    return int(xid), int(ts)


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_archive_holds_every_committed_transaction(
    pg: PgServer, db: str, tmp_path: Path, storage: str, request: pytest.FixtureRequest
) -> None:
    if storage == "s3":
        s3 = request.getfixturevalue("s3_repo_url")
        repo = Repository.open(s3, request.getfixturevalue("s3_options"))
    else:
        repo = Repository.open(str(tmp_path / "repo"))
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
        conn.execute(  # doc: ~10 kB of incompressible text per row, stored out of line (TOAST)
            "INSERT INTO acct SELECT g, 'o' || g, g, (SELECT string_agg(md5((g * i)::text), '') "
            "FROM generate_series(1, 300) i) FROM generate_series(1, 20) g"
        )
    source = pg.endpoint(db)
    expected: list[tuple[int, int]] = []
    with running_archiver(source, repo, fast_options(f"s_{db}")), pg.connect(db) as conn:
        wait_until_started(repo)
        expected.append(run_tx(conn, "INSERT INTO acct VALUES (100, 'new', 1.5, NULL)"))
        # doc is TOASTed and untouched: pgoutput marks it unchanged
        expected.append(run_tx(conn, "UPDATE acct SET balance = balance + 1 WHERE id = 3"))
        expected.append(run_tx(conn, "DELETE FROM acct WHERE id = 4", "INSERT INTO nokey VALUES (1, 'x')"))
        expected.append(run_tx(conn, "UPDATE nokey SET b = 'y'", """INSERT INTO "Wei""rd T" VALUES (1, 'a;b')"""))
        expected.append(run_tx(conn, "ALTER TABLE acct ADD COLUMN note text DEFAULT 'n'"))
        expected.append(run_tx(conn, "INSERT INTO acct (id, owner, note) VALUES (101, 'after ddl', 'z')"))
        expected.append(run_tx(conn, "TRUNCATE nokey"))
        expected.append(run_tx(conn, "SELECT nextval('ticket_seq')", "INSERT INTO acct (id) VALUES (102)"))
        big = ", ".join(f"({1000 + i}, 'bulk', {i}, NULL, NULL)" for i in range(5000))
        expected.append(run_tx(conn, f"INSERT INTO acct VALUES {big}"))
        wait_for_commit(repo, last_commit_us(conn))
    txs, relations = archived_transactions(repo)
    assert [(t.xid, t.commit_us) for t in txs] == expected  # order, exactly once, exact commit times
    names = {rel["name"] for rel in relations.values()}
    assert {"acct", 'Wei"rd T', "nokey"} <= names
    update = next(c for c in txs[1].changes if c[0] != "R")
    assert update[0] == "U" and UNCHANGED_TOAST in update[3]
    ddl = [c for c in txs[4].changes if c[0] == "DDL"]
    assert len(ddl) == 1 and "ADD COLUMN note" in ddl[0][2]
    data_changes = [[c for c in t.changes if c[0] != "R"] for t in txs]  # "R": relation shape records
    assert data_changes[6] == [["T", [next(k for k, r in relations.items() if r["name"] == "nokey")], False, False]]
    assert len(data_changes[8]) == 5000
    assert repo.base_backups() and repo.info() is not None
    samples = [repo.read_segment(s).sequences for s in repo.segments()]
    assert all(sample is not None for sample in samples)  # sampled at every segment close
    ticket = [v for _, name, v in samples[-1]["sequences"] if name == "ticket_seq"]
    assert ticket == [1]


def test_archive_survives_sigkill(pg: PgServer, db: str, tmp_path: Path) -> None:
    """SIGKILL the archiver at random points of a continuous workload: no gap, no duplicate."""
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE counter (n int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
    repo_dir = tmp_path / "repo"
    slot = f"s_{db}"
    argv = [
        sys.executable,
        "-m",
        "ybrewind.cli",
        "archive",
        "start",
        "-q",
        pg.url(db),
        str(repo_dir),
        "--slot",
        slot,
        "--segment-age",
        "0.2",
        "-j",
        "1",
    ]
    stop = threading.Event()
    committed: list[int] = []

    def workload() -> None:
        with pg.connect(db) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                conn.execute("INSERT INTO counter (n) VALUES (%s)", [n])
                committed.append(n)
                time.sleep(0.002)

    writer = threading.Thread(target=workload)
    rnd = random.Random(42)
    proc = subprocess.Popen(argv)
    writer.start()
    try:
        # Kill it while it streams: a first start killed midway simply starts over (tested too,
        # by chance, when a kill lands before the next start has stored its base backup).
        wait_until_started(Repository.open(str(repo_dir)))
        for _ in range(4):
            time.sleep(rnd.uniform(0.5, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = subprocess.Popen(argv)
        time.sleep(1.0)
    finally:
        stop.set()
        writer.join()
    repo = Repository.open(str(repo_dir))
    try:
        with pg.connect(db) as conn:
            wait_for_commit(repo, last_commit_us(conn), timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    txs, _ = archived_transactions(repo)
    archived = [int(c[2][0]) for t in txs for c in t.changes if c[0] == "I"]
    base_rows = _base_counter_rows(repo)
    assert len(archived) == len(set(archived)), "a transaction was archived twice"
    assert sorted(base_rows + archived) == committed, "a committed transaction is missing"
    assert archived == sorted(archived)


def _base_counter_rows(repo: Repository) -> list[int]:
    rows: list[int] = []
    for base in repo.base_backups():
        with repo.fetch_base_backup(base) as d:
            for f in (d / "data").iterdir():
                with open_binary(f) as fh:
                    lines = fh.read().decode().splitlines()
                if lines and "counter" in lines[0]:
                    rows += [int(line.split("\t")[0]) for line in lines[1:-1]]
    return rows


def test_resume_refuses_a_recreated_slot(pg: PgServer, db: str, tmp_path: Path) -> None:
    from ybrewind.errors import UsageError
    from ybrewind.ysql.archiver import Archiver

    repo = Repository.open(str(tmp_path / "repo"))
    slot = f"s_{db}"
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with running_archiver(pg.endpoint(db), repo, fast_options(slot)):
        wait_until_started(repo)
    with pg.connect(db) as conn:
        drop_slot(conn, slot)
        conn.execute("INSERT INTO t VALUES (1)")
    stop = threading.Event()
    stop.set()
    with pytest.raises(UsageError, match="no longer exists"):
        Archiver(pg.endpoint(db), repo, fast_options(slot)).run(stop)
    with pg.connect(db) as conn:  # recreated by someone else: it starts after our position
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [slot])
        conn.execute("INSERT INTO t VALUES (2)")
        conn.execute("SELECT pg_replication_slot_advance(%s, pg_current_wal_lsn())", [slot])
    with pytest.raises(UsageError, match="beyond what"):
        Archiver(pg.endpoint(db), repo, fast_options(slot)).run(stop)
    with pg.connect(db) as conn:
        drop_slot(conn, slot)


def test_idle_database_keeps_slot_advancing(pg: PgServer, db: str, tmp_path: Path) -> None:
    repo = Repository.open(str(tmp_path / "repo"))
    slot = f"s_{db}"
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with running_archiver(pg.endpoint(db), repo, fast_options(slot)), pg.connect(db) as conn:
        wait_until_started(repo)
        start = conn.execute(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s", [slot]
        ).fetchone()[0]
        with pg.connect("postgres") as other:  # WAL written elsewhere on the cluster
            other.execute("CREATE TABLE IF NOT EXISTS idle_noise (x int)")
            other.execute("INSERT INTO idle_noise SELECT generate_series(1, 1000)")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = conn.execute(
                "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone()[0]
            if now > start:
                break
            time.sleep(0.2)
        assert now > start
    with pg.connect(db) as conn:
        drop_slot(conn, slot)
