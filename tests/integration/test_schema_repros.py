"""Schema fidelity: each reproduction in fixtures/ysql/schema-repros.sql round-trips exactly.

Every ``-- @name`` block runs in an empty database; the database is dumped (``-j 2``) and loaded
into a new one (``--create -j 2``); the oracle is ``pg_dump --schema-only --no-owner`` of both
(plus ``pg_class.relispopulated``, which pg_dump -s does not show). ``compare`` must also report
each block as a difference against an empty database, so "identical" means identical.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, PgServer
from tests.support.schema import pg_dump_schema, populated
from ybrewind.errors import UsageError, YbrewindError
from ybrewind.ysql import pgdump
from ybrewind.ysql.compare import compare
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import LoadOptions, load

REPROS = REPO_ROOT / "fixtures" / "ysql" / "schema-repros.sql"


def repro_blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    name: str | None = None
    for line in REPROS.read_text().splitlines():
        if m := re.fullmatch(r"-- @(\w+)", line):
            name = m.group(1)
            blocks[name] = ""
        elif name is not None:
            blocks[name] += line + "\n"
    return blocks


BLOCKS = repro_blocks()


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_repro_round_trips(pg: PgServer, db: str, tmp_path: Path, name: str) -> None:
    pg.psql(db, "-c", BLOCKS[name])
    out = tmp_path / "dump"
    dump(pg.endpoint(db), out, DumpOptions(jobs=2))
    target = f"{db}_copy"
    load(out, pg.endpoint(target), LoadOptions(jobs=2, create=True))
    try:
        assert pg_dump_schema(pg, target, "--no-owner") == pg_dump_schema(pg, db, "--no-owner")
        assert populated(pg, target) == populated(pg, db)
        result = compare(pg.endpoint(db), pg.endpoint(target))
        assert result.identical, result.schema_diff
    finally:
        pg.drop_database(target)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_compare_sees_the_repro(pg: PgServer, db: str, name: str) -> None:
    """Against an empty database, every reproduction is a schema difference."""
    empty = pg.create_database("empty")
    try:
        pg.psql(db, "-c", BLOCKS[name])
        result = compare(pg.endpoint(db), pg.endpoint(empty))
        assert not result.identical
        assert result.schema_diff, "compare saw no schema difference"
    finally:
        pg.drop_database(empty)


def test_unpopulated_matview_differs_from_populated(pg: PgServer, db: str) -> None:
    """compare tells a WITH NO DATA materialized view from a populated one."""
    other = pg.create_database("mv")
    try:
        pg.psql(db, "-c", "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x WITH NO DATA")
        pg.psql(other, "-c", "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x")
        assert not compare(pg.endpoint(db), pg.endpoint(other)).identical
    finally:
        pg.drop_database(other)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_compare_agrees_with_pg_dump_on_builtin_copies(
    pg: PgServer, db: str, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pg_dump the dump falls back to the built-in reader, which loses details of these
    reproductions; it says so in a warning, and compare calls the copy identical exactly when
    pg_dump -s (and the populated state of materialized views) does."""
    monkeypatch.setattr(pgdump, "find_pg_dump", lambda _version: (None, "pg_dump not found (test)"))
    pg.psql(db, "-c", BLOCKS[name])
    out = tmp_path / "dump"
    result = dump(pg.endpoint(db), out, DumpOptions(jobs=2))
    assert result.warnings and "pg_dump not found (test)" in result.warnings[0]
    monkeypatch.undo()
    target = f"{db}_builtin"
    try:
        try:
            load(out, pg.endpoint(target), LoadOptions(jobs=2, create=True))
        except YbrewindError:
            return  # the built-in reader's script does not load: a loud failure, not a silent loss
        same = pg_dump_schema(pg, target) == pg_dump_schema(pg, db) and populated(pg, target) == populated(pg, db)
        assert compare(pg.endpoint(db), pg.endpoint(target)).identical == same
    finally:
        pg.drop_database(target)


def test_builtin_reader_names_what_it_drops_and_load_says_so_first(
    pg: PgServer, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pgdump, "find_pg_dump", lambda _version: (None, "pg_dump not found (test)"))
    pg.psql(db, "-c", BLOCKS["unwarned_kinds"] + BLOCKS["compare_blind_spots"] + "CREATE TYPE shell;")
    out = tmp_path / "dump"
    warnings = dump(pg.endpoint(db), out, DumpOptions()).warnings
    expected = [
        "cast (integer AS public.pair)", "operator family public.fam", "text search dictionary public.syn",
        "access method heap2", "foreign data wrapper w", "server srv", "user mapping FOR postgres SERVER srv",
        "aggregate public.mysum(integer)", "base type public.shell",
    ]
    for name in expected:
        assert any(w.startswith(name + " is not dumped") for w in warnings), (name, warnings)
    capsys.readouterr()
    target = f"{db}_warned"
    try:
        load(out, pg.endpoint(target), LoadOptions(create=True))
        err = capsys.readouterr().err
        for name in expected:
            assert f"warning: {name} is not dumped" in err
    finally:
        pg.drop_database(target)


def test_compare_without_pg_dump_refuses_rather_than_compare_blind(
    pg: PgServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgdump, "find_pg_dump", lambda _version: (None, "pg_dump not found (test)"))
    with pytest.raises(UsageError, match=r"needs pg_dump.*pg_dump not found"):
        compare(pg.endpoint(db), pg.endpoint(db))


def test_builtin_reader_keeps_a_matview_unpopulated(
    pg: PgServer, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in reader (YugabyteDB sources, no pg_dump) refreshes only populated matviews."""
    monkeypatch.setattr(pgdump, "find_pg_dump", lambda _version: (None, "pg_dump not found (test)"))
    pg.psql(db, "-c", BLOCKS["unpopulated_matview"] + "CREATE MATERIALIZED VIEW full_mv AS SELECT 2 AS y;")
    dump(pg.endpoint(db), tmp_path / "dump", DumpOptions())
    target = f"{db}_mv"
    try:
        load(tmp_path / "dump", pg.endpoint(target), LoadOptions(create=True))
        assert populated(pg, target) == populated(pg, db) == [("public", "full_mv", True), ("public", "mv", False)]
    finally:
        pg.drop_database(target)


def test_builtin_reader_adds_not_valid_domain_constraints_after_the_data(
    pg: PgServer, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgdump, "find_pg_dump", lambda _version: (None, "pg_dump not found (test)"))
    pg.psql(db, "-c", "CREATE DOMAIN posint AS int; CREATE TABLE t (v posint); INSERT INTO t VALUES (-1); "
            "ALTER DOMAIN posint ADD CONSTRAINT posint_check CHECK (VALUE > 0) NOT VALID; "
            "COMMENT ON CONSTRAINT posint_check ON DOMAIN posint IS 'later';")
    dump(pg.endpoint(db), tmp_path / "dump", DumpOptions())
    target = f"{db}_dom"
    try:
        load(tmp_path / "dump", pg.endpoint(target), LoadOptions(create=True))
        assert pg_dump_schema(pg, target) == pg_dump_schema(pg, db)
    finally:
        pg.drop_database(target)
