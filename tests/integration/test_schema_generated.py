"""Generated schemas round-trip exactly (property-based, hypothesis).

Each example is one database holding several random schemas (tests/support/genschema.py: every
object kind the dump claims, hostile names everywhere, edge-case data). It is dumped and restored
by one drawn route - ``-j 1`` or ``-j 3``, plain or zstd, ``ybrewind load`` or ``psql -f
restore.sql`` - and judged by ``pg_dump --schema-only`` of both databases, the populated state of
materialized views and a checksum of every table's content.

CI runs YBREWIND_SCHEMA_EXAMPLES=300 schemas (the default, derandomized); the long run is
``YBREWIND_SCHEMA_EXAMPLES=5000 .venv/bin/python -m pytest -n 0 tests/integration/test_schema_generated.py``
(random seeds; set YBREWIND_SCHEMA_SEED to repeat one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from psycopg import sql

from tests.conftest import PgServer
from tests.support.genschema import READER_ROLE, name_strategy, schema_script
from tests.support.schema import content, pg_dump_schema, populated
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import LoadOptions, load

SCHEMAS_PER_DATABASE = 10
EXAMPLES = int(os.environ.get("YBREWIND_SCHEMA_EXAMPLES", "300"))
SEED = os.environ.get("YBREWIND_SCHEMA_SEED")
# pg_* is reserved for system schemas; public and information_schema exist already
schema_names = name_strategy.filter(lambda s: not s.startswith("pg_") and s not in ("public", "information_schema"))


@st.composite
def database(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    names = draw(st.lists(schema_names, min_size=SCHEMAS_PER_DATABASE, max_size=SCHEMAS_PER_DATABASE, unique=True))
    script = "".join(draw(schema_script(n)) for n in names)
    compress = draw(st.booleans())
    route = {
        "jobs": draw(st.sampled_from([1, 3])),
        "compress": compress,
        "psql": not compress and draw(st.booleans()),
    }
    return script, route


def round_trip(pg: PgServer, script: str, route: dict[str, object]) -> None:
    work = Path(tempfile.mkdtemp(prefix="ybrewind-gen-"))
    src = pg.create_database("gen")
    copy = pg.create_database("gencopy")
    try:
        (work / "schema.sql").write_text(script)
        pg.psql(src, "-f", str(work / "schema.sql"))
        jobs = int(route["jobs"])  # type: ignore[call-overload]
        dump(pg.endpoint(src), work / "dump", DumpOptions(jobs=jobs, compress=bool(route["compress"]), slice_bytes=64 << 10))
        if route["psql"]:
            pg.psql(copy, "-f", str(work / "dump" / "restore.sql"))
        else:
            load(work / "dump", pg.endpoint(copy), LoadOptions(jobs=jobs))
        assert pg_dump_schema(pg, copy) == pg_dump_schema(pg, src)
        assert populated(pg, copy) == populated(pg, src)
        assert content(pg, copy) == content(pg, src)
    finally:
        pg.drop_database(src)
        pg.drop_database(copy)
        shutil.rmtree(work, ignore_errors=True)


def ensure_role(pg: PgServer) -> None:
    with pg.connect() as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [READER_ROLE]).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(READER_ROLE)))


def test_generated_schemas_round_trip(pg: PgServer) -> None:
    ensure_role(pg)

    @settings(
        max_examples=max(1, EXAMPLES // SCHEMAS_PER_DATABASE),
        deadline=None,
        database=None,
        derandomize=SEED is None and EXAMPLES <= 300,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        # shrinking a database round trip takes minutes: report the example as found
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    @given(database())
    def check(example: tuple[str, dict[str, object]]) -> None:
        round_trip(pg, *example)

    if SEED is not None:
        check = seed(int(SEED))(check)
    check()
