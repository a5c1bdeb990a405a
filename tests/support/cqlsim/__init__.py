"""cqlsim: an in-process CQL native protocol v4 server simulating YugabyteDB YCQL (or Apache Cassandra).

ybrewind's YCQL code is tested against it with the real (yb-)cassandra-driver, because no Cassandra or
YugabyteDB server can run where the tests run. It keeps all data in memory and implements only the
CQL that ybrewind and its tests use; anything else fails with a protocol ERROR (0x2000 syntax error
or 0x2200 invalid) naming the unsupported statement or clause.

Modules: ``errors`` (error codes), ``cql`` (tokenizer + parser -> AST), ``datatypes`` (types, codec,
literals, ordering), ``storage`` (schema and cells with timestamps/TTLs; semantics documented there),
``system_tables`` (system.local/peers, system_schema, system.partitions), ``executor`` (statement
execution and paging), ``protocol`` (frames and message bodies), ``server`` (asyncio server,
``start_in_thread``), ``__main__`` (``python -m tests.support.cqlsim --port N [--cassandra]``).

Detecting which database a session talks to (the product's signal): YugabyteDB presents
``release_version = '3.9-SNAPSHOT'`` in system.local and has a ``system.partitions`` table (and the
``partition_hash()`` function and ``jsonb`` type); Apache Cassandra presents ``release_version =
'4.0.11'`` and ``SELECT ... FROM system.partitions`` fails with 0x2200 "unconfigured table partitions".

Driver settings: ``Cluster([host], port=port, protocol_version=4)`` is all that is needed. Pin
protocol_version=4 (cqlsim only speaks v4; otherwise the driver negotiates down from v66 with three
failed attempts and warnings) and pass an explicit load-balancing policy (e.g. an ExecutionProfile with
``RoundRobinPolicy()`` or ``TokenAwarePolicy(DCAwareRoundRobinPolicy())``) to silence the driver's
"no load_balancing_policy" warning; the simulated node is in data center ``datacenter1``, rack ``rack1``.

In tests: ``with start_in_thread() as sim: ...`` gives ``sim.host``/``sim.port``; ``sim.clock.advance(s)``
moves the server clock forward (TTL expiry without sleeping); ``sim.server`` exposes the catalog.
"""

from .server import CqlSimServer, SimHandle, start_in_thread
from .storage import Clock

__all__ = ["Clock", "CqlSimServer", "SimHandle", "start_in_thread"]
