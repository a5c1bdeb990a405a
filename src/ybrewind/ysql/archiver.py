"""Continuous archiving of every committed YSQL/PostgreSQL change into a repository.

One process per repository (a lock enforces it). On first start it installs DDL capture and a
publication, creates the logical slot with an exported snapshot and takes the first base backup
inside that snapshot, so base backup and change log meet at the slot's consistent point. It then
streams pgoutput, groups complete transactions into segments (rotated by size and age), stores
each segment durably and only then reports its position to the server as flushed: the slot never
advances past what the repository holds. Restarted (even after SIGKILL), it resumes from the
slot and drops what the repository already has (idempotent by commit LSN).
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ybrewind.archive import format as fmt
from ybrewind.archive.repo import Repository
from ybrewind.archive.retention import RetentionPolicy, prune
from ybrewind.archive.schedule import next_base_due
from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError, UsageError
from ybrewind.progress import Progress
from ybrewind.ysql import pgoutput as po
from ybrewind.ysql.catalog import TRUNCATE_FUNCTION, Filters
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.stream import (
    CreatedSlot,
    Keepalive,
    ReplicationConnection,
    XLogData,
    hybrid_time_to_unix_us,
    is_hybrid_time_snapshot,
    translate,
)

DDL_SCHEMA = "ybrewind"
DDL_TABLE = "ddl_log"
# Tag of the DDL log entry left when capturing a statement failed (see log_ddl below).
CAPTURE_FAILED = "ybrewind:capture-failed"
DDL_CAPTURE_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {DDL_SCHEMA};
CREATE TABLE IF NOT EXISTS {DDL_SCHEMA}.{DDL_TABLE} (
    id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), pid int, statement_at timestamptz,
    tag text NOT NULL, command text NOT NULL, search_path text NOT NULL
);
ALTER TABLE {DDL_SCHEMA}.{DDL_TABLE} ADD COLUMN IF NOT EXISTS pid int;
ALTER TABLE {DDL_SCHEMA}.{DDL_TABLE} ADD COLUMN IF NOT EXISTS statement_at timestamptz;
ALTER TABLE {DDL_SCHEMA}.{DDL_TABLE} DROP COLUMN IF EXISTS xid;
-- YugabyteDB creates tables with ysql_yb_default_replica_identity (CHANGE unless set), which
-- pgoutput refuses (yb_virtual_wal_client.c, ValidateReplicaIdentities); a no-op on PostgreSQL.
ALTER TABLE {DDL_SCHEMA}.{DDL_TABLE} REPLICA IDENTITY DEFAULT;
-- SECURITY DEFINER: the log belongs to the superuser who installed it, and DDL run by any other role
-- must be recorded too. No SET search_path: the entry records the caller's; every name is qualified.
CREATE OR REPLACE FUNCTION {DDL_SCHEMA}.log_ddl() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    -- One entry per top-level statement: a statement fires ddl_command_end once per command it runs
    -- (and sql_drop too), but is replayed once. The statement is told apart by its backend and start
    -- time: txid_current() does not exist on YugabyteDB (docs: develop/change-data-capture/
    -- using-logical-replication/_index.md, Limitations).
    IF EXISTS (SELECT 1 FROM {DDL_SCHEMA}.{DDL_TABLE} WHERE pid = pg_catalog.pg_backend_pid()
               AND statement_at = pg_catalog.statement_timestamp() AND command = pg_catalog.current_query()) THEN
        RETURN;
    END IF;
    INSERT INTO {DDL_SCHEMA}.{DDL_TABLE} (pid, statement_at, tag, command, search_path)
    VALUES (pg_catalog.pg_backend_pid(), pg_catalog.statement_timestamp(), tg_tag, pg_catalog.current_query(),
            pg_catalog.current_setting('search_path'));
EXCEPTION WHEN OTHERS THEN
    -- An error here would abort the user's DDL. Let the DDL run, and leave a marker that the archive
    -- turns into a gap every restore past this point reports.
    BEGIN
        INSERT INTO {DDL_SCHEMA}.{DDL_TABLE} (pid, statement_at, tag, command, search_path)
        VALUES (pg_catalog.pg_backend_pid(), pg_catalog.statement_timestamp(), '{CAPTURE_FAILED}',
                tg_tag || ': ' || SQLERRM, '');
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RAISE WARNING 'ybrewind could not record % (%): restores past this point will lack it', tg_tag, SQLERRM;
END $$;
REVOKE ALL ON FUNCTION {DDL_SCHEMA}.log_ddl() FROM PUBLIC;
DROP EVENT TRIGGER IF EXISTS ybrewind_ddl_end;
CREATE EVENT TRIGGER ybrewind_ddl_end ON ddl_command_end EXECUTE FUNCTION {DDL_SCHEMA}.log_ddl();
DROP EVENT TRIGGER IF EXISTS ybrewind_sql_drop;
CREATE EVENT TRIGGER ybrewind_sql_drop ON sql_drop EXECUTE FUNCTION {DDL_SCHEMA}.log_ddl();
"""

# YugabyteDB does not stream TRUNCATE (docs: develop/change-data-capture/using-logical-replication/
# _index.md, Limitations: TRUNCATE TABLE after the slot is created is not supported; refused unless
# the yb-master flag enable_truncate_cdcsdk_table is true, docs reference/configuration/yb-master.md
# and src/yb/integration-tests/cdcsdk_ysql-test.cc TestTruncateTable, where the rows written after
# it are streamed), and ddl_command_end event triggers do not fire for it. A statement-level AFTER
# TRUNCATE trigger on every table (YugabyteDB runs them: src/postgres/src/test/regress/sql/
# yb.port.truncate.sql and its expected output, "Test ON TRUNCATE triggers") records it in the
# streamed DDL log, in the user's transaction, where a restore replays it. The entry's command is
# the JSON array [schema, table].
TRUNCATE_TAG = "TRUNCATE"
TRUNCATE_TRIGGER = "ybrewind_truncate"
CAPTURE_TRUNCATES = f"SELECT {DDL_SCHEMA}.capture_truncates()"
YB_TRUNCATE_CAPTURE_SQL = f"""
CREATE OR REPLACE FUNCTION {TRUNCATE_FUNCTION} RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO {DDL_SCHEMA}.{DDL_TABLE} (pid, statement_at, tag, command, search_path)
    VALUES (pg_catalog.pg_backend_pid(), pg_catalog.statement_timestamp(), '{TRUNCATE_TAG}',
            pg_catalog.json_build_array(tg_table_schema, tg_table_name)::text, '');
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    BEGIN  -- as in log_ddl: never fail the user's statement, leave a marker instead
        INSERT INTO {DDL_SCHEMA}.{DDL_TABLE} (pid, statement_at, tag, command, search_path)
        VALUES (pg_catalog.pg_backend_pid(), pg_catalog.statement_timestamp(), '{CAPTURE_FAILED}',
                'TRUNCATE ' || tg_table_schema || '.' || tg_table_name || ': ' || SQLERRM, '');
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RAISE WARNING 'ybrewind could not record TRUNCATE (%): restores past this point will lack it', SQLERRM;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION {TRUNCATE_FUNCTION} FROM PUBLIC;
-- Puts the trigger on every table that lacks it; run at install, on resume and after each CREATE TABLE.
CREATE OR REPLACE FUNCTION {DDL_SCHEMA}.capture_truncates() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
    added integer := 0;
BEGIN
    FOR rel IN
        SELECT c.oid::regclass FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname <> '{DDL_SCHEMA}'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                          WHERE t.tgrelid = c.oid AND t.tgname = '{TRUNCATE_TRIGGER}')
    LOOP
        EXECUTE pg_catalog.format('CREATE TRIGGER {TRUNCATE_TRIGGER} AFTER TRUNCATE ON %s '
                                  'FOR EACH STATEMENT EXECUTE FUNCTION {TRUNCATE_FUNCTION}', rel);
        added := added + 1;
    END LOOP;
    RETURN added;
END $$;
"""

# YugabyteDB: replica identities in pg_class.relreplident. 'c' is YB's CHANGE, its default for new
# tables, which pgoutput refuses ("replica identity CHANGE ... is not supported for output plugin
# pgoutput": ValidateReplicaIdentities in src/postgres/src/backend/replication/logical/
# yb_virtual_wal_client.c). DEFAULT is the one the archive supports there: YB sends every column of
# the new row and no before image (TestPgReplicationSlot.java), and as every streamed YB table has a
# primary key (below) the key locates the row. FULL is not used on YB: its before image is all NULL
# for rows written earlier in the same transaction (same test), so it cannot locate a row.
YB_SUPPORTED_IDENTITY = "d"
# See Archiver._idle_at: how far before the server's send time the archive is known complete.
COMPLETE_MARGIN_US = 1_000_000
# A failed scheduled base backup is tried again this soon (or at the next --base-every if sooner).
BASE_RETRY_SECONDS = 300.0
YB_IDENTITY_NAMES = {"c": "CHANGE", "d": "DEFAULT", "f": "FULL", "n": "NOTHING", "i": "INDEX"}


def yb_gaps_for_ddl(tag: str, command: str) -> list[list[str]]:
    """What a YugabyteDB change stream misses around one captured DDL statement, as GAP records
    ``[kind, detail]`` the archive stores next to the DDL and restores report.

    - a table created after the slot is streamed only once the publication's table list is
      refreshed, every cdcsdk_publication_list_refresh_interval_secs (default 900 s): rows written
      before that are missing (docs: develop/change-data-capture/using-logical-replication/
      advanced-topic.md, "YugabyteDB semantics"; yb_virtual_wal_client.c, YBCReadRecord
      needs_publication_table_list_refresh);
    - DROP TABLE and table rewrites such as ALTER ... TYPE are not supported by CDC once a slot
      exists (same docs, _index.md, Limitations).
    """
    words = " ".join(command.split()).upper()
    if tag in ("CREATE TABLE", "CREATE TABLE AS", "SELECT INTO"):
        return [
            [
                "new-table",
                f"{tag} after the slot was created ({_short(command)}): rows written before "
                "the next publication refresh (cdcsdk_publication_list_refresh_interval_secs) are not archived",
            ]
        ]
    if tag == "DROP TABLE":
        return [
            ["unsupported-ddl", f"DROP TABLE is not supported by YugabyteDB CDC once a slot exists ({_short(command)})"]
        ]
    if tag == "ALTER TABLE" and re.search(r"\bALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b", words):
        return [
            [
                "unsupported-ddl",
                f"ALTER TABLE rewriting a column type is not supported by YugabyteDB CDC ({_short(command)})",
            ]
        ]
    return []


def _short(command: str, limit: int = 80) -> str:
    one_line = " ".join(command.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


@dataclass
class ArchiveOptions:
    slot: str = "ybrewind"
    publication: str = "ybrewind"
    segment_bytes: int = 16 << 20
    segment_seconds: float = 60.0
    # Idle: how often a WAL message of ours moves the slot, and the confirmed-complete time, forward.
    heartbeat_seconds: float = 3.0
    status_seconds: float = 5.0
    replica_identity_full: bool = False
    base_jobs: int = 2
    base_compress: bool = True
    base_every_seconds: float | None = None  # scheduled base backups (--base-every)
    base_at_us: int | None = None  # ...anchored at this time of day, µs after midnight UTC (--base-at)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)  # pruned after each scheduled base


@dataclass
class ArchiveResult:
    repository: str
    transactions: int = 0
    changes: int = 0
    segments: int = 0
    flushed_lsn: str = ""
    last_commit: str | None = None
    seconds: float = 0.0
    base_backup: str | None = None
    scheduled_bases: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def source_identity(conn: psycopg.Connection, slot: str | None = None) -> dict[str, Any]:
    """What identifies the archived database: on PostgreSQL the cluster's system identifier; on
    YugabyteDB, which has neither pg_control_system() nor IDENTIFY_SYSTEM (docs: develop/
    change-data-capture/using-logical-replication/_index.md, Limitations), the UUID of the
    repository's CDC stream, pg_replication_slots.yb_stream_id (docs: .../monitor.md), which the
    cluster generates and no other cluster has. None until that slot exists."""
    version = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
    is_yb = "-YB-" in version
    system_id: str | None
    if is_yb:
        row = conn.execute(
            "SELECT yb_stream_id::text FROM pg_replication_slots WHERE slot_name = %s", [slot or ""]
        ).fetchone()
        system_id = f"yb-stream:{row[0]}" if row and row[0] else None
    else:
        system_id = str(conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0])  # type: ignore[index]
    return {
        "system_identifier": system_id,
        "database": conn.info.dbname,
        "dialect": "yugabyte" if is_yb else "postgres",
        "server_version": version,
        "server_version_num": conn.info.server_version,
    }


def check_source(
    conn: psycopg.Connection, endpoint: PgEndpoint, repo_slot: str | None = None, progress: Progress | None = None
) -> None:
    """The checks of ``ybrewind check``: refuse a source that cannot be archived, with the reason in
    one line; pass the others' warnings on. ``repo_slot``: the slot of the repository resumed."""
    from ybrewind.check import FAIL, WARN, ysql_checks

    checks = ysql_checks(conn, repo_slot=repo_slot)
    for c in checks:
        if c.status == FAIL and "archive" in c.needed_by:
            raise UsageError(f"{endpoint.display()}: {c.detail}")
    for c in checks:
        if c.status == WARN and progress is not None and c.name != "replica_identity":  # _install names each table
            progress.warn(c.detail)


def tables_without_key(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT n.nspname, c.relname, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s) "
            "AND n.nspname NOT LIKE 'pg\\_%%' AND c.relreplident IN ('d', 'n') "
            "AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
            "ORDER BY 1, 2",
            [DDL_SCHEMA],
        ).fetchall()
    ]


@dataclass
class _Open:
    """The transaction being received (between Begin and Commit)."""

    xid: int
    changes: list[list[Any]] = field(default_factory=list)
    size: int = 0
    commit_us: int = 0  # from Begin


def _relation_record(rel: po.Relation) -> dict[str, Any]:
    return {
        "schema": rel.namespace,
        "name": rel.name,
        "replica_identity": rel.replica_identity,
        "columns": [[c.name, c.type_oid, c.typmod, c.is_key] for c in rel.columns],
    }


def _approx_size(change: list[Any]) -> int:
    """Bytes a change roughly takes in a segment, for size-based rotation."""
    size = 32
    for part in change[2:]:
        if isinstance(part, list):
            size += sum(len(v) + 3 for v in part if isinstance(v, str))
    return size


def _tuple(values: list[po.Value] | None) -> list[Any] | None:
    if values is None:
        return None
    return [fmt.UNCHANGED_TOAST if v is po.UNCHANGED else v for v in values]


class Archiver:
    def __init__(
        self,
        source: PgEndpoint,
        repo: Repository,
        options: ArchiveOptions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.repo = repo
        self.opt = options or ArchiveOptions()
        self.progress = progress or Progress()
        self.result = ArchiveResult(repo.url)
        self.owner = f"archiver {socket.gethostname()}:{os.getpid()}"
        self.relations: dict[int, po.Relation] = {}
        self.pending: list[fmt.Transaction] = []
        self.pending_relations: dict[int, dict[str, Any]] = {}
        self.pending_bytes = 0
        self.pending_since = 0.0
        self.open: _Open | None = None
        self.last_archived_lsn = 0  # commit LSN of the newest archived transaction
        self.flushed = 0  # position reported to the server as durable
        self.received = 0
        self.idle_candidate = 0  # a position with nothing before it left to archive
        self.last_commit_us: int | None = None
        self.unstreamed: list[str] = []  # YugabyteDB tables the stream leaves out
        self.yugabyte = False
        self.base_done_us = 0  # when the first base backup was stored (RepositoryInfo.created_at)
        self.truncate_capture_due = False  # YugabyteDB: a table was created, give it the TRUNCATE trigger
        # Scheduled base backups (--base-every): one at a time, in a thread beside the stream.
        self.base_thread: threading.Thread | None = None
        self.base_outcome: dict[str, Any] = {}
        self.next_base_us: int | None = None
        self.last_base_us: int | None = None
        self.last_base_error: str | None = None
        # Every commit up to this time (the server's clock) is archived: the archiver confirmed
        # a stream position sent at that time with nothing open or pending before it.
        self.complete_us: int | None = None
        self.idle_candidate_us: int | None = None
        self.confirm_now = False

    # -- setup --------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> ArchiveResult:
        started = time.monotonic()
        conn = self.source.connect()
        try:
            try:
                info = self.repo.info()
                check_source(conn, self.source, info.slot if info else None, self.progress)
                identity = source_identity(conn, info.slot if info else None)
            except psycopg.Error as e:
                raise translate(e, f"checking {self.source.display()}") from None
            if info is not None:
                self._check_same_source(info, identity)
            with self.repo.lock(self.owner) as lock:
                self.lock = lock
                if info is None:
                    info = self._first_start(conn, identity)
                    start_lsn = self.flushed
                else:
                    start_lsn = self._resume(conn, info)
                self._stream(conn, info, start_lsn, stop)
        finally:
            conn.close()
        self.result.seconds = round(time.monotonic() - started, 3)
        self.result.flushed_lsn = po.lsn_to_str(self.flushed)
        return self.result

    def _check_same_source(self, info: fmt.RepositoryInfo, identity: dict[str, Any]) -> None:
        mine = (info.source.get("system_identifier"), info.source.get("database"))
        theirs = (identity["system_identifier"], identity["database"])
        if (identity["dialect"] == "yugabyte" and theirs[0] is None) or mine[0] == "yugabyte":
            # YugabyteDB without the repository's slot (resuming reports it) or a repository from
            # before the stream id was recorded: only the database can be compared.
            mine, theirs = (None, mine[1]), (None, theirs[1])
        if mine != theirs:
            raise UsageError(
                f"repository {self.repo.url} archives database {mine[1]!r} of system {mine[0]}, "
                f"not {theirs[1]!r} of system {theirs[0]}"
            )

    def _first_start(self, conn: psycopg.Connection, identity: dict[str, Any]) -> fmt.RepositoryInfo:
        yugabyte = identity["dialect"] == "yugabyte"
        ddl_capture = self._install(conn, yugabyte)
        repl = ReplicationConnection(self.source)
        try:
            exists = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [self.opt.slot]).fetchone()
            if exists:
                # A slot without a repository: a first start that died before its base backup was stored.
                conn.execute("SELECT pg_drop_replication_slot(%s)", [self.opt.slot])
            if yugabyte:
                slot = repl.create_slot_yugabyte(self.opt.slot)
                lsn, time_us, stream_id = yb_slot_start(conn, slot)
                identity = identity | {"system_identifier": f"yb-stream:{stream_id}"}
            else:
                slot = repl.create_slot(self.opt.slot, snapshot="EXPORT_SNAPSHOT")
                lsn, time_us = slot.consistent_point, None
            self.progress.log(
                f"created slot {slot.name} at {po.lsn_to_str(lsn)}; taking the first base backup in its snapshot"
            )
            self.result.base_backup = take_base_backup(
                self.source, self.repo, slot.snapshot, lsn, self.opt, self.progress, slot.name, time_us
            ).name
        finally:
            repl.close()  # ends the exported snapshot; the slot stays
        source = identity | {"endpoint": self.source.display()}
        if self.unstreamed:
            source["unstreamed_tables"] = self.unstreamed
        info = fmt.RepositoryInfo(
            source, self.opt.slot, self.opt.publication, datetime.now(UTC).isoformat(), ddl_capture
        )
        self.repo.write_info(info)
        self.flushed = lsn
        return info

    def _install(self, conn: psycopg.Connection, yugabyte: bool = False) -> str:
        """Publication, DDL capture, replica identity: whatever the role may do."""
        if yugabyte:
            self._yb_replica_identities(conn)
        else:
            for schema, name, _ in tables_without_key(conn):
                if self.opt.replica_identity_full:
                    conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(schema, name)))
                else:
                    self._warn(
                        f"table {schema}.{name} has no primary key or replica identity: with the archive's "
                        "publication, UPDATE and DELETE on it fail on the source (use --replica-identity-full)"
                    )
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]  # type: ignore[index]
        ddl_capture = "none"
        if superuser:
            conn.execute(DDL_CAPTURE_SQL.encode())
            ddl_capture = "event-trigger"
            if yugabyte:
                conn.execute(YB_TRUNCATE_CAPTURE_SQL.encode())
                conn.execute(CAPTURE_TRUNCATES)
                ddl_capture = "event-trigger+truncate-trigger"
        else:
            self._warn(
                "not a superuser: DDL is not captured (event triggers need a superuser); "
                + ("nor is TRUNCATE, which YugabyteDB does not stream; " if yugabyte else "")
                + "restores will replay data changes only"
            )
        if not conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [self.opt.publication]).fetchone():
            try:
                conn.execute(
                    sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(self.opt.publication))
                )
            except psycopg.Error as e:
                raise translate(e, f"creating publication {self.opt.publication}") from None
        return ddl_capture

    def _yb_replica_identities(self, conn: psycopg.Connection) -> None:
        """Before the slot exists: it freezes each table's replica identity at its creation (docs:
        develop/change-data-capture/using-logical-replication/key-concepts.md, Replica identity), and
        pgoutput refuses YB's default CHANGE (yb_virtual_wal_client.c, ValidateReplicaIdentities)."""
        rows = conn.execute(
            "SELECT n.nspname, c.relname, c.relreplident, "
            "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s) AND n.nspname NOT LIKE 'pg\\_%%' "
            "ORDER BY 1, 2",
            [DDL_SCHEMA],
        ).fetchall()
        for schema, name, ident, has_pk in rows:
            if not has_pk:
                # Left out of the stream (YBCRemoveTablesWithoutPrimaryKeyIfNotAllowedBySlot,
                # yb_virtual_wal_client.c): the base backup has its rows, the archive none of its changes.
                self.unstreamed.append(f"{schema}.{name}")
                self._warn(
                    f"table {schema}.{name} has no primary key: YugabyteDB does not stream its changes; "
                    "restores will report them missing"
                )
            elif ident != YB_SUPPORTED_IDENTITY:
                try:
                    conn.execute(
                        sql.SQL("ALTER TABLE {} REPLICA IDENTITY DEFAULT").format(sql.Identifier(schema, name))
                    )
                except psycopg.Error as e:
                    raise UsageError(
                        f"table {schema}.{name} has REPLICA IDENTITY {YB_IDENTITY_NAMES.get(ident, ident)}, which the "
                        f"archive cannot use on YugabyteDB, and setting DEFAULT failed: "
                        f"{translate(e, 'ALTER TABLE').args[0]} (run ALTER TABLE ... REPLICA IDENTITY DEFAULT as its owner)"
                    ) from None
                self.progress.log(f"{schema}.{name}: REPLICA IDENTITY {YB_IDENTITY_NAMES.get(ident, ident)} -> DEFAULT")

    def _resume(self, conn: psycopg.Connection, info: fmt.RepositoryInfo) -> int:
        segments = self.repo.segments()
        status = self.repo.status() or {}
        self.last_archived_lsn = segments[-1].last_lsn if segments else 0
        bases = self.repo.base_backups()
        archived_end = max([int(status.get("confirmed_lsn", 0))] + [b.lsn for b in bases if b.slot == info.slot])
        row = conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s AND database = current_database()",
            [info.slot],
        ).fetchone()
        last = f"LSN {po.lsn_to_str(self.last_archived_lsn)}" if segments else "its base backup"
        if row is None:
            raise UsageError(
                f"replication slot {info.slot} no longer exists on {self.source.display()}: the archive "
                f"ends at {last}; changes committed after that are lost. Start a new repository."
            )
        confirmed = po.str_to_lsn(row[0]) if row[0] else 0
        if confirmed > max(archived_end, self.last_archived_lsn):
            raise UsageError(
                f"replication slot {info.slot} is at {po.lsn_to_str(confirmed)}, beyond what {self.repo.url} holds "
                f"({po.lsn_to_str(max(archived_end, self.last_archived_lsn))}): it was advanced or recreated by "
                "someone else; the changes in between are missing. Start a new repository."
            )
        self.flushed = confirmed
        complete = status.get("complete_us")
        self.complete_us = complete if isinstance(complete, int) else None  # still true: the archive only grows
        return confirmed

    # -- streaming -------------------------------------------------------------------------------------
    def _stream(
        self, conn: psycopg.Connection, info: fmt.RepositoryInfo, start_lsn: int, stop: threading.Event
    ) -> None:
        repl = ReplicationConnection(self.source)
        self.stats_conn = conn
        try:
            self.yugabyte = info.source.get("dialect") == "yugabyte"
            self.base_done_us = int(datetime.fromisoformat(info.created_at).timestamp() * 1e6)
            if info.ddl_capture.endswith("truncate-trigger"):
                self._capture_new_tables()  # tables created while no archiver ran
            self._init_schedule(info)
            repl.start(info.slot, start_lsn, info.publication, conn.info.server_version)
            last_data = last_status = time.monotonic()
            heartbeats = True
            self._write_status(running=True)
            while not stop.is_set():
                msg = repl.read(timeout=0.5)
                now = time.monotonic()
                if isinstance(msg, XLogData):
                    last_data = now
                    self.received = max(self.received, msg.end_lsn)
                    self._handle(po.decode(msg.payload, yugabyte=self.yugabyte), msg)
                    if self.truncate_capture_due:
                        self._capture_new_tables()
                elif isinstance(msg, Keepalive):
                    self.received = max(self.received, msg.wal_end)
                    if self.open is None and not self.pending:
                        self._idle_at(msg.wal_end, msg.send_us)
                    if msg.reply_requested:
                        repl.send_status(self.received, self.flushed)
                if self.pending and (
                    self.pending_bytes >= self.opt.segment_bytes or now - self.pending_since >= self.opt.segment_seconds
                ):
                    self._flush_segment(repl)
                if heartbeats and now - last_data >= self.opt.heartbeat_seconds:
                    # Idle: a WAL record of our own moves the stream (and so the slot) forward.
                    try:
                        conn.execute("SELECT pg_logical_emit_message(false, 'ybrewind', 'heartbeat')")
                    except psycopg.Error:
                        heartbeats = False  # not available (YugabyteDB): keepalives alone advance the slot
                    last_data = now
                if now - last_status >= self.opt.status_seconds or self.confirm_now:
                    self._confirm_idle(repl)
                    last_status, self.confirm_now = now, False
                self._base_schedule(info)
            self._flush_segment(repl)
            self._confirm_idle(repl)
        except psycopg.Error as e:
            raise translate(e, f"archiving {self.source.display()}") from None
        finally:
            try:
                self._finish_base()
            finally:
                try:
                    self._write_status(running=False)
                finally:
                    repl.close()

    def _handle(self, m: po.Message, msg: XLogData) -> None:
        if isinstance(m, po.Begin):
            self.open = _Open(m.xid, commit_us=m.commit_time_us)
        elif isinstance(m, po.Commit):
            tx = self.open
            self.open = None
            if tx is None or m.commit_lsn <= self.last_archived_lsn:
                return  # already archived before a restart
            if not self.pending:
                self.pending_since = time.monotonic()
            self.pending.append(fmt.Transaction(tx.xid, m.commit_lsn, m.end_lsn, m.commit_time_us, tx.changes))
            self.pending_bytes += tx.size
            self.last_archived_lsn = m.commit_lsn
        elif isinstance(m, po.Relation):
            self.relations[m.relid] = m
            if self.open is not None and not (m.namespace == DDL_SCHEMA and m.name == DDL_TABLE):
                # Sent again after a schema change: later tuples of this relation have the new shape.
                self.open.changes.append(["R", m.relid, _relation_record(m)])
        elif isinstance(m, po.LogicalMessage):
            if not m.transactional and self.open is None and not self.pending:
                self._idle_at(msg.end_lsn, msg.send_us)
                self.confirm_now = True  # a heartbeat: confirm it at once, so an idle archive stays current
        elif self.open is not None:
            change = self._change(m)
            if change is not None:
                self.open.changes.append(change)
                self.open.size += _approx_size(change)

    def _change(self, m: po.Message) -> list[Any] | None:
        if isinstance(m, po.Insert):
            rel = self.relations[m.relid]
            if rel.namespace == DDL_SCHEMA and rel.name == DDL_TABLE:
                row = dict(zip([c.name for c in rel.columns], m.new, strict=True))
                return self._ddl_change(str(row["tag"]), str(row["command"]), str(row["search_path"]))
            self._use(m.relid)
            return ["I", m.relid, _tuple(m.new)]
        if isinstance(m, po.Update):
            self._use(m.relid)
            return ["U", m.relid, _tuple(m.old if m.old is not None else m.key), _tuple(m.new)]
        if isinstance(m, po.Delete):
            self._use(m.relid)
            return ["D", m.relid, _tuple(m.old if m.old is not None else m.key)]
        if isinstance(m, po.Truncate):
            for relid in m.relids:
                self._use(relid)
            return ["T", list(m.relids), m.cascade, m.restart_identity]
        return None

    def _ddl_change(self, tag: str, command: str, search_path: str) -> list[Any] | None:
        """A captured statement; GAP records (what the archive cannot reproduce) follow it in the
        same transaction, so a restore past that commit knows."""
        assert self.open is not None
        if tag == TRUNCATE_TAG:
            return self._truncate(command)
        if command == CAPTURE_TRUNCATES:
            return None  # our own CREATE TRIGGERs: the restored database has no capture to feed
        if tag == CAPTURE_FAILED:
            gaps = [["ddl-not-captured", f"a DDL statement could not be recorded ({_short(command)})"]]
            change = None
        else:
            gaps = yb_gaps_for_ddl(tag, command) if self.yugabyte else []
            if self.yugabyte and self.open.commit_us <= self.base_done_us:
                # "DDL operations should not be performed from the time of replication slot creation
                # till the start of snapshot consumption of the last table" (docs: develop/
                # change-data-capture/using-logical-replication/_index.md, Limitations).
                gaps.append(["snapshot-ddl", f"{tag} ran while the first base backup was read ({_short(command)})"])
            change = ["DDL", tag, command, search_path]
            if self.yugabyte and tag in ("CREATE TABLE", "CREATE TABLE AS", "SELECT INTO"):
                self.truncate_capture_due = True
        for kind, detail in gaps:
            self._warn(f"archive gap: {detail}")
            if change is not None:
                self.open.changes.append(change)
                change = None
            self.open.changes.append(["GAP", kind, detail])
        return change

    def _truncate(self, command: str) -> list[Any] | None:
        """A TRUNCATE the trigger recorded (YugabyteDB). The tables one statement truncates (with
        CASCADE too) come one entry each, back to back: they become one TRUNCATE, as replaying
        them one by one would fail on foreign keys between them."""
        assert self.open is not None
        schema, table = json.loads(command)
        last = self.open.changes[-1] if self.open.changes else None
        if last is not None and last[0] == "TN":
            last[1].append([schema, table])
            return None
        return ["TN", [[schema, table]]]

    def _capture_new_tables(self) -> None:
        """Put the TRUNCATE trigger on tables created since (YugabyteDB, DDL capture installed)."""
        self.truncate_capture_due = False
        try:
            self.stats_conn.execute(CAPTURE_TRUNCATES)
        except psycopg.Error as e:
            self._warn(f"could not put the TRUNCATE trigger on new tables: {translate(e, 'capture_truncates').args[0]}")

    def _use(self, relid: int) -> None:
        if relid not in self.pending_relations:
            self.pending_relations[relid] = _relation_record(self.relations[relid])

    def _flush_segment(self, repl: ReplicationConnection) -> None:
        if not self.pending:
            return
        segment = fmt.Segment(dict(self.pending_relations), self.pending, self._sample_sequences())
        info = self.repo.put_segment(segment)  # durable before anything is acknowledged
        self.result.segments += 1
        self.result.transactions += len(self.pending)
        self.result.changes += sum(len(t.changes) for t in self.pending)
        self.last_commit_us = self.pending[-1].commit_us
        self.flushed = max(self.flushed, self.pending[-1].end_lsn)
        self.pending, self.pending_relations, self.pending_bytes = [], {}, 0
        self._write_status(running=True)
        repl.send_status(self.received, self.flushed)
        self.progress.log(f"segment {info.key.split('/')[-1][:33]}: {info.transactions} transactions")

    def _idle_at(self, lsn: int, send_us: int) -> None:
        """The server sent ``lsn`` at ``send_us`` (its clock) while nothing was open or pending here."""
        if lsn >= self.idle_candidate:
            self.idle_candidate = lsn
            # Every transaction the server had flushed when it sent this was sent before it. A commit
            # is stamped just before its WAL record is written and flushed, so one stamped a moment
            # before the send may still be on its way: the margin covers that.
            self.idle_candidate_us = send_us - COMPLETE_MARGIN_US if send_us else None

    def _confirm_idle(self, repl: ReplicationConnection) -> None:
        """With nothing open or pending, everything up to the last idle position is archived."""
        if self.open is None and not self.pending and self.idle_candidate >= self.flushed and self.idle_candidate:
            advanced = self.idle_candidate > self.flushed
            self.flushed = self.idle_candidate
            if self.idle_candidate_us is not None:
                self.complete_us = max(self.complete_us or 0, self.idle_candidate_us)
            self._write_status(running=True)  # before the server hears of it: restarts check against it
            if advanced:
                repl.send_status(self.received, self.flushed)
        else:
            self._write_status(running=True)

    # -- scheduled base backups -------------------------------------------------------------------------
    def _init_schedule(self, info: fmt.RepositoryInfo) -> None:
        if self.opt.base_every_seconds is None:
            return
        if self.yugabyte:
            # A base backup beside the running stream needs a second slot's snapshot at a position
            # comparable with this slot's LSNs; YugabyteDB has neither temporary slots
            # (src/postgres/src/backend/replication/walsender.c, issue #19263) nor LSNs shared
            # across slots (they are per-slot counters, see ``backup``).
            raise UsageError("--base-every is not supported on YugabyteDB (LSNs are per replication slot)")
        bases = [b for b in self.repo.base_backups() if b.slot == info.slot]
        self.last_base_us = max((b.time_us for b in bases), default=None)
        self._plan_next_base(int(time.time() * 1e6))

    def _plan_next_base(self, now_us: int) -> None:
        assert self.opt.base_every_seconds is not None
        self.next_base_us = next_base_due(
            self.last_base_us, now_us, int(self.opt.base_every_seconds * 1e6), self.opt.base_at_us
        )

    def _base_schedule(self, info: fmt.RepositoryInfo) -> None:
        """Collect a finished scheduled base backup; start the next one when it is due."""
        if self.next_base_us is None:
            return
        now_us = int(time.time() * 1e6)
        if self.base_thread is not None:
            if not self.base_thread.is_alive():
                self._collect_base(now_us)
                self._write_status(running=True)
        elif now_us >= self.next_base_us:
            self.base_thread = threading.Thread(
                target=self._scheduled_base, args=(info.slot,), name="ybrewind-base", daemon=True
            )
            self.base_thread.start()

    def _collect_base(self, now_us: int) -> None:
        self.base_thread = None
        error = self.base_outcome.pop("error", None)
        base: fmt.BaseBackupInfo | None = self.base_outcome.pop("base", None)
        prune_error = self.base_outcome.pop("prune_error", None)
        if prune_error is not None:
            self._warn(f"pruning after the scheduled base backup failed (tried again after the next): {prune_error}")
        if error is not None or base is None:
            self.last_base_error = str(error)
            retry_s = min(self.opt.base_every_seconds or BASE_RETRY_SECONDS, BASE_RETRY_SECONDS)
            self._warn(f"scheduled base backup failed (next try in {retry_s:g} s): {error}")
            self.next_base_us = now_us + int(retry_s * 1e6)
        else:
            self.result.scheduled_bases.append(base.name)
            self.last_base_us, self.last_base_error = base.time_us, None
            self._plan_next_base(now_us)

    def _scheduled_base(self, slot: str) -> None:
        """The base backup thread: take it, then prune by the retention policy. Failures are handed
        to the streaming thread, which reports them and goes on archiving."""
        try:
            self.base_outcome["base"] = temporary_slot_base(self.source, self.repo, self.opt, self.progress, slot)
        except BaseException as e:
            self.base_outcome["error"] = e
            return
        if self.opt.retention.active:
            try:
                pruned = prune(self.repo, self.opt.retention, progress=self.progress)
                if pruned.bases or pruned.segments:
                    self.progress.log(pruned.describe().splitlines()[0])
            except BaseException as e:  # the base backup stands; the next one prunes again
                self.base_outcome["prune_error"] = e

    def _finish_base(self) -> None:
        """On stop, let a scheduled base backup in progress finish (it is consistent on its own)."""
        if self.base_thread is None:
            return
        if self.base_thread.is_alive():
            self.progress.log("waiting for the scheduled base backup in progress to finish")
            self.base_thread.join()
        self._collect_base(int(time.time() * 1e6))

    def _sample_sequences(self) -> dict[str, Any]:
        rows = self.stats_conn.execute(
            "SELECT schemaname, sequencename, last_value FROM pg_sequences WHERE schemaname <> %s", [DDL_SCHEMA]
        ).fetchall()
        return {
            "sequences": [[r[0], r[1], r[2]] for r in rows],
            "sampled_us": int(time.time() * 1e6),
            "after_lsn": self.pending[-1].commit_lsn if self.pending else self.last_archived_lsn,
        }

    def _write_status(self, running: bool) -> None:
        if running:
            self.lock.refresh()  # an idle archiver must keep its (S3) lock fresh too; rate-limited
        retained = None
        try:
            row = self.stats_conn.execute(
                "SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = %s",
                [self.opt.slot],
            ).fetchone()
            retained = int(row[0]) if row and row[0] is not None else None
        except psycopg.Error:
            pass  # YugabyteDB: no WAL arithmetic
        self.repo.write_status(
            {
                "running": running,
                "owner": self.owner,
                "updated_us": int(time.time() * 1e6),
                "slot": self.opt.slot,
                "received_lsn": self.received,
                "confirmed_lsn": self.flushed,
                "confirmed": po.lsn_to_str(self.flushed),
                "last_commit_us": self.last_commit_us,
                "retained_wal_bytes": retained,
                "segments_this_run": self.result.segments,
                "pending_transactions": len(self.pending) + (self.open is not None),
                "complete_us": self.complete_us,
                "base_every_seconds": self.opt.base_every_seconds,
                "base_at_us": self.opt.base_at_us,
                "last_base_us": self.last_base_us,
                "scheduled_bases": len(self.result.scheduled_bases),
                "next_base_us": self.next_base_us,
                "last_base_error": self.last_base_error,
                "retention": self.opt.retention.to_dict(),
            }
        )

    def _warn(self, message: str) -> None:
        self.result.warnings.append(message)
        self.progress.warn(message)


def yb_slot_start(conn: psycopg.Connection, slot: CreatedSlot) -> tuple[int, int, str]:
    """(LSN, Unix µs, stream id) where a new YugabyteDB slot's stream begins.

    CREATE_REPLICATION_SLOT answers 0/0 as its consistent point on YugabyteDB
    (src/postgres/src/backend/replication/walsender.c, CreateReplicationSlot: "Send 0/0 as the
    consistent wal location"); the slot's confirmed_flush_lsn is where its stream starts, and
    yb_restart_commit_ht the hybrid time of that point, usable for the consistent snapshot (docs:
    develop/change-data-capture/using-logical-replication/monitor.md, pg_replication_slots;
    advanced-topic.md, Initial snapshot). The base backup's time is that hybrid time, never the
    local clock, so it is never picked for a target time it is newer than.
    """
    row = conn.execute(
        "SELECT confirmed_flush_lsn::text, yb_restart_commit_ht, yb_stream_id::text "
        "FROM pg_replication_slots WHERE slot_name = %s",
        [slot.name],
    ).fetchone()
    if row is None:
        raise DatabaseError(f"replication slot {slot.name} was created but pg_replication_slots does not list it")
    confirmed, restart_ht, stream_id = row
    lsn = po.str_to_lsn(confirmed) if confirmed else slot.consistent_point
    ht = int(slot.snapshot) if is_hybrid_time_snapshot(slot.snapshot) else restart_ht
    if ht is None:
        raise DatabaseError(f"replication slot {slot.name} reports no snapshot hybrid time (yb_restart_commit_ht)")
    return lsn, hybrid_time_to_unix_us(int(ht)), str(stream_id)


def take_base_backup(
    source: PgEndpoint,
    repo: Repository,
    snapshot: str | None,
    lsn: int,
    opt: ArchiveOptions,
    progress: Progress,
    slot: str,
    time_us: int | None = None,
) -> fmt.BaseBackupInfo:
    """Dump ``source`` in ``snapshot`` and store it as a base backup at ``lsn``. ``time_us``: the
    snapshot's exact time when the server told it (YugabyteDB), else the dump's own reading."""
    with tempfile.TemporaryDirectory(prefix="ybrewind-base-") as tmp:
        out = Path(tmp) / "dump"
        options = DumpOptions(
            jobs=opt.base_jobs,
            compress=opt.base_compress,
            snapshot=snapshot,
            filters=Filters(exclude_schemas=[DDL_SCHEMA]),
        )
        result = dump(source, out, options, progress)
        if time_us is None:
            time_us = int(datetime.fromisoformat(result.snapshot["time"]).timestamp() * 1e6)
        info = fmt.BaseBackupInfo(fmt.base_name(lsn, time_us), lsn, time_us, [], result.rows, result.bytes, slot)
        repo.put_base_backup(out, info)
    return info


def backup(
    source: PgEndpoint, repo: Repository, options: ArchiveOptions | None = None, progress: Progress | None = None
) -> str:
    """Another base backup at an exact position, via a temporary slot's exported snapshot."""
    opt = options or ArchiveOptions()
    info = repo.require_info()
    with source.connect() as conn:
        identity = source_identity(conn)
        if identity["dialect"] == "yugabyte":
            raise UsageError(
                "ybrewind backup needs comparable LSNs across slots, which YugabyteDB does not have "
                "(LSNs are per-slot counters); restart the archiver with a new repository instead"
            )
        Archiver(source, repo, opt)._check_same_source(info, identity)
        check_source(conn, source)  # the temporary slot needs a free one
    return temporary_slot_base(source, repo, opt, progress or Progress(), info.slot).name


def temporary_slot_base(
    source: PgEndpoint, repo: Repository, opt: ArchiveOptions, progress: Progress, archive_slot: str
) -> fmt.BaseBackupInfo:
    """A base backup at an exact position: dumped inside the snapshot a temporary slot exports, at
    that slot's consistent point. Every transaction committed before that point is in the snapshot,
    every one at or after it in the archiver's stream (same LSN space on PostgreSQL), so the base
    meets the change log with no gap and no overlap while the archiver keeps streaming."""
    repl = ReplicationConnection(source)
    try:
        name = f"ybrewind_backup_{os.getpid()}_{threading.get_ident() % 100000}"
        slot = repl.create_slot(name, temporary=True)
        return take_base_backup(source, repo, slot.snapshot, slot.consistent_point, opt, progress, archive_slot)
    except psycopg.Error as e:
        raise DatabaseError(f"base backup of {source.display()}: {e}") from None
    finally:
        repl.close()  # a temporary slot disappears with its connection


def drop(source: PgEndpoint, repo: Repository) -> list[str]:
    """Remove the archiver's slot, publication and DDL capture from the source."""
    info = repo.require_info()
    dropped = []
    with source.connect() as conn:
        try:
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [info.slot]).fetchone():
                conn.execute("SELECT pg_drop_replication_slot(%s)", [info.slot])
                dropped.append(f"slot {info.slot}")
            if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [info.publication]).fetchone():
                conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(info.publication)))
                dropped.append(f"publication {info.publication}")
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [DDL_SCHEMA]).fetchone():
                conn.execute("DROP EVENT TRIGGER IF EXISTS ybrewind_ddl_end")
                conn.execute("DROP EVENT TRIGGER IF EXISTS ybrewind_sql_drop")
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(DDL_SCHEMA)))
                dropped.append("DDL capture")
        except psycopg.Error as e:
            raise translate(e, f"dropping the archiver's objects on {source.display()}") from None
    return dropped
