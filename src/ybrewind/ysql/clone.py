"""``ybrewind clone``: materialize a new database as it was at a given time.

Three ways, chosen by what is available:

- from a change-log repository (any server): a point-in-time restore into the new database;
- YugabyteDB ``--native``: ``CREATE DATABASE new TEMPLATE src AS OF <µs>``, instant, needs a snapshot
  schedule covering the time (see docs: YSQL instant database cloning);
- YugabyteDB within the history retention: a dump read at ``yb_read_time = T``, loaded into the
  new database.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ybrewind import pitr
from ybrewind.archive.repo import Repository
from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError, UsageError
from ybrewind.progress import Progress
from ybrewind.ysql.catalog import read_server
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import LoadOptions, db_error, load
from ybrewind.ysql.restore import RestoreOptions, restore


@dataclass
class CloneResult:
    source: str
    clone: str
    as_of: str
    method: str  # "repository", "native", "read-time"
    seconds: float = 0.0


def native_clone_sql(source_db: str, new_db: str, as_of_us: int) -> sql.Composed:
    """YugabyteDB instant clone of ``source_db`` as of Unix microseconds ``as_of_us``."""
    return sql.SQL("CREATE DATABASE {} TEMPLATE {} AS OF {}").format(
        sql.Identifier(new_db), sql.Identifier(source_db), sql.Literal(as_of_us)
    )


# What YSQL instant cloning needs (docs: manage/backup-restore/instant-db-cloning.md, "Enable
# database cloning", "Prerequisites").
NATIVE_CLONE_NEEDS = (
    "the yb-master flag enable_db_clone (a preview flag: also in allowed_preview_flags_csv), "
    "a snapshot schedule on the database covering the time (yb-admin create_snapshot_schedule), "
    "and trusted local YSQL connections on every yb-tserver (ysql_hba_conf_csv 'local all all trust')"
)


def native_clone_blockers(conn: psycopg.Connection) -> list[str]:
    """What makes ``CREATE DATABASE ... TEMPLATE ... AS OF`` impossible for the connected database,
    as far as SQL can tell: sequences ("Cloning is not currently supported for databases that use
    sequences", issue #21467: instant-db-cloning.md, Limitations)."""
    sequences = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchone()[0]  # type: ignore[index]
    if sequences:
        return [
            f"{conn.info.dbname} has {sequences} sequence(s): YugabyteDB cannot clone databases that use "
            "sequences (issue #21467); clone from a change-log repository (--repo) or by read time instead"
        ]
    return []


def clone(
    source: PgEndpoint,
    new_db: str,
    as_of_us: int,
    *,
    repo: Repository | None = None,
    target: PgEndpoint | None = None,
    native: bool = False,
    jobs: int = 2,
    progress: Progress | None = None,
) -> CloneResult:
    import time

    started = time.monotonic()
    server = (target or source).with_dbname(new_db)
    result = CloneResult(source.display(), server.display(), pitr.to_iso(as_of_us), "")
    if repo is not None and not native:
        restore(repo, server, RestoreOptions(target_us=as_of_us, jobs=jobs), progress)
        result.method = "repository"
    else:
        with source.connect() as conn:
            is_yb = read_server(conn).is_yugabyte
        if not is_yb:
            raise UsageError("cloning a PostgreSQL database needs its change-log repository: pass --repo REPO")
        if native:
            if target is not None:
                raise UsageError("--native clones stay on the source's cluster; drop --target")
            with source.connect() as conn:
                blockers = native_clone_blockers(conn)
                if blockers:
                    raise UsageError(blockers[0])
                try:
                    conn.execute(native_clone_sql(source.dbname, new_db, as_of_us))
                except psycopg.Error as e:
                    raise DatabaseError(
                        f"{db_error(e, f'cloning {source.dbname} as of {result.as_of}').message}; "
                        f"instant cloning needs {NATIVE_CLONE_NEEDS}"
                    ) from None
            result.method = "native"
        else:
            with tempfile.TemporaryDirectory(prefix="ybrewind-clone-") as tmp:
                out = Path(tmp) / "dump"
                dump(source, out, DumpOptions(jobs=jobs, read_time_us=as_of_us), progress)
                load(out, server, LoadOptions(jobs=jobs, create=True), progress)
            result.method = "read-time"
    result.seconds = round(time.monotonic() - started, 3)
    return result
