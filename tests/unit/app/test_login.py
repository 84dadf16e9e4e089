"""lark_operator.app.login: kopf logs in through the operator's loader — same server,
user, TLS and expiry."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import kopf
import pytest

from lark_operator.app import login as kopf_login
from lark_operator.kube import loader
from lark_operator.kube.auth import Auth, Credential, Tls
from lark_operator.kube.kubeconfig import Kubeconfig
from tests.unit.kube.conftest import FakePlugin, Pem, write_kubeconfig

EXPIRY = dt.datetime(2099, 1, 15, 8, 0, tzinfo=dt.UTC)


def test_client_certificate_and_ca(tmp_path: Path, pem: Pem, empty_tmpdir: Path) -> None:
    # A CA bundle that starts with a comment: kopf's own PEM sniffing would miss it.
    ca = b"# the cluster CA\n" + pem.cert
    a = Auth("https://h:6443", Tls(ca, pem.cert, pem.key), Credential(), namespace="team")
    info = kopf_login.connection_info(a)
    assert (info.server, info.default_namespace, info.token, info.expiration) == (
        "https://h:6443",
        "team",
        None,
        None,
    )
    assert not info.insecure
    ctx = info.as_ssl_context()  # kopf builds its context from what we gave it
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1
    assert list(empty_tmpdir.iterdir()) == []  # kopf's temporary files are gone too
    assert info.as_http_headers() == {}


def test_bearer_basic_and_insecure() -> None:
    bearer = kopf_login.connection_info(Auth("https://h", Tls(insecure=True), Credential("t")))
    assert bearer.as_http_headers() == {"Authorization": "Bearer t"} and bearer.insecure
    basic = Credential(username="u", password="p")
    info = kopf_login.connection_info(Auth("https://h", Tls(), basic))
    assert info.as_http_headers() == {"Authorization": basic.header()}


def test_exec_credential_expiry_tells_kopf_when_to_log_in_again(
    tmp_path: Path, plugin: FakePlugin
) -> None:
    plugin.expire_at(EXPIRY)
    path = write_kubeconfig(tmp_path / "cfg", user={"exec": {"command": str(plugin.command)}})
    info = kopf_login.connection_info(Kubeconfig.read([Path(path)]).auth())
    assert info.token == "tok-1" and info.expiration == EXPIRY


def test_login_loads_afresh_each_time(
    tmp_path: Path, plugin: FakePlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_kubeconfig(tmp_path / "cfg", user={"exec": {"command": str(plugin.command)}})
    monkeypatch.setenv("KUBECONFIG", path)
    assert kopf_login.login().token == "tok-1"
    assert kopf_login.login().token == "tok-2"  # kopf calls again after a 401 or expiry


def test_login_failure_is_a_kopf_login_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(loader, "SERVICE_ACCOUNT_DIR", tmp_path / "no-serviceaccount")
    with pytest.raises(kopf.LoginError, match="no kubeconfig"):
        kopf_login.login()
