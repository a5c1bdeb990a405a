"""Dump + load of the fixture keyspace: identical data, write times, TTLs and schema (as DESC renders it)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.ycql.conftest import CqlServer
from tests.ycql.helpers import assert_ttls_close, describe, run_cli, table_snapshot
from ybrewind import manifest as mf
from ybrewind.ycql.compare import compare
from ybrewind.ycql.dump import DumpOptions, dump
from ybrewind.ycql.load import LoadOptions, load


@pytest.fixture(scope="module")
def source_snapshot(cql: CqlServer, fixture_ks: str) -> dict:
    return table_snapshot(cql, fixture_ks)


def test_round_trip_with_writetime(
    cql: CqlServer, fixture_ks: str, source_snapshot: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dump"
    code, stdout, err = run_cli(capsys, "dump", "-j", "3", "--with-writetime", "--json", cql.url(fixture_ks), str(out))
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["rows"] > 20 and summary["retries"] == 0 and summary["warnings"] == []
    manifest = mf.read(out)
    assert manifest.api == "ycql" and manifest.dialect == cql.flavor
    assert manifest.snapshot["scan_started"] <= manifest.snapshot["scan_finished"]
    assert manifest.options["with_writetime"] is True
    assert {p.name for p in (out / "data").iterdir()} == {Path(f.path).name for f in manifest.files_of("data")}
    for f in [*out.iterdir(), *(out / "data").iterdir()]:
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    schema_text = (out / "schema.cql").read_text()
    assert schema_text.startswith(f"CREATE KEYSPACE {fixture_ks} WITH replication")
    assert "restore.cql" in {p.name for p in out.iterdir()}

    target = cql.keyspace_name("copy")
    code, _, err = run_cli(capsys, "load", "-q", "-j", "2", str(out), cql.url(target))
    assert code == 0, err
    after = table_snapshot(cql, target)
    assert sorted(after) == sorted(source_snapshot)
    for table, before in source_snapshot.items():
        assert after[table]["data"] == before["data"], table
        assert after[table]["writetimes"] == before["writetimes"], table
        assert_ttls_close(before, after[table])
    assert describe(cql, target) == describe(cql, fixture_ks)
    code, _, err = run_cli(capsys, "compare", "--with-writetime", cql.url(fixture_ks), cql.url(target))
    assert code == 0, err
    assert "identical" in err


def test_plain_compressed_dump_under_the_same_name(
    cql: CqlServer, fixture_ks: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No write times, zstd, small pages; loaded back under the source's name (after --clean)."""
    out = tmp_path / "dump"
    result = dump(cql.endpoint(fixture_ks), out, DumpOptions(jobs=2, compress=True, page_size=4, ranges=5))
    assert all(f.path.endswith(".cql.zst") for f in mf.read(out).files_of("data"))
    assert not (out / "restore.cql").exists()
    code, _, err = run_cli(capsys, "verify", str(out))
    assert code == 0 and f"{result.rows} rows" in err
    copy = cql.keyspace_name("plain")
    load(out, cql.endpoint(copy), LoadOptions(jobs=3))
    assert compare(cql.endpoint(fixture_ks), cql.endpoint(copy)).identical
    # The same dump into its own (non-empty) keyspace name: refused, then --clean.
    code, _, err = run_cli(capsys, "load", str(out), cql.url(copy))
    assert code == 7 and "not empty" in err
    again = cql.keyspace_name("again")
    load(out, cql.endpoint(again), LoadOptions())
    code, _, err = run_cli(capsys, "load", "-q", "--clean", str(out), cql.url(again))
    assert code == 0, err
    assert compare(cql.endpoint(fixture_ks), cql.endpoint(again)).identical


def test_data_files_are_plain_cql(cql: CqlServer, fixture_ks: str, tmp_path: Path) -> None:
    """ycqlsh -f runs the files as they are: the loader's text path (no prepared statements) agrees."""
    out = tmp_path / "dump"
    dump(cql.endpoint(fixture_ks), out, DumpOptions(with_writetime=True, tables=["events", "page_views", "Mixed*"]))
    text = (out / "data" / f"0003-{fixture_ks}.page_views.cql").read_text()
    assert 'UPDATE "' in text and '"views" = "views" + 42' in text and '"errors" = "errors" - 3' in text
    events = next((out / "data").glob("*events.cql")).read_text()
    assert "USING TIMESTAMP 1700000000000302 AND TTL" in events  # per cell group
    assert "USING TIMESTAMP 1700000000000303 AND TTL" in events
    assert events.count("'static only partition'") == 1
    restore = (out / "restore.cql").read_text().splitlines()
    assert restore[1] == "SOURCE 'schema.cql';" and all(ln.startswith("SOURCE 'data/") for ln in restore[2:])
    # Run every statement as text through the plain-script path.
    copy = cql.keyspace_name("text")
    schema = (
        (out / "schema.cql")
        .read_text()
        .replace(f"{fixture_ks}.", f"{copy}.")
        .replace(f"KEYSPACE {fixture_ks} ", f"KEYSPACE {copy} ")
    )
    script = tmp_path / "all.cql"
    data = "".join(p.read_text() for p in sorted((out / "data").iterdir()))
    script.write_text(schema + data.replace(f'"{fixture_ks}".', f'"{copy}".'))
    load(script, cql.endpoint(""), LoadOptions())
    source = table_snapshot(cql, fixture_ks)
    after = table_snapshot(cql, copy)
    for table in after:
        assert after[table]["data"] == source[table]["data"]
        assert after[table]["writetimes"] == source[table]["writetimes"]


def test_csv_format(cql: CqlServer, fixture_ks: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "csv"
    code, _, err = run_cli(capsys, "dump", "-q", "--format", "csv", cql.url(fixture_ks), str(out))
    assert code == 0, err
    restore = (out / "restore.cql").read_text()
    assert f'COPY "{fixture_ks}"."scalars" ("id", ' in restore and "WITH HEADER = true;" in restore
    scalars = next((out / "data").glob("*scalars.csv")).read_text().splitlines()
    assert scalars[0].startswith("id,") and ",vc," in scalars[0]
    assert any("2024-02-29 23:59:59.999+0000" in line and "0xcafebabe" in line and "True" in line for line in scalars)
    copy = cql.keyspace_name("csv")
    code, _, err = run_cli(capsys, "load", "-q", str(out), cql.url(copy))
    assert code == 0, err
    result = compare(cql.endpoint(fixture_ks), cql.endpoint(copy))
    assert not result.schema_diff
    # CSV (like COPY FROM) reads an empty field as NULL: only the empty texts of scalars differ.
    assert [t.table for t in result.differing_tables] == ["scalars"]


def test_schema_only_data_only_and_filters(cql: CqlServer, fixture_ks: str, tmp_path: Path) -> None:
    schema_dir, data_dir = tmp_path / "s", tmp_path / "d"
    dump(cql.endpoint(fixture_ks), schema_dir, DumpOptions(schema_only=True, exclude_tables=["sessions"]))
    manifest = mf.read(schema_dir)
    assert not manifest.files_of("data") and "sessions" not in manifest.objects["tables"]
    dump(
        cql.endpoint(fixture_ks),
        data_dir,
        DumpOptions(data_only=True, exclude_tables=["sessions"], exclude_table_data=["people"]),
    )
    assert not mf.read(data_dir).files_of("schema")
    assert not any("people" in f.path for f in mf.read(data_dir).files_of("data"))
    copy = cql.keyspace_name("split")
    load(schema_dir, cql.endpoint(copy), LoadOptions())
    load(data_dir, cql.endpoint(copy), LoadOptions(jobs=2))
    result = compare(cql.endpoint(fixture_ks), cql.endpoint(copy))
    assert [t.table for t in result.differing_tables] == ["people", "sessions"]
