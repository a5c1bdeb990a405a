"""Schema oracles for round-trip tests: normalized ``pg_dump --schema-only`` and matview state."""

from __future__ import annotations

import subprocess

from tests.conftest import PgServer


def pg_dump_schema(pg: PgServer, dbname: str, *args: str) -> list[str]:
    """pg_dump --schema-only, normalized: comments and psql restrict lines dropped, statements sorted."""
    out = subprocess.run(
        [pg.sandbox.binary("pg_dump"), "--schema-only", *args, "-d", pg.url(dbname)],
        capture_output=True, text=True, check=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("--") and not ln.startswith("\\")]
    return sorted(s.strip() for s in "\n".join(lines).split(";\n") if s.strip())


def populated(pg: PgServer, dbname: str) -> list[tuple[str, str, bool]]:
    """Each materialized view and whether it holds data (pg_dump -s does not show it)."""
    with pg.connect(dbname) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT n.nspname, c.relname, c.relispopulated FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm' ORDER BY 1, 2"
            ).fetchall()
        ]


def content(pg: PgServer, dbname: str) -> dict[str, tuple[int, str]]:
    """Row count and order-independent checksum of every table and populated materialized view,
    and the large objects (oid, content, comment)."""
    from ybrewind.ysql.compare import table_checksum

    with pg.connect(dbname) as conn:
        rels = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE (c.relkind = 'r' OR c.relkind = 'm' AND c.relispopulated) "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"
        ).fetchall()
        sums = {f"{s}.{n}": table_checksum(conn, s, n) for s, n in rels}
        row = conn.execute(
            "SELECT count(*), string_agg(l.oid::text || ':' || md5(lo_get(l.oid)) || ':' || "
            "coalesce(obj_description(l.oid, 'pg_largeobject'), '-'), ',' ORDER BY l.oid) "
            "FROM pg_largeobject_metadata l"
        ).fetchone()
        assert row is not None
        sums["(large objects)"] = (int(row[0]), str(row[1]))
        return sums
