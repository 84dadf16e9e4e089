"""credentials.py: how the operator and every CLI command read a Secret value and decide
where an App Secret may be sent."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lark_operator.credentials import (
    ALLOW_IN_CLI,
    ALLOW_IN_OPERATOR,
    ALLOWED_BASE_URLS_ENV,
    CredentialError,
    allowed_base_urls,
    binary_size,
    decode_value,
    resolve_base_url,
    secret_value,
)

BINARY = b"\x30\x82\x01\x0a\xff\xfe-binary-secret-part"


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def secret(**data: str | bytes) -> dict[str, Any]:
    return {"metadata": {"name": "s"}, "data": {k: b64(v) for k, v in data.items()}}


# --- Secret values -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stored",
    ["real-secret", "real-secret\n", "real-secret\r\n", " \t real-secret \t\n"],
)
def test_surrounding_whitespace_is_stripped(stored: str) -> None:
    got = secret_value(secret(appSecret=stored), "s", "appSecret", namespace="ns")
    assert got == "real-secret"
    assert decode_value(b64(stored)) == "real-secret"


def test_absent_secret_is_secret_not_found() -> None:
    with pytest.raises(CredentialError) as info:
        secret_value(None, "app", "appSecret", namespace="team", field="spec.appSecretRef")
    assert info.value.reason == "SecretNotFound"
    assert str(info.value) == "Secret app (spec.appSecretRef) not found in namespace team."


@pytest.mark.parametrize("stored", ["", " \n\t "])
def test_empty_or_blank_is_key_missing_and_lists_the_keys_not_the_values(stored: str) -> None:
    with pytest.raises(CredentialError) as info:
        secret_value(
            secret(appSecret=stored, other="hidden-value"), "app", "appSecret", namespace="ns"
        )
    assert info.value.reason == "SecretKeyMissing"
    assert "no non-empty key 'appSecret' (keys present: appSecret, other)" in str(info.value)
    assert "hidden-value" not in str(info.value)


def test_absent_key_and_no_data_at_all() -> None:
    with pytest.raises(CredentialError) as info:
        secret_value({"metadata": {}}, "app", "appSecret", namespace="ns")
    assert info.value.reason == "SecretKeyMissing"
    assert "(keys present: none)" in str(info.value)


def test_not_utf8_is_invalid_credentials_with_its_size_and_no_bytes() -> None:
    with pytest.raises(CredentialError) as info:
        secret_value(secret(appSecret=BINARY), "app", "appSecret", namespace="ns")
    assert info.value.reason == "InvalidCredentials"
    assert f"holds {len(BINARY)} bytes that are not UTF-8 text" in info.value.message
    assert "binary-secret-part" not in info.value.message
    assert (decode_value(b64(BINARY)), binary_size(b64(BINARY))) == (None, len(BINARY))


@pytest.mark.parametrize("raw", [None, "", "!!not base64 at all", "ünïcode", 17])
def test_unreadable_raw_values_are_absent_never_an_exception(raw: Any) -> None:
    assert decode_value(raw) is None
    assert binary_size(raw) is None


# --- the allowlist -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("domain", "expected"),
    [("feishu", "https://open.feishu.cn"), ("lark", "https://open.larksuite.com")],
)
def test_feishu_and_lark_need_no_allowlist(domain: str, expected: str) -> None:
    assert resolve_base_url(domain, []) == expected


@pytest.mark.parametrize(
    ("domain", "allowed"),
    [
        ("http://127.0.0.1:8080", ["http://127.0.0.1:8080"]),
        ("http://127.0.0.1:8080/", ["http://127.0.0.1:8080"]),
        ("http://127.0.0.1:8080", ["http://127.0.0.1:8080/"]),
        ("https://open.example.com/base/", [" https://open.example.com/base "]),
    ],
)
def test_an_allowed_url_matches_whatever_its_trailing_slash(
    domain: str, allowed: list[str]
) -> None:
    assert resolve_base_url(domain, allowed) == domain.rstrip("/")


@pytest.mark.parametrize(
    "domain",
    [
        "http://127.0.0.1:8081",  # another port
        "https://127.0.0.1:8080",  # another scheme
        "http://127.0.0.1:8080/evil",  # a path under it
        "http://127.0.0.1.evil.example:8080",
    ],
)
def test_a_url_not_in_the_allowlist_is_refused_naming_it_and_the_way_in(domain: str) -> None:
    with pytest.raises(CredentialError) as info:
        resolve_base_url(
            domain, ["http://127.0.0.1:8080"], field="--domain", allow_with=ALLOW_IN_CLI
        )
    assert info.value.reason == "DomainNotAllowed"
    url = domain.rstrip("/")
    assert info.value.message.startswith(f"--domain {url} is not an allowed base URL")
    assert f"--allowed-base-url {url}" in info.value.message
    assert f"{ALLOWED_BASE_URLS_ENV}={url}" in info.value.message


def test_the_operator_message_says_how_to_allow_it_in_the_operator() -> None:
    with pytest.raises(CredentialError) as info:
        resolve_base_url("https://evil.example.com", [])
    assert "spec.domain https://evil.example.com is not an allowed base URL" in str(info.value)
    assert "--allowed-base-url (Helm value allowedBaseUrls)" in str(info.value)


@pytest.mark.parametrize(
    "domain",
    [
        "http://169.254.169.254",  # AWS, Azure, GCP, OCI instance metadata
        "http://169.254.169.254/latest/meta-data",
        "https://169.254.0.1:8443",
        "http://[fe80::1]:8080",
        "http://[::ffff:169.254.169.254]",  # the same, IPv4-mapped
        "http://metadata.google.internal",
        "http://Metadata.Google.Internal./",
        "http://100.100.100.200",  # Alibaba Cloud
        "http://[fd00:ec2::254]",  # AWS over IPv6
    ],
)
@pytest.mark.parametrize("allow_with", [ALLOW_IN_CLI, ALLOW_IN_OPERATOR])
def test_a_metadata_address_is_refused_as_such_never_with_a_way_to_allow_it(
    domain: str, allow_with: str
) -> None:
    with pytest.raises(CredentialError) as info:
        resolve_base_url(domain, [], allow_with=allow_with)
    message = info.value.message
    assert info.value.reason == "DomainNotAllowed"
    assert f"spec.domain {domain.rstrip('/')} is refused as a " in message
    assert "metadata" in message and "never sent there" in message
    assert "--allowed-base-url" not in message and ALLOWED_BASE_URLS_ENV not in message
    assert "allowedBaseUrls" not in message


@pytest.mark.parametrize("domain", ["http://169.254.169.254.example.com", "http://10.0.0.1"])
def test_addresses_that_only_look_alike_get_the_ordinary_message(domain: str) -> None:
    with pytest.raises(CredentialError) as info:
        resolve_base_url(domain, [], allow_with=ALLOW_IN_CLI)
    assert f"--allowed-base-url {domain}" in info.value.message


@pytest.mark.parametrize(
    "domain",
    ["ftp://x.example", "example.com", "http://", "http://h?q=1", "http://h#f", "http://[::1"],
)
def test_what_is_not_an_http_url_is_refused_even_if_listed(domain: str) -> None:
    with pytest.raises(CredentialError) as info:
        resolve_base_url(domain, [domain])
    assert info.value.reason == "DomainNotAllowed"
    assert "is not 'feishu', 'lark' or an http(s) base URL" in str(info.value)


def test_flags_override_the_environment_as_for_the_operator() -> None:
    env = {ALLOWED_BASE_URLS_ENV: " http://a:1 , ,http://b:2/ "}
    assert allowed_base_urls(None, env) == ["http://a:1", "http://b:2/"]
    assert allowed_base_urls([], env) == ["http://a:1", "http://b:2/"]
    assert allowed_base_urls(["http://c:3"], env) == ["http://c:3"]
    assert allowed_base_urls(None, {}) == []


def test_settings_read_the_same_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from lark_operator.settings import Settings

    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, "http://a:1,http://b:2")
    assert Settings().allowed_base_urls == ["http://a:1", "http://b:2"]


def test_a_metadata_address_is_refused_even_when_allowlisted() -> None:
    url = "http://169.254.169.254"
    with pytest.raises(CredentialError, match="never sent there"):
        resolve_base_url(url, [url])


def test_the_operator_refuses_to_start_with_a_metadata_address_allowed() -> None:
    from lark_operator.settings import SettingsError, load

    pattern = r"--allowed-base-url: .*169\.254\.169\.254.*never sent"
    with pytest.raises(SettingsError, match=pattern):
        load(allowed_base_urls=["http://169.254.169.254/"])
