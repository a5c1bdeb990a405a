"""A dump is independent of the source's session settings, as pg_dump's is.

COPY prints values with the session's DateStyle, IntervalStyle, extra_float_digits and
bytea_output. A source database whose defaults are unusual (here: DateStyle 'SQL, DMY', sql_standard
intervals, 0 extra float digits, escaped bytea) must still dump values that load back exactly into a
target with other defaults (and, for DateStyle, that our own client can parse at all).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg import sql

from tests.conftest import PgServer
from ybrewind.ysql.compare import compare
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import LoadOptions, load

UNUSUAL = {
    "datestyle": "SQL, DMY",
    "intervalstyle": "sql_standard",
    "extra_float_digits": "0",
    "bytea_output": "escape",
    "timezone": "Asia/Kolkata",
}
TARGET = {"datestyle": "ISO, MDY", "intervalstyle": "postgres", "timezone": "America/New_York"}

ROWS = """
INSERT INTO v VALUES
  (1, '2024-02-03', '2024-02-03 04:05:06.789+00', '2024-02-03 04:05:06', interval '-1 day +2 hours 3 minutes',
   0.1::float8 + 0.2::float8, '\\x00ff10'::bytea, 1.5::float4 / 3),
  (2, '1999-12-31', '0044-03-15 12:00:00+00', '2038-01-19 03:14:08', interval '1 year -2 months',
   1e-300, ''::bytea, 'NaN')
"""


def _settings(pg: PgServer, db: str, settings: dict[str, str]) -> None:
    with pg.connect() as conn:
        for name, value in settings.items():
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(sql.Identifier(db), sql.Identifier(name), sql.Literal(value))
            )


def _content(pg: PgServer, db: str) -> list[tuple[object, ...]]:
    with pg.connect(db) as conn:  # compared under one fixed session, whatever the database defaults
        conn.execute("SET datestyle = 'ISO, YMD'; SET intervalstyle = postgres; SET extra_float_digits = 3; SET timezone = 'UTC'; SET bytea_output = hex")
        return conn.execute(
            "SELECT id, d::text, tz::text, ts::text, i::text, f::text, b::text, r::text FROM v ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize("use_psql", [True, False], ids=["psql", "in-process"])
def test_dump_ignores_source_session_settings(pg: PgServer, tmp_path: Path, use_psql: bool) -> None:
    src = pg.create_database("settings_src")
    dst = f"{src}_copy"
    try:
        with pg.connect(src) as conn:
            conn.execute(
                "CREATE TABLE v (id int PRIMARY KEY, d date, tz timestamptz, ts timestamp, i interval, "
                "f float8, b bytea, r float4)"
            )
            conn.execute(ROWS)
        _settings(pg, src, UNUSUAL)
        expected = _content(pg, src)
        out = tmp_path / "dump"
        dump(pg.endpoint(src), out, DumpOptions(jobs=2, use_psql=use_psql, psql_min_bytes=0))
        load(out, pg.endpoint(dst), LoadOptions(jobs=2, create=True))
        _settings(pg, dst, TARGET)
        assert _content(pg, dst) == expected
        # compare's row checksums do not depend on either side's defaults either
        assert compare(pg.endpoint(src), pg.endpoint(dst)).identical
    finally:
        pg.drop_database(dst)
        pg.drop_database(src)
