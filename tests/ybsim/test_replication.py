"""Unit tests of the replication rewrite: LSN counters, old-key tuples, what is not streamed."""

from __future__ import annotations

import struct

import pytest

from tests.support.ybsim import replication as rp
from ybrewind.ysql import pgoutput as po


def w(msg: bytes, lsn: int = 0) -> bytes:
    return b"w" + struct.pack("!QQq", lsn, lsn, 0) + msg


def relation(relid: int, ident: bytes = b"d", natts: int = 2) -> bytes:
    # the first column is the key
    cols = b"".join(
        (b"\x01" if i == 0 else b"\x00") + f"c{i}".encode() + b"\0" + struct.pack("!Ii", 23, -1) for i in range(natts)
    )
    return b"R" + struct.pack("!I", relid) + b"public\0t\0" + ident + struct.pack("!h", natts) + cols


def tup(*values: bytes) -> bytes:
    return struct.pack("!h", len(values)) + b"".join(b"t" + struct.pack("!i", len(v)) + v for v in values)


def begin(final_lsn: int, xid: int = 7) -> bytes:
    return b"B" + struct.pack("!QqI", final_lsn, 1000, xid)


def commit(lsn: int, end: int) -> bytes:
    return b"C" + struct.pack("!BQQq", 0, lsn, end, 1000)


def raw_update(msg: bytes) -> tuple[bytes | None, list[bytes | None]]:
    """An Update message's old-tuple kind ('K'/'O'/None) and old column values, read from the bytes
    (not through ybrewind's decoder, whose reading of YugabyteDB's all-NULL key is under test there)."""
    assert msg[:1] == b"U"
    kind = msg[5:6]
    if kind not in (b"K", b"O"):
        return None, []
    (natts,) = struct.unpack_from("!h", msg, 6)
    offset, values = 8, []
    for _ in range(natts):
        col = msg[offset : offset + 1]
        offset += 1
        if col in (b"t", b"b"):
            (n,) = struct.unpack_from("!i", msg, offset)
            values.append(msg[offset + 4 : offset + 4 + n])
            offset += 4 + n
        else:
            values.append(None)
    return kind, values


def stream(rw: rp.StreamRewriter, *payloads: bytes) -> list[po.Message]:
    out = []
    for p in payloads:
        out += rw.from_upstream(w(p))
    return [po.decode(m[25:]) for m in out]


def test_lsns_count_records_per_slot_and_feedback_maps_back() -> None:
    rw = rp.StreamRewriter({1: rp.TableInfo("f", True)}, rp.LsnMap([(0, 0x5000)]))
    msgs = stream(
        rw, begin(0x6000), relation(1, b"f"), b"I" + struct.pack("!I", 1) + b"N" + tup(b"1", b"a"),
        b"I" + struct.pack("!I", 1) + b"N" + tup(b"2", b"b"), commit(0x6000, 0x6100),
        begin(0x7000), b"D" + struct.pack("!I", 1) + b"O" + tup(b"1", b"a"), commit(0x7000, 0x7100),
    )
    kinds = [type(m).__name__ for m in msgs]
    assert kinds == ["Begin", "Relation", "Insert", "Insert", "Commit", "Begin", "Delete", "Commit"]
    # TestPgReplicationSlot.java: Begin(0/D) ... Commit(0/D, 0/E) for one change; the last change
    # shares its LSN with the commit.
    assert (msgs[0].final_lsn, msgs[4].commit_lsn, msgs[4].end_lsn) == (3, 3, 4)
    assert (msgs[5].final_lsn, msgs[7].commit_lsn, msgs[7].end_lsn) == (6, 6, 7)
    feedback = rw.from_client(b"r" + struct.pack("!QQQqB", 4, 4, 4, 0, 0))
    assert struct.unpack_from("!QQQ", feedback, 1) == (0x6100, 0x6100, 0x6100)
    assert rw.lsns.added == [(4, 0x6100), (7, 0x7100)]


def test_default_identity_update_carries_an_all_null_old_key() -> None:
    rw = rp.StreamRewriter({1: rp.TableInfo("d", True)}, rp.LsnMap([(0, 0)]))
    out = []
    for p in (begin(10), relation(1), b"U" + struct.pack("!I", 1) + b"N" + tup(b"1", b"x"), commit(10, 11)):
        out += rw.from_upstream(w(p))
    update = out[2][25:]
    assert raw_update(update) == (b"K", [None, None])
    assert po.decode(update).new == ["1", "x"]  # type: ignore[union-attr]


def test_truncate_messages_and_tables_without_key_are_not_streamed() -> None:
    rw = rp.StreamRewriter({1: rp.TableInfo("f", True), 2: rp.TableInfo("f", False)}, rp.LsnMap([(0, 0)]))
    msgs = stream(
        rw, begin(10), relation(1, b"f"), b"T" + struct.pack("!IB", 1, 0) + struct.pack("!I", 1), commit(10, 20),
        b"M\x00" + struct.pack("!Q", 0) + b"p\0" + struct.pack("!i", 1) + b"x",
        begin(30), relation(2, b"f"), b"I" + struct.pack("!I", 2) + b"N" + tup(b"1", b"a"), commit(30, 40),
    )
    assert msgs == []
    assert rw.lsns.to_upstream(0) == 40  # nothing streamed, but acknowledging 0/0 covers it all


def test_change_identity_is_refused_by_pgoutput() -> None:
    rw = rp.StreamRewriter({1: rp.TableInfo("c", True)}, rp.LsnMap([(0, 0)]))
    with pytest.raises(rp.StreamError, match=r"replica identity CHANGE \(for table: 1\) is not supported"):
        stream(rw, begin(10), relation(1, b"d"), b"I" + struct.pack("!I", 1) + b"N" + tup(b"1", b"a"))


def test_tables_join_at_the_publication_refresh() -> None:
    now = [100.0]
    rw = rp.StreamRewriter({1: rp.TableInfo("f", True, streamed_from=105.0)}, rp.LsnMap([(0, 0)]), lambda: now[0])
    ins = b"I" + struct.pack("!I", 1) + b"N" + tup(b"1", b"a")
    assert stream(rw, begin(10), relation(1, b"f"), ins, commit(10, 20)) == []
    now[0] = 106.0
    msgs = stream(rw, begin(30), ins, commit(30, 40))
    assert [type(m).__name__ for m in msgs] == ["Begin", "Relation", "Insert", "Commit"]


def test_resent_transactions_keep_their_lsns() -> None:
    rw = rp.StreamRewriter({1: rp.TableInfo("f", True)}, rp.LsnMap([(0, 0), (4, 0x100)]))
    msgs = stream(rw, begin(0x90), relation(1, b"f"), b"I" + struct.pack("!I", 1) + b"N" + tup(b"1", b"a"),
                  commit(0x90, 0x100))
    assert (msgs[-1].commit_lsn, msgs[-1].end_lsn) == (3, 4)
    keep = rw.from_upstream(b"k" + struct.pack("!QqB", 0x500, 0, 1))
    assert struct.unpack_from("!Q", keep[0], 1)[0] == 4
    assert rw.lsns.to_upstream(4) == 0x500
    msgs = stream(rw, begin(0x90), relation(1, b"f"), b"I" + struct.pack("!I", 1) + b"N" + tup(b"1", b"a"),
                  commit(0x90, 0x100))  # once more after the idle stretch: still known
    assert (msgs[-1].commit_lsn, msgs[-1].end_lsn) == (3, 4)


def test_replication_command_parsing() -> None:
    m = rp.CREATE_SLOT.match(b'CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput USE_SNAPSHOT')
    assert m and rp.unquote(m.group("name")) == "s" and rp.snapshot_mode(m.group("rest")) == "USE_SNAPSHOT"
    m = rp.START.match(b"START_REPLICATION SLOT \"s\" LOGICAL 0/1A (proto_version '1', publication_names 'a,b')")
    assert m and rp.publication_names(m.group("rest")) == ["a", "b"] and m.group("lo") == b"1A"
    assert rp.DROP_SLOT.match(b'DROP_REPLICATION_SLOT "s" WAIT').group("wait")


def test_key_updates_become_delete_and_insert() -> None:
    tables = {1: rp.TableInfo("d", True), 2: rp.TableInfo("f", True, key_columns=[True, False])}
    rw = rp.StreamRewriter(tables, rp.LsnMap([(0, 0)]))
    msgs = stream(
        rw, begin(10), relation(1), relation(2, b"f"),
        b"U" + struct.pack("!I", 1) + b"K" + tup(b"1", b"")[:2] + b"t" + struct.pack("!i", 1) + b"1" + b"n"
        + b"N" + tup(b"5", b"x"),
        b"U" + struct.pack("!I", 2) + b"O" + tup(b"1", b"a") + b"N" + tup(b"1", b"b"),
        b"U" + struct.pack("!I", 2) + b"O" + tup(b"1", b"b") + b"N" + tup(b"2", b"b"),
        commit(10, 11),
    )
    kinds = [type(m).__name__ for m in msgs]
    # yb_decode.c: "primary key updates are sent as DELETE + INSERT"
    assert kinds == ["Begin", "Relation", "Delete", "Insert", "Relation", "Update", "Delete", "Insert", "Commit"]
    assert msgs[2].key == ["1", None] and msgs[3].new == ["5", "x"]  # DELETE keys are real values
    assert msgs[5].old == ["1", "a"] and msgs[6].old == ["1", "b"] and msgs[7].new == ["2", "b"]
    assert msgs[-1].commit_lsn == 6  # five changes
