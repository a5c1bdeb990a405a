"""An UPDATE stream shaped as YugabyteDB sends it, archived and replayed into PostgreSQL: the row
is updated in place, never lost and never re-inserted (issue 9, finding 1).

The bytes follow YugabyteDB's expected pgoutput output (TestPgReplicationSlot.java): under replica
identity DEFAULT an UPDATE of a non-key column carries an old-key ('K') tuple whose columns are all
NULL ("No before image in DEFAULT, so all columns come as NULL"), or under CHANGE all unchanged
markers; current releases send none (yb_decode.c, YBDecodeUpdate). Read as a key change, the first
two made the restore delete key NULL and re-insert the row: a unique violation, or a lost update.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from psycopg import pq

from tests.conftest import PgServer
from tests.unit.test_pgoutput_yugabyte import tuple_data
from ybrewind.endpoints import PgEndpoint
from ybrewind.ysql import pgoutput as po
from ybrewind.ysql.apply import Applier, NetBatch, Relation
from ybrewind.ysql.archiver import Archiver
from ybrewind.ysql.stream import XLogData

RELID = 16384


def relation_message() -> bytes:
    cols = [("a", 23, True), ("b", 25, False), ("c", 16, False)]
    body = b"R" + struct.pack("!I", RELID) + b"public\0t\0" + b"d" + struct.pack("!h", len(cols))
    for name, oid, key in cols:
        body += bytes([1 if key else 0]) + name.encode() + b"\0" + struct.pack("!Ii", oid, -1)
    return body


def stream(old_key: bytes | None) -> list[bytes]:
    """BEGIN, RELATION, UPDATE t SET b = 'updated_abcd' WHERE a = 1, COMMIT, as YB's LSNs count."""
    update = b"U" + struct.pack("!I", RELID) + (b"K" + old_key if old_key is not None else b"")
    update += b"N" + tuple_data("1", "updated_abcd", "t")
    return [
        b"B" + struct.pack("!QqI", 0x1F, 0, 11),
        relation_message(),
        update,
        b"C" + struct.pack("!BQQq", 0, 0x1F, 0x20, 0),
    ]


@pytest.mark.parametrize(
    "old_key",
    [
        tuple_data(None, None, None),  # DEFAULT, older releases
        tuple_data(po.UNCHANGED, po.UNCHANGED, po.UNCHANGED),  # CHANGE-style markers
        None,  # current releases: no before image
    ],
    ids=["all-null-key", "unchanged-key", "no-key"],
)
def test_yugabyte_update_replays_in_place(pg: PgServer, db: str, old_key: bytes | None) -> None:
    archiver = Archiver(PgEndpoint("postgresql://u@127.0.0.1:1/x"), SimpleNamespace(url="mem://"))  # type: ignore[arg-type]
    archiver.yugabyte = True
    for lsn, payload in enumerate(stream(old_key), start=0x1C):
        archiver._handle(po.decode(payload, yugabyte=True), XLogData(lsn, lsn, payload))
    [tx] = archiver.pending
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (a int PRIMARY KEY, b text, c bool)")
        conn.execute("INSERT INTO t VALUES (1, 'abcd', true), (2, 'other', false)")
        conn.execute("SET session_replication_role = replica")
        applier = Applier(conn)
        for relid, rec in archiver.pending_relations.items():
            applier.relations[relid] = Relation.from_record(rec)
        net = NetBatch(applier)
        with conn.transaction():
            for change in tx.changes:
                net.add(change)
            net.flush()
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        assert conn.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == [
            (1, "updated_abcd", True),
            (2, "other", False),
        ]
