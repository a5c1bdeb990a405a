"""ybrewind's replay rate against PostgreSQL's native logical replication, same workload, same server.

One run, one throwaway PostgreSQL (the sandbox: wal_level=logical, fsync=off):

1. Database ``src``: ``pgbench -i -s 5``. A native subscriber is prepared before any write: a
   publication of the pgbench tables, a logical slot, a copy of the tables in database ``sub``
   (``pg_dump | psql``: nothing writes in between, so the copy is the slot's starting state) and a
   subscription using that slot, created DISABLED. (A subscription cannot create its own slot on the
   server it lives on, so the slot is created first.)
2. ``ybrewind archive start`` (subprocess) takes its base backup, then archives an unthrottled
   ``pgbench -n -t`` workload (default 500,000 tpcb-like transactions: 3 updates and 1 insert each,
   two of the updates on a few hot rows; ``--builtin simple-update``: 1 update and 1 insert, no hot
   rows) and a final marker transaction; the archiver is stopped once the repository holds the marker.
3. Native: ``ALTER SUBSCRIPTION ... ENABLE``; timed until the subscription's replication origin has
   applied the marker transaction (the walsender decodes the WAL and the apply worker applies it).
4. ybrewind: ``ybrewind restore REPO NEWDB --latest``; its replay step is the comparison point
   (the base load and the final step are reported besides).
5. Both copies are checked against the source (``ybrewind compare``, history rows, sum of balances).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from common import log, pgbench_database, start_archiver, stop_archiver, wait_until  # scripts/bench/common.py

from ybrewind import sandbox
from ybrewind.ysql.pgoutput import lsn_to_str, str_to_lsn

TABLES = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history", "bench_marker"]


def one(conn: psycopg.Connection, query: str, params: list[object] | None = None) -> object:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None, query
    return row[0]


def state(url: str) -> tuple[int, int]:
    """(pgbench_history rows, sum of pgbench_accounts.abalance)."""
    with psycopg.connect(url) as c:
        return int(one(c, "SELECT count(*) FROM pgbench_history")), int(  # type: ignore[call-overload]
            one(c, "SELECT sum(abalance) FROM pgbench_accounts")  # type: ignore[call-overload]
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--transactions", type=int, default=500_000, help="pgbench transactions (default 500000)")
    ap.add_argument("--quick", action="store_true", help="20,000 transactions: to try the script")
    ap.add_argument("--scale", type=int, default=5, help="pgbench scale (default 5)")
    ap.add_argument("--clients", type=int, default=4, help="pgbench clients (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="pgbench threads (default 2)")
    ap.add_argument("--jobs", type=int, default=2, help="ybrewind restore -j (default 2)")
    ap.add_argument(
        "--builtin",
        default="tpcb-like",
        choices=["tpcb-like", "simple-update"],
        help="pgbench script (default tpcb-like; simple-update updates no hot tellers/branches rows)",
    )
    args = ap.parse_args()
    wanted = 20_000 if args.quick else args.transactions
    per_client = -(-wanted // args.clients)

    work = Path(tempfile.mkdtemp(prefix="ybrewind-bench-replay-"))
    os.chmod(work, 0o755)
    load_before = os.getloadavg()
    sb = sandbox.start(work / "sandbox")
    bin_ = Path(sb.bindir)
    ybrewind = str(Path(sys.executable).parent / "ybrewind")
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(sb.port), "PGUSER": "postgres"}
    src, sub, restored = sb.url("src"), sb.url("sub"), sb.url("restored")
    repo_dir = work / "repo"
    archiver: subprocess.Popen[bytes] | None = None
    try:
        with psycopg.connect(sb.url(), autocommit=True) as c:
            c.execute("CREATE DATABASE src")
            c.execute("CREATE DATABASE sub")
        conn = pgbench_database(bin_, env, "src", src, args.scale)

        log("native subscriber: publication, slot, copy of the tables, disabled subscription")
        conn.execute(f"CREATE PUBLICATION bench FOR TABLE {', '.join(TABLES)}")
        conn.execute("SELECT pg_create_logical_replication_slot('bench_sub', 'pgoutput')")
        dump = subprocess.Popen(
            [str(bin_ / "pg_dump"), "-d", src, *[a for t in TABLES for a in ("-t", t)]], env=env, stdout=subprocess.PIPE
        )
        subprocess.run(
            [str(bin_ / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", sub],
            env=env,
            stdin=dump.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        assert dump.wait() == 0
        sub_conn = psycopg.connect(sub, autocommit=True)
        sub_conn.execute(
            f"CREATE SUBSCRIPTION bench_sub CONNECTION 'host=127.0.0.1 port={sb.port} user=postgres dbname=src' "
            "PUBLICATION bench WITH (create_slot = false, slot_name = 'bench_sub', enabled = false, copy_data = false)"
        )
        origin = "pg_" + str(one(sub_conn, "SELECT oid FROM pg_subscription WHERE subname = 'bench_sub'"))

        log("starting the archiver; waiting for its first base backup")
        archiver, repo = start_archiver(ybrewind, src, repo_dir, 5, env, work / "archiver.log")

        log(
            f"pgbench -n -b {args.builtin} -c {args.clients} -j {args.threads} -t {per_client} ({per_client * args.clients:,} tx)"
        )
        t0 = time.monotonic()
        bench = subprocess.run(
            [
                str(bin_ / "pgbench"),
                "-n",
                "-b",
                args.builtin,
                "-c",
                str(args.clients),
                "-j",
                str(args.threads),
                "-t",
                str(per_client),
                "src",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        bench_s = time.monotonic() - t0
        tps = float(re.search(r"tps = ([\d.]+)", bench.stdout)[1])  # type: ignore[index]
        processed = int(re.search(r"actually processed: (\d+)", bench.stdout)[1])  # type: ignore[index]
        marker_from = str_to_lsn(str(one(conn, "SELECT pg_current_wal_lsn()::text")))
        conn.execute("INSERT INTO bench_marker VALUES (1, clock_timestamp())")
        log(f"pgbench done in {bench_s:.0f}s ({tps:.0f} tps); waiting for the archiver to store the last commit")

        def drained() -> bool:
            segs = repo.segments()
            return bool(segs) and segs[-1].last_lsn >= marker_from

        wait_until("the archiver to store the marker transaction", drained, 1800, 0.1)
        archiver.send_signal(signal.SIGTERM)
        code = archiver.wait(300)
        if code != 0:
            raise SystemExit(f"bench: the archiver exited with {code}: " + (work / "archiver.log").read_text()[-2000:])

        transactions = changes = all_entries = 0
        last_end_lsn = 0
        segments = repo.segments()
        for info in segments:
            for tx in repo.read_segment(info).transactions:
                transactions += 1
                all_entries += len(tx.changes)
                changes += sum(1 for ch in tx.changes if ch[0] != "R")
                last_end_lsn = tx.end_lsn
        assert transactions == processed + 1, (transactions, processed)  # + the marker
        repo_bytes = sum(f.stat().st_size for f in (repo_dir / "segments").rglob("*") if f.is_file())
        source_state = state(src)
        log(f"archived {transactions:,} transactions, {changes:,} changes in {len(segments)} segments")

        # -- native logical replication ---------------------------------------------------------------------
        conn.execute("CHECKPOINT")
        log("native: enabling the subscription")
        first_applied: list[float] = []

        def native_done() -> bool:
            # NULL until the apply worker has committed its first transaction
            applied = one(sub_conn, "SELECT pg_replication_origin_progress(%s, false)::text", [origin])
            position = str_to_lsn(str(applied)) if applied else 0
            if position and not first_applied:
                first_applied.append(time.monotonic())
            return position >= last_end_lsn

        t0 = time.monotonic()
        sub_conn.execute("ALTER SUBSCRIPTION bench_sub ENABLE")
        native_s = wait_until(f"the subscription to apply up to {lsn_to_str(last_end_lsn)}", native_done, 7200, 0.1)
        native_s -= t0
        startup_s = first_applied[0] - t0 if first_applied else 0.0
        sub_conn.execute("ALTER SUBSCRIPTION bench_sub DISABLE")
        wait_until(
            "the apply worker to stop",
            lambda: one(sub_conn, "SELECT count(pid) FROM pg_stat_subscription WHERE subname = 'bench_sub'") == 0,
            60,
        )
        log(f"native: {native_s:.1f}s")

        # -- ybrewind restore ---------------------------------------------------------------------------------
        conn.execute("CHECKPOINT")
        log("ybrewind: restore --latest")
        t0 = time.monotonic()
        proc = subprocess.run(
            [ybrewind, "restore", "-q", "--json", str(repo_dir), restored, "--latest", "-j", str(args.jobs)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        restore_wall = time.monotonic() - t0
        result = json.loads(proc.stdout)
        assert result["changes"] == all_entries, (result["changes"], all_entries)
        assert result["transactions"] == transactions, (result["transactions"], transactions)
        replay_s = float(result["steps"]["replay"])
        log(f"ybrewind: replay {replay_s:.1f}s, restore {restore_wall:.1f}s")

        # -- checks ------------------------------------------------------------------------------------------
        subprocess.run(
            [ybrewind, "archive", "drop", "-q", "--yes", src, str(repo_dir)], env=env, check=True
        )  # the DDL-capture schema is the archiver's, not the application's: out of the comparison
        checks = {}
        for name, url in (("restored", restored), ("sub", sub)):
            cmp = subprocess.run([ybrewind, "compare", src, url], env=env, capture_output=True, text=True)
            if cmp.returncode != 0:
                log(f"compare src {name}:\n{cmp.stderr.strip()}")
            checks[name] = (cmp.returncode == 0, state(url) == source_state)
        conn.close()
        sub_conn.close()

        native_rate, replay_rate = changes / native_s, changes / replay_s
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        print(
            f"\n### replay, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}, PostgreSQL sandbox "
            f"{bin_.parent.name}, fsync=off; load average {load_before[0]:.1f} before the run)\n"
        )
        print(
            f"Workload: pgbench scale {args.scale}, {args.builtin}, `-n -c {args.clients} -j {args.threads} -t {per_client}`: "
            f"{processed:,} transactions at {tps:,.0f} tps while archived, + 1 marker transaction = {transactions:,} "
            f"transactions, {changes:,} changes (repository: {len(segments)} segments, {repo_bytes / 1e6:.1f} MB). "
            f"Native: a disabled subscription in another database of the same server, enabled and timed until "
            f"it applied the last transaction (includes {startup_s:.1f} s until its first transaction was applied). "
            f"ybrewind: `restore --latest -j {args.jobs}` into a new database, replay step.\n"
        )
        print("| | native logical replication | ybrewind restore (replay) |")
        print("|---|---:|---:|")
        print(f"| apply time | {native_s:.1f} s | {replay_s:.1f} s |")
        print(f"| changes/s | {native_rate:,.0f} | {replay_rate:,.0f} |")
        print(f"| transactions/s | {transactions / native_s:,.0f} | {transactions / replay_s:,.0f} |")
        steps = result["steps"]
        print(
            f"| whole restore (base load {steps.get('base', 0):.1f} s + replay + finish {steps.get('finish', 0):.1f} s)"
            f" | - | {result['seconds']:.1f} s |"
        )
        print(
            f"| copy identical to the source (compare; history rows and sum of balances) | "
            f"{'yes' if checks['sub'][0] else 'NO'}; {'yes' if checks['sub'][1] else 'NO'} | "
            f"{'yes' if checks['restored'][0] else 'NO'}; {'yes' if checks['restored'][1] else 'NO'} |"
        )
        print(f"| **ratio ybrewind / native (changes/s)** | | **{replay_rate / native_rate:.2f}** |")
        print(
            f"\nGoal (ybrewind replays at least as fast as native logical replication): "
            f"{'met' if replay_rate >= native_rate else 'NOT met'}."
        )
    finally:
        stop_archiver(archiver)
        sandbox.stop(work / "sandbox")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
