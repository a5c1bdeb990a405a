"""SIGKILL the YCQL scan archiver at random points of a continuous workload: nothing lost, nothing twice."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.ycql.conftest import CqlServer
from tests.ycql.helpers import archiver_argv, segments, table_snapshot, wait_for_segments
from ybrewind.archive.repo import Repository
from ybrewind.ycql.capture import read_scan
from ybrewind.ycql.rewind import RestoreOptions, restore
from ybrewind.ycql.session import connect


def test_sigkill_during_scans(cql: CqlServer, tmp_path: Path) -> None:
    if cql.sim is None:
        pytest.skip("simulator only")
    ks = cql.keyspace_name("killed")
    repo_dir = tmp_path / "repo"
    cql.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    cql.execute(f"CREATE TABLE {ks}.t (id int PRIMARY KEY, a text, n int)")
    writer_conn = connect(cql.endpoint(ks))  # client timestamps: the wall clock the archiver scans on
    for i in range(600):
        writer_conn.execute(f"INSERT INTO {ks}.t (id, a, n) VALUES ({i}, 'v{i}', {i})")
    stop = threading.Event()
    rnd = random.Random(7)

    def workload() -> None:
        r = random.Random(1)
        while not stop.is_set():
            i = r.randrange(700)
            op = r.random()
            if op < 0.5:
                writer_conn.execute(f"UPDATE {ks}.t SET n = {r.randrange(10**6)} WHERE id = {i}")
            elif op < 0.7:
                writer_conn.execute(f"INSERT INTO {ks}.t (id, a) VALUES ({i}, 'w{r.randrange(100)}')")
            elif op < 0.85:
                writer_conn.execute(f"DELETE FROM {ks}.t WHERE id = {i}")
            else:
                writer_conn.execute(f"UPDATE {ks}.t SET a = null WHERE id = {i}")
            time.sleep(0.002)

    writer = threading.Thread(target=workload)
    proc = subprocess.Popen(archiver_argv(cql, ks, repo_dir))
    writer.start()
    try:
        for _ in range(2):
            # Once this run has stored a scan, kill it at a random point: scans run back to back,
            # so the kill mostly lands inside a scan (or between its state and its segment).
            wait_for_segments(repo_dir, len(segments(repo_dir)) + 1)
            time.sleep(rnd.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = subprocess.Popen(archiver_argv(cql, ks, repo_dir))
        wait_for_segments(repo_dir, len(segments(repo_dir)) + 1)
    finally:
        stop.set()
        writer.join()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        writer_conn.close()
    # One clean scan after the workload stopped, then the latest restore equals the source.
    assert subprocess.run(archiver_argv(cql, ks, repo_dir, "--max-scans", "1"), check=False).returncode == 0
    repo = Repository.open(str(repo_dir))
    stored = repo.segments()
    assert [s.first_lsn for s in stored] == list(range(len(stored))), "a scan sequence number is missing"
    assert len(stored) >= 4
    seen: set[tuple] = set()
    present: dict[str, bool] = {}
    for info in stored:
        records = read_scan(repo, info)[1]
        lost_cells = {str(r[2]) for r in records if r[0] == "X"}
        for r in records:
            k = str(r[2])
            if r[0] == "W":
                ident = (k, r[3], r[5])
                assert ident not in seen, f"write archived twice: {r}"
                seen.add(ident)
            elif r[0] == "R":
                # Again for a present row only when it lost its last cell (its marker keeps it).
                assert not present.get(k) or k in lost_cells, f"row appeared twice: {r}"
                present[k] = True
            elif r[0] == "D":
                assert present.get(k), f"row deleted twice: {r}"
                present[k] = False
    target = cql.keyspace_name("after_kill")
    restore(repo, cql.endpoint(target), RestoreOptions())
    assert table_snapshot(cql, target) == table_snapshot(cql, ks)
