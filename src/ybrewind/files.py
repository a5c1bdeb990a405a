"""Safe file output and checked file input: the one atomic writer and the one zstd codec.

Every file ybrewind writes (dump files, manifests, repository objects on a local disk, downloads
from S3) goes through ``atomic_file``: a unique temporary name created 0600 beside the target,
fsynced, renamed into place, and the directory fsynced, so a reader never sees a partial file
under its final name and the rename survives a crash. ``atomic_write`` adds zstd compression and
a sha256 of the bytes on disk. A full disk or a permission error becomes a one-line
``StorageError`` naming the file.

Every zstd input (dump data files, plain ``.sql.zst``/``.cql.zst`` scripts, segments, state
objects) is read strictly: a stream that ends inside a frame, garbage between frames, or a frame
whose content checksum fails is a ``DumpIntegrityError`` naming the file. (zstandard's own
``stream_reader`` reports a file cut mid-frame as a clean end, and a ``decompressobj`` returns
what it could decode without saying the frame was incomplete.)

``seal_json``/``unseal_json`` protect small JSON records (manifests, repository metadata) with
their own checksum, so a flipped byte in a field that no other checksum covers is still seen.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from ybrewind.errors import DumpIntegrityError, StorageError

ZSTD_SUFFIX = ".zst"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_LEVEL = 3
CHUNK = 1 << 20
ZSTD_INPUT = 1 << 17  # compressed bytes per step: bounds what one step decompresses
SEAL_KEY = "sha256"


def storage_error(path: Path | str, error: OSError) -> StorageError:
    if error.errno == errno.ENOSPC:
        return StorageError(f"disk full while writing {path}")
    if error.errno == errno.EDQUOT:
        return StorageError(f"disk quota exceeded while writing {path}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"permission denied writing {path}")
    return StorageError(f"cannot write {path}: {error.strerror or error}")


# --------------------------------------------------------------------------------------------
# Writing


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path, *, sync: bool = True) -> Iterator[BinaryIO]:
    """Create ``path`` (mode 0600) atomically: unique temp file, fsync, rename, directory fsync.

    ``sync=False`` leaves both fsyncs to the caller (``fsync_files`` and ``fsync_dir``), who must
    do them before anything (a manifest) vouches for the file: many small files sync faster together.

    The block writes into the yielded (seekable) file. A unique temp name keeps two concurrent
    writers of one target apart: the last rename wins and each rename carries one writer's
    complete file. On any failure the temp file is removed and the target is left as it was.
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise storage_error(path, e) from None
    tmp = Path(tmp_name)
    f = os.fdopen(fd, "wb", buffering=CHUNK)
    try:
        yield f
        f.flush()
        if sync:
            os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
        if sync:
            fsync_dir(path.parent)  # the rename itself must survive a crash
    except OSError as e:
        _discard(f, tmp)
        raise storage_error(path, e) from None
    except BaseException:
        _discard(f, tmp)
        raise


def _discard(f: BinaryIO, tmp: Path) -> None:
    with suppress(OSError):
        f.close()  # may fail again (ENOSPC while flushing the buffer): the file goes anyway
    tmp.unlink(missing_ok=True)


class _HashingSink(io.RawIOBase):
    """A write-only binary sink that hashes and counts what reaches the file."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._target.write(data)
        self.sha256.update(data)
        n = len(data)
        self.bytes += n
        return n


def compressor() -> zstandard.ZstdCompressor:
    """The zstd settings of every file and object ybrewind writes (content checksum on)."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)


class AtomicWriter:
    """What ``atomic_write`` yields: ``write()`` plain bytes; after the block, the checksum."""

    def __init__(self, sink: _HashingSink, compress: bool) -> None:
        self._sink = sink
        self._stream: BinaryIO | None = None
        if compress:
            self._stream = compressor().stream_writer(sink, closefd=False, write_size=CHUNK)  # type: ignore[assignment]
        self.sha256 = ""
        self.bytes = 0  # on disk
        self.raw_bytes = 0  # before compression

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.raw_bytes += len(data)
        (self._stream or self._sink).write(data)

    def flush(self) -> None:
        """Nothing to do: the file is flushed and fsynced once, when the block ends."""

    def _finish(self) -> None:
        if self._stream is not None:
            self._stream.close()  # flushes the final zstd frame into the sink
        self.sha256 = self._sink.sha256.hexdigest()
        self.bytes = self._sink.bytes


@contextmanager
def atomic_write(path: Path, *, compress: bool = False, sync: bool = True) -> Iterator[AtomicWriter]:
    """``atomic_file`` with a sha256 of the bytes on disk, zstd-compressed if asked."""
    with atomic_file(path, sync=sync) as f:
        writer = AtomicWriter(_HashingSink(f), compress)
        yield writer
        writer._finish()


def fsync_files(paths: list[Path]) -> None:
    """fsync files written with ``sync=False``."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise storage_error(path, e) from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# zstd input


def compress(data: bytes) -> bytes:
    """One zstd frame (with content checksum) holding ``data``."""
    return compressor().compress(data)


def decompress(data: bytes, name: str) -> bytes:
    """All the frames of ``data``; a truncated or corrupt frame is an error naming ``name``."""
    if not data:
        raise DumpIntegrityError(f"{name}: corrupt zstd data: empty")
    dctx = zstandard.ZstdDecompressor()
    out: list[bytes] = []
    rest = data
    try:
        while rest:
            frame = dctx.decompressobj()
            out.append(frame.decompress(rest))
            if not frame.eof:
                raise DumpIntegrityError(f"{name}: corrupt zstd data: truncated (the last frame is incomplete)")
            rest = frame.unused_data
    except zstandard.ZstdError as e:
        raise DumpIntegrityError(f"{name}: corrupt zstd data: {' '.join(str(e).split())}") from None
    return b"".join(out)


class ZstdReader(io.RawIOBase):
    """Concatenated zstd frames read from ``raw``, refusing a stream that ends mid-frame."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        self._raw = raw
        self._name = name
        self._dctx = zstandard.ZstdDecompressor()
        self._frame: Any = None  # the decompressobj of the frame being read, None between frames
        self._pending = b""  # input read past the end of the last frame
        self._out = b""  # decompressed but not yet returned
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            if not self._fill():
                return 0
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _fill(self) -> bool:
        """Decompress more into ``_out``; False at a clean end of the stream."""
        data = self._pending or self._raw.read(ZSTD_INPUT)
        self._pending = b""
        if not data:
            if self._frame is not None or not self._started:
                what = "truncated (the last frame is incomplete)" if self._started else "empty"
                raise DumpIntegrityError(f"{self._name}: corrupt zstd data: {what}")
            return False
        self._started = True
        try:
            if self._frame is None:
                self._frame = self._dctx.decompressobj()
            self._out = self._frame.decompress(data)
            if self._frame.eof:
                self._pending = self._frame.unused_data
                self._frame = None
        except zstandard.ZstdError as e:
            raise DumpIntegrityError(f"{self._name}: corrupt zstd data: {' '.join(str(e).split())}") from None
        return True

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def is_zstd(path: Path, head: bytes) -> bool:
    return head == ZSTD_MAGIC or path.name.endswith(ZSTD_SUFFIX)


def open_binary(path: Path) -> BinaryIO:
    """Open a file for reading, decompressing zstd (a ``.zst`` name or zstd's magic number).

    The result has ``read``/``readline`` and raises ``DumpIntegrityError`` naming ``path`` when
    compressed data is truncated or corrupt; ``OSError`` from opening is the caller's to explain.
    """
    path = Path(path)
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    try:
        head = raw.read(4)
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    if not is_zstd(path, head):
        return raw
    if head != ZSTD_MAGIC:
        raw.close()
        raise DumpIntegrityError(f"{path}: corrupt zstd data: not a zstd stream (bad magic number)")
    return open_zstd(raw, str(path))


def open_zstd(raw: BinaryIO, name: str) -> BinaryIO:
    """A buffered (``readline``-capable) strict zstd reader over ``raw``; closing it closes ``raw``."""
    return io.BufferedReader(ZstdReader(raw, name), CHUNK)  # type: ignore[return-value]


def check_compressed(path: Path) -> None:
    """Read a zstd file through once (strictly) so damage is found before any of it is used.

    A plain script has no checksum to check, but a compressed one does (zstd's frame checksums),
    and a load should not run the first half of a file cut in two. Uncompressed files: no-op.
    """
    with open_binary(path) as f:
        if isinstance(f, io.BufferedReader) and isinstance(f.raw, ZstdReader):
            while f.read(CHUNK):
                pass


# --------------------------------------------------------------------------------------------
# Sealed JSON records


def _canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != SEAL_KEY}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def seal_json(record: dict[str, Any]) -> bytes:
    """``record`` as indented JSON carrying the sha256 of its canonical form under "sha256"."""
    sealed = {**record, SEAL_KEY: hashlib.sha256(_canonical(record)).hexdigest()}
    return (json.dumps(sealed, indent=2, ensure_ascii=False) + "\n").encode()


def unseal_json(data: bytes, name: str, *, required: bool = False) -> dict[str, Any]:
    """Parse a record written by ``seal_json`` and check its seal (absent seal: older writers).

    Any damage is a ``DumpIntegrityError`` naming ``name``; with ``required``, so is a missing seal.
    """
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise DumpIntegrityError(f"{name} is not valid JSON ({' '.join(str(e).split())})") from None
    if not isinstance(record, dict):
        raise DumpIntegrityError(f"{name} is not a JSON object")
    seal = record.get(SEAL_KEY)
    if seal is None:
        if required:
            raise DumpIntegrityError(f"{name} has no checksum (corrupt, or written by an older ybrewind)")
        return record
    body = {k: v for k, v in record.items() if k != SEAL_KEY}
    # Byte for byte as written: a change that leaves the record equal (whitespace, a cut final
    # newline) is still a change to the file, and says the storage is not returning what we wrote.
    if seal != hashlib.sha256(_canonical(record)).hexdigest() or seal_json(body) != data:
        raise DumpIntegrityError(f"{name} is corrupt (its checksum does not match its content)")
    return body
