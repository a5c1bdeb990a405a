"""Render a ``SchemaModel`` as SQL for a target dialect: ``postgres`` or ``yugabyte``.

This module is the only place that knows how the two dialects differ:

- yugabyte: the primary key is declared inside CREATE TABLE with its HASH/ASC/DESC key columns,
  followed by the tablet split clause, colocation and tablegroup; indexes are built
  ``NONCONCURRENTLY`` (the target is not live during a load) with their split clauses.
- postgres: the same schema without YB-only syntax (YB issue #13407), the primary key added after
  the data like every other constraint.

Identifiers and literals are always quoted by ``psycopg.sql``. The output is split into pre-data
(run before the data) and post-data statements; each post-data statement carries a ``group`` (the
table it belongs to, so a loader can run groups in parallel) and a ``phase`` (phases run in order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psycopg import sql

from ybrewind.ysql.model import (
    Column,
    CompositeType,
    Constraint,
    DbObject,
    Domain,
    EnumType,
    Extension,
    Function,
    Grant,
    Index,
    KeyColumn,
    NamedConstraint,
    RangeType,
    Schema,
    SchemaModel,
    Sequence,
    SequenceOptions,
    Table,
    View,
)

Dialect = Literal["postgres", "yugabyte"]
DIALECTS: tuple[Dialect, ...] = ("postgres", "yugabyte")

# Post-data phases, run in this order; statements of one phase and different groups may run in parallel.
PHASE_INDEXES = 1  # primary/unique/exclusion constraints, indexes
PHASE_FOREIGN_KEYS = 2
PHASE_TABLE_EXTRAS = 3  # triggers, rules, policies, row security, statistics
PHASE_PRIVILEGES = 4
PHASE_SEQUENCES = 5
PHASE_REFRESH = 6  # materialized views, in dependency order

# pg_trigger.tgenabled values other than the default 'O' (fires in origin and local mode).
TRIGGER_STATES = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}

SCRIPT_PREAMBLE = [
    "SET client_encoding = 'UTF8'",
    "SET standard_conforming_strings = on",
    "SET check_function_bodies = false",
    "SET client_min_messages = warning",
    "SELECT pg_catalog.set_config('search_path', '', false)",
]


def ident(*names: str) -> str:
    return sql.Identifier(*names).as_string(None)


def literal(value: object) -> str:
    return sql.Literal(value).as_string(None)


def qualified(obj: DbObject) -> str:
    return ident(obj.schema, obj.name) if obj.schema else ident(obj.name)


@dataclass(frozen=True)
class PostDataStatement:
    sql: str
    group: str
    phase: int
    header: str = ""  # a comment line written before the statement (pg_dump's TOC header)


@dataclass
class RenderOptions:
    dialect: Dialect = "postgres"
    owners: bool = True
    privileges: bool = True


class DdlWriter:
    """Turns one model into statements (without trailing semicolons)."""

    def __init__(self, model: SchemaModel, options: RenderOptions | None = None) -> None:
        self.model = model
        self.opt = options or RenderOptions(dialect=model.server.dialect)
        self.yb = self.opt.dialect == "yugabyte"
        # A PostgreSQL source keeps its primary keys as constraints; YB targets need them inline.
        self.inline_pk: dict[tuple[str, str], Constraint] = {}
        if self.yb:
            self.inline_pk = {c.table: c for c in model.constraints if c.type == "p"}

    # -- database ----------------------------------------------------------------------------
    def create_database(self, name: str | None = None) -> str:
        db = self.model.database
        stmt = f"CREATE DATABASE {ident(name or db.name)} WITH TEMPLATE = template0 ENCODING = {literal(db.encoding)}"
        if db.collate and db.ctype:
            stmt += f" LC_COLLATE = {literal(db.collate)} LC_CTYPE = {literal(db.ctype)}"
        if self.yb and db.colocated:
            stmt += " COLOCATION = true"  # ysql_dump forgets this (YB issue #26569)
        return stmt

    # -- pre-data ----------------------------------------------------------------------------
    def pre_data(self) -> list[str]:
        out: list[str] = []
        if self.yb:
            groups = sorted({g for t in self.model.tables() if (g := self._tablegroup(t))})
            out += [f"CREATE TABLEGROUP {ident(g)}" for g in groups]
        owned_by: list[str] = []
        for obj in self.model.objects:
            out += self._create(obj)
            out += self._owner(obj)
            out += self._comments(obj)
            if isinstance(obj, Sequence) and obj.owned_by:
                owned_by.append(f"ALTER SEQUENCE {qualified(obj)} OWNED BY {ident(*obj.owned_by)}")
        return out + owned_by

    def _create(self, obj: DbObject) -> list[str]:
        name = qualified(obj)
        match obj:
            case Schema():
                return [] if obj.name == "public" else [f"CREATE SCHEMA {name}"]
            case Extension():
                return [f"CREATE EXTENSION IF NOT EXISTS {ident(obj.name)} WITH SCHEMA {ident(obj.schema or 'public')}"]
            case EnumType():
                return [f"CREATE TYPE {name} AS ENUM ({', '.join(literal(x) for x in obj.labels)})"]
            case CompositeType():
                fields = [
                    f"{ident(a.name)} {a.type}" + (f" COLLATE {a.collation}" if a.collation else "")
                    for a in obj.attributes
                ]
                return [f"CREATE TYPE {name} AS (\n    " + ",\n    ".join(fields) + "\n)"]
            case Domain():
                parts = [f"CREATE DOMAIN {name} AS {obj.base_type}"]
                if obj.collation:
                    parts.append(f"COLLATE {obj.collation}")
                if obj.default is not None:
                    parts.append(f"DEFAULT {obj.default}")
                if obj.not_null:
                    parts.append("NOT NULL")
                # NOT VALID constraints are added after the data (post_data), as pg_dump does
                parts += [f"CONSTRAINT {ident(c.name)} {c.definition}" for c in obj.constraints if not _not_valid(c)]
                return [" ".join(parts)]
            case RangeType():
                opts = [f"subtype = {obj.subtype}"]
                for key, value in (
                    ("subtype_opclass", obj.subtype_opclass),
                    ("collation", obj.collation),
                    ("canonical", obj.canonical),
                    ("subtype_diff", obj.subtype_diff),
                    ("multirange_type_name", obj.multirange_name),
                ):
                    if value:
                        opts.append(f"{key} = {value}")
                return [f"CREATE TYPE {name} AS RANGE (\n    " + ",\n    ".join(opts) + "\n)"]
            case Function():
                return [obj.definition]
            case Sequence():
                return [f"CREATE SEQUENCE {name}{sequence_options(obj.options)}"]
            case Table():
                return self._table(obj)
            case View():
                with_opts = f" WITH ({', '.join(obj.options)})" if obj.options else ""
                if obj.materialized:
                    return [f"CREATE MATERIALIZED VIEW {name}{with_opts} AS\n{obj.definition}\n  WITH NO DATA"]
                return [f"CREATE VIEW {name}{with_opts} AS\n{obj.definition}"]
        raise TypeError(f"cannot render {type(obj).__name__}")

    def _table(self, t: Table) -> list[str]:
        name = qualified(t)
        elements = [self._column(c) for c in t.columns if not c.inherited and t.partition_of is None]
        elements += [f"CONSTRAINT {ident(c.name)} {c.definition}" for c in t.check_constraints]
        if self.yb:
            pk = self._yb_primary_key(t)
            if pk:
                elements.append(pk)
        head = f"CREATE {'UNLOGGED ' if t.unlogged else ''}TABLE {name}"
        if t.partition_of:
            stmt = f"{head} PARTITION OF {ident(*t.partition_of)}"
            if elements:
                stmt += " (\n    " + ",\n    ".join(elements) + "\n)"
            stmt += f"\n{t.partition_bound}"
        else:
            stmt = head + " (\n    " + ",\n    ".join(elements) + "\n)" if elements else head + " ()"
            if t.inherits:
                stmt += "\nINHERITS (" + ", ".join(ident(*p) for p in t.inherits) + ")"
        if t.partition_key:
            stmt += f"\nPARTITION BY {t.partition_key}"
        reloptions = list(t.reloptions)
        if self.yb and t.yb and self.model.database.colocated and not t.yb.colocated and not t.yb.tablegroup:
            reloptions.append("colocation = false")
        if reloptions:
            stmt += f"\nWITH ({', '.join(reloptions)})"
        if self.yb and t.yb:
            if group := self._tablegroup(t):
                stmt += f"\nTABLEGROUP {ident(group)}"
            stmt += yb_split_clause(t.yb)
        out = [stmt]
        for c in t.columns:
            if c.identity and not c.inherited and t.partition_of is None:
                seq = c.identity_sequence
                opts = (
                    f" (SEQUENCE NAME {qualified(seq)}{sequence_options(seq.options, with_type=False)})" if seq else ""
                )
                out.append(
                    f"ALTER TABLE {name} ALTER COLUMN {ident(c.name)} ADD GENERATED {c.identity} AS IDENTITY{opts}"
                )
        if identity := replica_identity_clause(t.replica_identity, self.yb):
            out.append(f"ALTER TABLE {name} REPLICA IDENTITY {identity}")
        return out

    def _tablegroup(self, t: Table) -> str | None:
        """The tablegroup to name for ``t``: none in a colocated database. There every colocated
        table lands in the implicit tablegroup "default", which YugabyteDB creates itself
        (DEFAULT_TABLEGROUP_NAME in src/postgres/src/include/commands/tablegroup.h, created with
        implicit = true by YBCCreateTable in src/postgres/src/backend/commands/ybccmds.c), and any
        other is refused: CreateTableGroup in src/postgres/src/backend/commands/tablegroup.c raises
        "cannot use tablegroups in a colocated database" unless the statement is the implicit one."""
        if self.model.database.colocated:
            return None
        return t.yb.tablegroup if t.yb else None

    @staticmethod
    def _column(c: Column) -> str:
        parts = [ident(c.name), c.type]
        if c.collation:
            parts.append(f"COLLATE {c.collation}")
        if c.generated is not None:
            parts.append(f"GENERATED ALWAYS AS ({c.generated}) STORED")
        elif c.default is not None:
            parts.append(f"DEFAULT {c.default}")
        if c.not_null:
            parts.append("NOT NULL")
        return " ".join(parts)

    def _yb_primary_key(self, t: Table) -> str | None:
        if t.primary_key:
            return f"CONSTRAINT {ident(t.primary_key.name)} {yb_primary_key(t.primary_key.columns)}"
        pk = self.inline_pk.get((t.schema or "", t.name))
        return f"CONSTRAINT {ident(pk.name)} {pk.definition}" if pk else None

    def _owner(self, obj: DbObject) -> list[str]:
        if not self.opt.owners or not obj.owner or isinstance(obj, Extension):
            return []
        return [f"ALTER {object_kind(obj)} {object_name(obj)} OWNER TO {ident(obj.owner)}"]

    def _comments(self, obj: DbObject) -> list[str]:
        out = []
        if obj.comment is not None:
            out.append(f"COMMENT ON {object_kind(obj)} {object_name(obj)} IS {literal(obj.comment)}")
        name = qualified(obj)
        if isinstance(obj, Table):
            out += [
                f"COMMENT ON COLUMN {name}.{ident(c.name)} IS {literal(c.comment)}"
                for c in obj.columns
                if c.comment is not None
            ]
            out += [
                f"COMMENT ON CONSTRAINT {ident(c.name)} ON {name} IS {literal(c.comment)}"
                for c in obj.check_constraints
                if c.comment is not None
            ]
            if obj.primary_key and obj.primary_key.comment is not None and self.yb:
                out.append(
                    f"COMMENT ON CONSTRAINT {ident(obj.primary_key.name)} ON {name} "
                    f"IS {literal(obj.primary_key.comment)}"
                )
        elif isinstance(obj, View):
            out += [
                f"COMMENT ON COLUMN {name}.{ident(col)} IS {literal(text)}"
                for col, text in obj.columns_comments.items()
            ]
        elif isinstance(obj, CompositeType):
            out += [
                f"COMMENT ON COLUMN {name}.{ident(a.name)} IS {literal(a.comment)}"
                for a in obj.attributes
                if a.comment is not None
            ]
        elif isinstance(obj, Domain):
            out += [
                f"COMMENT ON CONSTRAINT {ident(c.name)} ON DOMAIN {name} IS {literal(c.comment)}"
                for c in obj.constraints
                if c.comment is not None and not _not_valid(c)
            ]
        return out

    # -- post-data ---------------------------------------------------------------------------
    def post_data(self) -> list[PostDataStatement]:
        out: list[PostDataStatement] = []

        def add(stmt: str, table: tuple[str, str], phase: int) -> None:
            out.append(PostDataStatement(stmt, ".".join(table), phase))

        for d in self.model.objects:
            if isinstance(d, Domain):
                for dc in d.constraints:
                    if _not_valid(dc):
                        stmt = f"ALTER DOMAIN {qualified(d)} ADD CONSTRAINT {ident(dc.name)} {dc.definition}"
                        add(stmt, (d.schema or "", d.name), PHASE_INDEXES)
                        if dc.comment is not None:
                            stmt = f"COMMENT ON CONSTRAINT {ident(dc.name)} ON DOMAIN {qualified(d)} IS {literal(dc.comment)}"
                            add(stmt, (d.schema or "", d.name), PHASE_INDEXES)
        for c in self.model.constraints:
            if self.yb and c.type == "p":
                continue  # declared inside CREATE TABLE
            phase = PHASE_FOREIGN_KEYS if c.type == "f" else PHASE_INDEXES
            add(f"ALTER TABLE {ident(*c.table)} ADD CONSTRAINT {ident(c.name)} {c.definition}", c.table, phase)
            if c.comment is not None:
                add(
                    f"COMMENT ON CONSTRAINT {ident(c.name)} ON {ident(*c.table)} IS {literal(c.comment)}",
                    c.table,
                    phase,
                )
        if not self.yb:
            for t in self.model.tables():
                if t.primary_key:  # a YugabyteDB source rendered for PostgreSQL
                    cols = ", ".join(ident(k.name) for k in t.primary_key.columns)
                    key = (t.schema or "", t.name)
                    add(
                        f"ALTER TABLE {qualified(t)} ADD CONSTRAINT {ident(t.primary_key.name)} PRIMARY KEY ({cols})",
                        key,
                        PHASE_INDEXES,
                    )
                    if t.primary_key.comment is not None:
                        add(
                            f"COMMENT ON CONSTRAINT {ident(t.primary_key.name)} ON {qualified(t)} "
                            f"IS {literal(t.primary_key.comment)}",
                            key,
                            PHASE_INDEXES,
                        )
        for i in self.model.indexes:
            add(self.index(i), i.table, PHASE_INDEXES)
            if i.comment is not None:
                add(f"COMMENT ON INDEX {ident(i.schema, i.name)} IS {literal(i.comment)}", i.table, PHASE_INDEXES)
        for tr in self.model.triggers:
            add(tr.definition, tr.table, PHASE_TABLE_EXTRAS)
            if tr.enabled in TRIGGER_STATES:
                add(
                    f"ALTER TABLE {ident(*tr.table)} {TRIGGER_STATES[tr.enabled]} TRIGGER {ident(tr.name)}",
                    tr.table,
                    PHASE_TABLE_EXTRAS,
                )
            if tr.comment is not None:
                add(
                    f"COMMENT ON TRIGGER {ident(tr.name)} ON {ident(*tr.table)} IS {literal(tr.comment)}",
                    tr.table,
                    PHASE_TABLE_EXTRAS,
                )
        for r in self.model.rules:
            add(r.definition.rstrip(";"), r.table, PHASE_TABLE_EXTRAS)
            if r.comment is not None:
                add(
                    f"COMMENT ON RULE {ident(r.name)} ON {ident(*r.table)} IS {literal(r.comment)}",
                    r.table,
                    PHASE_TABLE_EXTRAS,
                )
        for t in self.model.tables():
            key = (t.schema or "", t.name)
            if t.rls_enabled:
                add(f"ALTER TABLE {qualified(t)} ENABLE ROW LEVEL SECURITY", key, PHASE_TABLE_EXTRAS)
            if t.rls_forced:
                add(f"ALTER TABLE {qualified(t)} FORCE ROW LEVEL SECURITY", key, PHASE_TABLE_EXTRAS)
        for p in self.model.policies:
            stmt = f"CREATE POLICY {ident(p.name)} ON {ident(*p.table)}"
            stmt += "" if p.permissive else " AS RESTRICTIVE"
            stmt += f" FOR {p.command} TO {', '.join('PUBLIC' if r == 'PUBLIC' else ident(r) for r in p.roles)}"
            if p.using is not None:
                stmt += f" USING ({p.using})"
            if p.with_check is not None:
                stmt += f" WITH CHECK ({p.with_check})"
            add(stmt, p.table, PHASE_TABLE_EXTRAS)
            if p.comment is not None:
                add(
                    f"COMMENT ON POLICY {ident(p.name)} ON {ident(*p.table)} IS {literal(p.comment)}",
                    p.table,
                    PHASE_TABLE_EXTRAS,
                )
        for s in self.model.statistics:
            group = (s.schema, s.name)
            add(s.definition, group, PHASE_TABLE_EXTRAS)
            if self.opt.owners and s.owner:
                add(f"ALTER STATISTICS {ident(s.schema, s.name)} OWNER TO {ident(s.owner)}", group, PHASE_TABLE_EXTRAS)
            if s.comment is not None:
                add(
                    f"COMMENT ON STATISTICS {ident(s.schema, s.name)} IS {literal(s.comment)}",
                    group,
                    PHASE_TABLE_EXTRAS,
                )
        if self.opt.privileges:
            for obj in self.model.objects:
                for stmt in self.privileges(obj):
                    add(stmt, (obj.schema or "", obj.name), PHASE_PRIVILEGES)
        for stmt in self.sequence_values():
            add(stmt, ("", "sequences"), PHASE_SEQUENCES)
        for v in self.model.materialized_views():
            if v.populated:
                add(f"REFRESH MATERIALIZED VIEW {qualified(v)}", ("", "refresh"), PHASE_REFRESH)
        return sorted(out, key=lambda p: p.phase)  # stable: a script run top to bottom is valid

    def index(self, i: Index) -> str:
        if self.yb and self.model.server.is_yugabyte:
            stmt = i.definition
        elif not self.yb and not self.model.server.is_yugabyte:
            return i.definition.replace(" ON ONLY ", " ON ", 1)  # recurse into partitions
        elif self.yb:  # PostgreSQL source, YugabyteDB target: YB maps btree to lsm itself
            stmt = i.definition
        else:  # YugabyteDB source, PostgreSQL target: rebuild without lsm/HASH
            method = "btree" if i.method == "lsm" else i.method
            keys = []
            for k in i.keys:
                text = k.expression
                if k.ordering == "DESC":
                    text += " DESC" + ("" if k.nulls_first else " NULLS LAST")
                elif k.nulls_first:
                    text += " NULLS FIRST"
                keys.append(text)
            stmt = (
                f"CREATE {'UNIQUE ' if i.unique else ''}INDEX {ident(i.name)} ON {ident(*i.table)} "
                f"USING {method} ({', '.join(keys)})"
            )
            if i.include:
                stmt += f" INCLUDE ({', '.join(i.include)})"
            if i.predicate:
                stmt += f" WHERE {i.predicate}"
            return stmt
        stmt = stmt.replace(" ON ONLY ", " ON ", 1)
        for head in ("CREATE UNIQUE INDEX ", "CREATE INDEX "):
            if stmt.startswith(head) and "NONCONCURRENTLY" not in stmt[: len(head) + 16]:
                stmt = head + "NONCONCURRENTLY " + stmt[len(head) :]
                break
        if i.yb:
            stmt += yb_split_clause(i.yb)
        return stmt

    def privileges(self, obj: DbObject) -> list[str]:
        """GRANT/REVOKE statements reproducing ``obj``'s ACL (and its columns')."""
        out: list[str] = []
        if isinstance(obj, Extension):
            return out
        target = f"{grant_kind(obj)} {object_name(obj)}"
        if obj.acl is not None:
            out.append(f"REVOKE ALL ON {target} FROM PUBLIC")
            if obj.owner and self.opt.owners:
                out.append(f"REVOKE ALL ON {target} FROM {ident(obj.owner)}")
            out += self._grants(obj.acl, target, obj.owner)
        columns: dict[str, list[Grant]] = {}
        if isinstance(obj, Table):
            columns = {c.name: c.acl for c in obj.columns if c.acl}
        elif isinstance(obj, View):
            columns = obj.column_acls
        for col, acl in columns.items():
            out += self._grants(acl, target, obj.owner, column=col)
        return out

    def _grants(self, acl: list[Grant], target: str, owner: str | None, column: str | None = None) -> list[str]:
        out = []
        for g in acl:
            if not self.opt.owners and g.grantee == owner:
                continue  # the owner's own rights belong to whoever owns it on the target
            grantee = "PUBLIC" if g.grantee == "PUBLIC" else ident(g.grantee)
            priv = g.privilege + (f" ({ident(column)})" if column else "")
            out.append(f"GRANT {priv} ON {target} TO {grantee}" + (" WITH GRANT OPTION" if g.grantable else ""))
        return out

    def sequence_values(self) -> list[str]:
        seqs = [s for s in self.model.sequences()]
        seqs += [
            c.identity_sequence
            for t in self.model.tables()
            for c in t.columns
            if c.identity_sequence is not None and not c.inherited and t.partition_of is None
        ]
        return [
            f"SELECT pg_catalog.setval({literal(qualified(s))}, {s.last_value}, {'true' if s.is_called else 'false'})"
            for s in seqs
            if s.last_value is not None
        ]


# -- helpers shared with tests and the YB renderer ---------------------------------------------
def _not_valid(c: NamedConstraint) -> bool:
    return c.definition.endswith(" NOT VALID")



def sequence_options(o: SequenceOptions, with_type: bool = True) -> str:
    return (
        (f"\n    AS {o.data_type}" if with_type else "")
        + f"\n    START WITH {o.start}\n    INCREMENT BY {o.increment}\n"
        f"    MINVALUE {o.min_value}\n    MAXVALUE {o.max_value}\n    CACHE {o.cache}"
        + ("\n    CYCLE" if o.cycle else "")
    )


def yb_primary_key(columns: list[KeyColumn]) -> str:
    """``PRIMARY KEY ((a, b) HASH, c ASC)`` as YugabyteDB declares sharding."""
    hashed = [ident(k.name) for k in columns if k.ordering == "HASH"]
    parts = []
    if len(hashed) == 1:
        parts.append(f"{hashed[0]} HASH")
    elif hashed:
        parts.append(f"({', '.join(hashed)}) HASH")
    parts += [f"{ident(k.name)} {k.ordering}" for k in columns if k.ordering != "HASH"]
    return f"PRIMARY KEY ({', '.join(parts)})"


YB_DEFAULT_TABLEGROUP = "default"


def replica_identity_clause(identity: str, yb_target: bool) -> str | None:
    """REPLICA IDENTITY to render after CREATE TABLE. PostgreSQL tables start as DEFAULT; YugabyteDB
    tables start as ysql_yb_default_replica_identity, CHANGE unless changed (docs: develop/
    change-data-capture/using-logical-replication/key-concepts.md, Replica identity), so a YB target
    gets every identity spelled out, CHANGE ('c' in relreplident: YBC_YB_REPLICA_IDENTITY_CHANGE in
    src/yb/yql/pggate/ybc_pg_typedefs.h) included; a PostgreSQL target has no CHANGE."""
    names = {"f": "FULL", "n": "NOTHING"}
    if yb_target:
        names |= {"d": "DEFAULT", "c": "CHANGE"}
    return names.get(identity)


def yb_split_clause(props: object) -> str:
    from ybrewind.ysql.model import YbTableProps

    assert isinstance(props, YbTableProps)
    if props.colocated or props.tablegroup:
        return ""
    if props.num_hash_key_columns > 0 and props.num_tablets > 1:
        return f"\nSPLIT INTO {props.num_tablets} TABLETS"
    if props.num_hash_key_columns == 0 and props.split_clause:
        return f"\n{props.split_clause}"
    return ""


def object_kind(obj: DbObject) -> str:
    match obj:
        case Schema():
            return "SCHEMA"
        case Extension():
            return "EXTENSION"
        case Domain():
            return "DOMAIN"
        case EnumType() | CompositeType() | RangeType():
            return "TYPE"
        case Function():
            return "PROCEDURE" if obj.is_procedure else "FUNCTION"
        case Sequence():
            return "SEQUENCE"
        case Table():
            return "TABLE"
        case View():
            return "MATERIALIZED VIEW" if obj.materialized else "VIEW"
    raise TypeError(type(obj).__name__)


def grant_kind(obj: DbObject) -> str:
    """The object class word GRANT uses (views and sequences differ from ALTER's)."""
    match obj:
        case Table() | View():
            return "TABLE"
        case EnumType() | CompositeType() | RangeType():
            return "TYPE"
    return object_kind(obj)


def object_name(obj: DbObject) -> str:
    if isinstance(obj, Extension):
        return ident(obj.name)
    if isinstance(obj, Function):
        return f"{qualified(obj)}({obj.identity_args})"
    return qualified(obj)


def render_script(
    model: SchemaModel, options: RenderOptions | None = None
) -> tuple[list[str], list[PostDataStatement]]:
    writer = DdlWriter(model, options)
    return writer.pre_data(), writer.post_data()
