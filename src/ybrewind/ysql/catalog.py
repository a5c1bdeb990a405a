"""Read a live database's schema from the system catalogs into ``model.SchemaModel``.

All text comes from the server's own printers (``format_type``, ``pg_get_expr``,
``pg_get_*def``) run with an empty ``search_path``, so names are schema-qualified exactly as
pg_dump prints them. Objects that belong to an extension are left to ``CREATE EXTENSION``.
Object kinds we do not render are named in ``SchemaModel.warnings``, never dropped silently.

The reader must run inside the dump's snapshot transaction, so the schema matches the data.
"""

from __future__ import annotations

import fnmatch
import heapq
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ybrewind.ysql.model import (
    Column,
    CompositeAttribute,
    CompositeType,
    Constraint,
    DatabaseInfo,
    DbObject,
    Domain,
    EnumType,
    Extension,
    Function,
    Grant,
    Index,
    IndexKey,
    KeyColumn,
    NamedConstraint,
    ObjKey,
    Policy,
    PrimaryKey,
    RangeType,
    Rule,
    Schema,
    SchemaModel,
    Sequence,
    SequenceOptions,
    Server,
    StatisticsObject,
    Table,
    Trigger,
    View,
    YbTableProps,
)

# YugabyteDB's pg_index.indoption bits: DESC implies NULLS FIRST (3); HASH is YB's own bit.
INDOPTION_DESC = 1
INDOPTION_NULLS_FIRST = 2
INDOPTION_HASH = 4

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# The function of the archiver's TRUNCATE triggers on YugabyteDB (ysql/archiver.py): not dumped.
TRUNCATE_FUNCTION = "ybrewind.log_truncate()"
USER_NAMESPACES = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%' "
    "AND n.nspname NOT LIKE 'pg\\_temp\\_%%'"
)
# Objects created by an extension belong to its CREATE EXTENSION.
NOT_IN_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass AND d.objid = {oid} "
    "AND d.deptype = 'e')"
)


@dataclass
class Filters:
    """pg_dump-style selection: -n/--schema, -t/--table, -T/--exclude-table, --exclude-table-data.

    Patterns use shell wildcards (* and ?) on unquoted names; a table pattern may be qualified
    (``sales.*``). With table patterns, only the matching relations and what hangs on them are
    dumped, as with pg_dump -t.
    """

    schemas: list[str] = field(default_factory=list)
    exclude_schemas: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    exclude_tables: list[str] = field(default_factory=list)
    exclude_table_data: list[str] = field(default_factory=list)

    def schema_selected(self, schema: str) -> bool:
        if any(fnmatch.fnmatchcase(schema, p) for p in self.exclude_schemas):
            return False
        return not self.schemas or any(fnmatch.fnmatchcase(schema, p) for p in self.schemas)

    @staticmethod
    def _match(patterns: Iterable[str], schema: str, name: str) -> bool:
        for p in patterns:
            if "." in p:
                ps, pn = p.split(".", 1)
                if fnmatch.fnmatchcase(schema, ps) and fnmatch.fnmatchcase(name, pn):
                    return True
            elif fnmatch.fnmatchcase(name, p):
                return True
        return False

    def relation_selected(self, schema: str, name: str) -> bool:
        if not self.schema_selected(schema) or self._match(self.exclude_tables, schema, name):
            return False
        return not self.tables or self._match(self.tables, schema, name)

    def data_selected(self, schema: str, name: str) -> bool:
        return not self._match(self.exclude_table_data, schema, name)

    @property
    def only_relations(self) -> bool:
        return bool(self.tables)


def _q(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _size_expression(is_yugabyte: bool) -> str:
    """A table's size. On YugabyteDB pg_relation_size() measures local files, of which YB tables
    have none (0); pg_table_size() asks DocDB and is NULL for colocated tables
    (src/postgres/src/backend/utils/adt/dbsize.c, calculate_table_size)."""
    return "coalesce(pg_table_size(c.oid), 0)" if is_yugabyte else "pg_relation_size(c.oid)"


def read_server(conn: psycopg.Connection) -> Server:
    row = _q(conn, "SELECT version() AS v, current_setting('server_version_num')::int AS n")[0]
    return Server(version=row["v"], version_num=row["n"], is_yugabyte="-YB-" in row["v"])


def _grants(acl_rows: list[dict[str, Any]] | None) -> list[Grant] | None:
    if acl_rows is None:
        return None
    return [Grant(r["grantee"], r["privilege"], r["grantable"]) for r in acl_rows]


# aclexplode() turns an aclitem[] into rows; grantee 0 is PUBLIC.
ACL_JSON = (
    "CASE WHEN {acl} IS NULL THEN NULL ELSE (SELECT coalesce(json_agg(json_build_object("
    "'grantee', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, "
    "'privilege', a.privilege_type, 'grantable', a.is_grantable) "
    "ORDER BY a.grantee, a.privilege_type), '[]'::json) FROM aclexplode({acl}) a) END"
)


def _acl(column: str) -> str:
    return ACL_JSON.format(acl=column)


class CatalogReader:
    """Builds a SchemaModel from one connection (already inside the dump's snapshot)."""

    def __init__(self, conn: psycopg.Connection, filters: Filters | None = None) -> None:
        self.conn = conn
        self.filters = filters or Filters()
        self.server = read_server(conn)
        self.v = self.server.version_num
        self.objects: dict[ObjKey, DbObject] = {}
        self.alias: dict[ObjKey, ObjKey] = {}  # sub-objects (rowtypes, arrays, rules...) -> owner
        self.model = SchemaModel(server=self.server, database=self._database())

    # -- entry point -------------------------------------------------------------------------
    def read(self, full: bool = True) -> SchemaModel:
        """The whole schema; with ``full=False`` only schemas, sequences and tables (what a dump
        whose schema pg_dump renders needs for the data: columns, sizes, sequence values)."""
        conn = self.conn
        conn.execute("SELECT pg_catalog.set_config('search_path', '', false)")
        if not self.filters.only_relations:
            self._schemas()
            if full:
                self._extensions()
                self._types()
                self._functions()
        self._sequences()
        self._tables()
        if full:
            self._views()
            self._post_data()
            self._warn_unsupported()
            self._dependencies()
        self.model.objects = self._sorted()
        return self.model

    # -- database ----------------------------------------------------------------------------
    def _database(self) -> DatabaseInfo:
        row = _q(
            self.conn,
            "SELECT d.datname, pg_encoding_to_char(d.encoding) AS enc, d.datcollate, d.datctype, "
            "shobj_description(d.oid, 'pg_database') AS comment FROM pg_database d "
            "WHERE d.datname = current_database()",
        )[0]
        info = DatabaseInfo(row["datname"], row["enc"], row["datcollate"], row["datctype"], comment=row["comment"])
        if self.server.is_yugabyte:
            info.colocated = bool(_q(self.conn, "SELECT yb_is_database_colocated() AS c")[0]["c"])
        return info

    def _add(self, obj: DbObject) -> None:
        self.objects[obj.key] = obj

    # -- pre-data objects --------------------------------------------------------------------
    def _schemas(self) -> None:
        rows = _q(
            self.conn,
            f"SELECT n.oid, n.nspname, pg_get_userbyid(n.nspowner) AS owner, "
            f"obj_description(n.oid, 'pg_namespace') AS comment, {_acl('n.nspacl')} AS acl "
            f"FROM pg_namespace n WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_namespace'", oid="n.oid"),
        )
        for r in rows:
            if self.filters.schema_selected(r["nspname"]):
                self._add(
                    Schema(("pg_namespace", r["oid"]), None, r["nspname"], r["owner"], r["comment"], _grants(r["acl"]))
                )

    def _extensions(self) -> None:
        rows = _q(
            self.conn,
            "SELECT e.oid, e.extname, e.extversion, n.nspname, obj_description(e.oid, 'pg_extension') AS comment "
            "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql'",
        )
        for r in rows:
            if self.filters.schema_selected(r["nspname"]):
                ext = Extension(
                    ("pg_extension", r["oid"]),
                    r["nspname"],
                    r["extname"],
                    comment=r["comment"],
                    version=r["extversion"],
                )
                ext.deps.add(("pg_namespace", self._schema_oid(r["nspname"])))
                self._add(ext)

    def _schema_oid(self, name: str) -> int:
        for key, obj in self.objects.items():
            if key[0] == "pg_namespace" and obj.name == name:
                return key[1]
        return 0

    def _types(self) -> None:
        base = (
            f"SELECT t.oid, t.typname, n.nspname, t.typtype, pg_get_userbyid(t.typowner) AS owner, "
            f"obj_description(t.oid, 'pg_type') AS comment, {_acl('t.typacl')} AS acl, t.typrelid, "
            f"format_type(t.typbasetype, t.typtypmod) AS basetype, t.typnotnull, t.typdefault, "
            f"CASE WHEN t.typcollation <> 0 AND t.typcollation <> (SELECT bt.typcollation FROM pg_type bt "
            f"WHERE bt.oid = t.typbasetype) THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(c.collname) "
            f"FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace WHERE c.oid = t.typcollation) "
            f"END AS collation "
            f"FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            f"WHERE {USER_NAMESPACES} AND t.typtype IN ('e', 'c', 'd', 'r') "
            f"AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_type'", oid="t.oid")
        )
        for r in _q(self.conn, base):
            if not self.filters.schema_selected(r["nspname"]):
                continue
            common: dict[str, Any] = dict(
                key=("pg_type", r["oid"]),
                schema=r["nspname"],
                name=r["typname"],
                owner=r["owner"],
                comment=r["comment"],
                acl=_grants(r["acl"]),
            )
            kind = r["typtype"]
            if kind == "e":
                labels = [
                    x["enumlabel"]
                    for x in _q(
                        self.conn,
                        "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s ORDER BY enumsortorder",
                        [r["oid"]],
                    )
                ]
                self._add(EnumType(**common, labels=labels))
            elif kind == "c":
                attrs = _q(
                    self.conn,
                    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, "
                    "col_description(a.attrelid, a.attnum) AS comment, "
                    "CASE WHEN a.attcollation <> t.typcollation THEN (SELECT quote_ident(cn.nspname) || '.' || "
                    "quote_ident(c.collname) FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace "
                    "WHERE c.oid = a.attcollation) END AS collation "
                    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                    "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    [r["typrelid"]],
                )
                self.alias[("pg_class", r["typrelid"])] = ("pg_type", r["oid"])
                self._add(
                    CompositeType(
                        **common,
                        attributes=[
                            CompositeAttribute(a["attname"], a["type"], a["collation"], a["comment"]) for a in attrs
                        ],
                    )
                )
            elif kind == "d":
                cons = _q(
                    self.conn,
                    "SELECT oid, conname, pg_get_constraintdef(oid, true) AS def, "
                    "obj_description(oid, 'pg_constraint') AS comment FROM pg_constraint "
                    "WHERE contypid = %s AND contype = 'c' ORDER BY conname",
                    [r["oid"]],
                )
                for c in cons:
                    self.alias[("pg_constraint", c["oid"])] = ("pg_type", r["oid"])
                self._add(
                    Domain(
                        **common,
                        base_type=r["basetype"],
                        not_null=r["typnotnull"],
                        default=r["typdefault"],
                        collation=r["collation"],
                        constraints=[NamedConstraint(c["conname"], c["def"], c["comment"]) for c in cons],
                    )
                )
            else:
                self._add(self._range(common))

    def _range(self, common: dict[str, Any]) -> RangeType:
        multirange = (
            "(SELECT quote_ident(mn.nspname) || '.' || quote_ident(mt.typname) FROM pg_type mt "
            "JOIN pg_namespace mn ON mn.oid = mt.typnamespace WHERE mt.oid = r.rngmultitypid)"
            if self.v >= 140000
            else "NULL"
        )
        r = _q(
            self.conn,
            "SELECT format_type(r.rngsubtype, NULL) AS subtype, "
            "CASE WHEN NOT oc.opcdefault THEN quote_ident(ocn.nspname) || '.' || quote_ident(oc.opcname) END AS opclass, "
            "CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> st.typcollation THEN "
            "(SELECT quote_ident(cn.nspname) || '.' || quote_ident(c.collname) FROM pg_collation c "
            "JOIN pg_namespace cn ON cn.oid = c.collnamespace WHERE c.oid = r.rngcollation) END AS collation, "
            "NULLIF(r.rngcanonical, 0)::regproc::text AS canonical, NULLIF(r.rngsubdiff, 0)::regproc::text AS subdiff, "
            f"{multirange} AS multirange "
            "FROM pg_range r JOIN pg_type st ON st.oid = r.rngsubtype JOIN pg_opclass oc ON oc.oid = r.rngsubopc "
            "JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace WHERE r.rngtypid = %s",
            [common["key"][1]],
        )[0]
        rng = RangeType(
            **common,
            subtype=r["subtype"],
            subtype_opclass=r["opclass"],
            collation=r["collation"],
            canonical=r["canonical"],
            subtype_diff=r["subdiff"],
            multirange_name=r["multirange"],
        )
        # The multirange type is created implicitly with the range.
        if self.v >= 140000:
            mr = _q(self.conn, "SELECT rngmultitypid FROM pg_range WHERE rngtypid = %s", [common["key"][1]])[0]
            self.alias[("pg_type", mr["rngmultitypid"])] = common["key"]
        return rng

    def _functions(self) -> None:
        kinds = "p.prokind IN ('f', 'p')" if self.v >= 110000 else "NOT p.proisagg"
        rows = _q(
            self.conn,
            f"SELECT p.oid, p.proname, n.nspname, pg_get_userbyid(p.proowner) AS owner, "
            f"obj_description(p.oid, 'pg_proc') AS comment, {_acl('p.proacl')} AS acl, "
            f"pg_get_functiondef(p.oid) AS def, pg_get_function_identity_arguments(p.oid) AS args, "
            f"p.prokind = 'p' AS is_proc "
            f"FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            f"WHERE {USER_NAMESPACES} AND {kinds} AND "
            # constructors of range/multirange types come with CREATE TYPE (internal dependency)
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
            "AND d.deptype = 'i') AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")
            + " ORDER BY n.nspname, p.proname, args",
        )
        for r in rows:
            if self.filters.schema_selected(r["nspname"]):
                self._add(
                    Function(
                        ("pg_proc", r["oid"]),
                        r["nspname"],
                        r["proname"],
                        r["owner"],
                        r["comment"],
                        _grants(r["acl"]),
                        definition=r["def"].rstrip(),
                        identity_args=r["args"],
                        is_procedure=r["is_proc"],
                    )
                )

    def _sequences(self) -> None:
        rows = _q(
            self.conn,
            f"SELECT c.oid, c.relname, n.nspname, pg_get_userbyid(c.relowner) AS owner, "
            f"obj_description(c.oid, 'pg_class') AS comment, {_acl('c.relacl')} AS acl, "
            f"format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, "
            f"s.seqcycle, d.refobjid AS owner_table, d.deptype AS owner_deptype, "
            f"(SELECT quote_ident(tn.nspname) FROM pg_class tc JOIN pg_namespace tn ON tn.oid = tc.relnamespace "
            f" WHERE tc.oid = d.refobjid) AS owner_schema, "
            f"(SELECT tc.relname FROM pg_class tc WHERE tc.oid = d.refobjid) AS owner_relname, "
            f"(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = d.refobjid AND a.attnum = d.refobjsubid) "
            f"AS owner_column "
            f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid "
            f"LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid "
            f"AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
            f"WHERE c.relkind = 'S' AND {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_class'", oid="c.oid"),
        )
        self._identity_sequences: dict[tuple[int, str], Sequence] = {}
        for r in rows:
            seq = Sequence(
                ("pg_class", r["oid"]),
                r["nspname"],
                r["relname"],
                r["owner"],
                r["comment"],
                _grants(r["acl"]),
                options=SequenceOptions(
                    r["type"], r["seqstart"], r["seqincrement"], r["seqmin"], r["seqmax"], r["seqcache"], r["seqcycle"]
                ),
            )
            values = self._sequence_values(r["nspname"], r["relname"])
            seq.last_value, seq.is_called = values
            if r["owner_deptype"] == "i":  # identity column sequence: rendered with its column
                self._identity_sequences[(r["owner_table"], r["owner_column"])] = seq
                continue
            if not self.filters.relation_selected(r["nspname"], r["relname"]):
                continue
            if r["owner_deptype"] == "a" and r["owner_column"]:
                seq.owned_by = (r["owner_schema"], r["owner_relname"], r["owner_column"])
            self._add(seq)

    def _sequence_values(self, schema: str, name: str) -> tuple[int | None, bool]:
        from psycopg import sql

        row = self.conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        ).fetchone()
        assert row is not None
        return int(row[0]), bool(row[1])

    def _tables(self) -> None:
        rows = _q(
            self.conn,
            f"SELECT c.oid, c.relname, n.nspname, c.relkind, c.relpersistence, pg_get_userbyid(c.relowner) AS owner, "
            f"obj_description(c.oid, 'pg_class') AS comment, {_acl('c.relacl')} AS acl, c.reloptions, "
            f"c.relrowsecurity, c.relforcerowsecurity, c.relreplident, c.relispartition, "
            f"CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partkey, "
            f"CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partbound, "
            f"{_size_expression(self.server.is_yugabyte)} AS bytes "
            f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p') AND {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_class'", oid="c.oid")
            + " ORDER BY n.nspname, c.relname",
        )
        parents = defaultdict(list)
        for p in _q(
            self.conn,
            "SELECT i.inhrelid, pn.nspname, pc.relname, pc.oid FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent "
            "JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE pc.relkind IN ('r', 'p') ORDER BY i.inhseqno",
        ):
            parents[p["inhrelid"]].append(p)
        # One query each for all tables' columns and CHECKs: a query per table costs a round trip
        # per table, which dominates a dump of many small tables.
        self._column_rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for c in _q(self.conn, self._columns_query()):
            self._column_rows[c["attrelid"]].append(c)
        checks: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for c in _q(
            self.conn,
            "SELECT conrelid, conname, pg_get_constraintdef(oid) AS def, obj_description(oid, 'pg_constraint') AS comment "
            "FROM pg_constraint WHERE contype = 'c' AND conrelid <> 0 AND conislocal AND convalidated ORDER BY conname",
        ):
            checks[c["conrelid"]].append(c)
        for r in rows:
            if not self.filters.relation_selected(r["nspname"], r["relname"]):
                continue
            t = Table(
                ("pg_class", r["oid"]),
                r["nspname"],
                r["relname"],
                r["owner"],
                r["comment"],
                _grants(r["acl"]),
                unlogged=r["relpersistence"] == "u",
                partition_key=r["partkey"],
                partition_bound=r["partbound"],
                reloptions=list(r["reloptions"] or []),
                rls_enabled=r["relrowsecurity"],
                rls_forced=r["relforcerowsecurity"],
                replica_identity=r["relreplident"],
                estimated_bytes=r["bytes"] or 0,
            )
            for p in parents.get(r["oid"], []):
                t.deps.add(("pg_class", p["oid"]))
                if r["relispartition"]:
                    t.partition_of = (p["nspname"], p["relname"])
                else:
                    t.inherits.append((p["nspname"], p["relname"]))
            t.columns = self._columns(r["oid"])
            t.check_constraints = [NamedConstraint(c["conname"], c["def"], c["comment"]) for c in checks[r["oid"]]]
            if self.server.is_yugabyte:
                t.yb = self._yb_props(r["oid"])
            self._add(t)

    def _columns_query(self) -> str:
        generated = "a.attgenerated" if self.v >= 120000 else "''"
        return (
            f"SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull, "
            f"pg_get_expr(d.adbin, d.adrelid) AS default, {generated} AS generated, a.attidentity, a.attislocal, "
            f"CASE WHEN a.attcollation <> t.typcollation THEN (SELECT quote_ident(cn.nspname) || '.' || "
            f"quote_ident(c.collname) FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace "
            f"WHERE c.oid = a.attcollation) END AS collation, "
            f"col_description(a.attrelid, a.attnum) AS comment, {_acl('a.attacl')} AS acl "
            f"FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            f"LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            f"JOIN pg_class r ON r.oid = a.attrelid "
            f"WHERE r.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum"
        )

    def _columns(self, relid: int) -> list[Column]:
        cols = []
        for r in self._column_rows[relid]:
            col = Column(
                r["attname"],
                r["type"],
                r["attnotnull"],
                collation=r["collation"],
                comment=r["comment"],
                acl=_grants(r["acl"]),
                inherited=not r["attislocal"],
            )
            if r["generated"] == "s":
                col.generated = r["default"]
            else:
                col.default = r["default"]
            if r["attidentity"]:
                col.identity = "ALWAYS" if r["attidentity"] == "a" else "BY DEFAULT"
                col.identity_sequence = self._identity_sequences.get((relid, r["attname"]))
            cols.append(col)
        return cols

    def _yb_props(self, oid: int) -> YbTableProps:
        r = _q(
            self.conn,
            "SELECT p.num_tablets, p.num_hash_key_columns, p.is_colocated, "
            "(SELECT grpname FROM pg_yb_tablegroup g WHERE g.oid = p.tablegroup_oid) AS tablegroup, "
            "yb_get_range_split_clause(%s) AS split FROM yb_table_properties(%s) p",
            [oid, oid],
        )[0]
        return YbTableProps(
            r["num_tablets"] or 0,
            r["num_hash_key_columns"] or 0,
            r["split"] or None,
            bool(r["is_colocated"]),
            r["tablegroup"],
        )

    def _views(self) -> None:
        rows = _q(
            self.conn,
            f"SELECT c.oid, c.relname, n.nspname, c.relkind, pg_get_userbyid(c.relowner) AS owner, "
            f"obj_description(c.oid, 'pg_class') AS comment, {_acl('c.relacl')} AS acl, c.reloptions, "
            # relispopulated is in YugabyteDB's pg_class too (src/postgres/src/include/catalog/pg_class.h)
            f"pg_get_viewdef(c.oid, true) AS def, c.relispopulated "
            f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('v', 'm') AND {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_class'", oid="c.oid"),
        )
        for r in rows:
            if not self.filters.relation_selected(r["nspname"], r["relname"]):
                continue
            view = View(
                ("pg_class", r["oid"]),
                r["nspname"],
                r["relname"],
                r["owner"],
                r["comment"],
                _grants(r["acl"]),
                definition=r["def"].strip().rstrip(";"),
                materialized=r["relkind"] == "m",
                populated=r["relispopulated"],
                options=list(r["reloptions"] or []),
            )
            for c in _q(
                self.conn,
                f"SELECT a.attname, col_description(a.attrelid, a.attnum) AS comment, {_acl('a.attacl')} AS acl "
                f"FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                [r["oid"]],
            ):
                if c["comment"] is not None:
                    view.columns_comments[c["attname"]] = c["comment"]
                if c["acl"] is not None:
                    view.column_acls[c["attname"]] = _grants(c["acl"]) or []
            self._add(view)

    # -- post-data objects -------------------------------------------------------------------
    def _relname(self, oid: int) -> tuple[str, str] | None:
        obj = self.objects.get(("pg_class", oid))
        return (obj.schema or "", obj.name) if obj is not None else None

    def _post_data(self) -> None:
        self._constraints()
        self._indexes()
        parent_clause = "AND t.tgparentid = 0" if self.v >= 130000 else ""
        for r in _q(
            self.conn,
            "SELECT t.tgrelid, t.tgname, pg_get_triggerdef(t.oid) AS def, t.tgenabled, "
            "obj_description(t.oid, 'pg_trigger') AS comment FROM pg_trigger t "
            f"WHERE NOT t.tgisinternal {parent_clause} "
            # the archiver's own TRUNCATE capture on YugabyteDB (ysql/archiver.py) is not the user's
            f"AND t.tgfoid IS DISTINCT FROM pg_catalog.to_regprocedure('{TRUNCATE_FUNCTION}') ORDER BY t.tgname",
        ):
            table = self._relname(r["tgrelid"])
            if table:
                self.model.triggers.append(Trigger(table, r["tgname"], r["def"], r["tgenabled"], r["comment"]))
        for r in _q(
            self.conn,
            "SELECT p.polrelid, p.polname, p.polpermissive, "
            "CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' "
            "WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS cmd, "
            "ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END FROM unnest(p.polroles) r "
            "ORDER BY 1) AS roles, "
            "pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck, "
            "obj_description(p.oid, 'pg_policy') AS comment FROM pg_policy p ORDER BY p.polname",
        ):
            table = self._relname(r["polrelid"])
            if table:
                self.model.policies.append(
                    Policy(
                        table,
                        r["polname"],
                        r["polpermissive"],
                        r["cmd"],
                        list(r["roles"]),
                        r["qual"],
                        r["withcheck"],
                        r["comment"],
                    )
                )
        for r in _q(
            self.conn,
            "SELECT r.ev_class, r.rulename, pg_get_ruledef(r.oid) AS def, obj_description(r.oid, 'pg_rewrite') "
            "AS comment FROM pg_rewrite r WHERE r.rulename <> '_RETURN' ORDER BY r.rulename",
        ):
            table = self._relname(r["ev_class"])
            if table:
                self.model.rules.append(Rule(table, r["rulename"], r["def"], r["comment"]))
        if self.v >= 100000:
            for r in _q(
                self.conn,
                "SELECT s.stxrelid, n.nspname, s.stxname, pg_get_statisticsobjdef(s.oid) AS def, "
                "pg_get_userbyid(s.stxowner) AS owner, obj_description(s.oid, 'pg_statistic_ext') AS comment "
                "FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace ORDER BY s.stxname",
            ):
                if self._relname(r["stxrelid"]):
                    self.model.statistics.append(
                        StatisticsObject(r["nspname"], r["stxname"], r["def"], r["owner"], r["comment"])
                    )

    def _constraints(self) -> None:
        # Constraints cloned onto partitions (conparentid) are recreated by the parent's ADD CONSTRAINT.
        parent_clause = "AND c.conparentid = 0" if self.v >= 110000 else ""
        for r in _q(
            self.conn,
            "SELECT c.oid, c.conrelid, c.conname, c.contype, pg_get_constraintdef(c.oid) AS def, "
            "obj_description(c.oid, 'pg_constraint') AS comment, c.conindid "
            "FROM pg_constraint c WHERE c.conrelid <> 0 AND c.conislocal "
            f"AND (c.contype IN ('p', 'u', 'x', 'f') OR (c.contype = 'c' AND NOT c.convalidated)) {parent_clause} "
            "ORDER BY c.conname",
        ):
            table = self._relname(r["conrelid"])
            if table is None:
                continue
            if r["contype"] == "p" and self.server.is_yugabyte:
                # YugabyteDB: the primary key is the table's storage key, declared in CREATE TABLE.
                tbl = self.objects[("pg_class", r["conrelid"])]
                assert isinstance(tbl, Table)
                tbl.primary_key = PrimaryKey(r["conname"], self._key_columns(r["conindid"]), r["comment"])
                continue
            self.model.constraints.append(Constraint(table, r["conname"], r["contype"], r["def"], r["comment"]))

    def _key_columns(self, index_oid: int) -> list[KeyColumn]:
        r = _q(
            self.conn,
            "SELECT i.indnkeyatts, i.indoption::int2[] AS opts, "
            "ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) AS cols "
            "FROM pg_index i WHERE i.indexrelid = %s",
            [index_oid],
        )[0]
        return [
            KeyColumn(col, _ordering(opt)) for col, opt in zip(r["cols"][: r["indnkeyatts"]], r["opts"], strict=False)
        ]

    def _indexes(self) -> None:
        for r in _q(
            self.conn,
            "SELECT c.oid, c.relname, n.nspname, i.indrelid, pg_get_indexdef(c.oid) AS def, i.indisunique, "
            "am.amname, i.indnkeyatts, i.indnatts, i.indoption::int2[] AS opts, "
            "pg_get_expr(i.indpred, i.indrelid) AS pred, obj_description(c.oid, 'pg_class') AS comment "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_am am ON am.oid = c.relam "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p','u','x')) "
            "AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) "
            "ORDER BY n.nspname, c.relname",
        ):
            table = self._relname(r["indrelid"])
            if table is None:
                continue
            exprs = [
                x["e"]
                for x in _q(
                    self.conn,
                    "SELECT pg_get_indexdef(%s, n, true) AS e FROM generate_series(1, %s) n ORDER BY n",
                    [r["oid"], r["indnatts"]],
                )
            ]
            nkey = r["indnkeyatts"]
            keys = []
            for expr, opt in zip(exprs[:nkey], r["opts"], strict=False):
                keys.append(
                    IndexKey(
                        expr,
                        _ordering(opt) if self.server.is_yugabyte or opt & INDOPTION_DESC else "ASC",
                        bool(opt & INDOPTION_NULLS_FIRST),
                    )
                )
            idx = Index(
                ("pg_class", r["oid"]),
                r["nspname"],
                r["relname"],
                table,
                r["def"],
                r["indisunique"],
                r["amname"],
                keys,
                exprs[nkey:],
                r["pred"],
                r["comment"],
            )
            if self.server.is_yugabyte:
                idx.yb = self._yb_props(r["oid"])
            self.model.indexes.append(idx)

    # -- what we do not render ---------------------------------------------------------------
    def _warn_unsupported(self) -> None:
        if self.filters.only_relations:
            return
        checks = {
            "aggregate": f"SELECT p.oid::regprocedure::text AS name FROM pg_proc p JOIN pg_namespace n ON "
            f"n.oid = p.pronamespace WHERE p.prokind = 'a' AND {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_proc'", oid="p.oid"),
            "operator": f"SELECT o.oid::regoperator::text AS name FROM pg_operator o JOIN pg_namespace n ON "
            f"n.oid = o.oprnamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_operator'", oid="o.oid"),
            "collation": f"SELECT quote_ident(n.nspname) || '.' || quote_ident(c.collname) AS name FROM pg_collation c "
            f"JOIN pg_namespace n ON n.oid = c.collnamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_collation'", oid="c.oid"),
            "foreign table": f"SELECT c.oid::regclass::text AS name FROM pg_class c JOIN pg_namespace n ON "
            f"n.oid = c.relnamespace WHERE c.relkind = 'f' AND {USER_NAMESPACES}",
            "event trigger": "SELECT evtname AS name FROM pg_event_trigger WHERE evtname NOT LIKE 'ybrewind%%'",
            "text search configuration": f"SELECT c.oid::regconfig::text AS name FROM pg_ts_config c JOIN pg_namespace n "
            f"ON n.oid = c.cfgnamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_ts_config'", oid="c.oid"),
            "default privileges": "SELECT pg_get_userbyid(defaclrole) || ' ' || defaclobjtype::text AS name FROM pg_default_acl",
            "publication": "SELECT pubname AS name FROM pg_publication WHERE pubname NOT LIKE 'ybrewind%%'",
            "large object": "SELECT count(*)::text || ' large objects' AS name FROM pg_largeobject_metadata HAVING count(*) > 0",
            # User objects of catalogs without a namespace have oids from FirstNormalObjectId (16384) up.
            "cast": "SELECT format('(%s AS %s)', c.castsource::regtype, c.casttarget::regtype) AS name FROM pg_cast c "
            "WHERE c.oid >= 16384 AND " + NOT_IN_EXTENSION.format(catalog="'pg_cast'", oid="c.oid")
            # a range type's multirange casts are part of the type (internal dependency)
            + " AND " + NOT_IN_EXTENSION.replace("'e'", "'i'").format(catalog="'pg_cast'", oid="c.oid"),
            "base type": f"SELECT t.oid::regtype::text AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            f"WHERE t.typtype IN ('b', 'p') AND {USER_NAMESPACES} AND NOT EXISTS (SELECT 1 FROM pg_type e "
            "WHERE e.typarray = t.oid) AND " + NOT_IN_EXTENSION.format(catalog="'pg_type'", oid="t.oid"),
            "operator class": f"SELECT quote_ident(n.nspname) || '.' || quote_ident(o.opcname) AS name FROM pg_opclass o "
            f"JOIN pg_namespace n ON n.oid = o.opcnamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_opclass'", oid="o.oid"),
            "operator family": f"SELECT quote_ident(n.nspname) || '.' || quote_ident(o.opfname) AS name FROM pg_opfamily o "
            f"JOIN pg_namespace n ON n.oid = o.opfnamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_opfamily'", oid="o.oid"),
            "text search dictionary": f"SELECT td.oid::regdictionary::text AS name FROM pg_ts_dict td JOIN pg_namespace n "
            f"ON n.oid = td.dictnamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_ts_dict'", oid="td.oid"),
            "text search parser": f"SELECT quote_ident(n.nspname) || '.' || quote_ident(p.prsname) AS name FROM pg_ts_parser p "
            f"JOIN pg_namespace n ON n.oid = p.prsnamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_ts_parser'", oid="p.oid"),
            "text search template": f"SELECT quote_ident(n.nspname) || '.' || quote_ident(t.tmplname) AS name "
            f"FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_ts_template'", oid="t.oid"),
            "conversion": f"SELECT quote_ident(n.nspname) || '.' || quote_ident(c.conname) AS name FROM pg_conversion c "
            f"JOIN pg_namespace n ON n.oid = c.connamespace WHERE {USER_NAMESPACES} AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_conversion'", oid="c.oid"),
            "access method": "SELECT quote_ident(a.amname) AS name FROM pg_am a WHERE a.oid >= 16384 AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_am'", oid="a.oid"),
            "procedural language": "SELECT quote_ident(l.lanname) AS name FROM pg_language l WHERE l.oid >= 16384 AND "
            + NOT_IN_EXTENSION.format(catalog="'pg_language'", oid="l.oid"),
            "transform": "SELECT format('FOR %s LANGUAGE %s', t.trftype::regtype, l.lanname) AS name FROM pg_transform t "
            "JOIN pg_language l ON l.oid = t.trflang WHERE " + NOT_IN_EXTENSION.format(catalog="'pg_transform'", oid="t.oid"),
            "foreign data wrapper": "SELECT quote_ident(w.fdwname) AS name FROM pg_foreign_data_wrapper w WHERE "
            + NOT_IN_EXTENSION.format(catalog="'pg_foreign_data_wrapper'", oid="w.oid"),
            "server": "SELECT quote_ident(s.srvname) AS name FROM pg_foreign_server s WHERE "
            + NOT_IN_EXTENSION.format(catalog="'pg_foreign_server'", oid="s.oid"),
            "user mapping": "SELECT format('FOR %s SERVER %s', quote_ident(usename), quote_ident(srvname)) AS name "
            "FROM pg_user_mappings",
            "subscription": "SELECT quote_ident(subname) AS name FROM pg_subscription "
            "WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        }
        for kind, query in checks.items():
            for r in _q(self.conn, query):
                self.model.warnings.append(f"{kind} {r['name']} is not dumped (ybrewind does not render this kind yet)")

    # -- ordering ----------------------------------------------------------------------------
    def _dependencies(self) -> None:
        """Attach pg_depend edges between dumped objects (sub-objects mapped to their owner)."""
        for r in _q(self.conn, "SELECT oid, ev_class FROM pg_rewrite"):
            self.alias[("pg_rewrite", r["oid"])] = ("pg_class", r["ev_class"])
        for r in _q(self.conn, "SELECT oid, adrelid FROM pg_attrdef"):
            self.alias[("pg_attrdef", r["oid"])] = ("pg_class", r["adrelid"])
        for r in _q(self.conn, "SELECT oid, conrelid FROM pg_constraint WHERE conrelid <> 0 AND contype = 'c'"):
            self.alias[("pg_constraint", r["oid"])] = ("pg_class", r["conrelid"])
        for r in _q(
            self.conn,
            "SELECT t.oid, t.typrelid, t.typelem, t.typcategory FROM pg_type t JOIN pg_namespace n "
            f"ON n.oid = t.typnamespace WHERE {USER_NAMESPACES} AND (t.typrelid <> 0 OR t.typelem <> 0)",
        ):
            if r["typelem"] and r["typcategory"] == "A":
                self.alias[("pg_type", r["oid"])] = ("pg_type", r["typelem"])
            elif r["typrelid"]:
                self.alias[("pg_type", r["oid"])] = self.alias.get(
                    ("pg_class", r["typrelid"]), ("pg_class", r["typrelid"])
                )

        def resolve(key: ObjKey) -> ObjKey:
            seen = 0
            while key in self.alias and seen < 4:
                key, seen = self.alias[key], seen + 1
            return key

        for r in _q(
            self.conn,
            "SELECT classid::regclass::text AS c, objid, refclassid::regclass::text AS rc, refobjid "
            "FROM pg_depend WHERE deptype = 'n' AND refobjid >= 16384",
        ):
            src, dst = resolve((r["c"], r["objid"])), resolve((r["rc"], r["refobjid"]))
            if src != dst and src in self.objects and dst in self.objects:
                self.objects[src].deps.add(dst)
        for obj in self.objects.values():
            if obj.schema is not None:
                obj.deps.add(("pg_namespace", self._schema_oid(obj.schema)))

    def _sorted(self) -> list[DbObject]:
        """Topological order, ties broken by kind then name, so output is stable and readable."""
        priority = {
            Schema: 0,
            Extension: 1,
            EnumType: 2,
            RangeType: 3,
            CompositeType: 3,
            Domain: 3,
            Function: 4,
            Sequence: 5,
            Table: 6,
            View: 7,
        }
        objs = self.objects

        def rank(key: ObjKey) -> tuple[int, str, str, int]:
            o = objs[key]
            return (priority[type(o)], o.schema or "", o.name, key[1])

        pending = {k: {d for d in o.deps if d in objs and d != k} for k, o in objs.items()}
        users: dict[ObjKey, list[ObjKey]] = defaultdict(list)
        for k, deps in pending.items():
            for d in deps:
                users[d].append(k)
        ready = [(rank(k), k) for k, deps in pending.items() if not deps]
        heapq.heapify(ready)
        out: list[DbObject] = []
        done: set[ObjKey] = set()
        while len(done) < len(objs):
            if not ready:
                # A dependency cycle (rare: e.g. a function and a table referring to each other).
                # Emit the lowest-ranked remaining object and carry on, as pg_dump does.
                k = min((k for k in objs if k not in done), key=rank)
                self.model.warnings.append(f"dependency cycle around {objs[k].name}; order may need review")
                pending[k] = set()
                heapq.heappush(ready, (rank(k), k))
            _, k = heapq.heappop(ready)
            if k in done:
                continue
            done.add(k)
            out.append(objs[k])
            for u in users[k]:
                pending[u].discard(k)
                if not pending[u] and u not in done:
                    heapq.heappush(ready, (rank(u), u))
        return out


def _ordering(opt: int) -> str:
    if opt & INDOPTION_HASH:
        return "HASH"
    return "DESC" if opt & INDOPTION_DESC else "ASC"


def read_schema(conn: psycopg.Connection, filters: Filters | None = None, full: bool = True) -> SchemaModel:
    """Read the schema of the database ``conn`` is connected to (see ``CatalogReader.read``)."""
    return CatalogReader(conn, filters).read(full)
