"""pytest plugin: a seeded, isolated PostgreSQL/YSQL database per test (registered as ``pytest11``).

Fixtures:

- ``ybrewind_server`` (session): the server the databases live on. By default a sandbox cluster
  (``ybrewind.sandbox``) in a fresh directory under the temp dir, one per pytest-xdist worker and
  stopped at the end of the session; or the server of ``--ybrewind-url URL`` / ``YBREWIND_TEST_URL``
  (its database is used for maintenance connections; database names carry the worker id and pid,
  so several workers and runs can share one server).
- ``ybrewind_keyspace`` (function): the same for YCQL - a fresh keyspace holding the marker's
  seed (YCQL dump directories, ``.cql`` scripts, callables taking a driver Session), on the server
  of ``--ybrewind-ycql-url`` / ``YBREWIND_TEST_YCQL_URL`` (skipped when neither is set). Keyspaces
  are built ahead by a ``seeding.KeyspacePool`` (CQL has no template copy) and dropped afterwards.
- ``ybrewind_db`` (function): a fresh database holding the seed named by the closest
  ``@pytest.mark.ybrewind_seed(...)`` marker (none: an empty database). Seed items are dump
  directories, ``.sql`` / ``.sql.zst`` scripts (relative paths: from the test file's directory,
  else from the rootdir) and callables taking a psycopg connection. Each distinct seed is loaded
  once per session into a template; tests get copies from a ``seeding.CopyPool`` filled in the
  background. The copy is dropped after the test unless ``--ybrewind-keep``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from ybrewind.errors import UsageError, YbrewindError

# The plugin loads in every pytest run of every project that installed ybrewind: the database
# libraries (about 0.9 s of imports) are imported only when a ybrewind fixture is used.
if TYPE_CHECKING:
    import psycopg

    from ybrewind import seeding
    from ybrewind.endpoints import PgEndpoint
    from ybrewind.ycql.session import CqlConnection

URL_ENV = "YBREWIND_TEST_URL"
YCQL_URL_ENV = "YBREWIND_TEST_YCQL_URL"
MARKER = "ybrewind_seed"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ybrewind", "ybrewind seeded test databases")
    group.addoption(
        "--ybrewind-url",
        default=None,
        help=f"PostgreSQL/YugabyteDB URL of the server for ybrewind_db (default: ${URL_ENV}, else a sandbox per worker)",
    )
    group.addoption(
        "--ybrewind-ycql-url",
        default=None,
        help=f"ycql:// URL of the YCQL/Cassandra server for ybrewind_keyspace (default: ${YCQL_URL_ENV}; "
        "unset: those tests are skipped)",
    )
    group.addoption(
        "--ybrewind-keep",
        action="store_true",
        default=False,
        help="keep each test's database, the seed templates and the sandbox after the run",
    )
    group.addoption(
        "--ybrewind-pool",
        type=int,
        default=2,
        help="ready copies of each seed kept in advance by a background thread (default 2)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*items): seed for ybrewind_db - dump directories, .sql scripts, callables(conn), applied in order",
    )


def url_with_dbname(url: str, dbname: str) -> str:
    """``url`` pointing at database ``dbname`` (a postgresql:// URL stays a URL, a conninfo a conninfo)."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=dbname)


@dataclass
class Server:
    """Where test databases are created: a maintenance URL plus the sandbox directory, if ours."""

    url: str
    sandbox_dir: Path | None = None

    @property
    def endpoint(self) -> PgEndpoint:
        from ybrewind.endpoints import PgEndpoint

        return PgEndpoint.parse(self.url)

    def url_for(self, dbname: str) -> str:
        return url_with_dbname(self.url, dbname)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def ybrewind_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    from ybrewind import sandbox
    from ybrewind.endpoints import PgEndpoint

    config = request.config
    url = config.getoption("--ybrewind-url") or os.environ.get(URL_ENV)
    keep = bool(config.getoption("--ybrewind-keep"))
    if url:
        PgEndpoint.parse(url)  # a bad URL fails here, once, with a one-line message
        yield Server(url)
        return
    # One sandbox per xdist worker: no sharing means no coordination, and stopping one worker's
    # server cannot pull it from under another. The parent is ours, so we may open it to the
    # postgres user (a root-only temp directory is the classic reason a sandbox cannot start).
    parent = Path(tempfile.mkdtemp(prefix=f"ybrewind-pytest-{_worker()}-"))
    parent.chmod(0o755)
    directory = parent / "sandbox"
    try:
        sb = sandbox.start(directory)
    except BaseException:
        shutil.rmtree(parent, ignore_errors=True)
        raise
    try:
        yield Server(sb.url(), directory)
    finally:
        if not keep:
            sandbox.stop(directory)
            shutil.rmtree(parent, ignore_errors=True)


@dataclass
class SeededDatabase:
    """What a test gets: the database's name, a URL for it and an open autocommit connection."""

    name: str
    url: str
    conn: psycopg.Connection
    waited: float  # seconds the test waited for its copy


@dataclass
class _Seed:
    template: str
    pool: seeding.CopyPool


@dataclass
class Seeder:
    """Session state: one template and one copy pool per distinct seed."""

    server: Server
    pool_size: int
    keep: bool
    seeds: dict[tuple[object, ...], _Seed] = field(default_factory=dict)

    def _prefix(self) -> str:
        # Unique per worker and process: workers and concurrent runs can share a server.
        return f"ybt_{_worker()}_{os.getpid()}_{len(self.seeds) + 1}"

    def pool_for(self, items: Sequence[seeding.SeedItem]) -> seeding.CopyPool:
        from ybrewind import seeding

        key = tuple(items)
        seed = self.seeds.get(key)
        if seed is None:
            prefix = self._prefix()
            template = f"{prefix}_tmpl"
            seeding.build_template(self.server.endpoint, template, items)
            pool = seeding.CopyPool(self.server.endpoint, template, prefix, seed=items, size=self.pool_size)
            seed = self.seeds[key] = _Seed(template, pool)
        return seed.pool

    def close(self) -> None:
        from ybrewind import seeding

        for seed in self.seeds.values():
            seed.pool.close()
        if self.keep or not self.seeds:
            return
        with self.server.endpoint.connect() as conn:
            for seed in self.seeds.values():
                seeding.drop_database(conn, seed.template)


@pytest.fixture(scope="session")
def ybrewind_seeder(request: pytest.FixtureRequest, ybrewind_server: Server) -> Iterator[Seeder]:
    pool_size = int(request.config.getoption("--ybrewind-pool"))
    if pool_size < 1:
        raise pytest.UsageError("--ybrewind-pool must be at least 1")
    seeder = Seeder(ybrewind_server, pool_size, bool(request.config.getoption("--ybrewind-keep")))
    try:
        yield seeder
    finally:
        seeder.close()


def seed_items(node: pytest.Item, rootdir: Path) -> list[seeding.SeedItem]:
    """The closest ybrewind_seed marker's items, paths resolved against the test file, then the rootdir."""
    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return []
    if marker.kwargs:
        raise UsageError(f"@pytest.mark.{MARKER} takes only positional seed items, not {sorted(marker.kwargs)}")
    items: list[seeding.SeedItem] = []
    for arg in marker.args:
        if callable(arg):
            items.append(arg)
            continue
        if not isinstance(arg, str | os.PathLike):
            raise UsageError(f"@pytest.mark.{MARKER}: {arg!r} is neither a path nor a callable")
        path = Path(arg)
        if not path.is_absolute():
            here = Path(node.path).parent / path
            path = here if here.exists() else rootdir / path
        items.append(path.resolve())
    return items


@pytest.fixture
def ybrewind_db(request: pytest.FixtureRequest, ybrewind_seeder: Seeder) -> Iterator[SeededDatabase]:
    """A fresh database holding the test's seed; dropped afterwards unless --ybrewind-keep."""
    import psycopg

    try:
        items = seed_items(request.node, request.config.rootpath)
        pool = ybrewind_seeder.pool_for(items)
        started = time.monotonic()
        name = pool.take()
        waited = time.monotonic() - started
    except YbrewindError as e:  # a bad seed or a failing load: one line, not a traceback into the plugin
        pytest.fail(f"ybrewind: {e}", pytrace=False)
    url = ybrewind_seeder.server.url_for(name)
    try:
        conn = psycopg.connect(url, autocommit=True)
    except BaseException:
        pool.release(name, keep=ybrewind_seeder.keep)
        raise
    try:
        yield SeededDatabase(name, url, conn, waited)
    finally:
        conn.close()
        pool.release(name, keep=ybrewind_seeder.keep)
        if ybrewind_seeder.keep:
            request.node.add_report_section("teardown", "ybrewind", f"kept database {name}: {url}")


# -- YCQL ----------------------------------------------------------------------------------------
@dataclass
class SeededKeyspace:
    """What a YCQL test gets: the keyspace's name, a ycql:// URL for it and a driver Session using it."""

    name: str
    url: str
    session: Any  # cassandra.cluster.Session bound to the keyspace
    waited: float


@dataclass
class KeyspaceSeeder:
    """Session state for YCQL: one keyspace pool per distinct seed, one shared driver cluster."""

    url: str
    pool_size: int
    keep: bool
    conn: CqlConnection
    pools: dict[tuple[object, ...], seeding.KeyspacePool] = field(default_factory=dict)

    def pool_for(self, items: Sequence[seeding.CqlSeedItem]) -> seeding.KeyspacePool:
        from ybrewind import seeding
        from ybrewind.endpoints import YcqlEndpoint

        key = tuple(items)
        pool = self.pools.get(key)
        if pool is None:
            seeding.check_items(items, "ycql")
            prefix = f"ybt_{_worker()}_{os.getpid()}_{len(self.pools) + 1}"
            pool = self.pools[key] = seeding.KeyspacePool(YcqlEndpoint.parse(self.url), prefix, items, self.pool_size)
        return pool

    def url_for(self, keyspace: str) -> str:
        base, _, query = self.url.partition("?")
        netloc = base.split("://", 1)[1].split("/", 1)[0]
        return f"{base.split('://', 1)[0]}://{netloc}/{keyspace}" + (f"?{query}" if query else "")

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.conn.close()


@pytest.fixture(scope="session")
def ybrewind_keyspace_seeder(request: pytest.FixtureRequest) -> Iterator[KeyspaceSeeder]:
    from ybrewind.endpoints import YcqlEndpoint
    from ybrewind.ycql.session import connect as cql_connect

    url = request.config.getoption("--ybrewind-ycql-url") or os.environ.get(YCQL_URL_ENV)
    if not url:
        pytest.skip(f"no YCQL server: pass --ybrewind-ycql-url ycql://host:port or set {YCQL_URL_ENV}")
    try:
        conn = cql_connect(YcqlEndpoint.parse(url).with_keyspace(None))
    except YbrewindError as e:
        pytest.fail(f"ybrewind: {e}", pytrace=False)
    seeder = KeyspaceSeeder(
        url, int(request.config.getoption("--ybrewind-pool")), bool(request.config.getoption("--ybrewind-keep")), conn
    )
    try:
        yield seeder
    finally:
        seeder.close()


@pytest.fixture
def ybrewind_keyspace(request: pytest.FixtureRequest, ybrewind_keyspace_seeder: KeyspaceSeeder) -> Iterator[SeededKeyspace]:
    """A fresh YCQL keyspace holding the test's seed; dropped afterwards unless --ybrewind-keep."""
    seeder = ybrewind_keyspace_seeder
    try:
        items = seed_items(request.node, request.config.rootpath)
        pool = seeder.pool_for(items)
        started = time.monotonic()
        name = pool.take()
        waited = time.monotonic() - started
    except YbrewindError as e:
        pytest.fail(f"ybrewind: {e}", pytrace=False)
    session = seeder.conn.cluster.connect(name)
    try:
        yield SeededKeyspace(name, seeder.url_for(name), session, waited)
    finally:
        session.shutdown()
        pool.release(name, keep=seeder.keep)
        if seeder.keep:
            request.node.add_report_section("teardown", "ybrewind", f"kept keyspace {name}")
