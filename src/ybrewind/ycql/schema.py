"""Keyspace schema: driver metadata -> a plain model (kept in the manifest) -> ``schema.cql``.

The text is what ``ycqlsh``/``cqlsh`` ``DESC KEYSPACE`` prints (the driver's
``KeyspaceMetadata.export_as_string()``), statement for statement, so a dump's schema reads like
the tool users know and runs with ``ycqlsh -f`` / ``cqlsh -f``:

* ``CREATE KEYSPACE`` with its replication map and ``durable_writes``;
* user-defined types in dependency order (a type before the types and tables that use it);
* tables with their columns, ``PRIMARY KEY``, ``CLUSTERING ORDER BY`` and every option the server
  reports, sorted - on YugabyteDB ``default_time_to_live``, ``transactions = {...}``, ``tablets``;
* after each table its indexes: ``CREATE [UNIQUE] INDEX name ON ks.t (target) [INCLUDE (...)]
  WITH [CLUSTERING ORDER BY (...)] [AND tablets = N] AND transactions = {...} [WHERE predicate]``
  (``consistency_level`` and ``enabled`` live in the ``transactions`` map).

Deviations from the driver, each because the driver's text would not run: a Cassandra index with no
properties gets no dangling ``WITH``, and quotes inside option map values are doubled.

The model (``KeyspaceDef``) is JSON-serializable; ``load`` re-renders it when a dump is loaded under
another keyspace name, and ``compare`` renders both sides with a neutral name.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any

from cassandra.metadata import KeyspaceMetadata, TableMetadata, protect_name, protect_value
from cassandra.util import OrderedMap

from ybrewind.errors import DatabaseError
from ybrewind.ycql.literals import CqlType, UnsupportedType, parse_type

# Table options the driver renders as maps (TableMetadataV3.option_maps).
OPTION_MAPS = ("compaction", "compression", "caching", "transactions", "nodesync")


@dataclass
class ColumnDef:
    name: str
    type: str  # as system_schema reports it, e.g. frozen<map<text, int>>
    kind: str  # partition_key, clustering, static, regular
    reversed: bool = False  # clustering DESC


@dataclass
class IndexDef:
    name: str
    kind: str = "COMPOSITES"  # COMPOSITES, KEYS, CUSTOM
    unique: bool = False
    options: dict[str, str] = field(default_factory=dict)  # target, include, predicate, class_name...
    transactions: dict[str, str] | None = None  # YugabyteDB
    tablets: int | None = None  # YugabyteDB
    clustering: list[list[Any]] = field(default_factory=list)  # [[column, reversed]] of the index table


@dataclass
class TableDef:
    name: str
    columns: list[ColumnDef]
    options: dict[str, Any] = field(default_factory=dict)
    indexes: list[IndexDef] = field(default_factory=list)

    def column(self, name: str) -> ColumnDef:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def partition_key(self) -> list[ColumnDef]:
        return [c for c in self.columns if c.kind == "partition_key"]

    @property
    def clustering(self) -> list[ColumnDef]:
        return [c for c in self.columns if c.kind == "clustering"]

    @property
    def primary_key(self) -> list[ColumnDef]:
        return self.partition_key + self.clustering

    @property
    def is_counter(self) -> bool:
        return any(c.type == "counter" for c in self.columns)

    @property
    def transactional(self) -> bool:
        """YugabyteDB ``transactions = {'enabled': true}``: "Inserting rows with TTL is not supported
        on tables with transactions enabled" (docs: api/ycql/dml_insert.md, Semantics); indexes
        need it (api/ycql/ddl_create_index.md, Semantics)."""
        tx = self.options.get("transactions")
        return isinstance(tx, dict) and str(tx.get("enabled", "")).lower() == "true"

    @property
    def default_ttl(self) -> int:
        try:
            return int(self.options.get("default_time_to_live") or 0)
        except (TypeError, ValueError):
            return 0


@dataclass
class TypeDef:
    name: str
    fields: list[list[str]]  # [[field name, type]]


@dataclass
class KeyspaceDef:
    name: str
    replication: str  # CQL map text as the driver exports it
    durable_writes: bool = True
    types: list[TypeDef] = field(default_factory=list)  # in dependency order
    tables: list[TableDef] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    # -- types ------------------------------------------------------------------------------------
    def udts(self) -> dict[str, list[tuple[str, str]]]:
        return {t.name: [(f, ty) for f, ty in t.fields] for t in self.types}

    def column_type(self, table: TableDef, column: str) -> CqlType:
        return parse_type(table.column(column).type, self.udts())

    def table(self, name: str) -> TableDef:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyspaceDef:
        return cls(
            name=data["name"],
            replication=data["replication"],
            durable_writes=bool(data.get("durable_writes", True)),
            types=[TypeDef(t["name"], [list(f) for f in t["fields"]]) for t in data.get("types", [])],
            tables=[
                TableDef(
                    t["name"],
                    [ColumnDef(**c) for c in t["columns"]],
                    dict(t.get("options") or {}),
                    [IndexDef(**i) for i in t.get("indexes", [])],
                )
                for t in data.get("tables", [])
            ],
            warnings=list(data.get("warnings", [])),
        )


# -------------------------------------------------------------------------------------------------
# From driver metadata
# -------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Driver option values (OrderedMapSerializedKey, sets...) as JSON-able Python values."""
    if isinstance(value, dict | OrderedMap):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _types_in_order(ks: KeyspaceMetadata) -> list[TypeDef]:
    """User types, each after the types it uses (the driver's order: by name, dependencies first)."""
    pending = dict(ks.user_types)
    out: list[TypeDef] = []

    def mentions(type_text: str) -> list[str]:
        from cassandra import cqltypes  # the driver's own type-string tokenizer

        return [t for t in cqltypes.cql_types_from_string(type_text) if t in pending]

    def visit(name: str) -> None:
        udt = pending.pop(name)
        for ftype in udt.field_types:
            for dep in mentions(ftype):
                if dep in pending:
                    visit(dep)
        out.append(TypeDef(udt.name, [[f, t] for f, t in zip(udt.field_names, udt.field_types, strict=True)]))

    for name in sorted(ks.user_types):
        if name in pending:
            visit(name)
    return out


def _table_def(table: TableMetadata, warnings: list[str]) -> TableDef:
    pk = {c.name for c in table.partition_key}
    ck = {c.name for c in table.clustering_key}
    columns = []
    for col in table.columns.values():
        kind = (
            "partition_key" if col.name in pk else "clustering" if col.name in ck else
            "static" if col.is_static else "regular"
        )  # fmt: skip
        columns.append(ColumnDef(col.name, col.cql_type, kind, bool(col.is_reversed)))
    indexes = []
    for index in table.indexes.values():
        indexes.append(
            IndexDef(
                name=index.name,
                kind=index.kind or "COMPOSITES",
                unique=bool(getattr(index, "is_unique", False)),
                options={str(k): str(v) for k, v in (index.index_options or {}).items()},
                transactions=_plain(getattr(index, "transactions_options", None)),
                tablets=getattr(index, "tablets", None),
                clustering=[[c.name, bool(c.is_reversed)] for c in (getattr(index, "clustering_key", None) or [])],
            )
        )
    if getattr(table, "is_compact_storage", False):
        warnings.append(f"table {table.name} uses COMPACT STORAGE, which the dump does not render")
    if table.triggers:
        warnings.append(f"table {table.name} has triggers ({', '.join(table.triggers)}), which are not dumped")
    if table.views:
        warnings.append(f"materialized views on {table.name} ({', '.join(table.views)}) are not dumped")
    return TableDef(table.name, columns, {k: _plain(v) for k, v in table.options.items()}, indexes)


def from_metadata(ks: KeyspaceMetadata) -> KeyspaceDef:
    """The model of a keyspace, with warnings for what the dump does not carry."""
    warnings: list[str] = []
    tables = [_table_def(t, warnings) for t in ks.tables.values()]  # server order, as DESC prints them
    if ks.functions:
        warnings.append(f"user-defined functions are not dumped: {', '.join(sorted(ks.functions))}")
    if ks.aggregates:
        warnings.append(f"user-defined aggregates are not dumped: {', '.join(sorted(ks.aggregates))}")
    return KeyspaceDef(
        name=ks.name,
        replication=str(ks.replication_strategy.export_for_schema()),
        durable_writes=bool(ks.durable_writes),
        types=_types_in_order(ks),
        tables=tables,
        warnings=warnings,
    )


def check_types(model: KeyspaceDef) -> None:
    """Every column type must be one ybrewind encodes exactly; DatabaseError names the first that is not."""
    udts = model.udts()
    for t in model.tables:
        for c in t.columns:
            try:
                parse_type(c.type, udts)
            except UnsupportedType as e:
                raise DatabaseError(
                    f"column {model.name}.{t.name}.{c.name} has type {c.type}, which ybrewind cannot dump ({e})"
                ) from None


def select_tables(model: KeyspaceDef, include: list[str], exclude: list[str]) -> list[TableDef]:
    """Tables matching the -t patterns (all when none) and none of the -T patterns (``*``, ``?``)."""

    def matches(name: str, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(name, p.split(".", 1)[-1] if "." in p else p) for p in patterns)

    return [t for t in model.tables if (not include or matches(t.name, include)) and not matches(t.name, exclude)]


# -------------------------------------------------------------------------------------------------
# Rendering (the driver's export_as_string format)
# -------------------------------------------------------------------------------------------------


def _map_text(value: dict[str, Any]) -> str:
    return "{" + ", ".join(f"'{_q(k)}': '{_q(v)}'" for k, v in value.items()) + "}"


def _q(value: Any) -> str:
    return str(value).replace("'", "''")


def option_strings(options: dict[str, Any]) -> list[str]:
    """``name = value`` for every option, as TableMetadataV3._make_option_strings renders them."""
    out = []
    rest = dict(options)
    for name in OPTION_MAPS:
        value = rest.get(name)
        if isinstance(value, dict):
            del rest[name]
            out.append(f"{name} = {_map_text(value)}")
    for name, value in rest.items():
        if value is None:
            continue
        if name == "comment":
            value = value or ""
        if isinstance(value, dict):
            out.append(f"{name} = {_map_text(value)}")
        elif isinstance(value, list):
            continue  # set-valued options (e.g. flags) are not table properties
        else:
            out.append(f"{name} = {protect_value(value)}")
    return sorted(out)


def keyspace_cql(model: KeyspaceDef, name: str | None = None) -> str:
    ks = protect_name(name or model.name)
    durable = "true" if model.durable_writes else "false"
    return f"CREATE KEYSPACE {ks} WITH replication = {model.replication}  AND durable_writes = {durable};"


def type_cql(keyspace: str, udt: TypeDef) -> str:
    fields = ",\n".join(f"    {protect_name(f)} {t}" for f, t in udt.fields)
    return f"CREATE TYPE {protect_name(keyspace)}.{protect_name(udt.name)} (\n{fields}\n);"


def table_cql(keyspace: str, table: TableDef) -> str:
    lines = [f"    {protect_name(c.name)} {c.type}{' static' if c.kind == 'static' else ''}" for c in table.columns]
    pk, ck = table.partition_key, table.clustering
    if len(pk) == 1 and not ck:
        lines[0] += " PRIMARY KEY"
    else:
        key = f"({', '.join(protect_name(c.name) for c in pk)})" if len(pk) > 1 else protect_name(pk[0].name)
        if ck:
            key += ", " + ", ".join(protect_name(c.name) for c in ck)
        lines.append(f"    PRIMARY KEY ({key})")
    properties = []
    if ck:
        order = ", ".join(f"{protect_name(c.name)} {'DESC' if c.reversed else 'ASC'}" for c in ck)
        properties.append(f"CLUSTERING ORDER BY ({order})")
    properties += option_strings(table.options)
    head = f"CREATE TABLE {protect_name(keyspace)}.{protect_name(table.name)} (\n" + ",\n".join(lines) + "\n)"
    return head + (" WITH " + "\n    AND ".join(properties) if properties else "") + ";"


def index_cql(keyspace: str, table: str, index: IndexDef) -> str:
    options = dict(index.options)
    target = options.pop("target", "")
    if index.kind == "CUSTOM":
        class_name = options.pop("class_name", "")
        text = (
            f"CREATE CUSTOM INDEX {protect_name(index.name)} ON {protect_name(keyspace)}.{protect_name(table)} "
            f"({target}) USING '{_q(class_name)}'"
        )
        if options:
            text += " WITH OPTIONS = " + _map_text(options)
        return text + ";"
    text = (
        f"CREATE {'UNIQUE ' if index.unique else ''}INDEX {protect_name(index.name)} ON "
        f"{protect_name(keyspace)}.{protect_name(table)} ({target})"
    )
    include = options.pop("include", None)
    if include:
        text += f" INCLUDE ({include})"
    predicate = options.pop("predicate", None)
    properties = []
    if index.clustering:
        order = ", ".join(f"{protect_name(c)} {'DESC' if rev else 'ASC'}" for c, rev in index.clustering)
        properties.append(f"CLUSTERING ORDER BY ({order})")
    properties += option_strings({"transactions": index.transactions, "tablets": index.tablets})
    if properties:
        text += "\n    WITH " + "\n    AND ".join(properties)
    # YugabyteDB's grammar: [covering_columns] [index_properties] [WHERE index_predicate], the
    # predicate last (docs: api/ycql/ddl_create_index.md, Grammar).
    if predicate:
        text += f"\n    WHERE {predicate}"
    return text + ";"


@dataclass
class SchemaScript:
    """The statements of schema.cql, split into what runs before the data and what runs after."""

    keyspace: str  # CREATE KEYSPACE
    types: list[str]
    tables: list[str]
    indexes: list[str]

    def text(self) -> str:
        """schema.cql: the DESC KEYSPACE layout (indexes right after their table)."""
        return self._layout() + "\n"

    def _layout(self) -> str:
        return "\n\n".join([self.keyspace, *self.types, *self.tables])


def render(model: KeyspaceDef, tables: list[TableDef] | None = None, name: str | None = None) -> SchemaScript:
    """The schema of ``tables`` (default: all) under keyspace ``name`` (default: the model's)."""
    ks = name or model.name
    chosen = model.tables if tables is None else tables
    table_texts = []
    indexes = []
    for t in chosen:
        body = table_cql(ks, t)
        for index in t.indexes:
            stmt = index_cql(ks, t.name, index)
            indexes.append(stmt)
            body += "\n" + stmt
        table_texts.append(body)
    return SchemaScript(keyspace_cql(model, ks), [type_cql(ks, u) for u in model.types], table_texts, indexes)


def describe(model: KeyspaceDef, name: str | None = None) -> str:
    """The whole keyspace as ``DESC KEYSPACE`` prints it (no trailing newline)."""
    return render(model, name=name)._layout()
