"""Running the archiver as the backup system: scheduled base backups, retention and prune (local
and S3), the window ending where the archive is known complete (idle restore to now-5s)."""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PgServer
from tests.integration.test_restore import SCHEMA, Oracle, commit_us, restored_state, snapshot, workload_step
from tests.support.archive import (
    drop_slot,
    fast_options,
    last_commit_us,
    running_archiver,
    wait_for_commit,
    wait_until_started,
)
from tests.support.cli import assert_one_line_error, run_cli
from ybrewind import pitr
from ybrewind.archive import retention
from ybrewind.archive.repo import Repository
from ybrewind.archive.retention import RetentionPolicy, prune
from ybrewind.errors import UsageError
from ybrewind.ysql.restore import RestoreOptions, restore


def _repo(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Repository:
    if kind == "local":
        return Repository.open(str(tmp_path / "repo"))
    return Repository.open(request.getfixturevalue("s3_repo_url"), request.getfixturevalue("s3_options"))


def _drop_slot(pg: PgServer, db: str) -> None:
    with pg.connect(db) as conn:
        slots = conn.execute("SELECT slot_name FROM pg_replication_slots WHERE database = %s", [db]).fetchall()
        for (slot,) in slots:
            drop_slot(conn, slot)


def _restore_matches(pg: PgServer, repo: Repository, target_us: int, expected: Oracle) -> str:
    target = pg.create_database("restored")
    try:
        result = restore(repo, pg.endpoint(target), RestoreOptions(target_us=target_us, jobs=2))
        assert restored_state(pg, target) == expected, f"state at {pitr.to_iso(target_us)}"
        return result.base_backup
    finally:
        pg.drop_database(target)


def _workload_with_scheduled_bases(
    pg: PgServer, db: str, repo: Repository, options: object, min_bases: int, seed: int
) -> tuple[list[tuple[int, Oracle]], dict]:
    """A single writer while the archiver takes base backups on schedule; (oracle, archiver outcome)."""
    rnd = random.Random(seed)
    oracle: list[tuple[int, Oracle]] = []
    with running_archiver(pg.endpoint(db), repo, options) as outcome, pg.connect(db) as conn:  # type: ignore[arg-type]
        wait_until_started(repo)
        deadline = time.monotonic() + 90
        i = 0
        while (repo.status() or {}).get("last_base_us") is None or len(oracle) < 40 or _scheduled(repo) < min_bases:
            assert time.monotonic() < deadline, f"only {_scheduled(repo)} scheduled base backups"
            with conn.transaction():
                xid = conn.execute("SELECT txid_current()").fetchone()[0]
                workload_step(conn, rnd, i)
            oracle.append((commit_us(conn, xid), snapshot(conn)))
            i += 1
            time.sleep(0.05)
        wait_for_commit(repo, last_commit_us(conn))
    return oracle, outcome


def _scheduled(repo: Repository) -> int:
    """Base backups taken after the first (the archiver's own slot's) one, as far as still listed or pruned."""
    st = repo.status() or {}
    return int(st.get("scheduled_bases", 0))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_scheduled_bases_with_retention_restore_every_kept_time(
    pg: PgServer, db: str, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    repo = _repo(kind, tmp_path, request)
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
    options = dataclasses.replace(
        fast_options(f"s_{db}"), base_every_seconds=2.0, retention=RetentionPolicy(keep_bases=2)
    )
    oracle, outcome = _workload_with_scheduled_bases(pg, db, repo, options, min_bases=3, seed=3)
    _drop_slot(pg, db)
    result = outcome["result"]
    assert len(result.scheduled_bases) >= 3, result
    bases = repo.base_backups()
    # keep_bases=2, pruned after each scheduled base: the newest two are left, the first ones are gone.
    assert [b.name for b in bases] == result.scheduled_bases[-2:]
    oldest = bases[0]
    assert all(s.last_lsn >= oldest.lsn or s == repo.segments()[-1] for s in repo.segments())
    # Every oracle point inside the kept window restores to its state, including both seams.
    kept = [(t, o) for t, o in oracle if t >= oldest.time_us]
    assert len(kept) >= 5
    picks = {0, 1, len(kept) // 2, len(kept) - 1}
    newest = bases[-1]
    after_seam = next((n for n, (t, _) in enumerate(kept) if t >= newest.time_us), None)
    if after_seam is not None:
        picks |= {after_seam, max(0, after_seam - 1)}
    used = set()
    for n in sorted(picks):
        used.add(_restore_matches(pg, repo, kept[n][0], kept[n][1]))
    assert used == {b.name for b in bases} or after_seam is None
    # Before the kept window: refused, stating the window (nothing silently restored instead).
    early = [t for t, _ in oracle if t < oldest.time_us]
    if early:
        with pytest.raises(UsageError, match="outside the restorable window"):
            restore(repo, pg.endpoint("nowhere"), RestoreOptions(target_us=early[0]))


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_prune_killed_midway_leaves_a_valid_repository_and_finishes_next_time(
    pg: PgServer, db: str, tmp_path: Path, request: pytest.FixtureRequest, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(kind, tmp_path, request)
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
    options = dataclasses.replace(fast_options(f"s_{db}"), base_every_seconds=1.5)  # no retention: keeps all
    oracle, _ = _workload_with_scheduled_bases(pg, db, repo, options, min_bases=3, seed=4)
    _drop_slot(pg, db)
    bases = repo.base_backups()
    assert len(bases) >= 4
    policy = RetentionPolicy(keep_bases=1)
    dry = prune(repo, policy, dry_run=True)
    assert dry.bases == [b.name for b in bases[:-1]] and dry.segments > 0
    assert len(repo.base_backups()) == len(bases)  # a dry run drops nothing

    storage = repo.storage
    real_delete = type(storage).delete
    kills = [1, 3, 2 + len(list(storage.list(f"base/{bases[1].name}/"))), 10**6]
    for kill_after in kills:
        count = {"n": 0}

        def dying_delete(self: object, key: str, _limit: int = kill_after, _c: dict = count) -> None:
            if key != retention.PLAN_KEY:
                _c["n"] += 1
                if _c["n"] > _limit:
                    raise _Killed(key)
            real_delete(self, key)

        monkeypatch.setattr(type(storage), "delete", dying_delete)
        try:
            prune(repo, policy)
            finished = True
        except _Killed:
            finished = False
        monkeypatch.setattr(type(storage), "delete", real_delete)
        # Whatever was deleted, every base still listed restores (its chain checks out).
        listed = repo.base_backups()
        segments = repo.segments()
        for b in listed:
            needed = [s for s in segments if s.last_lsn >= b.lsn]
            repo.verify_restore(b, needed)
            repo.drop_staging()
        if finished:
            break
        assert storage.exists(retention.PLAN_KEY)
    again = prune(repo, policy)
    assert not again.bases and again.segments == 0
    assert not storage.exists(retention.PLAN_KEY)
    assert [b.name for b in repo.base_backups()] == [bases[-1].name]
    assert not [k for k in storage.list("base/") if not k.startswith(f"base/{bases[-1].name}/")]
    # The newest base backup may be newer than the last commit (the writer stopped first): --latest.
    target = pg.create_database("restored")
    try:
        restore(repo, pg.endpoint(target), RestoreOptions())
        assert restored_state(pg, target) == oracle[-1][1]
    finally:
        pg.drop_database(target)


def test_prune_command_line(pg: PgServer, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = Repository.open(str(tmp_path / "repo"))
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
    options = dataclasses.replace(
        fast_options(f"s_{db}"), base_every_seconds=1.0, retention=RetentionPolicy(recovery_window_us=3_600_000_000)
    )
    _workload_with_scheduled_bases(pg, db, repo, options, min_bases=1, seed=5)
    _drop_slot(pg, db)
    n = len(repo.base_backups())
    # No option: the archiver's policy (1 h window: everything is inside it).
    code, out, err = run_cli(capsys, "repo", "prune", str(tmp_path / "repo"), "--json")
    assert code == 0, err
    assert '"bases": []' in out and len(repo.base_backups()) == n
    code, out, err = run_cli(capsys, "repo", "prune", str(tmp_path / "repo"), "--keep-bases", "1", "--dry-run")
    assert code == 0, err
    assert f"would drop {n - 1} base backup(s)" in out and len(repo.base_backups()) == n
    code, _, err = run_cli(capsys, "repo", "prune", str(tmp_path / "repo"), "--keep-bases", "0")
    assert_one_line_error(code, err, "--keep-bases must be at least 1")
    code, _, err = run_cli(capsys, "repo", "prune", str(tmp_path / "nothing"), "--keep-bases", "1")
    assert_one_line_error(code, err, "not a ybrewind repository")
    code, _, err = run_cli(capsys, "archive", "start", pg.url(db), str(tmp_path / "r2"), "--keep-bases", "2")
    assert_one_line_error(code, err, "add --base-every")
    code, _, err = run_cli(capsys, "archive", "start", pg.url(db), str(tmp_path / "r2"), "--base-every", "soon")
    assert_one_line_error(code, err, "invalid --base-every")


def test_idle_database_restores_and_clones_to_now_minus_5s(
    pg: PgServer, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo_dir = tmp_path / "repo"
    repo = Repository.open(str(repo_dir))
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")), pg.connect(db) as conn:
        wait_until_started(repo)
        conn.execute("INSERT INTO acct (owner, balance) VALUES ('last', 1)")
        expected = snapshot(conn)
        wait_for_commit(repo, last_commit_us(conn))
        last_commit = repo.segments()[-1].last_commit_us
        # Idle from here on. Once the archiver confirms past now-5s, both work.
        time.sleep(max(0.0, (last_commit + 5.5e6) / 1e6 - time.time()))
        deadline = time.monotonic() + 30
        while ((repo.status() or {}).get("complete_us") or 0) < time.time() * 1e6 - 4.5e6:
            assert time.monotonic() < deadline, repo.status()
            time.sleep(0.2)
        assert time.time() * 1e6 - 5e6 > last_commit  # the target is after the last commit
        target = f"{db}_at"
        code, _, err = run_cli(capsys, "restore", str(repo_dir), pg.url(target), "--to-time", "now-5s", "-q")
        assert code == 0, err
        assert restored_state(pg, target) == expected
        pg.drop_database(target)
        clone_db = f"{db}_cl"
        code, _, err = run_cli(capsys, "clone", pg.url(db), clone_db, "--as-of", "now-5s", "--repo", str(repo_dir), "-q")
        assert code == 0, err
        assert restored_state(pg, clone_db) == expected
        pg.drop_database(clone_db)
        # Beyond what the archiver confirmed (it lags the server's clock by a safety margin): refused.
        code, _, err = run_cli(capsys, "restore", str(repo_dir), pg.url(target), "--to-time", "now")
        assert_one_line_error(code, err, "outside the restorable window")
    _drop_slot(pg, db)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_repo_verify_and_info(
    pg: PgServer, db: str, tmp_path: Path, request: pytest.FixtureRequest, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _repo(kind, tmp_path, request)
    url = repo.url
    extra = ["--endpoint-url", request.getfixturevalue("moto_endpoint")] if kind == "s3" else []
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
    options = dataclasses.replace(
        fast_options(f"s_{db}"), base_every_seconds=1.5, retention=RetentionPolicy(keep_bases=5)
    )
    _workload_with_scheduled_bases(pg, db, repo, options, min_bases=1, seed=6)
    _drop_slot(pg, db)

    code, out, err = run_cli(capsys, "repo", "info", url, "--json", *extra)
    assert code == 0, err
    info = json.loads(out)
    bases, segments = repo.base_backups(), repo.segments()
    assert [b["name"] for b in info["base_backups"]] == [b.name for b in bases]
    assert info["segments"] == len(segments) >= 3
    assert info["segment_bytes"] > 0 and info["total_bytes"] > info["segment_bytes"]
    assert info["retention"]["keep_bases"] == 5 and info["schedule"]["base_every_seconds"] == 1.5
    assert info["windows"] and info["windows"][0]["from"] == pitr.to_iso(bases[0].time_us)
    code, out, err = run_cli(capsys, "repo", "info", url, *extra)
    assert code == 0 and "restorable" in out and "keep the newest 5 base backup(s)" in out, out + err

    code, out, err = run_cli(capsys, "repo", "verify", url, *extra)
    assert code == 0, out + err
    assert ": OK" in out

    storage = repo.storage
    middle = segments[len(segments) // 2]
    corrupt = segments[1]
    base_file = next(k for k in storage.list(f"base/{bases[-1].name}/data/"))
    saved = {k: storage.get(k) for k in (middle.key, corrupt.key, base_file)}
    # A segment missing from the middle of the chain.
    storage.delete(middle.key)
    code, out, err = run_cli(capsys, "repo", "verify", url, *extra)
    assert_one_line_error(code, err, f"-{middle.last_lsn:016X}-", "is missing")
    assert code == 5
    storage.put(middle.key, saved[middle.key])
    # A flipped bit in another segment, and a truncated base backup file: both named, in one run.
    data = bytearray(saved[corrupt.key])
    data[len(data) // 2] ^= 0x10
    storage.put(corrupt.key, bytes(data))
    storage.put(base_file, saved[base_file][: len(saved[base_file]) // 2])
    code, out, err = run_cli(capsys, "repo", "verify", url, *extra)
    assert code == 5, out + err
    assert f"{corrupt.key} is corrupt (sha256 mismatch)" in out
    assert base_file.split("/", 2)[2] in out and "2 problem(s)" in out
    for key, value in saved.items():
        storage.put(key, value)
    code, out, err = run_cli(capsys, "repo", "verify", url, *extra)
    assert code == 0, out + err


def test_long_run_with_sigkills_keeps_exactly_the_window(pg: PgServer, db: str, tmp_path: Path) -> None:
    """The archiver (command line) with --base-every 2s --recovery-window 6s under a continuous
    workload, SIGKILLed twice; afterwards every time inside the kept window restores to the
    recorded state, and nothing older than the window needs is left."""
    repo_dir = tmp_path / "repo"
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.encode())
    argv = [
        sys.executable, "-m", "ybrewind.cli", "archive", "start", "-q", pg.url(db), str(repo_dir),
        "--slot", f"s_{db}", "--segment-age", "0.3", "-j", "1",
        "--base-every", "2s", "--recovery-window", "6s",
    ]  # fmt: skip
    repo = Repository.open(str(repo_dir))
    rnd = random.Random(7)
    oracle: list[tuple[int, Oracle]] = []
    proc = subprocess.Popen(argv)
    try:
        wait_until_started(repo)
        started = time.monotonic()
        kills = [4.0, 9.0]
        with pg.connect(db) as conn:
            i = 0
            while time.monotonic() - started < 15:
                if kills and time.monotonic() - started > kills[0]:
                    kills.pop(0)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    proc = subprocess.Popen(argv)
                with conn.transaction():
                    xid = conn.execute("SELECT txid_current()").fetchone()[0]
                    workload_step(conn, rnd, i if i < 25 or i > 50 else 60)  # no DDL mid-run
                oracle.append((commit_us(conn, xid), snapshot(conn)))
                i += 1
                time.sleep(0.03)
            wait_for_commit(repo, last_commit_us(conn))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    _drop_slot(pg, db)
    status = repo.status() or {}
    assert status.get("retention") == {"keep_bases": None, "recovery_window_us": 6_000_000}
    # A final prune with the archiver's own policy, at a known time.
    now = int(time.time() * 1e6)
    prune(repo, RetentionPolicy.from_dict(status["retention"]), now_us=now)
    bases = repo.base_backups()
    edge = now - 6_000_000
    assert bases[0].time_us <= edge < (bases[1].time_us if len(bases) > 1 else now), [b.name for b in bases]
    segments = repo.segments()
    assert all(s.last_lsn >= bases[0].lsn for s in segments[:-1])
    kept = [(t, o) for t, o in oracle if t >= edge]
    assert len(kept) >= 10
    for n in (0, len(kept) // 3, 2 * len(kept) // 3, len(kept) - 1):
        _restore_matches(pg, repo, kept[n][0], kept[n][1])


def test_dump_refuses_a_table_truncated_after_its_snapshot(pg: PgServer, db: str, tmp_path: Path) -> None:
    """TRUNCATE is not MVCC-safe: committed between a base backup's snapshot and its table locks
    (a scheduled base under load), the dump would read the table empty and a restore to a time
    before the TRUNCATE would lose its rows. Found by the scheduled-base test; the dump now refuses."""
    from ybrewind.errors import DatabaseError
    from ybrewind.ysql.dump import DumpOptions, dump
    from ybrewind.ysql.stream import ReplicationConnection

    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)")
    repl = ReplicationConnection(pg.endpoint(db))
    try:
        slot = repl.create_slot(f"trunc_{db}", temporary=True)
        with pg.connect(db) as conn:
            conn.execute("TRUNCATE t")
        with pytest.raises(DatabaseError, match=r"table public.t was truncated or rewritten after the dump's snapshot"):
            dump(pg.endpoint(db), tmp_path / "d", DumpOptions(snapshot=slot.snapshot))
    finally:
        repl.close()
