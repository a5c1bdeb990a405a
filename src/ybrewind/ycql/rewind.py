"""Restore a YCQL scan repository into a new keyspace as of a time (and ``clone`` for YCQL).

The content at time T is rebuilt from the scan segments (see ``capture``), in scan order:

* ``W`` (a cell with its write time): applied when its write time is <= T and not older than the
  cell already held (last write wins, as on the source);
* ``V`` (counters, cells without readable write time), ``R`` (row appeared), ``X`` (cell gone),
  ``D`` (row gone): applied when the scan that found them ended at or before T;
* cells whose expiry is at or before T are dropped; the others keep the TTL they had left at T.

Segments are read up to and including the first scan that started after T (that scan is the last
one that can hold a write made at or before T). The rebuilt content is written as a ybrewind dump
directory (``INSERT ... USING TIMESTAMP wt AND TTL left``, counters as increments) and loaded with
the YCQL loader, so schema, index and integrity handling are the loader's.

Precision: a write is placed exactly by its write time; a value overwritten again before the next
scan was never seen, and a delete is only known to lie within its scan interval.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ybrewind import manifest as mf
from ybrewind.archive import format as fmt
from ybrewind.archive.repo import Repository
from ybrewind.endpoints import YcqlEndpoint
from ybrewind.errors import DatabaseError, TargetNotEmptyError, UsageError
from ybrewind.files import atomic_write
from ybrewind.pitr import to_iso
from ybrewind.progress import Progress
from ybrewind.ycql import schema as sch
from ybrewind.ycql.capture import read_scan, unb64
from ybrewind.ycql.dump import TRAILER, DumpOptions, TableEncoder
from ybrewind.ycql.literals import parse_type, quote_ident
from ybrewind.ycql.load import LoadOptions, load
from ybrewind.ysql.dump import safe_filename

PRECISION = (
    "writes are placed exactly by their write time; a value overwritten again before the next scan, "
    "and deletes, are only known to the scan interval"
)


@dataclass
class RestoreOptions:
    target_us: int | None = None  # None: the last scan
    jobs: int = 2
    clean: bool = False


@dataclass
class RestoreResult:
    repository: str
    target: str
    keyspace: str
    restored_to: str
    scans_read: int
    last_complete_scan: str | None
    tables: int
    rows: int
    cells: int
    seconds: float
    precision: str = PRECISION
    warnings: list[str] = field(default_factory=list)


def require_ycql(repo: Repository) -> fmt.RepositoryInfo:
    info = repo.require_info()
    if info.source.get("api", "ysql") != "ycql":
        raise UsageError(f"{repo.url} archives a YSQL/PostgreSQL source; restore it into a postgresql:// target")
    return info


def list_scans(repo: Repository) -> dict[str, Any]:
    """What ``restore --list`` shows: the scans (times) and the restorable window."""
    info = require_ycql(repo)
    segments = repo.segments()
    scans = [
        {"seq": s.first_lsn, "started": to_iso(s.first_commit_us), "finished": to_iso(s.last_commit_us),
         "records": s.transactions}
        for s in segments
    ]  # fmt: skip
    window = None
    if segments:
        window = {"from": to_iso(segments[0].last_commit_us), "to": to_iso(segments[-1].last_commit_us)}
    return {"keyspace": info.source.get("keyspace"), "window": window, "scans": scans, "precision": PRECISION}


def describe_list(summary: dict[str, Any]) -> str:
    if not summary["scans"]:
        return "nothing restorable yet (no scan stored)"
    lines = [f"restorable: {summary['window']['from']} .. {summary['window']['to']} ({PRECISION})"]
    shown = summary["scans"][-50:]
    if len(summary["scans"]) > len(shown):
        lines.append(f"... {len(summary['scans']) - len(shown)} earlier scans (--json lists them all)")
    lines += [f"scan {s['seq']}: {s['started']} .. {s['finished']} ({s['records']} records)" for s in shown]
    return "\n".join(lines)


class _Cell:
    __slots__ = ("expires", "raw", "wt")

    def __init__(self, raw: str, wt: int | None, expires: int | None) -> None:
        self.raw, self.wt, self.expires = raw, wt, expires


class _Row:
    __slots__ = ("cells", "marker")

    def __init__(self) -> None:
        self.cells: dict[str, _Cell] = {}
        self.marker: tuple[bool, int | None] | None = None  # (present, expires)


def rebuild(repo: Repository, target_us: int | None) -> tuple[dict[str, Any], dict[str, dict[tuple, _Row]], dict]:
    """(model json, table -> key -> row, facts) as of ``target_us`` (None: the last scan)."""
    segments = repo.segments()
    if not segments:
        raise UsageError(f"{repo.url} holds no scan yet; nothing to restore")
    repo.check_scan_chain(segments)  # a missing scan would lose its writes silently
    base, last = segments[0], segments[-1]
    t = last.last_commit_us if target_us is None else target_us
    write_cutoff = 2**63 - 1 if target_us is None else t  # --latest: every archived write, whatever its clock
    if t < base.last_commit_us:
        raise UsageError(
            f"{to_iso(t)} is before the end of the base scan ({to_iso(base.last_commit_us)}); "
            f"restorable: {to_iso(base.last_commit_us)} .. {to_iso(last.last_commit_us)}"
        )
    if t > last.last_commit_us:
        raise UsageError(
            f"{to_iso(t)} is after the last scan ({to_iso(last.last_commit_us)}); "
            f"restorable: {to_iso(base.last_commit_us)} .. {to_iso(last.last_commit_us)}"
        )
    model: dict[str, Any] | None = None
    tables: dict[str, dict[tuple, _Row]] = {}
    read = 0
    last_complete: int | None = None
    for info in segments:
        header, records = read_scan(repo, info)
        read += 1
        complete = header["finished_us"] <= t
        if complete:
            last_complete = header["finished_us"]
            if "model" in header:
                model = header["model"]
        elif model is None and "model" in header:
            model = header["model"]
        for r in records:
            kind, table, jkey = r[0], r[1], tuple(r[2])
            rows = tables.setdefault(table, {})
            if kind == "W":
                _, _, _, col, raw, wt, expires = r
                if wt > write_cutoff:
                    continue
                row = rows.get(jkey)
                if row is None:
                    row = rows[jkey] = _Row()
                old = row.cells.get(col)
                if old is None or old.wt is None or wt >= old.wt:
                    row.cells[col] = _Cell(raw, wt, expires)
            elif not complete:
                continue
            elif kind == "V":
                rows.setdefault(jkey, _Row()).cells[r[3]] = _Cell(r[4], None, None)
            elif kind == "R":
                rows.setdefault(jkey, _Row()).marker = (True, r[3])
            elif kind == "X":
                row = rows.get(jkey)
                if row is not None:
                    row.cells.pop(r[3], None)
            elif kind == "D":
                rows.pop(jkey, None)
        if header["started_us"] > t:
            break
    assert model is not None
    return model, tables, {"scans_read": read, "last_complete_us": last_complete, "target_us": t}


@dataclass
class _Layout:
    table: sch.TableDef
    names: list[str]
    keys: list[int]
    width: int
    tpos: dict[int, int]


def _raw_row(layout: _Layout, key: tuple, cells: dict[str, _Cell], static_cells: dict[str, _Cell], t: int) -> list[Any]:
    """One row as the dump's encoder reads it: raw values, then write time and TTL per timed column."""
    out: list[Any] = [None] * layout.width
    for i, v in zip(layout.keys, key, strict=False):
        out[i] = unb64(v)
    for ci, name in enumerate(layout.names):
        cell = cells.get(name) or static_cells.get(name)
        if cell is None or layout.table.columns[ci].kind not in ("static", "regular"):
            continue
        out[ci] = unb64(cell.raw)
        pos = layout.tpos.get(ci)
        if pos is not None and cell.wt is not None:
            out[pos] = cell.wt.to_bytes(8, "big", signed=True)
            if cell.expires is not None:
                left = max(1, -(-(cell.expires - t) // 1_000_000))
                out[pos + 1] = left.to_bytes(4, "big", signed=True)
    return out


def _write_dump(
    directory: Path, model: sch.KeyspaceDef, tables: dict[str, dict[tuple, _Row]], t: int, warn: Any, dialect: str
) -> tuple[int, int]:
    """The rebuilt content as a ybrewind YCQL dump directory; returns (rows, cells)."""
    (directory / "data").mkdir(parents=True)
    files: list[mf.FileEntry] = []
    text = sch.render(model, model.tables).text()
    with atomic_write(directory / "schema.cql") as w:
        w.write(text.encode())
    files.append(mf.FileEntry("schema.cql", "schema", w.sha256, w.bytes))
    per_table: dict[str, dict[str, Any]] = {}
    udts = model.udts()
    total_rows = total_cells = 0
    options = DumpOptions(with_writetime=True)
    for number, table in enumerate(model.tables, start=1):
        types = [parse_type(c.type, udts) for c in table.columns]
        names = [c.name for c in table.columns]
        timed = [] if table.is_counter else [i for i, c in enumerate(table.columns) if c.kind in ("static", "regular")]
        encoder = TableEncoder(model.name, table, types, timed, options, warn)
        pk = [i for i, c in enumerate(table.columns) if c.kind == "partition_key"]
        ck = [i for i, c in enumerate(table.columns) if c.kind == "clustering"]
        nkey = len(pk) + len(ck)
        content = tables.get(table.name, {})
        live: dict[tuple, dict[str, _Cell]] = {}
        statics: dict[tuple, dict[str, _Cell]] = {}
        for key, row in content.items():
            cells = {c: v for c, v in row.cells.items() if c in names and (v.expires is None or v.expires > t)}
            marker = row.marker is not None and (row.marker[1] is None or row.marker[1] > t)
            if len(key) < nkey:
                if cells:
                    statics[key] = cells
            elif cells or marker:
                live[key] = cells
        raw_rows: list[list[Any]] = []
        width = len(names) + 2 * len(timed)
        tpos = {ci: len(names) + 2 * n for n, ci in enumerate(timed)}
        layout = _Layout(table, names, pk + ck, width, tpos)

        partitions: dict[tuple, list[tuple]] = {}
        for key in live:
            partitions.setdefault(key[: len(pk)], []).append(key)
        for pkey in statics:
            partitions.setdefault(pkey, [])
        for pkey in sorted(partitions, key=lambda k: [x or "" for x in k]):
            keys = sorted(partitions[pkey], key=lambda k: [x or "" for x in k])
            st = statics.get(pkey, {})
            if not keys:
                raw_rows.append(_raw_row(layout, pkey + (None,) * len(ck), {}, st, t))
            for key in keys:
                raw_rows.append(_raw_row(layout, key, live[key], st, t))
                total_cells += len(live[key])
            total_cells += len(st)
        out: list[str] = []
        statements = encoder.encode(raw_rows, out)
        name = f"data/{safe_filename(number, model.name, table.name)}.cql"
        with atomic_write(directory / name) as w:
            w.write(f"-- ybrewind data: {quote_ident(model.name)}.{quote_ident(table.name)}\n".encode())
            w.write("".join(out).encode("utf-8", errors="surrogateescape"))
            w.write(TRAILER.format(rows=len(live), statements=statements).encode())
        files.append(mf.FileEntry(name, "data", w.sha256, w.bytes, table=[model.name, table.name], rows=len(live)))
        per_table[table.name] = {"rows": len(live), "statements": statements, "file": name}
        total_rows += len(live)
    manifest = mf.Manifest(
        api="ycql",
        source={"keyspace": model.name, "restored_to": to_iso(t)},
        dialect=dialect,
        snapshot={"consistent": False, "as_of_us": t, "tables": per_table},
        options={"format": "cql", "with_writetime": True, "jobs": 1},
        objects={
            "keyspace": model.to_json(),
            "tables": [tb.name for tb in model.tables],
            "types": [ty.name for ty in model.types],
            "indexes": [i.name for tb in model.tables for i in tb.indexes],
        },
        files=files,
    )
    manifest.write(directory)
    return total_rows, total_cells


def restore(
    repo: Repository, target: YcqlEndpoint, options: RestoreOptions, progress: Progress | None = None
) -> RestoreResult:
    started = time.monotonic()
    info = require_ycql(repo)
    if not target.keyspace:
        raise UsageError("the target needs a keyspace: ycql://host[:port]/NEW_KEYSPACE")
    progress = progress or Progress()
    model_json, tables, facts = rebuild(repo, options.target_us)
    model = sch.KeyspaceDef.from_json(model_json)
    warnings: list[str] = []

    def warn(message: str) -> None:
        if message not in warnings:
            warnings.append(message)
            progress.warn(message)

    t = facts["target_us"]
    with tempfile.TemporaryDirectory(prefix="ybrewind-ycql-restore-") as tmp:
        directory = Path(tmp) / "dump"
        rows, cells = _write_dump(directory, model, tables, t, warn, str(info.source.get("dialect") or "yugabyte"))
        try:
            load(directory, target, LoadOptions(jobs=options.jobs, clean=options.clean), progress)
        except TargetNotEmptyError as e:
            raise TargetNotEmptyError(f"{e.message.split(';')[0]}; restore into a new keyspace") from None
    last = facts["last_complete_us"]
    return RestoreResult(
        repository=repo.url,
        target=target.display(),
        keyspace=target.keyspace,
        restored_to=to_iso(t),
        scans_read=facts["scans_read"],
        last_complete_scan=to_iso(last) if last is not None else None,
        tables=len(model.tables),
        rows=rows,
        cells=cells,
        seconds=round(time.monotonic() - started, 3),
        warnings=warnings,
    )


def native_clone_command(yb_admin: str, masters: str, keyspace: str, new_keyspace: str, as_of_us: int) -> list[str]:
    """``yb-admin clone_namespace ycql.<ks> <new> <µs>`` (needs a snapshot schedule on the keyspace)."""
    if not masters.strip():
        raise UsageError("--native needs --master-addresses host:7100[,host:7100...]")
    for what, name in (("source keyspace", keyspace), ("new keyspace", new_keyspace)):
        if not name or not all(ch.isalnum() or ch == "_" for ch in name):
            raise UsageError(f"invalid {what} {name!r} for yb-admin (letters, digits and _ only)")
    if as_of_us <= 0:
        raise UsageError("--as-of must be a positive time")
    return [yb_admin, "--master_addresses", masters, "clone_namespace", f"ycql.{keyspace}", new_keyspace, str(as_of_us)]


def describe_command(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


# Terminal clone states: docs manage/backup-restore/instant-db-cloning.md shows "COMPLETE"; the
# master's IsCloneDone treats RESTORED as done (src/yb/master/clone/clone_state_manager.cc).
CLONE_DONE = ("COMPLETE", "RESTORED")
CLONE_FAILED = ("FAILED", "ABORTED")


def native_clone(
    yb_admin: str | None,
    masters: str,
    keyspace: str,
    new_keyspace: str,
    as_of_us: int,
    *,
    poll_seconds: float = 1.0,
    timeout_seconds: float = 3600.0,
) -> list[str]:
    """Run ``yb-admin clone_namespace`` and wait for the clone to finish; returns the command run.

    clone_namespace only starts the clone: it prints the master's CloneNamespaceResponsePB as JSON,
    ``source_namespace_id`` and ``seq_no`` (src/yb/tools/yb-admin_cli.cc, clone_namespace_action;
    clone_state_manager.cc, CloneStateManager::CloneNamespace), and ``list_clones
    <source_namespace_id> <seq_no>`` reports its ``aggregate_state`` (instant-db-cloning.md, "Check
    the clone status"). Tested against a scripted yb-admin only (no YugabyteDB here).
    """
    argv = native_clone_command(
        yb_admin or shutil.which("yb-admin") or "yb-admin", masters, keyspace, new_keyspace, as_of_us
    )
    started = _yb_admin_json(argv, "clone_namespace")
    namespace_id, seq_no = str(started.get("source_namespace_id", "")), str(started.get("seq_no", ""))
    if not namespace_id or not seq_no:
        raise DatabaseError(f"yb-admin clone_namespace did not say which clone it started: {started}")
    status = [argv[0], "--master_addresses", masters, "list_clones", namespace_id, seq_no]
    deadline = time.monotonic() + timeout_seconds
    while True:
        state = clone_state(_yb_admin_json(status, "list_clones"), seq_no)
        if state in CLONE_DONE:
            return argv
        if state in CLONE_FAILED:
            raise DatabaseError(f"cloning {keyspace} as {new_keyspace} failed on the cluster (state {state})")
        if time.monotonic() >= deadline:
            raise DatabaseError(f"cloning {keyspace} as {new_keyspace} not finished after {timeout_seconds:.0f} s "
                                f"(state {state}); check with: {describe_command(status)}")  # fmt: skip
        time.sleep(poll_seconds)


def clone_state(entries: Any, seq_no: str) -> str:
    """``aggregate_state`` of clone ``seq_no`` in list_clones output (a list of clone entries)."""
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("seq_no", entry.get("clone_request_seq_no", ""))) == seq_no:
            return str(entry.get("aggregate_state", "UNKNOWN"))
    return "NOT_LISTED"


def _yb_admin_json(argv: list[str], what: str) -> Any:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as e:
        raise UsageError(f"cannot run {argv[0]}: {e.strerror or e}") from None
    if done.returncode != 0:
        raise DatabaseError(f"yb-admin {what} failed: {' '.join((done.stderr or done.stdout).split())}")
    try:
        return json.loads(done.stdout or "null")
    except ValueError:
        raise DatabaseError(f"yb-admin {what} printed no JSON: {' '.join(done.stdout.split())[:200]}") from None
