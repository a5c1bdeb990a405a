"""The YugabyteDB dump preconditions that are decided before any YB-only statement is sent, run
over a real PostgreSQL connection: a role that may not SET yb_read_time gets one clear line (issue 9,
finding 5) and a read time past the history retention is refused up front (finding 6)."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.conftest import PgServer
from ybrewind.errors import UsageError
from ybrewind.ysql.dump import Snapshot


@pytest.fixture
def plain_role(pg: PgServer, db: str, monkeypatch: pytest.MonkeyPatch) -> psycopg.Connection:
    with pg.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS snap_user")
        conn.execute("CREATE ROLE snap_user LOGIN PASSWORD 'pw'")
    conn = psycopg.connect(f"postgresql://snap_user:pw@127.0.0.1:{pg.sandbox.port}/{db}", autocommit=True)
    yield conn
    conn.close()


def test_read_time_needs_superuser(plain_role: psycopg.Connection) -> None:
    with pytest.raises(UsageError, match="needs a superuser: SET yb_read_time is superuser-only"):
        Snapshot(plain_role, is_yugabyte=True, read_time_us=int(time.time() * 1e6))


def test_slot_snapshot_needs_superuser(plain_role: psycopg.Connection) -> None:
    with pytest.raises(UsageError, match="base backup in the replication slot's snapshot"):
        Snapshot(plain_role, is_yugabyte=True, imported="7319277973024817152")


def test_non_superuser_falls_back_to_exported_snapshot(plain_role: psycopg.Connection) -> None:
    # No yb_read_time for this role: an exported snapshot, which YugabyteDB serves when
    # ysql_enable_pg_export_snapshot is on (and PostgreSQL always).
    snap = Snapshot(plain_role, is_yugabyte=True)
    assert snap.name and snap.read_time_us is None and snap.hybrid_time is None
    assert snap.setup_statements()[1].startswith("SET TRANSACTION SNAPSHOT")


def test_read_time_beyond_history_retention_refused(pg: PgServer, db: str) -> None:
    with pg.connect(db) as conn:
        old = int((time.time() - 1000) * 1e6)
        with pytest.raises(UsageError, match="older than the cluster's history retention"):
            Snapshot(conn, is_yugabyte=True, read_time_us=old, history_retention_s=900)


def test_native_clone_refuses_databases_with_sequences(pg: PgServer, db: str) -> None:
    # YugabyteDB cannot clone databases that use sequences (issue #21467, instant-db-cloning.md).
    from ybrewind.ysql.clone import native_clone_blockers

    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE plain (id int PRIMARY KEY)")
        assert native_clone_blockers(conn) == []
        conn.execute("CREATE TABLE counted (id serial PRIMARY KEY)")
        blockers = native_clone_blockers(conn)
    assert len(blockers) == 1 and "1 sequence(s)" in blockers[0] and "#21467" in blockers[0]
