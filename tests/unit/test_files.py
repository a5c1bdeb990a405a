"""files.py: the one atomic writer, the one strict zstd reader, sealed JSON records.

Truncated and corrupted zstd frames are fed to every reader (streaming, in-memory, the YSQL and
YCQL script splitters); each must fail with a one-line error naming the file, never end early.
"""

from __future__ import annotations

import errno
import json
import os
import random
from pathlib import Path

import pytest
import zstandard

from ybrewind.archive import format as fmt
from ybrewind.errors import DumpIntegrityError, StorageError
from ybrewind.files import (
    atomic_file,
    atomic_write,
    check_compressed,
    compress,
    decompress,
    open_binary,
    seal_json,
    unseal_json,
)
from ybrewind.ycql import script as cql_script
from ybrewind.ysql import script as sql_script

INSERTS = "".join(f"INSERT INTO ks.t (k, v) VALUES ({i}, 'value {i}');\n" for i in range(20_000))


def frames(text: str, pieces: int = 1) -> bytes:
    """``text`` as ``pieces`` concatenated zstd frames (as a dump written in chunks)."""
    step = len(text) // pieces + 1
    return b"".join(compress(text[i : i + step].encode()) for i in range(0, len(text), step))


def damaged(data: bytes) -> dict[str, bytes]:
    """Truncations and corruptions every strict reader must refuse."""
    rng = random.Random(7)
    flipped = bytearray(data)
    for _ in range(3):
        flipped[rng.randrange(8, len(data) - 8)] ^= 1 << rng.randrange(8)
    return {
        "cut at 70%": data[: int(len(data) * 0.7)],
        "cut by 1 byte": data[:-1],
        "cut inside the header": data[:5],
        "garbage appended": data + b"garbage!",
        "half a frame appended": data + data[: len(data) // 2],
        "bits flipped": bytes(flipped),
        "bad magic": b"\x00" + data[1:],
        "empty": b"",
    }


@pytest.mark.parametrize("pieces", [1, 4])
def test_truncated_cql_zst_script_is_an_error_not_a_short_load(tmp_path: Path, pieces: int) -> None:
    """Issue 11: 20,000 INSERTs cut at 70% loaded 11,112 statements without an error."""
    path = tmp_path / "inserts.cql.zst"
    data = frames(INSERTS, pieces)
    path.write_bytes(data)
    assert sum(1 for _ in cql_script.iter_script_file(path)) == 20_000
    path.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(DumpIntegrityError, match=r"inserts\.cql\.zst: corrupt zstd data: truncated"):
        sum(1 for _ in cql_script.iter_script_file(path))
    with pytest.raises(DumpIntegrityError, match=r"inserts\.cql\.zst: corrupt zstd data: truncated"):
        check_compressed(path)


@pytest.mark.parametrize("case", list(damaged(frames(INSERTS[:200_000], 3))))
def test_every_reader_refuses_damaged_zstd(tmp_path: Path, case: str) -> None:
    data = damaged(frames(INSERTS[:200_000], 3))[case]
    for name in ("x.cql.zst", "x.sql.zst", "x.csv.zst"):
        path = tmp_path / name
        path.write_bytes(data)
        pattern = rf"{name.replace('.', '[.]')}: corrupt zstd data: "
        with pytest.raises(DumpIntegrityError, match=pattern), open_binary(path) as f:
            while f.read(1 << 16):
                pass
        with pytest.raises(DumpIntegrityError, match=rf"{name.replace('.', '[.]')}: corrupt zstd data: "):
            check_compressed(path)
    with pytest.raises(DumpIntegrityError, match=r"x[.]sql[.]zst: corrupt zstd data: "):
        list(sql_script.iter_script_file(tmp_path / "x.sql.zst"))
    with pytest.raises(DumpIntegrityError, match=r"x[.]cql[.]zst: corrupt zstd data: "):
        list(cql_script.iter_script_file(tmp_path / "x.cql.zst"))
    with pytest.raises(DumpIntegrityError, match=r"^blob: corrupt zstd data: "):
        decompress(data, "blob")


def test_readline_and_multiple_frames(tmp_path: Path) -> None:
    path = tmp_path / "d.sql.zst"
    path.write_bytes(frames("COPY t FROM stdin;\n" + "x\n" * 100_000 + "\\.\n", 7))
    with open_binary(path) as f:
        assert f.readline() == b"COPY t FROM stdin;\n"
        rest = f.read()
    assert rest.count(b"x\n") == 100_000 and rest.endswith(b"\\.\n")
    assert decompress(path.read_bytes(), "d") == b"COPY t FROM stdin;\n" + b"x\n" * 100_000 + b"\\.\n"


def test_plain_files_pass_through_and_zstd_is_found_by_magic(tmp_path: Path) -> None:
    plain = tmp_path / "a.sql"
    plain.write_bytes(b"SELECT 1;\n")
    with open_binary(plain) as f:
        assert f.read() == b"SELECT 1;\n"
    check_compressed(plain)  # nothing to check, no error
    unnamed = tmp_path / "b.sql"  # compressed without the suffix: still decompressed
    unnamed.write_bytes(compress(b"SELECT 2;\n"))
    with open_binary(unnamed) as f:
        assert f.read() == b"SELECT 2;\n"


def test_files_written_by_older_compressors_still_read(tmp_path: Path) -> None:
    """Frames without a content checksum (zstandard's default) are accepted."""
    path = tmp_path / "old.sql.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(b"SELECT 1;\n"))
    with open_binary(path) as f:
        assert f.read() == b"SELECT 1;\n"


def test_segment_reader_refuses_truncation_even_with_a_matching_name() -> None:
    """A segment cut at a line boundary parses; the strict reader still says truncated."""
    seg = fmt.Segment({}, [fmt.Transaction(1, 10, 11, 1_000, [["I", 1, ["a"]]])])
    data, info = fmt.encode_segment(seg)
    cut = data[:-4]
    with pytest.raises(DumpIntegrityError, match="corrupt zstd data: truncated"):
        fmt.decode_segment(cut, None, "seg")
    with pytest.raises(DumpIntegrityError, match="sha256 mismatch"):
        fmt.decode_segment(cut, info, "seg")
    assert fmt.segment_header(data, info, "seg")["prev_last_lsn"] is None


# --------------------------------------------------------------------------------------------
# The atomic writer


def test_atomic_write_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "f.sql.zst"
    with atomic_write(target, compress=True) as w:
        w.write(b"hello\n" * 1000)
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert decompress(target.read_bytes(), "f") == b"hello\n" * 1000
    assert w.bytes == target.stat().st_size and w.raw_bytes == 6000
    before = target.read_bytes()
    with pytest.raises(RuntimeError), atomic_write(target) as w:
        w.write(b"partial")
        raise RuntimeError("boom")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.sql.zst"]  # no temp file left


def test_atomic_file_disk_full_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC at fsync (the storage layer's last write): a StorageError naming the file."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError) as caught, atomic_file(tmp_path / "seg") as f:
        f.write(b"x" * 100)
    assert caught.value.message == f"disk full while writing {tmp_path / 'seg'}"
    assert list(tmp_path.iterdir()) == []


def test_two_writers_of_one_target_do_not_share_a_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "k"
    with atomic_file(target) as a, atomic_file(target) as b:
        a.write(b"A" * 10)
        b.write(b"B" * 20)
    assert target.read_bytes() == b"A" * 10  # the last rename wins, whole
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


# --------------------------------------------------------------------------------------------
# Sealed records


def test_sealed_json_detects_every_single_byte_change() -> None:
    record = {"format": "x", "lsn": 123456, "files": ["a", "b"], "name": "base-1"}
    data = seal_json(record)
    assert unseal_json(data, "r") == record
    for i in range(len(data)):
        for bit in (0x01, 0x20):
            broken = bytearray(data)
            broken[i] ^= bit
            with pytest.raises(DumpIntegrityError, match=r"^r\.json "):
                unseal_json(bytes(broken), "r.json", required=True)
    with pytest.raises(DumpIntegrityError, match="corrupt"):
        unseal_json(data[:-1], "r.json")  # the same record, but not the bytes written
    with pytest.raises(DumpIntegrityError, match="no checksum"):
        unseal_json(json.dumps(record).encode(), "r", required=True)
