"""``dump --subset`` and ``--mask``: a referentially complete slice of a database, sensitive columns rewritten.

Subset: each root ``schema.table: condition`` selects rows (the condition is the user's own SQL,
run in the dump's snapshot with an empty search_path: qualify table names). Foreign keys are then
followed to a fixpoint: upward from every selected row (the rows it references must come along,
or the load would break the constraint) and downward from the root rows and the rows reached
downward (the order lines of selected orders), not from the rows pulled in upward (a customer of a
selected order does not bring its other orders; a manager does not bring the whole department).
Tables foreign-key connected to a root get exactly the rows found (possibly none); unconnected
tables are dumped whole. Rows are identified by ``ctid``, stable for the dump's snapshot: PostgreSQL
only, and data is read in-process (the row lists do not fit a psql command line).

Masks: ``schema.table.column=KIND`` replaces the column in the dumped data by a SQL expression of
its value: ``email`` (``u<hash>@example.invalid``), ``hash`` (hex digest), ``null``, ``fixed:VALUE``.
The hash is HMAC-like (md5 of a per-dump random salt and the value), so the same input gives the
same output in every table (joins on masked columns survive) while values cannot be looked up in a
dictionary of known inputs. The salt is never written anywhere.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ybrewind.errors import DatabaseError, UsageError

if TYPE_CHECKING:
    from ybrewind.ysql.dump import Slice

MASK_KINDS = ("email", "hash", "null", "fixed:VALUE")
TableKey = tuple[str, str]  # (schema, table)
TEXT_TYPES = ("text", "character varying", "character", "citext", "name")


def split_name(text: str, parts: int) -> list[str]:
    """``a.b`` / ``"A.b".c`` into identifiers (double quotes keep dots and case, ``""`` is a quote)."""
    out: list[str] = []
    cur, quoted, i, was_quoted = "", False, 0, False
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == '"' and text[i + 1 : i + 2] == '"':
                cur += '"'
                i += 1
            elif ch == '"':
                quoted = False
            else:
                cur += ch
        elif ch == '"':
            quoted = was_quoted = True
        elif ch == ".":
            out.append(cur if was_quoted else cur.strip().lower())
            cur, was_quoted = "", False
        else:
            cur += ch
        i += 1
    if quoted:
        raise UsageError(f"unterminated quote in {text!r}")
    out.append(cur if was_quoted else cur.strip().lower())
    if len(out) == parts - 1:
        out.insert(0, "public")
    if len(out) != parts or not all(out):
        raise UsageError(f"{text!r} is not a {'.'.join(['schema', 'table', 'column'][:parts])} name")
    return out


@dataclass(frozen=True)
class Root:
    schema: str
    table: str
    condition: str


@dataclass(frozen=True)
class Mask:
    schema: str
    table: str
    column: str
    kind: str  # email, hash, null, fixed
    value: str | None = None


@dataclass
class SubsetSpec:
    roots: list[Root] = field(default_factory=list)
    masks: list[Mask] = field(default_factory=list)
    salt: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    @classmethod
    def parse(cls, subsets: list[str] | tuple[str, ...], masks: list[str] | tuple[str, ...]) -> SubsetSpec:
        roots = []
        for text in subsets:
            name, colon, condition = text.partition(":")
            if not colon or not condition.strip():
                raise UsageError(f"--subset {text!r}: expected 'schema.table: condition'")
            schema, table = split_name(name.strip(), 2)
            roots.append(Root(schema, table, condition.strip()))
        parsed = []
        for text in masks:
            name, eq, kind = text.partition("=")
            if not eq:
                raise UsageError(f"--mask {text!r}: expected schema.table.column=KIND ({', '.join(MASK_KINDS)})")
            schema, table, column = split_name(name.strip(), 3)
            kind, sep, value = kind.strip().partition(":")
            if kind == "faker":
                raise UsageError("--mask faker:KIND needs the Faker library, which ybrewind does not ship; use email or hash")
            if kind not in ("email", "hash", "null", "fixed") or (kind == "fixed") != bool(sep):
                raise UsageError(f"--mask {text!r}: unknown kind (use {', '.join(MASK_KINDS)})")
            parsed.append(Mask(schema, table, column, kind, value if kind == "fixed" else None))
        return cls(roots, parsed)


@dataclass(frozen=True)
class ForeignKey:
    child: tuple[str, str]
    child_cols: tuple[str, ...]
    parent: tuple[str, str]
    parent_cols: tuple[str, ...]


# Logical foreign keys (not the per-partition clones); a partitioned referencing table stands for
# its leaf partitions, which hold the data the dump reads.
FOREIGN_KEYS = """
SELECT ln.nspname, l.relname, p_n.nspname, p.relname, p.relkind,
       (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(fk.conkey) WITH ORDINALITY k(attnum, i)
          JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = k.attnum),
       (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(fk.confkey) WITH ORDINALITY k(attnum, i)
          JOIN pg_attribute a ON a.attrelid = fk.confrelid AND a.attnum = k.attnum)
FROM pg_constraint fk
JOIN pg_class c ON c.oid = fk.conrelid
CROSS JOIN LATERAL (SELECT fk.conrelid AS relid WHERE c.relkind <> 'p'
                    UNION ALL SELECT relid FROM pg_partition_tree(fk.conrelid) WHERE isleaf AND c.relkind = 'p') leaf
JOIN pg_class l ON l.oid = leaf.relid JOIN pg_namespace ln ON ln.oid = l.relnamespace
JOIN pg_class p ON p.oid = fk.confrelid JOIN pg_namespace p_n ON p_n.oid = p.relnamespace
WHERE fk.contype = 'f' AND fk.conparentid = 0
"""


def foreign_keys(conn: psycopg.Connection, tables: set[tuple[str, str]]) -> list[ForeignKey]:
    """The foreign keys between dumped tables (leaf level)."""
    out = []
    for cs, ct, ps, pt, pkind, ccols, pcols in conn.execute(FOREIGN_KEYS).fetchall():
        if (cs, ct) not in tables:
            continue
        if pkind == "p":
            raise UsageError(f"--subset does not follow foreign keys to partitioned tables ({cs}.{ct} -> {ps}.{pt})")
        if (ps, pt) in tables:
            out.append(ForeignKey((cs, ct), tuple(ccols), (ps, pt), tuple(pcols)))
    return out


def _ident(t: tuple[str, str]) -> sql.Composable:
    return sql.Identifier(*t)


def _cols(alias: str, cols: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(alias, c) for c in cols))


def _ctids(conn: psycopg.Connection, query: sql.Composable, params: list[Any], what: str) -> set[str]:
    try:
        return {r[0] for r in conn.execute(query, params).fetchall()}
    except psycopg.Error as e:
        diag = getattr(e, "diag", None)
        primary = (diag.message_primary if diag else None) or str(e).strip().splitlines()[0]
        raise DatabaseError(f"{what}: {primary}") from None


def select_rows(conn: psycopg.Connection, spec: SubsetSpec, tables: set[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
    """The ctids of every row of the subset, per FK-connected table (see the module docstring)."""
    fks = foreign_keys(conn, tables)
    rows: dict[TableKey, set[str]] = defaultdict(set)  # every selected row
    down_rows: dict[TableKey, set[str]] = defaultdict(set)  # roots and rows reached downward: they also pull children
    up: dict[TableKey, set[str]] = defaultdict(set)  # new rows to follow upward only
    down: dict[TableKey, set[str]] = defaultdict(set)  # new rows to follow both ways
    for root in spec.roots:
        key = (root.schema, root.table)
        if key not in tables:
            raise UsageError(f"--subset: table {root.schema}.{root.table} is not among the dumped tables")
        # The condition is the user's own SQL, by design (like psql -c): it runs read-only in the snapshot.
        query = sql.SQL("SELECT ctid::text FROM ONLY {} WHERE ").format(_ident(key)) + sql.SQL(root.condition)  # type: ignore[arg-type]
        down[key] |= _ctids(conn, query, [], f"--subset condition on {root.schema}.{root.table}")
    while any(up.values()) or any(down.values()):
        for key, new in down.items():
            down_rows[key] |= new
            rows[key] |= new
        for key, new in up.items():
            rows[key] |= new
        found_up: dict[TableKey, set[str]] = defaultdict(set)
        found_down: dict[TableKey, set[str]] = defaultdict(set)
        for key in set(up) | set(down):
            every = sorted(up.get(key, set()) | down.get(key, set()))
            children_of = sorted(down.get(key, set()))
            for fk in fks:
                if fk.child == key and every:  # upward: what the new rows reference
                    q = sql.SQL("SELECT p.ctid::text FROM ONLY {} p WHERE {} IN (SELECT {} FROM ONLY {} c "
                                "WHERE c.ctid = ANY(%s::tid[]))").format(
                        _ident(fk.parent), _cols("p", fk.parent_cols), sql.SQL(", ").join(
                            sql.Identifier("c", c) for c in fk.child_cols), _ident(fk.child))
                    found_up[fk.parent] |= _ctids(conn, q, [every], f"following {fk.child} -> {fk.parent}")
                if fk.parent == key and children_of:  # downward: what references the new root/downward rows
                    q = sql.SQL("SELECT c.ctid::text FROM ONLY {} c WHERE {} IN (SELECT {} FROM ONLY {} p "
                                "WHERE p.ctid = ANY(%s::tid[]))").format(
                        _ident(fk.child), _cols("c", fk.child_cols), sql.SQL(", ").join(
                            sql.Identifier("p", c) for c in fk.parent_cols), _ident(fk.parent))
                    found_down[fk.child] |= _ctids(conn, q, [children_of], f"following {fk.parent} <- {fk.child}")
        down = defaultdict(set, {k: v - down_rows[k] for k, v in found_down.items()})
        up = defaultdict(set, {k: v - rows[k] - down[k] for k, v in found_up.items()})
    # Every table foreign-key connected to a root, however indirectly, gets only the rows found:
    # dumping one of them whole could reference a row that was left out.
    connected = {(r.schema, r.table) for r in spec.roots}
    todo = list(connected)
    while todo:
        key = todo.pop()
        for fk in fks:
            for a, b in ((fk.child, fk.parent), (fk.parent, fk.child)):
                if a == key and b not in connected:
                    connected.add(b)
                    todo.append(b)
    return {k: rows.get(k, set()) for k in connected}


def base_type(conn: psycopg.Connection, table: tuple[str, str], column: str) -> str:
    """The column's type with domains resolved to what they are built on (a domain over citext: citext)."""
    row = conn.execute(
        "SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped",
        [sql.Identifier(*table).as_string(conn), column],
    ).fetchone()
    if row is None:
        raise UsageError(f"--mask: {table[0]}.{table[1]} has no column {column}")
    oid = row[0]
    while True:
        kind, base, name = conn.execute(
            "SELECT typtype, typbasetype, format_type(oid, NULL) FROM pg_type WHERE oid = %s", [oid]
        ).fetchone() or ("", 0, "")
        if kind != "d":
            return str(name)
        oid = base


def _mask_expression(mask: Mask, column_type: str, not_null: bool, salt: str) -> sql.Composable:
    col = sql.Identifier(mask.column)
    if mask.kind == "null":
        if not_null:
            raise UsageError(f"--mask {mask.schema}.{mask.table}.{mask.column}=null: the column is NOT NULL")
        return sql.SQL("NULL")
    if mask.kind == "fixed":
        return sql.SQL("{}::{}").format(sql.Literal(mask.value), sql.SQL(column_type))
    if column_type.split("(")[0].split(".")[-1] not in TEXT_TYPES:
        raise UsageError(f"--mask {mask.kind} needs a text column; {mask.schema}.{mask.table}.{mask.column} is {column_type}")
    digest = sql.SQL("md5({} || {}::text)").format(sql.Literal(salt), col)
    if mask.kind == "hash":
        return sql.SQL("CASE WHEN {} IS NULL THEN NULL ELSE {} END").format(col, digest)
    return sql.SQL("CASE WHEN {} IS NULL THEN NULL ELSE 'u' || substr({}, 1, 16) || '@example.invalid' END").format(
        col, digest
    )


def restrict(conn: psycopg.Connection, slices: list[Slice], spec: SubsetSpec, is_yugabyte: bool) -> list[Slice]:
    """The dump's slices with the subset's row filter and the masks' column expressions applied."""
    if is_yugabyte and spec.roots:
        raise UsageError("--subset identifies rows by ctid, which needs a PostgreSQL source (not YugabyteDB)")
    tables = {(s.table.schema or "", s.table.name) for s in slices}
    subset = select_rows(conn, spec, tables) if spec.roots else {}
    masks: dict[tuple[str, str], dict[str, Mask]] = defaultdict(dict)
    for m in spec.masks:
        if (m.schema, m.table) not in tables:
            raise UsageError(f"--mask: table {m.schema}.{m.table} is not among the dumped tables")
        masks[(m.schema, m.table)][m.column] = m
    out = []
    for s in slices:
        key = (s.table.schema or "", s.table.name)
        where = s.where
        if key in subset:
            keep = sql.SQL("ctid = ANY({}::tid[])").format(sql.Literal(sorted(subset[key])))
            where = keep if where is None else sql.SQL("({}) AND {}").format(where, keep)
        select = None
        if key in masks:
            columns = {c.name: c for c in s.table.columns}
            unknown = set(masks[key]) - set(s.table.copy_columns())
            if unknown:
                raise UsageError(f"--mask: {key[0]}.{key[1]} has no (stored) column {', '.join(sorted(unknown))}")
            select = sql.SQL(", ").join(
                _mask_expression(masks[key][c], base_type(conn, key, c), columns[c].not_null, spec.salt)
                if c in masks[key] else sql.Identifier(c)
                for c in s.table.copy_columns()
            )
        out.append(replace(s, where=where, select=select))
    return out
