"""Fault injection for tests: a misbehaving S3 in front of moto, and a small full filesystem.

``FaultProxy`` forwards HTTP requests to an upstream (moto's server) on 127.0.0.1 and serves
faults instead, driven by a schedule:

* ``faults``: a queue, one fault per request, consumed in order (then "ok");
* ``rules``: ``Rule(fault, method=..., path_contains=..., after=n, times=m)`` - let ``after``
  matching requests through, then inject ``fault`` into the next ``times`` matching ones
  (``times=None``: forever, a persistent outage);
* ``always``: one fault for every request not decided by the above.

Faults: "500"/"503" (an S3 error document: InternalError / SlowDown), "501" (NotImplemented),
"reset" (TCP RST instead of a response), "drop" (read half of the request body, then RST: a
connection lost mid-upload), "truncate" (half of the response body, then close). With
``reject_conditional``, PUT/DELETE requests carrying If-None-Match/If-Match get 501, like a store
without conditional writes. ``served`` records "<METHOD> <fault or ok>" per request.

``small_filesystem`` mounts a size-limited tmpfs (root only) and yields its path, or skips the
test with the reason when the environment cannot mount.
"""

from __future__ import annotations

import http.client
import os
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest


@dataclass
class Rule:
    fault: str
    method: str | None = None  # GET, PUT, POST...; None: any
    path_contains: str | None = None  # e.g. "/segments/"; None: any
    after: int = 0  # matching requests let through before the fault starts
    times: int | None = 1  # matching requests that get the fault; None: all of them
    hits: int = 0  # matching requests that got the fault so far

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


class FaultProxy:
    """Forwards HTTP requests to ``upstream``, serving the scheduled faults instead (see module doc)."""

    CODES: ClassVar[dict[str, str]] = {"500": "InternalError", "501": "NotImplemented", "503": "SlowDown"}
    HOP_BY_HOP: ClassVar[set[str]] = {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "proxy-connection",
        "content-length",
    }

    def __init__(
        self,
        upstream: str,
        faults: list[str] | None = None,
        *,
        rules: list[Rule] | None = None,
        reject_conditional: bool = False,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults = list(faults or [])
        self.rules = list(rules or [])
        self.always: str | None = None
        self.reject_conditional = reject_conditional
        self.served: list[str] = []
        self._mutex = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_any(self) -> None:
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def injected(self) -> list[str]:
        """The requests that got a fault."""
        return [s for s in self.served if not s.endswith(" ok")]

    def _fault_for(self, request: BaseHTTPRequestHandler) -> str:
        conditional = request.headers.get("If-None-Match") or request.headers.get("If-Match")
        with self._mutex:
            fault = None
            if self.reject_conditional and request.command in ("PUT", "DELETE") and conditional:
                fault = "501"
            elif self.faults:
                fault = self.faults.pop(0)
            else:
                for rule in self.rules:
                    if not rule.matches(request.command, request.path):
                        continue
                    if rule.after > 0:
                        rule.after -= 1
                        continue
                    if rule.times is None or rule.hits < rule.times:
                        rule.hits += 1
                        fault = rule.fault
                        break
            fault = fault or self.always or "ok"
            self.served.append(f"{request.command} {fault}")
        return fault

    @staticmethod
    def _reset(request: BaseHTTPRequestHandler) -> None:
        request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.close_connection = True

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        fault = self._fault_for(request)
        length = int(request.headers.get("Content-Length") or 0)
        if fault == "drop":
            request.rfile.read(length // 2)
            self._reset(request)
            return
        body = request.rfile.read(length) if length else b""
        if fault == "reset":
            self._reset(request)
            return
        if fault in self.CODES:
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{self.CODES[fault]}</Code>'
                "<Message>injected by the test proxy</Message></Error>"
            ).encode()
            request.send_response_only(int(fault))
            request.send_header("Content-Type", "application/xml")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
            return
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP_BY_HOP}
        connection.request(request.command, request.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        upstream_length = response.getheader("Content-Length")
        connection.close()
        request.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in self.HOP_BY_HOP:
                request.send_header(name, value)
        # HEAD responses announce the object's length without carrying it.
        request.send_header("Content-Length", upstream_length if request.command == "HEAD" else str(len(data)))
        request.end_headers()
        if request.command == "HEAD":
            return
        if fault == "truncate":
            request.wfile.write(data[: len(data) // 2])
            request.close_connection = True
            return
        request.wfile.write(data)


@contextmanager
def fault_proxy(upstream: str, **kwargs: Any) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, **kwargs)
    try:
        yield proxy
    finally:
        proxy.close()


# --------------------------------------------------------------------------------------------
# A full disk


def mount_unavailable_reason() -> str | None:
    """Why ``small_filesystem`` cannot work here (None: it can)."""
    if os.geteuid() != 0:
        return "mounting a size-limited tmpfs needs root"
    probe = Path(tempfile.mkdtemp(prefix="ybrewind-mountprobe-"))
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if done.returncode != 0:
            return f"cannot mount a tmpfs in this container: {done.stderr.decode().strip() or done.returncode}"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    except FileNotFoundError:
        return "no mount command"
    finally:
        probe.rmdir()


@contextmanager
def small_filesystem(size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a fresh directory under /tmp (world-writable, for postgres)."""
    reason = mount_unavailable_reason()
    if reason:
        pytest.skip(reason)
    mountpoint = Path(tempfile.mkdtemp(prefix="ybrewind-smallfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        mountpoint.rmdir()


def fill(directory: Path, leave: int = 0) -> Path:
    """Fill the filesystem of ``directory`` until at most ``leave`` bytes are free; returns the filler."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * 65536
        while True:
            free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
            if free <= leave:
                break
            try:
                f.write(chunk[: max(1, min(len(chunk), free - leave))])
                f.flush()
            except OSError:
                break
    return filler
