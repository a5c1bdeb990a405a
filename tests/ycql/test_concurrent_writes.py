"""A dump while writes continue: it finishes, and its manifest states the scan time window."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

from cassandra.concurrent import execute_concurrent_with_args

from tests.ycql.conftest import CqlServer
from ybrewind import manifest as mf
from ybrewind.ycql.dump import DumpOptions, dump
from ybrewind.ycql.load import LoadOptions, load

ROWS = 1500


def test_dump_during_writes(cql: CqlServer, tmp_path: Path) -> None:
    ks = cql.keyspace_name("busy")
    cql.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    cql.execute(f"CREATE TABLE {ks}.t (k int, c int, v text, PRIMARY KEY (k, c))")
    insert = cql.conn.session.prepare(f"INSERT INTO {ks}.t (k, c, v) VALUES (?, ?, ?)")
    execute_concurrent_with_args(
        cql.conn.session,
        insert,
        [(k % 150, k, f"v{k}") for k in range(ROWS)],
        concurrency=64,
        raise_on_first_error=True,
    )
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        n = ROWS
        while not stop.is_set():
            cql.conn.session.execute(insert, [n % 150, n, f"late{n}"])
            written[0] += 1
            n += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        time.sleep(0.05)
        started = datetime.now().astimezone()
        result = dump(
            cql.endpoint(ks), tmp_path / "d", DumpOptions(jobs=2, page_size=50, ranges=12, with_writetime=True)
        )
        finished = datetime.now().astimezone()
    finally:
        stop.set()
        thread.join(10)
    assert written[0] > 0
    manifest = mf.read(tmp_path / "d")
    window = manifest.snapshot
    assert window["consistent"] is False
    scan_started = datetime.fromisoformat(window["scan_started"])
    scan_finished = datetime.fromisoformat(window["scan_finished"])
    assert started <= scan_started <= scan_finished <= finished
    table = window["tables"]["t"]
    assert (
        scan_started
        <= datetime.fromisoformat(table["scan_started"])
        <= datetime.fromisoformat(table["scan_finished"])
        <= scan_finished
    )
    assert ROWS <= result.rows <= ROWS + written[0]
    assert window["max_writetime"] is not None
    # What was dumped loads back whole.
    copy = cql.keyspace_name("busy_copy")
    loaded = load(tmp_path / "d", cql.endpoint(copy), LoadOptions(jobs=2))
    assert loaded.rows == result.rows
    count = cql.execute(f"SELECT count(*) FROM {copy}.t")[0][0]
    assert int.from_bytes(count, "big") == result.rows
