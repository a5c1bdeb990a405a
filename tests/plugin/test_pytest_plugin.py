"""The pytest plugin end to end: a sample project's suite run with pytest-xdist ``-n 2``.

The sample suite seeds from a real ybrewind dump directory, .sql scripts and a callable; every
sample test checks it sees exactly its seed, then writes (rows, a table), so a write leaking into
another test's database fails that test. Afterwards nothing may be left: no test database, no
template, no sandbox directory, no server process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PgServer
from ybrewind.ycql.session import TEXT
from ybrewind.ysql.dump import DumpOptions, dump

CONFTEST = '''
import pytest


def add_flags(conn):
    conn.execute("CREATE TABLE flags (x int)")
    conn.execute("INSERT INTO flags VALUES (42), (43)")


@pytest.fixture(autouse=True)
def record(request, tmp_path_factory):
    yield
    db = request.node.funcargs.get("ybrewind_db")
    if db is not None:
        out = request.config.rootpath / "names"
        out.mkdir(exist_ok=True)
        (out / db.name).write_text(request.node.nodeid)
'''

TEST_SHOP = '''
import psycopg
import pytest

pytestmark = pytest.mark.ybrewind_seed("fixtures/shop", "extra.sql")


def tables(conn):
    return sorted(r[0] for r in conn.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"))


@pytest.mark.parametrize("i", range(8))
def test_sees_exactly_the_seed_then_writes(ybrewind_db, i):
    conn = ybrewind_db.conn
    assert tables(conn) == ["customers"]
    assert conn.execute("SELECT array_agg(name ORDER BY id) FROM customers").fetchone()[0] == [
        "ada", "bob", "cy", "dee", "extra"]
    with psycopg.connect(ybrewind_db.url) as other:  # the URL reaches the same database
        assert other.execute("SELECT count(*) FROM customers").fetchone()[0] == 5
    conn.execute("INSERT INTO customers VALUES (100, 'written by %s')" % i)
    conn.execute("DELETE FROM customers WHERE name = 'ada'")
    conn.execute("CREATE TABLE scratch (x int)")
'''

TEST_ITEMS = '''
import pytest
from conftest import add_flags


@pytest.mark.ybrewind_seed("seed/items.sql", add_flags)
@pytest.mark.parametrize("i", range(4))
def test_script_and_callable(ybrewind_db, i):
    conn = ybrewind_db.conn
    assert conn.execute("SELECT count(*), sum(id) FROM items").fetchone() == (3, 6)
    assert conn.execute("SELECT array_agg(x ORDER BY x) FROM flags").fetchone()[0] == [42, 43]
    conn.execute("TRUNCATE items")
    conn.execute("DROP TABLE flags")


@pytest.mark.parametrize("i", range(2))
def test_no_marker_is_an_empty_database(ybrewind_db, i):
    assert ybrewind_db.conn.execute(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchone()[0] == 0
    ybrewind_db.conn.execute("CREATE TABLE leak (x int)")
'''


@pytest.fixture
def sample(pg: PgServer, db: str) -> Iterator[Path]:
    """A sample project: a dump directory of a real database, scripts, a conftest, two test files."""
    root = Path(tempfile.mkdtemp(prefix="ybrewind-sample-"))
    root.chmod(0o755)  # its sandboxes live under it (TMPDIR): the postgres user must get through
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL UNIQUE)")
        conn.execute("INSERT INTO customers VALUES (1, 'ada'), (2, 'bob'), (3, 'cy'), (4, 'dee')")
    dump(pg.endpoint(db), root / "fixtures" / "shop", DumpOptions())
    (root / "extra.sql").write_text("INSERT INTO customers VALUES (5, 'extra');\n")
    (root / "seed").mkdir()
    (root / "seed" / "items.sql").write_text(
        "CREATE TABLE items (id int PRIMARY KEY);\nINSERT INTO items VALUES (1), (2), (3);\n"
    )
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_shop.py").write_text(TEST_SHOP)
    (root / "test_items.py").write_text(TEST_ITEMS)
    yield root
    subprocess.run(["rm", "-rf", str(root)], check=True)


def run_sample(root: Path, *args: str, jobs: str = "2") -> subprocess.CompletedProcess[str]:
    """pytest in the sample project, as a fresh session (not seen as one of our own xdist workers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YBREWIND_TEST_URL"))}
    env["TMPDIR"] = str(root)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-n", jobs, "-p", "no:cacheprovider", "-q", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


def databases(pg: PgServer) -> set[str]:
    with pg.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def processes_under(path: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def check_names(root: Path) -> list[str]:
    names = sorted(p.name for p in (root / "names").iterdir())
    assert len(names) == 14  # one database per test, never reused
    assert {n.split("_")[1] for n in names} == {"gw0", "gw1"}  # both workers ran tests
    return names


def test_sample_suite_on_sandboxes_xdist(sample: Path) -> None:
    proc = run_sample(sample)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "14 passed" in proc.stdout
    check_names(sample)
    leftovers = [p.name for p in sample.iterdir() if p.name.startswith(("ybrewind-pytest-", ".ybrewind"))]
    assert leftovers == []
    assert processes_under(sample) == []


def test_sample_suite_on_a_given_server_xdist(sample: Path, pg: PgServer) -> None:
    before = databases(pg)
    proc = run_sample(sample, "--ybrewind-url", pg.url())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "14 passed" in proc.stdout
    names = check_names(sample)
    assert databases(pg) == before  # copies, spare copies and templates all dropped
    assert not set(names) & before


def test_keep_leaves_the_databases(sample: Path, pg: PgServer) -> None:
    before = databases(pg)
    proc = run_sample(
        sample, "test_items.py", "-k", "script_and_callable and 0", "--ybrewind-keep", "--ybrewind-url", pg.url(),
        jobs="0",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    kept = databases(pg) - before
    try:
        (name,) = [p.name for p in (sample / "names").iterdir()]
        assert name in kept and any(k.endswith("_tmpl") for k in kept)
        with pg.connect(name) as conn:  # the test's writes are still there to inspect
            assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0
    finally:
        for k in kept:
            pg.drop_database(k)


def test_bad_seed_is_one_line(sample: Path, pg: PgServer) -> None:
    (sample / "test_bad.py").write_text(
        "import pytest\n\n@pytest.mark.ybrewind_seed('missing/dir')\ndef test_x(ybrewind_db):\n    pass\n"
    )
    before = databases(pg)
    proc = run_sample(sample, "test_bad.py", "--ybrewind-url", pg.url(), jobs="0")
    assert proc.returncode == 1
    assert "ybrewind: seed " in proc.stdout and "missing/dir does not exist" in proc.stdout
    assert "Traceback" not in proc.stdout
    assert databases(pg) == before


YCQL_TESTS = '''
import pytest


def add_row(session):
    session.execute("INSERT INTO kv (k, v) VALUES (3, 'from a callable')")


pytestmark = pytest.mark.ybrewind_seed("users_dump", "kv.cql", add_row)


@pytest.mark.parametrize("i", range(6))
def test_keyspace_sees_exactly_the_seed(ybrewind_keyspace, i):
    s = ybrewind_keyspace.session
    assert sorted(tuple(r) for r in s.execute("SELECT k, v FROM kv")) == [(1, "a"), (2, "b"), (3, "from a callable")]
    assert sorted(r[0] for r in s.execute("SELECT name FROM users")) == ["ada", "bob"]
    assert ybrewind_keyspace.url.endswith("/" + ybrewind_keyspace.name)
    s.execute("INSERT INTO kv (k, v) VALUES (100, 'written')")
    s.execute("DELETE FROM users WHERE id = 1")
    s.execute("CREATE TABLE scratch (x int PRIMARY KEY)")
    (__import__("pathlib").Path(__file__).parent / "names" / ybrewind_keyspace.name).touch()
'''


def test_ycql_sample_suite_on_the_simulator_xdist(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.support.cqlsim import start_in_thread
    from ybrewind.endpoints import YcqlEndpoint
    from ybrewind.ycql.dump import dump as ycql_dump
    from ybrewind.ycql.session import connect

    root = Path(tempfile.mkdtemp(prefix="ybrewind-ycql-sample-"))
    sim = start_in_thread()
    try:
        url = f"ycql://{sim.host}:{sim.port}"
        with connect(YcqlEndpoint.parse(url)) as conn:
            conn.execute("CREATE KEYSPACE src_ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'}")
            conn.execute("CREATE TABLE src_ks.users (id int PRIMARY KEY, name text)")
            conn.execute("INSERT INTO src_ks.users (id, name) VALUES (1, 'ada')")
            conn.execute("INSERT INTO src_ks.users (id, name) VALUES (2, 'bob')")
        ycql_dump(YcqlEndpoint.parse(f"{url}/src_ks"), root / "users_dump")
        (root / "kv.cql").write_text(
            "CREATE TYPE pt (x int);\nCREATE TABLE kv (k int PRIMARY KEY, v text, p frozen<pt>);\n"
            "INSERT INTO kv (k, v) VALUES (1, 'a');\nINSERT INTO kv (k, v) VALUES (2, 'b');\n"
        )
        (root / "names").mkdir()
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "test_cql.py").write_text(YCQL_TESTS)
        proc = run_sample(root, "--ybrewind-ycql-url", url)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "6 passed" in proc.stdout
        names = sorted(p.name for p in (root / "names").iterdir())
        assert len(names) == 6 and {n.split("_")[1] for n in names} == {"gw0", "gw1"}
        with connect(YcqlEndpoint.parse(url)) as conn:
            left = {r[0] for r in conn.query("SELECT keyspace_name FROM system_schema.keyspaces", [TEXT])}
        assert {k for k in left if k.startswith("ybt_")} == set()  # used and spare keyspaces all dropped
        assert "src_ks" in left
    finally:
        sim.stop()
        subprocess.run(["rm", "-rf", str(root)], check=True)
