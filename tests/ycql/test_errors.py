"""Bad input: one-line errors on stderr, non-zero exit codes, never a traceback or a password."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from cassandra import InvalidRequest, OperationTimedOut

from tests.support.cqlsim import start_in_thread
from tests.support.cqlsim.datatypes import CqlType as SimType
from tests.ycql.conftest import CqlServer
from tests.ycql.helpers import assert_one_line_error, run_cli
from ybrewind import manifest as mf
from ybrewind.ycql.dump import Dumper, DumpOptions, dump


@pytest.fixture(scope="module")
def small(cql: CqlServer) -> str:
    ks = cql.keyspace_name("small")
    cql.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    cql.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    for k in range(40):
        cql.execute(f"INSERT INTO {ks}.t (k, v) VALUES ({k}, 'value {k}')")
    return ks


@pytest.fixture(scope="module")
def small_dump(cql: CqlServer, small: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ycql-errors") / "dump"
    dump(cql.endpoint(small), out, DumpOptions())
    return out


def test_unreachable_host(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "dump", "-q", "ycql://127.0.0.1:1/ks", str(tmp_path / "o"))
    assert code == 3
    assert_one_line_error(code, err, "cannot connect", "127.0.0.1:1", "refused")
    assert not (tmp_path / "o").exists()


def test_wrong_credentials_never_show_the_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_in_thread(credentials=("app", "right-secret")) as sim:
        monkeypatch.setenv("YCQL_PASSWORD", "wrong-secret")
        code, _, err = run_cli(capsys, "dump", f"ycql://app@{sim.host}:{sim.port}/ks", str(tmp_path / "o"))
        assert code == 3
        assert_one_line_error(code, err, "authentication failed", f"app@{sim.host}:{sim.port}")
        assert "secret" not in err
        monkeypatch.delenv("YCQL_PASSWORD")
        code, _, err = run_cli(capsys, "dump", f"ycql://app:wrong-secret@{sim.host}:{sim.port}/ks", str(tmp_path / "o"))
        assert_one_line_error(code, err, "authentication failed")
        assert "secret" not in err
        code, _, err = run_cli(capsys, "dump", f"ycql://{sim.host}:{sim.port}/ks", str(tmp_path / "o"))
        assert_one_line_error(code, err, "requires authentication", "YCQL_USER")
        # The right password works, and the missing keyspace is then the problem.
        monkeypatch.setenv("YCQL_PASSWORD", "right-secret")
        code, _, err = run_cli(capsys, "dump", f"ycql://app@{sim.host}:{sim.port}/ks", str(tmp_path / "o"))
        assert_one_line_error(code, err, "keyspace ks does not exist")


def test_missing_keyspace(cql: CqlServer, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "dump", cql.url("no_such_keyspace"), str(tmp_path / "o"))
    assert code == 3
    assert_one_line_error(code, err, "keyspace no_such_keyspace does not exist")
    code, _, err = run_cli(capsys, "compare", cql.url("no_such_keyspace"), cql.url("no_such_keyspace"))
    assert_one_line_error(code, err, "does not exist")


def test_corrupt_and_truncated_data_file(
    cql: CqlServer, small_dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(small_dump, bad)
    data = next((bad / "data").iterdir())
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    target = cql.keyspace_name("never")
    code, _, err = run_cli(capsys, "load", str(bad), cql.url(target))
    assert code == 5
    assert_one_line_error(code, err, data.name, "corrupt")
    code, _, err = run_cli(capsys, "verify", str(bad))
    assert_one_line_error(code, err, "corrupt")
    cql.refresh()
    assert cql.conn.keyspace(target) is None  # nothing was applied
    data.write_bytes(bytes(raw[:100]))
    code, _, err = run_cli(capsys, "load", str(bad), cql.url(target))
    assert_one_line_error(code, err, data.name, "truncated")


def test_statement_failing_in_a_data_file_names_file_line_and_statement(
    cql: CqlServer, small: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data-only dump loaded where its table is missing: the server refuses the first INSERT."""
    out = tmp_path / "data-only"
    dump(cql.endpoint(small), out, DumpOptions(data_only=True))
    target = cql.keyspace_name("empty")
    cql.execute(f"CREATE KEYSPACE {target} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    code, _, err = run_cli(capsys, "load", "-q", str(out), cql.url(target))
    line = assert_one_line_error(code, err, ".cql:2:", "in: INSERT INTO")
    assert code == 4, line


def test_unsupported_column_type(cql: CqlServer, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if cql.sim is None:
        pytest.skip("needs the in-process simulator to present a type it does not implement")
    ks = cql.keyspace_name("vec")
    cql.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    cql.execute(f"CREATE TABLE {ks}.emb (k int PRIMARY KEY, v int)")

    class VectorType(SimType):
        def cql(self) -> str:
            return "vector<float, 3>"

    column = cql.sim.server.catalog.table(ks, "emb").columns["v"]
    column.type = VectorType(**{f.name: getattr(column.type, f.name) for f in dataclasses.fields(column.type)})
    cql.sim.server.catalog.bump()
    code, _, err = run_cli(capsys, "dump", cql.url(ks), str(tmp_path / "o"))
    assert code == 4
    assert_one_line_error(code, err, f"{ks}.emb.v", "vector<float, 3>", "cannot dump")
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_transient_failures_are_retried(
    cql: CqlServer, small: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = Dumper._execute

    def flaky(conn, bound, state):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] in (2, 3, 5):
            raise OperationTimedOut("injected timeout")
        return original(conn, bound, state)

    monkeypatch.setattr(Dumper, "_execute", staticmethod(flaky))
    result = dump(cql.endpoint(small), tmp_path / "o", DumpOptions(jobs=1, page_size=3, ranges=4))
    assert result.retries == 3 and result.rows == 40
    assert mf.read(tmp_path / "o").total_rows == 40
    lines = next((tmp_path / "o" / "data").iterdir()).read_text().splitlines()
    assert len([ln for ln in lines if ln.startswith("INSERT")]) == 40  # resumed by paging state: no duplicates


def test_a_failing_range_stops_the_dump(
    cql: CqlServer, small: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(conn, bound, state):  # type: ignore[no-untyped-def]
        raise InvalidRequest('Error from server: code=2200 [Invalid query] message="injected failure"')

    monkeypatch.setattr(Dumper, "_execute", staticmethod(broken))
    out = tmp_path / "o"
    code, _, err = run_cli(capsys, "dump", "-j", "3", cql.url(small), str(out))
    assert code == 4
    assert_one_line_error(code, err, "dumping t (", "injected failure")
    assert not (out / "manifest.json").exists()
    assert [p.name for p in (out / "data").iterdir()] == []  # no partial or temporary files left


def test_script_errors_name_file_and_line(cql: CqlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ks = cql.keyspace_name("script")
    script = tmp_path / "setup.cql"
    script.write_text(
        "CREATE TABLE t (k int PRIMARY KEY);\n-- a comment; with a semicolon\n"
        "INSERT INTO t (k) VALUES (1);\nINSERT INTO nowhere (k) VALUES (2);\n"
    )
    code, _, err = run_cli(capsys, "load", str(script), cql.url(ks))
    assert_one_line_error(code, err, f"keyspace {ks} does not exist", "--create")
    code, _, err = run_cli(capsys, "load", "--create", str(script), cql.url(ks))
    assert code == 4
    assert_one_line_error(code, err, f"{script}:4:", "in: INSERT INTO nowhere")
    script.write_text("INSERT INTO t (k) VALUES (3);\nSELECT 'unterminated FROM t;\n")
    code, _, err = run_cli(capsys, "load", str(script), cql.url(ks))
    assert code == 6
    assert_one_line_error(code, err, f"{script}:2:", "unterminated string")
    script.write_text("COPY t FROM 'x.csv';\n")
    code, _, err = run_cli(capsys, "load", str(script), cql.url(ks))
    assert_one_line_error(code, err, f"{script}:1:", "COPY", "ycqlsh")


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path, small_dump: Path) -> None:
    cases = [
        (["dump", "ycql://h:99999/ks", str(tmp_path / "o")], "invalid port"),
        (["dump", "ycql://h/ks?bogus=1", str(tmp_path / "o")], "unknown ycql:// option"),
        (
            ["dump", "--format", "csv", "--with-writetime", "ycql://127.0.0.1:1/ks", str(tmp_path / "o")],
            "--with-writetime needs",
        ),
        (["dump", "--inserts", "ycql://127.0.0.1:1/ks", str(tmp_path / "o")], "--inserts not for YCQL"),
        (["dump", "ycql://127.0.0.1:1/", str(tmp_path / "o")], "needs a keyspace"),
        (["compare", "ycql://127.0.0.1:1/a", "postgresql://x/y"], "two ycql:// endpoints"),
        (["load", str(small_dump), "postgresql://nobody@127.0.0.1:1/x"], "YCQL dump"),
        (["load", "-1", str(small_dump), "ycql://127.0.0.1:1/x"], "--single-transaction"),
    ]
    for argv, fragment in cases:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert_one_line_error(code, err, fragment)
