"""``python -m tests.support.ybsim --upstream postgresql://USER@HOST:PORT --host H --port N``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from tests.support.ybsim.server import Options, ProxyServer


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.support.ybsim", description=__doc__)
    p.add_argument("--upstream", required=True, help="postgresql://SUPERUSER@HOST:PORT of the PostgreSQL 15 behind")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5433, help="0 picks a free port (printed on the listening line)")
    p.add_argument("--history-seconds", type=float, default=60.0, help="how far back yb_read_time can read")
    p.add_argument("--snapshot-interval", type=float, default=0.25, help="resolution of yb_read_time")
    p.add_argument(
        "--publication-refresh-seconds", type=float, default=900.0,
        help="YB flag cdcsdk_publication_list_refresh_interval_secs: when new tables join a slot's stream",
    )
    p.add_argument(
        "--default-replica-identity", default="CHANGE", choices=["CHANGE", "DEFAULT", "FULL", "NOTHING"],
        help="YB flag ysql_yb_default_replica_identity: the identity new tables get",
    )
    p.add_argument(
        "--enable-truncate-cdcsdk-table", action="store_true",
        help="YB flag enable_truncate_cdcsdk_table: TRUNCATE of a streamed table allowed while a slot exists",
    )
    a = p.parse_args()
    options = Options(
        a.upstream, a.host, a.port, snapshot_interval=a.snapshot_interval, history_seconds=a.history_seconds,
        publication_refresh_seconds=a.publication_refresh_seconds, default_replica_identity=a.default_replica_identity,
        enable_truncate_cdcsdk_table=a.enable_truncate_cdcsdk_table,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(ProxyServer(options).serve())


if __name__ == "__main__":
    main()
