"""PostgreSQL frontend/backend protocol v3 framing: read, build and take apart messages.

Only what the emulator needs: the untyped startup packet (StartupMessage, SSLRequest,
GSSENCRequest, CancelRequest), typed messages (one type byte, an int32 length that counts itself,
the body), and builders for the few backend messages it synthesises.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608

_I32 = struct.Struct("!i")


@dataclass(frozen=True)
class Startup:
    """The first packet of a connection."""

    code: int
    body: bytes  # after the length and code
    raw: bytes  # the whole packet, to forward unchanged

    @property
    def params(self) -> dict[str, str]:
        parts = self.body.split(b"\0")
        out = {}
        for key, value in zip(parts[0::2], parts[1::2], strict=False):
            if key:
                out[key.decode()] = value.decode()
        return out


async def read_startup(reader: asyncio.StreamReader) -> Startup:
    head = await reader.readexactly(8)
    length, code = struct.unpack("!ii", head)
    if length < 8 or length > 10_000:
        raise ConnectionError(f"bad startup packet length {length}")
    body = await reader.readexactly(length - 8)
    return Startup(code, body, head + body)


def startup_packet(params: dict[str, str]) -> bytes:
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!ii", 8 + len(body), PROTOCOL_3) + body


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(type byte, body) of the next typed message."""
    head = await reader.readexactly(5)
    (length,) = _I32.unpack_from(head, 1)
    if length < 4:
        raise ConnectionError(f"bad message length {length}")
    return head[:1], await reader.readexactly(length - 4)


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


def cstring(value: str | bytes) -> bytes:
    return (value.encode() if isinstance(value, str) else value) + b"\0"


def read_cstring(body: bytes, offset: int = 0) -> tuple[bytes, int]:
    end = body.index(b"\0", offset)
    return body[offset:end], end + 1


def error_response(
    text: str, code: str = "XX000", severity: str = "ERROR", hint: str | None = None, detail: str | None = None
) -> bytes:
    fields = b"S" + cstring(severity) + b"V" + cstring(severity) + b"C" + cstring(code) + b"M" + cstring(text)
    if detail:
        fields += b"D" + cstring(detail)
    if hint:
        fields += b"H" + cstring(hint)
    return message(b"E", fields + b"\0")


def error_fields(body: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse/NoticeResponse body, keyed by their one-letter code."""
    out: dict[str, str] = {}
    offset = 0
    while offset < len(body) and body[offset] != 0:
        code = chr(body[offset])
        value, offset = read_cstring(body, offset + 1)
        out[code] = value.decode(errors="replace")
    return out


def command_complete(tag: str | bytes) -> bytes:
    return message(b"C", cstring(tag))


def command_tag(body: bytes) -> bytes:
    return body.rstrip(b"\0")


def ready_for_query(status: bytes = b"I") -> bytes:
    return message(b"Z", status)


def row_description(names: list[str], type_oid: int = 25) -> bytes:
    body = struct.pack("!h", len(names))
    for name in names:
        body += cstring(name) + struct.pack("!ihihih", 0, 0, type_oid, -1, -1, 0)
    return message(b"T", body)


def data_row(values: list[bytes | None]) -> bytes:
    body = struct.pack("!h", len(values))
    for v in values:
        body += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
    return message(b"D", body)


def parse_data_row(body: bytes) -> list[bytes | None]:
    (count,) = struct.unpack_from("!h", body)
    offset = 2
    out: list[bytes | None] = []
    for _ in range(count):
        (n,) = struct.unpack_from("!i", body, offset)
        offset += 4
        if n < 0:
            out.append(None)
        else:
            out.append(body[offset : offset + n])
            offset += n
    return out


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstring(name) + cstring(value))


def parse_parse(body: bytes) -> tuple[bytes, bytes, bytes]:
    """Parse message: (statement name, query text, the rest: parameter type oids)."""
    name, offset = read_cstring(body)
    query, offset = read_cstring(body, offset)
    return name, query, body[offset:]


def build_parse(name: bytes, query: bytes, rest: bytes) -> bytes:
    return message(b"P", name + b"\0" + query + b"\0" + rest)
