"""kubeconfig files read as kubectl reads them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from lark_operator.kube.auth import TOKEN_FILE_REREAD_SECONDS, AuthError
from lark_operator.kube.kubeconfig import Kubeconfig
from lark_operator.kube.loader import load_auth
from tests.helpers.clock import Clock
from tests.unit.kube.conftest import Pem, write_kubeconfig


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def kubeconfig(current: str, *contexts: tuple[str, str, str | None]) -> dict[str, Any]:
    return {
        "current-context": current,
        "contexts": [
            {"name": n, "context": {"cluster": c, "user": "u", **({"namespace": ns} if ns else {})}}
            for n, c, ns in contexts
        ],
        "clusters": [
            {
                "name": "a",
                "cluster": {"server": "https://a:6443/", "insecure-skip-tls-verify": True},
            },
            {
                "name": "b",
                "cluster": {"server": "https://b:6443", "insecure-skip-tls-verify": True},
            },
        ],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
    }


def load(path: Path | str, context: str | None = None, **kw: Any) -> Any:
    return Kubeconfig.read([Path(path)]).auth(context, **kw)


def test_kubeconfig_env_merge_first_definition_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(tmp_path / "one", kubeconfig("ctx-a", ("ctx-a", "a", "team")))
    second = write(
        tmp_path / "two", kubeconfig("ctx-b", ("ctx-b", "b", None), ("ctx-a", "b", "other"))
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    a = load_auth()
    # The first file wins: its current-context and its definition of ctx-a.
    assert (a.context, a.namespace, a.server) == ("ctx-a", "team", "https://a:6443")
    assert a.credential.header() == "Bearer t0ken"
    assert a.ssl_context.verify_mode == ssl.CERT_NONE  # insecure-skip-tls-verify
    b = load_auth(context="ctx-b")
    assert (b.namespace, b.server) == ("default", "https://b:6443")
    assert load_auth(kubeconfig=str(second)).context == "ctx-b"
    with pytest.raises(AuthError, match="context 'nope' is not in the kubeconfig"):
        load_auth(context="nope")


def test_relative_paths_are_relative_to_the_file_that_defines_them(
    tmp_path: Path, pem: Pem, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "ca.crt").write_bytes(pem.cert)
    (conf / "certs").mkdir()
    (conf / "certs" / "me.crt").write_bytes(pem.cert)
    (conf / "certs" / "me.key").write_bytes(pem.key)
    path = write_kubeconfig(
        conf / "config",
        cluster={"server": "https://c:6443", "certificate-authority": "ca.crt"},
        user={"client-certificate": "certs/me.crt", "client-key": "certs/me.key"},
    )
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's directory
    a = load(path)
    assert (a.tls.ca, a.tls.cert, a.tls.key) == (pem.cert, pem.cert, pem.key)
    assert a.ssl_context.verify_mode == ssl.CERT_REQUIRED and not a.tls.insecure


def test_data_fields_win_over_files(tmp_path: Path, pem: Pem) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        cluster={
            "server": "https://c:6443",
            "certificate-authority": "missing-ca.crt",
            "certificate-authority-data": pem.b64("cert"),
        },
        user={
            "client-certificate-data": pem.b64("cert"),
            "client-key-data": pem.b64("key"),
            "client-key": "missing.key",
        },
    )
    a = load(path)
    assert (a.tls.ca, a.tls.key) == (pem.cert, pem.key)


def test_token_file_relative_and_reread(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file\n")
    clock = Clock()
    a = load(write_kubeconfig(tmp_path / "cfg", user={"tokenFile": "tok"}), clock=clock)
    assert a.credential.header() == "Bearer from-file"
    (tmp_path / "tok").write_text("rotated\n")
    clock.now += TOKEN_FILE_REREAD_SECONDS
    a.credential.renew()
    assert a.credential.header() == "Bearer rotated"


@pytest.mark.parametrize(
    ("user", "header"),
    [
        ({"token": "tok", "tokenFile": "ignored"}, "Bearer tok"),
        ({"username": "admin", "password": "pw"}, "Basic YWRtaW46cHc="),
        ({"auth-provider": {"name": "gcp", "config": {"access-token": "ya29"}}}, "Bearer ya29"),
        ({"auth-provider": {"name": "oidc", "config": {"id-token": "eyJ"}}}, "Bearer eyJ"),
        ({}, None),
    ],
)
def test_user_credentials(tmp_path: Path, user: dict[str, Any], header: str | None) -> None:
    assert load(write_kubeconfig(tmp_path / "cfg", user=user)).credential.header() == header


def test_namespace_and_errors(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "cfg", user={"token": "t"}, namespace="team")
    assert load(path).namespace == "team"
    bad = write_kubeconfig(tmp_path / "bad", user={"client-key-data": "%%%", "token": "t"})
    with pytest.raises(AuthError, match="client-key-data is not base64"):
        load(bad)
    missing = write_kubeconfig(
        tmp_path / "missing", user={"client-certificate": "nope.crt", "client-key": "nope.key"}
    )
    with pytest.raises(AuthError, match=f"cannot read client-certificate {tmp_path}/nope.crt"):
        load(missing)
    no_server = write_kubeconfig(tmp_path / "ns", user={}, cluster={"server": ""})
    with pytest.raises(AuthError, match="has no server"):
        load(no_server)
    doc = yaml.safe_load(Path(path).read_text())
    doc["current-context"] = ""
    with pytest.raises(AuthError, match="no current-context"):
        load(write(tmp_path / "nocur", doc))
    doc["contexts"][0]["context"]["cluster"] = "gone"
    with pytest.raises(AuthError, match="names cluster 'gone', not defined"):
        load(write(tmp_path / "nocluster", doc), "ctx")
