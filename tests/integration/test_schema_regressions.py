"""Explicit regression cases: schemas that once failed to round-trip (from the issue and from the
generated-schema runs), each checked by the same oracle as the generated ones."""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT, PgServer
from tests.integration.test_schema_generated import ensure_role, round_trip

ROUTES = [
    {"jobs": 1, "compress": False, "psql": False},
    {"jobs": 3, "compress": True, "psql": False},
    {"jobs": 3, "compress": False, "psql": True},
]

CASES = {
    # ALTER SEQUENCE ... OWNED BY """Sales Ops"""... was quoted twice (issue 10)
    "hostile_schema_serial": 'CREATE SCHEMA "Sales Ops"; CREATE TABLE "Sales Ops"."Order ""x""" (id serial PRIMARY KEY, '
    "v text); INSERT INTO \"Sales Ops\".\"Order \"\"x\"\"\" (v) VALUES ('a'), (NULL);",
    "zero_column_table_with_rows": "CREATE TABLE nocols (); INSERT INTO nocols DEFAULT VALUES; "
    "INSERT INTO nocols DEFAULT VALUES;",
    "large_objects": "SELECT lo_from_bytea(0, 'hello'); SELECT lo_from_bytea(0, decode(repeat('ab', 300000), 'hex')); "
    "DO $$BEGIN EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT min(oid) FROM pg_largeobject_metadata), "
    "'x'); END$$;",
}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"j{r['jobs']}-{'zstd' if r['compress'] else 'plain'}"
                         + ("-psql" if r["psql"] else ""))
@pytest.mark.parametrize("name", sorted(CASES))
def test_regression_round_trips(pg: PgServer, name: str, route: dict[str, object]) -> None:
    ensure_role(pg)
    round_trip(pg, CASES[name], route)


@pytest.mark.parametrize("route", ROUTES[1:], ids=["j3-zstd", "j3-psql"])
def test_pagila_like_round_trips(pg: PgServer, route: dict[str, object]) -> None:
    """A from-memory rendition of the public pagila sample: views over a custom aggregate (which the
    built-in reader could not render), tsvector trigger, partitioned payments, deferred FKs."""
    round_trip(pg, (REPO_ROOT / "fixtures" / "ysql" / "pagila-like.sql").read_text(), route)
