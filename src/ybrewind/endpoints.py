"""Connection endpoints: parse what the user typed into something we can connect to and display.

A YSQL/PostgreSQL endpoint is a ``postgresql://`` URL, a libpq ``key=value`` string, or nothing at
all, in which case libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, .pgpass,
PGSSLMODE...) decides, exactly as for psql. Passwords are never displayed: ``display()`` shows only
user@host:port/dbname, and connection errors are reduced to libpq's one-line reason.

A YCQL/Cassandra endpoint is ``ycql://[user[:password]@]host[:port][,host2[:port]...][/KEYSPACE]``
(``cql://`` is accepted too), with options as query parameters (``?ssl=true&ssl_ca=ca.pem``). The
user, password and TLS settings may instead come from ``YCQL_USER``, ``YCQL_PASSWORD``,
``YCQL_SSL``, ``YCQL_SSL_CA``, ``YCQL_SSL_CERT``, ``YCQL_SSL_KEY`` and ``YCQL_SSL_VERIFY``
(the URL wins). ``display()`` shows ``user@host:port,.../keyspace``, never the password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ybrewind.errors import ConnectError, UsageError

APP_NAME = "ybrewind"
# Settings the text form of a value depends on, pinned where ybrewind reads values as text (COPY in
# dumps, pgoutput in the archiver), as pg_dump and PostgreSQL's apply worker do (PostgreSQL 15
# pg_dump.c setup_connection; libpqwalreceiver.c libpqrcv_connect): the source's defaults
# (DateStyle 'SQL, DMY', sql_standard intervals...) must not change what a dump or an archive holds.
TEXT_SETTINGS_OPTIONS = "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 -c bytea_output=hex"


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

    def with_pinned_text_settings(self, *, utc: bool = False) -> PgEndpoint:
        """This endpoint with ``TEXT_SETTINGS_OPTIONS`` added to the user's own options (URL or PGOPTIONS);
        ``utc`` pins TimeZone too, for text that is compared across servers (timestamptz)."""
        own = self.params().get("options") or os.environ.get("PGOPTIONS", "")
        pinned = TEXT_SETTINGS_OPTIONS + (" -c timezone=UTC" if utc else "")
        return PgEndpoint(make_conninfo(self.conninfo, options=f"{own} {pinned}".strip()))

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


YCQL_SCHEMES = ("ycql://", "cql://")
YCQL_DEFAULT_PORT = 9042
_TRUE = ("1", "true", "yes", "on", "require", "required")
_FALSE = ("0", "false", "no", "off", "disable", "none", "")


def is_ycql_url(text: str | None) -> bool:
    return bool(text) and str(text).strip().lower().startswith(YCQL_SCHEMES)


def _flag(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise UsageError(f"{name}={value!r} is not a boolean (use true or false)")


@dataclass(frozen=True)
class YcqlEndpoint:
    """A CQL native protocol endpoint (YugabyteDB YCQL or Apache Cassandra)."""

    hosts: tuple[tuple[str, int], ...]
    keyspace: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    ssl_verify: bool = True
    connect_timeout: float = 10.0
    request_timeout: float = 60.0
    consistency: str | None = None  # e.g. LOCAL_QUORUM (the default), ONE, QUORUM

    OPTIONS = (
        "ssl",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_verify",
        "connect_timeout",
        "request_timeout",
        "consistency",
        "user",
        "password",
    )

    @classmethod
    def parse(cls, text: str, env: dict[str, str] | None = None) -> YcqlEndpoint:
        env = dict(os.environ) if env is None else env
        raw = (text or "").strip()
        if not is_ycql_url(raw):
            raise UsageError(f"not a ycql:// URL: {raw.split('@')[-1] if '@' in raw else raw!r}")
        rest = raw.split("://", 1)[1]
        rest, _, query = rest.partition("?")
        netloc, _, path = rest.partition("/")
        userinfo, at, hostlist = netloc.rpartition("@")
        user = password = None
        if at:
            u, colon, p = userinfo.partition(":")
            user = unquote(u) or None
            password = unquote(p) if colon else None
        hosts = tuple(cls._host(h) for h in hostlist.split(",") if h.strip())
        if not hosts:
            raise UsageError("a ycql:// URL needs at least one host: ycql://host[:9042]/keyspace")
        keyspace = unquote(path.strip("/")) or None
        if keyspace is not None and ("/" in keyspace or '"' in keyspace or not keyspace.strip()):
            raise UsageError(f"invalid keyspace name {keyspace!r} in the ycql:// URL")
        options: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            key = key.lower()
            if key not in cls.OPTIONS:
                raise UsageError(f"unknown ycql:// option {key!r} (known: {', '.join(cls.OPTIONS)})")
            options[key] = value
        user = user or options.get("user") or env.get("YCQL_USER") or None
        if password is None:
            password = options.get("password", env.get("YCQL_PASSWORD"))

        def opt(name: str) -> str | None:
            value = options.get(name)
            return value if value is not None else env.get("YCQL_" + name.upper())

        ca, cert, key_file = opt("ssl_ca"), opt("ssl_cert"), opt("ssl_key")
        ssl_flag = opt("ssl")
        use_ssl = _flag("ssl", ssl_flag) if ssl_flag is not None else bool(ca or cert)
        verify = opt("ssl_verify")
        try:
            connect_timeout = float(opt("connect_timeout") or 10.0)
            request_timeout = float(opt("request_timeout") or 60.0)
        except ValueError:
            raise UsageError("connect_timeout and request_timeout must be numbers of seconds") from None
        consistency = opt("consistency")
        return cls(
            hosts=hosts,
            keyspace=keyspace,
            user=user,
            password=password,
            ssl=use_ssl,
            ssl_ca=ca or None,
            ssl_cert=cert or None,
            ssl_key=key_file or None,
            ssl_verify=_flag("ssl_verify", verify) if verify is not None else True,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            consistency=consistency.upper() if consistency else None,
        )

    @staticmethod
    def _host(text: str) -> tuple[str, int]:
        h = text.strip()
        port = YCQL_DEFAULT_PORT
        if h.startswith("["):
            addr, _, tail = h[1:].partition("]")
            if tail.startswith(":"):
                port_text = tail[1:]
            elif tail:
                raise UsageError(f"invalid host {text!r} in the ycql:// URL")
            else:
                port_text = ""
            h = addr
        elif h.count(":") == 1:
            h, _, port_text = h.partition(":")
        else:
            port_text = ""
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise UsageError(f"invalid port {port_text!r} in the ycql:// URL")
            port = int(port_text)
        if not h:
            raise UsageError(f"invalid host {text!r} in the ycql:// URL")
        return (unquote(h), port)

    def with_keyspace(self, keyspace: str | None) -> YcqlEndpoint:
        return replace(self, keyspace=keyspace)

    def hosts_display(self) -> str:
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts)

    def display(self) -> str:
        """user@host:port,.../keyspace - never the password."""
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.hosts_display()}/{self.keyspace or ''}"
