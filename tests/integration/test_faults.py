"""Disk and network faults: a full disk, a failing S3, a source server restarted mid-stream.

Each test checks what the user sees (one line, the documented exit code), that nothing is
reported done that is not (no manifest, no segment, the slot not confirmed past what is stored),
and that once the fault is gone the archive is complete: a restore equals the source.
The full-disk tests mount a small tmpfs (root); where that is impossible they are skipped with
the reason, and tests/unit/test_files.py keeps an ENOSPC test that needs no mount.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PgServer, own_sandbox
from tests.support.archive import fast_options, last_commit_us, running_archiver, wait_for_commit, wait_until_started
from tests.support.cli import assert_one_line_error, run_cli
from tests.support.faults import Rule, fault_proxy, fill, small_filesystem
from ybrewind import sandbox as sandbox_mod
from ybrewind.archive.repo import Repository, RepositoryOptions
from ybrewind.errors import StorageError
from ybrewind.ysql.archiver import Archiver
from ybrewind.ysql.compare import table_checksum

TABLES = ("items", "notes")


def create_schema(conn: psycopg.Connection, rows: int = 200, width: int = 1) -> None:
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    conn.execute("CREATE TABLE notes (k text PRIMARY KEY, n int)")
    conn.execute(
        "INSERT INTO items SELECT g, (SELECT string_agg(md5((g * 7919 + i)::text), '') FROM generate_series(1, %s) i) "
        "FROM generate_series(1, %s) g",
        [width, rows],
    )


def write_some(conn: psycopg.Connection, start: int, count: int = 5, width: int = 1) -> list[int]:
    """``count`` transactions of inserts and updates; returns their xids."""
    xids = []
    for i in range(start, start + count):
        with conn.transaction():
            xids.append(int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]))  # type: ignore[index]
            conn.execute(
                "INSERT INTO items SELECT %s, (SELECT string_agg(md5((%s * 31 + i)::text), '') "
                "FROM generate_series(1, %s) i)",
                [100_000 + i, i, width],
            )
            conn.execute(
                "INSERT INTO notes VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET n = notes.n + 1", [f"k{i % 3}", i]
            )
            conn.execute("UPDATE items SET v = v || 'x' WHERE id = %s", [1 + i % 50])
    return xids


def still_in_slot(conn: psycopg.Connection, slot: str) -> set[int]:
    """Xids of the transactions the (inactive) slot would send again: not confirmed as stored."""
    rows = conn.execute(
        "SELECT DISTINCT xid::text::bigint FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, "
        "'proto_version', '1', 'publication_names', 'ybrewind')",
        [slot],
    ).fetchall()
    return {int(r[0]) for r in rows}


def checksums(conn: psycopg.Connection) -> dict[str, Any]:
    return {t: table_checksum(conn, "public", t) for t in TABLES}


def archiver_argv(source: str, repo: str, slot: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ybrewind.cli", "archive", "start", "-q", "--slot", slot, "--segment-age", "0.3",
            "-j", "1", source, repo, *extra]  # fmt: skip


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def confirmed_lsn(conn: psycopg.Connection, slot: str) -> int:
    from ybrewind.ysql.pgoutput import str_to_lsn

    row = conn.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [slot]
    ).fetchone()
    assert row is not None
    return str_to_lsn(row[0])


def restore_equals_source(
    capsys: pytest.CaptureFixture[str], pg: PgServer, source_db: str, repo_url: str, *extra: str
) -> None:
    target = pg.create_database("fault_restored")
    try:
        code, _, err = run_cli(capsys, "restore", "-q", repo_url, pg.url(target), "--latest", *extra)
        assert code == 0, err
        with pg.connect(source_db) as a, pg.connect(target) as b:
            assert checksums(b) == checksums(a)
    finally:
        pg.drop_database(target)


def drop_slot(pg: PgServer, db: str, slot: str) -> None:
    with pg.connect(db) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", [slot]
        )


# --------------------------------------------------------------------------------------------
# A full disk


def test_dump_onto_a_full_disk(pg: PgServer, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pg.connect(db) as conn:
        create_schema(conn, rows=3000, width=40)  # ~4 MB of text: more than the filesystem holds
    with small_filesystem("2m") as fs:
        out = fs / "dump"
        code, _, err = run_cli(capsys, "dump", "-q", "-j", "2", pg.url(db), str(out))
        assert code == 8, err
        line = assert_one_line_error(code, err, "disk full while writing", str(out))
        assert "Traceback" not in line
        assert not (out / "manifest.json").exists()  # not a finished dump...
        code, _, err = run_cli(capsys, "verify", str(out))
        assert_one_line_error(code, err, "manifest.json is missing")  # ...and verify says so
        assert not [p for p in fs.rglob("*.tmp")]  # no temporary file left behind


def test_archiver_on_a_full_disk_stops_and_resumes_losing_nothing(
    pg: PgServer, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pg.connect(db) as conn:
        create_schema(conn)
    slot = f"full_{db}"
    with small_filesystem("3m") as fs, pg.connect(db) as conn:
        repo_dir = fs / "repo"
        repo = Repository.open(str(repo_dir))
        proc = subprocess.Popen(archiver_argv(pg.url(db), str(repo_dir), slot), stderr=subprocess.PIPE, text=True)
        try:
            wait_until_started(repo)
            write_some(conn, 0)
            wait_for_commit(repo, last_commit_us(conn))
            stored = repo.segments()
            filler = fill(fs, leave=24 << 10)  # room for status records, not for the next segment
            unsaved = write_some(conn, 10, count=3, width=3000)  # ~50 kB as a segment
            big_commit = last_commit_us(conn)
            _, err = proc.communicate(timeout=60)  # the archiver stops by itself
            assert proc.returncode == 8, err
            assert_one_line_error(proc.returncode, err, "disk full while writing", f"{repo_dir}/segments/")
            # Nothing claimed: no segment holds the unsaved transactions, no temporary file is listed,
            # and the restart below is accepted (it refuses a slot confirmed past what is stored).
            assert repo.segments() == stored
            assert repo.status() is not None and repo.status()["last_commit_us"] < big_commit  # type: ignore[index]
            assert set(unsaved) <= still_in_slot(conn, slot)
            filler.unlink()
            proc = subprocess.Popen(archiver_argv(pg.url(db), str(repo_dir), slot), stderr=subprocess.PIPE, text=True)
            wait_for_commit(repo, big_commit)  # resumed from the slot: the transactions are archived now
        finally:
            stop_process(proc)
        restore_equals_source(capsys, pg, db, str(repo_dir))
    drop_slot(pg, db, slot)


@pytest.fixture
def s3_repo_with_big_base(pg: PgServer, db: str, s3_repo_url: str, s3_options: RepositoryOptions) -> Iterator[str]:
    with pg.connect(db) as conn:
        create_schema(conn, rows=2000, width=40)  # ~2.6 MB base backup, uncompressed
        repo = Repository.open(s3_repo_url, s3_options)
        with running_archiver(pg.endpoint(db), repo, fast_options(f"big_{db}")):
            wait_until_started(repo)
            write_some(conn, 0)
            wait_for_commit(repo, last_commit_us(conn))
    yield s3_repo_url
    drop_slot(pg, db, f"big_{db}")


def test_restore_with_a_full_staging_disk(
    pg: PgServer, db: str, s3_repo_with_big_base: str, moto_endpoint: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """An S3 restore stages the base backup locally: a full TMPDIR stops it before the target is touched."""
    target = pg.create_database("fault_target")
    try:
        with small_filesystem("1m") as fs:
            monkeypatch.setattr(tempfile, "tempdir", str(fs))
            code, _, err = run_cli(capsys, "restore", "-q", s3_repo_with_big_base, pg.url(target), "--latest",
                                   "--endpoint-url", moto_endpoint)  # fmt: skip
            assert code == 8, err
            assert_one_line_error(code, err, "disk full while writing", str(fs))
            monkeypatch.undo()
            assert not list(fs.iterdir())  # the staging directory is gone
        with pg.connect(target) as conn:
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = '_ybrewind_restore'").fetchone() == (
                0,
            )
    finally:
        pg.drop_database(target)
    restore_equals_source(capsys, pg, db, s3_repo_with_big_base, "--endpoint-url", moto_endpoint)


# --------------------------------------------------------------------------------------------
# A failing S3


@contextmanager
def archiver_thread(source: Any, repo: Repository, options: Any) -> Iterator[dict[str, Any]]:
    """Run an archiver in a thread; its result or error lands in the yielded dict (not re-raised)."""
    stop = threading.Event()
    outcome: dict[str, Any] = {"stop": stop}

    def target() -> None:
        try:
            outcome["result"] = Archiver(source, repo, options).run(stop)
        except BaseException as e:  # the test inspects it
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    outcome["thread"] = thread
    thread.start()
    try:
        yield outcome
    finally:
        stop.set()
        thread.join(120)


def test_s3_transient_errors_mid_archive_are_retried(
    pg: PgServer, db: str, moto_endpoint: str, s3_repo_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pg.connect(db) as conn:
        create_schema(conn)
    rules = [
        Rule("503", method="PUT", path_contains="/base/", times=2),  # the base backup's upload
        Rule("drop", method="PUT", path_contains="/segments/", times=1),  # connection lost mid-upload
        Rule("500", method="PUT", path_contains="/segments/", after=1, times=2),
        Rule("reset", method="PUT", path_contains="/state/", after=2, times=1),
        Rule("503", method="GET", times=2),  # listings and reads during the resume checks
    ]
    with fault_proxy(moto_endpoint, rules=rules) as proxy:
        repo = Repository.open(s3_repo_url, RepositoryOptions(endpoint_url=proxy.url))
        slot = f"s3t_{db}"
        with running_archiver(pg.endpoint(db), repo, fast_options(slot)), pg.connect(db) as conn:
            wait_until_started(repo, timeout=90)
            for start in range(0, 30, 5):
                write_some(conn, start)
                time.sleep(0.2)
            wait_for_commit(repo, last_commit_us(conn), timeout=90)
        injected = proxy.injected()
    assert sorted(set(injected)) == ["GET 503", "PUT 500", "PUT 503", "PUT drop", "PUT reset"], injected
    restore_equals_source(capsys, pg, db, s3_repo_url, "--endpoint-url", moto_endpoint)
    drop_slot(pg, db, slot)


def test_s3_persistent_errors_stop_the_archiver_claiming_nothing(
    pg: PgServer, db: str, moto_endpoint: str, s3_repo_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # give up quickly
    with pg.connect(db) as conn:
        create_schema(conn)
    slot = f"s3p_{db}"
    outage = Rule("503", method="PUT", path_contains="/segments/", times=None)
    with fault_proxy(moto_endpoint) as proxy, pg.connect(db) as conn:
        repo = Repository.open(s3_repo_url, RepositoryOptions(endpoint_url=proxy.url))
        with archiver_thread(pg.endpoint(db), repo, fast_options(slot)) as run:
            wait_until_started(repo, timeout=60)
            write_some(conn, 0)
            wait_for_commit(repo, last_commit_us(conn))
            before = confirmed_lsn(conn, slot)
            stored = repo.segments()
            proxy.rules.append(outage)
            unsaved = write_some(conn, 10)
            lost = last_commit_us(conn)
            run["thread"].join(60)
            assert not run["thread"].is_alive(), "the archiver kept going through a persistent outage"
        error = run.get("error")
        assert isinstance(error, StorageError), error
        message = str(error)
        assert "\n" not in message and "S3 is unavailable" in message and "segments/" in message, message
        assert "503" in message or "SlowDown" in message, message
        assert repo.segments() == stored  # nothing new claimed as stored
        assert all(s.last_commit_us < lost for s in repo.segments())
        # The slot may move over idle WAL, but not over the unsaved transactions: a restart gets them.
        assert confirmed_lsn(conn, slot) >= before
        assert set(unsaved) <= still_in_slot(conn, slot)
        proxy.rules.remove(outage)
        with running_archiver(pg.endpoint(db), repo, fast_options(slot)):
            wait_for_commit(repo, lost, timeout=60)
    restore_equals_source(capsys, pg, db, s3_repo_url, "--endpoint-url", moto_endpoint)
    drop_slot(pg, db, slot)


def test_s3_persistent_errors_via_the_cli_are_one_line(
    pg: PgServer, db: str, moto_endpoint: str, s3_repo_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """restore --list / archive status against an S3 that answers 500 to everything: exit 8, one line."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with fault_proxy(moto_endpoint) as proxy:
        proxy.always = "500"
        for argv in (["restore", "--list", s3_repo_url], ["archive", "status", s3_repo_url]):
            code, _, err = run_cli(capsys, *argv, "--endpoint-url", proxy.url)
            assert code == 8, err
            assert_one_line_error(code, err, "S3 is unavailable", "after 2 attempts", "InternalError (HTTP 500)")


# --------------------------------------------------------------------------------------------
# The source server restarted while the archiver streams


@pytest.fixture
def own_server() -> Iterator[sandbox_mod.Sandbox]:
    """A sandbox of its own: restarting it must not disturb the other tests' server."""
    with own_sandbox("ybrewind-restart-") as sb:
        yield sb


def test_source_restart_while_archiving(own_server: sandbox_mod.Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    """Documented: the archiver exits (exit 4, one line naming the server); restarted, it resumes
    from the slot and nothing is lost."""
    server = PgServer(own_server)
    db = server.create_database("restart")
    repo_dir = Path(tempfile.mkdtemp(prefix="ybrewind-restart-repo-")) / "repo"
    repo = Repository.open(str(repo_dir))
    slot = "restart_slot"
    with server.connect(db) as conn:
        create_schema(conn)
    proc = subprocess.Popen(archiver_argv(server.url(db), str(repo_dir), slot), stderr=subprocess.PIPE, text=True)
    try:
        wait_until_started(repo)
        with server.connect(db) as conn:
            write_some(conn, 0)
        subprocess.run(
            ["runuser", "-u", "postgres", "--", own_server.binary("pg_ctl"), "-D", str(own_server.datadir),
             "-m", "fast", "-w", "restart", "-l", str(own_server.datadir.parent / "server.log")],
            check=True, capture_output=True,
        )  # fmt: skip
        with server.connect(db) as conn:
            write_some(conn, 20)  # committed while the archiver is down or reconnecting
            last = last_commit_us(conn)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 4, err
        assert_one_line_error(proc.returncode, err, own_server.url(db).split("@")[-1].split("/")[0])
        proc = subprocess.Popen(archiver_argv(server.url(db), str(repo_dir), slot), stderr=subprocess.PIPE, text=True)
        wait_for_commit(repo, last)
    finally:
        stop_process(proc)
    restore_equals_source(capsys, server, db, str(repo_dir))
    drop_slot(server, db, slot)
    server.drop_database(db)
