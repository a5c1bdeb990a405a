"""YCQL / Cassandra change capture by scanning: a base scan, then one incremental scan per interval.

YCQL has no change data capture, so the archiver scans. Every scan reads each table in the same
``partition_hash`` / token ranges as ``ybrewind dump`` (in parallel), every column with its write
time and TTL, and compares what it read with the previous scan:

* a cell whose write time changed (or, for counters and cells whose write time the server cannot
  read, whose value changed) is archived with its value, write time and expiry (``W`` / ``V``);
* a row that appeared is archived as ``R`` (its row marker; again when a row is still returned
  after losing its last cell, which only a row marker does), a row that disappeared as ``D``, a
  cell that became null (deleted, set to null, expired) as ``X``; these carry no time of their
  own: they are stamped with the scan that found them.

State between scans is compact: per range, a digest of (key, per-cell write time or value hash)
and that map itself. A range whose digest did not change costs one comparison and writes nothing.

Scan 0 (the base) finds every cell "new": it is archived like any other scan, with the keyspace
model in its header. Each scan is one segment named by the shared repository format: first = last
"LSN" = the scan's sequence number, first / last commit time = the scan's start / end (µs, the
archiver's clock), count = records. Segment content is documented in docs/repository-format.md.

Crash safety: the state of the ranges scan N changed is stored (one object per range, tagged N)
before segment N, and segment N is the commit point. A restart takes, per range, the newest state
whose scan has a segment (deleting newer ones) and rescans from there: a scan interrupted at any
point (even SIGKILL) is redone whole, so no change is lost and none is archived twice.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cassandra.query import BoundStatement

from ybrewind.archive import format as fmt
from ybrewind.archive.repo import Repository
from ybrewind.archive.storage import ObjectNotFound
from ybrewind.endpoints import YcqlEndpoint
from ybrewind.errors import ConnectError, DumpIntegrityError, UsageError, YbrewindError
from ybrewind.files import compress, decompress
from ybrewind.progress import Progress
from ybrewind.ycql import schema as sch
from ybrewind.ycql.dump import Dumper, DumpOptions
from ybrewind.ycql.session import CqlConnection, connect, translate

SCAN_FORMAT = "ycql-scan"
SCAN_VERSION = 1
STATE_PREFIX = "state/ycql/"
Key = tuple[bytes | None, ...]


def wall_us() -> int:
    return time.time_ns() // 1000


def b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def unb64(value: str | None) -> bytes | None:
    return None if value is None else base64.b64decode(value)


def key_text(key: Key) -> str:
    return json.dumps([b64(v) for v in key], separators=(",", ":"))


def _value_token(raw: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") >> 1


def expiry_us(wt: int | None, ttl: int, read_us: int) -> int:
    """When a cell read with ``ttl`` seconds left at ``read_us`` expires.

    ``ttl()`` is rounded up to whole seconds; when the write time is the server's clock at the
    write (no client ``USING TIMESTAMP``), the original TTL is a whole number of seconds and the
    expiry is exactly ``wt + ttl0``. Otherwise ``read_us + ttl`` (within a second).
    """
    rough = read_us + ttl * 1_000_000
    if wt is not None and wt <= read_us:
        ttl0 = ttl + (read_us - wt) // 1_000_000
        exact = wt + ttl0 * 1_000_000
        if abs(exact - rough) <= 1_000_000:
            return exact
    return rough


def encode_scan(header: dict[str, Any], records: list[list[Any]]) -> bytes:
    return fmt.encode_json_lines([header, *records])


def decode_scan(data: bytes, info: fmt.SegmentInfo | None, name: str) -> tuple[dict[str, Any], list[list[Any]]]:
    records = fmt.decode_json_lines(data, info, name)
    header = records[0]
    if not isinstance(header, dict) or header.get("format") != SCAN_FORMAT:
        raise DumpIntegrityError(f"{name} is not a YCQL scan segment")
    if header.get("version") != SCAN_VERSION:
        raise DumpIntegrityError(f"{name} has YCQL scan format {header.get('version')!r}; expected {SCAN_VERSION}")
    body = records[1:]
    if len(body) != header.get("records"):
        raise DumpIntegrityError(f"{name} is truncated ({len(body)} of {header.get('records')} records)")
    return header, body


def read_scan(repo: Repository, info: fmt.SegmentInfo) -> tuple[dict[str, Any], list[list[Any]]]:
    try:
        data = repo.storage.get(info.key)
    except ObjectNotFound:
        raise DumpIntegrityError(f"segment {info.key} is missing from {repo.url}") from None
    return decode_scan(data, info, f"{repo.url}/{info.key}")


def repository_api(repo: Repository) -> str | None:
    """ "ycql" or "ysql" for an existing repository, None when there is none yet."""
    info = repo.info()
    if info is None:
        return None
    return str(info.source.get("api", "ysql"))


@dataclass
class CaptureOptions:
    interval: float = 300.0  # seconds between scan starts
    jobs: int = 4
    ranges: int = 64  # per table, fixed for the repository's life (state is per range)
    page_size: int = 5000
    max_scans: int | None = None  # stop after this many scans in this run (tests, cron-style use)
    clock: Callable[[], int] = wall_us  # µs; must be the clock write times use (tests: the simulator's)

    def validate(self) -> None:
        if self.interval <= 0:
            raise UsageError("--scan-interval must be positive")
        if self.jobs < 1 or self.ranges < 1 or self.page_size < 1:
            raise UsageError("-j/--jobs, ranges and page size must be at least 1")
        if self.max_scans is not None and self.max_scans < 1:
            raise UsageError("--max-scans must be at least 1")


@dataclass
class ScanStats:
    seq: int
    started_us: int
    finished_us: int
    seconds: float
    rows: int
    ranges: int
    ranges_changed: int
    records: int
    bytes: int
    rows_per_second: float


@dataclass
class CaptureResult:
    repository: str
    keyspace: str
    scans: list[ScanStats] = field(default_factory=list)
    last_seq: int | None = None
    warnings: list[str] = field(default_factory=list)


class _Stopped(Exception):
    """SIGINT/SIGTERM during a scan: the scan is dropped whole."""


@dataclass
class _RangeScan:
    digest: str
    rows: dict[Key, dict[str, int]]  # key -> column -> write time (or value token)
    records: list[list[Any]]
    read_us: int


class Capture:
    """``archive start ycql://host/KEYSPACE REPO``: base scan, then a scan every interval."""

    def __init__(
        self, source: YcqlEndpoint, repo: Repository, options: CaptureOptions, progress: Progress | None = None
    ) -> None:
        options.validate()
        if not source.keyspace:
            raise UsageError("the source needs a keyspace: ycql://host[:port]/KEYSPACE")
        self.source = source
        self.repo = repo
        self.opt = options
        self.progress = progress or Progress()
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.state: dict[str, list[list[Any]]] = {}  # table -> per range [digest, {key_text: {col: token}}]
        self.state_seq: int | None = None
        self.model_json: dict[str, Any] | None = None
        self.lock: Any = None
        self.stop = threading.Event()

    # -- entry point -------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> CaptureResult:
        stop = self.stop = stop or threading.Event()
        keyspace = self.source.keyspace or ""
        result = CaptureResult(self.repo.url, keyspace)
        with self.repo.lock(self.owner) as lock, connect(self.source) as conn:
            self.lock = lock
            self._open(conn, keyspace)
            self.progress.log(
                f"archiving {self.source.display()} into {self.repo.url} by scans every {self.opt.interval:g}s "
                "(Ctrl-C to stop)"
            )
            stats = None
            while not stop.is_set():
                started = time.monotonic()
                try:
                    stats = self.scan_once(conn, keyspace)
                except _Stopped:
                    break
                result.scans.append(stats)
                result.last_seq = stats.seq
                self._write_status(stats, running=True)
                if self.opt.max_scans is not None and len(result.scans) >= self.opt.max_scans:
                    break
                while not stop.is_set():
                    left = self.opt.interval - (time.monotonic() - started)
                    if left <= 0:
                        break
                    lock.refresh()  # an S3 lock needs heartbeats while idle too (rate-limited)
                    stop.wait(min(left, 5.0))
            if stats is not None:
                self._write_status(stats, running=False)
        return result

    def _open(self, conn: CqlConnection, keyspace: str) -> None:
        info = self.repo.info()
        if info is not None:
            api = info.source.get("api", "ysql")
            if api != "ycql":
                raise UsageError(f"{self.repo.url} archives a {str(api).upper()} source, not a ycql:// keyspace")
            if info.source.get("keyspace") != keyspace:
                raise UsageError(
                    f"{self.repo.url} archives keyspace {info.source.get('keyspace')}, not {keyspace}; "
                    "use another repository"
                )
        if conn.keyspace(keyspace) is None:
            raise ConnectError(f"keyspace {keyspace} does not exist on {self.source.display()}")
        if info is None:
            self.repo.write_info(
                fmt.RepositoryInfo(
                    source={
                        "api": "ycql",
                        "keyspace": keyspace,
                        "dialect": conn.server.flavor,
                        "server_version": conn.server.release_version,
                        "endpoint": self.source.display(),
                        "ranges": self.opt.ranges,
                    },
                    slot="",
                    publication="",
                    created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    ddl_capture="scan",
                )
            )
            return
        self.opt.ranges = int(info.source.get("ranges", self.opt.ranges))
        self._load_state()

    # -- state --------------------------------------------------------------------------------------
    # One object per (table, range) and version: only the ranges a scan changed are rewritten.
    #   state/ycql/model-<SEQ16>.json.zst                       the keyspace model, when it changed
    #   state/ycql/range-<table hash>-<range>-<SEQ16>.json.zst   {"table", "range", "digest", "rows"}
    # A version counts once segment SEQ exists; newer ones are leftovers of a scan that did not commit.

    @staticmethod
    def _parse_state_key(key: str) -> tuple[str, int] | None:
        """(group, seq) of a state object: group is "model" or "<table hash>-<range>"."""
        name = key.rsplit("/", 1)[-1]
        if not name.endswith(".json.zst"):
            return None
        stem = name[: -len(".json.zst")]
        kind, _, rest = stem.partition("-")
        group, _, seq = rest.rpartition("-")
        try:
            number = int(seq, 16)
        except ValueError:
            return None
        if kind == "model":
            return "model", int(rest, 16)
        if kind == "range" and group:
            return group, number
        return None

    @staticmethod
    def _range_group(table: str, index: int) -> str:
        return f"{hashlib.blake2b(table.encode(), digest_size=8).hexdigest()}-{index:05d}"

    def _read_state_object(self, key: str) -> Any:
        try:
            return json.loads(decompress(self.repo.storage.get(key), f"{self.repo.url}/{key}"))
        except ValueError as e:
            raise DumpIntegrityError(f"{self.repo.url}/{key} cannot be read ({e})") from None

    def _state_versions(self, last: int) -> dict[str, tuple[int, str]]:
        """Newest committed version per group; deletes versions of scans that never committed."""
        best: dict[str, tuple[int, str]] = {}
        for key in self.repo.storage.list(STATE_PREFIX):
            parsed = self._parse_state_key(key)
            if parsed is None:
                continue
            group, seq = parsed
            if seq > last:
                self.repo.storage.delete(key)
            elif group not in best or seq > best[group][0]:
                best[group] = (seq, key)
        return best

    def _load_state(self) -> None:
        segments = self.repo.segments()
        if not segments:
            return
        last = segments[-1].last_lsn
        best = self._state_versions(last)
        if "model" not in best:
            raise DumpIntegrityError(f"{self.repo.url} has scan segments but no scan state; start a new repository")
        self.model_json = self._read_state_object(best.pop("model")[1])
        tables = {t["name"] for t in (self.model_json or {}).get("tables", [])}
        state: dict[str, list[list[Any]]] = {}
        for _, key in best.values():
            obj = self._read_state_object(key)
            if obj["table"] not in tables:
                continue  # a dropped table whose old state was not pruned yet
            ranges = state.setdefault(obj["table"], [])
            while len(ranges) <= obj["range"]:
                ranges.append([None, {}])
            ranges[obj["range"]] = [obj["digest"], obj["rows"]]
        self.state = state
        self.state_seq = last

    def _save_state(self, seq: int, changed: list[tuple[str, int]], schema_changed: bool) -> None:
        put = self.repo.storage.put
        for table, index in changed:
            digest, rows = self.state[table][index]
            raw = json.dumps({"table": table, "range": index, "digest": digest, "rows": rows}, separators=(",", ":"))
            put(f"{STATE_PREFIX}range-{self._range_group(table, index)}-{seq:016X}.json.zst", compress(raw.encode()))
        if schema_changed:
            put(f"{STATE_PREFIX}model-{seq:016X}.json.zst", compress(json.dumps(self.model_json).encode()))

    def _prune_states(self, seq: int) -> None:
        """After segment ``seq`` is stored: drop superseded versions and ranges of dropped tables."""
        live = {self._range_group(t, i) for t, ranges in self.state.items() for i in range(len(ranges))}
        best = self._state_versions(seq)
        for key in self.repo.storage.list(STATE_PREFIX):
            parsed = self._parse_state_key(key)
            if parsed is None:
                continue
            group, _ = parsed
            if best.get(group, (None, None))[1] != key or (group != "model" and group not in live):
                self.repo.storage.delete(key)

    # -- one scan ---------------------------------------------------------------------------------
    def scan_once(self, conn: CqlConnection, keyspace: str) -> ScanStats:
        seq = 0 if self.state_seq is None else self.state_seq + 1
        t0 = time.monotonic()
        started_us = self.opt.clock()
        meta = conn.refresh_keyspace(keyspace)
        if meta is None:
            raise ConnectError(f"keyspace {keyspace} does not exist on {self.source.display()}")
        model = sch.from_metadata(meta)
        sch.check_types(model)
        model_json = model.to_json()
        schema_changed = model_json != self.model_json
        dumper = Dumper(
            self.source, DumpOptions(with_writetime=True, jobs=self.opt.jobs, ranges=self.opt.ranges, page_size=1)
        )
        dumper.progress = self.progress
        plans = [dumper._plan(conn, model, n, t) for n, t in enumerate(model.tables, start=1)]
        for p in plans:
            p.prepared = conn.prepare(p.query, f"preparing the scan of {keyspace}.{p.table.name}")
            p.prepared.fetch_size = self.opt.page_size
        jobs = [(p, i) for p in plans for i in range(len(p.ranges))]
        bar = self.progress.task(f"scan {seq}", len(jobs) or None, unit="ranges")

        def one(job: tuple[Any, int]) -> _RangeScan | None:
            if self.stop.is_set():
                return None  # stopping: this scan is abandoned (nothing stored) and redone on restart
            p, i = job
            prev = self.state.get(p.table.name)
            scan = self._scan_range(conn, p, i, prev[i] if prev and i < len(prev) else None)
            self.progress.advance(bar, 1)
            return scan

        with ThreadPoolExecutor(max_workers=max(1, min(self.opt.jobs, len(jobs) or 1))) as pool:
            futures = [pool.submit(one, j) for j in jobs]
            try:
                for f in as_completed(futures):
                    f.result()
                    if self.lock is not None:
                        self.lock.refresh()  # long scans keep an S3 lock fresh (rate-limited)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            results = [f.result() for f in futures]
        if self.stop.is_set():
            raise _Stopped
        scans = [r for r in results if r is not None]
        finished_us = self.opt.clock()
        records: list[list[Any]] = []
        new_state: dict[str, list[list[Any]]] = {p.table.name: [] for p in plans}
        changed_ranges: list[tuple[str, int]] = []
        rows = 0
        for (p, i), s in zip(jobs, scans, strict=True):
            records += s.records
            rows += len(s.rows)
            prev = self.state.get(p.table.name)
            old = prev[i] if prev and i < len(prev) else None
            if old is not None and old[0] == s.digest:
                new_state[p.table.name].append(old)
            else:
                changed_ranges.append((p.table.name, i))
                new_state[p.table.name].append([s.digest, {key_text(k): c for k, c in s.rows.items()}])
        changed = len(changed_ranges)
        for gone in set(self.state) - set(new_state):  # a dropped table: all its rows are gone
            for _, rows_map in self.state[gone]:
                records += [["D", gone, json.loads(k)] for k in rows_map]
        header: dict[str, Any] = {
            "format": SCAN_FORMAT,
            "version": SCAN_VERSION,
            "seq": seq,
            "started_us": started_us,
            "finished_us": finished_us,
            "records": len(records),
        }
        if schema_changed:
            header["model"] = model_json
        data = encode_scan(header, records)
        info = fmt.SegmentInfo(seq, seq, started_us, finished_us, len(records), hashlib.sha256(data).hexdigest())
        self.model_json = model_json
        state_dirty = changed > 0 or schema_changed or set(self.state) != set(new_state)
        self.state = new_state
        if state_dirty:
            self._save_state(seq, changed_ranges, schema_changed)  # before the segment, which commits the scan
        self.repo.storage.put(info.key, data)
        if state_dirty:
            self._prune_states(seq)
        self.state_seq = seq
        seconds = time.monotonic() - t0
        self.progress.done(bar)
        return ScanStats(
            seq,
            started_us,
            finished_us,
            round(seconds, 3),
            rows,
            len(jobs),
            changed,
            len(records),
            len(data),
            round(rows / seconds, 1) if seconds > 0 else 0.0,
        )

    def _scan_range(self, conn: CqlConnection, p: Any, index: int, prev: list[Any] | None) -> _RangeScan:
        lo, hi = p.ranges[index]
        table: sch.TableDef = p.table
        name = table.name
        cols = table.columns
        names = [c.name for c in cols]
        kinds = [c.kind for c in cols]
        pk = [i for i, k in enumerate(kinds) if k == "partition_key"]
        ck = [i for i, k in enumerate(kinds) if k == "clustering"]
        static = [i for i, k in enumerate(kinds) if k == "static"]
        regular = [i for i, k in enumerate(kinds) if k == "regular"]
        timed = {ci: len(cols) + 2 * n for n, ci in enumerate(p.timed)}
        bound = BoundStatement(p.prepared).bind([lo, hi])
        try:
            page = list(conn.session.execute(bound))  # the driver pages (fetch_size) as it iterates
        except Exception as e:
            raise translate(e, f"scanning {name} ({lo}..{hi})") from None
        read_us = self.opt.clock()

        def tokens_of(row: Any, columns: list[int]) -> dict[str, int]:
            tokens: dict[str, int] = {}
            for ci in columns:
                raw = row[ci]
                if raw is None:
                    continue
                pos = timed.get(ci)
                wt = row[pos] if pos is not None else None
                tokens[names[ci]] = int.from_bytes(wt, "big", signed=True) if wt else _value_token(raw)
            return tokens

        # Pass 1 (every range, every scan): per row, the write time (or value hash) of each cell,
        # and the range digest. Rows arrive in token / clustering order, so no sort is needed.
        rows: dict[Key, dict[str, int]] = {}
        source: dict[Key, tuple[Any, list[int]]] = {}
        h = hashlib.blake2b(digest_size=16)
        last_pk: Key | None = None
        for row in page:
            pkey: Key = tuple(row[i] for i in pk)
            if static and pkey != last_pk:
                t = tokens_of(row, static)
                if t:
                    rows[pkey] = t
                    source[pkey] = (row, static)
                    h.update(repr((pkey, t)).encode())
            last_pk = pkey
            if ck and all(row[i] is None for i in ck):
                continue
            key: Key = pkey + tuple(row[i] for i in ck)
            t = tokens_of(row, regular)
            rows[key] = t
            source[key] = (row, regular)
            h.update(repr((key, t)).encode())
        digest = h.hexdigest()
        records: list[list[Any]] = []
        if prev is not None and prev[0] == digest:
            return _RangeScan(digest, rows, records, read_us)

        # Pass 2 (changed ranges only): what differs from the previous scan.
        def cell(key: Key, cname: str) -> tuple[str | None, int | None, int | None]:
            row, _ = source[key]
            ci = names.index(cname)
            pos = timed.get(ci)
            if pos is None or not row[pos]:
                return b64(row[ci]), None, None
            wt = int.from_bytes(row[pos], "big", signed=True)
            ttl = int.from_bytes(row[pos + 1], "big", signed=True) if row[pos + 1] else 0
            return b64(row[ci]), wt, expiry_us(wt, ttl, read_us) if ttl else None

        old: dict[str, dict[str, int]] = prev[1] if prev else {}
        seen: set[str] = set()
        nkey = len(pk) + len(ck)
        for key, cells in rows.items():
            kt = key_text(key)
            seen.add(kt)
            before = old.get(kt)
            if before == cells:
                continue
            jkey = [b64(v) for v in key]
            if before is None and len(key) == nkey:
                expires = [cell(key, c)[2] for c in cells]
                marker_exp = max(expires) if expires and all(e is not None for e in expires) else None
                records.append(["R", name, jkey, marker_exp])
            before = before or {}
            for cname, token in cells.items():
                if before.get(cname) != token:
                    raw, wt, exp = cell(key, cname)
                    if wt is None:
                        records.append(["V", name, jkey, cname, raw])
                    else:
                        records.append(["W", name, jkey, cname, raw, wt, exp])
            records += [["X", name, jkey, cname] for cname in before if cname not in cells]
            if before and not cells and len(key) == nkey:
                # Still returned without a live cell: a row marker keeps it (written by an INSERT the
                # cells cannot show, so what ``R`` assumed when the row appeared no longer holds).
                records.append(["R", name, jkey, None])
        for kt, before in old.items():
            if kt in seen:
                continue
            jkey = json.loads(kt)
            if len(jkey) < nkey:
                records += [["X", name, jkey, cname] for cname in before]
            else:
                records.append(["D", name, jkey])
        return _RangeScan(digest, rows, records, read_us)

    # -- status ------------------------------------------------------------------------------------
    def _write_status(self, stats: ScanStats, running: bool) -> None:
        with contextlib.suppress(YbrewindError):
            self.repo.write_status(
                {
                    "api": "ycql",
                    "running": running,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "last_scan": stats.__dict__,
                    "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "updated_us": wall_us(),
                }
            )


def capture(
    source: YcqlEndpoint,
    repo: Repository,
    options: CaptureOptions | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> CaptureResult:
    return Capture(source, repo, options or CaptureOptions(), progress).run(stop)


_INTERVAL_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``250ms`` or plain seconds, as seconds."""
    raw = text.strip().lower()
    unit = next((u for u in ("ms", "s", "m", "h") if raw.endswith(u)), "")
    try:
        value = float(raw[: len(raw) - len(unit)] if unit else raw)
    except ValueError:
        raise UsageError(f"invalid --scan-interval {text!r} (e.g. 30s, 5m, 1h)") from None
    seconds = value * _INTERVAL_UNITS.get(unit, 1.0)
    if not seconds > 0:
        raise UsageError(f"--scan-interval must be positive (got {text!r})")
    return seconds


def describe_result(result: CaptureResult) -> str:
    if not result.scans:
        return f"archiver stopped before its first scan of {result.keyspace}"
    last = result.scans[-1]
    return (
        f"archiver stopped: {len(result.scans)} scans of {result.keyspace} this run (last: scan {last.seq}, "
        f"{last.rows} rows at {last.rows_per_second:.0f} rows/s, {last.records} changes, {last.bytes} bytes)"
    )


def scan_status(repo: Repository) -> dict[str, Any]:
    """``archive status`` for a YCQL repository."""
    from ybrewind.archive.repo import LOCK_NAME
    from ybrewind.archive.storage import lock_status
    from ybrewind.pitr import to_iso

    info = repo.require_info()
    segments = repo.segments()
    st = repo.status() or {}
    holder = lock_status(repo.storage, LOCK_NAME)
    last = segments[-1] if segments else None
    out: dict[str, Any] = {
        "repository": repo.url,
        "api": "ycql",
        "keyspace": info.source.get("keyspace"),
        "running": bool(holder) and bool(st.get("running")),
        "scans": len(segments),
        "first_restorable": to_iso(segments[0].last_commit_us) if segments else None,
        "last_scan": to_iso(last.last_commit_us) if last else None,
        "last_scan_stats": st.get("last_scan"),
    }
    out["text"] = "\n".join(
        [
            f"repository    {repo.url} (ycql keyspace {out['keyspace']})",
            f"archiver      {'running' if out['running'] else 'not running'}",
            f"scans         {out['scans']}, restorable {out['first_restorable'] or '-'} .. {out['last_scan'] or '-'}",
        ]
    )
    return out
