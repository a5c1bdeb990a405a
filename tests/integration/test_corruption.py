"""Corruption sweep: bad bytes and missing files are found before anything reaches a target.

Each artifact is built once (a YSQL dump, plain and zstd; a compressed plain script; a YCQL dump
from the CQL simulator; an archive repository with a base backup and several segments, on a
local disk and on S3 through moto), held in memory, and then damaged at random from a seed:
bits flipped, the file truncated, the file dropped, byte ranges swapped inside a file, or the
contents of two files swapped. Every damaged copy goes through the command line in-process
(``verify``, ``load``, ``restore``); each must exit with the documented code 5 and one line naming
the damaged file, and the target must be exactly as before (no table, no schema, no keyspace).

``YBREWIND_CORRUPTION_SEED`` picks another seed (a failure prints the seed and the case);
``YBREWIND_CORRUPTION_SCALE`` multiplies the case counts (default 1: about 560 cases).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgServer
from tests.support.archive import (
    drop_slot,
    fast_options,
    last_commit_us,
    running_archiver,
    wait_for_commit,
    wait_until_started,
)
from tests.support.cli import assert_one_line_error, run_cli
from ybrewind.archive.format import parse_segment_key
from ybrewind.archive.repo import Repository
from ybrewind.endpoints import YcqlEndpoint
from ybrewind.files import compress
from ybrewind.ysql.compare import table_checksum
from ybrewind.ysql.dump import DumpOptions, dump

SEED = int(os.environ.get("YBREWIND_CORRUPTION_SEED", "20261202"))
SCALE = float(os.environ.get("YBREWIND_CORRUPTION_SCALE", "1"))
COUNTS = {
    "ysql-dump": 130,
    "ysql-dump-zstd": 130,
    "sql-zst-script": 40,
    "ycql-dump": 60,
    "repo-local": 170,
    "repo-s3": 30,
    "ycql-repo": 60,
}
INTEGRITY_EXIT = 5  # errors.DumpIntegrityError, README "Output, progress and errors"

SCHEMA = """
CREATE TABLE acct (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2), doc text);
CREATE TABLE tag (acct int REFERENCES acct, label text, PRIMARY KEY (acct, label));
CREATE SEQUENCE ticket_seq;
CREATE INDEX acct_owner ON acct (owner);
INSERT INTO acct SELECT g, 'o' || g, g * 1.5, repeat(md5(g::text), 20) FROM generate_series(1, 300) g;
INSERT INTO tag SELECT g, 'l' || (g % 7) FROM generate_series(1, 300) g;
"""

Files = dict[str, bytes]  # relative path -> content


def read_tree(root: Path) -> Files:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_tree(root: Path, files: Files) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


# --------------------------------------------------------------------------------------------
# Damage


@dataclass
class Case:
    n: int
    what: str  # e.g. "flip 2 bits in data/0001-public.acct.sql"
    files: Files
    damaged: list[str]  # the paths whose damage the message must name (any one of them)

    def __str__(self) -> str:
        return f"case {self.n} (seed {SEED}): {self.what}"


def _flip(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    out = bytearray(data)
    count = rng.randint(1, 3)
    for _ in range(count):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out), f"flip {count} bit(s)"


def _truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    keep = rng.choice([0, rng.randrange(len(data)), len(data) - 1, max(0, len(data) - rng.randint(1, 16))])
    return data[:keep], f"truncate to {keep} of {len(data)} bytes"


def _reorder(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    size = rng.randint(1, max(1, min(256, len(data) // 2)))
    a = rng.randrange(0, len(data) - 2 * size + 1)
    b = rng.randrange(a + size, len(data) - size + 1)
    out = data[:a] + data[b : b + size] + data[a + size : b] + data[a : a + size] + data[b + size :]
    return out, f"swap {size}-byte ranges at {a} and {b}"


def cases(
    kind: str,
    pristine: Files,
    *,
    droppable: Callable[[str], bool] = lambda rel: True,
    ops: tuple[str, ...] = ("flip", "truncate", "drop", "reorder", "swap"),
) -> Iterator[Case]:
    """``COUNTS[kind] * SCALE`` distinct damaged copies of ``pristine``, reproducible from SEED."""
    rng = random.Random(f"{SEED}-{kind}")
    names = sorted(pristine)
    seen: set[tuple[tuple[str, bytes | None], ...]] = set()
    n = 0
    while n < int(COUNTS[kind] * SCALE):
        op = rng.choice(ops)
        rel = rng.choice(names)
        files = dict(pristine)
        damaged = [rel]
        data = pristine[rel]
        if op == "drop":
            if not droppable(rel):
                continue
            del files[rel]
            what = "drop"
        elif op == "swap":
            other = rng.choice(names)
            if pristine[other] == data:
                continue
            files[rel], files[other] = pristine[other], data
            damaged.append(other)
            what = f"swap contents with {other}"
        elif not data or (op == "reorder" and len(data) < 2):
            continue
        else:
            files[rel], what = {"flip": _flip, "truncate": _truncate, "reorder": _reorder}[op](rng, data)
        key = tuple(sorted((k, files.get(k)) for k in set(files) | set(pristine) if files.get(k) != pristine.get(k)))
        if not key or key in seen:
            continue  # the damage changed nothing (or was drawn before)
        seen.add(key)
        n += 1
        yield Case(n, f"{kind}: {what} in {rel}", files, damaged)


def check_refused(code: int, err: str, case: Case, names: Callable[[str], list[str]]) -> None:
    line = err.strip().splitlines()[-1] if err.strip() else ""
    assert code == INTEGRITY_EXIT, f"{case}: exit {code}: {err}"
    assert_one_line_error(code, err)
    wanted = [n for rel in case.damaged for n in names(rel)]
    assert any(w in line for w in wanted), f"{case}: the message names none of {wanted}: {line}"


def sweep(all_cases: Iterator[Case], run: Callable[[Case], None]) -> int:
    """Run every case; fail with the undetected ones listed (seed, case, message), not just the first."""
    missed: list[str] = []
    count = 0
    for case in all_cases:
        count += 1
        try:
            run(case)
        except AssertionError as e:
            missed.append(str(e).splitlines()[0])
    assert not missed, f"{len(missed)} of {count} cases not refused as documented:\n" + "\n".join(missed[:25])
    return count


def untouched(conn: psycopg.Connection, case: Case) -> None:
    """The target holds nothing; if it does, say so and empty it (so one miss does not hide others)."""
    if user_objects(conn) == 0:
        return
    conn.execute("DROP SCHEMA IF EXISTS public, _ybrewind_restore CASCADE")
    conn.execute("CREATE SCHEMA public")
    raise AssertionError(f"{case}: the target was changed")


def user_objects(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
        "UNION ALL SELECT count(*) FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', "
        "'public') AND nspname NOT LIKE 'pg\\_%'"
    ).fetchall()
    return sum(int(r[0]) for r in row)


# --------------------------------------------------------------------------------------------
# Artifacts, built once


@pytest.fixture(scope="module")
def source_db(pg: PgServer) -> Iterator[str]:
    name = pg.create_database("corrupt_src")
    with pg.connect(name) as conn:
        conn.execute(SCHEMA.encode())
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="module")
def target_db(pg: PgServer) -> Iterator[str]:
    """One empty database every damaged load and restore is pointed at; it must stay empty."""
    name = pg.create_database("corrupt_tgt")
    yield name
    pg.drop_database(name)


def ysql_dump(pg: PgServer, source_db: str, out: Path, *, compressed: bool) -> Files:
    options = DumpOptions(jobs=2, compress=compressed, slice_bytes=32 << 10)  # small slices: several data files
    dump(pg.endpoint(source_db), out, options)
    return read_tree(out)


@pytest.fixture(scope="module")
def plain_dump(pg: PgServer, source_db: str, tmp_path_factory: pytest.TempPathFactory) -> Files:
    return ysql_dump(pg, source_db, tmp_path_factory.mktemp("plain") / "dump", compressed=False)


@pytest.fixture(scope="module")
def zstd_dump(pg: PgServer, source_db: str, tmp_path_factory: pytest.TempPathFactory) -> Files:
    return ysql_dump(pg, source_db, tmp_path_factory.mktemp("zstd") / "dump", compressed=True)


@pytest.fixture(scope="module")
def sql_zst_script(pg: PgServer, source_db: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A plain script (``dump --format plain``) compressed as several zstd frames."""
    path = tmp_path_factory.mktemp("script") / "shop.sql"
    dump(pg.endpoint(source_db), path, DumpOptions(), plain=True)
    text = path.read_bytes()
    step = len(text) // 3 + 1
    return b"".join(compress(text[i : i + step]) for i in range(0, len(text), step))


@pytest.fixture(scope="module")
def archive(pg: PgServer, source_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Files, str]]:
    """A repository: its first base backup, then several segments of committed transactions."""
    root = tmp_path_factory.mktemp("repo") / "repo"
    repo = Repository.open(str(root))
    slot = f"corrupt_{os.getpid()}"
    with running_archiver(pg.endpoint(source_db), repo, fast_options(slot)), pg.connect(source_db) as conn:
        wait_until_started(repo)
        for i in range(8):
            with conn.transaction():
                conn.execute("INSERT INTO acct VALUES (%s, 'late', 1, NULL)", [1000 + i])
                conn.execute("UPDATE acct SET balance = balance + 1 WHERE id %% 5 = %s", [i % 5])
                conn.execute("DELETE FROM tag WHERE acct = %s", [i + 1])
            if i == 4:
                conn.execute("ALTER TABLE acct ADD COLUMN note text")
            if i % 2:
                wait_for_commit(repo, last_commit_us(conn))  # a segment closes: several segments
        wait_for_commit(repo, last_commit_us(conn))
    with pg.connect(source_db) as conn:
        drop_slot(conn, slot)
        expected = {t: table_checksum(conn, "public", t) for t in ("acct", "tag")}
    files = read_tree(root)
    assert len([k for k in files if k.startswith("segments/")]) >= 3, sorted(files)
    # The lock file is not part of what a restore reads (it only keeps two archivers apart).
    yield {k: v for k, v in files.items() if not k.endswith(".lock")}, repr(expected)


def repo_names(rel: str) -> list[str]:
    """What a message about ``rel`` may name: a segment by its key (or its last LSN, when missing)."""
    info = parse_segment_key(rel)
    if info is not None:
        return [rel, f"{info.last_lsn:016X}"]
    if rel.startswith("base/") and not rel.endswith("/base.json"):
        return [rel, rel.split("/", 2)[2]]  # the file inside the base backup (dump manifest paths)
    return [rel]


def repo_droppable(rel: str) -> bool:
    # A base backup without base.json is an unfinished backup: ignored by design, not damage.
    return not rel.endswith("/base.json")


# --------------------------------------------------------------------------------------------
# The sweep


def test_pristine_artifacts_load_and_restore(
    pg: PgServer, source_db: str, plain_dump: Files, zstd_dump: Files, sql_zst_script: bytes,
    archive: tuple[Files, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], s3_bucket: str,
    moto_endpoint: str,
) -> None:  # fmt: skip
    """The control: undamaged, every artifact loads or restores (so the refusals below are earned)."""
    for name, files in (("plain", plain_dump), ("zstd", zstd_dump)):
        db = pg.create_database("corrupt_ok")
        code, _, err = run_cli(capsys, "load", "-q", str(write_tree(tmp_path / name, files)), pg.url(db))
        assert code == 0, err
        pg.drop_database(db)
    db = pg.create_database("corrupt_ok")
    (tmp_path / "s.sql.zst").write_bytes(sql_zst_script)
    code, _, err = run_cli(capsys, "load", "-q", str(tmp_path / "s.sql.zst"), pg.url(db))
    assert code == 0, err
    pg.drop_database(db)
    files, expected = archive
    for url, extra in ((str(write_tree(tmp_path / "repo", files)), []),
                       (upload(moto_endpoint, s3_bucket, "pristine", files), ["--endpoint-url", moto_endpoint])):  # fmt: skip
        db = pg.create_database("corrupt_ok")
        code, _, err = run_cli(capsys, "restore", "-q", url, pg.url(db), "--latest", *extra)
        assert code == 0, err
        with pg.connect(db) as conn:
            assert repr({t: table_checksum(conn, "public", t) for t in ("acct", "tag")}) == expected
        pg.drop_database(db)


@pytest.mark.parametrize("kind", ["ysql-dump", "ysql-dump-zstd"])
def test_damaged_ysql_dump_is_refused_before_loading(
    pg: PgServer, target_db: str, plain_dump: Files, zstd_dump: Files, kind: str,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pristine = plain_dump if kind == "ysql-dump" else zstd_dump
    with pg.connect(target_db) as conn:

        def run(case: Case) -> None:
            directory = write_tree(tmp_path / str(case.n), case.files)
            code, _, err = run_cli(capsys, "verify", str(directory))
            check_refused(code, err, case, lambda rel: [rel])
            code, _, err = run_cli(capsys, "load", "-q", "-j", "2", str(directory), pg.url(target_db))
            try:
                check_refused(code, err, case, lambda rel: [rel])
            finally:
                untouched(conn, case)

        sweep(cases(kind, pristine), run)


def test_damaged_compressed_script_is_refused_before_its_first_statement(
    pg: PgServer, target_db: str, sql_zst_script: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "shop.sql.zst"
    with pg.connect(target_db) as conn:

        def run(case: Case) -> None:
            path.write_bytes(case.files["shop.sql.zst"])
            code, _, err = run_cli(capsys, "load", "-q", str(path), pg.url(target_db))
            try:
                check_refused(code, err, case, lambda rel: [rel])
            finally:
                untouched(conn, case)

        sweep(cases("sql-zst-script", {"shop.sql.zst": sql_zst_script}, ops=("flip", "truncate", "reorder")), run)


def test_damaged_ycql_dump_is_refused_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.cqlsim import start_in_thread
    from ybrewind.ycql.dump import DumpOptions as CqlDumpOptions
    from ybrewind.ycql.dump import dump as cql_dump
    from ybrewind.ycql.session import connect

    sim = start_in_thread()
    try:
        base = f"ycql://{sim.host}:{sim.port}"
        with connect(YcqlEndpoint.parse(base)) as conn:
            conn.execute("CREATE KEYSPACE src WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
            conn.execute("CREATE TABLE src.t (k int PRIMARY KEY, v text, n map<text, int>)")
            conn.execute("CREATE TABLE src.u (a text, b int, c blob, PRIMARY KEY (a, b))")
            for k in range(60):
                conn.execute(f"INSERT INTO src.t (k, v, n) VALUES ({k}, 'value {k}', {{'x': {k}}})")
                conn.execute(f"INSERT INTO src.u (a, b, c) VALUES ('a{k % 4}', {k}, 0x{k:04x})")
            cql_dump(YcqlEndpoint.parse(f"{base}/src"), tmp_path / "dump", CqlDumpOptions(jobs=2, compress=True))
            pristine = read_tree(tmp_path / "dump")

            def run(case: Case) -> None:
                directory = write_tree(tmp_path / str(case.n), case.files)
                code, _, err = run_cli(capsys, "verify", str(directory))
                check_refused(code, err, case, lambda rel: [rel])
                code, _, err = run_cli(capsys, "load", "-q", str(directory), f"{base}/never")
                check_refused(code, err, case, lambda rel: [rel])

            sweep(cases("ycql-dump", pristine), run)
            conn.cluster.refresh_schema_metadata()
            assert conn.keyspace("never") is None  # nothing was ever applied
    finally:
        sim.stop()


def test_damaged_local_repository_is_refused_before_restoring(
    pg: PgServer, target_db: str, archive: tuple[Files, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pg.connect(target_db) as conn:

        def run(case: Case) -> None:
            repo = write_tree(tmp_path / str(case.n), case.files)
            code, _, err = run_cli(capsys, "restore", "-q", str(repo), pg.url(target_db), "--latest")
            try:
                check_refused(code, err, case, repo_names)
            finally:
                untouched(conn, case)

        sweep(cases("repo-local", archive[0], droppable=repo_droppable), run)


def test_damaged_s3_repository_is_refused_before_restoring(
    pg: PgServer, target_db: str, archive: tuple[Files, str], capsys: pytest.CaptureFixture[str],
    moto_endpoint: str, s3_bucket: str,
) -> None:  # fmt: skip
    with pg.connect(target_db) as conn:

        def run(case: Case) -> None:
            url = upload(moto_endpoint, s3_bucket, f"case-{case.n}", case.files)
            code, _, err = run_cli(capsys, "restore", "-q", url, pg.url(target_db), "--latest",
                                   "--endpoint-url", moto_endpoint)  # fmt: skip
            try:
                check_refused(code, err, case, repo_names)
            finally:
                untouched(conn, case)

        sweep(cases("repo-s3", archive[0], droppable=repo_droppable), run)


def test_damaged_ycql_scan_repository_is_refused_before_restoring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three scans (the base scan, then two with changes) captured from the CQL simulator."""
    from tests.support.cqlsim import start_in_thread
    from ybrewind.ycql.capture import CaptureOptions, capture
    from ybrewind.ycql.session import connect

    sim = start_in_thread()
    try:
        base = f"ycql://{sim.host}:{sim.port}"
        root = tmp_path / "repo"
        with connect(YcqlEndpoint.parse(base)) as conn:
            conn.session.use_client_timestamp = False  # write times from the simulator's clock
            conn.execute("CREATE KEYSPACE src WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
            conn.execute("CREATE TABLE src.t (k int PRIMARY KEY, v text)")
            for scan in range(3):
                for k in range(scan * 10, scan * 10 + 30):
                    conn.execute(f"INSERT INTO src.t (k, v) VALUES ({k}, 'scan {scan}')")
                if scan:
                    conn.execute(f"DELETE FROM src.t WHERE k = {scan}")
                sim.clock.advance(1.0)
                options = CaptureOptions(interval=0.01, jobs=1, ranges=4, max_scans=1, clock=sim.clock.now_us)
                capture(YcqlEndpoint.parse(f"{base}/src"), Repository.open(str(root)), options)
                sim.clock.advance(1.0)
            # Scan state is read by the archiver when it resumes, never by restore: not swept here.
            files = read_tree(root).items()
            pristine = {k: v for k, v in files if not k.startswith("state/ycql/") and not k.endswith(".lock")}
            assert len([k for k in pristine if k.startswith("segments/")]) == 3, sorted(pristine)
            code, _, err = run_cli(capsys, "restore", "-q", str(root), f"{base}/control", "--latest")
            assert code == 0, err  # the undamaged repository restores

            def run(case: Case) -> None:
                repo = write_tree(tmp_path / str(case.n), case.files)
                code, _, err = run_cli(capsys, "restore", "-q", str(repo), f"{base}/never", "--latest")
                check_refused(code, err, case, repo_names_ycql)

            # The status is not needed by a YCQL restore: dropping it loses nothing.
            sweep(cases("ycql-repo", pristine, droppable=lambda rel: rel != "state/archiver.json"), run)
            conn.cluster.refresh_schema_metadata()
            assert conn.keyspace("never") is None  # nothing was ever applied
    finally:
        sim.stop()


def repo_names_ycql(rel: str) -> list[str]:
    info = parse_segment_key(rel)
    return [rel] if info is None else [rel, f"segments/{info.first_lsn:016X}-"]


# --------------------------------------------------------------------------------------------
# S3


@pytest.fixture(scope="module")
def s3_bucket(moto_endpoint: str) -> str:
    import boto3

    bucket = f"corrupt-{os.getpid()}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


_clients: dict[str, object] = {}
_client_lock = threading.Lock()


def upload(endpoint: str, bucket: str, prefix: str, files: Files) -> str:
    import boto3

    with _client_lock:
        client = _clients.setdefault(endpoint, boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"))
    for rel, data in files.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)  # type: ignore[attr-defined]
    return f"s3://{bucket}/{prefix}"
