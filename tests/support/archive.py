"""Test helpers for the change-log archiver: run it in a thread, read the archive back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from ybrewind.archive.format import Transaction
from ybrewind.archive.repo import Repository
from ybrewind.endpoints import PgEndpoint
from ybrewind.ysql.archiver import ArchiveOptions, Archiver, ArchiveResult


def fast_options(slot: str) -> ArchiveOptions:
    return ArchiveOptions(
        slot=slot,
        publication="ybrewind",
        segment_seconds=0.3,
        heartbeat_seconds=1.0,
        status_seconds=0.3,
        base_jobs=1,
        base_compress=False,
    )


@contextmanager
def running_archiver(source: PgEndpoint, repo: Repository, options: ArchiveOptions) -> Iterator[dict[str, Any]]:
    """Run an archiver in a thread for the duration of the block; re-raises its failure."""
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = Archiver(source, repo, options).run(stop)
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        stop.set()
        thread.join(60)
    if "error" in outcome:
        raise outcome["error"]


def drop_slot(conn: psycopg.Connection, slot: str, timeout: float = 15.0) -> None:
    """Drop a replication slot once its walsender is gone: the server ends it asynchronously after
    the archiver disconnects, and dropping an active slot fails."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone()
        if row is None:
            return
        if not row[0] or time.monotonic() > deadline:
            conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
            return
        time.sleep(0.05)


def wait_until_started(repo: Repository, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = repo.status()
        if st and st.get("running"):
            return
        time.sleep(0.05)
    raise AssertionError("archiver did not start")


def last_commit_us(conn: psycopg.Connection) -> int:
    """Commit time (Unix µs) of the newest transaction committed on the cluster."""
    row = conn.execute("SELECT (extract(epoch FROM (pg_last_committed_xact()).timestamp) * 1000000)::bigint").fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


def wait_for_commit(repo: Repository, commit_us: int, timeout: float = 30.0) -> None:
    """Wait until the archive holds the transaction committed at ``commit_us`` (or a later one).

    Commit times, not WAL positions: the archiver's own heartbeats move the WAL position without
    adding anything to the archive.
    """
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        segs = repo.segments()
        if segs and segs[-1].last_commit_us >= commit_us:
            return
        if any(b.time_us >= commit_us for b in repo.base_backups()):
            return  # a base backup taken after that commit holds it
        # pg_last_committed_xact() is cluster-wide: the commit may be another database's (tests share
        # the sandbox), which this archive never holds; the archiver's confirmed-complete time covers it.
        status = repo.status() or {}
        if (status.get("complete_us") or 0) >= commit_us:
            return
        time.sleep(0.05)
    segs = repo.segments()
    raise AssertionError(
        f"archive did not reach the commit at {commit_us}: last archived "
        f"{segs[-1].last_commit_us if segs else None}, archiver status {repo.status()}"
    )


def archived_transactions(repo: Repository) -> tuple[list[Transaction], dict[int, dict[str, Any]]]:
    txs: list[Transaction] = []
    relations: dict[int, dict[str, Any]] = {}
    for info in repo.segments():
        seg = repo.read_segment(info)
        relations.update(seg.relations)
        txs += seg.transactions
    return txs, relations


def run_archiver_once(source: PgEndpoint, repo: Repository, options: ArchiveOptions) -> ArchiveResult:
    stop = threading.Event()
    stop.set()
    return Archiver(source, repo, options).run(stop)
