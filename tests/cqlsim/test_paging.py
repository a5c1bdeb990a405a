"""Result ordering, paging with fetch_size/paging_state, and token / partition_hash range scans."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.metadata import Murmur3Token
from cassandra.query import SimpleStatement

N_PARTITIONS = 300
ROWS_PER_PARTITION = 3


@pytest.fixture
def big(session: Session, ks: str) -> str:
    session.execute("CREATE TABLE big (a int, b text, c int, v int, PRIMARY KEY ((a, b), c)) "
                    "WITH CLUSTERING ORDER BY (c DESC)")
    insert = session.prepare("INSERT INTO big (a, b, c, v) VALUES (?, ?, ?, ?)")
    params = [(a, f"b{a % 7}", c, a * 10 + c) for a in range(N_PARTITIONS) for c in range(ROWS_PER_PARTITION)]
    execute_concurrent_with_args(session, insert, params, raise_on_first_error=True)
    return "big"


def test_paging_returns_every_row_once_in_token_order(session: Session, big: str) -> None:
    statement = SimpleStatement("SELECT a, b, c, token(a, b) AS t FROM big", fetch_size=50)
    result = session.execute(statement)
    assert result.has_more_pages
    rows = list(result)
    assert len(rows) == N_PARTITIONS * ROWS_PER_PARTITION
    assert len({(r.a, r.b, r.c) for r in rows}) == len(rows)
    tokens = [r.t for r in rows]
    assert tokens == sorted(tokens)
    first = [r.c for r in rows[:ROWS_PER_PARTITION]]
    assert first == [2, 1, 0]  # clustering DESC within a partition


def test_token_matches_driver_murmur3(session: Session, big: str) -> None:
    prepared = session.prepare("SELECT a, b, token(a, b) AS t FROM big WHERE a = ? AND b = ?")
    bound = prepared.bind([5, "b5"])
    row = session.execute(bound).one()
    assert Murmur3Token.hash_fn(bound.routing_key) == row.t


def test_manual_paging_state(session: Session, big: str) -> None:
    statement = SimpleStatement("SELECT a, b, c FROM big", fetch_size=100)
    seen = []
    paging_state = None
    while True:
        result = session.execute(statement, paging_state=paging_state)
        seen += result.current_rows
        paging_state = result.paging_state
        if paging_state is None:
            break
        session.execute("INSERT INTO big (a, b, c, v) VALUES (-1, 'new', 0, 0)")  # writes between pages
    keys = {(r.a, r.b, r.c) for r in seen}
    assert len(seen) == len(keys) >= N_PARTITIONS * ROWS_PER_PARTITION


def test_limit_across_pages(session: Session, big: str) -> None:
    statement = SimpleStatement("SELECT a FROM big LIMIT 125", fetch_size=40)
    assert len(list(session.execute(statement))) == 125
    prepared = session.prepare("SELECT a FROM big WHERE a = ? AND b = ? LIMIT 2")
    assert len(list(session.execute(prepared, [3, "b3"]))) == 2


def test_distinct_and_count(session: Session, big: str) -> None:
    statement = SimpleStatement("SELECT DISTINCT a, b FROM big", fetch_size=64)
    assert len({(r.a, r.b) for r in session.execute(statement)}) == N_PARTITIONS
    assert session.execute("SELECT count(*) FROM big").one().count == N_PARTITIONS * ROWS_PER_PARTITION


def test_token_range_scan_covers_all_rows_once(session: Session, big: str) -> None:
    bounds = [-(2**63), -(2**62), -1, 0, 2**61, 2**63 - 1]
    scan = session.prepare("SELECT a, b, c FROM big WHERE token(a, b) > ? AND token(a, b) <= ?")
    scan.fetch_size = 70
    first = session.prepare("SELECT a, b, c FROM big WHERE token(a, b) = ?")
    seen = [tuple(r) for r in session.execute(first, [bounds[0]])]
    for lo, hi in itertools.pairwise(bounds):
        seen += [tuple(r) for r in session.execute(scan, [lo, hi])]
    assert len(seen) == len(set(seen)) == N_PARTITIONS * ROWS_PER_PARTITION


def test_partition_hash_scan_covers_all_rows_once(session: Session, big: str) -> None:
    scan = session.prepare("SELECT a, b, c, partition_hash(a, b) AS h FROM big "
                           "WHERE partition_hash(a, b) >= ? AND partition_hash(a, b) <= ?")
    scan.fetch_size = 90
    seen = []
    for lo in range(0, 65536, 8192):
        for row in session.execute(scan, [lo, lo + 8191]):
            assert lo <= row.h <= lo + 8191
            seen.append((row.a, row.b, row.c))
    assert len(seen) == len(set(seen)) == N_PARTITIONS * ROWS_PER_PARTITION
    hashes = [r.h for r in session.execute("SELECT partition_hash(a, b) AS h FROM big")]
    assert hashes == sorted(hashes) and min(hashes) >= 0 and max(hashes) <= 65535


def test_invalid_paging_state(session: Session, big: str, rows: Callable) -> None:
    with pytest.raises(InvalidRequest, match="paging state"):
        session.execute(SimpleStatement("SELECT a FROM big", fetch_size=10), paging_state=b"garbage")
