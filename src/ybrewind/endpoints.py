"""Connection endpoints: parse what the user typed into something we can connect to and display.

A YSQL/PostgreSQL endpoint is a ``postgresql://`` URL, a libpq ``key=value`` string, or nothing at
all, in which case libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, .pgpass,
PGSSLMODE...) decides, exactly as for psql. Passwords are never displayed: ``display()`` shows only
user@host:port/dbname, and connection errors are reduced to libpq's one-line reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ybrewind.errors import ConnectError, UsageError

APP_NAME = "ybrewind"


@dataclass(frozen=True)
class PgEndpoint:
    """A PostgreSQL-protocol endpoint (PostgreSQL or YugabyteDB YSQL)."""

    conninfo: str = ""

    @classmethod
    def parse(cls, text: str | None) -> PgEndpoint:
        text = (text or "").strip()
        if text.startswith(("ycql://", "cql://")):
            raise UsageError(f"{text.split('://')[0]}:// endpoints are YCQL; this command needs a postgresql:// URL")
        try:
            conninfo_to_dict(text)
        except psycopg.ProgrammingError as e:
            raise UsageError(f"invalid connection string: {_first_line(str(e))}") from None
        return cls(text)

    def params(self) -> dict[str, Any]:
        return conninfo_to_dict(self.conninfo)

    def with_dbname(self, dbname: str) -> PgEndpoint:
        return PgEndpoint(make_conninfo(self.conninfo, dbname=dbname))

    @property
    def dbname(self) -> str:
        p = self.params()
        return str(p.get("dbname") or os.environ.get("PGDATABASE") or self.user)

    @property
    def user(self) -> str:
        import getpass

        return str(self.params().get("user") or os.environ.get("PGUSER") or getpass.getuser())

    def display(self) -> str:
        """user@host:port/dbname, never the password."""
        p = self.params()
        host = p.get("host") or p.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
        port = p.get("port") or os.environ.get("PGPORT") or "5432"
        return f"{self.user}@{host}:{port}/{self.dbname}"

    def connect(self, *, autocommit: bool = True, replication: bool = False, **kwargs: Any) -> psycopg.Connection:
        """Open a connection, turning libpq failures into a one-line ConnectError."""
        extra: dict[str, Any] = {"application_name": APP_NAME, **kwargs}
        if replication:
            extra["replication"] = "database"
        try:
            return psycopg.connect(self.conninfo, autocommit=autocommit, **extra)
        except psycopg.OperationalError as e:
            raise ConnectError(f"cannot connect to {self.display()}: {libpq_reason(e)}") from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def libpq_reason(error: BaseException) -> str:
    """The informative part of a libpq connection error, on one line.

    libpq prefixes each attempted address ("connection to server at ... failed:"); the reason is
    what follows the last "failed:" on the most specific line.
    """
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    reasons = []
    for ln in lines:
        reason = ln.rsplit("failed:", 1)[-1].strip() if "failed:" in ln else ln
        if reason and reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons) or type(error).__name__
