"""The change-log archiver under a saturating pgbench load, with pg_recvlogical as the ceiling.

One run, one throwaway PostgreSQL (the sandbox: wal_level=logical, fsync=off):

1. ``pgbench -i -s N``, then ``ybrewind archive start`` as a subprocess into a local repository
   (``--segment-age 1``, so a change is stored about a second after its commit); wait for its
   first base backup.
2. A second slot for the ceiling, then unthrottled ``pgbench -n -c C -j J -T D`` while a sampler
   records, every 0.2 s, the WAL insert position and the archiver slot's confirmed_flush_lsn (the
   archiver confirms a position only once the repository holds everything before it).
3. A marker transaction after pgbench; the archive has drained when it holds the marker.

Reported: pgbench TPS; the archiver's sustained changes/s (from pgbench start to drained); lag
(for each sample, the delay until the slot's confirmed position passed the WAL position sampled:
p50/p99/max), and per transaction the delay from commit to the segment holding it being written;
CPU time of the archiver process (and of the walsender decoding for it) per 1,000 changes; bytes
stored per change; drain time. Ceiling: ``pg_recvlogical`` (pgoutput, same options as the
archiver, output to /dev/null) streaming the same WAL range after the run, alone on the server.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from common import log, pgbench_database, start_archiver, stop_archiver, wait_until  # scripts/bench/common.py

from ybrewind import sandbox
from ybrewind.archive.format import SegmentInfo
from ybrewind.ysql.pgoutput import lsn_to_str, str_to_lsn

SLOT = "ybrewind"  # the archiver's default slot and publication
CEILING_SLOT = "bench_ceiling"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1))]


def lsn(conn: psycopg.Connection, query: str, params: list[object] | None = None) -> int:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None and row[0] is not None, query
    return str_to_lsn(row[0])


class Sampler(threading.Thread):
    """Every ``interval`` s: (monotonic time, WAL insert position, archiver slot's confirmed position)."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.stop.is_set():
                    t = time.monotonic()
                    current, confirmed = conn.execute(
                        "SELECT pg_current_wal_lsn()::text, "
                        "(SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s)",
                        [SLOT],
                    ).fetchone()  # type: ignore[misc]
                    self.samples.append((t, str_to_lsn(current), str_to_lsn(confirmed) if confirmed else 0))
                    self.stop.wait(max(0.0, self.interval - (time.monotonic() - t)))
        except BaseException as e:  # reported by the main thread
            self.error = e

    def lags(self, t_from: float, t_to: float) -> list[float]:
        """For each sample taken in [t_from, t_to]: seconds until the confirmed position passed it."""
        out: list[float] = []
        s = self.samples
        j = 0
        for i, (t, current, _) in enumerate(s):
            if not t_from <= t <= t_to:
                continue
            j = max(j, i)
            while j < len(s) and s[j][2] < current:
                j += 1
            if j == len(s):
                raise AssertionError(f"the archiver never confirmed WAL position {lsn_to_str(current)}")
            out.append(s[j][0] - t)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=60, help="seconds of pgbench (default 60)")
    ap.add_argument("--scale", type=int, default=10, help="pgbench scale (default 10)")
    ap.add_argument("--clients", type=int, default=4, help="pgbench clients (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="pgbench threads (default 2)")
    ap.add_argument("--segment-age", type=float, default=1.0, help="archiver --segment-age in s (default 1)")
    ap.add_argument("--base-every", help="archiver --base-every (scheduled base backups during the load)")
    ap.add_argument("--sample-interval", type=float, default=0.2, help="lag sampling period in s (default 0.2)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ybrewind-bench-archive-"))
    os.chmod(work, 0o755)
    load_before = os.getloadavg()
    sb = sandbox.start(work / "sandbox")
    bin_ = Path(sb.bindir)
    ybrewind = str(Path(sys.executable).parent / "ybrewind")
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(sb.port), "PGUSER": "postgres"}
    url = sb.url("bench")
    repo_dir = work / "repo"
    archiver: subprocess.Popen[bytes] | None = None
    try:
        with psycopg.connect(sb.url(), autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        conn = pgbench_database(bin_, env, "bench", url, args.scale)

        log("starting the archiver; waiting for its first base backup")
        t0 = time.monotonic()
        extra = ("--base-every", args.base_every) if args.base_every else ()
        archiver, repo = start_archiver(ybrewind, url, repo_dir, args.segment_age, env, work / "archiver.log", extra)
        log(f"archiver streaming after {time.monotonic() - t0:.1f}s (base backup included)")
        walsender = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", [SLOT]).fetchone()
        walsender_pid = int(walsender[0]) if walsender and walsender[0] else None

        subprocess.run(
            [str(bin_ / "pg_recvlogical"), "-d", url, "--slot", CEILING_SLOT, "--create-slot", "-P", "pgoutput"],
            env=env,
            check=True,
        )
        before = set(repo.segments())

        sampler = Sampler(url, args.sample_interval)
        cpu0 = cpu_seconds(archiver.pid)
        ws0 = cpu_seconds(walsender_pid) if walsender_pid else None
        sampler.start()
        time.sleep(1.0)  # a few samples of the idle state first
        log(f"pgbench -n -c {args.clients} -j {args.threads} -T {args.duration}")
        t_start = time.monotonic()
        bench = subprocess.run(
            [
                str(bin_ / "pgbench"),
                "-n",
                "-c",
                str(args.clients),
                "-j",
                str(args.threads),
                "-T",
                str(args.duration),
                "bench",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        t_end = time.monotonic()
        marker_from = lsn(conn, "SELECT pg_current_wal_lsn()::text")
        conn.execute("INSERT INTO bench_marker VALUES (1, clock_timestamp())")
        end_lsn = lsn(conn, "SELECT pg_current_wal_lsn()::text")
        tps = float(re.search(r"tps = ([\d.]+)", bench.stdout)[1])  # type: ignore[index]
        processed = int(re.search(r"actually processed: (\d+)", bench.stdout)[1])  # type: ignore[index]

        def drained() -> bool:
            segs = repo.segments()
            return bool(segs) and segs[-1].last_lsn >= marker_from

        t_drained = wait_until("the archiver to store the marker transaction", drained, 600, 0.02)
        cpu1 = cpu_seconds(archiver.pid)
        ws1 = cpu_seconds(walsender_pid) if walsender_pid and ws0 is not None else None
        time.sleep(2 * args.sample_interval + 1.0)  # let the confirmed position pass the last samples
        sampler.stop.set()
        sampler.join()
        if sampler.error:
            raise sampler.error
        drain = t_drained - t_end
        log(f"pgbench done ({tps:.0f} tps); archive drained {drain:.2f}s after pgbench ended")

        archiver.send_signal(signal.SIGTERM)
        code = archiver.wait(120)
        if code != 0:
            raise SystemExit(f"bench: the archiver exited with {code}: " + (work / "archiver.log").read_text()[-2000:])

        new: list[SegmentInfo] = [s for s in repo.segments() if s not in before]
        changes = transactions = stored = 0
        commit_lags: list[float] = []
        for info in new:
            path = repo_dir.joinpath(*info.key.split("/"))
            stored += path.stat().st_size
            mtime = path.stat().st_mtime
            for tx in repo.read_segment(info).transactions:
                transactions += 1
                changes += sum(1 for ch in tx.changes if ch[0] != "R")
                commit_lags.append(mtime - tx.commit_us / 1e6)
        assert transactions >= processed + 1, (transactions, processed)  # + the marker
        lags = sampler.lags(t_start, t_end)

        log(f"ceiling: pg_recvlogical streaming {lsn_to_str(end_lsn)} worth of WAL to /dev/null")
        t_c = time.monotonic()
        subprocess.run(
            [
                str(bin_ / "pg_recvlogical"),
                "-d",
                url,
                "--slot",
                CEILING_SLOT,
                "--start",
                "--no-loop",
                "--endpos",
                lsn_to_str(end_lsn),
                "-o",
                "proto_version=1",
                "-o",
                f"publication_names={SLOT}",
                "-o",
                "messages=true",
                "-f",
                "/dev/null",
            ],
            env=env,
            check=True,
            timeout=1800,
        )
        ceiling_s = time.monotonic() - t_c
        conn.close()

        busy = t_drained - t_start
        cpu = cpu1 - cpu0
        ws = (ws1 - ws0) if ws1 is not None and ws0 is not None else None
        lag_max, commit_max = max(lags), max(commit_lags)
        met = lag_max < 2.0 and drain < 2.0
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        print(
            f"\n### archive, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}, PostgreSQL sandbox "
            f"{bin_.parent.name}, fsync=off; load average {load_before[0]:.1f} before the run)\n"
        )
        print(
            f"pgbench scale {args.scale}, tpcb-like, `-n -c {args.clients} -j {args.threads} -T {args.duration}`, "
            f"unthrottled, while `ybrewind archive start --segment-age {args.segment_age:g}` archived into a "
            "local directory. Lag is sampled every "
            f"{args.sample_interval:g} s: the delay until the archiver slot's confirmed_flush_lsn passed the WAL "
            "insert position of the sample.\n"
        )
        print("| measure | value |")
        print("|---|---:|")
        print(f"| pgbench throughput while archiving | {tps:,.0f} tps ({processed:,} transactions) |")
        print(f"| changes archived (insert/update/delete) | {changes:,} in {transactions:,} transactions |")
        print(f"| change rate produced by pgbench | {changes / args.duration:,.0f} changes/s |")
        print(f"| archiver sustained rate (pgbench start to drained) | {changes / busy:,.0f} changes/s |")
        print(
            f"| lag p50 / p99 / max (slot confirmed vs WAL position) | {percentile(lags, 0.5):.2f} / "
            f"{percentile(lags, 0.99):.2f} / {lag_max:.2f} s ({len(lags)} samples) |"
        )
        print(
            f"| commit to stored, per transaction, p50 / p99 / max | {percentile(commit_lags, 0.5):.2f} / "
            f"{percentile(commit_lags, 0.99):.2f} / {commit_max:.2f} s |"
        )
        print(f"| drain after pgbench stopped | {drain:.2f} s |")
        print(f"| archiver CPU per 1,000 changes | {1e6 * cpu / changes:.1f} ms ({100 * cpu / busy:.0f}% of a core) |")
        if ws is not None:
            print(
                f"| walsender (decoding) CPU per 1,000 changes | {1e6 * ws / changes:.1f} ms "
                f"({100 * ws / busy:.0f}% of a core) |"
            )
        print(f"| bytes stored per change | {stored / changes:.1f} B ({len(new)} segments, {stored / 1e6:.1f} MB) |")
        print(
            f"| ceiling: pg_recvlogical, pgoutput to /dev/null, same range | {changes / ceiling_s:,.0f} changes/s "
            f"({ceiling_s:.1f} s) |"
        )
        if args.base_every:
            bases = repo.base_backups()[1:]
            print(
                f"| scheduled base backups during the run (--base-every {args.base_every}) | {len(bases)}, "
                f"{sum(b.bytes for b in bases) / max(1, len(bases)) / 1e6:.1f} MB each |"
            )
        print(f"| goal: keeps up, lag under 2 s | {'met' if met else 'NOT met'} |")
    finally:
        stop_archiver(archiver)
        sandbox.stop(work / "sandbox")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
