"""YCQL test fixtures: a CQL server per module - the in-process simulator, or a real one.

Every server-backed test takes the ``cql`` fixture, parametrized as ``sim`` (cqlsim presenting
YugabyteDB, in-process, one per module) and ``real`` (a YugabyteDB or Cassandra given by
``YBREWIND_YCQL_HOSTS=host[:port][,host...]``, credentials from ``YCQL_USER`` / ``YCQL_PASSWORD``;
skipped with a reason when unset). ``cassandra_sim`` is the simulator presenting Apache Cassandra.
Keyspace names are unique per process and call, so ``pytest -n`` workers never collide.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cqlsim import SimHandle, start_in_thread
from ybrewind.endpoints import YcqlEndpoint
from ybrewind.ycql.load import LoadOptions, load
from ybrewind.ycql.session import CqlConnection, connect

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "fixtures" / "ycql"
REAL_HOSTS_VAR = "YBREWIND_YCQL_HOSTS"
REAL_REASON = "set YBREWIND_YCQL_HOSTS to run against a real YugabyteDB/Cassandra"
_names = itertools.count()


@dataclass
class CqlServer:
    """One CQL server for a test module, with helpers to name, fill and inspect keyspaces."""

    kind: str  # sim, sim-cassandra, real
    base: str  # ycql://[user@]host:port (no keyspace)
    sim: SimHandle | None = None
    _conn: CqlConnection | None = field(default=None, repr=False)
    created: list[str] = field(default_factory=list)

    @property
    def conn(self) -> CqlConnection:
        if self._conn is None:
            self._conn = connect(YcqlEndpoint.parse(self.base))
        return self._conn

    @property
    def flavor(self) -> str:
        return self.conn.server.flavor

    @property
    def is_yugabyte(self) -> bool:
        return self.conn.server.is_yugabyte

    def url(self, keyspace: str = "") -> str:
        return f"{self.base}/{keyspace}"

    def endpoint(self, keyspace: str = "") -> YcqlEndpoint:
        return YcqlEndpoint.parse(self.url(keyspace))

    def keyspace_name(self, prefix: str) -> str:
        name = f"{prefix}_{os.getpid()}_{next(_names)}_{uuid.uuid4().hex[:6]}"
        self.created.append(name)
        return name

    def fixture_files(self) -> list[Path]:
        files = [FIXTURES / "fixture.cql"]
        if self.is_yugabyte:
            files.append(FIXTURES / "yugabyte.cql")
        if self.kind != "real" or not self.is_yugabyte:
            files.append(FIXTURES / "cassandra.cql")  # YugabyteDB has no tuple, duration, ascii
        return files

    def load_fixture(self, keyspace: str) -> None:
        for path in self.fixture_files():
            load(path, self.endpoint(keyspace), LoadOptions(create=True))

    def execute(self, cql: str) -> list[list[object]]:
        return self.conn.execute(cql)

    def refresh(self) -> None:
        self.conn.cluster.refresh_schema_metadata()

    def close(self) -> None:
        if self._conn is not None:
            if self.kind == "real":
                for name in self.created:
                    with contextlib.suppress(Exception):  # best-effort cleanup of a shared server
                        self._conn.drop_keyspace(name)  # YugabyteDB refuses a non-empty keyspace
            self._conn.close()
        if self.sim is not None:
            self.sim.stop()


def real_base() -> str | None:
    hosts = os.environ.get(REAL_HOSTS_VAR, "").strip()
    if not hosts:
        return None
    user = os.environ.get("YCQL_USER")
    return f"ycql://{user + '@' if user else ''}{hosts}"


def _server(kind: str) -> CqlServer:
    if kind == "real":
        base = real_base()
        if base is None:
            pytest.skip(REAL_REASON)
        return CqlServer("real", base)
    sim = start_in_thread(cassandra=kind == "sim-cassandra")
    return CqlServer(kind, f"ycql://{sim.host}:{sim.port}", sim)


@pytest.fixture(scope="module", params=["sim", "real"])
def cql(request: pytest.FixtureRequest) -> Iterator[CqlServer]:
    """The module's server: the simulator (YugabyteDB presentation), or the real one."""
    server = _server(request.param)
    yield server
    server.close()


@pytest.fixture(scope="module")
def cassandra_sim() -> Iterator[CqlServer]:
    server = _server("sim-cassandra")
    yield server
    server.close()


@pytest.fixture(scope="module")
def fixture_ks(cql: CqlServer) -> str:
    """A keyspace holding the fixture, loaded once per module; tests must not modify it."""
    name = cql.keyspace_name("fixture")
    cql.load_fixture(name)
    return name
