"""Dataclasses describing a YSQL/PostgreSQL database schema, independent of any dialect.

The catalog reader (``catalog.py``) fills them from a live server; the DDL writer (``ddl.py``)
renders them for a target dialect. Expressions and type names are kept as the server printed them
(``format_type``, ``pg_get_expr``, ``pg_get_*def``) with ``search_path`` empty, so every name in
them is schema-qualified.

``key`` fields identify an object inside one source database (catalog name + oid); they exist for
dependency ordering only and mean nothing on another server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ObjKey = tuple[str, int]  # (catalog, oid), e.g. ("pg_class", 16384)
Ordering = Literal["HASH", "ASC", "DESC"]


@dataclass(frozen=True)
class Grant:
    grantee: str  # "PUBLIC" or a role name
    privilege: str  # SELECT, INSERT, USAGE, EXECUTE...
    grantable: bool = False
    columns: tuple[str, ...] = ()  # column-level grant when non-empty


@dataclass
class DbObject:
    """Fields shared by every top-level object."""

    key: ObjKey
    schema: str | None
    name: str
    owner: str | None = None
    comment: str | None = None
    acl: list[Grant] | None = None  # None: default privileges, nothing to render
    deps: set[ObjKey] = field(default_factory=set)


@dataclass
class Schema(DbObject):
    pass


@dataclass
class Extension(DbObject):
    version: str = ""


@dataclass
class EnumType(DbObject):
    labels: list[str] = field(default_factory=list)


@dataclass
class CompositeAttribute:
    name: str
    type: str
    collation: str | None = None
    comment: str | None = None


@dataclass
class CompositeType(DbObject):
    attributes: list[CompositeAttribute] = field(default_factory=list)


@dataclass
class NamedConstraint:
    name: str
    definition: str  # pg_get_constraintdef output, e.g. "CHECK ((VALUE > 0))"
    comment: str | None = None


@dataclass
class Domain(DbObject):
    base_type: str = ""
    not_null: bool = False
    default: str | None = None
    collation: str | None = None
    constraints: list[NamedConstraint] = field(default_factory=list)


@dataclass
class RangeType(DbObject):
    subtype: str = ""
    subtype_opclass: str | None = None
    collation: str | None = None
    canonical: str | None = None
    subtype_diff: str | None = None
    multirange_name: str | None = None  # schema-qualified, quoted


@dataclass
class SequenceOptions:
    data_type: str = "bigint"
    start: int = 1
    increment: int = 1
    min_value: int = 1
    max_value: int = 2**63 - 1
    cache: int = 1
    cycle: bool = False


@dataclass
class Sequence(DbObject):
    options: SequenceOptions = field(default_factory=SequenceOptions)
    last_value: int | None = None
    is_called: bool = False
    owned_by: tuple[str, str, str] | None = None  # (schema, table, column)


@dataclass
class Column:
    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    generated: str | None = None  # expression of GENERATED ALWAYS AS (...) STORED
    identity: Literal["", "ALWAYS", "BY DEFAULT"] = ""
    identity_sequence: Sequence | None = None
    collation: str | None = None
    comment: str | None = None
    acl: list[Grant] | None = None
    inherited: bool = False  # comes from a parent table: not repeated in the child's definition


@dataclass
class KeyColumn:
    name: str
    ordering: Ordering = "ASC"


@dataclass
class YbTableProps:
    """YugabyteDB sharding and placement, read from yb_table_properties() and friends."""

    num_tablets: int = 0
    num_hash_key_columns: int = 0
    split_clause: str | None = None  # "SPLIT AT VALUES (...)" for range-sharded, from yb_get_range_split_clause
    colocated: bool = False
    tablegroup: str | None = None


@dataclass
class PrimaryKey:
    name: str
    columns: list[KeyColumn]
    comment: str | None = None


@dataclass
class Table(DbObject):
    columns: list[Column] = field(default_factory=list)
    unlogged: bool = False
    partition_key: str | None = None  # pg_get_partkeydef, e.g. "RANGE (created_at)"
    partition_of: tuple[str, str] | None = None  # parent (schema, name)
    partition_bound: str | None = None  # "FOR VALUES FROM (...) TO (...)" / "DEFAULT"
    inherits: list[tuple[str, str]] = field(default_factory=list)
    reloptions: list[str] = field(default_factory=list)
    check_constraints: list[NamedConstraint] = field(default_factory=list)  # rendered inline
    primary_key: PrimaryKey | None = None
    rls_enabled: bool = False
    rls_forced: bool = False
    replica_identity: str = "d"  # d default, f full, n nothing, i index
    yb: YbTableProps | None = None
    estimated_bytes: int = 0

    @property
    def is_partitioned(self) -> bool:
        return self.partition_key is not None

    def copy_columns(self) -> list[str]:
        """Columns whose values a data dump carries (generated columns are recomputed on load)."""
        return [c.name for c in self.columns if c.generated is None]


@dataclass
class View(DbObject):
    definition: str = ""  # pg_get_viewdef
    materialized: bool = False
    populated: bool = True  # a materialized view created or left WITH NO DATA is not refreshed
    options: list[str] = field(default_factory=list)  # reloptions, e.g. security_barrier=true
    columns_comments: dict[str, str] = field(default_factory=dict)
    column_acls: dict[str, list[Grant]] = field(default_factory=dict)


@dataclass
class Function(DbObject):
    definition: str = ""  # pg_get_functiondef
    identity_args: str = ""  # pg_get_function_identity_arguments, for ALTER/COMMENT/GRANT
    is_procedure: bool = False


@dataclass
class IndexKey:
    expression: str  # a quoted column name or an expression, as pg_get_indexdef(oid, n, true) prints it
    ordering: Ordering = "ASC"
    nulls_first: bool = False


@dataclass
class Index:
    key: ObjKey
    schema: str
    name: str
    table: tuple[str, str]
    definition: str  # pg_get_indexdef, used verbatim when the dialect matches the source
    unique: bool = False
    method: str = "btree"
    keys: list[IndexKey] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    predicate: str | None = None
    comment: str | None = None
    yb: YbTableProps | None = None


@dataclass
class Constraint:
    """A table constraint added after the data: primary key (postgres dialect), unique, exclusion,
    foreign key, or a NOT VALID check."""

    table: tuple[str, str]
    name: str
    type: Literal["p", "u", "x", "f", "c"]
    definition: str
    comment: str | None = None


@dataclass
class Trigger:
    table: tuple[str, str]
    name: str
    definition: str  # pg_get_triggerdef
    enabled: str = "O"  # pg_trigger.tgenabled
    comment: str | None = None


@dataclass
class Policy:
    table: tuple[str, str]
    name: str
    permissive: bool
    command: str  # ALL, SELECT, INSERT, UPDATE, DELETE
    roles: list[str]
    using: str | None
    with_check: str | None
    comment: str | None = None


@dataclass
class Rule:
    table: tuple[str, str]
    name: str
    definition: str  # pg_get_ruledef
    comment: str | None = None


@dataclass
class StatisticsObject:
    schema: str
    name: str
    definition: str  # pg_get_statisticsobjdef
    owner: str | None = None
    comment: str | None = None


@dataclass
class DatabaseInfo:
    name: str
    encoding: str = "UTF8"
    collate: str | None = None
    ctype: str | None = None
    colocated: bool = False  # YugabyteDB COLOCATION = true
    comment: str | None = None


@dataclass
class Server:
    """What the source server is."""

    version: str  # full version() string
    version_num: int  # server_version_num
    is_yugabyte: bool

    @property
    def dialect(self) -> Literal["postgres", "yugabyte"]:
        return "yugabyte" if self.is_yugabyte else "postgres"


@dataclass
class SchemaModel:
    """Everything the dump knows about the source database's schema, in dependency order."""

    server: Server
    database: DatabaseInfo
    objects: list[DbObject] = field(default_factory=list)  # pre-data, dependency-sorted
    constraints: list[Constraint] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    statistics: list[StatisticsObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def tables(self) -> list[Table]:
        return [o for o in self.objects if isinstance(o, Table)]

    def sequences(self) -> list[Sequence]:
        return [o for o in self.objects if isinstance(o, Sequence)]

    def materialized_views(self) -> list[View]:
        return [o for o in self.objects if isinstance(o, View) and o.materialized]
