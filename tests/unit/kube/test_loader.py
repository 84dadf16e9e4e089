"""Which credentials are used: --kubeconfig, $KUBECONFIG, the pod's service account,
~/.kube/config — and the service account itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from lark_operator.kube import loader
from lark_operator.kube.auth import TOKEN_FILE_REREAD_SECONDS, AuthError
from lark_operator.kube.loader import in_cluster, load_auth
from tests.helpers.clock import Clock
from tests.unit.kube.conftest import Pem, write_kubeconfig


@pytest.fixture
def sa_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pem: Pem) -> Path:
    """A pod's service-account mount and environment."""
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("sa-token-1\n")
    (sa / "ca.crt").write_bytes(pem.cert)
    (sa / "namespace").write_text("lark-system")
    monkeypatch.setattr(loader, "SERVICE_ACCOUNT_DIR", sa)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "8443")
    return sa


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $KUBECONFIG, no service account, an empty $HOME."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(loader, "SERVICE_ACCOUNT_DIR", tmp_path / "no-serviceaccount")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def server_of(path: Path, name: str) -> str:
    return write_kubeconfig(path, user={"token": name}, cluster={"server": f"https://{name}"})


def test_in_cluster(sa_dir: Path, pem: Pem) -> None:
    clock = Clock()
    a = in_cluster(clock=clock)
    assert a is not None
    assert (a.server, a.namespace, a.context) == ("https://10.0.0.1:8443", "lark-system", None)
    assert a.tls.ca == pem.cert and a.credential.header() == "Bearer sa-token-1"
    (sa_dir / "token").write_text("sa-token-2\n")  # kubelet rotated it
    clock.now += TOKEN_FILE_REREAD_SECONDS
    a.credential.renew()
    assert a.credential.header() == "Bearer sa-token-2"


def test_in_cluster_ipv6_default_port_and_namespace(
    sa_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT")
    (sa_dir / "namespace").unlink()
    a = in_cluster()
    assert a is not None and (a.server, a.namespace) == ("https://[fd00::1]:443", "default")


def test_not_in_a_pod(sa_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert in_cluster() is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    (sa_dir / "token").unlink()
    assert in_cluster() is None


def test_order(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pem: Pem) -> None:
    with pytest.raises(AuthError, match="no kubeconfig"):
        load_auth()
    server_of(home / ".kube" / "config", "home")
    assert load_auth().server == "https://home"
    # In a pod, the service account comes before ~/.kube/config.
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("sa")
    monkeypatch.setattr(loader, "SERVICE_ACCOUNT_DIR", sa)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert load_auth().server == "https://10.0.0.1:443"
    with pytest.raises(AuthError, match="context 'x': no kubeconfig here"):
        load_auth(context="x")
    # $KUBECONFIG before both, its missing files skipped.
    env = server_of(tmp_path / "env", "env")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{env}")
    assert load_auth().server == "https://env"
    # --kubeconfig before everything, and it must exist.
    assert load_auth(server_of(tmp_path / "flag", "flag")).server == "https://flag"
    with pytest.raises(AuthError, match=r"kubeconfig .*/nope does not exist"):
        load_auth(str(tmp_path / "nope"))


def test_kubeconfig_env_naming_only_missing_files_does_not_fall_back_to_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_of(home / ".kube" / "config", "home")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(AuthError, match="no kubeconfig"):
        load_auth()
