"""The change-log repository's formats: segment encoding, object names, metadata records.

Pure functions only (bytes in, bytes out); ``repo.py`` does the I/O. Layout and rationale are in
docs/repository-format.md.

A segment is a zstd-compressed JSON-lines object holding complete transactions in commit order:

    {"segment": 1, "first_lsn": ..., "last_lsn": ..., "first_commit_us": ..., "prev_last_lsn": ...}  header
    {"relation": relid, "schema": ..., "name": ..., "columns": [[name, type_oid, typmod, is_key], ...], ...}
    {"xid": ..., "lsn": commit_lsn, "end_lsn": ..., "ts": commit_us, "changes": [...]}   one per transaction
    {"sequences": [[schema, name, last_value], ...], "sampled_us": ..., "after_lsn": ...}  optional

Changes: ``["I", relid, new]``, ``["U", relid, old_or_key, new]``, ``["D", relid, old_or_key]``,
``["T", [relids], cascade, restart_identity]``, ``["TN", [[schema, table], ...]]`` (TRUNCATE ONLY by
name: YugabyteDB, recorded by the archiver's trigger), ``["DDL", tag, command, search_path]``,
``["R", relid, relation]`` (a relation's new shape after DDL, before the tuples that use it).
Tuples are lists of text values; ``None`` is SQL NULL and the integer
``0`` marks an unchanged TOASTed value (never a legal text value, so unambiguous).

The object name carries the segment's LSN and commit-time range and its sha256, so listing the
``segments/`` prefix is the index: a restore picks its segments without reading any of them.
The header's ``prev_last_lsn`` is the ``last_lsn`` of the segment stored just before it (None for
the repository's first), so a segment missing from the middle of the chain is detected.
The metadata records (repository.json, base.json, the archiver status) are sealed with their own
checksum (``files.seal_json``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ybrewind.errors import DumpIntegrityError
from ybrewind.files import compress, decompress, open_zstd, seal_json, unseal_json

REPOSITORY_FORMAT = "ybrewind-repository"
REPOSITORY_VERSION = 1
SEGMENT_VERSION = 1
SEGMENTS_PREFIX = "segments/"
BASE_PREFIX = "base/"
REPOSITORY_KEY = "repository.json"
STATUS_KEY = "state/archiver.json"
UNCHANGED_TOAST = 0

_SEGMENT_RE = re.compile(
    r"^segments/(?P<first_lsn>[0-9A-F]{16})-(?P<last_lsn>[0-9A-F]{16})-(?P<first_us>\d+)-(?P<last_us>\d+)"
    r"-(?P<count>\d+)-(?P<sha>[0-9a-f]{64})\.seg\.zst$"
)


@dataclass(frozen=True, order=True)
class SegmentInfo:
    """What a segment's name says about it."""

    first_lsn: int
    last_lsn: int
    first_commit_us: int
    last_commit_us: int
    transactions: int
    sha256: str

    @property
    def key(self) -> str:
        return (
            f"{SEGMENTS_PREFIX}{self.first_lsn:016X}-{self.last_lsn:016X}-{self.first_commit_us}-"
            f"{self.last_commit_us}-{self.transactions}-{self.sha256}.seg.zst"
        )


def parse_segment_key(key: str) -> SegmentInfo | None:
    m = _SEGMENT_RE.match(key)
    if not m:
        return None
    return SegmentInfo(
        int(m["first_lsn"], 16),
        int(m["last_lsn"], 16),
        int(m["first_us"]),
        int(m["last_us"]),
        int(m["count"]),
        m["sha"],
    )


@dataclass
class Transaction:
    xid: int
    commit_lsn: int
    end_lsn: int
    commit_us: int
    changes: list[list[Any]] = field(default_factory=list)
    size: int = 0  # rough bytes, for segment rotation

    def to_record(self) -> dict[str, Any]:
        return {
            "xid": self.xid,
            "lsn": self.commit_lsn,
            "end_lsn": self.end_lsn,
            "ts": self.commit_us,
            "changes": self.changes,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Transaction:
        return cls(r["xid"], r["lsn"], r["end_lsn"], r["ts"], r["changes"])


@dataclass
class Segment:
    relations: dict[int, dict[str, Any]] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)
    sequences: dict[str, Any] | None = None

    def info(self, sha256: str) -> SegmentInfo:
        t = self.transactions
        return SegmentInfo(t[0].commit_lsn, t[-1].commit_lsn, t[0].commit_us, t[-1].commit_us, len(t), sha256)


def encode_json_lines(records: list[Any]) -> bytes:
    """zstd-compressed JSON lines: the body of every segment object (YSQL and YCQL)."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return compress(("\n".join(map(dumps, records)) + "\n").encode())


def decode_json_lines(data: bytes, info: SegmentInfo | None, name: str) -> list[Any]:
    """Check the checksum (when the object's name gave one), decompress and parse (non-empty)."""
    if info is not None and hashlib.sha256(data).hexdigest() != info.sha256:
        raise DumpIntegrityError(f"{name} is corrupt (sha256 mismatch)")
    raw_bytes = decompress(data, name)  # strict: a frame cut short is an error, not an early end
    try:
        raw = raw_bytes.decode()
        # One parse for the whole object: JSON lines never contain a raw newline, so they join
        # into one array (much faster than a json.loads call per line).
        records = json.loads("[" + raw.rstrip("\n").replace("\n", ",") + "]")
    except (UnicodeDecodeError, ValueError) as e:
        raise DumpIntegrityError(f"{name} cannot be read ({' '.join(str(e).split())})") from None
    if not records:
        raise DumpIntegrityError(f"{name} is empty")
    return list(records)


def encode_segment(segment: Segment, prev_last_lsn: int | None = None) -> tuple[bytes, SegmentInfo]:
    """Serialize and compress; returns the object bytes and its name info (with sha256).

    ``prev_last_lsn``: the ``last_lsn`` of the repository's previous segment (None: the first).
    """
    if not segment.transactions:
        raise ValueError("a segment holds at least one transaction")
    txs = segment.transactions
    header = {
        "segment": SEGMENT_VERSION,
        "first_lsn": txs[0].commit_lsn,
        "last_lsn": txs[-1].commit_lsn,
        "first_commit_us": txs[0].commit_us,
        "last_commit_us": txs[-1].commit_us,
        "transactions": len(txs),
        "last_end_lsn": txs[-1].end_lsn,
        "prev_last_lsn": prev_last_lsn,
    }
    records: list[Any] = [header]
    records += [{"relation": relid, **rel} for relid, rel in sorted(segment.relations.items())]
    records += [t.to_record() for t in txs]
    if segment.sequences is not None:
        records.append(segment.sequences)
    data = encode_json_lines(records)
    return data, segment.info(hashlib.sha256(data).hexdigest())


def _check_header(header: Any, name: str) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("segment") != SEGMENT_VERSION:
        version = header.get("segment") if isinstance(header, dict) else None
        raise DumpIntegrityError(f"{name} has segment format {version!r}; expected {SEGMENT_VERSION}")
    return header


def segment_header(data: bytes, info: SegmentInfo, name: str) -> dict[str, Any]:
    """Check the checksum and read only the header line (a restore's preflight of each segment)."""
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise DumpIntegrityError(f"{name} is corrupt (sha256 mismatch)")
    with open_zstd(io.BytesIO(data), name) as reader:
        line = reader.readline()
    try:
        return _check_header(json.loads(line), name)
    except (ValueError, UnicodeDecodeError) as e:
        raise DumpIntegrityError(f"{name} cannot be read ({' '.join(str(e).split())})") from None


def decode_segment(data: bytes, info: SegmentInfo | None = None, name: str = "segment") -> Segment:
    """Check the checksum (when the name gave one), decompress and parse."""
    records = decode_json_lines(data, info, name)
    header = _check_header(records[0], name)
    seg = Segment()
    for rec in records[1:]:
        if "relation" in rec:
            seg.relations[rec.pop("relation")] = rec
        elif "sequences" in rec:
            seg.sequences = rec
        else:
            seg.transactions.append(Transaction(rec["xid"], rec["lsn"], rec["end_lsn"], rec["ts"], rec["changes"]))
    if len(seg.transactions) != header["transactions"]:
        raise DumpIntegrityError(
            f"{name} is truncated ({len(seg.transactions)} of {header['transactions']} transactions)"
        )
    return seg


@dataclass
class RepositoryInfo:
    """repository.json: which database this repository archives, and how."""

    source: dict[str, Any]  # system_identifier, database, dialect, server_version, endpoint (display only)
    slot: str
    publication: str
    created_at: str
    ddl_capture: str  # "event-trigger", "event-trigger+truncate-trigger" (YugabyteDB) or "none"
    format: str = REPOSITORY_FORMAT
    format_version: int = REPOSITORY_VERSION

    def to_json(self) -> bytes:
        return seal_json(self.__dict__)

    @classmethod
    def from_json(cls, data: bytes, where: str) -> RepositoryInfo:
        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise DumpIntegrityError(f"{where} is not valid JSON ({' '.join(str(e).split())})") from None
        if not isinstance(d, dict) or d.get("format") != REPOSITORY_FORMAT:
            raise DumpIntegrityError(f"{where} is not a ybrewind repository")
        if d.get("format_version") != REPOSITORY_VERSION:
            raise DumpIntegrityError(
                f"{where} has format version {d.get('format_version')!r}; this ybrewind reads {REPOSITORY_VERSION}"
            )
        return _construct(cls, unseal_json(data, where, required=True), where)


@dataclass
class BaseBackupInfo:
    """base/<name>/base.json, written after every file of the base backup is stored."""

    name: str
    lsn: int  # consistent point: transactions committed at or after it are in the change log
    time_us: int  # snapshot time
    files: list[str]
    rows: int
    bytes: int
    slot: str  # the slot whose LSN space ``lsn`` belongs to (YugabyteDB LSNs are per slot)

    def to_json(self) -> bytes:
        return seal_json(self.__dict__)

    @classmethod
    def from_json(cls, data: bytes, where: str) -> BaseBackupInfo:
        return _construct(cls, unseal_json(data, where, required=True), where)


def _construct(cls: Any, fields: dict[str, Any], where: str) -> Any:
    try:
        return cls(**fields)
    except TypeError as e:
        raise DumpIntegrityError(f"{where} is malformed ({e})") from None


def base_name(lsn: int, time_us: int) -> str:
    return f"{lsn:016X}-{time_us}"
