"""Time ybrewind dump/load against pg_dump -Fd / pg_restore, same server, same settings, one run.

Dataset: pgbench tables at --scale plus a wide table of mixed types, >= 1 GB of table data.
Each tool runs with -j N, uncompressed and compressed (ybrewind: zstd; pg_dump 15 has only gzip,
so its default gzip is the comparison point). Loads go into fresh databases; ybrewind load runs
with --no-analyze because pg_restore does not analyze. Prints a markdown table with ratios
(ybrewind time / reference time: below 1.0 means ybrewind is faster).
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from ybrewind import sandbox

WIDE_TABLE = """
CREATE TABLE wide (
    id bigint PRIMARY KEY, i int, n numeric(18, 4), d double precision, t text, ts timestamptz,
    j jsonb, u uuid, b boolean, by bytea, arr int[], dt date
);
INSERT INTO wide
SELECT g, g % 1000, g * 1.2345, g / 7.0, md5(g::text) || ' ' || repeat('x', g % 50),
       '2026-01-01'::timestamptz + g * interval '1 second',
       jsonb_build_object('k', g, 'tag', md5(g::text), 'list', jsonb_build_array(g, g + 1)),
       md5(g::text)::uuid, g % 2 = 0, decode(md5(g::text), 'hex'), ARRAY[g, g % 10, 3], DATE '2020-01-01' + g % 3000
FROM generate_series(1, {rows}) g;
"""


def run(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.monotonic()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


SMALL_TABLES = """
DO $$BEGIN
    FOR i IN 1..{tables} LOOP
        EXECUTE format('CREATE TABLE t%s (id serial PRIMARY KEY, v text, n numeric DEFAULT 0, ts timestamptz)', i);
        EXECUTE format('CREATE INDEX ON t%s (v)', i);
        EXECUTE format('INSERT INTO t%s (v, ts) SELECT md5(g::text), now() FROM generate_series(1, 5) g', i);
    END LOOP;
END$$;
"""


def small_tables(
    args: argparse.Namespace, bin_: Path, ybrewind: str, env: dict[str, str], url: Callable[..., str], work: Path
) -> None:
    """Many small tables (a regression-suite-like database): the cost per table, not per byte."""
    with psycopg.connect(url(), autocommit=True) as c:
        c.execute("CREATE DATABASE small")
    with psycopg.connect(url("small"), autocommit=True) as c:
        c.execute(SMALL_TABLES.replace("{tables}", str(args.small_tables)).encode())
    j = str(args.jobs)
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for tool, argv in (
            ("pg_dump -Fd", [str(bin_ / "pg_dump"), "-Fd", "-Z", "0", "-j", j, "-f", str(work / "pg"), "-d", url("small")]),
            ("ybrewind dump", [ybrewind, "dump", "-q", "-j", j, url("small"), str(work / "yb")]),
        ):
            best[tool] = min(best.get(tool, 1e9), run(argv, env))
            shutil.rmtree(work / ("pg" if tool.startswith("pg") else "yb"))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\n### dump_load --small-tables, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}, fsync=off)\n")
    print(f"{args.small_tables} tables of 5 rows (serial key, index), -j {j}, best of {args.repeat}.\n")
    print("| operation | ybrewind | pg_dump -Fd -Z 0 | ratio |")
    print("|---|---:|---:|---:|")
    yb, pg = best["ybrewind dump"], best["pg_dump -Fd"]
    print(f"| dump -j {j}, {args.small_tables} small tables | {yb:.2f} s | {pg:.2f} s | {yb / pg:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=60, help="pgbench scale (60 is about 770 MB of table data)")
    ap.add_argument("--wide-rows", type=int, default=1_500_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--small-tables", type=int, default=0, help="instead: time dumps of N tables of 5 rows each")
    ap.add_argument("--repeat", type=int, default=3, help="--small-tables: runs per tool, the best is kept")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ybrewind-bench-"))
    os.chmod(work, 0o755)
    sb = sandbox.start(work / "sandbox")
    bin_ = Path(sb.bindir)
    ybrewind = str(Path(sys.executable).parent / "ybrewind")
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(sb.port), "PGUSER": "postgres"}
    url = sb.url
    j = str(args.jobs)
    try:
        if args.small_tables:
            small_tables(args, bin_, ybrewind, env, url, work)
            return
        with psycopg.connect(url(), autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        print(f"building dataset: pgbench scale {args.scale} + {args.wide_rows} wide rows ...", file=sys.stderr)
        build = run([str(bin_ / "pgbench"), "-i", "-q", "-s", str(args.scale), "bench"], env)
        with psycopg.connect(url("bench"), autocommit=True) as c:
            c.execute(WIDE_TABLE.replace("{rows}", str(args.wide_rows)).encode())
            c.execute("VACUUM ANALYZE")
            size = c.execute(
                "SELECT sum(pg_table_size(oid))::bigint FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace"
            ).fetchone()[0]
        print(f"dataset built in {build:.0f}s+: {size / 1e9:.2f} GB of table data", file=sys.stderr)
        rows: list[tuple[str, float, float]] = []
        for compressed in (False, True):
            label = "zstd vs gzip" if compressed else "uncompressed"
            yb_dir, pg_dir = work / f"yb{int(compressed)}", work / f"pg{int(compressed)}"
            yb = [ybrewind, "dump", "-q", "-j", j, url("bench"), str(yb_dir)] + (
                ["--compress", "zstd"] if compressed else []
            )
            pg = [str(bin_ / "pg_dump"), "-Fd", "-j", j, "-f", str(pg_dir), "-d", url("bench")] + (
                [] if compressed else ["-Z", "0"]
            )
            t_pg = run(pg, env)
            t_yb = run(yb, env)
            rows.append((f"dump -j {j}, {label}", t_yb, t_pg))
            for name in ("yb_target", "pg_target"):
                with psycopg.connect(url(), autocommit=True) as c:
                    c.execute(f"DROP DATABASE IF EXISTS {name}")
                    c.execute(f"CREATE DATABASE {name}")
            t_pg = run([str(bin_ / "pg_restore"), "-j", j, "-d", url("pg_target"), str(pg_dir)], env)
            t_yb = run([ybrewind, "load", "-q", "--no-analyze", "-j", j, str(yb_dir), url("yb_target")], env)
            rows.append((f"load -j {j}, {label}", t_yb, t_pg))
            sizes = (
                sum(f.stat().st_size for f in yb_dir.rglob("*") if f.is_file()),
                sum(f.stat().st_size for f in pg_dir.rglob("*") if f.is_file()),
            )
            rows.append((f"dump size MB, {label}", sizes[0] / 1e6, sizes[1] / 1e6))
            shutil.rmtree(yb_dir)
            shutil.rmtree(pg_dir)
        check = subprocess.run([ybrewind, "compare", "-q", url("bench"), url("yb_target")], env=env)
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        print(
            f"\n### dump_load, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}, PostgreSQL sandbox "
            f"{bin_.parent.name}, fsync=off)\n"
        )
        print(
            f"Dataset: pgbench scale {args.scale} + {args.wide_rows:,} wide rows = {size / 1e9:.2f} GB of table data. "
            f"Loaded copy identical to the source: {'yes' if check.returncode == 0 else 'NO'}.\n"
        )
        print("| operation | ybrewind | reference (pg_dump / pg_restore) | ratio |")
        print("|---|---:|---:|---:|")
        for what, yb_v, pg_v in rows:
            unit = "" if "size" in what else " s"
            print(f"| {what} | {yb_v:.1f}{unit} | {pg_v:.1f}{unit} | {yb_v / pg_v:.2f} |")
    finally:
        sandbox.stop(work / "sandbox")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
