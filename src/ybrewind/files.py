"""Safe file output and checked file input, shared by dumps and (later) archive repositories.

Writes go to a temporary name created 0600, optionally through zstd, are hashed as they are
written (sha256 of the bytes on disk), fsynced and renamed into place: a reader never sees a
partial file under its final name. A full disk or a permission error becomes a one-line
``StorageError`` naming the file.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from ybrewind.errors import StorageError

ZSTD_SUFFIX = ".zst"
ZSTD_LEVEL = 3
CHUNK = 1 << 20


def storage_error(path: Path | str, error: OSError) -> StorageError:
    if error.errno == errno.ENOSPC:
        return StorageError(f"disk full while writing {path}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"permission denied writing {path}")
    return StorageError(f"cannot write {path}: {error.strerror or error}")


class HashingFile(io.RawIOBase):
    """A write-only binary sink that hashes and counts what reaches the disk."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "wb", buffering=CHUNK)
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._file.write(data)
        self.sha256.update(data)
        n = len(data)
        self.bytes += n
        return n

    def sync_and_close(self, sync: bool = True) -> None:
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
        self._file.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()


class AtomicWriter:
    """What ``atomic_write`` yields: ``write()`` plain bytes; after the block, the checksum."""

    def __init__(self, sink: HashingFile, compressor: zstandard.ZstdCompressor | None) -> None:
        self._sink = sink
        self._stream: BinaryIO | None = None
        if compressor is not None:
            self._stream = compressor.stream_writer(sink, closefd=False, write_size=CHUNK)  # type: ignore[assignment]
        self.sha256 = ""
        self.bytes = 0  # on disk
        self.raw_bytes = 0  # before compression

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.raw_bytes += len(data)
        (self._stream or self._sink).write(data)

    def flush(self) -> None:
        """Nothing to do: the file is flushed and fsynced once, when the block ends."""

    def _finish(self, sync: bool = True) -> None:
        if self._stream is not None:
            self._stream.close()  # flushes the final zstd frame into the sink
        self._sink.sync_and_close(sync)
        self.sha256 = self._sink.sha256.hexdigest()
        self.bytes = self._sink.bytes


@contextmanager
def atomic_write(path: Path, *, compress: bool = False, sync: bool = True) -> Iterator[AtomicWriter]:
    """Write ``path`` atomically (temp + fsync + rename), mode 0600, zstd-compressed if asked.

    ``sync=False`` leaves the fsync to the caller (``fsync_files``), who must do it before
    anything (a manifest) vouches for the file: many small files sync faster together.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as e:
        raise storage_error(path, e) from None
    sink = HashingFile(fd)
    writer = AtomicWriter(sink, zstandard.ZstdCompressor(level=ZSTD_LEVEL) if compress else None)
    try:
        yield writer
        writer._finish(sync)
        os.replace(tmp, path)
    except OSError as e:
        sink.close()
        tmp.unlink(missing_ok=True)
        raise storage_error(path, e) from None
    except BaseException:
        sink.close()
        tmp.unlink(missing_ok=True)
        raise


def fsync_files(paths: list[Path]) -> None:
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise storage_error(path, e) from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def open_binary(path: Path) -> BinaryIO:
    """Open a file for reading, decompressing ``.zst`` transparently (multi-frame safe)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if path.name.endswith(ZSTD_SUFFIX):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader, CHUNK)  # type: ignore[arg-type]  # adds readline()
    return raw
