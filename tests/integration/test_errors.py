"""Bad input: every failure is one line on stderr with a non-zero exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PgServer
from tests.support.cli import assert_one_line_error, run_cli
from ybrewind.ysql.dump import DumpOptions, dump


@pytest.fixture(scope="module")
def small_dump(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    name = pg.create_database("errsrc")
    with pg.connect(name) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
    out = tmp_path_factory.mktemp("errors") / "dump"
    dump(pg.endpoint(name), out, DumpOptions())
    return out


def copy_dump(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def data_file(dump_dir: Path) -> Path:
    return next((dump_dir / "data").iterdir())


def test_unreachable_host(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "dump", "-q", "postgresql://nobody@127.0.0.1:1/x", str(tmp_path / "o"))
    assert_one_line_error(code, err, "cannot connect", "127.0.0.1:1")


def test_wrong_password_is_not_echoed(
    pg: PgServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS pw_user")
        conn.execute("CREATE ROLE pw_user LOGIN PASSWORD 'right-secret'")
    monkeypatch.setenv("PGPASSWORD", "wrong-secret")
    url = f"postgresql://pw_user@127.0.0.1:{pg.sandbox.port}/postgres"
    code, _, err = run_cli(capsys, "dump", url, str(tmp_path / "o"))
    assert_one_line_error(code, err, "password authentication failed")
    assert "secret" not in err


def test_missing_database(pg: PgServer, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "dump", pg.url("no_such_db"), str(tmp_path / "o"))
    assert_one_line_error(code, err, 'database "no_such_db" does not exist')


def test_missing_table_permission(
    pg: PgServer, db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE secret_stuff (id int)")
        conn.execute("DROP ROLE IF EXISTS reader_no_rights")
        conn.execute("CREATE ROLE reader_no_rights LOGIN PASSWORD 'pw'")
    monkeypatch.setenv("PGPASSWORD", "pw")
    url = f"postgresql://reader_no_rights@127.0.0.1:{pg.sandbox.port}/{db}"
    code, _, err = run_cli(capsys, "dump", url, str(tmp_path / "o"))
    assert_one_line_error(code, err, "permission denied", "secret_stuff")
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_corrupted_data_file(
    pg: PgServer, db: str, small_dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = copy_dump(small_dump, tmp_path / "bad")
    f = data_file(bad)
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    code, _, err = run_cli(capsys, "load", str(bad), pg.url(db))
    assert_one_line_error(code, err, f.name, "corrupt")
    code, _, err = run_cli(capsys, "verify", str(bad))
    assert_one_line_error(code, err, "corrupt")
    with pg.connect(db) as conn:  # nothing was applied
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_truncated_data_file(
    pg: PgServer, db: str, small_dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = copy_dump(small_dump, tmp_path / "bad")
    f = data_file(bad)
    f.write_bytes(f.read_bytes()[:1000])
    code, _, err = run_cli(capsys, "load", str(bad), pg.url(db))
    assert_one_line_error(code, err, f.name, "truncated")


def test_unknown_manifest_version(
    pg: PgServer, db: str, small_dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = copy_dump(small_dump, tmp_path / "bad")
    m = json.loads((bad / "manifest.json").read_text())
    m["format_version"] = 99
    (bad / "manifest.json").write_text(json.dumps(m))
    code, _, err = run_cli(capsys, "load", str(bad), pg.url(db))
    assert_one_line_error(code, err, "format version 99")


def test_non_empty_target(pg: PgServer, db: str, small_dump: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE already_here (id int)")
    code, _, err = run_cli(capsys, "load", str(small_dump), pg.url(db))
    assert_one_line_error(code, err, "not empty", "--clean")
    code, out, _ = run_cli(capsys, "load", "--clean", "--json", "-q", str(small_dump), pg.url(db))
    assert code == 0 and json.loads(out)["rows"] == 5000


def test_not_a_dump(pg: PgServer, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "load", str(tmp_path / "empty"), pg.url(db))
    assert_one_line_error(code, err, "manifest.json")


def test_sql_error_names_file_and_line(
    pg: PgServer, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "broken.sql"
    script.write_text("CREATE TABLE ok (id int);\n\n-- a comment\nINSERT INTO missing_table VALUES (1);\n")
    code, _, err = run_cli(capsys, "load", str(script), pg.url(db))
    assert_one_line_error(code, err, "broken.sql:4", "missing_table")


def test_json_summary_and_verify(pg: PgServer, small_dump: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "verify", "--json", "-q", str(small_dump))
    assert code == 0 and err == ""
    assert json.loads(out)["rows"] == 5000


def test_full_disk_is_one_line(pg: PgServer, db: str) -> None:
    """Writing the dump onto a full device (/dev/full answers ENOSPC) is a clean failure."""
    import subprocess
    import sys

    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g")
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "ybrewind.cli", "dump", "--format", "plain", pg.url(db)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert proc.returncode == 8, proc.stderr
    assert_one_line_error(proc.returncode, proc.stderr, "No space left on device")
