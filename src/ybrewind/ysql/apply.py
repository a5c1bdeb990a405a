"""Replay of archived changes into a target database: the apply half of point-in-time restore.

Two layers:

- ``Applier`` turns one change into one statement (INSERT / UPDATE / DELETE / TRUNCATE / DDL),
  rendered once per shape and cached; used for what cannot be batched.
- ``NetBatch`` accumulates the changes of many source transactions and applies their *net effect*
  per table: for a table with a key, the final image of every touched row (deleted rows removed,
  others deleted and re-inserted with one COPY); for tables without a key, the changes in order
  (runs of inserts as one COPY). This is exact because, with ``session_replication_role = replica``
  (no triggers, no foreign-key checks), a table's final state depends only on its own changes in
  order, and every intermediate state (a subset of the final rows) satisfies its unique and
  exclusion constraints. TRUNCATE, DDL and relation shape changes are barriers: the batch is applied
  before them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ybrewind.archive import format as fmt
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

    def _render(self, key: tuple[Any, ...], build: Any) -> bytes:
        query = self._queries.get(key)
        if query is None:
            query = self._queries[key] = build().as_bytes(self.conn)
        return query

    def apply(self, change: list[Any]) -> None:
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
            query = self._render(("U", relid, set_idx, where_idx), lambda: self._update(rel, set_idx, where_idx))
            execute(query, [new[i] for i in set_idx] + [match[i] for i in where_idx])
        elif kind == "D":
            relid, old = change[1], change[2]
            rel = self.relations[relid]
            where_idx = self._where_columns(rel, old)
            query = self._render(("D", relid, where_idx), lambda: self._delete(rel, where_idx))
            execute(query, [old[i] for i in where_idx])
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
        elif kind == "DDL":
            self._ddl(change[2], change[3])

    @staticmethod
    def _where_columns(rel: Relation, values: list[Any]) -> tuple[int, ...]:
        if rel.full_identity:
            return tuple(i for i, v in enumerate(values) if v != fmt.UNCHANGED_TOAST)
        return tuple(i for i, c in enumerate(rel.columns) if c in rel.keys)

    def _condition(self, rel: Relation, where_idx: tuple[int, ...]) -> sql.Composable:
        # FULL identity compares text forms: every type has one, while json has no equality operator.
        template = sql.SQL("{}::text IS NOT DISTINCT FROM %s::text" if rel.full_identity else "{} = %s")
        return sql.SQL(" AND ").join(template.format(sql.Identifier(rel.columns[i])) for i in where_idx)

    def _update(self, rel: Relation, set_idx: tuple[int, ...], where_idx: tuple[int, ...]) -> sql.Composable:
        assignment = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(rel.columns[i])) for i in set_idx)
        where = self._condition(rel, where_idx)
        if rel.full_identity:  # one row only, even among identical duplicates
            return sql.SQL("UPDATE {t} SET {a} WHERE ctid = (SELECT ctid FROM {t} WHERE {w} LIMIT 1)").format(
                t=rel.ident, a=assignment, w=where
            )
        return sql.SQL("UPDATE {} SET {} WHERE {}").format(rel.ident, assignment, where)

    def _delete(self, rel: Relation, where_idx: tuple[int, ...]) -> sql.Composable:
        where = self._condition(rel, where_idx)
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
        self._queries.clear()  # shapes may have changed


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

    @property
    def relations(self) -> dict[int, Relation]:
        return self.applier.relations

    def _key(self, rel: Relation, values: list[Any]) -> tuple[Any, ...]:
        return tuple(values[i] for i in rel.key_index)

    def add(self, change: list[Any]) -> None:
        kind = change[0]
        if kind not in ("I", "U", "D"):
            self.flush()
            if kind in ("R", "DDL"):
                self._drop_temp_tables()
            self.applier.apply(change)
            return
        relid = change[1]
        rel = self.relations[relid]
        if rel.full_identity:
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
                self.applier.apply(change)
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
            self.applier.apply(change)

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
            with self.conn.pipeline():
                for values in partials:
                    self.applier.apply(["U", relid, None, values])

    def _updatable_in_place(self, rel: Relation, relid: int) -> bool:
        """Whether one UPDATE ... FROM may rewrite rows: only when the key is the table's sole
        uniqueness (another unique or exclusion constraint could be violated halfway through a
        set-wise update, which delete-then-insert never does) and no non-key column is an identity
        GENERATED ALWAYS (which UPDATE may not assign)."""
        cached = self._in_place.get(relid)
        if cached is None:
            row = self.conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = %(t)s::regclass "
                "AND ((i.indisunique AND NOT i.indisprimary) OR i.indisexclusion)) "
                "AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = %(t)s::regclass AND a.attnum > 0 "
                "AND a.attidentity = 'a' AND NOT a.attname = ANY(%(keys)s))",
                {"t": rel.ident.as_string(self.conn), "keys": list(rel.keys)},
            ).fetchone()
            cached = self._in_place[relid] = bool(row and row[0])
        return cached

    def _delete_keys(self, rel: Relation, relid: int, keys: list[tuple[Any, ...]]) -> None:
        temp = self._temp_table(rel, relid, "keys", [rel.columns[i] for i in rel.key_index])
        with self.conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(temp)) as copy:
                for key in keys:
                    copy.write_row(key)
            cur.execute(
                sql.SQL("DELETE FROM {} AS t USING {} AS k WHERE {}").format(rel.ident, temp, self._match(rel, "k"))
            )
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
            cur.execute(sql.SQL("TRUNCATE {}").format(temp))

    @staticmethod
    def _match(rel: Relation, alias: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("t.{c} = {a}.{c}").format(c=sql.Identifier(rel.columns[i]), a=sql.Identifier(alias))
            for i in rel.key_index
        )

    def _flush_ordered(self, rel: Relation, changes: list[list[Any]]) -> None:
        run: list[list[Any]] = []
        for change in changes:
            if change[0] == "I":
                run.append(change[2])
                continue
            if run:
                self._copy_in(rel, run)
                run = []
            self.applier.apply(change)
        if run:
            self._copy_in(rel, run)

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
        self._temp_tables, self._in_place = {}, {}
