"""Apache Cassandra presentation: detected from the server, token() ranges over the Murmur3 ring."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.ycql.conftest import CqlServer
from tests.ycql.helpers import assert_ttls_close, describe, run_cli, table_snapshot
from ybrewind import manifest as mf
from ybrewind.ycql.dump import MAX_TOKEN, MIN_TOKEN, Dumper, DumpOptions, ranges


def test_token_ranges_cover_the_ring() -> None:
    parts = ranges(False, 7)
    assert parts[0][0] == MIN_TOKEN and parts[-1][1] == MAX_TOKEN
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(parts))
    hashes = ranges(True, 7)
    assert hashes[0] == (0, hashes[0][1]) and hashes[-1][1] == 65535
    assert sum(hi - lo + 1 for lo, hi in hashes) == 65536
    assert ranges(True, 100000)[-1] == (65535, 65535) and len(ranges(True, 100000)) == 65536


def test_cassandra_round_trip(
    cassandra_sim: CqlServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = cassandra_sim.keyspace_name("cass")
    cassandra_sim.load_fixture(source)
    queries: list[str] = []
    original = Dumper._plan

    def spy(self: Dumper, conn, model, number, table):  # type: ignore[no-untyped-def]
        plan = original(self, conn, model, number, table)
        queries.append(plan.query)
        return plan

    monkeypatch.setattr(Dumper, "_plan", spy)
    out = tmp_path / "dump"
    code, _, err = run_cli(capsys, "dump", "-q", "-j", "2", "--with-writetime", cassandra_sim.url(source), str(out))
    assert code == 0, err
    manifest = mf.read(out)
    assert manifest.dialect == "cassandra" and manifest.source["release_version"].startswith("4.")
    assert queries and all(" WHERE token(" in q and "partition_hash" not in q for q in queries)
    assert "jsonb" not in (out / "schema.cql").read_text()
    target = cassandra_sim.keyspace_name("cass_copy")
    code, _, err = run_cli(capsys, "load", "-q", str(out), cassandra_sim.url(target))
    assert code == 0, err
    before, after = table_snapshot(cassandra_sim, source), table_snapshot(cassandra_sim, target)
    assert "tuples" in before
    for table in before:
        assert after[table]["data"] == before[table]["data"], table
        assert after[table]["writetimes"] == before[table]["writetimes"], table
        assert_ttls_close(before[table], after[table])
    assert describe(cassandra_sim, target) == describe(cassandra_sim, source)
    code, _, err = run_cli(capsys, "compare", "--with-writetime", cassandra_sim.url(source), cassandra_sim.url(target))
    assert code == 0, err


def test_dump_options_validation() -> None:
    from ybrewind.errors import UsageError

    for bad in (
        DumpOptions(jobs=0),
        DumpOptions(format="csv", with_writetime=True),
        DumpOptions(schema_only=True, data_only=True),
        DumpOptions(page_size=0),
    ):
        with pytest.raises(UsageError):
            bad.validate()
