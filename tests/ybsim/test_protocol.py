"""Unit tests of the endpoint's message framing (pure: bytes in, bytes out)."""

from __future__ import annotations

import asyncio

from tests.support.ybsim import protocol as pr


def test_startup_packet_round_trip() -> None:
    raw = pr.startup_packet({"user": "yugabyte", "database": "db", "replication": "database"})

    async def read() -> pr.Startup:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        return await pr.read_startup(reader)

    startup = asyncio.run(read())
    assert startup.code == pr.PROTOCOL_3 and startup.raw == raw
    assert startup.params == {"user": "yugabyte", "database": "db", "replication": "database"}


def test_messages_and_error_fields() -> None:
    async def read(data: bytes) -> tuple[bytes, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        return await pr.read_message(reader)

    kind, body = asyncio.run(read(pr.error_response("boom", "0A000", hint="try again")))
    assert kind == b"E"
    fields = pr.error_fields(body)
    assert (fields["S"], fields["C"], fields["M"], fields["H"]) == ("ERROR", "0A000", "boom", "try again")
    kind, body = asyncio.run(read(pr.data_row([b"a", None, b""])))
    assert kind == b"D" and pr.parse_data_row(body) == [b"a", None, b""]
    assert pr.command_tag(asyncio.run(read(pr.command_complete("SET")))[1]) == b"SET"


def test_parse_message_round_trip() -> None:
    msg = pr.build_parse(b"s1", b"SELECT $1", b"\x00\x01\x00\x00\x00\x17")
    name, query, rest = pr.parse_parse(msg[5:])
    assert (name, query, rest) == (b"s1", b"SELECT $1", b"\x00\x01\x00\x00\x00\x17")
