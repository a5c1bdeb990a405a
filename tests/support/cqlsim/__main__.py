"""Command line: ``python -m tests.support.cqlsim --host 127.0.0.1 --port N [--cassandra]``.

Runs the simulator in the foreground and prints ``cqlsim listening on HOST:PORT`` once it accepts
connections (``--port 0`` picks a free port). Stop it with Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from .server import CqlSimServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.support.cqlsim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9042, help="0 picks a free port")
    parser.add_argument("--cassandra", action="store_true", help="present as Apache Cassandra, not YugabyteDB")
    parser.add_argument("--user", help="require PasswordAuthenticator login with this user")
    parser.add_argument("--password", default="", help="password for --user")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    credentials = (args.user, args.password) if args.user else None
    server = CqlSimServer(args.host, args.port, args.cassandra, credentials)
    await server.start()
    flavour = "Apache Cassandra" if args.cassandra else "YugabyteDB YCQL"
    print(f"cqlsim listening on {args.host}:{server.port} ({flavour})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
