"""Test helpers: run the CLI in-process, read whole tables independently of the dump code, drive the archiver."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tests.support.cli import assert_one_line_error, run_cli  # noqa: F401 - re-exported for tests
from tests.ycql.conftest import CqlServer
from ybrewind.archive.repo import Repository
from ybrewind.ycql.literals import parse_type, quote_ident


def table_snapshot(server: CqlServer, keyspace: str) -> dict[str, dict[str, Any]]:
    """Per table: sorted raw rows, write times of every readable cell, and TTLs (by primary key)."""
    server.refresh()
    meta = server.conn.keyspace(keyspace)
    assert meta is not None, keyspace
    udts = {n: list(zip(u.field_names, u.field_types, strict=True)) for n, u in meta.user_types.items()}
    out: dict[str, dict[str, Any]] = {}
    for name, table in sorted(meta.tables.items()):
        cols = list(table.columns.values())
        keys = {c.name for c in table.primary_key}
        timed = [
            c.name for c in cols
            if c.name not in keys and c.cql_type != "counter" and not parse_type(c.cql_type, udts).multi_cell
        ]  # fmt: skip
        selectors = [quote_ident(c.name) for c in cols]
        selectors += [f"writetime({quote_ident(c)})" for c in timed] + [f"ttl({quote_ident(c)})" for c in timed]
        rows = server.execute(f"SELECT {', '.join(selectors)} FROM {quote_ident(keyspace)}.{quote_ident(name)}")
        n, t = len(cols), len(timed)
        out[name] = {
            "data": sorted(tuple(r[:n]) for r in rows),
            "writetimes": sorted((tuple(r[: len(keys)]), tuple(r[n : n + t])) for r in rows),
            "ttls": {
                tuple(r[: len(keys)]): [None if v is None else int.from_bytes(v, "big") for v in r[n + t :]]
                for r in rows
            },
        }
    return out


def assert_ttls_close(before: dict[str, Any], after: dict[str, Any], slack: int = 60) -> None:
    """A loaded TTL is what was left when the dump read it: equal up to the time between the reads."""
    for key, ttls in before["ttls"].items():
        for a, b in zip(ttls, after["ttls"][key], strict=True):
            if a is None:
                assert b is None, key
            else:
                assert b is not None and abs(a - b) <= slack, (key, a, b)


def describe(server: CqlServer, keyspace: str) -> str:
    """DESC KEYSPACE as the driver renders it, with the keyspace name neutralized."""
    server.refresh()
    meta = server.conn.keyspace(keyspace)
    assert meta is not None
    text = meta.export_as_string()
    return (
        text.replace(f'"{keyspace}".', "KS.")
        .replace(f"{keyspace}.", "KS.")
        .replace(f"KEYSPACE {keyspace} ", "KEYSPACE KS ")
    )


def archiver_argv(server: CqlServer, ks: str, repo: Path, *extra: str) -> list[str]:
    """``ybrewind archive start`` of keyspace ``ks`` into ``repo`` as a subprocess command, scanning back to back."""
    return [
        sys.executable, "-m", "ybrewind.cli", "archive", "start", "-q", "-j", "2", "--scan-interval", "0.05",
        server.url(ks), str(repo), *extra,
    ]  # fmt: skip


def segments(repo: Path) -> list:
    """The repository's stored scans (none before the archiver created it)."""
    return Repository.open(str(repo)).segments() if (repo / "repository.json").exists() else []


def wait_for_segments(repo: Path, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(segments(repo)) < count:
        assert time.monotonic() < deadline, "the archiver stored no scan in time"
        time.sleep(0.05)
