"""Point-in-time restore of a YSQL/PostgreSQL database from a change-log repository.

Plan (``pitr.plan``): the newest base backup at or before the target, then the archived
transactions committed after its consistent point, in commit order, up to the target. Replay
runs with ``session_replication_role = replica`` (as PostgreSQL's own logical replication apply:
triggers and foreign-key checks do not fire again for changes that already include their
effects). The target is not live, so many source transactions are grouped into one target
transaction and runs of same-shaped changes go through ``executemany`` (pipelined); the final
state is the same because the order is kept.

Resumable: progress lives in the target (``_ybrewind_restore.progress``), updated in the same
transaction as the changes it covers, so a restore killed at any point continues exactly where it
stopped when run again. The progress schema is dropped when the restore completes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.types.string import StrDumperUnknown

from ybrewind import pitr
from ybrewind.archive import format as fmt
from ybrewind.archive.repo import Repository
from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError, TargetNotEmptyError, UsageError
from ybrewind.progress import Progress
from ybrewind.ysql.apply import Applier, NetBatch, Relation
from ybrewind.ysql.load import Loader, LoadOptions, db_error, ensure_database, user_objects

PROGRESS_SCHEMA = "_ybrewind_restore"
DDL_FIRST_WORDS = {"CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE", "SECURITY", "REINDEX", "CLUSTER"}


@dataclass
class RestoreOptions:
    target_us: int | None = None
    target_lsn: int | None = None
    jobs: int = 2
    batch_changes: int = 20_000  # source changes per target transaction
    analyze: bool = True


@dataclass
class RestoreResult:
    repository: str
    target: str
    base_backup: str
    transactions: int = 0
    changes: int = 0
    restored_to: str | None = None  # commit time of the last replayed transaction
    last_lsn: str | None = None
    resumed: bool = False
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)  # what the archive could not reproduce (archiver GAP records)


# Settings the text forms of values depend on, pinned whatever the target's defaults: archived values
# are read (and rows without a key matched) in this session. The archiver's stream pins the same
# ones for the values it writes, as PostgreSQL's own apply worker does (libpqwalreceiver.c).
SESSION_SETTINGS = {
    "datestyle": "ISO, YMD",
    "intervalstyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "timezone": "UTC",
}


def _prepare_session(conn: psycopg.Connection) -> None:
    conn.adapters.register_dumper(str, StrDumperUnknown)  # let the server type text values by column
    conn.execute("SET session_replication_role = replica")
    conn.execute("SELECT pg_catalog.set_config('search_path', '', false)")
    for name, value in SESSION_SETTINGS.items():
        conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", [name, value])


class Restorer:
    def __init__(
        self, repo: Repository, target: PgEndpoint, options: RestoreOptions, progress: Progress | None = None
    ) -> None:
        self.repo = repo
        self.target = target
        self.opt = options
        self.progress = progress or Progress()
        self.sequence_sample: dict[tuple[str, str], int] = {}

    def run(self) -> RestoreResult:
        started = time.monotonic()
        info = self.repo.require_info()
        complete_us, bases, segments = self.repo.restore_listing()
        plan = pitr.plan(
            bases, segments, target_us=self.opt.target_us, target_lsn=self.opt.target_lsn, complete_us=complete_us
        )
        self.repo.verify_restore(plan.base, plan.segments)  # before the target is touched
        result = RestoreResult(self.repo.url, self.target.display(), plan.base.name)
        for table in info.source.get("unstreamed_tables", []):
            self._gap(
                result, f"{table} has no primary key: YugabyteDB did not stream its changes after the base backup"
            )
        ensure_database(self.target)
        with self.target.connect() as conn:
            state = self._progress_state(conn, plan)
            if state is None or state["state"] == "loading":
                step = time.monotonic()
                result.resumed = state is not None
                self._load_base(conn, plan, fresh=state is None)
                result.steps["base"] = round(time.monotonic() - step, 3)
                state = self._progress_state(conn, plan)
                assert state is not None
            else:
                result.resumed = True
            finishing = state["state"] == "finishing"  # killed after the replay: only the last steps remain
            if not finishing:
                step = time.monotonic()
                self._replay(conn, plan, int(state["applied_lsn"]), result)
                result.steps["replay"] = round(time.monotonic() - step, 3)
            step = time.monotonic()
            self._finish(conn, sequences_done=finishing)
            result.steps["finish"] = round(time.monotonic() - step, 3)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    # -- progress kept in the target ------------------------------------------------------------------
    def _progress_state(self, conn: psycopg.Connection, plan: pitr.RestorePlan) -> dict[str, Any] | None:
        exists = conn.execute("SELECT to_regclass(%s)", [f"{PROGRESS_SCHEMA}.progress"]).fetchone()[0]  # type: ignore[index]
        if exists is None:
            return None
        row = conn.execute(f"SELECT state, base, applied_lsn, plan FROM {PROGRESS_SCHEMA}.progress").fetchone()
        if row is None:
            return None
        state = dict(zip(("state", "base", "applied_lsn", "plan"), row, strict=True))
        if state["base"] != plan.base.name or state["plan"] != _plan_key(plan):
            raise UsageError(
                f"{self.target.dbname} holds an unfinished restore to another target ({state['plan']} from base "
                f"{state['base']}); restore into a new database, or drop {self.target.dbname} first"
            )
        return state

    def _load_base(self, conn: psycopg.Connection, plan: pitr.RestorePlan, fresh: bool) -> None:
        if fresh:
            found = user_objects(conn)
            if found:
                what = ", ".join(f"{v} {k}" for k, v in found.items())
                raise TargetNotEmptyError(
                    f"target database {self.target.dbname} is not empty ({what}); restore into a new or empty database"
                )
        else:  # a restore killed while loading its base: start the base over
            self._drop_user_schemas(conn)
        with conn.transaction():
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {PROGRESS_SCHEMA}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {PROGRESS_SCHEMA}.progress (state text NOT NULL, base text NOT NULL, "
                "applied_lsn bigint NOT NULL, applied_us bigint, plan text NOT NULL)"
            )
            conn.execute(f"DELETE FROM {PROGRESS_SCHEMA}.progress")
            conn.execute(
                f"INSERT INTO {PROGRESS_SCHEMA}.progress VALUES ('loading', %s, %s, NULL, %s)",
                [plan.base.name, plan.base.lsn - 1, _plan_key(plan)],
            )
        self.progress.log(f"loading base backup {plan.base.name}")
        with self.repo.fetch_base_backup(plan.base) as directory:
            Loader(
                self.target, LoadOptions(jobs=self.opt.jobs, analyze=False, check_empty=False), self.progress
            ).load_dump(directory)
        conn.execute(f"UPDATE {PROGRESS_SCHEMA}.progress SET state = 'replaying'")

    def _drop_user_schemas(self, conn: psycopg.Connection) -> None:
        schemas = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', %s) "
                "AND nspname NOT LIKE 'pg\\_%%'",
                [PROGRESS_SCHEMA],
            ).fetchall()
        ]
        with conn.transaction():
            for s in schemas:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(s)))
            conn.execute("CREATE SCHEMA IF NOT EXISTS public")

    # -- replay ------------------------------------------------------------------------------------------
    def _transactions(self, plan: pitr.RestorePlan, applier: Applier) -> Iterator[tuple[fmt.Transaction, bool]]:
        """(transaction, replay?) in commit order up to the target; relation shapes tracked on the way.

        Also keeps the sequence sample of the last segment wholly before the target (samples are
        taken when a segment closes, right after its last commit).
        """
        self.sequence_sample = {}
        for segment in self._prefetched(plan.segments):
            for relid, rec in segment.relations.items():
                applier.relations.setdefault(relid, Relation.from_record(rec))
            for tx in segment.transactions:
                decision = plan.includes(tx.commit_lsn, tx.commit_us)
                if decision is None:
                    return
                yield tx, decision
            if segment.sequences:
                self.sequence_sample = {(s, n): v for s, n, v in segment.sequences["sequences"] if v is not None}

    def _prefetched(self, infos: list[fmt.SegmentInfo]) -> Iterator[fmt.Segment]:
        """Segments in order, the next one read and decoded in a thread while this one is applied
        (the applier mostly waits on the server, so the two overlap)."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            ahead = deque(pool.submit(self.repo.read_segment, info) for info in infos[:2])
            later = iter(infos[2:])
            while ahead:
                segment = ahead.popleft().result()
                following = next(later, None)
                if following is not None:
                    ahead.append(pool.submit(self.repo.read_segment, following))
                yield segment

    def _replay(
        self, conn: psycopg.Connection, plan: pitr.RestorePlan, applied_lsn: int, result: RestoreResult
    ) -> None:
        """Replay in batches: each batch is one target transaction, sent as one pipeline."""
        _prepare_session(conn)
        applier = Applier(conn)
        net = NetBatch(applier)  # one per session: its temp tables live as long as the connection
        total = sum(s.transactions for s in plan.segments)
        bar = self.progress.task("replay", total or None, unit="transactions")
        batch: list[fmt.Transaction] = []
        size = 0
        last: fmt.Transaction | None = None
        try:
            for tx, replay in self._transactions(plan, applier):
                self.progress.advance(bar, 1)
                for change in tx.changes if replay else ():
                    if change[0] == "GAP":
                        self._gap(result, f"at {pitr.to_iso(tx.commit_us)}: {change[2]}")
                if not replay or tx.commit_lsn <= applied_lsn:
                    # Already in the base or applied before a restart: only relation shapes matter.
                    for change in tx.changes:
                        if change[0] == "R":
                            applier.apply(change)
                    continue
                batch.append(tx)
                size += len(tx.changes)
                if size >= self.opt.batch_changes:
                    last = self._apply_batch(conn, net, batch, result)
                    batch, size = [], 0
            if batch:
                last = self._apply_batch(conn, net, batch, result)
        except (psycopg.Error, DatabaseError) as e:
            if not conn.closed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
            where = f" (batch after source transaction {last.xid} at {pitr.to_iso(last.commit_us)})" if last else ""
            if isinstance(e, DatabaseError):
                raise DatabaseError(f"replaying into {self.target.dbname}{where}: {e.message}") from None
            raise db_error(e, f"replaying into {self.target.dbname}{where}") from None
        if last is not None:
            result.restored_to = pitr.to_iso(last.commit_us)
            result.last_lsn = f"{last.commit_lsn:X}"

    def _gap(self, result: RestoreResult, message: str) -> None:
        result.gaps.append(message)
        self.progress.warn(f"the archive cannot reproduce this, the restore may differ from the source: {message}")

    def _apply_batch(
        self, conn: psycopg.Connection, net: NetBatch, batch: list[fmt.Transaction], result: RestoreResult
    ) -> fmt.Transaction:
        """Source transactions in order, plus the progress record, in one target transaction."""
        tail = batch[-1]
        with conn.transaction():
            net.begin()
            for tx in batch:
                for change in tx.changes:
                    net.add(change)
            net.flush()
            conn.execute(
                f"UPDATE {PROGRESS_SCHEMA}.progress SET applied_lsn = %s, applied_us = %s",
                [tail.commit_lsn, tail.commit_us],
            )
        result.transactions += len(batch)
        result.changes += sum(len(tx.changes) for tx in batch)
        return tail

    # -- sequences, cleanup ------------------------------------------------------------------------------
    def _finish(self, conn: psycopg.Connection, sequences_done: bool) -> None:
        """Sequences (with the progress state, atomically), ANALYZE, then drop the progress schema:
        its disappearance is what marks the restore complete."""
        if not sequences_done:
            self._set_sequences(conn)
        if self.opt.analyze:
            conn.execute("ANALYZE")
        conn.execute(f"DROP SCHEMA {PROGRESS_SCHEMA} CASCADE")

    def _set_sequences(self, conn: psycopg.Connection) -> None:
        samples = self.sequence_sample
        with conn.transaction():
            rows = conn.execute(
                "SELECT s.schemaname, s.sequencename, s.last_value, "
                "(SELECT quote_ident(tn.nspname) || '.' || quote_ident(tc.relname) || '.' || quote_ident(a.attname) "
                " FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid "
                " JOIN pg_namespace tn ON tn.oid = tc.relnamespace "
                " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
                " WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') "
                " AND d.refobjsubid > 0 LIMIT 1) AS owner "
                "FROM pg_sequences s JOIN pg_namespace n ON n.nspname = s.schemaname "
                "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename "
                "WHERE s.schemaname <> %s",
                [PROGRESS_SCHEMA],
            ).fetchall()
            for schema, name, current, owner in rows:
                value = samples.get((schema, name), current)
                if owner:
                    # Never below a value already used by the restored rows.
                    table, column = owner.rsplit(".", 1)
                    used = conn.execute(
                        sql.SQL("SELECT max({})::bigint FROM {}").format(sql.SQL(column), sql.SQL(table))
                    ).fetchone()[0]  # type: ignore[index]
                    if used is not None and (value is None or used > value):
                        value = used
                if value is not None:
                    conn.execute("SELECT setval(%s, %s, true)", [sql.Identifier(schema, name).as_string(conn), value])
            conn.execute(f"UPDATE {PROGRESS_SCHEMA}.progress SET state = 'finishing'")


def _plan_key(plan: pitr.RestorePlan) -> str:
    if plan.target_us is not None:
        return f"time {plan.target_us}"
    if plan.target_lsn is not None:
        return f"lsn {plan.target_lsn:X}"
    return "latest"


def restore(
    repo: Repository, target: PgEndpoint, options: RestoreOptions, progress: Progress | None = None
) -> RestoreResult:
    try:
        return Restorer(repo, target, options, progress).run()
    except psycopg.Error as e:
        raise DatabaseError(f"restoring into {target.display()}: {' '.join(str(e).split())}") from None
