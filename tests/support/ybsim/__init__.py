"""ybsim: a YugabyteDB-YSQL-flavoured PostgreSQL-protocol endpoint in front of a PostgreSQL 15.

Modules by job: ``protocol`` (message framing), ``sqlrewrite`` (SQL text), ``replication``
(replication commands, LSNs, the pgoutput stream), ``catalog`` (the yb_* functions and catalog
installed upstream), ``snapshots`` (what serves yb_read_time), ``server`` (the asyncio proxy).
See README.md for what is emulated and where each behaviour comes from.
"""
