"""Chaos test of YSQL point-in-time restore (issue 15), against an oracle that does not trust ybrewind.

One run, on a PostgreSQL cluster of its own (the sandbox, plus WAL archiving):

1. A database of tables of different shapes (a secondary UNIQUE beside the key with TOASTed
   bodies, a composite key with jsonb/numeric/timestamptz, a text key, no key with REPLICA IDENTITY
   FULL, identity and serial columns, a bulk table) and a physical copy of the cluster taken with
   ``pg_basebackup`` before the archiver starts: the oracle's base. The source server runs in
   another TimeZone than the restores' targets, which also print dates, intervals, floats and
   bytea in other styles.
2. ``ybrewind archive start`` (a subprocess) archives while several writers run multi-statement
   transactions: inserts, key and non-key updates, deletes, unique values moved between rows and
   swapped, large TOASTed updates, transactions of thousands of rows, TRUNCATE then re-inserts,
   ``ALTER TABLE ... ADD COLUMN``. The archiver is SIGKILLed at random moments and restarted;
   ``ybrewind backup`` takes extra base backups at random moments.
3. Restore times are drawn among the commits the writers recorded (``pg_xact_commit_timestamp``):
   exact commit times, within a millisecond before and after commits, between commits, just after a
   TRUNCATE or a DDL. For each time, in increasing order, PostgreSQL itself replays the archived WAL
   on the physical copy to that time (``recovery_target_time``, paused as a hot standby, advanced by
   restarting it with the next target): that is the expected state. ``ybrewind restore`` rebuilds the
   database as of the same time into a new database, some of them SIGKILLed midway and run again;
   both are compared table by table (column names and types, row count, digest of every row's text
   in one fixed session setting).

Writers never abort (each owns its rows, TRUNCATE and DDL run alone under an advisory lock), so
PostgreSQL's stop rule (before the first commit or abort record later than the target) is
ybrewind's (before the first commit later than the target). Decisions are drawn from the seed;
thread timing is not reproducible, so a failure prints the seed, the time and the first differing
table, and the run's directory is kept for inspection.

Run from the command line (full count in docs/reliability.md, "Chaos"):
``scripts/chaos --seed 7 --archiver-kills 20 --restores 100 --restore-kills 2``.
The test suite runs a small count (``test_chaos_small``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.integration.test_restore import NEUTRAL_SESSION, replay_position
from tests.support.archive import wait_for_commit, wait_until_started
from ybrewind import sandbox
from ybrewind.archive.repo import Repository
from ybrewind.endpoints import PgEndpoint
from ybrewind.pitr import to_iso
from ybrewind.ysql.restore import RestoreOptions, restore

WRITERS = 3
DB = "chaos"
# ~10 kB of incompressible text: stored out of line (TOAST)
TOASTED = "(SELECT string_agg(md5(%s::text || i::text), '') FROM generate_series(1, 300) i)"
SCHEMA = f"""
CREATE TABLE docs (id int PRIMARY KEY, slug text NOT NULL UNIQUE, body text, n numeric(12,3));
INSERT INTO docs SELECT g, 'doc-' || g, {TOASTED.replace("%s", "g")}, g FROM generate_series(1, 30) g;
CREATE TABLE comp (a int, b text, n numeric, j jsonb, at timestamptz, PRIMARY KEY (a, b));
INSERT INTO comp SELECT g % 30, 'b' || g, g / 7.0, jsonb_build_object('g', g), '2024-01-01 00:00+00'
FROM generate_series(1, 200) g;
CREATE TABLE tkey (k text PRIMARY KEY, v int, note text);
INSERT INTO tkey SELECT 'w' || (g % 3) || '-init-' || g, g, NULL FROM generate_series(1, 60) g;
CREATE TABLE nokey (w int, x int, at timestamptz, j json, f float8, iv interval, raw bytea, d date);
ALTER TABLE nokey REPLICA IDENTITY FULL;
CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, s serial, w int, v text);
CREATE TABLE bulk (w int, i int, v text, PRIMARY KEY (w, i));
CREATE TABLE mark (w int, n int, PRIMARY KEY (w, n));
"""
# The targets' sessions print values otherwise than the source's (America/New_York, ISO...).
TARGET_SETTINGS = {
    "timezone": "Asia/Kolkata",
    "datestyle": "SQL, DMY",
    "intervalstyle": "sql_standard",
    "extra_float_digits": "0",
    "bytea_output": "escape",
}


@dataclass
class Config:
    seed: int = 1
    archiver_kills: int = 3
    restores: int = 8
    restore_kills: int = 1
    base_backups: int = 1  # extra ones, besides the archiver's first
    pause: float = 0.02  # seconds between a writer's transactions
    workdir: Path | None = None
    keep: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))


@dataclass
class Report:
    transactions: int = 0
    archiver_kills: int = 0
    base_backups: int = 0
    restores: int = 0
    restore_kills: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)


class ChaosFailure(AssertionError):
    pass


# -- clusters ---------------------------------------------------------------------------------------
def _as_postgres(argv: list[str], what: str) -> None:
    sandbox._run(argv, what)  # runs as the postgres user when we are root


def _pg_ctl(sb: sandbox.Sandbox, datadir: Path, log: Path, *args: str) -> None:
    _as_postgres([sb.binary("pg_ctl"), "-D", str(datadir), "-l", str(log), "-w", "-t", "300", *args], "pg_ctl")


class Oracle:
    """The physical copy, replayed by PostgreSQL to each target time in turn (a paused hot standby)."""

    def __init__(self, sb: sandbox.Sandbox, workdir: Path, wal_dir: Path) -> None:
        self.sb = sb
        self.datadir = workdir / "oracle"
        self.log = workdir / "oracle.log"
        self.target_file = workdir / "oracle-target.conf"
        self.port = sandbox.free_port()
        self.wal_dir = wal_dir
        self.running = False
        # physical replication needs a password in the sandbox (pg_hba.conf): a throwaway one
        with psycopg.connect(sb.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD 'chaos'").format(sql.Identifier(sandbox.SUPERUSER)))
        _as_postgres(
            [
                "env",
                "PGPASSWORD=chaos",
                sb.binary("pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(sb.port),
                "-U",
                sandbox.SUPERUSER,
                "-w",
                "-D",
                str(self.datadir),
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            "pg_basebackup",
        )

    def configure(self) -> None:
        with open(self.datadir / "postgresql.conf", "a") as f:  # later lines win
            f.write(
                f"\n# chaos oracle\nport = {self.port}\nunix_socket_directories = '{self.datadir.parent}'\n"
                "archive_mode = off\nhot_standby = on\nshared_buffers = 64MB\n"
                f"restore_command = 'cp {self.wal_dir}/%f %p'\nrecovery_target_action = 'pause'\n"
                f"include_if_exists = '{self.target_file}'\n"
            )
        (self.datadir / "recovery.signal").touch()
        if os.geteuid() == 0:
            shutil.chown(self.datadir / "recovery.signal", "postgres", "postgres")

    def state_at(self, target_us: int, exclusive: list[tuple[int, int, int]]) -> dict[str, Any]:
        """The state at ``target_us``. A paused standby keeps the ACCESS EXCLUSIVE lock of a
        TRUNCATE/ALTER whose commit it has not replayed, so tables cannot be read between that lock
        and that commit: for a time in such a window, stop right after the writer's mark instead
        (the last commit before the lock, and the state of every time up to the TRUNCATE's commit)."""
        if self.running:
            _pg_ctl(self.sb, self.datadir, self.log, "-m", "fast", "stop")
            self.running = False
        inside = [mark_xid for mark_us, mark_xid, commit_us in exclusive if mark_us <= target_us < commit_us]
        if inside:
            self.target_file.write_text(f"recovery_target_xid = '{inside[0]}'\n")
        else:
            self.target_file.write_text(f"recovery_target_time = '{to_iso(target_us)}'\n")
        self.target_file.chmod(0o644)
        _pg_ctl(self.sb, self.datadir, self.log, "start")
        self.running = True
        url = f"postgresql://{sandbox.SUPERUSER}@127.0.0.1:{self.port}/{DB}"
        deadline = time.monotonic() + 300
        with psycopg.connect(url, autocommit=True) as conn:
            while conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] != "paused":  # type: ignore[index]
                if time.monotonic() > deadline:
                    raise ChaosFailure(f"the oracle standby did not reach {to_iso(target_us)}; see {self.log}")
                time.sleep(0.05)
            return fingerprint(conn)

    def stop(self) -> None:
        if self.running:
            _pg_ctl(self.sb, self.datadir, self.log, "-m", "immediate", "stop")
            self.running = False


def fingerprint(conn: psycopg.Connection) -> dict[str, Any]:
    """Per table of schema public: columns and types, row count, digest of the sorted row digests."""
    conn.execute(NEUTRAL_SESSION)
    conn.execute("SET lock_timeout = '60s'")  # a table the oracle cannot read is a failure, not a hang
    state: dict[str, Any] = {}
    tables = conn.execute(
        "SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2"
    ).fetchall()
    for oid, name in tables:
        columns = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [oid],
        ).fetchall()
        rows = conn.execute(
            sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') "
                "FROM (SELECT md5(t::text) AS h FROM ONLY {} AS t) s"
            ).format(sql.Identifier("public", name))
        ).fetchone()
        state[name] = (columns, rows)
    return state


def first_difference(expected: dict[str, Any], got: dict[str, Any]) -> str | None:
    for name in sorted(set(expected) | set(got)):
        if name not in got:
            return f"table {name} missing from the restore"
        if name not in expected:
            return f"table {name} should not exist"
        (ecols, erows), (gcols, grows) = expected[name], got[name]
        if ecols != gcols:
            return f"table {name}: columns {gcols} instead of {ecols}"
        if erows != grows:
            return f"table {name}: {grows[0]} rows (digest {grows[1]}) instead of {erows[0]} (digest {erows[1]})"
    return None


# -- the workload -----------------------------------------------------------------------------------
class Writer(threading.Thread):
    """One writer: multi-statement transactions on its own rows (key % WRITERS == w), TRUNCATE and
    DDL alone under an exclusive advisory lock; records each commit's time and kind."""

    def __init__(self, w: int, url: str, seed: int, stop: threading.Event, pause: float, ddl: list[int]) -> None:
        super().__init__(daemon=True)
        self.w, self.url, self.stop, self.pause, self.ddl = w, url, stop, pause, ddl
        self.rnd = random.Random(seed * 1000 + w)
        self.commits: list[tuple[int, str]] = []  # (commit time in Unix µs, kind)
        # (mark commit time, mark xid, commit time) of each TRUNCATE/DDL transaction: see Oracle
        self.exclusive: list[tuple[int, int, int]] = []
        self.error: BaseException | None = None
        self.i = 0  # transactions
        self.seq = 0  # operations: makes this writer's new keys unique

    def run(self) -> None:
        try:
            with (
                psycopg.connect(self.url, autocommit=True) as conn,
                psycopg.connect(self.url, autocommit=True) as aside,
            ):
                while not self.stop.is_set():
                    self.i += 1
                    self.transaction(conn, aside)
                    time.sleep(self.pause * self.rnd.random() * 2)
        except BaseException as e:  # reported by the controller
            self.error = e

    def transaction(self, c: psycopg.Connection, aside: psycopg.Connection) -> None:
        roll = self.rnd.random()
        exclusive = roll < 0.04
        kinds: list[str] = []
        with c.transaction():
            # locks first, then an xid: a base backup's slot waits for every transaction holding one
            if exclusive:
                c.execute("SELECT pg_advisory_xact_lock_shared(2)")  # not during a base backup (see run())
                c.execute("SELECT pg_advisory_xact_lock(1)")
            else:
                c.execute("SELECT pg_advisory_xact_lock_shared(1)")
            xid = c.execute("SELECT txid_current()").fetchone()[0]  # type: ignore[index]
            if exclusive:
                mark = self.mark(aside)
                if roll < 0.025 or len(self.ddl) >= 8:
                    kinds.append(self.truncate(c))
                else:
                    kinds.append(self.add_column(c))
            else:
                for _ in range(self.rnd.randint(1, 3)):
                    op = self.rnd.choice(
                        [
                            self.docs_move,
                            self.docs_swap,
                            self.docs_toast,
                            self.docs_many,
                            self.comp,
                            self.tkey,
                            self.nokey,
                            self.ident,
                            self.bulk,
                        ]
                    )
                    kinds.append(op(c))
        row = c.execute(
            "SELECT (extract(epoch FROM pg_xact_commit_timestamp(%s::text::xid)) * 1000000)::bigint", [xid]
        ).fetchone()
        self.commits.append((int(row[0]), "+".join(kinds)))  # type: ignore[index]
        if exclusive:
            self.exclusive.append((mark[0], mark[1], int(row[0])))  # type: ignore[index]

    def mark(self, aside: psycopg.Connection) -> tuple[int, int]:
        """Commit a small transaction from another session while this writer alone holds the
        exclusive advisory lock, before its TRUNCATE/ALTER: the last commit before that lock."""
        with aside.transaction():
            xid = aside.execute("SELECT txid_current()").fetchone()[0]  # type: ignore[index]
            aside.execute("INSERT INTO mark VALUES (%s, %s)", [self.w, self.i])
        row = aside.execute(
            "SELECT (extract(epoch FROM pg_xact_commit_timestamp(%s::text::xid)) * 1000000)::bigint", [xid]
        ).fetchone()
        self.commits.append((int(row[0]), "mark"))  # type: ignore[index]
        return int(row[0]), int(xid)  # type: ignore[index]

    # each operation returns its kind
    def _ids(self, c: psycopg.Connection) -> list[int]:
        return [r[0] for r in c.execute("SELECT id FROM docs WHERE id %% 3 = %s ORDER BY id", [self.w]).fetchall()]

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _new_id(self) -> int:
        return WRITERS * (1000 + self._next()) + self.w

    def docs_move(self, c: psycopg.Connection) -> str:
        """The issue's case: a UNIQUE slug moved from a row (TOASTed body unchanged) to a new row."""
        ids = self._ids(c)
        d = self.rnd.choice(ids)
        slug = c.execute("SELECT slug FROM docs WHERE id = %s", [d]).fetchone()[0]  # type: ignore[index]
        c.execute("UPDATE docs SET slug = %s WHERE id = %s", [f"old-{self.w}-{self._next()}", d])
        c.execute("INSERT INTO docs (id, slug, body, n) VALUES (%s, %s, 'new', 1)", [self._new_id(), slug])
        if len(ids) > 40:
            c.execute("DELETE FROM docs WHERE id = %s", [ids[0]])
        return "docs_move"

    def docs_swap(self, c: psycopg.Connection) -> str:
        a, b = self.rnd.sample(self._ids(c), 2)
        sa = c.execute("SELECT slug FROM docs WHERE id = %s", [a]).fetchone()[0]  # type: ignore[index]
        sb = c.execute("SELECT slug FROM docs WHERE id = %s", [b]).fetchone()[0]  # type: ignore[index]
        c.execute("UPDATE docs SET slug = %s WHERE id = %s", [f"tmp-{self.w}-{self._next()}", a])
        c.execute("UPDATE docs SET slug = %s WHERE id = %s", [sa, b])
        c.execute("UPDATE docs SET slug = %s WHERE id = %s", [sb, a])
        return "docs_swap"

    def docs_toast(self, c: psycopg.Connection) -> str:
        d = self.rnd.choice(self._ids(c))
        c.execute(f"UPDATE docs SET body = {TOASTED}, n = n + 0.5 WHERE id = %s", [self.i, d])
        return "docs_toast"

    def docs_many(self, c: psycopg.Connection) -> str:
        c.execute("UPDATE docs SET n = n + 1 WHERE id %% 3 = %s AND id %% 4 = %s", [self.w, self.i % 4])
        return "docs_nonkey"

    def comp(self, c: psycopg.Connection) -> str:
        a = 3 * self.rnd.randint(0, 9) + self.w
        action = self.rnd.choice(["insert", "key", "nonkey", "delete"])
        if action == "insert":
            c.execute(
                "INSERT INTO comp (a, b, n, j, at) SELECT %s, 'c' || %s || '-' || g, g / 3.0, "
                "jsonb_build_object('g', g, 'w', %s, 'f', 0.1 + g), clock_timestamp() FROM generate_series(1, %s) g",
                [a, self._next(), self.w, self.rnd.randint(1, 20)],
            )
        elif action == "key":  # new keys that no row of the statement can hold yet
            c.execute(
                "UPDATE comp SET b = 'm' || %s || '-' || md5(b) WHERE a = %s AND n > %s", [self._next(), a, self.i % 5]
            )
        elif action == "nonkey":
            c.execute("UPDATE comp SET n = n * 2 + 1, j = j || '{\"u\": [1, 2.50]}' WHERE a = %s", [a])
        else:
            c.execute("DELETE FROM comp WHERE a = %s AND n > %s", [a, self.rnd.randint(0, 30)])
        return f"comp_{action}"

    def tkey(self, c: psycopg.Connection) -> str:
        prefix = f"w{self.w}-"
        action = self.rnd.choice(["insert", "key", "nonkey", "delete"])
        if action == "insert":
            c.execute(
                "INSERT INTO tkey (k, v, note) SELECT %s || %s || '-' || g, g, 'ü' FROM generate_series(1, 5) g",
                [prefix, self._next()],
            )
        elif action == "key":
            c.execute(
                "UPDATE tkey SET k = k || '.' || %s WHERE k LIKE %s AND v %% 2 = %s AND length(k) < 30",
                [self._next(), prefix + "%", self.i % 2],
            )
        elif action == "nonkey":
            c.execute("UPDATE tkey SET v = v + 1, note = %s WHERE k LIKE %s", [f"n{self.i}", prefix + "%"])
        else:
            c.execute("DELETE FROM tkey WHERE k LIKE %s AND v %% 3 = 0", [prefix + "%"])
        return f"tkey_{action}"

    def nokey(self, c: psycopg.Connection) -> str:
        x = self.i % 7
        for _ in range(2):  # identical duplicates
            c.execute(
                "INSERT INTO nokey (w, x, at, j, f, iv, raw, d) VALUES (%s, %s, clock_timestamp(), "
                "'{\"a\": [1, 2.0]}', %s, %s::interval, %s, current_date - %s)",
                [
                    self.w,
                    x,
                    self.rnd.random() / 3,
                    f"{self.i} days -{self.i % 5} hours 1.5 seconds",
                    bytes([self.i % 256, 0, 255]),
                    self.i % 400,
                ],
            )
        c.execute(
            "UPDATE nokey SET x = x + 100 WHERE ctid = (SELECT ctid FROM nokey WHERE w = %s AND x = %s LIMIT 1)",
            [self.w, x],
        )
        c.execute("DELETE FROM nokey WHERE ctid = (SELECT ctid FROM nokey WHERE w = %s AND x > 100 LIMIT 1)", [self.w])
        return "nokey"

    def ident(self, c: psycopg.Connection) -> str:
        c.execute("INSERT INTO ident (w, v) SELECT %s, 'v' || g FROM generate_series(1, 3) g", [self.w])
        c.execute("UPDATE ident SET v = v || '+' WHERE w = %s AND id %% 5 = %s", [self.w, self.i % 5])
        c.execute("DELETE FROM ident WHERE w = %s AND id %% 7 = %s", [self.w, self.i % 7])
        return "ident"

    def bulk(self, c: psycopg.Connection) -> str:
        count = c.execute("SELECT count(*) FROM bulk WHERE w = %s", [self.w]).fetchone()[0]  # type: ignore[index]
        if count == 0:
            c.execute("INSERT INTO bulk SELECT %s, g, md5(g::text) FROM generate_series(1, 2500) g", [self.w])
            return "bulk_insert"
        if self.rnd.random() < 0.6:
            c.execute("UPDATE bulk SET v = md5(v) WHERE w = %s", [self.w])
            return "bulk_update"
        c.execute("DELETE FROM bulk WHERE w = %s", [self.w])
        return "bulk_delete"

    def truncate(self, c: psycopg.Connection) -> str:
        table = self.rnd.choice(["comp", "tkey", "nokey", "ident", "bulk"])
        restart = table == "ident" and self.rnd.random() < 0.5
        c.execute(
            sql.SQL("TRUNCATE {}{}").format(sql.Identifier(table), sql.SQL(" RESTART IDENTITY" if restart else ""))
        )
        if self.rnd.random() < 0.7:  # re-inserts in the same transaction
            {"comp": self.comp, "tkey": self.tkey, "nokey": self.nokey, "ident": self.ident, "bulk": self.bulk}[table](
                c
            )
        return "truncate"

    def add_column(self, c: psycopg.Connection) -> str:
        table = self.rnd.choice(["docs", "comp", "tkey", "nokey", "ident"])
        column_type, default = self.rnd.choice(
            [
                ("int", f" DEFAULT {self.i}"),
                ("text", ""),
                ("timestamptz", " DEFAULT '2024-02-29 12:00+00'"),
                ("jsonb", " DEFAULT '{\"d\": 1}'"),
                ("numeric(8,2)", " DEFAULT 1.25"),
            ]
        )
        name = f"c{self.w}_{self.i}"
        c.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}{}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(column_type), sql.SQL(default)
            )
        )
        self.ddl.append(1)
        return "ddl"


# -- the run ----------------------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ybrewind.cli", *args]


def run(config: Config) -> Report:
    started = time.monotonic()
    rnd = random.Random(config.seed)
    log = config.log
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="ybrewind-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    wal_dir = workdir / "wal"
    wal_dir.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        for path in (workdir, wal_dir):
            shutil.chown(path, "postgres", "postgres")
    workdir.chmod(0o755)
    report = Report()
    sb = sandbox.start(
        workdir / "source",
        settings={
            "archive_mode": "on",
            "archive_command": f"'cp %p {wal_dir}/%f'",
            "autovacuum": "off",  # its commits would count in PostgreSQL's stop rule, not in the archive
            "timezone": "'America/New_York'",
            "max_wal_size": "1GB",
        },
    )
    oracle: Oracle | None = None
    archiver: subprocess.Popen[bytes] | None = None
    ok = False
    try:
        log(f"chaos seed {config.seed}: {workdir}")
        with psycopg.connect(sb.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
        url = sb.url(DB)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA.encode())
        oracle = Oracle(sb, workdir, wal_dir)
        repo_dir = workdir / "repo"
        archive_argv = _cli(
            "archive", "start", "-q", url, str(repo_dir), "--slot", "chaos", "--segment-age", "0.3", "-j", "1"
        )
        archiver = subprocess.Popen(archive_argv)
        repo = Repository.open(str(repo_dir))
        wait_until_started(repo, timeout=120)
        first_base = repo.base_backups()[0].time_us

        stop = threading.Event()
        ddl: list[int] = []
        writers = [Writer(w, url, config.seed, stop, config.pause, ddl) for w in range(WRITERS)]
        for writer in writers:
            writer.start()
        backups_at = set(
            rnd.sample(range(config.archiver_kills + 1), min(config.base_backups, config.archiver_kills + 1))
        )
        for k in range(config.archiver_kills + 1):
            time.sleep(rnd.uniform(0.4, 2.0))
            if any(w.error for w in writers):
                break
            if k in backups_at:
                # The dump's workers would wait forever behind a concurrent ALTER/TRUNCATE queued on a
                # table its coordinator locked (found by this test, reported; dump.py is not ours):
                # no DDL or TRUNCATE during an extra base backup. Other writes go on.
                with psycopg.connect(url, autocommit=True) as guard:
                    guard.execute("SELECT pg_advisory_lock(2)")
                    proc = subprocess.run(
                        _cli("backup", "-q", "-j", "1", url, str(repo_dir)), capture_output=True, text=True, timeout=300
                    )
                if proc.returncode != 0:
                    raise ChaosFailure(f"seed {config.seed}: ybrewind backup failed: {proc.stderr.strip()}")
                report.base_backups += 1
            if k < config.archiver_kills:
                archiver.send_signal(signal.SIGKILL)
                archiver.wait()
                report.archiver_kills += 1
                archiver = subprocess.Popen(archive_argv)
        stop.set()
        for writer in writers:
            writer.join(120)
        for writer in writers:
            if writer.error is not None:
                raise ChaosFailure(f"seed {config.seed}: writer {writer.w} failed: {writer.error!r}")
        with psycopg.connect(url, autocommit=True) as conn:  # a last commit: every sample is before it
            conn.execute("CREATE TABLE IF NOT EXISTS public.marker (x int)")
            conn.execute("INSERT INTO marker VALUES (1)")
            marker_us = int(
                conn.execute(
                    "SELECT (extract(epoch FROM (pg_last_committed_xact()).timestamp) * 1000000)::bigint"
                ).fetchone()[0]
            )  # type: ignore[index]
        wait_for_commit(repo, marker_us, timeout=300)
        archiver.send_signal(signal.SIGTERM)
        archiver.wait(60)
        archiver = None
        commits = sorted(c for w in writers for c in w.commits)
        exclusive = [x for w in writers for x in w.exclusive]
        report.transactions = len(commits)
        for _, kinds in commits:
            for kind in kinds.split("+"):
                report.kinds[kind] = report.kinds.get(kind, 0) + 1
        log(
            f"{len(commits)} transactions, {report.archiver_kills} archiver kills, {report.base_backups} extra base "
            f"backups, {len(ddl)} DDL; kinds {report.kinds}"
        )
        _archive_all_wal(sb, url, wal_dir)
        oracle.configure()
        with psycopg.connect(sb.url(), autocommit=True) as conn:  # the restores' WAL is not needed
            conn.execute("ALTER SYSTEM SET archive_command = 'true'")
            conn.execute("SELECT pg_reload_conf()")

        targets = pick_targets(rnd, commits, exclusive, first_base, marker_us, config.restores)
        kill_at = set(rnd.sample(range(len(targets)), min(config.restore_kills, len(targets))))
        for n, target_us in enumerate(targets):
            expected = oracle.state_at(target_us, exclusive)
            try:
                got, killed = restore_at(sb, repo, target_us, rnd, n in kill_at, config.seed * 100000 + n)
            except ChaosFailure as e:
                raise ChaosFailure(f"seed {config.seed}, sample {n}: {e}") from None
            report.restores += 1
            report.restore_kills += killed
            difference = first_difference(expected, got)
            if difference is not None:
                raise ChaosFailure(
                    f"seed {config.seed}: restore to {to_iso(target_us)} ({target_us} µs, sample {n}) differs from "
                    f"the oracle: {difference}"
                )
            if n % 10 == 0 or n == len(targets) - 1:
                log(f"restore {n + 1}/{len(targets)} to {to_iso(target_us)}: identical")
        report.seconds = round(time.monotonic() - started, 1)
        ok = True
        return report
    finally:
        if archiver is not None and archiver.poll() is None:
            archiver.kill()
            archiver.wait()
        if oracle is not None:
            oracle.stop()
        sandbox.stop(workdir / "source")
        if ok and not config.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"chaos run kept in {workdir} (seed {config.seed})")


def _archive_all_wal(sb: sandbox.Sandbox, url: str, wal_dir: Path) -> None:
    """Switch to a new WAL file and wait until the server archived the one holding the last commit."""
    with psycopg.connect(url, autocommit=True) as conn:
        last = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + 120
        while not (wal_dir / last).exists():
            if time.monotonic() > deadline:
                raise ChaosFailure(f"WAL file {last} was not archived")
            time.sleep(0.1)


def pick_targets(
    rnd: random.Random,
    commits: list[tuple[int, str]],
    exclusive: list[tuple[int, int, int]],
    start_us: int,
    end_us: int,
    count: int,
) -> list[int]:
    """Restore times among the recorded commits: exact, within 1 ms before or after, between two
    commits, just after a TRUNCATE or a DDL, while one runs. All inside the restorable window, before
    the marker."""
    times = [t for t, _ in commits if start_us < t < end_us]
    special = [t for t, kinds in commits if start_us < t < end_us and ("truncate" in kinds or "ddl" in kinds)]
    picks: set[int] = set()
    while len(picks) < count and times:
        style = rnd.randrange(6)
        i = rnd.randrange(len(times))
        t = times[i]
        if style == 0:
            picks.add(t)
        elif style == 1:
            picks.add(t + rnd.randint(1, 999))
        elif style == 2:
            picks.add(t - rnd.randint(1, 999))
        elif style == 3 and i + 1 < len(times):
            picks.add((t + times[i + 1]) // 2)
        elif style == 4 and special:
            picks.add(rnd.choice(special) + rnd.randint(0, 500))
        elif exclusive:
            mark_us, _, commit_us = rnd.choice(exclusive)
            picks.add(rnd.randint(mark_us, commit_us - 1))
    return sorted(p for p in picks if start_us <= p < end_us)


def restore_at(
    sb: sandbox.Sandbox, repo: Repository, target_us: int, rnd: random.Random, kill: bool, n: int
) -> tuple[dict[str, Any], int]:
    """Restore into a new database whose session defaults differ from the source's; optionally SIGKILL
    a first run midway. Returns the restored fingerprint and the number of kills."""
    name = f"r{n}"
    with psycopg.connect(sb.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for setting, value in TARGET_SETTINGS.items():
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(setting), sql.Literal(value)
                )
            )
    batch = rnd.choice([25, 300, 20_000])
    killed = 0
    if kill:
        argv = _cli("restore", "-q", repo.url, sb.url(name), "--to-time", str(target_us), "--batch-changes", "25")
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        seen: set[int] = set()
        wanted = rnd.randint(1, 4)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and len(seen) < wanted:
            position = _replay_position(sb, name)
            if position is not None:
                seen.add(position)
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = 1
    try:
        restore(
            repo,
            PgEndpoint(sb.url(name)),
            RestoreOptions(target_us=target_us, jobs=1, batch_changes=batch, analyze=False),
        )
    except Exception as e:
        raise ChaosFailure(f"restore to {to_iso(target_us)} ({target_us} µs) failed: {e}") from e
    with psycopg.connect(sb.url(name), autocommit=True) as conn:
        state = fingerprint(conn)
        # sequences: never below a value the restored rows use
        behind = conn.execute(
            "SELECT (SELECT last_value FROM ident_s_seq) < (SELECT max(s) FROM ident), "
            "(SELECT last_value FROM ident_id_seq) < (SELECT max(id) FROM ident)"
        ).fetchone()
        if behind and any(behind):
            raise ChaosFailure(f"restore to {to_iso(target_us)}: a sequence is behind the rows of ident")
    with psycopg.connect(sb.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    return state, killed


class _Server:
    """What ``replay_position`` (tests/integration/test_restore.py) needs of a server."""

    def __init__(self, sb: sandbox.Sandbox) -> None:
        self.sb = sb

    def connect(self, dbname: str) -> psycopg.Connection:
        return psycopg.connect(self.sb.url(dbname), autocommit=True)


def _replay_position(sb: sandbox.Sandbox, name: str) -> int | None:
    try:
        return replay_position(_Server(sb), name)  # type: ignore[arg-type]
    except psycopg.Error:
        return None  # the restore is recreating its schema


# -- entry points -----------------------------------------------------------------------------------
def test_chaos_small() -> None:
    """CI count: a few archiver kills, one extra base backup, a few restores (one killed)."""
    report = run(
        Config(
            seed=int(os.environ.get("YBREWIND_CHAOS_SEED", "1")),
            archiver_kills=3,
            restores=6,
            restore_kills=1,
            base_backups=1,
        )
    )
    assert report.archiver_kills == 3 and report.restores == 6 and report.transactions > 50
    assert report.kinds.get("docs_move") and report.kinds.get("nokey")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--archiver-kills", type=int, default=20)
    parser.add_argument("--restores", type=int, default=100)
    parser.add_argument("--restore-kills", type=int, default=2)
    parser.add_argument("--base-backups", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between a writer's transactions")
    parser.add_argument("--workdir", type=Path, help="run directory (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory even when the run passes")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the servers on a timeout
    config = Config(
        args.seed,
        args.archiver_kills,
        args.restores,
        args.restore_kills,
        args.base_backups,
        args.pause,
        args.workdir,
        args.keep,
    )
    try:
        report = run(config)
    except ChaosFailure as e:
        print(f"CHAOS FAILURE: {e}", file=sys.stderr)
        return 1
    print(
        f"chaos seed {args.seed}: PASSED - {report.transactions} transactions, {report.archiver_kills} archiver "
        f"kills, {report.base_backups} extra base backups, {report.restores} restores identical to the oracle "
        f"({report.restore_kills} killed and re-run), {report.seconds} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
