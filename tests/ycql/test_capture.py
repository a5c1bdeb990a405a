"""YCQL change capture by scans, and restore to a time: against the simulator's oracle at each scan."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.ycql.conftest import CqlServer
from tests.ycql.helpers import assert_one_line_error, assert_ttls_close, run_cli, table_snapshot
from ybrewind.archive import format as fmt
from ybrewind.archive.repo import Repository
from ybrewind.errors import UsageError
from ybrewind.progress import Progress
from ybrewind.ycql.capture import CaptureOptions, capture, expiry_us, parse_interval, read_scan, wall_us
from ybrewind.ycql.rewind import RestoreOptions, native_clone_command, restore

SCHEMA = [
    "CREATE TABLE {ks}.items (id int PRIMARY KEY, a text, b int, tags set<text>, m map<text, int>)",
    "CREATE TABLE {ks}.events (p int, c int, s text static, v text, PRIMARY KEY (p, c))",
    "CREATE TABLE {ks}.hits (id int PRIMARY KEY, n counter)",
]


@pytest.fixture
def sim(cql: CqlServer) -> CqlServer:
    if cql.sim is None:
        pytest.skip("needs the simulator's clock")
    cql.conn.session.use_client_timestamp = False  # write times from the (advanceable) server clock
    return cql


def _opts(server: CqlServer, **kw: Any) -> CaptureOptions:
    assert server.sim is not None
    return CaptureOptions(interval=0.01, jobs=2, ranges=8, max_scans=1, clock=server.sim.clock.now_us, **kw)


def _scan(server: CqlServer, ks: str, repo: Path) -> Any:
    result = capture(server.endpoint(ks), Repository.open(str(repo)), _opts(server))
    return result.scans[-1]


def _tick(server: CqlServer, seconds: float = 1.0) -> None:
    assert server.sim is not None
    server.sim.clock.advance(seconds)


def _keys(snapshot: dict) -> set[bytes]:
    return {r[0] for r in snapshot["items"]["data"]}


def _without(snapshot: dict, key: bytes) -> dict:
    items = snapshot["items"]
    return {
        **snapshot,
        "items": {
            "data": [r for r in items["data"] if r[0] != key],
            "writetimes": [w for w in items["writetimes"] if w[0][0] != key],
            "ttls": {k: v for k, v in items["ttls"].items() if k[0] != key},
        },
    }


def _same(server: CqlServer, oracle: dict, keyspace: str, skip: bytes | None = None) -> None:
    after = table_snapshot(server, keyspace)
    if skip is not None:
        after = _without(after, skip)
    assert sorted(after) == sorted(oracle)
    for table, before in oracle.items():
        assert after[table]["data"] == before["data"], table
        assert after[table]["writetimes"] == before["writetimes"], table
        assert_ttls_close(before, after[table], slack=2)


def _restore(server: CqlServer, repo: Path, t: int | None) -> str:
    target = server.keyspace_name("rewound")
    restore(Repository.open(str(repo)), server.endpoint(target), RestoreOptions(target_us=t))
    return target


def test_workload_restored_to_every_scan_and_between(sim: CqlServer, tmp_path: Path) -> None:
    ks = sim.keyspace_name("cap")
    repo = tmp_path / "repo"
    x = sim.execute
    x(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    for stmt in SCHEMA:
        x(stmt.format(ks=ks))
    for i in range(20):
        x(f"INSERT INTO {ks}.items (id, a, b, tags, m) VALUES ({i}, 'a{i}', {i}, {{'x'}}, {{'k': {i}}})")
        x(f"INSERT INTO {ks}.events (p, c, s, v) VALUES ({i % 4}, {i}, 's{i % 4}', 'v{i}')")
        x(f"UPDATE {ks}.hits SET n = n + {i + 1} WHERE id = {i % 5}")
    x(f"INSERT INTO {ks}.items (id) VALUES (100)")  # a row with no cells
    _tick(sim)
    scans, oracles = [_scan(sim, ks, repo)], [table_snapshot(sim, ks)]
    _tick(sim)

    # Interval 1: updates of single columns, TTL writes, row and cell deletes, collections, counters.
    x(f"UPDATE {ks}.items SET a = 'changed' WHERE id = 1")
    x(f"INSERT INTO {ks}.items (id, a, b) VALUES (50, 'ttl', 5) USING TTL 100")
    x(f"DELETE FROM {ks}.items WHERE id = 2")
    x(f"UPDATE {ks}.items SET b = null WHERE id = 3")
    x(f"UPDATE {ks}.items SET tags = tags + {{'y'}}, m['z'] = 9 WHERE id = 4")
    x(f"UPDATE {ks}.hits SET n = n + 7 WHERE id = 1")
    x(f"UPDATE {ks}.events SET s = 'S0' WHERE p = 0")
    x(f"DELETE FROM {ks}.events WHERE p = 1 AND c = 5")
    x(f"DELETE v FROM {ks}.events WHERE p = 2 AND c = 6")
    x(f"DELETE FROM {ks}.events WHERE p = 3")  # a whole partition, static cell included
    _tick(sim)
    scans.append(_scan(sim, ks, repo))
    oracles.append(table_snapshot(sim, ks))
    _tick(sim)

    # Interval 2: writes before T (kept), then after T: writes and deletes (not in a restore to T).
    x(f"UPDATE {ks}.items SET b = 777 WHERE id = 7")
    x(f"INSERT INTO {ks}.items (id, a) VALUES (60, 'new')")
    x(f"UPDATE {ks}.items SET a = 'before' WHERE id = 11")  # overwritten again after T: not seen
    _tick(sim)
    t_mid = sim.sim.clock.now_us() if sim.sim else 0
    oracle_mid = table_snapshot(sim, ks)
    _tick(sim)
    x(f"UPDATE {ks}.items SET a = 'later' WHERE id = 8")
    x(f"INSERT INTO {ks}.items (id, a) VALUES (61, 'later')")
    x(f"DELETE FROM {ks}.items WHERE id = 9")
    x(f"UPDATE {ks}.items SET a = null WHERE id = 10")
    x(f"UPDATE {ks}.hits SET n = n - 1 WHERE id = 2")
    x(f"UPDATE {ks}.items SET a = 'after' WHERE id = 11")
    _tick(sim, 150)  # the TTL row expires (at a time known exactly, before the next scan)
    t_expired = sim.sim.clock.now_us() if sim.sim else 0
    _tick(sim)
    scans.append(_scan(sim, ks, repo))
    oracles.append(table_snapshot(sim, ks))
    key50 = (50).to_bytes(4, "big")
    assert key50 in _keys(oracles[1]) and key50 not in _keys(oracles[2])
    assert oracles[0] != oracles[1] != oracle_mid != oracles[2]

    # An unchanged keyspace: the scan archives nothing but its (tiny) segment.
    _tick(sim)
    idle = _scan(sim, ks, repo)
    assert idle.records == 0 and idle.ranges_changed == 0 and idle.bytes < 200, idle
    assert idle.rows == scans[-1].rows

    for stats, oracle in zip(scans, oracles, strict=True):
        _same(sim, oracle, _restore(sim, repo, stats.finished_us))
    # Between scans: every cell whose last write before T was its last write of the interval.
    mid = _restore(sim, repo, t_mid)
    key11 = (11).to_bytes(4, "big")
    _same(sim, _without(oracle_mid, key11), mid, skip=key11)
    row11 = [r for r in table_snapshot(sim, mid)["items"]["data"] if r[0] == key11]
    assert row11[0][1] == b"a11"  # the value of the previous scan: 'before' was never seen
    assert key50 not in _keys(table_snapshot(sim, _restore(sim, repo, t_expired)))


def test_restart_after_a_killed_scan_loses_and_repeats_nothing(sim: CqlServer, tmp_path: Path) -> None:
    ks = sim.keyspace_name("kill")
    repo = tmp_path / "repo"
    sim.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    sim.execute(SCHEMA[0].format(ks=ks))
    for i in range(10):
        sim.execute(f"INSERT INTO {ks}.items (id, a) VALUES ({i}, 'x{i}')")
    _tick(sim)
    _scan(sim, ks, repo)
    sim.execute(f"UPDATE {ks}.items SET a = 'y' WHERE id = 3")
    sim.execute(f"DELETE FROM {ks}.items WHERE id = 4")
    _tick(sim)
    # A scan killed after storing its state but before its segment (the commit point).
    repository = Repository.open(str(repo))
    opts = _opts(sim)

    class Killed(Exception):
        pass

    real_put = repository.storage.put

    def put(key: str, data: bytes) -> None:
        if key.startswith("segments/"):
            raise Killed
        real_put(key, data)

    repository.storage.put = put  # type: ignore[method-assign]
    with pytest.raises(Killed):
        capture(sim.endpoint(ks), repository, opts)
    assert len(Repository.open(str(repo)).segments()) == 1
    _tick(sim)
    stats = _scan(sim, ks, repo)
    assert stats.seq == 1 and stats.records == 2, stats
    again = _scan(sim, ks, repo)
    assert again.records == 0
    # State: one object per range (8) plus the model; only the ranges scan 1 changed were rewritten.
    states = sorted(p.name for p in (repo / "state" / "ycql").iterdir())
    assert len(states) == 9 and sum(n.startswith("model-") for n in states) == 1, states
    rewritten = [n for n in states if n.endswith("-0000000000000001.json.zst")]
    assert 1 <= len(rewritten) <= 2, states
    repository = Repository.open(str(repo))
    kinds = [r[0] for s in repository.segments()[1:] for r in read_scan(repository, s)[1]]
    assert sorted(kinds) == ["D", "W"]
    oracle = table_snapshot(sim, ks)
    _same(sim, oracle, _restore(sim, repo, None))


def test_cli_archive_restore_list_and_errors(
    sim: CqlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ks = sim.keyspace_name("cli")
    repo = tmp_path / "repo"
    sim.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    sim.execute(SCHEMA[0].format(ks=ks))
    # The CLI scans on the wall clock: this write is stamped with it too (the module's server clock moved on).
    sim.execute(f"INSERT INTO {ks}.items (id, a) VALUES (1, 'one') USING TIMESTAMP {wall_us() - 1000}")
    code, out, err = run_cli(
        capsys,
        "archive",
        "start",
        "--json",
        "-q",
        "--scan-interval",
        "0.01",
        "--max-scans",
        "2",
        sim.url(ks),
        str(repo),
    )
    assert code == 0, err
    summary = json.loads(out)
    assert [s["seq"] for s in summary["scans"]] == [0, 1] and summary["scans"][1]["records"] == 0
    code, out, err = run_cli(capsys, "restore", "--list", "--json", str(repo))
    assert code == 0, err
    listing = json.loads(out)
    assert [s["seq"] for s in listing["scans"]] == [0, 1] and "scan interval" in listing["precision"]
    target = sim.keyspace_name("clirest")
    code, out, err = run_cli(capsys, "restore", "-q", "--json", "--latest", str(repo), sim.url(target))
    assert code == 0, err
    assert json.loads(out)["rows"] == 1
    assert table_snapshot(sim, target)["items"]["data"] == table_snapshot(sim, ks)["items"]["data"]
    target2 = sim.keyspace_name("clone")
    code, out, err = run_cli(
        capsys, "clone", "-q", "--repo", str(repo), "--as-of", listing["scans"][1]["finished"], sim.url(ks), target2
    )
    assert code == 0, err
    assert table_snapshot(sim, target2)["items"]["data"] == table_snapshot(sim, ks)["items"]["data"]

    ysql_repo = tmp_path / "ysql-repo"
    Repository.open(str(ysql_repo)).write_info(
        fmt.RepositoryInfo({"database": "shop"}, "ybrewind", "ybrewind", "2026-11-21T00:00:00+00:00", "none")
    )
    bad = [
        (("restore", "--latest", str(ysql_repo), sim.url("k")), "postgresql://"),
        (("restore", "--latest", str(repo), sim.url(target)), "restore into a new keyspace"),
        (("restore", "--list", str(ysql_repo)), None),
        (("archive", "start", sim.url(ks), str(ysql_repo)), "YSQL"),
        (("archive", "start", "postgresql://localhost/db", str(repo)), "ycql://"),
        (("backup", "postgresql://localhost/db", str(repo)), "ycql://"),
        (("archive", "drop", "--yes", "postgresql://localhost/db", str(repo)), "ycql://"),
        (("archive", "drop", "--yes", sim.url(ks), str(repo)), "nothing to drop"),
        (("restore", "--to-lsn", "0/1", str(repo), sim.url("k")), "--to-lsn"),
        (("restore", str(repo), sim.url("k")), "--to-time"),
        (("clone", sim.url(ks), "new", "--as-of", "now", "--repo", str(ysql_repo)), "postgresql://"),
        (("clone", sim.url(ks), "new", "--as-of", "now", "--native"), "--master-addresses"),
        (
            (
                "clone",
                sim.url(ks),
                "new",
                "--as-of",
                "now",
                "--native",
                "--master-addresses",
                "m:7100",
                "--yb-admin",
                str(tmp_path / "missing-yb-admin"),
            ),
            "cannot run",
        ),
        (
            ("restore", "--to-time", "2001-01-01T00:00:00Z", str(repo), sim.url(target + "x")),
            "before the end of the base scan",
        ),
        (("restore", "--latest", str(repo), "postgresql://localhost/db"), "ycql://"),
        (("restore", "--latest", str(repo), sim.url("")), "keyspace"),
        (("restore", "--latest", str(tmp_path / "none"), sim.url("k")), "not a ybrewind repository"),
        (("archive", "start", "--scan-interval", "0", sim.url(ks), str(repo)), "--scan-interval"),
        (("archive", "start", "--scan-interval", "5x", sim.url(ks), str(repo)), "--scan-interval"),
        (("archive", "start", sim.url(ks + "other"), str(repo)), "archives keyspace"),
        (("clone", sim.url(ks), "new", "--as-of", "now"), "--repo"),
    ]
    bad.append((("archive", "start", sim.url(ks + "_missing"), str(tmp_path / "new-repo")), "does not exist"))
    for argv, fragment in bad:
        code, _, err = run_cli(capsys, *argv)
        if fragment is None:  # a YSQL repository's listing still works
            assert code == 0, err
            continue
        assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "new-repo" / "repository.json").exists()


def test_native_clone_command() -> None:
    argv = native_clone_command("yb-admin", "m1:7100,m2:7100", "shop", "shop_copy", 1_700_000_000_000_000)
    assert argv == [
        "yb-admin", "--master_addresses", "m1:7100,m2:7100", "clone_namespace", "ycql.shop", "shop_copy",
        "1700000000000000",
    ]  # fmt: skip
    for args in (("yb-admin", "", "shop", "c", 1), ("yb-admin", "m:7100", "shop;rm", "c", 1)):
        with pytest.raises(Exception, match=r"--master-addresses|invalid"):
            native_clone_command(*args)


def test_cassandra_schema_change_and_status(
    cassandra_sim: CqlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Token ranges (Cassandra), a table created and one dropped between scans, archive status."""
    server = cassandra_sim
    server.conn.session.use_client_timestamp = False
    ks = server.keyspace_name("cas")
    repo = tmp_path / "repo"
    x = server.execute
    x(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    x(SCHEMA[1].format(ks=ks))
    x(SCHEMA[2].format(ks=ks))
    for i in range(12):
        x(f"INSERT INTO {ks}.events (p, c, s, v) VALUES ({i % 3}, {i}, 's', 'v{i}')")
        x(f"UPDATE {ks}.hits SET n = n + 1 WHERE id = {i % 4}")
    _tick(server)
    first = _scan(server, ks, repo)
    oracle0 = table_snapshot(server, ks)
    _tick(server)
    x(SCHEMA[0].format(ks=ks))
    x(f"INSERT INTO {ks}.items (id, a) VALUES (1, 'one')")
    x(f"UPDATE {ks}.events SET v = 'w' WHERE p = 1 AND c = 4")
    x(f"DROP TABLE {ks}.hits")
    _tick(server)
    second = _scan(server, ks, repo)
    oracle1 = table_snapshot(server, ks)
    assert "hits" not in oracle1 and "items" in oracle1
    _same(server, oracle0, _restore(server, repo, first.finished_us))
    _same(server, oracle1, _restore(server, repo, second.finished_us))
    code, out, err = run_cli(capsys, "archive", "status", "--json", str(repo))
    assert code == 0, err
    status = json.loads(out)
    assert status["api"] == "ycql" and status["scans"] == 2 and status["running"] is False


def test_native_clone_runs_yb_admin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scripted yb-admin (no YugabyteDB here): clone_namespace only starts the clone (it prints the
    CloneNamespaceResponsePB: source_namespace_id, seq_no), so ybrewind polls list_clones until the
    clone's aggregate_state is COMPLETE; a failing or failed clone is a one-line error."""
    fake = tmp_path / "yb-admin"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/calls\n'
        'case "$3" in\n'
        '  clone_namespace) echo \'{"source_namespace_id": "000033e8000030008000000000000000", "seq_no": 2}\' ;;\n'
        f"  list_clones) n=$(grep -c list_clones {tmp_path}/calls); state=CLONE_SCHEMA_STARTED\n"
        '    [ "$n" -ge 3 ] && state=COMPLETE\n'
        '    echo "[{\\"aggregate_state\\": \\"$state\\", \\"seq_no\\": \\"2\\"}]" ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    argv = ["clone", "ycql://yb1/shop", "shop_copy", "--as-of", "1700000000000000", "--native"]
    code, out, err = run_cli(capsys, *argv, "--master-addresses", "m1:7100", "--yb-admin", str(fake), "--json")
    assert code == 0, err
    assert json.loads(out)["method"] == "native"
    calls = [line.split() for line in (tmp_path / "calls").read_text().splitlines()]
    assert calls[0] == [
        "--master_addresses", "m1:7100", "clone_namespace", "ycql.shop", "shop_copy", "1700000000000000",
    ]  # fmt: skip
    assert calls[1:] == [["--master_addresses", "m1:7100", "list_clones", "000033e8000030008000000000000000", "2"]] * 3
    fake.write_text("#!/bin/sh\necho 'no snapshot schedule covers the time' >&2\nexit 1\n")
    code, _, err = run_cli(capsys, *argv, "--master-addresses", "m1:7100", "--yb-admin", str(fake))
    assert_one_line_error(code, err, "no snapshot schedule")
    fake.write_text(
        "#!/bin/sh\n"
        'case "$3" in\n'
        '  clone_namespace) echo \'{"source_namespace_id": "ns1", "seq_no": 5}\' ;;\n'
        '  list_clones) echo \'[{"aggregate_state": "FAILED", "seq_no": "5"}]\' ;;\n'
        "esac\n"
    )
    code, _, err = run_cli(capsys, *argv, "--master-addresses", "m1:7100", "--yb-admin", str(fake))
    assert_one_line_error(code, err, "failed on the cluster (state FAILED)")


def test_stop_during_a_scan_and_corrupt_segments(
    sim: CqlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM mid-scan drops that scan whole; a damaged segment stops a restore with a one-line error."""
    ks = sim.keyspace_name("stop")
    repo = tmp_path / "repo"
    sim.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    sim.execute(SCHEMA[0].format(ks=ks))
    sim.execute(f"INSERT INTO {ks}.items (id, a) VALUES (1, 'one')")
    _tick(sim)
    _scan(sim, ks, repo)
    sim.execute(f"INSERT INTO {ks}.items (id, a) VALUES (2, 'two')")
    _tick(sim)
    stop = threading.Event()

    class StopAfterOneRange(Progress):
        def advance(self, task: Any, amount: float) -> None:
            stop.set()

    result = capture(sim.endpoint(ks), Repository.open(str(repo)), _opts(sim), StopAfterOneRange(), stop)
    assert result.scans == [] and len(Repository.open(str(repo)).segments()) == 1
    again = _scan(sim, ks, repo)
    assert again.seq == 1 and again.records == 2  # the new row: R + W

    segment = Repository.open(str(repo)).segments()[-1]
    path = repo / segment.key
    path.write_bytes(path.read_bytes()[:-3])
    code, _, err = run_cli(capsys, "restore", "--latest", str(repo), sim.url(sim.keyspace_name("x")))
    assert code == 5
    assert_one_line_error(code, err, "corrupt")


def test_expiry_and_interval_parsing() -> None:
    wt = 1_000_000_000_000_000
    # written at wt with TTL 100 s, read 30.5 s later: ttl() says 70 (rounded up) -> exact expiry
    assert expiry_us(wt, 70, wt + 30_500_000) == wt + 100_000_000
    # a client timestamp far from the read: read time + TTL
    assert expiry_us(wt - 10**12, 70, wt) == wt + 70_000_000
    assert parse_interval("5m") == 300 and parse_interval("30s") == 30 and parse_interval("250ms") == 0.25
    assert parse_interval("2") == 2 and parse_interval("1h") == 3600
    for bad in ("0", "-1s", "fast", "", "5 parsecs"):
        with pytest.raises(UsageError):
            parse_interval(bad)
