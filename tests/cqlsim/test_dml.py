"""Writes and reads: timestamps, TTLs, liveness, deletes, statics, clustering order, collections,
counters, batches and conditional inserts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, SimpleStatement

from tests.support.cqlsim import SimHandle


@pytest.fixture
def kv(session: Session, ks: str) -> str:
    session.execute("CREATE TABLE kv (k int, c int, v text, w int, s text STATIC, PRIMARY KEY (k, c))")
    return "kv"


def test_writetime_and_ttl(session: Session, kv: str, rows: Callable) -> None:
    session.execute("INSERT INTO kv (k, c, v, w) VALUES (1, 1, 'a', 7) USING TIMESTAMP 1000 AND TTL 500")
    row = rows("SELECT writetime(v), ttl(v), writetime(w) AS wt, ttl(w) FROM kv WHERE k = 1 AND c = 1")[0]
    assert row.writetime_v == 1000 and row.wt == 1000
    assert 499 <= row.ttl_v <= 500 and row.ttl_w == row.ttl_v
    session.execute("UPDATE kv USING TIMESTAMP 2000 SET w = 8 WHERE k = 1 AND c = 1")
    row = rows("SELECT writetime(v), writetime(w), ttl(w) FROM kv WHERE k = 1 AND c = 1")[0]
    assert (row.writetime_v, row.writetime_w, row.ttl_w) == (1000, 2000, None)
    with pytest.raises(InvalidRequest, match="PRIMARY KEY"):
        session.execute("SELECT writetime(c) FROM kv")


def test_server_timestamp_when_client_sends_none(session: Session, kv: str, rows: Callable, sim: SimHandle) -> None:
    before = sim.clock.now_us()
    session.use_client_timestamp = False
    try:
        session.execute("INSERT INTO kv (k, c, v) VALUES (2, 1, 'x')")
    finally:
        session.use_client_timestamp = True
    assert before <= rows("SELECT writetime(v) FROM kv WHERE k = 2")[0].writetime_v <= sim.clock.now_us()


def test_ttl_expiry_with_clock(session: Session, kv: str, rows: Callable, sim: SimHandle) -> None:
    session.execute("INSERT INTO kv (k, c, v, w) VALUES (1, 1, 'a', 1) USING TTL 10")
    session.execute("UPDATE kv USING TTL 100 SET w = 2 WHERE k = 1 AND c = 1")
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 2, 'forever')")
    sim.clock.advance(11)
    result = rows("SELECT c, v, w, ttl(w) FROM kv WHERE k = 1")
    assert [(r.c, r.v, r.w) for r in result] == [(1, None, 2), (2, "forever", None)]
    assert 88 <= result[0].ttl_w <= 89
    sim.clock.advance(100)
    assert [r.c for r in rows("SELECT c FROM kv WHERE k = 1")] == [2]


def test_default_time_to_live(session: Session, ks: str, rows: Callable, sim: SimHandle) -> None:
    session.execute("CREATE TABLE d (k int PRIMARY KEY, v int) WITH default_time_to_live = 5")
    session.execute("INSERT INTO d (k, v) VALUES (1, 1)")
    session.execute("INSERT INTO d (k, v) VALUES (2, 2) USING TTL 0")
    assert rows("SELECT ttl(v) FROM d WHERE k = 1")[0].ttl_v == 5
    sim.clock.advance(6)
    assert [r.k for r in rows("SELECT k FROM d")] == [2]


def test_last_write_wins(session: Session, kv: str, rows: Callable) -> None:
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'new') USING TIMESTAMP 200")
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'old') USING TIMESTAMP 100")
    assert rows("SELECT v FROM kv WHERE k = 1 AND c = 1")[0].v == "new"
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'aaa') USING TIMESTAMP 200")
    assert rows("SELECT v FROM kv WHERE k = 1 AND c = 1")[0].v == "new"  # tie: greater value wins
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'zzz') USING TIMESTAMP 200")
    assert rows("SELECT v FROM kv WHERE k = 1 AND c = 1")[0].v == "zzz"
    session.execute("DELETE FROM kv USING TIMESTAMP 300 WHERE k = 1 AND c = 1")
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'late') USING TIMESTAMP 250")
    assert rows("SELECT * FROM kv WHERE k = 1") == []  # shadowed by the newer row deletion
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'after') USING TIMESTAMP 400")
    assert rows("SELECT v FROM kv WHERE k = 1")[0].v == "after"


def test_row_liveness(session: Session, kv: str, rows: Callable) -> None:
    session.execute("INSERT INTO kv (k, c) VALUES (1, 1)")
    session.execute("UPDATE kv SET v = 'x' WHERE k = 1 AND c = 2")
    assert [r.c for r in rows("SELECT c FROM kv WHERE k = 1")] == [1, 2]
    session.execute("UPDATE kv SET v = null WHERE k = 1 AND c = 2")
    session.execute("DELETE v FROM kv WHERE k = 1 AND c = 1")
    assert [r.c for r in rows("SELECT c FROM kv WHERE k = 1")] == [1]  # the INSERTed row survives


def test_deletes(session: Session, kv: str, rows: Callable) -> None:
    for c in range(4):
        session.execute("INSERT INTO kv (k, c, v, s) VALUES (%s, %s, 'v', 'static')", [c % 2, c])
    session.execute("DELETE FROM kv WHERE k = 0 AND c = 0")
    assert [(r.k, r.c) for r in rows("SELECT k, c FROM kv WHERE k = 0")] == [(0, 2)]
    session.execute("DELETE FROM kv WHERE k IN (0, 1)")
    assert rows("SELECT * FROM kv") == []
    session.execute("INSERT INTO kv (k, c, v, w) VALUES (5, 1, 'a', 1)")
    session.execute("DELETE v, w FROM kv WHERE k = 5 AND c = 1")
    assert tuple(rows("SELECT c, v, w FROM kv WHERE k = 5")[0]) == (1, None, None)
    with pytest.raises(InvalidRequest, match="Some partition key parts are missing"):
        session.execute("DELETE FROM kv WHERE c = 1")


def test_static_columns(session: Session, kv: str, rows: Callable) -> None:
    session.execute("INSERT INTO kv (k, c, v, s) VALUES (1, 1, 'a', 'first')")
    session.execute("INSERT INTO kv (k, c, v, s) VALUES (1, 2, 'b', 'second')")
    assert [(r.c, r.s) for r in rows("SELECT c, s FROM kv WHERE k = 1")] == [(1, "second"), (2, "second")]
    session.execute("UPDATE kv SET s = 'third' WHERE k = 1")
    assert {r.s for r in rows("SELECT s FROM kv WHERE k = 1")} == {"third"}
    session.execute("INSERT INTO kv (k, s) VALUES (2, 'only static')")
    assert [tuple(r) for r in rows("SELECT k, c, s FROM kv WHERE k = 2")] == [(2, None, "only static")]
    assert [tuple(r) for r in rows("SELECT DISTINCT k, s FROM kv")] == [(1, "third"), (2, "only static")]


def test_clustering_order_desc(session: Session, ks: str, rows: Callable) -> None:
    session.execute("CREATE TABLE ev (k int, day date, seq int, v text, PRIMARY KEY (k, day, seq)) "
                    "WITH CLUSTERING ORDER BY (day DESC, seq ASC)")
    for day in ("2020-01-01", "2020-01-03", "2020-01-02"):
        for seq in (2, 1):
            session.execute(f"INSERT INTO ev (k, day, seq, v) VALUES (1, '{day}', {seq}, 'x')")
    result = [(str(r.day), r.seq) for r in rows("SELECT day, seq FROM ev WHERE k = 1")]
    assert result == [("2020-01-03", 1), ("2020-01-03", 2), ("2020-01-02", 1), ("2020-01-02", 2),
                      ("2020-01-01", 1), ("2020-01-01", 2)]
    sliced = rows("SELECT seq FROM ev WHERE k = 1 AND day >= '2020-01-02' AND day < '2020-01-03'")
    assert [r.seq for r in sliced] == [1, 2]


def test_collection_updates(session: Session, ks: str, rows: Callable) -> None:
    session.execute("CREATE TABLE c (k int PRIMARY KEY, l list<int>, s set<text>, m map<text, int>, "
                    "f frozen<list<int>>)")
    session.execute("INSERT INTO c (k, l, s, m, f) VALUES (1, [1], {'a'}, {'x': 1}, [9])")
    session.execute("UPDATE c SET l = l + [2, 3], s = s + {'b'}, m['y'] = 2, m = m + {'z': 3} WHERE k = 1")
    session.execute("UPDATE c SET l = [0] + l, s = s - {'a'}, m = m - {'x'} WHERE k = 1")
    row = rows("SELECT * FROM c WHERE k = 1")[0]
    assert row.l == [0, 1, 2, 3] and set(row.s) == {"b"} and dict(row.m) == {"y": 2, "z": 3}
    session.execute("UPDATE c SET l[1] = 10, l = l - [3] WHERE k = 1")
    session.execute("DELETE m['y'] FROM c WHERE k = 1")
    row = rows("SELECT l, m FROM c WHERE k = 1")[0]
    assert row.l == [0, 10, 2] and dict(row.m) == {"z": 3}
    prepared = session.prepare("UPDATE c SET m[?] = ?, s = s + ? WHERE k = ?")
    session.execute(prepared, ["p", 5, {"q"}, 1])
    row = rows("SELECT s, m FROM c WHERE k = 1")[0]
    assert dict(row.m) == {"p": 5, "z": 3} and set(row.s) == {"b", "q"}
    with pytest.raises(InvalidRequest, match="frozen"):
        session.execute("UPDATE c SET f = f + [1] WHERE k = 1")


def test_counters(session: Session, ks: str, rows: Callable) -> None:
    session.execute("CREATE TABLE hits (page text PRIMARY KEY, n counter, m counter)")
    session.execute("UPDATE hits SET n = n + 5, m = m - 1 WHERE page = 'a'")
    increment = session.prepare("UPDATE hits SET n = n + ? WHERE page = ?")
    session.execute(increment, [3, "a"])
    assert tuple(rows("SELECT n, m FROM hits WHERE page = 'a'")[0]) == (8, -1)
    with pytest.raises(InvalidRequest, match="INSERT statements are not allowed on counter tables"):
        session.execute("INSERT INTO hits (page, n) VALUES ('b', 1)")
    with pytest.raises(InvalidRequest, match="Cannot set the value of counter column"):
        session.execute("UPDATE hits SET n = 1 WHERE page = 'a'")
    session.execute("BEGIN COUNTER BATCH UPDATE hits SET n = n + 1 WHERE page = 'a'; "
                    "UPDATE hits SET n = n + 1 WHERE page = 'b'; APPLY BATCH")
    assert {r.page: r.n for r in rows("SELECT page, n FROM hits")} == {"a": 9, "b": 1}


def test_batches(session: Session, kv: str, rows: Callable) -> None:
    session.execute("BEGIN BATCH USING TIMESTAMP 77 INSERT INTO kv (k, c, v) VALUES (1, 1, 'a'); "
                    "UPDATE kv SET v = 'b' WHERE k = 1 AND c = 2; DELETE FROM kv WHERE k = 9 AND c = 9; APPLY BATCH")
    assert [(r.c, r.v, r.writetime_v) for r in rows("SELECT c, v, writetime(v) FROM kv WHERE k = 1")] == [
        (1, "a", 77), (2, "b", 77)]
    insert = session.prepare("INSERT INTO kv (k, c, v) VALUES (?, ?, ?)")
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for c in range(3):
        batch.add(insert, (2, c, f"p{c}"))
    batch.add(SimpleStatement("UPDATE kv SET w = %s WHERE k = %s AND c = %s"), (5, 2, 0))
    session.execute(batch)
    assert [(r.c, r.v, r.w) for r in rows("SELECT c, v, w FROM kv WHERE k = 2")] == [
        (0, "p0", 5), (1, "p1", None), (2, "p2", None)]
    bad = BatchStatement()
    bad.add(insert, (3, 1, "ok"))
    bad.add(SimpleStatement("INSERT INTO kv (k, c, nope) VALUES (3, 2, 1)"))
    with pytest.raises(InvalidRequest):
        session.execute(bad)
    assert rows("SELECT * FROM kv WHERE k = 3") == []  # nothing applied


def test_insert_if_not_exists(session: Session, kv: str, rows: Callable) -> None:
    assert session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'a') IF NOT EXISTS").was_applied
    second = session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'b') IF NOT EXISTS")
    assert second.was_applied is False
    assert second.one().v == "a"


def test_prepared_using_markers_and_in(session: Session, kv: str, rows: Callable) -> None:
    insert = session.prepare("INSERT INTO kv (k, c, v) VALUES (?, ?, ?) USING TIMESTAMP ? AND TTL ?")
    assert insert.routing_key_indexes == [0]
    for c in range(5):
        session.execute(insert, [1, c, str(c), 1000 + c, 3600])
    select = session.prepare("SELECT c, writetime(v) FROM kv WHERE k = ? AND c IN ? LIMIT ?")
    result = session.execute(select, [1, [3, 1, 4], 2])
    assert [(r.c, r.writetime_v) for r in result] == [(1, 1001), (3, 1003)]


def test_filtering_rules(session: Session, kv: str, rows: Callable) -> None:
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'a')")
    with pytest.raises(InvalidRequest, match="ALLOW FILTERING"):
        session.execute("SELECT * FROM kv WHERE v = 'a'")
    assert len(rows("SELECT * FROM kv WHERE v = 'a' ALLOW FILTERING")) == 1
    assert rows("SELECT count(*) FROM kv")[0].count == 1


def test_truncate_and_missing_keyspace(session: Session, kv: str, rows: Callable) -> None:
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'a')")
    session.execute("TRUNCATE kv")
    assert rows("SELECT * FROM kv") == []
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'a') USING TIMESTAMP 1")
    assert len(rows("SELECT * FROM kv")) == 1  # truncation leaves no tombstones behind
    fresh = session.cluster.connect()
    try:
        with pytest.raises(InvalidRequest, match="No keyspace has been specified"):
            fresh.execute("SELECT * FROM kv")
    finally:
        fresh.shutdown()


def test_reprepare_after_unprepared(session: Session, kv: str, rows: Callable, sim: SimHandle) -> None:
    select = session.prepare("SELECT v FROM kv WHERE k = ? AND c = ?")
    session.execute("INSERT INTO kv (k, c, v) VALUES (1, 1, 'a')")
    sim.server.prepared.clear()  # as after a server restart: the driver re-prepares on UNPREPARED
    assert session.execute(select, [1, 1]).one().v == "a"


def test_partition_in_marker_and_prefix_delete(session: Session, kv: str, rows: Callable) -> None:
    for k in range(3):
        for c in range(3):
            session.execute("INSERT INTO kv (k, c, v) VALUES (%s, %s, 'x')", [k, c])
    select = session.prepare("SELECT k, c FROM kv WHERE k IN ? AND c >= ?")
    assert sorted(tuple(r) for r in session.execute(select, [[0, 2], 1])) == [(0, 1), (0, 2), (2, 1), (2, 2)]
    session.execute("DELETE FROM kv WHERE k = 1 AND c IN (0, 2)")
    assert [r.c for r in rows("SELECT c FROM kv WHERE k = 1")] == [1]
    with pytest.raises(InvalidRequest, match="Undefined column name nope"):
        session.execute("SELECT nope FROM kv")
