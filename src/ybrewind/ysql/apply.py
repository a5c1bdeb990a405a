"""Replay of archived changes into a target database: the apply half of point-in-time restore.

Two layers:

- ``Applier`` turns one change into one statement (INSERT / UPDATE / DELETE / TRUNCATE / DDL),
  rendered once per shape and cached; used for what cannot be batched.
- ``NetBatch`` accumulates the changes of many source transactions and applies their *net effect*
  per table: for a table with a key, the final image of every touched row (deleted rows removed,
  rows of batch start rewritten in place or deleted and re-inserted, new rows COPYed); for tables
  without a key, the changes in order (runs of inserts as one COPY). With
  ``session_replication_role = replica`` (no triggers, no foreign-key checks) a table's final state
  depends only on its own changes in order, so tables are independent of each other.

Exactness under constraints. The net effect of a table is applied in an order of its own, so its
intermediate states are not the source's: that is safe for the key (its operations never hold two
rows with one key) and for deferrable constraints (the caller defers them, ``begin()``, and each
target transaction ends on a source commit, where they held), but not for a non-deferrable unique
index or exclusion constraint on other columns (a unique value moved from one row to another,
possibly a row whose unchanged TOAST value only the target knows). Such tables, and tables without
a key, are applied in the source's statement order (one statement per change, pipelined; runs of
inserts as one COPY): the source passed every immediate check in exactly that order.
TRUNCATE, DDL and relation shape changes are barriers: the batch is applied before them.

Every UPDATE and DELETE must find its row: a change that matches nothing means the copy already
differs from the source, which is an error, never a silent success. Rows of tables without a key
are matched on the text forms of their values, both produced by the target session from values of
the column's own type, so the session's settings (TimeZone, DateStyle...) cannot make them differ.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ybrewind.archive import format as fmt
from ybrewind.errors import DatabaseError
from ybrewind.ysql import script

DDL_FIRST_WORDS = {"CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE", "SECURITY", "REINDEX", "CLUSTER"}


@dataclass
class Relation:
    schema: str
    name: str
    columns: list[str]
    keys: list[str]
    full_identity: bool
    key_index: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.key_index = tuple(i for i, c in enumerate(self.columns) if c in self.keys)

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Relation:
        cols = [c[0] for c in rec["columns"]]
        keys = [c[0] for c in rec["columns"] if c[3]]
        return cls(rec["schema"], rec["name"], cols, keys, rec.get("replica_identity") == "f" or not keys)

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


class Applier:
    """Applies archived changes to one target connection.

    Statements are rendered once per shape and cached as bytes; the caller runs them inside a
    pipeline (no round trip per change) and psycopg prepares the frequent ones on the server.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.relations: dict[int, Relation] = {}
        self._queries: dict[tuple[Any, ...], bytes] = {}
        self._types: dict[int, dict[str, str]] = {}  # target column types of FULL identity tables

    def _render(self, key: tuple[Any, ...], build: Any) -> bytes:
        query = self._queries.get(key)
        if query is None:
            query = self._queries[key] = build().as_bytes(self.conn)
        return query

    def apply(self, change: list[Any]) -> psycopg.Cursor[Any] | None:
        """Send one change; for an UPDATE or DELETE, the cursor whose row count ``check`` verifies
        (in a pipeline, once the pipeline is synced)."""
        kind = change[0]
        execute = self.conn.execute
        if kind == "I":
            relid = change[1]
            rel = self.relations[relid]
            query = self._render(
                ("I", relid, len(rel.columns)),
                lambda: sql.SQL(
                    # OVERRIDING SYSTEM VALUE: identity values come from the source (a no-op elsewhere)
                    "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({})"
                ).format(
                    rel.ident,
                    sql.SQL(", ").join(map(sql.Identifier, rel.columns)),
                    sql.SQL(", ").join(sql.Placeholder() * len(rel.columns)),
                ),
            )
            execute(query, change[2])
        elif kind == "U":
            relid, old, new = change[1], change[2], change[3]
            rel = self.relations[relid]
            # Unchanged TOAST values stay as they are; so do key columns when the key did not change
            # (an identity column GENERATED ALWAYS may not even be assigned its own value).
            same_key = rel.keys if old is None and not rel.full_identity else ()
            set_idx = tuple(
                i
                for i, (c, v) in enumerate(zip(rel.columns, new, strict=True))
                if v != fmt.UNCHANGED_TOAST and c not in same_key
            )
            match = old if old is not None else new
            where_idx = self._where_columns(rel, match)
            query = self._render(("U", relid, set_idx, where_idx), lambda: self._update(relid, set_idx, where_idx))
            return execute(query, [new[i] for i in set_idx] + [match[i] for i in where_idx])
        elif kind == "D":
            relid, old = change[1], change[2]
            rel = self.relations[relid]
            where_idx = self._where_columns(rel, old)
            query = self._render(("D", relid, where_idx), lambda: self._delete(relid, where_idx))
            return execute(query, [old[i] for i in where_idx])
        elif kind == "T":
            names = sql.SQL(", ").join(self.relations[r].ident for r in change[1])
            extra = (" RESTART IDENTITY" if change[3] else "") + (" CASCADE" if change[2] else "")
            execute(sql.SQL("TRUNCATE {}{}").format(names, sql.SQL(extra)))
        elif kind == "TN":  # by name (YugabyteDB: recorded by the archiver's TRUNCATE trigger)
            names = sql.SQL(", ").join(sql.SQL("ONLY {}").format(sql.Identifier(*n)) for n in change[1])
            execute(sql.SQL("TRUNCATE {}").format(names))
        elif kind == "R":
            self.relations[change[1]] = Relation.from_record(change[2])
            self._queries = {k: v for k, v in self._queries.items() if k[1] != change[1]}
            self._types.pop(change[1], None)
        elif kind == "DDL":
            self._ddl(change[2], change[3])
        return None

    def check(self, cursor: psycopg.Cursor[Any], change: list[Any]) -> None:
        """An UPDATE or DELETE must have found its row in the target."""
        if cursor.rowcount != 1:
            rel = self.relations[change[1]]
            what = "UPDATE" if change[0] == "U" else "DELETE"
            raise DatabaseError(
                f"replaying an {what} of {rel.schema}.{rel.name} matched {cursor.rowcount} rows instead of 1: "
                "the target does not hold the row the source changed, so it already differs from the source"
            )

    def apply_checked(self, change: list[Any]) -> None:
        """Apply one change outside a pipeline and verify it at once."""
        cursor = self.apply(change)
        if cursor is not None:
            self.check(cursor, change)

    def column_types(self, relid: int) -> dict[str, str]:
        """The target's type of each column of a relation (as ``format_type`` spells it), cached."""
        types = self._types.get(relid)
        if types is None:
            rows = self.conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                [self.relations[relid].ident.as_string(self.conn)],
            ).fetchall()
            types = self._types[relid] = dict(rows)
        return types

    @staticmethod
    def _where_columns(rel: Relation, values: list[Any]) -> tuple[int, ...]:
        if rel.full_identity:
            return tuple(i for i, v in enumerate(values) if v != fmt.UNCHANGED_TOAST)
        return tuple(i for i, c in enumerate(rel.columns) if c in rel.keys)

    def _condition(self, relid: int, where_idx: tuple[int, ...]) -> sql.Composable:
        rel = self.relations[relid]
        if not rel.full_identity:
            return sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(rel.columns[i])) for i in where_idx)
        # FULL identity compares text forms (every type has one, while json has no equality operator),
        # both printed by this session from a value of the column's type: the archived text is read
        # as that type first, so the session's TimeZone or DateStyle cannot make equal values differ.
        types = self.column_types(relid)
        return sql.SQL(" AND ").join(
            sql.SQL("{c}::text IS NOT DISTINCT FROM (%s::{t})::text").format(
                c=sql.Identifier(rel.columns[i]), t=sql.SQL(types[rel.columns[i]])
            )
            for i in where_idx
        )

    def _update(self, relid: int, set_idx: tuple[int, ...], where_idx: tuple[int, ...]) -> sql.Composable:
        rel = self.relations[relid]
        assignment = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(rel.columns[i])) for i in set_idx)
        where = self._condition(relid, where_idx)
        if rel.full_identity:  # one row only, even among identical duplicates
            return sql.SQL("UPDATE {t} SET {a} WHERE ctid = (SELECT ctid FROM {t} WHERE {w} LIMIT 1)").format(
                t=rel.ident, a=assignment, w=where
            )
        return sql.SQL("UPDATE {} SET {} WHERE {}").format(rel.ident, assignment, where)

    def _delete(self, relid: int, where_idx: tuple[int, ...]) -> sql.Composable:
        rel = self.relations[relid]
        where = self._condition(relid, where_idx)
        if rel.full_identity:
            return sql.SQL("DELETE FROM {t} WHERE ctid = (SELECT ctid FROM {t} WHERE {w} LIMIT 1)").format(
                t=rel.ident, w=where
            )
        return sql.SQL("DELETE FROM {} WHERE {}").format(rel.ident, where)

    def _ddl(self, command: str, search_path: str) -> None:
        """Replay a captured DDL statement; the DML a multi-statement query carried is in the log already."""
        self.conn.execute(
            sql.SQL("SELECT pg_catalog.set_config('search_path', {}, true)").format(sql.Literal(search_path))
        )
        for item in script.iter_script(io.StringIO(command), "<captured DDL>"):
            if isinstance(item, script.Statement):
                words = item.sql.lstrip("( \n\t").split(None, 1)
                if words and words[0].upper() in DDL_FIRST_WORDS:
                    self.conn.execute(item.sql.encode())
        self.conn.execute("SELECT pg_catalog.set_config('search_path', '', true)")
        self._queries.clear()  # shapes and types may have changed
        self._types.clear()


def net_effect_exact(keys: list[str], indexes: list[tuple[bool, bool, list[str]]]) -> bool:
    """Whether a keyed table's net effect may be applied out of the source's order, given its unique
    and exclusion indexes as (exclusion or expression, deferrable, columns): each must be deferrable
    (checked at commit) or a plain unique index implied by the key (its columns include the key's)."""
    return all(deferrable or (not special and set(keys) <= set(columns)) for special, deferrable, columns in indexes)


class _Partial:
    """A row image with unchanged-TOAST holes whose values only the target knows."""

    __slots__ = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = values


_DELETED = None


class NetBatch:
    """Net effect of a run of changes, applied with bulk operations (see the module docstring)."""

    def __init__(self, applier: Applier) -> None:
        self.applier = applier
        self.conn = applier.conn
        self.keyed: dict[int, dict[tuple[Any, ...], list[Any] | _Partial | None]] = {}
        self.preexisting: dict[int, set[tuple[Any, ...]]] = {}  # keys that may exist at batch start
        self.ordered: dict[int, list[list[Any]]] = {}
        self._temp_tables: dict[tuple[int, str], sql.Identifier] = {}
        self._in_place: dict[int, bool] = {}
        self._net: dict[int, bool] = {}  # per table: may its net effect be applied out of order?

    def begin(self) -> None:
        """Start of a target transaction: deferrable constraints are checked at its end, where the
        state is the source's at a commit (see the module docstring)."""
        self.conn.execute("SET CONSTRAINTS ALL DEFERRED")

    @property
    def relations(self) -> dict[int, Relation]:
        return self.applier.relations

    def _key(self, rel: Relation, values: list[Any]) -> tuple[Any, ...]:
        return tuple(values[i] for i in rel.key_index)

    def add(self, change: list[Any]) -> None:
        kind = change[0]
        if kind not in ("I", "U", "D"):
            self.flush()
            if kind == "R":
                self._drop_temp_tables()
                self.applier.apply(change)
                return
            # TRUNCATE and ALTER refuse a table with pending deferred checks: run those first (the
            # state is the source's at this statement boundary, where its immediate checks held)
            self.conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
            if kind == "DDL":
                self._drop_temp_tables()
            self.applier.apply(change)
            self.conn.execute("SET CONSTRAINTS ALL DEFERRED")
            return
        relid = change[1]
        rel = self.relations[relid]
        if not self._net_effect_exact(rel, relid):
            self.ordered.setdefault(relid, []).append(change)
            return
        rows = self.keyed.setdefault(relid, {})
        seen = self.preexisting.setdefault(relid, set())
        if kind == "I":
            rows[self._key(rel, change[2])] = change[2]
            return
        if kind == "D":
            key = self._key(rel, change[2])
            if key not in rows:
                seen.add(key)
            rows[key] = _DELETED
            return
        old, new = change[2], change[3]
        partial = fmt.UNCHANGED_TOAST in new
        if old is not None:  # the key changed
            if partial:  # the hole's value lives under the old key in the target: apply it alone
                self.flush()
                self.applier.apply_checked(change)
                return
            old_key = self._key(rel, old)
            if old_key not in rows:
                seen.add(old_key)
            rows[old_key] = _DELETED
        key = self._key(rel, new)
        previous = rows.get(key, ...)
        if previous is ... and old is None:
            seen.add(key)  # updated in place: the row existed when the batch began
        # (a key an UPDATE moved a row to did not exist then, unless the batch deleted it first)
        if not partial:
            rows[key] = new
        elif isinstance(previous, list):
            rows[key] = [p if v == fmt.UNCHANGED_TOAST else v for p, v in zip(previous, new, strict=True)]
        elif isinstance(previous, _Partial):
            rows[key] = _Partial(
                [p if v == fmt.UNCHANGED_TOAST else v for p, v in zip(previous.values, new, strict=True)]
            )
        elif previous is ...:
            rows[key] = _Partial(new)
        else:  # an update of a row deleted earlier in the batch cannot happen; keep exact order anyway
            self.flush()
            self.applier.apply_checked(change)

    def flush(self) -> None:
        for relid, rows in self.keyed.items():
            if rows:
                self._flush_keyed(self.relations[relid], relid, rows, self.preexisting.get(relid, set()))
        for relid, changes in self.ordered.items():
            self._flush_ordered(self.relations[relid], changes)
        self.keyed, self.preexisting, self.ordered = {}, {}, {}

    def _flush_keyed(
        self, rel: Relation, relid: int, rows: dict[tuple[Any, ...], Any], preexisting: set[tuple[Any, ...]]
    ) -> None:
        in_place = self._updatable_in_place(rel, relid)
        gone: list[tuple[Any, ...]] = []  # rows of batch start to remove
        rewritten: list[list[Any]] = []  # rows of batch start with a whole new image
        fresh: list[list[Any]] = []  # rows that did not exist at batch start
        partials: list[list[Any]] = []
        for key, image in rows.items():
            if isinstance(image, _Partial):
                partials.append(image.values)
            elif key not in preexisting:
                if image is not _DELETED:
                    fresh.append(image)
            elif image is _DELETED:
                gone.append(key)
            elif in_place:
                rewritten.append(image)
            else:
                gone.append(key)
                fresh.append(image)
        if gone:
            self._delete_keys(rel, relid, gone)
        if rewritten:
            self._update_from(rel, relid, rewritten)
        if fresh:
            self._copy_in(rel, fresh)
        if partials:
            self._pipelined([["U", relid, None, values] for values in partials])

    def _net_effect_exact(self, rel: Relation, relid: int) -> bool:
        """Whether the table's net effect may be applied in an order of its own: it has a key, and
        every unique index or exclusion constraint of the target is deferrable or implied by the
        key (a plain unique index on columns that include the key's)."""
        cached = self._net.get(relid)
        if cached is None:
            cached = not rel.full_identity
            if cached:
                rows = self.conn.execute(
                    "SELECT i.indisexclusion OR i.indexprs IS NOT NULL, coalesce(c.condeferrable, false), "
                    "array(SELECT a.attname::text FROM unnest(i.indkey) k JOIN pg_attribute a "
                    "      ON a.attrelid = i.indrelid AND a.attnum = k) "
                    "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid "
                    "AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x') "
                    "WHERE i.indrelid = %s::regclass AND (i.indisunique OR i.indisexclusion)",
                    [rel.ident.as_string(self.conn)],
                ).fetchall()
                cached = net_effect_exact(rel.keys, [(bool(x), bool(d), list(c)) for x, d, c in rows])
            self._net[relid] = cached
        return cached

    def _updatable_in_place(self, rel: Relation, relid: int) -> bool:
        """Whether one UPDATE ... FROM may rewrite rows: no non-key column is an identity GENERATED
        ALWAYS (which UPDATE may not assign). (Other uniqueness is deferred or implied by the key,
        ``_net_effect_exact``, so a set-wise update cannot trip over it halfway.)"""
        cached = self._in_place.get(relid)
        if cached is None:
            row = self.conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = %(t)s::regclass AND a.attnum > 0 "
                "AND a.attidentity = 'a' AND NOT a.attname = ANY(%(keys)s))",
                {"t": rel.ident.as_string(self.conn), "keys": list(rel.keys)},
            ).fetchone()
            cached = self._in_place[relid] = bool(row and row[0])
        return cached

    def _pipelined(self, changes: list[list[Any]]) -> None:
        """One statement per change, pipelined; then every UPDATE and DELETE must have found its row.

        A failure surfaces as the server's one error: caught inside the pipeline block, because a
        failing block makes psycopg log the pipeline's own failure to end as a second error."""
        for relid in {c[1] for c in changes if self.relations[c[1]].full_identity}:
            self.applier.column_types(relid)  # a catalog query, before the pipeline
        sent: list[tuple[psycopg.Cursor[Any], list[Any]]] = []
        failure: psycopg.Error | None = None
        try:
            with self.conn.pipeline() as pipeline:
                try:
                    for change in changes:
                        cursor = self.applier.apply(change)
                        if cursor is not None:
                            sent.append((cursor, change))
                    pipeline.sync()
                except psycopg.Error as e:
                    failure = e
        except psycopg.Error as e:
            failure = failure or e
        if failure is not None:
            raise failure
        for cursor, change in sent:
            self.applier.check(cursor, change)

    def _delete_keys(self, rel: Relation, relid: int, keys: list[tuple[Any, ...]]) -> None:
        temp = self._temp_table(rel, relid, "keys", [rel.columns[i] for i in rel.key_index])
        with self.conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(temp)) as copy:
                for key in keys:
                    copy.write_row(key)
            cur.execute(
                sql.SQL("DELETE FROM {} AS t USING {} AS k WHERE {}").format(rel.ident, temp, self._match(rel, "k"))
            )
            self._expect(rel, "DELETE", cur.rowcount, len(keys))
            cur.execute(sql.SQL("TRUNCATE {}").format(temp))

    def _update_from(self, rel: Relation, relid: int, images: list[list[Any]]) -> None:
        others = [c for i, c in enumerate(rel.columns) if i not in rel.key_index]
        if not others:
            return  # nothing but the key, which is unchanged
        temp = self._temp_table(rel, relid, "rows", rel.columns)
        with self.conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(temp)) as copy:
                for image in images:
                    copy.write_row(image)
            assignment = sql.SQL(", ").join(sql.SQL("{c} = r.{c}").format(c=sql.Identifier(c)) for c in others)
            cur.execute(
                sql.SQL("UPDATE {} AS t SET {} FROM {} AS r WHERE {}").format(
                    rel.ident, assignment, temp, self._match(rel, "r")
                )
            )
            self._expect(rel, "UPDATE", cur.rowcount, len(images))
            cur.execute(sql.SQL("TRUNCATE {}").format(temp))

    @staticmethod
    def _expect(rel: Relation, what: str, found: int, expected: int) -> None:
        if found != expected:
            raise DatabaseError(
                f"replaying {what}s of {rel.schema}.{rel.name} matched {found} rows instead of {expected}: "
                "the target does not hold rows the source changed, so it already differs from the source"
            )

    @staticmethod
    def _match(rel: Relation, alias: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("t.{c} = {a}.{c}").format(c=sql.Identifier(rel.columns[i]), a=sql.Identifier(alias))
            for i in rel.key_index
        )

    def _flush_ordered(self, rel: Relation, changes: list[list[Any]]) -> None:
        """Statement order: runs of inserts as one COPY (rows inserted one by one, in order), runs of
        other changes pipelined."""
        start = 0
        while start < len(changes):
            inserting = changes[start][0] == "I"
            end = start
            while end < len(changes) and (changes[end][0] == "I") == inserting:
                end += 1
            if inserting:
                self._copy_in(rel, [c[2] for c in changes[start:end]])
            else:
                self._pipelined(changes[start:end])
            start = end

    def _copy_in(self, rel: Relation, rows: list[list[Any]]) -> None:
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(
            rel.ident, sql.SQL(", ").join(map(sql.Identifier, rel.columns))
        )
        with self.conn.cursor() as cur, cur.copy(query) as copy:
            for row in rows:
                copy.write_row(row)

    def _temp_table(self, rel: Relation, relid: int, purpose: str, columns: list[str]) -> sql.Identifier:
        """A temp table shaped like some of ``rel``'s columns (types copied from the target table)."""
        temp = self._temp_tables.get((relid, purpose))
        if temp is None:
            temp = sql.Identifier(f"_ybrewind_{purpose}_{relid}")
            cols = sql.SQL(", ").join(map(sql.Identifier, columns))
            self.conn.execute(
                sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA").format(
                    temp, cols, rel.ident
                )
            )
            self._temp_tables[(relid, purpose)] = temp
        return temp

    def _drop_temp_tables(self) -> None:
        for temp in self._temp_tables.values():
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(temp))
        self._temp_tables, self._in_place, self._net = {}, {}, {}
