"""pgoutput bytes shaped as YugabyteDB sends them, decoded (no server).

The message shapes are built from YugabyteDB's expected outputs in
java/yb-pgsql/src/test/java/org/yb/pgsql/TestPgReplicationSlot.java (replicationConnectionConsumption
tests): under replica identity DEFAULT an UPDATE arrives either without an old tuple (current
releases) or with an old-key ('K') tuple whose columns are all NULL ("No before image in DEFAULT, so
all columns come as NULL", older releases); under CHANGE the old tuple's columns are all unchanged
markers ('u'); under FULL a row inserted and updated in one transaction has an all-NULL 'O' image.
YugabyteDB never changes a key in an UPDATE: primary-key updates stream as DELETE + INSERT
(src/postgres/src/backend/replication/logical/yb_decode.c, YBDecodeUpdate).
"""

from __future__ import annotations

import struct

from ybrewind.ysql import pgoutput as po


def tuple_data(*values: str | po._Unchanged | None) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is po.UNCHANGED:
            out += b"u"
        else:
            data = str(v).encode()
            out += b"t" + struct.pack("!i", len(data)) + data
    return out


def update(old_marker: bytes | None, old: bytes | None, new: bytes, relid: int = 16384) -> bytes:
    body = b"U" + struct.pack("!I", relid)
    if old_marker is not None and old is not None:
        body += old_marker + old
    return body + b"N" + new


NEW = tuple_data("1", "updated_abcd", "t")


def test_default_identity_without_old_tuple() -> None:
    m = po.decode(update(None, None, NEW))
    assert isinstance(m, po.Update) and m.old is None and m.key is None and m.new == ["1", "updated_abcd", "t"]


def test_default_identity_all_null_key_is_no_key_change() -> None:
    m = po.decode(update(b"K", tuple_data(None, None, None), NEW))
    assert isinstance(m, po.Update)
    assert m.key is None and m.old is None  # not a move of the row to key NULL


def test_change_identity_all_unchanged_key_is_no_key_change() -> None:
    m = po.decode(update(b"K", tuple_data(po.UNCHANGED, po.UNCHANGED, po.UNCHANGED), NEW))
    assert isinstance(m, po.Update) and m.key is None and m.old is None


def test_real_key_change_still_decoded() -> None:
    m = po.decode(update(b"K", tuple_data("7", None, None), NEW))
    assert isinstance(m, po.Update) and m.key == ["7", None, None]


def test_full_identity_all_null_before_image_on_yugabyte() -> None:
    raw = update(b"O", tuple_data(None, None, None), tuple_data("3", "updated_ghij", "f"))
    assert po.decode(raw, yugabyte=True).old is None  # type: ignore[union-attr]
    # On PostgreSQL an all-NULL old row under FULL is a real row (every column NULL): kept.
    assert po.decode(raw).old == [None, None, None]  # type: ignore[union-attr]


def test_full_identity_real_before_image_kept_on_yugabyte() -> None:
    raw = update(b"O", tuple_data("1", "abcd", "t"), NEW)
    assert po.decode(raw, yugabyte=True).old == ["1", "abcd", "t"]  # type: ignore[union-attr]


def test_delete_with_key_and_nulls() -> None:
    raw = b"D" + struct.pack("!I", 16384) + b"K" + tuple_data("4", None, None)
    m = po.decode(raw)
    assert isinstance(m, po.Delete) and m.key == ["4", None, None] and m.old is None
