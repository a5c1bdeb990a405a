"""ycql:// URLs: hosts, ports, keyspace, credentials and TLS from the URL or YCQL_* variables."""

from __future__ import annotations

import pytest

from ybrewind.endpoints import PgEndpoint, YcqlEndpoint, is_ycql_url
from ybrewind.errors import UsageError


def test_parse_full_url() -> None:
    e = YcqlEndpoint.parse(
        "ycql://app:p%40ss@h1,h2:9043,[::1]:9000/MyKs?ssl=true&ssl_verify=false&consistency=one", env={}
    )
    assert e.hosts == (("h1", 9042), ("h2", 9043), ("::1", 9000))
    assert e.keyspace == "MyKs" and e.user == "app" and e.password == "p@ss"
    assert e.ssl and not e.ssl_verify and e.consistency == "ONE"
    assert e.display() == "app@h1:9042,h2:9043,[::1]:9000/MyKs"
    assert "p@ss" not in repr(e) and "p@ss" not in e.display()


def test_environment_fills_in_and_url_wins() -> None:
    env = {"YCQL_USER": "envuser", "YCQL_PASSWORD": "envpw", "YCQL_SSL_CA": "/ca.pem"}
    e = YcqlEndpoint.parse("cql://db/ks", env=env)
    assert (e.user, e.password, e.ssl, e.ssl_ca) == ("envuser", "envpw", True, "/ca.pem")
    e = YcqlEndpoint.parse("ycql://urluser:urlpw@db/ks?ssl=0", env=env)
    assert (e.user, e.password, e.ssl) == ("urluser", "urlpw", False)
    assert YcqlEndpoint.parse("ycql://db", env={}).keyspace is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ycql://", "at least one host"),
        ("ycql://h:0/ks", "invalid port"),
        ("ycql://h:x/ks", "invalid port"),
        ("ycql://h/ks?nope=1", "unknown ycql:// option"),
        ("ycql://h/ks?ssl=maybe", "not a boolean"),
        ("ycql://h/a/b", "invalid keyspace"),
        ("postgresql://h/db", "not a ycql:// URL"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        YcqlEndpoint.parse(url, env={})


def test_schemes_are_told_apart() -> None:
    assert is_ycql_url("YCQL://h/k") and is_ycql_url("cql://h/k") and not is_ycql_url("postgresql://h/d")
    assert not is_ycql_url(None)
    with pytest.raises(UsageError):
        PgEndpoint.parse("ycql://h/k")
