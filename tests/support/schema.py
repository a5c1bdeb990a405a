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
