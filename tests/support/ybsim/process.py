"""Run the endpoint as a child process for tests: start, wait for its ``listening`` line, stop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ybrewind.endpoints import PgEndpoint

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Ybsim:
    host: str
    port: int
    user: str
    log: list[str]

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def endpoint(self, dbname: str = "postgres") -> PgEndpoint:
        return PgEndpoint.parse(self.url(dbname))

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self, name: str, colocated: bool = False) -> str:
        with self.connect() as conn:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if colocated:
                stmt += sql.SQL(" WITH COLOCATION = true")
            conn.execute(stmt)
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def running(upstream: str, *flags: str, timeout: float = 30.0) -> Iterator[Ybsim]:
    """Start ``python -m tests.support.ybsim`` on a free port in front of ``upstream``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.ybsim", "--upstream", upstream, "--host", "127.0.0.1", "--port", "0",
         *flags],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.stdout is not None
    log: list[str] = []
    port = None
    deadline = time.monotonic() + timeout
    while port is None:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"ybsim exited before listening: {''.join(log)}")
        log.append(line)
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if m:
            port = int(m.group(1))
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("ybsim did not start")

    def drain() -> None:  # keep reading so the child never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)

    threading.Thread(target=drain, daemon=True).start()
    user = re.match(r"postgresql://([^@:/]+)", upstream)
    try:
        yield Ybsim("127.0.0.1", port, user.group(1) if user else "postgres", log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
