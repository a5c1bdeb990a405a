"""seeding.CopyPool against the sandbox: isolation of copies, the run-the-seed path, cleanup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PgServer
from ybrewind import seeding
from ybrewind.errors import UsageError


def fill(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    conn.execute("INSERT INTO t SELECT generate_series(1, 10)")


def names(pg: PgServer, prefix: str) -> set[str]:
    with pg.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"])}


def use(pg: PgServer, pool: seeding.CopyPool, count: int) -> list[str]:
    taken = []
    for _ in range(count):
        name = pool.take(timeout=120)
        with pg.connect(name) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (10,)
            conn.execute("DELETE FROM t")
        pool.release(name)
        taken.append(name)
    return taken


@pytest.mark.parametrize("copy_template", [True, False], ids=["template", "run-seed"])
def test_pool_hands_out_fresh_copies_and_cleans_up(pg: PgServer, copy_template: bool) -> None:
    prefix = f"pool_{int(copy_template)}_{id(pg) % 10000}"
    seeding.build_template(pg.endpoint(), f"{prefix}_tmpl", [fill])
    pool = seeding.CopyPool(pg.endpoint(), f"{prefix}_tmpl", prefix, seed=[fill], size=2, copy_template=copy_template)
    try:
        taken = use(pg, pool, 4)
    finally:
        pool.close()
    assert len(set(taken)) == 4
    assert names(pg, prefix) == {f"{prefix}_tmpl"}  # every copy, ready or used, dropped
    with pg.connect() as conn:  # the template refuses connections: nothing can block a copy
        assert conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", [f"{prefix}_tmpl"]).fetchone() == (False,)
    pg.drop_database(f"{prefix}_tmpl")


class RefusingTemplateCopies:
    """A connection that answers template copies like a server without the feature."""

    def __init__(self, conn: psycopg.Connection, template: str) -> None:
        self.conn, self.template = conn, template

    def execute(self, statement: Any, *args: Any) -> Any:
        text = statement.as_string(self.conn) if hasattr(statement, "as_string") else str(statement)
        if f'TEMPLATE "{self.template}"' in text:
            raise psycopg.errors.FeatureNotSupported("template copies are not supported")
        return self.conn.execute(statement, *args)


def test_a_refused_template_copy_switches_to_running_the_seed(pg: PgServer) -> None:
    prefix = f"refuse_{id(pg) % 10000}"
    seeding.build_template(pg.endpoint(), f"{prefix}_tmpl", [fill])
    pool = seeding.CopyPool(pg.endpoint(), f"{prefix}_tmpl", prefix, seed=[fill], size=1)
    pool.close()  # stop its own thread: drive _make by hand through the refusing connection
    try:
        with pg.connect() as conn:
            pool._make(RefusingTemplateCopies(conn, f"{prefix}_tmpl"), f"{prefix}_x")  # type: ignore[arg-type]
        assert pool.copy_template is False
        with pg.connect(f"{prefix}_x") as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (10,)
    finally:
        pg.drop_database(f"{prefix}_x")
        pg.drop_database(f"{prefix}_tmpl")


def test_a_failing_seed_leaves_no_template(pg: PgServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE ok (x int);\nSELECT * FROM missing_table;\n")
    with pytest.raises(Exception, match="missing_table"):
        seeding.build_template(pg.endpoint(), "bad_seed_tmpl", [bad])
    assert names(pg, "bad_seed_tmpl") == set()
    text = tmp_path / "notes.txt"
    text.write_text("")
    with pytest.raises(UsageError, match=r"neither a dump directory nor a \.sql script"):
        seeding.build_template(pg.endpoint(), "bad_seed_tmpl", [text])
    assert names(pg, "bad_seed_tmpl") == set()
