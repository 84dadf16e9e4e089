"""URL parsing, redaction and scrubbing: a password never survives into text, and text
that does not hold it comes out as it went in."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

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
        (
            "postgresql://h/db?sslmode=require&Token=x#f",
            "postgresql://h/db?sslmode=require&Token=***#f",
        ),
        ("http://u:p@w:rd@mgmt:15672/", "http://u:***@mgmt:15672/"),
        ("postgresql://u:pw@h:notaport/db", "postgresql://u:***@h:notaport/db"),
        ("host=db user=app password=topsecret", "host=db user=app password=***"),
        ("host=db password='top secret' user=app", "host=db password=*** user=app"),
        ("garbage", "<unparseable URL>"),
    ],
)
def test_redact_masks_the_password_fields_and_keeps_the_rest(url: str, redacted: str) -> None:
    assert dsn.redact(url) == redacted


URL = "postgresql://app:s3cr%40t%2F1@db:5432/x"


def test_scrub_masks_urls_in_text_by_parsing_them() -> None:
    text = f"failed to connect to {URL}; other amqp://bob:hunter22@mq/ too"
    assert dsn.scrub(text, URL) == (
        "failed to connect to postgresql://app:***@db:5432/x; other amqp://bob:***@mq/ too"
    )


def test_scrub_masks_key_value_passwords_by_parsing_them() -> None:
    text = "connect failed: host=db password='s3cr@t/1 x\\'y' user=app; token=abc"
    assert dsn.scrub(text, URL) == "connect failed: host=db password=*** user=app; token=***"


@pytest.mark.parametrize("mention", ["s3cr@t/1", "s3cr%40t%2F1", "'s3cr@t/1'"])
def test_scrub_withholds_a_message_that_names_the_password_outside_a_credential_field(
    mention: str,
) -> None:
    assert dsn.scrub(f"password {mention} rejected", URL) == dsn.WITHHELD


def test_a_one_letter_password_neither_mangles_words_nor_shows() -> None:
    url = "postgresql://app:p@db:5432/x"
    text = 'FATAL: password authentication failed for user "app"; run the upgrade'
    assert dsn.scrub(text, url) == text  # today's substring replacement: u***grade
    assert dsn.scrub(f"{text} with p", url) == dsn.WITHHELD
    assert dsn.scrub(f"connecting to {url} failed", url) == (
        "connecting to postgresql://app:***@db:5432/x failed"
    )


def test_a_password_split_by_a_key_value_parse_is_still_withheld() -> None:
    # Unquoted, libpq's value ends at the space: masking "ab" would leave "cd" behind.
    url = "postgresql://app:ab%20cd@db/x"
    assert dsn.scrub("password=ab cd rejected", url) == dsn.WITHHELD


def test_scrub_without_urls_still_masks_credential_fields() -> None:
    assert dsn.scrub("see redis://:pw@h:1/0", None) == "see redis://:***@h:1/0"


def test_scrub_finds_every_url_in_text() -> None:
    text = "see http://h/r?u=http://x:y@z, 5postgresql://u:pw@h/db and ://a:b@c"
    assert dsn.scrub(text) == (
        "see http://h/r?u=http://x:***@z, 5postgresql://u:***@h/db and ://a:***@c"
    )


@pytest.mark.timeout(5)
def test_a_pathological_key_value_string_is_read_in_linear_time() -> None:
    # A backtracking pattern takes minutes here (each "a=" doubles the ways to split).
    assert dsn.redact("a=" * 40 + "a !") == "<unparseable URL>"
    assert dsn.scrub("a=" * 20_000 + " password=x" * 2_000, None).endswith("password=***")


def test_secrets_in_reads_urls_and_key_value_strings() -> None:
    found = dsn.secrets_in([URL, "host=h password='a b'", None, "redis://h/0?password=q%2B"])
    assert {"s3cr%40t%2F1", "s3cr@t/1", "a b", "a%20b", "q%2B", "q+"} <= set(found)


# --- properties -----------------------------------------------------------------------
def is_token(secret: str, text: str) -> bool:
    """The secret stands in the text, not as part of a longer word (the oracle, written
    apart from the code under test)."""
    left = r"(?<!\w)" if re.match(r"\w", secret[0]) else ""
    right = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
    return re.search(left + re.escape(secret) + right, text) is not None


def forms(password: str) -> set[str]:
    return {password, quote(password, safe="")}


def shows(password: str, text: str) -> bool:
    return any(is_token(f, text) for f in forms(password))


# Printable passwords, a good share of them one character long.
passwords = st.one_of(
    st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1, max_size=1),
    st.text(
        st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]),
        min_size=1,
        max_size=24,
    ),
)


def pg_url(password: str) -> str:
    return f"postgresql://app:{quote(password, safe='')}@db.internal:5432/orders"


def expect(password: str, expected: str) -> str:
    return dsn.WITHHELD if shows(password, expected) else expected


@given(passwords)
@example("p")
@example("a")
@example("@:/")
def test_property_url_in_text(password: str) -> None:
    url = pg_url(password)
    masked = "postgresql://app:***@db.internal:5432/orders"
    out = dsn.scrub(f'connection to {url} failed: password authentication failed for "app"', url)
    assert out == expect(
        password, f'connection to {masked} failed: password authentication failed for "app"'
    )
    assert out == dsn.WITHHELD or not shows(password, out)


def libpq_value(password: str, quoted: bool) -> str:
    if not quoted:
        return password
    return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"


@given(passwords, st.booleans())
@example("e", False)
@example("it's", True)
def test_property_key_value_in_text(password: str, quoted: bool) -> None:
    quoted = quoted or re.search(r"[\s'\"]", password) is not None
    value = libpq_value(password, quoted)
    out = dsn.scrub(
        f"could not connect: host=db.internal password={value} user=app", pg_url(password)
    )
    assert out == expect(password, "could not connect: host=db.internal password=*** user=app")
    assert out == dsn.WITHHELD or not shows(password, out)


@given(passwords)
@example("Long-S3cret!-echoed-by-the-driver")
def test_property_bare_password_in_text_is_withheld(password: str) -> None:
    for text in (f"server said: {password} is wrong", f"server said: {quote(password, safe='')}."):
        assert dsn.scrub(text, pg_url(password)) == dsn.WITHHELD


@given(st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=1, max_size=3), st.text())
@example("p", "")
@example("g", "")
def test_property_a_password_inside_words_leaves_the_text_unchanged(
    password: str, other: str
) -> None:
    assume("://" not in other and "=" not in other)  # credential fields: tested above
    text = f"the up{password}grade of db{password}x failed {other}"
    assert dsn.scrub(text, pg_url(password)) == expect(password, text)


@given(passwords, st.text())
def test_property_text_without_the_password_is_unchanged(password: str, text: str) -> None:
    assume("://" not in text and "=" not in text and not shows(password, text))
    assert dsn.scrub(text, pg_url(password)) == text
