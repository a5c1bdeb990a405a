"""Replay exactness under the target's constraints and session settings (issue 15).

Each test archives a small workload from a real PostgreSQL, restores it with ybrewind and compares
the copy with the source: unique and exclusion constraints other than the key (immediate and
deferrable) crossed by one transaction, rows matched by value (REPLICA IDENTITY FULL) when the
target's session settings differ from the source's, and a restore SIGKILLed midway and re-run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import PgServer
from tests.integration.test_restore import kill_midway_then_finish, restore_argv, restored_state, snapshot
from tests.support.archive import (
    drop_slot,
    fast_options,
    last_commit_us,
    running_archiver,
    wait_for_commit,
    wait_until_started,
)
from ybrewind.archive.repo import Repository
from ybrewind.errors import YbrewindError
from ybrewind.ysql.apply import Applier, NetBatch
from ybrewind.ysql.restore import RestoreOptions, restore

# ~10 kB of incompressible text: stored out of line, so an UPDATE that leaves it alone sends it as
# "unchanged TOAST" (a partial row image only the target can complete)
TOASTED = "(SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i)"

DOCS = f"""
CREATE TABLE docs (id int PRIMARY KEY, slug text UNIQUE, body text);
INSERT INTO docs SELECT g, 'doc-' || g, {TOASTED} FROM generate_series(1, 8) g;
"""


def archive(pg: PgServer, db: str, repo: Repository, schema: str, transactions: list[list[str]]) -> dict:
    """Create ``schema``, archive ``transactions`` (each a list of statements), return the final state."""
    with pg.connect(db) as conn:
        conn.execute(schema.encode())
    with running_archiver(pg.endpoint(db), repo, fast_options(f"s_{db}")), pg.connect(db) as conn:
        wait_until_started(repo)
        for statements in transactions:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement.encode())
        expected = snapshot(conn)
        wait_for_commit(repo, last_commit_us(conn))
    with pg.connect(db) as conn:
        drop_slot(conn, f"s_{db}")
    return expected


def restore_into_new(pg: PgServer, repo: Repository, **options: int) -> dict:
    target = pg.create_database("restored")
    try:
        restore(repo, pg.endpoint(target), RestoreOptions(**options))
        return restored_state(pg, target)
    finally:
        pg.drop_database(target)


def test_unique_value_moved_between_rows_with_toasted_body(pg: PgServer, db: str, tmp_path: Path) -> None:
    """The issue's case: a UNIQUE slug moved from a row whose TOASTed body is unchanged to a new row,
    and slugs swapped through a temporary value, inside single transactions."""
    repo = Repository.open(str(tmp_path / "repo"))
    expected = archive(
        pg,
        db,
        repo,
        DOCS,
        [
            ["UPDATE docs SET slug = 'doc-1-old' WHERE id = 1", "INSERT INTO docs VALUES (9, 'doc-1', 'new')"],
            [
                "UPDATE docs SET slug = 'tmp' WHERE id = 2",
                "UPDATE docs SET slug = 'doc-2' WHERE id = 3",
                "UPDATE docs SET slug = 'doc-3' WHERE id = 2",
            ],
            # the same moves spread over several transactions of one replay batch
            ["UPDATE docs SET slug = 'doc-4-old' WHERE id = 4"],
            ["INSERT INTO docs VALUES (10, 'doc-4', 'x')"],
            ["DELETE FROM docs WHERE id = 5", "UPDATE docs SET slug = 'doc-5' WHERE id = 6"],
            [f"UPDATE docs SET body = {TOASTED.replace('g::text', '77::text')} WHERE id = 7"],
        ],
    )
    assert restore_into_new(pg, repo) == expected


def test_deferrable_unique_and_exclusion_constraints(pg: PgServer, db: str, tmp_path: Path) -> None:
    """A deferrable UNIQUE shifted by one multi-row UPDATE (legal: checked at statement end), an
    exclusion constraint and a unique expression index crossed within transactions."""
    repo = Repository.open(str(tmp_path / "repo"))
    schema = f"""
    CREATE TABLE pos (id int PRIMARY KEY, n int UNIQUE DEFERRABLE INITIALLY IMMEDIATE, body text);
    INSERT INTO pos SELECT g, g, {TOASTED} FROM generate_series(1, 20) g;
    CREATE TABLE booking (id int PRIMARY KEY, room int, during int4range, note text,
                          EXCLUDE USING gist (during WITH &&));
    INSERT INTO booking SELECT g, 1, int4range(g * 10, g * 10 + 5), {TOASTED} FROM generate_series(1, 5) g;
    CREATE TABLE login (id int PRIMARY KEY, email text, body text);
    CREATE UNIQUE INDEX login_email ON login (lower(email));
    INSERT INTO login SELECT g, 'U' || g || '@x', {TOASTED} FROM generate_series(1, 5) g;
    """
    expected = archive(
        pg,
        db,
        repo,
        schema,
        [
            ["UPDATE pos SET n = n + 1"],
            ["UPDATE pos SET n = 100 - n WHERE id <= 10"],
            [
                "UPDATE booking SET during = int4range(1000, 1005) WHERE id = 1",
                "INSERT INTO booking VALUES (6, 1, int4range(11, 14), 'n')",
            ],
            ["UPDATE login SET email = 'old1@x' WHERE id = 1", "INSERT INTO login VALUES (6, 'u1@X', 'n')"],
        ],
    )
    assert restore_into_new(pg, repo) == expected


def test_full_identity_rows_matched_whatever_the_session_settings(pg: PgServer, db: str, tmp_path: Path) -> None:
    """REPLICA IDENTITY FULL rows holding values whose text form depends on the session (time zone,
    date and interval styles, float digits, bytea output) are matched on a target whose defaults
    differ from the source's (and the source's own differ too: float digits, time zone, bytea)."""
    repo = Repository.open(str(tmp_path / "repo"))
    with pg.connect() as conn:  # the source's sessions print values otherwise than the defaults
        conn.execute(
            sql.SQL(
                "ALTER DATABASE {} SET timezone = 'America/New_York'; ALTER DATABASE {} SET extra_float_digits = 0; "
                "ALTER DATABASE {} SET bytea_output = 'escape'"
            ).format(*[sql.Identifier(db)] * 3)
        )
    schema = """
    CREATE TABLE ev (at timestamptz, day date, took interval, ratio float8, raw bytea, note text);
    ALTER TABLE ev REPLICA IDENTITY FULL;
    """
    rows = """INSERT INTO ev VALUES
        ('2024-01-02 03:04:05.678901+00', '2024-01-02', '1 day -2 hours 3.5 seconds', 0.1 + 0.2, '\\x00ff', 'a'),
        ('2024-03-04 05:06:07+00', '2024-12-03', '-1 year 2 mons', 1e-300, '\\x', 'b'),
        ('2024-05-06 07:08:09+00', '2024-02-01', '3 days', 2.0 / 3, 'x', 'c')"""
    expected = archive(
        pg,
        db,
        repo,
        schema,
        [
            [rows],
            ["UPDATE ev SET note = 'a2' WHERE note = 'a'"],
            ["DELETE FROM ev WHERE note = 'b'"],
            ["UPDATE ev SET note = 'c2', ratio = ratio * 3 WHERE note = 'c'"],
            ["INSERT INTO ev VALUES ('2024-07-08 09:10:11+05:30', '2024-01-13', '1 mon', 1.0 / 7, 'y', 'd')"],
            ["UPDATE ev SET note = 'd2' WHERE note = 'd'"],
        ],
    )
    target = pg.create_database("restored")
    try:
        with pg.connect() as conn:
            conn.execute(
                sql.SQL(
                    "ALTER DATABASE {} SET timezone = 'Asia/Kolkata'; ALTER DATABASE {} SET datestyle = 'German, YMD'; "
                    "ALTER DATABASE {} SET intervalstyle = 'iso_8601'; ALTER DATABASE {} SET bytea_output = 'escape'; "
                    "ALTER DATABASE {} SET extra_float_digits = -3"
                ).format(*[sql.Identifier(target)] * 5)
            )
        restore(repo, pg.endpoint(target), RestoreOptions())
        assert restored_state(pg, target) == expected
    finally:
        pg.drop_database(target)


def test_update_or_delete_that_matches_no_row_is_an_error(pg: PgServer, db: str) -> None:
    """A change whose row is not in the target means the copy already differs from the source:
    replay stops with one clear error (never a silent success, never a second 'error ignored')."""
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE f (a int, b text); ALTER TABLE f REPLICA IDENTITY FULL")
        conn.execute("CREATE TABLE k (id int PRIMARY KEY, u int UNIQUE, b text)")
        conn.execute("CREATE TABLE p (id int PRIMARY KEY, b text)")
        conn.execute("INSERT INTO f VALUES (1, 'x'); INSERT INTO k VALUES (1, 1, 'x'); INSERT INTO p VALUES (1, 'x')")
        rel_f = [
            "R",
            1,
            {
                "schema": "public",
                "name": "f",
                "columns": [["a", 23, -1, False], ["b", 25, -1, False]],
                "replica_identity": "f",
            },
        ]
        rel_k = [
            "R",
            2,
            {
                "schema": "public",
                "name": "k",
                "columns": [["id", 23, -1, True], ["u", 23, -1, False], ["b", 25, -1, False]],
                "replica_identity": "d",
            },
        ]
        rel_p = ["R", 3, {"schema": "public", "name": "p", "columns": [["id", 23, -1, True], ["b", 25, -1, False]]}]
        cases = [
            ["U", 1, ["2", "x"], ["2", "y"]],  # FULL identity, no such row
            ["D", 1, ["1", "nope"]],
            ["U", 2, None, ["7", "7", "y"]],  # keyed, statement-order table (secondary unique)
            ["D", 2, ["7", None, None]],
            ["U", 3, None, ["7", "y"]],  # keyed, net-effect table
            ["D", 3, ["7", None]],
        ]
        for case in cases:
            net = NetBatch(Applier(conn))
            with pytest.raises(YbrewindError, match=r"no row|matched 0 rows"), conn.transaction():
                net.add(rel_f)
                net.add(rel_k)
                net.add(rel_p)
                net.add(case)
                net.flush()
        assert conn.execute("SELECT count(*) FROM f WHERE a = 1 AND b = 'x'").fetchone() == (1,)


def test_failure_in_a_pipelined_run_is_one_error(pg: PgServer, db: str, caplog: pytest.LogCaptureFixture) -> None:
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE k (id int PRIMARY KEY, u int UNIQUE, b text)")
        conn.execute("INSERT INTO k VALUES (1, 1, 'x'), (2, 2, 'y')")
        net = NetBatch(Applier(conn))
        caplog.set_level(logging.WARNING, logger="psycopg")
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            net.add(
                [
                    "R",
                    2,
                    {
                        "schema": "public",
                        "name": "k",
                        "columns": [["id", 23, -1, True], ["u", 23, -1, False], ["b", 25, -1, False]],
                    },
                ]
            )
            net.add(["U", 2, None, ["1", "5", "x"]])
            net.add(["U", 2, None, ["2", "5", "y"]])  # violates k_u_key
            net.add(["U", 2, None, ["1", "6", "x"]])
            net.flush()
        assert [r.getMessage() for r in caplog.records if "error ignored" in r.getMessage()] == []


def test_restore_killed_midway_over_unique_moves_resumes(pg: PgServer, db: str, tmp_path: Path) -> None:
    """SIGKILL the restore (a subprocess) twice during replay of unique moves, re-run it: same state."""
    repo_dir = tmp_path / "repo"
    repo = Repository.open(str(repo_dir))
    transactions = []
    for i in range(3000):  # a UNIQUE slug passed back and forth between a TOASTed row and a partner
        doc = 1 + i % 8
        holder, taker = (doc, 100 + doc) if (i // 8) % 2 == 0 else (100 + doc, doc)
        transactions.append(
            [
                f"UPDATE docs SET slug = 'tmp-{i}' WHERE id = {holder}",
                f"UPDATE docs SET slug = 'doc-{doc}' WHERE id = {taker}",
                f"INSERT INTO docs VALUES ({1000 + i}, 'n-{i}', 'b')",
            ]
        )
    schema = DOCS + "INSERT INTO docs SELECT 100 + g, 'p-' || g, 'small' FROM generate_series(1, 8) g;"
    expected = archive(pg, db, repo, schema, transactions)
    target = pg.create_database("resumed")
    argv = restore_argv(repo_dir, pg.url(target), batch_changes=40)
    try:
        kill_midway_then_finish(pg, target, argv, (3, 10))
        assert restored_state(pg, target) == expected
    finally:
        pg.drop_database(target)
