"""Measure rows/s of ``ybrewind dump`` and ``ybrewind load`` for YCQL, one run each.

Target: by default the CQL simulator (``python -m tests.support.cqlsim``, a separate process, so it
does not share the GIL with ybrewind) - which measures ybrewind's own overhead, not a database.
With ``--hosts`` a real YugabyteDB / Cassandra endpoint (credentials from YCQL_USER / YCQL_PASSWORD);
then ``cqlsh COPY TO`` / ``COPY FROM`` run on the same table for a ratio, when a ``cqlsh``
executable is given (``--cqlsh``) or on PATH. (The PyPI ``cqlsh`` package pulls in
``cassandra-driver``, which conflicts with yb-cassandra-driver: install it in its own venv or with pipx.)

Dataset: one table of mixed types (int key, clustering int, text, double, timestamp, frozen map,
blob), ``--rows`` rows over ``rows / 20`` partitions. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cassandra.concurrent import execute_concurrent_with_args

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ybrewind.endpoints import YcqlEndpoint  # noqa: E402
from ybrewind.ycql.session import connect  # noqa: E402

TABLE = """CREATE TABLE {ks}.bench (
    k int, c int, t text, d double, ts timestamp, m frozen<map<text, int>>, b blob, PRIMARY KEY (k, c))"""


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.cqlsim", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    address = line.split("listening on ", 1)[1].split()[0]
    return proc, address


def timed(argv: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--hosts", help="a real endpoint: host[:port][,host...] (default: the simulator)")
    ap.add_argument("--cqlsh", help="cqlsh executable for the COPY comparison (real endpoints only)")
    args = ap.parse_args()
    sim = None
    if args.hosts:
        user = os.environ.get("YCQL_USER")
        base, where = f"ycql://{user + '@' if user else ''}{args.hosts}", f"real endpoint {args.hosts}"
    else:
        sim, address = start_simulator()
        base, where = f"ycql://{address}", "the CQL simulator (in-memory, Python), NOT a real server"
    work = Path(tempfile.mkdtemp(prefix="ybrewind-ycql-bench-"))
    ks, copy = f"bench_{os.getpid()}", f"bench_copy_{os.getpid()}"
    ybrewind = str(Path(sys.executable).parent / "ybrewind")
    try:
        with connect(YcqlEndpoint.parse(base)) as conn:
            conn.execute(
                f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            )
            conn.execute(TABLE.format(ks=ks))
            insert = conn.session.prepare(f"INSERT INTO {ks}.bench (k, c, t, d, ts, m, b) VALUES (?, ?, ?, ?, ?, ?, ?)")
            params = [
                (i // 20, i % 20, f"row {i} " + "x" * (i % 40), i / 7, datetime.fromtimestamp(1.7e9 + i, UTC),
                 {"a": i, "b": -i}, i.to_bytes(8, "big"))
                for i in range(args.rows)
            ]  # fmt: skip
            t0 = time.monotonic()
            execute_concurrent_with_args(conn.session, insert, params, concurrency=128, raise_on_first_error=True)
            build = time.monotonic() - t0
            server = f"{conn.server.flavor} {conn.server.release_version}"
        print(f"dataset: {args.rows} rows in {build:.1f}s on {where} ({server})", file=sys.stderr)
        results: list[tuple[str, float]] = []
        j = str(args.jobs)
        dump_dir = work / "dump"
        results.append(("dump", timed([ybrewind, "dump", "-q", "-j", j, f"{base}/{ks}", str(dump_dir)])))
        wt_dir = work / "dump-wt"
        results.append(
            (
                "dump --with-writetime",
                timed([ybrewind, "dump", "-q", "-j", j, "--with-writetime", f"{base}/{ks}", str(wt_dir)]),
            )
        )
        results.append(("load", timed([ybrewind, "load", "-q", "-j", j, str(dump_dir), f"{base}/{copy}"])))
        cqlsh = args.cqlsh or shutil.which("cqlsh")
        if args.hosts and cqlsh:
            host, _, port = args.hosts.split(",")[0].partition(":")
            csv_file = work / "copy.csv"
            base_cmd = [cqlsh, host, port or "9042"]
            results.append(("cqlsh COPY TO", timed([*base_cmd, "-e", f"COPY {ks}.bench TO '{csv_file}'"])))
            results.append(("cqlsh COPY FROM", timed([*base_cmd, "-e", f"COPY {copy}.bench FROM '{csv_file}'"])))
        size = sum(f.stat().st_size for f in dump_dir.rglob("*") if f.is_file())
        print(
            f"\n{datetime.now(UTC):%Y-%m-%d}, {platform.node()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}; target: {where}; {args.rows} rows, -j {args.jobs}, "
            f"dump {size / 1e6:.1f} MB\n"
        )
        print("| step | seconds | rows/s |")
        print("|---|---:|---:|")
        for name, seconds in results:
            print(f"| {name} | {seconds:.2f} | {args.rows / seconds:,.0f} |")
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(10)
        elif args.hosts:
            with connect(YcqlEndpoint.parse(base)) as conn:
                for name in (ks, copy):
                    conn.execute(f"DROP KEYSPACE IF EXISTS {name}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
