"""Fixtures: one simulator per presentation (YugabyteDB / Cassandra) per test module, real driver sessions."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import RoundRobinPolicy

from tests.support.cqlsim import SimHandle, start_in_thread

_names = itertools.count()


def make_cluster(sim: SimHandle, **kwargs: object) -> Cluster:
    """The driver settings product code should use: protocol v4 and an explicit load-balancing policy."""
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy())
    return Cluster([sim.host], port=sim.port, protocol_version=4,
                   execution_profiles={EXEC_PROFILE_DEFAULT: profile}, **kwargs)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with start_in_thread() as handle:
        yield handle


@pytest.fixture(scope="module")
def cluster(sim: SimHandle) -> Iterator[Cluster]:
    cluster = make_cluster(sim)
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def session(cluster: Cluster) -> Session:
    return cluster.connect()


@pytest.fixture
def ks(session: Session) -> str:
    """A fresh keyspace for one test, made the session's current keyspace."""
    name = f"ks{next(_names)}"
    session.execute(f"CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    session.set_keyspace(name)
    return name


@pytest.fixture
def rows(session: Session) -> Callable[..., list]:
    """rows(query, params=None, **kw) -> list of result rows."""

    def run(query: object, params: object = None, **kwargs: object) -> list:
        return list(session.execute(query, params, **kwargs))

    return run
