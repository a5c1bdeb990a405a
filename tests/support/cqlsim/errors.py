"""Error codes of the CQL native protocol v4 and the exception cqlsim raises to send an ERROR frame."""

from __future__ import annotations

SERVER_ERROR = 0x0000
PROTOCOL_ERROR = 0x000A
BAD_CREDENTIALS = 0x0100
SYNTAX_ERROR = 0x2000
UNAUTHORIZED = 0x2100
INVALID = 0x2200
CONFIG_ERROR = 0x2300
ALREADY_EXISTS = 0x2400
UNPREPARED = 0x2500


class CqlError(Exception):
    """Raised anywhere in cqlsim; the server turns it into an ERROR frame.

    ``keyspace``/``table`` are sent for ALREADY_EXISTS, ``prepared_id`` for UNPREPARED.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        keyspace: str = "",
        table: str = "",
        prepared_id: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.keyspace = keyspace
        self.table = table
        self.prepared_id = prepared_id


def invalid(message: str) -> CqlError:
    return CqlError(INVALID, message)
