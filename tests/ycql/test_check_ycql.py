"""``ybrewind check`` on a ycql:// source: server kind and what --with-writetime keeps (TTLs are
refused on YugabyteDB tables with transactions enabled: docs api/ycql/dml_insert.md). Runs against
the CQL simulator (YugabyteDB presentation) or a real server when YBREWIND_YCQL_HOSTS is set."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import assert_one_line_error, run_cli
from tests.ycql.conftest import CqlServer


def test_check_ycql_keyspace(cql: CqlServer, fixture_ks: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", cql.url(fixture_ks), "--json")
    assert code == 0, err
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    if cql.is_yugabyte:
        assert report["kind"] == "yugabyte-ycql" and checks["server"]["detail"].startswith("YugabyteDB")
        assert checks["writetime"]["status"] == "warn" and "orders" in checks["writetime"]["detail"]
    else:
        assert checks["writetime"]["status"] == "ok"


def test_check_missing_keyspace(cql: CqlServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", cql.url("no_such_keyspace_here"), "--json")
    assert code == 1 and {c["name"]: c["status"] for c in json.loads(out)["checks"]}["keyspace"] == "fail"


def test_check_unreachable_ycql(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "check", "ycql://127.0.0.1:1/ks")
    assert_one_line_error(code, err, "cannot connect")
