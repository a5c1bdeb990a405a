"""Compare two YSQL/PostgreSQL databases: schema (normalized) and, per table, rows and content.

ybrewind's own bookkeeping schemas are ignored. The schema of each side is read with the dump's own catalog reader and rendered in one dialect, so
server-side noise (oids, statement order, quoting) cancels out. Table content is compared by row
count and an order-independent checksum computed on the server: the sum of the first 64 bits of
md5(row::text) over all rows, so no data crosses the network and no sort is needed.
"""

from __future__ import annotations

import difflib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
from psycopg import sql

from ybrewind.comparison import Comparison, TableComparison
from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError
from ybrewind.ysql.catalog import Filters, read_schema
from ybrewind.ysql.ddl import DdlWriter, RenderOptions
from ybrewind.ysql.model import SchemaModel


def schema_text(model: SchemaModel, owners: bool = True, privileges: bool = True) -> list[str]:
    """The schema as a sorted list of statements, for diffing."""
    writer = DdlWriter(model, RenderOptions("postgres", owners, privileges))
    return sorted(writer.pre_data() + [p.sql for p in writer.post_data()])


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


def _read(endpoint: PgEndpoint, filters: Filters | None) -> tuple[SchemaModel, dict[tuple[str, str], tuple[int, str]]]:
    with endpoint.connect() as conn:
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            base = filters or Filters()
            model = read_schema(conn, replace(base, exclude_schemas=[*base.exclude_schemas, *BOOKKEEPING_SCHEMAS]))
            sums = {
                (t.schema or "", t.name): table_checksum(conn, t.schema or "", t.name)
                for t in model.tables()
                if not t.is_partitioned
            }
            conn.execute("COMMIT")
        except psycopg.Error as e:
            diag = getattr(e, "diag", None)
            raise DatabaseError(f"reading {endpoint.display()}: {diag.message_primary if diag else e}") from None
    return model, sums


def compare(
    a: PgEndpoint, b: PgEndpoint, *, owners: bool = True, privileges: bool = True, filters: Filters | None = None
) -> Comparison:
    with ThreadPoolExecutor(max_workers=2) as pool:
        fa, fb = pool.submit(_read, a, filters), pool.submit(_read, b, filters)
        (model_a, sums_a), (model_b, sums_b) = fa.result(), fb.result()
    result = Comparison(a.display(), b.display())
    result.schema_diff = [
        line
        for line in difflib.unified_diff(
            schema_text(model_a, owners, privileges),
            schema_text(model_b, owners, privileges),
            a.display(),
            b.display(),
            lineterm="",
            n=0,
        )
    ]
    for key in sorted(set(sums_a) | set(sums_b)):
        ra, ca = sums_a.get(key, (None, None))
        rb, cb = sums_b.get(key, (None, None))
        result.tables.append(TableComparison(".".join(key), ra, rb, ca, cb))
    return result
