"""URL parsing, redaction and scrubbing: a password never survives into text."""

from __future__ import annotations

import pytest

from lark_operator.probes import dsn

PG = dsn.SCHEMES["postgres"]


def test_parse_reads_every_part_and_decodes_the_password() -> None:
    parsed = dsn.parse("postgresql://app:p%40ss%2Fw@db.example:5433/orders", PG)
    assert (parsed.scheme, parsed.host, parsed.port) == ("postgresql", "db.example", 5433)
    assert (parsed.username, parsed.password, parsed.path) == ("app", "p@ss/w", "orders")
    assert "p@ss" not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (" postgresql://u:pw@h/db", "whitespace"),
        ("host=db user=app password=topsecret", "not a URL"),
        ("mysql://u:topsecret@h/db", "scheme 'mysql'"),
        ("postgresql://u:topsecret@h:99999/db", "port"),
        ("postgresql://u:topsecret@:5432/db", "no host"),
    ],
)
def test_invalid_urls_say_why_without_the_url(url: str, why: str) -> None:
    with pytest.raises(dsn.InvalidURL) as info:
        dsn.parse(url, PG)
    assert why in str(info.value)
    assert "topsecret" not in str(info.value)


def test_host_may_come_from_the_query_for_unix_sockets() -> None:
    assert dsn.parse("postgresql:///db?host=/run/postgresql", PG).host == ""


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://user:pw@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("redis://:p%40ss@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqp://guest@mq/", "amqp://guest@mq/"),
        ("redis://cache:6379", "redis://cache:6379"),
        ("postgresql://h/db?user=u&password=pw", "postgresql://h/db?user=u&password=***"),
        ("http://u:p@w:rd@mgmt:15672/", "http://u:***@mgmt:15672/"),
    ],
)
def test_redact(url: str, redacted: str) -> None:
    assert dsn.redact(url) == redacted


def test_redact_of_an_unparseable_url_still_hides_credentials() -> None:
    assert "pw" not in dsn.redact("postgresql://u:pw@h:notaport/db")
    assert dsn.redact("garbage") == "<unparseable URL>"
    assert "topsecret" not in dsn.redact("host=db user=app password=topsecret")


def test_scrub_removes_raw_encoded_and_decoded_passwords() -> None:
    url = "postgresql://app:s3cr%40t%2F1@db:5432/x"
    text = (
        f"failed to connect to {url}; password s3cr@t/1 rejected; raw s3cr%40t%2F1; "
        "other amqp://bob:hunter22@mq/ too"
    )
    out = dsn.scrub(text, url)
    for secret in ("s3cr@t/1", "s3cr%40t%2F1", "hunter22"):
        assert secret not in out
    assert "postgresql://app:***@db:5432/x" in out
    assert "amqp://bob:***@mq/" in out


def test_scrub_removes_query_passwords_and_ignores_missing_urls() -> None:
    url = "postgresql://h/db?password=qpw-123"
    assert "qpw-123" not in dsn.scrub("auth with qpw-123 failed", url, None)
