"""Statement execution: DDL, INSERT/UPDATE/DELETE/BATCH and SELECT (with paging) over storage.py.

``Executor.analyze`` works out, for a parsed statement, the type of every bind marker, the partition
key marker indexes and the result columns (what PREPARE returns); ``Executor.execute`` runs it.
Writes are first validated and turned into closures, then applied, so a failing BATCH changes nothing.

Paging: rows come out in partition token order (= partition_hash order), then clustering order. The
paging state is a small JSON document holding the position of the last returned row (serialized
partition key + clustering values) and the remaining LIMIT, so pages resume correctly even if rows
are written between pages.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import cql
from .datatypes import (
    UNSET,
    CqlType,
    canonical_map,
    canonical_set,
    collect_markers,
    deserialize,
    literal_value,
    native,
    resolve,
    serialize,
    sort_key,
)
from .errors import CONFIG_ERROR, SYNTAX_ERROR, UNAUTHORIZED, CqlError, invalid
from .protocol import (
    QueryParams,
    Result,
    RowsResult,
    SchemaChangeResult,
    SetKeyspaceResult,
    VoidResult,
)
from .storage import (
    MAX_TTL,
    Catalog,
    Cell,
    Clock,
    Column,
    Index,
    Keyspace,
    Partition,
    Row,
    Table,
    already_exists,
    build_table,
    partition_hash_of,
    reconcile,
    token_of,
)
from .system_tables import SystemContext, materialize

BIGINT, INT, BOOLEAN = native("bigint"), native("int"), native("boolean")
FILTERING_MESSAGE = (
    "Cannot execute this query as it might involve data filtering and thus may have unpredictable "
    "performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING"
)


@dataclass
class ClientState:
    """Per-connection state: the current keyspace and the address the client connected to."""

    keyspace: str | None = None
    address: str = "127.0.0.1"
    port: int = 9042


@dataclass
class Analysis:
    keyspace: str
    table: str
    bind: list[tuple[str, CqlType]]
    pk_indexes: list[int]
    result_columns: list[tuple[str, CqlType]] | None


Getter = Callable[[Partition, tuple | None, Row | None, int], Any]
Mutation = Callable[[], None]


@dataclass
class Plan:
    """How a SELECT finds its rows."""

    pk_values: list[list[Any]] | None  # candidate values per partition key column (= / IN), or None
    token_bounds: list[tuple[str, int]]
    hash_bounds: list[tuple[str, int]]
    filters: list[tuple[Column, str, Any]]  # row-level conditions (clustering and other columns)


@dataclass
class Resume:
    position: tuple[int, bytes]  # (token, partition key bytes) of the last returned row
    clustering: tuple | None  # its clustering sort key (None: a whole partition was returned)
    left: int | None  # remaining LIMIT


class Executor:
    def __init__(self, catalog: Catalog, clock: Clock, cassandra: bool) -> None:
        self.catalog = catalog
        self.clock = clock
        self.cassandra = cassandra
        self.schema_listeners: list[Callable[[SchemaChangeResult], None]] = []

    # ---------------------------------------------------------------------------------------------
    # Entry points
    # ---------------------------------------------------------------------------------------------

    def analyze(self, parsed: cql.Parsed, session: ClientState) -> Analysis:
        stmt = parsed.statement
        markers: dict[int, tuple[str, CqlType]] = {}
        pk_indexes: list[int] = []
        result_columns = None
        keyspace = table_name = ""
        if isinstance(stmt, cql.Batch):
            for inner in stmt.statements:
                table = self.table(inner.keyspace, inner.table, session)
                self._statement_markers(inner, table, markers)
                keyspace, table_name = keyspace or table.keyspace, table_name or table.name
            self._using_markers(stmt.using, markers)
        elif isinstance(stmt, cql.Insert | cql.Update | cql.Delete | cql.Select):
            table = self.table(stmt.keyspace, stmt.table, session)
            keyspace, table_name = table.keyspace, table.name
            self._statement_markers(stmt, table, markers)
            pk_indexes = self._pk_indexes(stmt, table)
            if isinstance(stmt, cql.Select):
                result_columns = [(name, ctype) for name, ctype, _ in self._selection(table, stmt)]
        missing = [i for i in range(parsed.marker_count) if i not in markers]
        if missing:
            raise invalid(f"Bind markers are not supported at this position ({type(stmt).__name__})")
        bind = [markers[i] for i in range(parsed.marker_count)]
        return Analysis(keyspace, table_name, bind, pk_indexes, result_columns)

    def execute(self, parsed: cql.Parsed, session: ClientState, params: QueryParams) -> Result:
        stmt = parsed.statement
        if isinstance(stmt, cql.Insert | cql.Update | cql.Delete | cql.Select | cql.Batch):
            analysis = self.analyze(parsed, session)
            bound = self._decode(analysis.bind, params.values)
            now = self.clock.now_us()
            default_ts = params.timestamp if params.timestamp is not None else now
            if isinstance(stmt, cql.Select):
                return self._select(stmt, session, bound, params, now)
            if isinstance(stmt, cql.Insert) and stmt.if_not_exists:
                return self._insert_if_not_exists(stmt, session, bound, default_ts, now)
            if isinstance(stmt, cql.Batch):
                default_ts = self._timestamp(stmt.using, bound, default_ts)
                mutations = []
                for inner in stmt.statements:
                    mutations += self._mutations(inner, session, bound, default_ts, now, batch=stmt.kind)
            else:
                mutations = self._mutations(stmt, session, bound, default_ts, now)
            for apply in mutations:
                apply()
            return VoidResult()
        if parsed.marker_count:
            raise invalid("Bind variables are not allowed in this statement")
        return self._ddl(stmt, session)

    def execute_batch(
        self, kind: str, entries: list[tuple[cql.Parsed, list[Any]]], session: ClientState, params: QueryParams
    ) -> Result:
        """A protocol BATCH message: each entry is a parsed statement with its own bound values."""
        now = self.clock.now_us()
        default_ts = params.timestamp if params.timestamp is not None else now
        mutations: list[Mutation] = []
        for parsed, values in entries:
            stmt = parsed.statement
            if not isinstance(stmt, cql.Insert | cql.Update | cql.Delete):
                raise invalid(f"Invalid statement in batch: only UPDATE, INSERT and DELETE are allowed ({stmt})")
            analysis = self.analyze(parsed, session)
            bound = self._decode(analysis.bind, values)
            mutations += self._mutations(stmt, session, bound, default_ts, now, batch=kind)
        for apply in mutations:
            apply()
        return VoidResult()

    # ---------------------------------------------------------------------------------------------
    # Names and values
    # ---------------------------------------------------------------------------------------------

    def keyspace_name(self, keyspace: str | None, session: ClientState) -> str:
        name = keyspace or session.keyspace
        if not name:
            raise invalid("No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")
        return name

    def table(self, keyspace: str | None, name: str, session: ClientState) -> Table:
        return self.catalog.table(self.keyspace_name(keyspace, session), name)

    def _writable(self, table: Table) -> None:
        if self.catalog.keyspaces[table.keyspace].system:
            raise CqlError(UNAUTHORIZED, f"{table.keyspace} keyspace is not user-modifiable")

    @staticmethod
    def _decode(bind: list[tuple[str, CqlType]], values: list[Any]) -> list[Any]:
        if len(values) != len(bind):
            raise invalid(f"There were {len(bind)} markers(?) in CQL but {len(values)} bound variables")
        out = []
        for (_, ctype), raw in zip(bind, values, strict=True):
            out.append(raw if raw is None or raw is UNSET else deserialize(ctype, raw))
        return out

    @staticmethod
    def _value(ctype: CqlType, term: Any, bound: list[Any]) -> Any:
        return literal_value(ctype, term, bound.__getitem__)

    def _timestamp(self, using: cql.Using, bound: list[Any], default: int) -> int:
        if using.timestamp is None:
            return default
        value = self._value(BIGINT, using.timestamp, bound)
        if value is None:
            raise invalid("Invalid null value of timestamp")
        return default if value is UNSET else value

    def _ttl(self, using: cql.Using, bound: list[Any], table: Table) -> int | None:
        ttl = None
        if using.ttl is not None:
            ttl = self._value(INT, using.ttl, bound)
            if ttl is None:
                raise invalid("Invalid null value of TTL")
            if ttl is not UNSET and not 0 <= ttl <= MAX_TTL:
                raise invalid(f"ttl is out of range: {ttl} (must be between 0 and {MAX_TTL})")
        if ttl is None or ttl is UNSET:
            ttl = table.options.get("default_time_to_live") or 0
        return ttl or None

    # ---------------------------------------------------------------------------------------------
    # Bind markers
    # ---------------------------------------------------------------------------------------------

    def _using_markers(self, using: cql.Using, out: dict[int, tuple[str, CqlType]]) -> None:
        if using.timestamp is not None:
            collect_markers(BIGINT, using.timestamp, "[timestamp]", out)
        if using.ttl is not None:
            collect_markers(INT, using.ttl, "[ttl]", out)

    def _statement_markers(self, stmt: Any, table: Table, out: dict[int, tuple[str, CqlType]]) -> None:
        if isinstance(stmt, cql.Insert):
            for name, term in zip(stmt.columns, stmt.values, strict=True):
                col = table.column(name)
                collect_markers(col.type, term, col.name, out)
        elif isinstance(stmt, cql.Update):
            for a in stmt.assignments:
                col = table.column(a.column)
                t = col.type
                if a.op == "set_elem":
                    if t.kind == "map":
                        collect_markers(t.params[0], a.key, f"key({col.name})", out)
                        collect_markers(t.params[1], a.value, f"value({col.name})", out)
                    elif t.kind == "list":
                        collect_markers(INT, a.key, f"idx({col.name})", out)
                        collect_markers(t.params[0], a.value, col.name, out)
                elif t.kind == "counter":
                    collect_markers(BIGINT, a.value, col.name, out)
                elif a.op == "sub" and t.kind == "map":
                    collect_markers(CqlType("set", (t.params[0],), True), a.value, col.name, out)
                else:
                    collect_markers(t, a.value, col.name, out)
        elif isinstance(stmt, cql.Delete):
            for name, key in stmt.targets:
                col = table.column(name)
                if key is not None:
                    key_type = col.type.params[0] if col.type.kind == "map" else INT
                    collect_markers(key_type, key, f"key({col.name})", out)
        if not isinstance(stmt, cql.Select):
            self._using_markers(stmt.using, out)
        for rel in stmt.where if not isinstance(stmt, cql.Insert) else []:
            name, ctype = self._relation_target(table, rel)
            if rel.op == "IN" and not isinstance(rel.value, list):
                collect_markers(CqlType("list", (ctype,), True), rel.value, f"in({name})", out)
            else:
                for term in rel.value if isinstance(rel.value, list) else [rel.value]:
                    collect_markers(ctype, term, name, out)
        if isinstance(stmt, cql.Select) and stmt.limit is not None:
            collect_markers(INT, stmt.limit, "[limit]", out)

    def _relation_target(self, table: Table, rel: cql.Relation) -> tuple[str, CqlType]:
        if rel.function is None:
            col = table.column(rel.columns[0])
            return col.name, col.type
        pk = [c.name for c in table.partition_key]
        if rel.function == "partition_hash" and self.cassandra:
            raise invalid("Unknown function 'partition_hash'")
        if rel.columns != pk:
            raise invalid(f"The {rel.function} function arguments must be the partition key columns in order: "
                          f"{', '.join(pk)}")
        if rel.op == "IN":
            raise invalid(f"IN is not supported on {rel.function}()")
        if rel.function == "token":
            return "partition key token", BIGINT
        return "partition_hash", INT

    @staticmethod
    def _pk_indexes(stmt: Any, table: Table) -> list[int]:
        found: dict[str, int] = {}
        if isinstance(stmt, cql.Insert):
            for name, term in zip(stmt.columns, stmt.values, strict=True):
                if isinstance(term, cql.Marker):
                    found[name] = term.index
        else:
            for rel in stmt.where:
                if rel.function is None and rel.op == "=" and isinstance(rel.value, cql.Marker):
                    found[rel.columns[0]] = rel.value.index
        pk = [c.name for c in table.partition_key]
        return [found[n] for n in pk] if all(n in found for n in pk) else []

    # ---------------------------------------------------------------------------------------------
    # DDL
    # ---------------------------------------------------------------------------------------------

    def _changed(self, change: str, target: str, keyspace: str, name: str | None = None) -> SchemaChangeResult:
        self.catalog.bump()
        result = SchemaChangeResult(change, target, keyspace, name)
        for listener in self.schema_listeners:
            listener(result)
        return result

    def _user_keyspace(self, name: str) -> Keyspace:
        ks = self.catalog.keyspace(name)
        if ks.system:
            raise CqlError(UNAUTHORIZED, f"{name} keyspace is not user-modifiable")
        return ks

    def _ddl(self, stmt: Any, session: ClientState) -> Result:
        if isinstance(stmt, cql.UseKeyspace):
            self.catalog.keyspace(stmt.name)
            session.keyspace = stmt.name
            return SetKeyspaceResult(stmt.name)
        if isinstance(stmt, cql.CreateKeyspace):
            return self._create_keyspace(stmt)
        if isinstance(stmt, cql.DropKeyspace):
            if stmt.name not in self.catalog.keyspaces and stmt.if_exists:
                return VoidResult()
            ks = self._user_keyspace(stmt.name)
            if not self.cassandra and (ks.tables or ks.types):
                # YugabyteDB refuses a non-empty keyspace (docs/content/stable/api/ycql/ddl_drop_keyspace.md,
                # Semantics; message from src/yb/master/master-test.cc, NAMESPACE_IS_NOT_EMPTY)
                what = f"table: {next(iter(ks.tables))}" if ks.tables else f"type: {next(iter(ks.types))}"
                raise invalid(f"Cannot delete keyspace which has {what}")
            del self.catalog.keyspaces[stmt.name]
            return self._changed("DROPPED", "KEYSPACE", stmt.name)
        if isinstance(stmt, cql.CreateType):
            return self._create_type(stmt, session)
        if isinstance(stmt, cql.CreateTable):
            return self._create_table(stmt, session)
        if isinstance(stmt, cql.CreateIndex):
            return self._create_index(stmt, session)
        if isinstance(stmt, cql.Drop):
            return self._drop(stmt, session)
        if isinstance(stmt, cql.Truncate):
            table = self.table(stmt.keyspace, stmt.table, session)
            self._writable(table)
            table.truncate()
            return VoidResult()
        raise CqlError(SYNTAX_ERROR, f"cqlsim does not support {type(stmt).__name__}")

    def _create_keyspace(self, stmt: cql.CreateKeyspace) -> Result:
        if stmt.name in self.catalog.keyspaces:
            if stmt.if_not_exists:
                return VoidResult()
            raise already_exists("keyspace", stmt.name)
        replication = dict(stmt.replication)
        strategy = replication.get("class")
        if not strategy:
            raise CqlError(CONFIG_ERROR, "Missing replication strategy class")
        if "." not in strategy:
            strategy = "org.apache.cassandra.locator." + strategy
        replication["class"] = strategy
        if strategy.endswith(".SimpleStrategy") and "replication_factor" not in replication:
            raise CqlError(CONFIG_ERROR, "SimpleStrategy requires a replication_factor strategy option.")
        self.catalog.keyspaces[stmt.name] = Keyspace(stmt.name, replication, stmt.durable_writes)
        return self._changed("CREATED", "KEYSPACE", stmt.name)

    def _create_type(self, stmt: cql.CreateType, session: ClientState) -> Result:
        ks = self._user_keyspace(self.keyspace_name(stmt.keyspace, session))
        if stmt.name in ks.types:
            if stmt.if_not_exists:
                return VoidResult()
            raise already_exists("type", ks.name, stmt.name)
        names = [n for n, _ in stmt.fields]
        if len(set(names)) != len(names):
            raise invalid(f"Duplicate field name in type {stmt.name}")
        types = tuple(
            resolve(t, ks.name, self.catalog.lookup_udt, allow_jsonb=not self.cassandra, freeze=True)
            for _, t in stmt.fields
        )
        ks.types[stmt.name] = CqlType("udt", types, False, ks.name, stmt.name, tuple(names))
        return self._changed("CREATED", "TYPE", ks.name, stmt.name)

    def _create_table(self, stmt: cql.CreateTable, session: ClientState) -> Result:
        ks = self._user_keyspace(self.keyspace_name(stmt.keyspace, session))
        if stmt.name in ks.tables:
            if stmt.if_not_exists:
                return VoidResult()
            raise already_exists("table", ks.name, stmt.name)
        ks.tables[stmt.name] = build_table(stmt, ks.name, self.catalog, self.cassandra)
        return self._changed("CREATED", "TABLE", ks.name, stmt.name)

    def _create_index(self, stmt: cql.CreateIndex, session: ClientState) -> Result:
        table = self.table(stmt.keyspace, stmt.table, session)
        ks = self._user_keyspace(table.keyspace)
        columns = stmt.hash_columns + stmt.range_columns
        name = stmt.name or f"{table.name}_{'_'.join(columns)}_idx"
        if ks.find_index(name) or name in ks.tables:
            if stmt.if_not_exists:
                return VoidResult()
            raise already_exists("index", ks.name, name)
        for col in columns + stmt.include:
            table.column(col)
        if self.cassandra and (stmt.unique or stmt.include or stmt.where or len(columns) > 1 or stmt.options
                               or stmt.clustering_order):
            raise CqlError(SYNTAX_ERROR, "cqlsim (Cassandra mode) supports only CREATE INDEX [name] ON t (column)")
        transactions = dict(table.options.get("transactions") or {"enabled": "false"})
        tablets = None
        for key, opt in stmt.options.items():
            if key == "transactions" and isinstance(opt.value, dict):
                transactions = dict(opt.value)
            elif key == "tablets" and isinstance(opt.value, int):
                tablets = opt.value
            else:
                raise CqlError(SYNTAX_ERROR, f"cqlsim does not support index option {key} = {opt.text}")
        if not self.cassandra:
            table_txn = (table.options.get("transactions") or {}).get("enabled") == "true"
            user_enforced = transactions.get("consistency_level") == "user_enforced"
            if not table_txn and not user_enforced:
                raise invalid("Invalid Table Definition. Transactions must be enabled in the indexed table "
                              "(or use WITH transactions = {'enabled': 'false', 'consistency_level': 'user_enforced'})")
        # CLUSTERING ORDER BY may name the index's range columns and the table's primary key columns that
        # YugabyteDB appends to the index key (ycqlsh DESC prints both).
        orderable = stmt.range_columns + [c.name for c in table.columns.values()
                                          if c.is_key and c.name not in columns]
        for col in stmt.clustering_order:
            if col not in orderable:
                raise invalid(f"Invalid CLUSTERING ORDER BY column {col}: not a clustering column of index {name}")
        table.indexes[name] = Index(name, table.name, stmt.hash_columns, stmt.range_columns, stmt.include,
                                    stmt.where, stmt.unique, transactions, tablets, dict(stmt.clustering_order))
        return self._changed("UPDATED", "TABLE", ks.name, table.name)

    def _drop(self, stmt: cql.Drop, session: ClientState) -> Result:
        ks_name = self.keyspace_name(stmt.keyspace, session)
        if ks_name not in self.catalog.keyspaces and stmt.if_exists:
            return VoidResult()
        ks = self._user_keyspace(ks_name)
        if stmt.what == "TABLE":
            if stmt.name not in ks.tables:
                if stmt.if_exists:
                    return VoidResult()
                raise invalid(f"Table '{ks.name}.{stmt.name}' doesn't exist")
            del ks.tables[stmt.name]
            return self._changed("DROPPED", "TABLE", ks.name, stmt.name)
        if stmt.what == "INDEX":
            found = ks.find_index(stmt.name)
            if found is None:
                if stmt.if_exists:
                    return VoidResult()
                raise invalid(f"Index '{ks.name}.{stmt.name}' doesn't exist")
            del found[0].indexes[stmt.name]
            return self._changed("UPDATED", "TABLE", ks.name, found[0].name)
        if stmt.name not in ks.types:
            if stmt.if_exists:
                return VoidResult()
            raise invalid(f"No user type named {ks.name}.{stmt.name} exists.")
        for table in ks.tables.values():
            if any(_uses_type(c.type, ks.name, stmt.name) for c in table.columns.values()):
                raise invalid(f"Cannot drop user type {ks.name}.{stmt.name} as it is still used by table "
                              f"{ks.name}.{table.name}")
        for other in ks.types.values():
            if other.name != stmt.name and any(_uses_type(p, ks.name, stmt.name) for p in other.params):
                raise invalid(f"Cannot drop user type {ks.name}.{stmt.name} as it is still used by user type "
                              f"{other.name}")
        del ks.types[stmt.name]
        return self._changed("DROPPED", "TYPE", ks.name, stmt.name)

    # ---------------------------------------------------------------------------------------------
    # Writes
    # ---------------------------------------------------------------------------------------------

    def _mutations(
        self, stmt: Any, session: ClientState, bound: list[Any], default_ts: int, now: int, batch: str | None = None
    ) -> list[Mutation]:
        table = self.table(stmt.keyspace, stmt.table, session)
        self._writable(table)
        if batch is not None:
            is_counter_update = isinstance(stmt, cql.Update) and table.is_counter
            if batch == "COUNTER" and not is_counter_update:
                raise invalid("Only counter mutations are allowed in COUNTER batches")
            if batch != "COUNTER" and is_counter_update:
                raise invalid("Counter mutations are only allowed in COUNTER batches")
            if isinstance(stmt, cql.Insert) and stmt.if_not_exists:
                raise CqlError(SYNTAX_ERROR, "cqlsim does not support conditional statements in a BATCH")
        ts = self._timestamp(stmt.using, bound, default_ts)
        if isinstance(stmt, cql.Insert):
            return self._insert(stmt, table, bound, ts, now)
        if isinstance(stmt, cql.Update):
            return self._update(stmt, table, bound, ts, now)
        return self._delete(stmt, table, bound, ts, now)

    def _insert_values(self, stmt: cql.Insert, table: Table, bound: list[Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, term in zip(stmt.columns, stmt.values, strict=True):
            col = table.column(name)
            if name in values:
                raise invalid(f"Multiple definitions found for column {name}")
            values[name] = self._value(col.type, term, bound)
        return values

    def _insert(self, stmt: cql.Insert, table: Table, bound: list[Any], ts: int, now: int) -> list[Mutation]:
        if table.is_counter:
            raise invalid("INSERT statements are not allowed on counter tables, use UPDATE instead")
        values = self._insert_values(stmt, table, bound)
        pk = self._key_values(table.partition_key, values, "partition key")
        only_static = bool(table.clustering) and all(
            table.columns[n].kind in ("static", "partition_key") for n in values)
        ck = None if only_static else self._key_values(table.clustering, values, "clustering key")
        ttl = self._ttl(stmt.using, bound, table)
        expires = now + ttl * 1_000_000 if ttl else None

        def apply() -> None:
            part = table.partition(pk, create=True)
            assert part is not None
            row = None
            if ck is not None:
                row = part.row(ck)
                row.marker = reconcile(None, row.marker, Cell(True, ts, expires, ttl))
            for name, value in values.items():
                col = table.columns[name]
                if not col.is_key and value is not UNSET:
                    self._store(part, row, col, value, ts, expires, ttl)

        return [apply]

    @staticmethod
    def _key_values(columns: list[Column], values: dict[str, Any], what: str) -> tuple:
        missing = [c.name for c in columns if c.name not in values]
        if missing:
            raise invalid(f"Some {what} parts are missing: {', '.join(missing)}")
        for c in columns:
            if values[c.name] is None or values[c.name] is UNSET:
                raise invalid(f"Invalid null value in condition for column {c.name}")
        return tuple(values[c.name] for c in columns)

    def _insert_if_not_exists(
        self, stmt: cql.Insert, session: ClientState, bound: list[Any], default_ts: int, now: int
    ) -> Result:
        table = self.table(stmt.keyspace, stmt.table, session)
        mutations = self._mutations(stmt, session, bound, default_ts, now)
        values = self._insert_values(stmt, table, bound)
        part = table.partition(self._key_values(table.partition_key, values, "partition key"))
        ck = self._key_values(table.clustering, values, "clustering key")
        row = part.rows.get(ck) if part else None
        applied = [("[applied]", BOOLEAN)]
        if part is not None and row is not None and row.live(now, part.deleted_at):
            getters = [self._column_getter(table, c) for c in table.columns.values()]
            existing = [g(part, ck, row, now) for g in getters]
            columns = applied + [(c.name, c.type) for c in table.columns.values()]
            return RowsResult(table.keyspace, table.name, columns, [[False, *existing]])
        for apply in mutations:
            apply()
        return RowsResult(table.keyspace, table.name, applied, [[True]])

    @staticmethod
    def _store(part: Partition, row: Row | None, col: Column, value: Any, ts: int, expires: int | None,
               ttl: int | None) -> None:
        cells = part.static if col.kind == "static" else row.cells if row is not None else None
        if cells is None:
            raise invalid(f"Missing clustering key to set column {col.name}")
        deleted = value is None or (col.type.multi_cell and not value)
        new = Cell(None, ts) if deleted else Cell(value, ts, expires, ttl)
        cells[col.name] = reconcile(col.type, cells.get(col.name), new)

    def _keys(self, table: Table, where: list[cql.Relation], bound: list[Any], full: bool
              ) -> list[tuple[tuple, tuple]]:
        """(partition key, clustering prefix) pairs addressed by an UPDATE/DELETE WHERE clause."""
        eq: dict[str, list[Any]] = {}
        for rel in where:
            if rel.function is not None:
                raise invalid(f"{rel.function}() is only supported in SELECT")
            col = table.column(rel.columns[0])
            if not col.is_key:
                raise invalid(f"Non PRIMARY KEY columns found in where clause: {col.name}")
            if rel.op not in ("=", "IN"):
                raise CqlError(SYNTAX_ERROR, "cqlsim does not support range deletions/updates")
            values = self._relation_values(col.type, rel, bound)
            if col.name in eq:
                raise invalid(f"{col.name} cannot be restricted by more than one relation")
            eq[col.name] = values
        missing = [c.name for c in table.partition_key if c.name not in eq]
        if missing:
            raise invalid(f"Some partition key parts are missing: {', '.join(missing)}")
        prefix = []
        for c in table.clustering:
            if c.name not in eq:
                break
            prefix.append(c)
        extra = [c.name for c in table.clustering[len(prefix):] if c.name in eq]
        if extra:
            raise invalid(f"PRIMARY KEY column \"{extra[0]}\" cannot be restricted as preceding column "
                          f"\"{table.clustering[len(prefix)].name}\" is not restricted")
        if full and len(prefix) != len(table.clustering):
            missing = [c.name for c in table.clustering[len(prefix):]]
            raise invalid(f"Some clustering keys are missing: {', '.join(missing)}")
        pks = itertools.product(*(eq[c.name] for c in table.partition_key))
        cks = list(itertools.product(*(eq[c.name] for c in prefix)))
        return [(pk, ck) for pk in pks for ck in cks]

    def _relation_values(self, ctype: CqlType, rel: cql.Relation, bound: list[Any]) -> list[Any]:
        if rel.op == "IN":
            if isinstance(rel.value, list):
                values = [self._value(ctype, t, bound) for t in rel.value]
            else:
                values = list(self._value(CqlType("list", (ctype,), True), rel.value, bound) or [])
        else:
            values = [self._value(ctype, rel.value, bound)]
        if any(v is None or v is UNSET for v in values):
            raise invalid(f"Invalid null value in condition for column {rel.columns[0]}")
        return values

    def _update(self, stmt: cql.Update, table: Table, bound: list[Any], ts: int, now: int) -> list[Mutation]:
        assignments = []
        for a in stmt.assignments:
            col = table.column(a.column)
            if col.is_key:
                raise invalid(f"PRIMARY KEY part {col.name} found in SET part")
            assignments.append((col, a.op, *self._assignment_values(col, a, bound)))
        only_static = all(col.kind == "static" for col, *_ in assignments)
        keys = self._keys(table, stmt.where, bound, full=not only_static)
        if table.is_counter and stmt.using.ttl is not None:
            raise invalid("Cannot set a TTL on counter updates")
        ttl = self._ttl(stmt.using, bound, table)
        expires = now + ttl * 1_000_000 if ttl else None

        def apply() -> None:
            for pk, ck in keys:
                part = table.partition(pk, create=True)
                assert part is not None
                row = part.row(ck) if len(ck) == len(table.clustering) else None
                for col, op, value, key in assignments:
                    if value is UNSET or key is UNSET:
                        continue
                    if op == "set":
                        self._store(part, row, col, value, ts, expires, ttl)
                    else:
                        self._modify(part, row, col, op, value, key, ts, expires, ttl, now)

        return [apply]

    def _assignment_values(self, col: Column, a: cql.Assignment, bound: list[Any]) -> tuple[Any, Any]:
        t = col.type
        expr = {"add": f"{col.name} = {col.name} + ?", "sub": f"{col.name} = {col.name} - ?",
                "prepend": f"{col.name} = ? + {col.name}", "set_elem": f"{col.name}[?] = ?"}.get(a.op, "")
        if t.kind == "counter":
            if a.op not in ("add", "sub"):
                raise invalid(f"Cannot set the value of counter column {col.name} "
                              "(counters can only be incremented/decremented, not set)")
            value = self._value(BIGINT, a.value, bound)
            if value is None:
                raise invalid(f"Invalid null value for counter increment on {col.name}")
            return value, None
        if a.op == "set":
            return self._value(t, a.value, bound), None
        if not t.multi_cell or (a.op == "prepend" and t.kind != "list") or (a.op == "set_elem" and t.kind == "set"):
            raise invalid(f"Invalid operation ({expr}) for {'frozen ' if t.frozen else ''}column {col.name} "
                          f"of type {t.cql()}")
        if a.op == "set_elem":
            key_type = t.params[0] if t.kind == "map" else INT
            value_type = t.params[1] if t.kind == "map" else t.params[0]
            key = self._value(key_type, a.key, bound)
            if key is None:
                raise invalid(f"Invalid null value for {col.name} element key")
            return self._value(value_type, a.value, bound), key
        if a.op == "sub" and t.kind == "map":
            return self._value(CqlType("set", (t.params[0],), True), a.value, bound), None
        return self._value(t, a.value, bound), None

    @staticmethod
    def _modify(part: Partition, row: Row | None, col: Column, op: str, value: Any, key: Any, ts: int,
                expires: int | None, ttl: int | None, now: int) -> None:
        """Counter increments and element-wise collection updates (whole-collection timestamp)."""
        static = col.kind == "static"
        cells = part.static if static else row.cells if row is not None else None
        if cells is None:
            raise invalid(f"Missing clustering key to update column {col.name}")
        shadow = part.deleted_at if static or row is None else max(part.deleted_at, row.deleted_at)
        old = cells.get(col.name)
        if old is not None and old.value is None and old.ts > ts:
            return  # a newer deletion of the whole collection/counter wins
        current = old.value if old is not None and old.live(now, shadow) else None
        new_ts = max(ts, old.ts) if current is not None and old is not None else ts
        t = col.type
        if t.kind == "counter":
            cells[col.name] = Cell((current or 0) + (value if op == "add" else -value), new_ts)
            return
        current = current or ()
        value = value or ()
        if t.kind == "list":
            if op == "add":
                result = current + value
            elif op == "prepend":
                result = value + current
            elif op == "sub":
                result = tuple(x for x in current if x not in value)
            else:
                if not 0 <= key < len(current):
                    raise invalid(f"List index {key} out of bound, list has size {len(current)}")
                items = list(current)
                if value == ():
                    del items[key]
                else:
                    items[key] = value
                result = tuple(items)
        elif t.kind == "set":
            result = canonical_set(t, list(current) + list(value)) if op == "add" else tuple(
                x for x in current if x not in value)
        else:
            entries = dict(current)
            if op == "add":
                entries.update(value)
            elif op == "sub":
                for k in value:
                    entries.pop(k, None)
            elif value == ():
                entries.pop(key, None)
            else:
                entries[key] = value
            result = canonical_map(t, list(entries.items()))
        cells[col.name] = Cell(result, new_ts, expires, ttl) if result else Cell(None, new_ts)

    def _delete(self, stmt: cql.Delete, table: Table, bound: list[Any], ts: int, now: int) -> list[Mutation]:
        if stmt.using.ttl is not None:
            raise invalid("A TTL is not allowed on DELETE statements")
        targets = []
        for name, key_term in stmt.targets:
            col = table.column(name)
            if col.is_key:
                raise invalid(f"Invalid identifier {name} for deletion (should not be a PRIMARY KEY part)")
            key = None
            if key_term is not None:
                if col.type.kind not in ("map", "list") or col.type.frozen:
                    raise invalid(f"Invalid element deletion {name}[...] for column of type {col.type.cql()}")
                key = self._value(col.type.params[0] if col.type.kind == "map" else INT, key_term, bound)
            targets.append((col, key))
        only_static = bool(targets) and all(col.kind == "static" for col, _ in targets)
        keys = self._keys(table, stmt.where, bound, full=bool(targets) and not only_static)
        full_ck = len(table.clustering)

        def apply() -> None:
            for pk, ck in keys:
                part = table.partition(pk, create=True)
                assert part is not None
                if not targets:
                    if not ck and full_ck:
                        part.deleted_at = max(part.deleted_at, ts)
                    elif len(ck) == full_ck:
                        row = part.row(ck)
                        row.deleted_at = max(row.deleted_at, ts)
                    else:
                        for row_ck, row in part.rows.items():
                            if row_ck[: len(ck)] == ck:
                                row.deleted_at = max(row.deleted_at, ts)
                    continue
                row = part.row(ck) if len(ck) == full_ck else None
                for col, key in targets:
                    if key is None:
                        self._store(part, row, col, None, ts, None, None)
                    elif col.type.kind == "map":
                        self._modify(part, row, col, "sub", (key,), None, ts, None, None, now)
                    else:
                        self._modify(part, row, col, "set_elem", None, key, ts, None, None, now)

        if not full_ck and not targets:
            def apply_partition() -> None:  # tables without clustering: a row delete is a partition delete
                for pk, _ in keys:
                    part = table.partition(pk, create=True)
                    assert part is not None
                    part.deleted_at = max(part.deleted_at, ts)
            return [apply_partition]
        return [apply]

    # ---------------------------------------------------------------------------------------------
    # SELECT
    # ---------------------------------------------------------------------------------------------

    def _read_table(self, stmt: cql.Select, session: ClientState) -> Table:
        table = self.table(stmt.keyspace, stmt.table, session)
        if self.catalog.keyspaces[table.keyspace].system:
            key = (table.keyspace, table.name, session.address, session.port)
            cached = self.catalog.system_cache.get(key)
            if cached is None:
                ctx = SystemContext(self.catalog, self.cassandra, session.address, session.port)
                cached = self.catalog.system_cache[key] = materialize(table, ctx)
            table = cached
        return table

    def _selection(self, table: Table, stmt: cql.Select) -> list[tuple[str, CqlType, Getter]]:
        if stmt.selectors is None:
            return [(c.name, c.type, self._column_getter(table, c)) for c in self._star_columns(table)]
        out = []
        kinds = {s.kind for s in stmt.selectors}
        if "count" in kinds and len(stmt.selectors) > 1:
            raise CqlError(SYNTAX_ERROR, "cqlsim does not support mixing count(*) with other selectors")
        for sel in stmt.selectors:
            out.append(self._selector(table, sel))
        if stmt.distinct:
            pk = {c.name for c in table.partition_key}
            selected = set()
            for sel in stmt.selectors:
                if sel.kind == "column":
                    col = table.column(sel.args[0])
                    if col.kind not in ("partition_key", "static"):
                        raise invalid("SELECT DISTINCT queries must only request partition key columns and/or "
                                      f"static columns (not {col.name})")
                    selected.add(col.name)
                elif sel.kind in ("writetime", "ttl", "count"):
                    raise invalid(f"{sel.kind}() is not supported with SELECT DISTINCT")
            if pk - selected and any(s.kind == "column" for s in stmt.selectors):
                raise invalid("SELECT DISTINCT queries must request all the partition key columns "
                              f"(missing {', '.join(sorted(pk - selected))})")
        return out

    def _star_columns(self, table: Table) -> list[Column]:
        cols = list(table.columns.values())
        if not self.cassandra:
            return cols
        keys = [c for c in cols if c.is_key]
        statics = sorted((c for c in cols if c.kind == "static"), key=lambda c: c.name)
        regulars = sorted((c for c in cols if c.kind == "regular"), key=lambda c: c.name)
        return keys + statics + regulars

    @staticmethod
    def _column_getter(table: Table, col: Column) -> Getter:
        if col.kind == "partition_key":
            i = col.position
            return lambda part, ck, row, now: part.key[i]
        if col.kind == "clustering":
            i = col.position
            return lambda part, ck, row, now: None if ck is None else ck[i]
        name = col.name
        if col.kind == "static":
            def static(part: Partition, ck: tuple | None, row: Row | None, now: int) -> Any:
                cell = part.static.get(name)
                return cell.value if cell is not None and cell.live(now, part.deleted_at) else None
            return static

        def regular(part: Partition, ck: tuple | None, row: Row | None, now: int) -> Any:
            cell = _live_cell(part, row, name, now)
            return cell.value if cell else None
        return regular

    def _selector(self, table: Table, sel: cql.Selector) -> tuple[str, CqlType, Getter]:
        if sel.kind == "column":
            col = table.column(sel.args[0])
            return sel.alias or col.name, col.type, self._column_getter(table, col)
        if sel.kind == "count":
            return sel.alias or "count", BIGINT, lambda part, ck, row, now: None
        if sel.kind in ("token", "partition_hash"):
            pk = [c.name for c in table.partition_key]
            if sel.kind == "partition_hash" and self.cassandra:
                raise invalid("Unknown function 'partition_hash'")
            if sel.args != pk:
                raise invalid(f"{sel.kind}() must be called with the partition key columns in order: {', '.join(pk)}")
            if sel.kind == "token":
                name = ("system.token" if self.cassandra else "token") + f"({', '.join(pk)})"
                return sel.alias or name, BIGINT, lambda part, ck, row, now: part.token
            return (sel.alias or f"partition_hash({', '.join(pk)})", INT,
                    lambda part, ck, row, now: partition_hash_of(part.token))
        col = table.column(sel.args[0])
        if col.is_key:
            raise invalid(f"Cannot use selection function {sel.kind} on PRIMARY KEY part {col.name}")
        if col.type.kind == "counter":
            raise invalid(f"Cannot use selection function {sel.kind} on counter column {col.name}")
        name = col.name
        static = col.kind == "static"

        def cell_of(part: Partition, row: Row | None, now: int) -> Cell | None:
            if static:
                cell = part.static.get(name)
                return cell if cell is not None and cell.live(now, part.deleted_at) else None
            return _live_cell(part, row, name, now)

        if sel.kind == "writetime":
            def writetime(part: Partition, ck: tuple | None, row: Row | None, now: int) -> Any:
                cell = cell_of(part, row, now)
                return cell.ts if cell else None
            return sel.alias or f"writetime({name})", BIGINT, writetime

        def ttl(part: Partition, ck: tuple | None, row: Row | None, now: int) -> Any:
            cell = cell_of(part, row, now)
            if cell is None or cell.expires is None:
                return None
            return max(0, math.ceil((cell.expires - now) / 1_000_000))
        return sel.alias or f"ttl({name})", INT, ttl

    def _plan(self, table: Table, stmt: cql.Select, bound: list[Any], virtual: bool) -> Plan:
        pk_eq: dict[str, list[Any]] = {}
        token_bounds: list[tuple[str, int]] = []
        hash_bounds: list[tuple[str, int]] = []
        filters: list[tuple[Column, str, Any]] = []
        for rel in stmt.where:
            name, ctype = self._relation_target(table, rel)
            values = self._relation_values(ctype, rel, bound)
            if rel.function == "token":
                token_bounds.append((rel.op, values[0]))
            elif rel.function == "partition_hash":
                hash_bounds.append((rel.op, values[0]))
            else:
                col = table.column(name)
                if col.kind == "partition_key" and rel.op in ("=", "IN") and name not in pk_eq:
                    pk_eq[name] = values
                else:
                    filters.append((col, rel.op, values if rel.op == "IN" else values[0]))
        pk_names = [c.name for c in table.partition_key]
        pk_values: list[list[Any]] | None = [pk_eq[n] for n in pk_names] if all(n in pk_eq for n in pk_names) else None
        if pk_values is None and pk_eq:
            filters += [(table.columns[n], "IN", v) for n, v in pk_eq.items()]
        if not virtual and not stmt.allow_filtering:
            indexed = {i.hash_columns[0] for i in table.indexes.values() if len(i.hash_columns) == 1}
            for col, op, _ in filters:
                if col.kind == "clustering" and pk_values is not None:
                    continue
                if op == "=" and col.name in indexed:
                    continue
                raise invalid(FILTERING_MESSAGE)
        return Plan(pk_values, token_bounds, hash_bounds, filters)

    def _select(self, stmt: cql.Select, session: ClientState, bound: list[Any], params: QueryParams, now: int
                ) -> RowsResult:
        table = self._read_table(stmt, session)
        virtual = self.catalog.keyspaces[table.keyspace].system
        selection = self._selection(table, stmt)
        plan = self._plan(table, stmt, bound, virtual)
        limit = None
        if stmt.limit is not None:
            limit = self._value(INT, stmt.limit, bound)
            if limit is None or limit is UNSET or limit <= 0:
                raise invalid("LIMIT must be strictly positive")
        columns = [(name, ctype) for name, ctype, _ in selection]
        if stmt.selectors and stmt.selectors[0].kind == "count":
            count = sum(1 for _ in self._entries(table, plan, now, None, stmt.distinct))
            return RowsResult(table.keyspace, table.name, columns, [[count]])
        resume = self._decode_paging_state(table, params.paging_state) if params.paging_state else None
        remaining = resume.left if resume else limit
        page_size = params.page_size if params.page_size > 0 else None
        rows: list[list[Any]] = []
        last = None
        more = False
        for entry in self._entries(table, plan, now, resume, stmt.distinct):
            if remaining is not None and len(rows) >= remaining:
                break
            if page_size is not None and len(rows) >= page_size:
                more = True
                break
            part, ck, row = entry
            rows.append([getter(part, ck, row, now) for _, _, getter in selection])
            last = entry
        paging_state = None
        if more and last is not None:
            left = None if remaining is None else remaining - len(rows)
            paging_state = self._encode_paging_state(table, last[0], last[1], left, stmt.distinct)
        return RowsResult(table.keyspace, table.name, columns, rows, paging_state)

    def _entries(self, table: Table, plan: Plan, now: int, resume: Resume | None, distinct: bool
                 ) -> Iterator[tuple[Partition, tuple | None, Row | None]]:
        """Matching (partition, clustering, row) in result order, after the ``resume`` position."""
        if plan.pk_values is not None:
            found = {}
            for key in itertools.product(*plan.pk_values):
                part = table.partition(tuple(key))
                if part is not None:
                    found[part.key_bytes] = part
            parts = sorted(found.values(), key=lambda p: (p.token, p.key_bytes))
        else:
            parts, positions = table.sorted_partitions()
            if resume is not None:
                parts = parts[bisect.bisect_left(positions, resume.position):]
        for part in parts:
            if not _in_bounds(part.token, plan.token_bounds):
                continue
            if plan.hash_bounds and not _in_bounds(partition_hash_of(part.token), plan.hash_bounds):
                continue
            position = (part.token, part.key_bytes)
            same = resume is not None and position == resume.position
            if resume is not None and position < resume.position:
                continue
            if distinct:
                if same:
                    continue
                live = part.static_live(now) or any(r.live(now, part.deleted_at) for r in part.rows.values())
                if live and all(self._matches(table, f, part, None, None, now) for f in plan.filters):
                    yield part, None, None
                continue
            after = resume.clustering if same and resume is not None else None
            if same and after is None:
                continue  # the whole partition was returned already
            for ck, row in self._live_rows(table, part, now, after):
                if all(self._matches(table, f, part, ck, row, now) for f in plan.filters):
                    yield part, ck, row

    @staticmethod
    def _live_rows(table: Table, part: Partition, now: int, after: tuple | None
                   ) -> Iterator[tuple[tuple | None, Row | None]]:
        """Live rows in clustering order (only those after clustering sort key ``after``, if given)."""
        keys, cks = part.ordered(table.clustering_key)
        start = 0 if after is None else bisect.bisect_right(keys, after)
        found = False
        for ck in cks[start:]:
            row = part.rows[ck]
            if row.live(now, part.deleted_at):
                found = True
                yield ck, row
        if not found and after is None and table.clustering and part.static_live(now):
            yield None, None  # a partition with only static values reads as one row

    def _matches(self, table: Table, flt: tuple[Column, str, Any], part: Partition, ck: tuple | None,
                 row: Row | None, now: int) -> bool:
        col, op, expected = flt
        value = self._column_getter(table, col)(part, ck, row, now)
        if value is None:
            return False
        if op == "=":
            return value == expected
        if op == "IN":
            return value in expected
        a, b = sort_key(col.type, value), sort_key(col.type, expected)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    @staticmethod
    def _encode_paging_state(table: Table, part: Partition, ck: tuple | None, left: int | None,
                             distinct: bool) -> bytes:
        state = {
            "pk": part.key_bytes.hex(),
            "ck": None if ck is None or distinct else [
                serialize(c.type, v).hex() for c, v in zip(table.clustering, ck, strict=True)],
            "left": left,
        }
        return json.dumps(state).encode()

    @staticmethod
    def _decode_paging_state(table: Table, data: bytes) -> Resume:
        try:
            state = json.loads(data)
            key = bytes.fromhex(state["pk"])
            ck = None
            if state["ck"] is not None:
                ck = tuple(deserialize(c.type, bytes.fromhex(v))
                           for c, v in zip(table.clustering, state["ck"], strict=True))
            clustering = None if state["ck"] is None else table.clustering_key(ck)
            return Resume((token_of(key), key), clustering, state["left"])
        except (ValueError, KeyError, TypeError, CqlError) as exc:
            raise invalid(f"Invalid value for the paging state: {exc}") from None


def _live_cell(part: Partition, row: Row | None, name: str, now: int) -> Cell | None:
    if row is None:
        return None
    cell = row.cells.get(name)
    if cell is None or not cell.live(now, max(part.deleted_at, row.deleted_at)):
        return None
    return cell


def _in_bounds(value: int, bounds: list[tuple[str, int]]) -> bool:
    for op, bound in bounds:
        if not {"=": value == bound, "<": value < bound, "<=": value <= bound, ">": value > bound,
                ">=": value >= bound}[op]:
            return False
    return True


def _uses_type(t: CqlType, keyspace: str, name: str) -> bool:
    if t.kind == "udt" and t.keyspace == keyspace and t.name == name:
        return True
    return any(_uses_type(p, keyspace, name) for p in t.params)

