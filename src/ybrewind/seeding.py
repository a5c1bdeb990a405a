"""Seeded, isolated databases (and YCQL keyspaces) for tests, handed out from pools filled in the background.

A seed is a list of items applied in order to a fresh database: dump directories and ``.sql`` /
``.sql.zst`` scripts (through ``ybrewind.ysql.load.load``) and callables taking an open psycopg
connection. ``build_template`` does that once; ``CopyPool`` then keeps a few ready copies of the
template (``CREATE DATABASE ... TEMPLATE``), made by a background thread on its own connection
while tests run, so taking one costs a queue pop instead of a copy. Spent copies are dropped by the
same thread. A server that answers a template copy with "feature not supported" gets its copies
built by running the seed again instead, still in the background.

YCQL has no template copy: ``KeyspacePool`` builds each keyspace by running the seed (YCQL dump
directories, ``.cql`` scripts, callables taking a driver Session), in the same kind of background
thread, and drops used keyspaces with everything in them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from ybrewind.endpoints import PgEndpoint, YcqlEndpoint
from ybrewind.errors import DatabaseError, UsageError
from ybrewind.ycql.literals import quote_ident
from ybrewind.ycql.load import LoadOptions as YcqlLoadOptions
from ybrewind.ycql.load import load as ycql_load
from ybrewind.ycql.session import CqlConnection
from ybrewind.ycql.session import connect as cql_connect
from ybrewind.ysql.load import LoadOptions, db_error, load

SeedItem = Path | Callable[[psycopg.Connection], object]
CqlSeedItem = Path | Callable[[Any], object]  # callables get a cassandra-driver Session bound to the keyspace


def check_items(items: Sequence[SeedItem | CqlSeedItem], api: str = "ysql") -> None:
    """Refuse, before anything is created, a seed item that cannot be loaded (YSQL database or YCQL keyspace)."""
    script, dump_kind = (".cql", "a YCQL dump directory") if api == "ycql" else (".sql", "a dump directory")
    for item in items:
        if callable(item):
            continue
        path = Path(item)
        if not path.exists():
            raise UsageError(f"seed {path} does not exist")
        if path.is_file() and not path.name.endswith((script, script + ".zst")):
            raise UsageError(f"seed {path} is neither {dump_kind} nor a {script} script")


def apply_seed(target: PgEndpoint, items: Sequence[SeedItem]) -> None:
    """Apply the seed items, in order, to the existing database ``target``."""
    for item in items:
        if callable(item):
            with target.connect(autocommit=False) as conn:
                item(conn)
                conn.commit()
        else:
            load(Path(item), target, LoadOptions(check_empty=False))


def create_database(conn: psycopg.Connection, name: str, template: str = "template0") -> None:
    stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    try:
        conn.execute(stmt)
    except psycopg.Error as e:
        raise db_error(e, f"creating database {name}") from None


def drop_database(conn: psycopg.Connection, name: str) -> None:
    try:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error as e:
        raise db_error(e, f"dropping database {name}") from None


def build_template(server: PgEndpoint, name: str, items: Sequence[SeedItem]) -> None:
    """Create database ``name`` holding the seed, then close it to connections so copies never wait."""
    check_items(items)
    with server.connect() as conn:
        create_database(conn, name)
        try:
            apply_seed(server.with_dbname(name), items)
            # A template with a session on it cannot be copied; refusing connections keeps a stray
            # one (an application's pool, a psql left open) from breaking every later copy.
            # YugabyteDB accepts it too: yugabyte-db src/yb/integration-tests/upgrade-tests/
            # ysql_major_upgrade-test.cc, MultipleDatabases ("We support creating / altering databases
            # to disallow connections"); not run against YugabyteDB here.
            try:
                conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
            except psycopg.Error as e:
                raise db_error(e, f"closing template {name} to connections") from None
        except BaseException:
            drop_database(conn, name)
            raise


class ReadyPool:
    """Objects (databases, keyspaces) made ahead and dropped by a background thread with its own connection.

    ``take`` returns the name of a fresh object (waiting only when the pool is empty); ``release``
    hands a used one back for dropping. ``close`` stops the thread and drops every object still
    held, ready or pending. A failure in the thread is raised by the next ``take``. Subclasses say
    how to connect (``_connect``, a context manager), make and drop; they set their own attributes
    before calling ``super().__init__``, which starts the thread.
    """

    what = "object"

    def __init__(self, prefix: str, size: int) -> None:
        if size < 1:
            raise UsageError("the pool needs room for at least one ready copy")
        self.prefix = prefix
        self.size = size
        self._ready: deque[str] = deque()
        self._to_drop: deque[str] = deque()
        self._counter = 0
        self._error: BaseException | None = None
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"ybrewind-pool-{prefix}", daemon=True)
        self._thread.start()

    def _connect(self) -> Any:
        raise NotImplementedError

    def _make(self, conn: Any, name: str) -> None:
        raise NotImplementedError

    def _drop(self, conn: Any, name: str) -> None:
        raise NotImplementedError

    # -- used by tests ----------------------------------------------------------------------
    def take(self, timeout: float = 600.0) -> str:
        started = time.monotonic()
        with self._cond:
            while not self._ready:
                if self._error is not None:
                    raise self._error
                if self._closing:
                    raise DatabaseError(f"the pool {self.prefix} is closed")
                if not self._cond.wait(timeout=max(0.0, started + timeout - time.monotonic())):
                    raise DatabaseError(f"no {self.what} of pool {self.prefix} became ready within {timeout:.0f}s")
            name = self._ready.popleft()
            self._cond.notify_all()
        return name

    def release(self, name: str, keep: bool = False) -> None:
        """Schedule a used copy for dropping (or forget it, with ``keep``)."""
        if keep:
            return
        with self._cond:
            self._to_drop.append(name)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread, then drop the copies never handed out and those released."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        leftover = list(self._ready) + list(self._to_drop)
        self._ready.clear()
        self._to_drop.clear()
        if leftover:
            with self._connect() as conn:
                for name in leftover:
                    self._drop(conn, name)

    # -- the background thread --------------------------------------------------------------
    def _next_job(self) -> tuple[str, str] | None:
        """Wait for work: ("make", name) while the pool is short, else ("drop", name); None when closing."""
        with self._cond:
            while True:
                if self._closing:
                    return None
                if len(self._ready) < self.size:
                    self._counter += 1
                    return "make", f"{self.prefix}_{self._counter}"
                if self._to_drop:
                    return "drop", self._to_drop.popleft()
                self._cond.wait()

    def _run(self) -> None:
        try:
            with self._connect() as conn:
                while (job := self._next_job()) is not None:
                    kind, name = job
                    if kind == "drop":
                        self._drop(conn, name)
                        continue
                    self._make(conn, name)
                    with self._cond:
                        self._ready.append(name)
                        self._cond.notify_all()
        except BaseException as e:  # handed to the waiting test instead of dying silently
            with self._cond:
                self._error = e
                self._cond.notify_all()



class CopyPool(ReadyPool):
    """Ready copies of one template database (``CREATE DATABASE ... TEMPLATE``)."""

    what = "database"

    def __init__(
        self,
        server: PgEndpoint,
        template: str,
        prefix: str,
        seed: Sequence[SeedItem],
        size: int = 2,
        copy_template: bool = True,
    ) -> None:
        self.server = server
        self.template = template
        self.seed = list(seed)
        # False (given, or once the server refused a template copy): build each copy by running the seed.
        self.copy_template = copy_template
        super().__init__(prefix, size)

    def _connect(self) -> psycopg.Connection:
        return self.server.connect()

    def _drop(self, conn: psycopg.Connection, name: str) -> None:
        drop_database(conn, name)

    def _make(self, conn: psycopg.Connection, name: str) -> None:
        if self.copy_template:
            try:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(self.template))
                )
                return
            except psycopg.errors.FeatureNotSupported:
                self.copy_template = False
            except psycopg.Error as e:
                raise db_error(e, f"copying {self.template} to {name}") from None
        create_database(conn, name)
        try:
            apply_seed(self.server.with_dbname(name), self.seed)
        except BaseException:
            drop_database(conn, name)
            raise


# -- YCQL keyspaces ------------------------------------------------------------------------------



def seed_keyspace(server: YcqlEndpoint, conn: CqlConnection, name: str, items: Sequence[CqlSeedItem]) -> None:
    """Create keyspace ``name`` and apply the seed items to it, in order."""
    conn.execute(
        f"CREATE KEYSPACE {quote_ident(name)} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': '1'}}",
        what=f"creating keyspace {name}",
    )
    for item in items:
        if callable(item):
            session = conn.cluster.connect(name)
            try:
                item(session)
            finally:
                session.shutdown()
        else:
            ycql_load(Path(item), server.with_keyspace(name), YcqlLoadOptions(create=True))


class KeyspacePool(ReadyPool):
    """Ready keyspaces holding a YCQL seed. CQL has no template copy: each is built by running the seed."""

    what = "keyspace"

    def __init__(self, server: YcqlEndpoint, prefix: str, seed: Sequence[CqlSeedItem], size: int = 2) -> None:
        check_items(seed, "ycql")
        self.server = server.with_keyspace(None)
        self.seed = list(seed)
        super().__init__(prefix, size)

    def _connect(self) -> CqlConnection:
        return cql_connect(self.server)

    def _drop(self, conn: CqlConnection, name: str) -> None:
        conn.drop_keyspace(name)

    def _make(self, conn: CqlConnection, name: str) -> None:
        try:
            seed_keyspace(self.server, conn, name, self.seed)
        except BaseException:
            conn.drop_keyspace(name)
            raise
