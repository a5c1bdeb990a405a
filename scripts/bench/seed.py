"""Seeded database per test: per-test wait and whole-suite time, five ways, same server, one run.

Dataset: a 10-table application schema (foreign keys, indexes, ~52,000 rows), as in issue 13.
A simulated suite of --tests tests runs for each way of getting a fresh seeded database; each test
waits for its database (timed: the "wait"), runs --work-ms of queries on it, and its database is
dropped afterwards. Ways: ``psql -f`` of a plain pg_dump script, ``pg_restore`` of a pg_dump -Fc
archive, ``ybrewind load`` of a dump directory, ``CREATE DATABASE ... TEMPLATE`` per test, and the
pytest plugin's ``seeding.CopyPool`` (template copies made ahead by a background thread; drops done
by that thread too). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from common import log
from psycopg import sql

from ybrewind import sandbox, seeding
from ybrewind.endpoints import PgEndpoint
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import LoadOptions, load

SCHEMA = """
CREATE TABLE categories (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE suppliers (id int PRIMARY KEY, name text NOT NULL, country text);
CREATE TABLE products (id int PRIMARY KEY, category_id int NOT NULL REFERENCES categories,
    supplier_id int REFERENCES suppliers, name text NOT NULL, price numeric(10, 2) NOT NULL);
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
    created_at timestamptz NOT NULL);
CREATE TABLE addresses (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
    street text, city text, zip text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
    created_at timestamptz NOT NULL, status text NOT NULL);
CREATE TABLE order_items (order_id int NOT NULL REFERENCES orders, line int NOT NULL,
    product_id int NOT NULL REFERENCES products, qty int NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE payments (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, amount numeric(10, 2),
    paid_at timestamptz);
CREATE TABLE inventory (product_id int PRIMARY KEY REFERENCES products, on_hand int NOT NULL);
CREATE TABLE reviews (id int PRIMARY KEY, product_id int NOT NULL REFERENCES products,
    customer_id int NOT NULL REFERENCES customers, stars int NOT NULL, body text);
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON orders (created_at);
CREATE INDEX ON order_items (product_id);
CREATE INDEX ON reviews (product_id);
INSERT INTO categories SELECT g, 'category ' || g FROM generate_series(1, 50) g;
INSERT INTO suppliers SELECT g, 'supplier ' || g, 'c' || g % 30 FROM generate_series(1, 200) g;
INSERT INTO products SELECT g, 1 + g % 50, 1 + g % 200, 'product ' || g, (g % 997) + 0.99
    FROM generate_series(1, 1000) g;
INSERT INTO customers SELECT g, 'user' || g || '@example.com', 'customer ' || g,
    '2026-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 5000) g;
INSERT INTO addresses SELECT g, g, g || ' main st', 'city ' || g % 100, lpad((g % 99999)::text, 5, '0')
    FROM generate_series(1, 5000) g;
INSERT INTO orders SELECT g, 1 + g % 5000, '2026-01-01'::timestamptz + g * interval '7 minutes',
    (ARRAY['new', 'paid', 'shipped'])[1 + g % 3] FROM generate_series(1, 10000) g;
INSERT INTO order_items SELECT 1 + (g - 1) / 2, 1 + (g - 1) % 2, 1 + g % 1000, 1 + g % 5
    FROM generate_series(1, 20000) g;
INSERT INTO payments SELECT g, g * 2, (g % 500) + 0.5, '2026-02-01'::timestamptz + g * interval '1 minute'
    FROM generate_series(1, 4750) g;
INSERT INTO inventory SELECT g, g % 300 FROM generate_series(1, 1000) g;
INSERT INTO reviews SELECT g, 1 + g % 1000, 1 + g % 5000, 1 + g % 5, repeat('good ', 1 + g % 20)
    FROM generate_series(1, 5000) g;
"""

# What each simulated test does with its database besides waiting for it.
TEST_QUERIES = [
    "SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.customer_id = 42",
    "INSERT INTO customers VALUES (100001, 'new@example.com', 'new', now())",
    "UPDATE inventory SET on_hand = on_hand - 1 WHERE product_id = 7",
]


def quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_suite(
    admin: psycopg.Connection,
    url: Callable[[str], str],
    tests: int,
    work: float,
    get: Callable[[int], str],
    drop: Callable[[str], None],
) -> tuple[list[float], float]:
    """The simulated suite: per-test waits and the whole suite's wall time."""
    waits: list[float] = []
    started = time.monotonic()
    for i in range(tests):
        t0 = time.monotonic()
        name = get(i)
        waits.append(time.monotonic() - t0)
        t1 = time.monotonic()
        with psycopg.connect(url(name), autocommit=True) as conn:
            for q in TEST_QUERIES:
                conn.execute(q.encode())
            # the rest of the test body: --work-ms in all, whatever the queries took
            time.sleep(max(0.0, work - (time.monotonic() - t1)))
        drop(name)
    return waits, time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tests", type=int, default=20, help="tests in the simulated suite (default 20)")
    ap.add_argument("--work-ms", type=int, default=200, help="time each test spends on its database (default 200)")
    ap.add_argument("--pool", type=int, default=2, help="ready copies kept by the pool (default 2)")
    args = ap.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="ybrewind-bench-seed-"))
    os.chmod(work_dir, 0o755)
    sb = sandbox.start(work_dir / "sandbox")
    bindir = Path(sb.bindir)
    work = args.work_ms / 1000
    try:
        admin = psycopg.connect(sb.url(), autocommit=True)
        admin.execute("CREATE DATABASE seeded")
        log("building the seed database")
        with psycopg.connect(sb.url("seeded"), autocommit=True) as c:
            c.execute(SCHEMA.encode())
            c.execute("VACUUM ANALYZE")
            rows = sum(
                c.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]  # type: ignore[index]
                for (t,) in c.execute("SELECT relname FROM pg_class WHERE relkind = 'r' "
                                      "AND relnamespace = 'public'::regnamespace").fetchall()
            )
            size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
        plain, custom, ydump = work_dir / "seed.sql", work_dir / "seed.dump", work_dir / "ydump"
        quiet([str(bindir / "pg_dump"), "-Fp", "-f", str(plain), "-d", sb.url("seeded")])
        quiet([str(bindir / "pg_dump"), "-Fc", "-f", str(custom), "-d", sb.url("seeded")])
        dump(PgEndpoint(sb.url("seeded")), ydump, DumpOptions())
        counter = iter(range(1_000_000))

        def fresh() -> str:
            name = f"t{next(counter)}"
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
            return name

        def drop(name: str) -> None:
            seeding.drop_database(admin, name)

        def by_psql(_: int) -> str:
            name = fresh()
            quiet([str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", sb.url(name), "-f", str(plain)])
            return name

        def by_pg_restore(_: int) -> str:
            name = fresh()
            quiet([str(bindir / "pg_restore"), "-d", sb.url(name), str(custom)])
            return name

        def by_ybrewind_load(_: int) -> str:
            name = fresh()
            load(ydump, PgEndpoint(sb.url(name)), LoadOptions(analyze=False))
            return name

        def by_template(i: int) -> str:
            name = f"tt{i}"
            seeding.create_database(admin, name, "seeded")
            return name

        results: list[tuple[str, list[float], float]] = []
        for label, get in [
            ("psql -f (plain pg_dump script)", by_psql),
            ("pg_restore (pg_dump -Fc)", by_pg_restore),
            ("ybrewind load (dump directory)", by_ybrewind_load),
            ("CREATE DATABASE ... TEMPLATE per test", by_template),
        ]:
            log(label)
            waits, total = run_suite(admin, sb.url, args.tests, work, get, drop)
            results.append((label, waits, total))

        log(f"template + pool of {args.pool}")
        started = time.monotonic()
        seeding.build_template(PgEndpoint(sb.url()), "pool_tmpl", [ydump])
        pool = seeding.CopyPool(PgEndpoint(sb.url()), "pool_tmpl", "pooled", seed=[ydump], size=args.pool)
        try:
            waits, total = run_suite(admin, sb.url, args.tests, work, lambda _: pool.take(), pool.release)
        finally:
            pool.close()
            drop("pool_tmpl")
        results.append((f"pool of {args.pool} ready template copies (plugin)", waits, total))
        setup = time.monotonic() - started - total

        load1, load5, _ = os.getloadavg()
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        print(f"\n### seed, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}, PostgreSQL sandbox "
              f"{bindir.parent.name}, fsync=off, load average {load1:.1f}/{load5:.1f} at the end)\n")
        print(f"Seed: 10 tables, {rows:,} rows, database size {size / 1e6:.1f} MB. Suite: {args.tests} tests, "
              f"each {args.work_ms} ms on its database, database dropped after each test. The pool's one-off "
              f"template load (from the ybrewind dump) took {setup:.2f} s and is not in its suite time (the other "
              "ways' seed preparation is not either); its first test waits for the first copy.\n")
        print("| way to get a seeded database | median wait | mean wait | p90 wait | max wait | whole suite |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, waits, total in results:
            deciles = statistics.quantiles(waits, n=10)
            print(f"| {label} | {statistics.median(waits) * 1000:.0f} ms | {statistics.mean(waits) * 1000:.0f} ms | "
                  f"{deciles[8] * 1000:.0f} ms | {max(waits) * 1000:.0f} ms | {total:.2f} s |")
        admin.close()
    finally:
        sandbox.stop(work_dir / "sandbox")
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
