"""Compare two YCQL / Cassandra keyspaces: schema (as DESC renders it), and per table rows and content.

Both schemas are rendered by ``schema.describe`` under one neutral keyspace name, so two copies of
a keyspace under different names compare equal. Table content is compared by row count and an
order-independent checksum: each row's raw wire values (length-prefixed, NULL marked) are hashed
(BLAKE2b, 64 bits) and the hashes summed modulo 2**64. CQL has no server-side aggregate for this,
so rows are scanned like a dump does (parallel ``partition_hash`` / ``token`` ranges, paging), but
nothing is written. ``with_writetime`` adds each cell's write time to the hash (not its TTL,
which counts down).
"""

from __future__ import annotations

import difflib
import hashlib
import struct
from concurrent.futures import ThreadPoolExecutor

from cassandra.query import BoundStatement

from ybrewind.comparison import Comparison, TableComparison
from ybrewind.endpoints import YcqlEndpoint
from ybrewind.errors import ConnectError, UsageError
from ybrewind.ycql import schema as sch
from ybrewind.ycql.dump import ranges
from ybrewind.ycql.literals import parse_type, quote_ident
from ybrewind.ycql.session import CqlConnection, connect, translate

NEUTRAL_NAME = "keyspace"
MASK = (1 << 64) - 1


def _row_hash(row: list[bytes | None]) -> int:
    h = hashlib.blake2b(digest_size=8)
    for value in row:
        if value is None:
            h.update(b"\xff\xff\xff\xff")
        else:
            h.update(struct.pack(">i", len(value)))
            h.update(value)
    return int.from_bytes(h.digest(), "big")


def table_checksum(
    conn: CqlConnection, model: sch.KeyspaceDef, table: sch.TableDef, with_writetime: bool, jobs: int
) -> tuple[int, str]:
    """(rows, checksum) of one table, scanned in parallel ranges."""
    udts = model.udts()
    selectors = [quote_ident(c.name) for c in table.columns]
    if with_writetime and not table.is_counter:
        for c in table.columns:
            if c.kind in ("static", "regular") and not parse_type(c.type, udts).multi_cell:
                selectors.append(f"writetime({quote_ident(c.name)})")
    pk = ", ".join(quote_ident(c.name) for c in table.partition_key)
    fn = "partition_hash" if conn.server.is_yugabyte else "token"
    target = f"{quote_ident(model.name)}.{quote_ident(table.name)}"
    query = f"SELECT {', '.join(selectors)} FROM {target} WHERE {fn}({pk}) >= ? AND {fn}({pk}) <= ?"
    prepared = conn.prepare(query, f"reading {target} on {conn.endpoint.display()}")
    prepared.fetch_size = 5000

    def scan(bounds: tuple[int, int]) -> tuple[int, int]:
        rows = total = 0
        bound = BoundStatement(prepared).bind(list(bounds))
        try:
            for row in conn.session.execute(bound):
                rows += 1
                total = (total + _row_hash(row)) & MASK
        except Exception as e:
            raise translate(e, f"reading {target} on {conn.endpoint.display()}") from None
        return rows, total

    parts = ranges(conn.server.is_yugabyte, max(16, 4 * jobs))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(scan, parts))
    return sum(r for r, _ in results), f"{sum(t for _, t in results) & MASK:016x}"


def _read(
    endpoint: YcqlEndpoint, with_writetime: bool, jobs: int
) -> tuple[sch.KeyspaceDef, dict[str, tuple[int, str]]]:
    if not endpoint.keyspace:
        raise UsageError(f"{endpoint.display()}: compare needs a keyspace (ycql://host/KEYSPACE)")
    with connect(endpoint) as conn:
        meta = conn.keyspace(endpoint.keyspace)
        if meta is None:
            raise ConnectError(f"keyspace {endpoint.keyspace} does not exist on {endpoint.display()}")
        model = sch.from_metadata(meta)
        sch.check_types(model)
        sums = {t.name: table_checksum(conn, model, t, with_writetime, jobs) for t in model.tables}
    return model, sums


def compare(a: YcqlEndpoint, b: YcqlEndpoint, *, with_writetime: bool = False, jobs: int = 4) -> Comparison:
    with ThreadPoolExecutor(max_workers=2) as pool:
        fa, fb = pool.submit(_read, a, with_writetime, jobs), pool.submit(_read, b, with_writetime, jobs)
        (model_a, sums_a), (model_b, sums_b) = fa.result(), fb.result()
    result = Comparison(a.display(), b.display())
    result.schema_diff = list(
        difflib.unified_diff(
            sch.describe(model_a, NEUTRAL_NAME).splitlines(),
            sch.describe(model_b, NEUTRAL_NAME).splitlines(),
            a.display(),
            b.display(),
            lineterm="",
            n=0,
        )
    )
    for name in sorted(set(sums_a) | set(sums_b)):
        ra, ca = sums_a.get(name, (None, None))
        rb, cb = sums_b.get(name, (None, None))
        result.tables.append(TableComparison(name, ra, rb, ca, cb))
    return result
