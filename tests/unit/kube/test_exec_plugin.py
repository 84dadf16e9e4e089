"""Credential plugins run as client-go runs them, again when their credential expires."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from lark_operator.kube.auth import RENEWAL_RETRY_SECONDS, AuthError
from lark_operator.kube.exec_plugin import Plugin
from lark_operator.kube.kubeconfig import Kubeconfig
from tests.helpers.clock import Clock
from tests.unit.kube.conftest import FakePlugin, Pem, write_kubeconfig

EXPIRY = dt.datetime(2027, 1, 15, 8, 0, tzinfo=dt.UTC)


def exec_user(command: str, **extra: object) -> dict[str, object]:
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": command, **extra}}


def test_relative_command_args_env_and_request(tmp_path: Path, plugin: FakePlugin) -> None:
    path = write_kubeconfig(
        tmp_path / "cfg",
        user=exec_user(
            "./plugin/plugin.sh",
            args=["get-token", "--cluster", "c"],
            env=[{"name": "PLUGIN_GREETING", "value": "hello"}],
        ),
    )
    a = Kubeconfig.read([Path(path)]).auth()
    assert a.credential.header() == "Bearer tok-1"
    assert (plugin.dir / "args").read_text() == "get-token --cluster c|hello"
    info = json.loads((plugin.dir / "exec-info").read_text())
    assert info == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }


def test_cluster_info_when_asked_for(tmp_path: Path, plugin: FakePlugin, pem: Pem) -> None:
    path = write_kubeconfig(
        tmp_path / "cfg",
        cluster={"server": "https://c:6443", "certificate-authority-data": pem.b64("cert")},
        user=exec_user(str(plugin.command), provideClusterInfo=True),
    )
    Kubeconfig.read([Path(path)]).auth()
    cluster = json.loads((plugin.dir / "exec-info").read_text())["spec"]["cluster"]
    assert cluster == {
        "server": "https://c:6443",
        "insecure-skip-tls-verify": False,
        "certificate-authority-data": pem.b64("cert"),
    }


def test_run_again_when_the_credential_expires(tmp_path: Path, plugin: FakePlugin) -> None:
    plugin.expire_at(EXPIRY)
    clock = Clock(EXPIRY.timestamp() - 3600)
    path = write_kubeconfig(tmp_path / "cfg", user=exec_user(str(plugin.command)))
    cred = Kubeconfig.read([Path(path)]).auth(clock=clock).credential
    assert (cred.header(), cred.expires_at, plugin.runs()) == (
        "Bearer tok-1",
        EXPIRY.timestamp(),
        1,
    )
    clock.now = EXPIRY.timestamp() - 1
    assert not cred.due()
    clock.now = EXPIRY.timestamp()
    assert cred.due()
    plugin.expire_at(EXPIRY + dt.timedelta(hours=1))
    cred.renew()
    assert (cred.header(), plugin.runs()) == ("Bearer tok-2", 2)
    cred.renew()  # renewed already: not due, not run again
    assert plugin.runs() == 2 and cred.expires_at == EXPIRY.timestamp() + 3600


def test_an_expired_answer_is_not_asked_again_at_once(tmp_path: Path, plugin: FakePlugin) -> None:
    plugin.expire_at(EXPIRY)
    clock = Clock(EXPIRY.timestamp() + 60)  # the plugin's clock is behind ours
    path = write_kubeconfig(tmp_path / "cfg", user=exec_user(str(plugin.command)))
    cred = Kubeconfig.read([Path(path)]).auth(clock=clock).credential
    cred.renew()
    assert plugin.runs() == 2
    cred.renew()
    assert plugin.runs() == 2 and not cred.due()
    clock.now += RENEWAL_RETRY_SECONDS
    cred.renew()
    assert plugin.runs() == 3


def test_without_expiry_only_a_401_runs_it_again(tmp_path: Path, plugin: FakePlugin) -> None:
    clock = Clock()
    path = write_kubeconfig(tmp_path / "cfg", user=exec_user(str(plugin.command)))
    cred = Kubeconfig.read([Path(path)]).auth(clock=clock).credential
    clock.now += 10 * 86400
    assert not cred.due()
    cred.invalidate()
    cred.renew()
    assert (cred.header(), plugin.runs()) == ("Bearer tok-2", 2)


def test_a_failing_renewal_keeps_the_last_token(tmp_path: Path, plugin: FakePlugin) -> None:
    plugin.expire_at(EXPIRY)
    clock = Clock(EXPIRY.timestamp() - 60)
    path = write_kubeconfig(tmp_path / "cfg", user=exec_user(str(plugin.command)))
    cred = Kubeconfig.read([Path(path)]).auth(clock=clock).credential
    plugin.fail()
    clock.now = EXPIRY.timestamp()
    cred.renew()
    assert cred.header() == "Bearer tok-1" and not cred.due()


def test_failures_name_the_plugin_never_its_output(tmp_path: Path, plugin: FakePlugin) -> None:
    plugin.fail()
    with pytest.raises(AuthError, match=r"plugin\.sh failed: .*exit status 3"):
        Plugin(str(plugin.command)).run()
    with pytest.raises(AuthError, match="not found: install it with brew"):
        Plugin(str(tmp_path / "absent"), install_hint="install it with brew").run()
    script = tmp_path / "leaky.sh"
    script.write_text('#!/bin/sh\necho "{\\"kind\\":\\"Other\\",\\"token\\":\\"l3aked\\"}"\n')
    script.chmod(0o755)
    with pytest.raises(AuthError, match="not an ExecCredential") as err:
        Plugin(str(script)).run()
    assert "l3aked" not in str(err.value)


def test_a_client_certificate_from_the_plugin(tmp_path: Path, pem: Pem) -> None:
    script = tmp_path / "cert.sh"
    status = {"clientCertificateData": pem.cert.decode(), "clientKeyData": pem.key.decode()}
    script.write_text(
        f"#!/bin/sh\ncat <<'EOF'\n{json.dumps({'kind': 'ExecCredential', 'status': status})}\nEOF\n"
    )
    script.chmod(0o755)
    path = write_kubeconfig(tmp_path / "cfg", user=exec_user(str(script)))
    a = Kubeconfig.read([Path(path)]).auth()
    assert (a.tls.cert, a.tls.key, a.credential.header()) == (pem.cert, pem.key, None)
