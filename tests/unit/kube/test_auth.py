"""Credentials that renew themselves, and TLS material that never lands on disk."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import pytest

from lark_operator.kube import auth
from lark_operator.kube.auth import (
    TOKEN_FILE_REREAD_SECONDS,
    Auth,
    AuthError,
    Credential,
    Renewal,
    Tls,
    token_file,
)
from tests.helpers.clock import Clock
from tests.unit.kube.conftest import Pem


def test_token_file_is_read_again_once_a_minute(tmp_path: Path) -> None:
    path, clock = tmp_path / "token", Clock()
    path.write_text("first\n")
    cred = Credential.renewing(token_file(path), clock)
    assert cred.header() == "Bearer first"
    path.write_text("rotated")  # kubelet writes the next token
    clock.now += TOKEN_FILE_REREAD_SECONDS - 1
    assert not cred.due()
    clock.now += 1
    assert cred.due()
    cred.renew()
    assert cred.header() == "Bearer rotated"
    assert not cred.due()


def test_a_failed_renewal_keeps_the_last_token_and_retries_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "token", Clock()
    path.write_text("first")
    cred = Credential.renewing(token_file(path), clock)
    path.unlink()
    clock.now += TOKEN_FILE_REREAD_SECONDS
    with caplog.at_level(logging.WARNING, "lark_operator.kube"):
        cred.renew()
    assert cred.header() == "Bearer first"
    assert f"cannot read the token file {path}" in caplog.text
    assert not cred.due()  # not read again on every request
    clock.now += auth.RENEWAL_RETRY_SECONDS
    path.write_text("back")
    cred.renew()
    assert cred.header() == "Bearer back"


def test_first_read_failure_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match=f"cannot read the token file {tmp_path}/nope"):
        Credential.renewing(token_file(tmp_path / "nope"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(AuthError, match="is empty"):
        Credential.renewing(token_file(tmp_path / "empty"))


def test_invalidate_renews_a_renewable_credential_before_the_next_request() -> None:
    clock, fetched = Clock(), iter(["one", "two"])
    cred = Credential.renewing(lambda now: Renewal(next(fetched), None), clock)
    assert not cred.due()  # no expiry: only a 401 renews it
    cred.invalidate()
    assert cred.due()
    cred.renew()
    assert cred.header() == "Bearer two"
    static = Credential("fixed", clock=clock)
    static.invalidate()
    assert not static.due() and static.header() == "Bearer fixed"


def test_basic_auth_and_no_secrets_in_repr(pem: Pem) -> None:
    basic = Credential(username="admin", password="pa55word")
    assert basic.header() == "Basic YWRtaW46cGE1NXdvcmQ="
    bearer = Credential("s3cret-token")
    a = Auth("https://h:6443/", Tls(pem.cert, pem.cert, pem.key), bearer)
    assert a.server == "https://h:6443"
    shown = repr(a) + repr(basic) + repr(a.tls)
    for secret in ("pa55word", "s3cret-token", pem.key.decode().splitlines()[1]):
        assert secret not in shown


@pytest.mark.parametrize("in_memory", [True, False], ids=["memfd", "private-dir"])
def test_client_key_loads_without_leaving_a_file(
    pem: Pem, empty_tmpdir: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    if in_memory and not auth.IN_MEMORY_FILES:
        pytest.skip("no memfd on this platform")  # the other case still runs
    monkeypatch.setattr(auth, "IN_MEMORY_FILES", in_memory)
    seen: list[str] = []
    with auth._readable_paths(pem.cert, pem.key) as paths:
        seen = paths
        assert [Path(p).read_bytes() for p in paths] == [pem.cert, pem.key]
        if not in_memory:
            assert all(Path(p).is_relative_to(empty_tmpdir) for p in paths)
            assert os.stat(Path(paths[0]).parent).st_mode & 0o077 == 0
    assert not any(os.path.exists(p) for p in seen)
    ctx = Tls(pem.cert, pem.cert, pem.key).context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert list(empty_tmpdir.iterdir()) == []


def test_insecure_still_presents_the_client_certificate(pem: Pem) -> None:
    ctx = Tls(cert=pem.cert, key=pem.key, insecure=True).context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_a_key_that_does_not_match_is_an_error_without_the_key(pem: Pem) -> None:
    with pytest.raises(AuthError, match="unusable client certificate/key") as err:
        Tls(cert=pem.cert, key=b"-----BEGIN PRIVATE KEY-----\nnot-a-key\n").context()
    assert "not-a-key" not in str(err.value)
