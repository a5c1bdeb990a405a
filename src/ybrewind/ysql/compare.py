"""Compare two YSQL/PostgreSQL databases: schema (normalized) and, per table, rows and content.

Schema: between two PostgreSQL databases, the statements of ``pg_dump --schema-only`` (taken in the
same snapshot as the content checks) are compared as a sorted list, so compare sees every object
kind, option, persistence, ownership and privilege pg_dump sees; a materialized view's populated
state shows as its ``REFRESH``. Where a side is YugabyteDB (pg_dump cannot render YB's sharding),
both schemas are read with the dump's own catalog reader and rendered in one dialect. ybrewind's
own bookkeeping schemas are ignored. Table content is compared by row count and an
order-independent checksum computed on the server: the sum of the first 64 bits of md5(row::text)
over all rows, so no data crosses the network and no sort is needed; large objects likewise.
"""

from __future__ import annotations

import difflib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from ybrewind.comparison import Comparison, TableComparison
from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError, UsageError
from ybrewind.ysql import pgdump
from ybrewind.ysql.catalog import Filters, read_schema
from ybrewind.ysql.ddl import DdlWriter, RenderOptions
from ybrewind.ysql.model import SchemaModel


def schema_text(model: SchemaModel, owners: bool = True, privileges: bool = True) -> list[str]:
    """The schema as a sorted list of statements, for diffing (built-in reader)."""
    writer = DdlWriter(model, RenderOptions("postgres", owners, privileges))
    return sorted(writer.pre_data() + [p.sql for p in writer.post_data()])


def pg_dump_text(text: str) -> list[str]:
    """pg_dump's schema as a sorted list of statements: header comments, the random ``\\restrict``
    key and the session preamble dropped, ybrewind's bookkeeping objects left out."""
    _, entries = pgdump.parse(text)
    return sorted(stmt for e in pgdump.without_bookkeeping(entries) for stmt in e.statements)


LARGE_OBJECTS = "(large objects)"
def table_checksum(conn: psycopg.Connection, schema: str, name: str) -> tuple[int, str]:
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0)::text "
        "FROM ONLY {} AS t"
    ).format(sql.Identifier(schema, name))
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


# ybrewind's own bookkeeping (DDL capture on an archived source, an unfinished restore's progress)
BOOKKEEPING_SCHEMAS = ["ybrewind", "_ybrewind_restore"]


@dataclass
class _Side:
    model: SchemaModel
    sums: dict[str, tuple[int, str]]
    pg_dump: list[str] | None  # None: a YugabyteDB side, or no usable pg_dump (see ``why``)
    why: str = ""


def _read(endpoint: PgEndpoint, filters: Filters | None, owners: bool, privileges: bool) -> _Side:
    base = filters or Filters()
    filters = replace(base, exclude_schemas=[*base.exclude_schemas, *BOOKKEEPING_SCHEMAS])
    # Row checksums hash text forms: both sides print them with the same settings, whatever their defaults.
    with endpoint.with_pinned_text_settings(utc=True).connect() as conn:
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            model = read_schema(conn, filters)
            sums = {
                f"{t.schema or ''}.{t.name}": table_checksum(conn, t.schema or "", t.name)
                for t in model.tables()
                if not t.is_partitioned
            }
            dumped: list[str] | None = None
            why = "YugabyteDB"
            if not model.server.is_yugabyte:
                row = conn.execute(
                    "SELECT count(*), coalesce(sum(('x' || left(md5(pg_catalog.lo_get(oid)), 16))::bit(64)::bigint"
                    "::numeric), 0)::text, pg_export_snapshot() FROM pg_catalog.pg_largeobject_metadata"
                ).fetchone()
                assert row is not None
                if row[0]:
                    sums[LARGE_OBJECTS] = (int(row[0]), str(row[1]))
                tool, why = pgdump.find_pg_dump(model.server.version_num)
                if tool is not None:
                    # Both schema sections rather than --schema-only, which leaves out the REFRESH
                    # that tells a populated materialized view from a WITH NO DATA one.
                    args = ["--section=pre-data", "--section=post-data", f"--snapshot={row[2]}"]
                    args += pgdump.filter_args(filters)
                    args += [] if owners else ["--no-owner"]
                    args += [] if privileges else ["--no-privileges"]
                    dumped = pg_dump_text(pgdump.run_pg_dump(tool, endpoint, args))
            conn.execute("COMMIT")
        except psycopg.Error as e:
            diag = getattr(e, "diag", None)
            raise DatabaseError(f"reading {endpoint.display()}: {diag.message_primary if diag else e}") from None
        except DatabaseError as e:
            raise DatabaseError(f"reading {endpoint.display()}: {e.message}") from None
    return _Side(model, sums, dumped, why)


def compare(
    a: PgEndpoint, b: PgEndpoint, *, owners: bool = True, privileges: bool = True, filters: Filters | None = None
) -> Comparison:
    with ThreadPoolExecutor(max_workers=2) as pool:
        fa = pool.submit(_read, a, filters, owners, privileges)
        fb = pool.submit(_read, b, filters, owners, privileges)
        side_a, side_b = fa.result(), fb.result()
    result = Comparison(a.display(), b.display())
    if side_a.pg_dump is not None and side_b.pg_dump is not None:
        text_a, text_b = side_a.pg_dump, side_b.pg_dump
    elif side_a.model.server.is_yugabyte or side_b.model.server.is_yugabyte:
        text_a = schema_text(side_a.model, owners, privileges)
        text_b = schema_text(side_b.model, owners, privileges)
    else:
        # Without pg_dump, "identical" could not mean identical: refuse rather than compare blind.
        raise UsageError(f"compare of PostgreSQL databases needs pg_dump to read the schema: {side_a.why or side_b.why}")
    result.schema_diff = list(difflib.unified_diff(text_a, text_b, a.display(), b.display(), lineterm="", n=0))
    for key in sorted(set(side_a.sums) | set(side_b.sums)):
        ra, ca = side_a.sums.get(key, (None, None))
        rb, cb = side_b.sums.get(key, (None, None))
        result.tables.append(TableComparison(key, ra, rb, ca, cb))
    return result
