"""Preflight checks: will dump, archive, restore and clone work on this YSQL/PostgreSQL source?

One ``Check`` per question, each with a status (ok, warn, fail) and one line of detail; ``fail``
means something a feature needs is missing. ``ybrewind check`` prints them, ``archive start``
refuses on the ones archiving needs (``archiver.check_source``). YugabyteDB facts are cited beside the
checks that rely on them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError

OK, WARN, FAIL = "ok", "warn", "fail"
# timestamp_history_retention_interval_sec, a yb-tserver flag SQL cannot read; its default
# (docs: manage/backup-restore/time-travel-query.md; reference/configuration/yb-tserver.md).
YB_DEFAULT_HISTORY_RETENTION_S = 900
# A conservative single-stream read rate for the dump-time estimate.
DUMP_BYTES_PER_SECOND = 20 << 20
# YSQL logical replication exists from stable v2024.1.1 (shared/docs/yugabyte.md, from the YB docs);
# preview releases number 2.x (2.25 is PostgreSQL 15-based): 2.20, the stable series before 2024.1,
# has none, so preview releases from 2.21 on are let through.
YB_MIN_LOGICAL_REPLICATION = (2024, 1, 1)
YB_MIN_PREVIEW_LOGICAL_REPLICATION = (2, 21)


def yb_has_logical_replication(v: tuple[int, ...]) -> bool:
    return v >= YB_MIN_LOGICAL_REPLICATION if v[0] >= 2000 else v >= YB_MIN_PREVIEW_LOGICAL_REPLICATION


@dataclass
class Check:
    name: str
    status: str
    detail: str
    needed_by: list[str] = field(default_factory=list)  # features that fail when status is "fail"

    def line(self) -> str:
        return f"{self.status.upper():<4}  {self.name}: {self.detail}"


@dataclass
class CheckReport:
    source: str
    kind: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def yb_version(version: str) -> tuple[int, ...] | None:
    """(2024, 2, 4, 0) from 'PostgreSQL 11.2-YB-2024.2.4.0-b0 on ...'."""
    m = re.search(r"-YB-(\d+(?:\.\d+)*)", version)
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def _one(conn: psycopg.Connection, query: str, params: list[Any] | None = None) -> Any:
    row = conn.execute(query, params or []).fetchone()
    return row[0] if row else None


def _setting(conn: psycopg.Connection, name: str) -> str | None:
    return _one(conn, "SELECT current_setting(%s, true)", [name])


def ysql_checks(
    conn: psycopg.Connection,
    *,
    repo_slot: str | None = None,
    history_retention_s: int = YB_DEFAULT_HISTORY_RETENTION_S,
) -> list[Check]:
    """Every check of a YSQL/PostgreSQL source. ``repo_slot``: the slot of an existing repository
    (it needs no free slot)."""
    version = _one(conn, "SELECT version()")
    is_yb = "-YB-" in version
    checks: list[Check] = []
    ybv = yb_version(version) if is_yb else None
    kind = f"YugabyteDB {'.'.join(map(str, ybv))}" if ybv else version.split(" on ")[0]
    server = Check("server", OK, f"{kind} (server_version_num {conn.info.server_version})")
    if is_yb and ybv is not None and not yb_has_logical_replication(ybv):
        server = Check("server", FAIL, f"{kind}: logical replication needs YugabyteDB 2024.1.1 or later", ["archive"])
    checks.append(server)

    superuser = _setting(conn, "is_superuser") == "on"
    if superuser:
        checks.append(Check("superuser", OK, f"{conn.info.user} is a superuser"))
    elif is_yb:
        # SET yb_read_time and yb_disable_catalog_version_check are superuser-only (docs: develop/
        # change-data-capture/using-logical-replication/advanced-topic.md, Permissions;
        # reference/configuration/yb-tserver.md, yb_disable_catalog_version_check Context superuser).
        checks.append(
            Check(
                "superuser",
                WARN,
                f"{conn.info.user} is not a superuser: consistent YugabyteDB dumps and base backups need "
                "SET yb_read_time (superuser only) unless ysql_enable_pg_export_snapshot is on; "
                "DDL is not captured (event triggers need a superuser)",
            )
        )
    else:
        checks.append(
            Check(
                "superuser",
                WARN,
                f"{conn.info.user} is not a superuser: DDL is not captured while archiving (event triggers need one)",
            )
        )

    can_replicate = _one(conn, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")
    checks.append(
        Check("replication", OK, f"{conn.info.user} may replicate")
        if can_replicate
        else Check(
            "replication",
            FAIL,
            f"role {conn.info.user} lacks the REPLICATION privilege (ALTER ROLE {conn.info.user} REPLICATION)",
            ["archive"],
        )
    )

    if is_yb:
        # CREATE_REPLICATION_SLOT is refused while yb_enable_replication_commands is off
        # (src/postgres/src/backend/replication/walsender.c, CreateReplicationSlot).
        enabled = _setting(conn, "yb_enable_replication_commands")
        checks.append(
            Check(
                "wal_level",
                FAIL,
                "yb_enable_replication_commands is off (yb-tserver flag ysql_yb_enable_replication_commands)",
                ["archive"],
            )
            if enabled == "off"
            else Check("wal_level", OK, "YugabyteDB logical replication (no wal_level)")
        )
    else:
        wal_level = _setting(conn, "wal_level")
        checks.append(
            Check("wal_level", OK, "wal_level=logical")
            if wal_level == "logical"
            else Check(
                "wal_level",
                FAIL,
                f"wal_level={wal_level}; archiving needs wal_level=logical "
                "(ALTER SYSTEM SET wal_level = logical, then restart the server)",
                ["archive"],
            )
        )

    max_slots = int(_setting(conn, "max_replication_slots") or 0)
    used = int(_one(conn, "SELECT count(*) FROM pg_replication_slots"))
    own = bool(repo_slot) and bool(
        _one(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [repo_slot])
    )
    if own:
        checks.append(Check("slots", OK, f"the repository's slot {repo_slot} exists ({used} of {max_slots} in use)"))
    elif max_slots and used >= max_slots:
        checks.append(
            Check(
                "slots",
                FAIL,
                f"no free replication slot ({used} of max_replication_slots={max_slots} in use)",
                ["archive"],
            )
        )
    else:
        checks.append(Check("slots", OK, f"{used} of max_replication_slots={max_slots} in use"))

    checks.append(_identity_check(conn, is_yb))
    if is_yb:
        checks.append(_retention_check(conn, history_retention_s))
    return checks


def _identity_check(conn: psycopg.Connection, is_yb: bool) -> Check:
    rows = conn.execute(
        "SELECT n.nspname, c.relname, c.relreplident, "
        "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ybrewind') "
        "AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 1, 2"
    ).fetchall()
    if is_yb:
        # Tables without a primary key are left out of the stream unless the slot allows them
        # (YBCRemoveTablesWithoutPrimaryKeyIfNotAllowedBySlot, yb_virtual_wal_client.c; docs
        # _index.md Limitations: "There should be a primary key on the table").
        no_pk = [f"{s}.{t}" for s, t, _, pk in rows if not pk]
        not_default = [f"{s}.{t}" for s, t, ident, pk in rows if pk and ident != "d"]
        # Tables created after the slot get ysql_yb_default_replica_identity (a yb-tserver flag,
        # CHANGE unless set: key-concepts.md); pgoutput refuses CHANGE once the publication's table
        # list is refreshed (yb_virtual_wal_client.c, YBCRefreshReplicaIdentities), stopping the stream.
        new_tables = (
            "; tables created later get CHANGE too unless every yb-tserver runs with "
            "ysql_yb_default_replica_identity=DEFAULT"
            if any(ident == "c" for _, _, ident, _ in rows)
            else ""
        )
        problems = []
        if no_pk:
            problems.append(
                f"{len(no_pk)} table(s) without a primary key are not streamed by YugabyteDB; restores "
                f"report their changes as missing: {', '.join(no_pk[:5])}"
            )
        if not_default:
            problems.append(
                f"{len(not_default)} table(s) not in REPLICA IDENTITY DEFAULT (pgoutput refuses YB's "
                f"default CHANGE); archive start sets DEFAULT before creating its slot: "
                f"{', '.join(not_default[:5])}" + new_tables
            )
        if problems:
            return Check("replica_identity", WARN, "; ".join(problems))
        return Check(
            "replica_identity", OK, f"{len(rows)} table(s), all with a primary key and REPLICA IDENTITY DEFAULT"
        )
    unkeyed = [f"{s}.{t}" for s, t, ident, pk in rows if not pk and ident in ("d", "n")]
    if unkeyed:
        return Check(
            "replica_identity",
            WARN,
            f"{len(unkeyed)} table(s) without a primary key or replica identity: with the archive's "
            f"publication UPDATE/DELETE on them fail (archive start --replica-identity-full): "
            f"{', '.join(unkeyed[:5])}",
        )
    return Check("replica_identity", OK, f"{len(rows)} table(s) can be replicated")


def estimated_bytes(conn: psycopg.Connection) -> int:
    """The database's user data size. On YugabyteDB pg_relation_size() reads no local files and is
    0; pg_table_size() asks DocDB (YBCPgGetTableDiskSize) and is NULL for colocated tables
    (src/postgres/src/backend/utils/adt/dbsize.c, calculate_table_size)."""
    return int(
        _one(
            conn,
            "SELECT coalesce(sum(coalesce(pg_table_size(c.oid), 0)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'",
        )
        or 0
    )


def estimated_dump_seconds(total_bytes: int, jobs: int = 2) -> float:
    return total_bytes / (DUMP_BYTES_PER_SECOND * max(1, jobs))


def _retention_check(conn: psycopg.Connection, history_retention_s: int) -> Check:
    """Reads pinned to one time (yb_read_time) fail once the time is older than
    timestamp_history_retention_interval_sec (docs: manage/backup-restore/time-travel-query.md)."""
    seconds = estimated_dump_seconds(estimated_bytes(conn))
    detail = (
        f"estimated dump time {seconds:.0f} s vs history retention {history_retention_s} s "
        "(timestamp_history_retention_interval_sec; pass --yb-history-retention if changed)"
    )
    if seconds >= history_retention_s:
        return Check(
            "history_retention", FAIL, detail + ": a dump pinned to one time would fail midway", ["dump", "archive"]
        )
    if seconds >= history_retention_s / 2:
        return Check("history_retention", WARN, detail)
    return Check("history_retention", OK, detail)


def repository_checks(conn: psycopg.Connection, info: Any) -> list[Check]:
    """Does an existing repository belong to this source, and is its slot still there?"""
    checks = [
        Check("repository", OK, f"archives database {info.source.get('database')!r}")
        if info.source.get("database") == conn.info.dbname
        else Check(
            "repository",
            FAIL,
            f"the repository archives database {info.source.get('database')!r}, not {conn.info.dbname!r}",
            ["archive", "restore"],
        )
    ]
    exists = _one(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [info.slot])
    checks.append(
        Check("repository_slot", OK, f"slot {info.slot} exists")
        if exists
        else Check(
            "repository_slot",
            FAIL,
            f"slot {info.slot} is gone: the archive ends where it stopped; start a new repository",
            ["archive"],
        )
    )
    return checks


def check(
    source: PgEndpoint, repo: Any = None, history_retention_s: int = YB_DEFAULT_HISTORY_RETENTION_S
) -> CheckReport:
    """Every check of ``source``; with ``repo`` (a Repository), also the repository's."""
    info = repo.info() if repo is not None else None
    with source.connect() as conn:
        try:
            checks = ysql_checks(conn, repo_slot=info.slot if info else None, history_retention_s=history_retention_s)
            if info is not None:
                checks += repository_checks(conn, info)
        except psycopg.Error as e:
            raise DatabaseError(f"checking {source.display()}: {str(e).strip().splitlines()[0]}") from None
    kind = "yugabyte" if checks[0].detail.startswith("YugabyteDB") else "postgres"
    return CheckReport(source.display(), kind, checks)


def ycql_checks(endpoint: Any) -> CheckReport:
    """A ycql:// source: server kind, and what a --with-writetime dump keeps. YugabyteDB refuses TTL
    writes on tables with transactions enabled (docs: api/ycql/dml_insert.md, Semantics), so those
    tables' TTLs are not kept; YCQL has no change capture (issue #11320), archives are scans."""
    from ybrewind.ycql import schema as sch
    from ybrewind.ycql.session import connect

    with connect(endpoint) as conn:
        server = conn.server
        checks = [Check("server", OK, f"{'YugabyteDB' if server.is_yugabyte else 'Apache Cassandra'} "
                                      f"{server.release_version} ({server.partitioner.rsplit('.', 1)[-1]})")]  # fmt: skip
        meta = conn.keyspace(endpoint.keyspace) if endpoint.keyspace else None
        if endpoint.keyspace and meta is None:
            checks.append(Check("keyspace", FAIL, f"keyspace {endpoint.keyspace} does not exist", ["dump", "archive"]))
        elif meta is not None:
            model = sch.from_metadata(meta)
            tx = [t.name for t in model.tables if t.transactional]
            checks.append(
                Check("writetime", WARN,
                      f"{len(tx)} table(s) with transactions enabled refuse TTL writes on YugabyteDB: "
                      f"--with-writetime keeps their write times, not their TTLs: {', '.join(tx[:5])}")
                if tx
                else Check("writetime", OK, f"{len(model.tables)} table(s): write times and TTLs can be kept")
            )  # fmt: skip
    return CheckReport(endpoint.display(), "yugabyte-ycql" if server.is_yugabyte else "cassandra", checks)
