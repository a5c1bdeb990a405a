"""Shared pytest fixtures: one sandbox PostgreSQL per test session, a fresh database per test."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ybrewind import sandbox as sandbox_mod
from ybrewind.endpoints import PgEndpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_SQL = REPO_ROOT / "fixtures" / "ysql" / "fixture.sql"
_counter = itertools.count()


def sandbox_dir(prefix: str) -> Path:
    """A fresh path in /tmp for a sandbox (its parent must be reachable by the postgres user)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.rmdir()
    return directory


@contextmanager
def own_sandbox(prefix: str, settings: dict[str, str] | None = None) -> Iterator[sandbox_mod.Sandbox]:
    """A sandbox PostgreSQL of its own in a fresh /tmp directory, stopped (and removed) at the end."""
    directory = sandbox_dir(prefix)
    sb = sandbox_mod.start(directory, settings=settings)
    try:
        yield sb
    finally:
        sandbox_mod.stop(directory)


@pytest.fixture(scope="session")
def pg_sandbox() -> Iterator[sandbox_mod.Sandbox]:
    with own_sandbox("ybrewind-test-") as sb:
        yield sb


class PgServer:
    """Helper around the session sandbox: create databases, run SQL, build endpoints."""

    def __init__(self, sb: sandbox_mod.Sandbox) -> None:
        self.sandbox = sb

    def endpoint(self, dbname: str = "postgres", user: str = sandbox_mod.SUPERUSER) -> PgEndpoint:
        return PgEndpoint(self.sandbox.url(dbname, user))

    def url(self, dbname: str = "postgres") -> str:
        return self.sandbox.url(dbname)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.sandbox.url(dbname), autocommit=True)

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def psql(self, dbname: str, *args: str, check: bool = True) -> str:
        import subprocess

        proc = subprocess.run(
            [self.sandbox.binary("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url(dbname), *args],
            capture_output=True, text=True,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"psql failed: {proc.stderr}")
        return proc.stdout

    def load_fixture(self, dbname: str) -> None:
        self.psql(dbname, "-f", str(FIXTURE_SQL))


@pytest.fixture(scope="session")
def pg(pg_sandbox: sandbox_mod.Sandbox) -> PgServer:
    return PgServer(pg_sandbox)


@pytest.fixture
def db(pg: PgServer) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = pg.create_database()
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="session")
def fixture_db(pg: PgServer) -> str:
    """The fixture database loaded once per session; tests must not modify it."""
    name = pg.create_database("fixture")
    pg.load_fixture(name)
    return name


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 HTTP endpoint (moto's server) on 127.0.0.1, with fake credentials in the env."""
    from moto.server import ThreadedMotoServer

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(moto_endpoint: str) -> object:
    from ybrewind.archive.repo import RepositoryOptions

    return RepositoryOptions(endpoint_url=moto_endpoint)


@pytest.fixture
def s3_repo_url(moto_endpoint: str) -> str:
    """A fresh bucket; the repository lives under a prefix in it."""
    import boto3

    bucket = f"ybrewind-{os.getpid()}-{next(_counter)}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/repo"


# -- YBREWIND_TEST_REAL=docker: real servers in containers (tests/support/realservers.py) -----------
_real_servers = None


def pytest_configure(config: pytest.Config) -> None:
    """YBREWIND_TEST_REAL=docker: containers; =ybsim: the real-server YSQL tests against the
    YugabyteDB-flavoured endpoint (an emulator, not YugabyteDB)."""
    global _real_servers
    mode = os.environ.get("YBREWIND_TEST_REAL")
    if mode not in ("docker", "ybsim") or hasattr(config, "workerinput"):
        return  # xdist workers inherit the variables the controller set
    from contextlib import ExitStack

    _real_servers = ExitStack()
    if mode == "docker":
        from tests.support.realservers import start

        start(_real_servers)
        return
    from tests.support.ybsim.process import running

    sb = _real_servers.enter_context(own_sandbox("ybrewind-ybsim-real-"))
    sim = _real_servers.enter_context(running(sb.url().rsplit("/", 1)[0]))
    os.environ["YBREWIND_YSQL_URL"] = sim.url("postgres")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _real_servers is not None:
        _real_servers.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.support.realservers import SKIP_VAR

    reason = os.environ.get(SKIP_VAR)
    if not reason:
        return
    for item in items:  # the tests that need a real server: say why they do not run
        if item.path.name == "test_yugabyte.py" or "[real" in item.nodeid:
            item.add_marker(pytest.mark.skipif(True, reason=reason), append=False)


# -- ybsim: the YugabyteDB-flavoured endpoint (tests/support/ybsim) ----------------------------------
@pytest.fixture(scope="session")
def ybsim_upstream() -> Iterator[sandbox_mod.Sandbox]:
    """A PostgreSQL of its own behind the endpoint: it installs catalog objects in every database."""
    with own_sandbox("ybrewind-ybsim-") as sb:
        yield sb


@pytest.fixture(scope="session")
def ybsim(ybsim_upstream: sandbox_mod.Sandbox) -> Iterator[object]:
    """The endpoint with YugabyteDB's defaults (new tables get replica identity CHANGE)."""
    from tests.support.ybsim.process import running

    with running(ybsim_upstream.url().rsplit("/", 1)[0], "--publication-refresh-seconds", "5") as sim:
        yield sim


@pytest.fixture(scope="session")
def ybsim_full(ybsim_upstream: sandbox_mod.Sandbox) -> Iterator[object]:
    """The endpoint with ysql_yb_default_replica_identity=FULL, as a DBA sets it up for pgoutput, and
    enable_truncate_cdcsdk_table=true (TRUNCATE allowed, and not streamed, while a slot exists)."""
    from tests.support.ybsim.process import running

    with running(
        ybsim_upstream.url().rsplit("/", 1)[0], "--default-replica-identity", "FULL",
        "--publication-refresh-seconds", "5", "--enable-truncate-cdcsdk-table",
    ) as sim:
        yield sim
