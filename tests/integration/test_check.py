"""``ybrewind check`` against PostgreSQL and each misconfiguration a sandbox can produce: no
REPLICATION privilege, not a superuser, wal_level=replica, no free slot; with --repo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgServer, own_sandbox
from tests.support.archive import drop_slot, fast_options, running_archiver, wait_until_started
from tests.support.cli import assert_one_line_error, run_cli
from ybrewind import sandbox
from ybrewind.archive.repo import Repository


@pytest.fixture(scope="module")
def misconfigured() -> Iterator[sandbox.Sandbox]:
    """wal_level=replica and its only replication slot taken (a physical one: no logical slots there)."""
    with own_sandbox("ybrewind-check-", {"wal_level": "replica", "max_replication_slots": "1"}) as sb:
        with psycopg.connect(sb.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_create_physical_replication_slot('occupier')")
        yield sb


def statuses(out: str) -> dict[str, str]:
    report = json.loads(out)
    return {c["name"]: c["status"] for c in report["checks"]}


def test_postgres_ready(pg: PgServer, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", pg.url(db), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] and report["kind"] == "postgres"
    assert statuses(out) == {
        "server": "ok",
        "superuser": "ok",
        "replication": "ok",
        "wal_level": "ok",
        "slots": "ok",
        "replica_identity": "ok",
    }


def test_human_output_one_line_per_check(pg: PgServer, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", pg.url(db))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 6 and lines[0].startswith("OK    server: PostgreSQL 15")


def test_role_without_replication_and_not_superuser(
    pg: PgServer, db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS check_plain")
        conn.execute("CREATE ROLE check_plain LOGIN PASSWORD 'pw'")
    monkeypatch.setenv("PGPASSWORD", "pw")
    url = f"postgresql://check_plain@127.0.0.1:{pg.sandbox.port}/{db}"
    code, out, _ = run_cli(capsys, "check", url, "--json")
    assert code == 1
    got = statuses(out)
    assert got["replication"] == "fail" and got["superuser"] == "warn"
    detail = {c["name"]: c["detail"] for c in json.loads(out)["checks"]}
    assert "ALTER ROLE check_plain REPLICATION" in detail["replication"]
    # With REPLICATION but still no superuser: archiving works, without DDL capture.
    with pg.connect() as conn:
        conn.execute("ALTER ROLE check_plain REPLICATION")
    code, out, _ = run_cli(capsys, "check", url, "--json")
    assert code == 0 and statuses(out)["superuser"] == "warn" and "DDL is not captured" in out


def test_wal_level_replica_and_no_free_slot(misconfigured: sandbox.Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", misconfigured.url(), "--json")
    assert code == 1
    got = statuses(out)
    assert got["wal_level"] == "fail" and got["slots"] == "fail" and got["replication"] == "ok"
    assert "wal_level=replica" in out and "no free replication slot (1 of max_replication_slots=1 in use)" in out


def test_archive_start_runs_the_same_checks(
    misconfigured: sandbox.Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "archive", "start", "-q", misconfigured.url(), str(tmp_path / "r"))
    assert_one_line_error(code, err, "wal_level=replica")


def test_table_without_key_warns(pg: PgServer, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE loose (a int)")
    code, out, _ = run_cli(capsys, "check", pg.url(db), "--json")
    assert code == 0 and statuses(out)["replica_identity"] == "warn" and "public.loose" in out


def test_with_repository(pg: PgServer, db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    slot = f"s_{db}"
    with running_archiver(pg.endpoint(db), Repository.open(str(repo_dir)), fast_options(slot)):
        wait_until_started(Repository.open(str(repo_dir)))
    code, out, _ = run_cli(capsys, "check", pg.url(db), "--repo", str(repo_dir), "--json")
    got = statuses(out)
    assert code == 0 and got["repository"] == "ok" and got["repository_slot"] == "ok", out
    assert f"the repository's slot {slot} exists" in out
    with pg.connect(db) as conn:
        drop_slot(conn, slot)
    code, out, _ = run_cli(capsys, "check", pg.url(db), "--repo", str(repo_dir), "--json")
    assert code == 1 and statuses(out)["repository_slot"] == "fail"


def test_unreachable_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "check", "postgresql://u@127.0.0.1:1/x")
    assert_one_line_error(code, err, "cannot connect")
