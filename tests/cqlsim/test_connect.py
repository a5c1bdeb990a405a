"""Connecting with the real driver: handshake, system tables, presentation, auth, errors, CLI."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cassandra import AuthenticationFailed, InvalidRequest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.protocol import SyntaxException

from tests.support.cqlsim import SimHandle, start_in_thread

from .conftest import make_cluster

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_connect_reads_system_local(cluster: Cluster, session: Session, sim: SimHandle) -> None:
    local = session.execute("SELECT * FROM system.local WHERE key='local'").one()
    assert local.release_version == "3.9-SNAPSHOT"
    assert local.partitioner == "org.apache.cassandra.dht.Murmur3Partitioner"
    assert str(local.rpc_address) == sim.host
    assert cluster.metadata.partitioner.endswith("Murmur3Partitioner")
    assert [str(h.endpoint.address) for h in cluster.metadata.all_hosts()] == [sim.host]
    assert session.execute("SELECT * FROM system.peers").one() is None


def test_yugabyte_detection_signal(session: Session) -> None:
    local = session.execute("SELECT release_version FROM system.local").one()
    assert local.release_version == "3.9-SNAPSHOT"
    session.execute("SELECT keyspace_name, table_name FROM system.partitions")  # exists on YB only
    assert "system" in session.cluster.metadata.keyspaces


def test_cassandra_presentation() -> None:
    with start_in_thread(cassandra=True) as sim:
        cluster = make_cluster(sim)
        try:
            session = cluster.connect()
            local = session.execute("SELECT release_version, cql_version FROM system.local").one()
            assert local.release_version == "4.0.11"
            with pytest.raises(InvalidRequest, match="unconfigured table partitions"):
                session.execute("SELECT * FROM system.partitions")
            session.execute("CREATE KEYSPACE c WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
            session.execute("CREATE TABLE c.t (k int PRIMARY KEY, v text)")
            with pytest.raises(InvalidRequest, match="partition_hash"):
                session.execute("SELECT partition_hash(k) FROM c.t")
            with pytest.raises(InvalidRequest, match="jsonb"):
                session.execute("CREATE TABLE c.j (k int PRIMARY KEY, v jsonb)")
            assert session.execute("SELECT token(k) FROM c.t").column_names == ["system.token(k)"]
        finally:
            cluster.shutdown()


def test_driver_negotiates_down_to_v4(sim: SimHandle) -> None:
    cluster = Cluster([sim.host], port=sim.port)  # no protocol_version: the driver starts higher
    try:
        cluster.connect()
        assert cluster.protocol_version == 4
    finally:
        cluster.shutdown()


def test_default_load_balancing_routes_prepared_statements(sim: SimHandle) -> None:
    """With the driver's default TokenAware policy the token map built from system.local is used."""
    cluster = Cluster([sim.host], port=sim.port, protocol_version=4)
    try:
        session = cluster.connect()
        session.execute("CREATE KEYSPACE routed WITH replication = {'class': 'SimpleStrategy', "
                        "'replication_factor': 1}")
        session.execute("CREATE TABLE routed.t (a int, b text, v int, PRIMARY KEY ((a, b)))")
        insert = session.prepare("INSERT INTO routed.t (a, b, v) VALUES (?, ?, ?)")
        for i in range(20):
            session.execute(insert, [i, str(i), i])
        replicas = cluster.metadata.get_replicas("routed", insert.bind([1, "1", 1]).routing_key)
        assert [str(h.endpoint.address) for h in replicas] == [sim.host]
        assert session.execute("SELECT count(*) FROM routed.t").one().count == 20
    finally:
        cluster.shutdown()


def test_password_authentication() -> None:
    with start_in_thread(credentials=("admin", "s3cret")) as sim:
        good = make_cluster(sim, auth_provider=PlainTextAuthProvider("admin", "s3cret"))
        try:
            assert good.connect().execute("SELECT key FROM system.local").one().key == "local"
        finally:
            good.shutdown()
        bad = make_cluster(sim, auth_provider=PlainTextAuthProvider("admin", "wrong"))
        try:
            with pytest.raises(NoHostAvailable) as info:
                bad.connect()
            errors = list(info.value.errors.values())
            assert isinstance(errors[0], AuthenticationFailed)
            assert "Provided username admin and/or password are incorrect" in str(errors[0])
        finally:
            bad.shutdown()


def test_unsupported_statement_is_a_syntax_error(session: Session) -> None:
    with pytest.raises(SyntaxException, match="ALTER TABLE"):
        session.execute("ALTER TABLE ks.t ADD x int")
    with pytest.raises(SyntaxException, match="CREATE MATERIALIZED VIEW"):
        session.execute("CREATE MATERIALIZED VIEW v AS SELECT * FROM t")
    with pytest.raises(SyntaxException, match="GRANT"):
        session.execute("GRANT SELECT ON ALL KEYSPACES TO bob")
    with pytest.raises(SyntaxException, match="ORDER BY"):
        session.execute("SELECT * FROM system.local ORDER BY key")


def test_unknown_keyspace_and_table(session: Session) -> None:
    with pytest.raises(InvalidRequest, match="Keyspace 'nope' does not exist"):
        session.execute("SELECT * FROM nope.t")
    with pytest.raises(InvalidRequest, match="Keyspace 'nope' does not exist"):
        session.execute("USE nope")
    with pytest.raises(InvalidRequest, match="unconfigured table missing"):
        session.execute("SELECT * FROM system.missing")


def test_unsupported_protocol_version_raw_socket(sim: SimHandle) -> None:
    with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
        sock.sendall(struct.pack(">BBhBi", 0x05, 0, 1, 0x05, 0))
        header = sock.recv(9)
        version, _, stream, opcode, length = struct.unpack(">BBhBi", header)
        body = b""
        while len(body) < length:
            body += sock.recv(length - len(body))
    assert (version, stream, opcode) == (0x84, 1, 0x00)
    code, msg_len = struct.unpack(">iH", body[:6])
    assert code == 0x000A
    assert "unsupported protocol version" in body[6 : 6 + msg_len].decode()


def test_cli_prints_listening() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.cqlsim", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening" in line, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        port = int(line.split()[3].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        proc.terminate()
        proc.wait(timeout=10)
