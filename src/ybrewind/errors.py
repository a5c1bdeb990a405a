"""The exception hierarchy every user-facing failure goes through.

Each error carries a one-line message meant for a DBA at a shell: it names the object (file,
table, host) and never contains a password. The CLI prints ``ybrewind: error: <message>`` and
exits with ``exit_code``; library callers catch ``YbrewindError``.
"""

from __future__ import annotations


def one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line, shortened with "..." past ``limit`` characters (for quoting statements)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class YbrewindError(Exception):
    """Base class: a failure explained in one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the cause looked like

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(YbrewindError):
    """The request itself is wrong (bad option combination, bad time, bad URL)."""

    exit_code = 2


class ConnectError(YbrewindError):
    """The server could not be reached or refused us (host, auth, missing database)."""

    exit_code = 3


class DatabaseError(YbrewindError):
    """A statement failed on the server (permission, constraint, syntax)."""

    exit_code = 4


class DumpIntegrityError(YbrewindError):
    """A dump file, compressed script or archive object is missing, truncated, corrupt or of an
    unknown format. Raised by the checks that run before anything is loaded or restored."""

    exit_code = 5


class ScriptError(YbrewindError):
    """A SQL/CQL script cannot be split or contains something we cannot honor."""

    exit_code = 6


class TargetNotEmptyError(YbrewindError):
    """A load or restore was pointed at a database that already holds objects."""

    exit_code = 7


class StorageError(YbrewindError):
    """Local disk or object store failure (full disk, permission, S3 unavailable after retries)."""

    exit_code = 8


class RepositoryLockedError(StorageError):
    """Another process holds (or took over) the archive repository's lock."""
