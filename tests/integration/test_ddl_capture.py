"""DDL capture on PostgreSQL: it must never abort the user's DDL, and a statement it could not
record becomes a gap that restores report (issue 9, finding 2).

The capture used txid_current(), which YugabyteDB does not have (docs: develop/change-data-capture/
using-logical-replication/_index.md, Limitations); an error in a ddl_command_end trigger aborts the
statement that fired it, so every DDL on the source failed. These run on PostgreSQL: the failing
path is produced with a constraint on the log table.
"""

from __future__ import annotations

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
from ybrewind.archive.repo import Repository
from ybrewind.ysql.archiver import CAPTURE_FAILED, DDL_CAPTURE_SQL
from ybrewind.ysql.restore import RestoreOptions, restore


def ddl_log(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute("SELECT tag, command FROM ybrewind.ddl_log ORDER BY id").fetchall()]


def test_failing_capture_does_not_abort_ddl(pg: PgServer, db: str) -> None:
    with pg.connect(db) as conn:
        conn.execute(DDL_CAPTURE_SQL.encode())
        conn.execute("ALTER TABLE ybrewind.ddl_log ADD CONSTRAINT refuse_tables CHECK (tag <> 'CREATE TABLE')")
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY)")  # the capture fails, the DDL does not
        assert conn.execute("SELECT to_regclass('public.kept') IS NOT NULL").fetchone() == (True,)
        assert any("could not record CREATE TABLE" in n for n in notices), notices
        failed = [cmd for tag, cmd in ddl_log(conn) if tag == CAPTURE_FAILED]
        assert len(failed) == 1 and failed[0].startswith("CREATE TABLE: ") and "refuse_tables" in failed[0]


def test_dropped_log_table_does_not_abort_ddl(pg: PgServer, db: str) -> None:
    with pg.connect(db) as conn:
        conn.execute(DDL_CAPTURE_SQL.encode())
        conn.execute("DROP TABLE ybrewind.ddl_log")
        conn.execute("CREATE TABLE still_works (id int)")
        assert conn.execute("SELECT to_regclass('public.still_works') IS NOT NULL").fetchone() == (True,)


def test_ddl_of_an_ordinary_role_is_captured(pg: PgServer, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pg.connect(db) as conn:
        conn.execute(DDL_CAPTURE_SQL.encode())
        conn.execute("DROP ROLE IF EXISTS ddl_user")
        conn.execute("CREATE ROLE ddl_user LOGIN PASSWORD 'pw'")
        conn.execute("GRANT CREATE ON SCHEMA public TO ddl_user")
    monkeypatch.setenv("PGPASSWORD", "pw")
    with psycopg.connect(f"postgresql://ddl_user@127.0.0.1:{pg.sandbox.port}/{db}", autocommit=True) as user:
        user.execute("CREATE TABLE owned_by_user (id int)")  # the log belongs to the superuser
    with pg.connect(db) as conn:
        assert ("CREATE TABLE", "CREATE TABLE owned_by_user (id int)") in ddl_log(conn)
        conn.execute("DROP TABLE owned_by_user")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM ddl_user")


def test_repeated_statement_in_one_transaction_logged_each_time(pg: PgServer, db: str) -> None:
    with pg.connect(db) as conn:
        conn.execute(DDL_CAPTURE_SQL.encode())
    with psycopg.connect(pg.url(db)) as conn:  # one transaction, one statement per message
        conn.execute("CREATE TABLE again (id int)")
        conn.execute("DROP TABLE again")
        conn.execute("CREATE TABLE again (id int)")
        conn.execute("ALTER TABLE again ADD COLUMN v text; ALTER TABLE again ADD COLUMN w text")
    with pg.connect(db) as conn:
        tags = [tag for tag, _ in ddl_log(conn)]
    # The second CREATE is a statement of its own (the xid-based key dropped it); a multi-statement
    # message is one entry, replayed once.
    assert tags == ["CREATE TABLE", "DROP TABLE", "CREATE TABLE", "ALTER TABLE"], tags


def test_uncaptured_ddl_is_a_gap_the_restore_reports(pg: PgServer, db: str, tmp_path: Path) -> None:
    repo = Repository.open(str(tmp_path / "repo"))
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")):
        wait_until_started(repo)
        with pg.connect(db) as conn:
            conn.execute("CREATE TABLE u (id int PRIMARY KEY)")
            # Not DDL (it would be captured and replayed): the next log id collides with the last
            # entry, so recording the next statement fails and its marker takes the following id.
            conn.execute("SELECT setval('ybrewind.ddl_log_id_seq', (SELECT max(id) FROM ybrewind.ddl_log), false)")
            conn.execute("CREATE INDEX t_v ON t (v)")
            conn.execute("INSERT INTO t VALUES (1, 'after the gap')")
            wait_for_commit(repo, last_commit_us(conn))
    target = pg.create_database("gap")
    try:
        result = restore(repo, pg.endpoint(target), RestoreOptions())
        assert len(result.gaps) == 1 and "could not be recorded" in result.gaps[0], result.gaps
        with pg.connect(target) as conn:
            assert conn.execute("SELECT v FROM t").fetchall() == [("after the gap",)]
    finally:
        pg.drop_database(target)
        with pg.connect(db) as conn:
            drop_slot(conn, f"s_{db}")


def test_base_backup_keeps_the_time_it_is_given(pg: PgServer, db: str, tmp_path: Path) -> None:
    """YugabyteDB passes the slot snapshot's hybrid time (µs); the local clock is only the fallback
    (issue 9, finding 4: a base must never be picked for a target time it is newer than)."""
    from tests.support.archive import fast_options
    from ybrewind.progress import Progress
    from ybrewind.ysql.archiver import take_base_backup

    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    repo = Repository.open(str(tmp_path / "repo"))
    exact_us = 1_700_000_000_123_456
    take_base_backup(pg.endpoint(db), repo, None, 0x20, fast_options("s"), Progress(), "s", exact_us)
    [base] = repo.base_backups()
    assert base.time_us == exact_us and base.lsn == 0x20
