"""Bad input for archive start / backup / status: one line on stderr, non-zero exit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PgServer, own_sandbox
from tests.support.archive import drop_slot, fast_options, running_archiver, wait_until_started
from tests.support.cli import assert_one_line_error, run_cli
from ybrewind import sandbox
from ybrewind.archive.repo import Repository


@pytest.fixture(scope="module")
def restricted_cluster() -> Iterator[sandbox.Sandbox]:
    """wal_level=logical but a single replication slot, so the slot limit can be reached."""
    with own_sandbox("ybrewind-slots-", {"max_replication_slots": "1", "max_wal_senders": "2"}) as sb:
        yield sb


@pytest.fixture(scope="module")
def replica_cluster() -> Iterator[sandbox.Sandbox]:
    with own_sandbox("ybrewind-replica-", {"wal_level": "replica"}) as sb:
        yield sb


def test_unreachable_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "archive", "start", "-q", "postgresql://u@127.0.0.1:1/x", str(tmp_path / "r"))
    assert_one_line_error(code, err, "cannot connect")


def test_wal_level_not_logical(
    replica_cluster: sandbox.Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "archive", "start", "-q", replica_cluster.url(), str(tmp_path / "r"))
    assert_one_line_error(code, err, "wal_level=replica", "wal_level=logical")


def test_no_replication_privilege(
    pg: PgServer, db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS no_repl")
        conn.execute("CREATE ROLE no_repl LOGIN PASSWORD 'pw'")
    monkeypatch.setenv("PGPASSWORD", "pw")
    url = f"postgresql://no_repl@127.0.0.1:{pg.sandbox.port}/{db}"
    code, _, err = run_cli(capsys, "archive", "start", "-q", url, str(tmp_path / "r"))
    assert_one_line_error(code, err, "REPLICATION privilege")


def test_slot_limit_reached(
    restricted_cluster: sandbox.Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import psycopg

    with psycopg.connect(restricted_cluster.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot('occupier', 'pgoutput')")
        try:
            code, _, err = run_cli(capsys, "archive", "start", "-q", restricted_cluster.url(), str(tmp_path / "r"))
        finally:
            conn.execute("SELECT pg_drop_replication_slot('occupier')")
    assert_one_line_error(code, err, "no free replication slot")


def test_unwritable_repository(pg: PgServer, db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(capsys, "archive", "start", "-q", pg.url(db), str(blocker / "repo"))
    assert_one_line_error(code, err, str(blocker))


def test_repository_of_another_database(
    pg: PgServer, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo_dir = tmp_path / "repo"
    with running_archiver(pg.endpoint(db), Repository.open(str(repo_dir)), fast_options(f"s_{db}")):
        wait_until_started(Repository.open(str(repo_dir)))
    other = pg.create_database("other")
    try:
        code, _, err = run_cli(capsys, "archive", "start", "-q", pg.url(other), str(repo_dir), "--slot", f"s_{other}")
        assert_one_line_error(code, err, f"archives database {db!r}")
        code, out, _ = run_cli(capsys, "archive", "status", "--json", str(repo_dir))
        assert code == 0 and '"running": false' in out and '"base_backups"' in out
    finally:
        pg.drop_database(other)
        with pg.connect(db) as conn:
            drop_slot(conn, f"s_{db}")


def test_s3_missing_bucket(pg: PgServer, db: str, moto_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys, "archive", "start", "-q", pg.url(db), "s3://no-such-bucket-here/repo", "--endpoint-url", moto_endpoint
    )
    assert_one_line_error(code, err, "no-such-bucket-here")


def test_s3_unreachable_endpoint(
    pg: PgServer, db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    code, _, err = run_cli(
        capsys, "restore", "-q", "s3://bucket/repo", pg.url(db), "--latest", "--endpoint-url", "http://127.0.0.1:1"
    )
    assert_one_line_error(code, err, "127.0.0.1:1")
    assert "testing" not in err
