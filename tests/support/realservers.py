"""YBREWIND_TEST_REAL=docker: a real YugabyteDB and an Apache Cassandra in Docker (testcontainers).

The real-server tests (tests/integration/test_yugabyte.py, the ``real`` CQL parameter of
tests/ycql) read YBREWIND_YSQL_URL / YBREWIND_YCQL_HOSTS; this module starts the containers and
sets those variables, or says in one line why it cannot (then those tests are skipped with it).

YugabyteDB flags (yugabyted ``--tserver_flags`` / ``--master_flags``):
- ``ysql_yb_enable_implicit_dynamic_tables_logical_replication=false``: the v2025.1 setting in
  docs .../using-logical-replication/setup-configuration.md, "Essential Configuration Steps";
- ``cdcsdk_publication_list_refresh_interval_secs=5``: tables created while archiving join the
  stream within seconds instead of 15 minutes (advanced-topic.md, "Required settings");
- ``enable_db_clone=true`` (master): ``CREATE DATABASE ... TEMPLATE ... AS OF`` fails without it
  ("FLAGS_enable_db_clone is disabled", src/yb/master clone code); a native clone also needs a
  snapshot schedule on the source database, which tests create.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

YB_IMAGE = os.environ.get("YBREWIND_YB_IMAGE", "yugabytedb/yugabyte:2025.1.0.0-b168")
CASSANDRA_IMAGE = os.environ.get("YBREWIND_CASSANDRA_IMAGE", "cassandra:4.1")
YB_TSERVER_FLAGS = {
    "ysql_yb_enable_implicit_dynamic_tables_logical_replication": "false",
    "cdcsdk_publication_list_refresh_interval_secs": "5",
}
YB_MASTER_FLAGS = {"enable_db_clone": "true"}
SKIP_VAR = "YBREWIND_REAL_SKIP_REASON"


def unavailable_reason() -> str | None:
    """Why no container can be started here, or None."""
    try:
        import docker  # testcontainers' dependency
        import testcontainers  # noqa: F401
    except ImportError:
        return "YBREWIND_TEST_REAL=docker needs the testcontainers package (pip install -e '.[test]')"
    try:
        docker.from_env().ping()
    except Exception as e:
        return f"YBREWIND_TEST_REAL=docker: no Docker engine reachable ({type(e).__name__})"
    return None


def _flags(flags: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in flags.items())


def _wait_sql(url: str, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@contextmanager
def yugabyte(timeout: float = 300.0) -> Iterator[dict[str, str]]:
    """A one-node YugabyteDB (yugabyted): YSQL URL and YCQL host:port."""
    from testcontainers.core.container import DockerContainer

    command = (
        "bin/yugabyted start --background=false "
        f"--tserver_flags={_flags(YB_TSERVER_FLAGS)} --master_flags={_flags(YB_MASTER_FLAGS)}"
    )
    container = DockerContainer(YB_IMAGE).with_command(command).with_exposed_ports(5433, 9042)
    container.start()
    try:
        host = container.get_container_host_ip()
        url = f"postgresql://yugabyte@{host}:{container.get_exposed_port(5433)}/yugabyte"
        _wait_sql(url, timeout)
        yield {"YBREWIND_YSQL_URL": url, "YB_YCQL": f"{host}:{container.get_exposed_port(9042)}"}
    finally:
        container.stop()


@contextmanager
def cassandra(timeout: float = 300.0) -> Iterator[str]:
    """Apache Cassandra: host:port of its native protocol."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(CASSANDRA_IMAGE).with_exposed_ports(9042)
    container.start()
    try:
        wait_for_logs(container, "Starting listening for CQL clients", timeout=timeout)
        yield f"{container.get_container_host_ip()}:{container.get_exposed_port(9042)}"
    finally:
        container.stop()


def start(stack: ExitStack) -> dict[str, Any]:
    """Start both servers (closed with ``stack``) and set the variables the tests read.

    YBREWIND_YCQL_HOSTS points at YugabyteDB's YCQL, or at Cassandra with
    YBREWIND_TEST_REAL_CQL=cassandra (the CQL tests take one server per run)."""
    reason = unavailable_reason()
    if reason:
        os.environ[SKIP_VAR] = reason
        return {}
    yb = stack.enter_context(yugabyte())
    cql = stack.enter_context(cassandra())
    env = {
        "YBREWIND_YSQL_URL": yb["YBREWIND_YSQL_URL"],
        "YBREWIND_YCQL_HOSTS": cql if os.environ.get("YBREWIND_TEST_REAL_CQL") == "cassandra" else yb["YB_YCQL"],
    }
    os.environ.update(env)
    return env
