"""The one credential loader against the real apiserver: a kubeconfig with the client key
inline leaves no file behind (in the CLI and in the operator's client); a pod's rotating
service-account token and an exec plugin's expiring credential are picked up without a
restart — the apiserver itself says who each request was (SelfSubjectReview)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from lark_operator.kube import KubeClient, KubeError, auth, loader
from lark_operator.kube.auth import Auth, Credential, Tls
from tests.helpers.clock import Clock
from tests.helpers.kube import Kube
from tests.helpers.wait import eventually
from tests.integration.cli.conftest import Cli, stdout

pytestmark = pytest.mark.integration


@pytest.fixture
def flat_kubeconfig(kube: Kube, tmp_path: Path) -> Path:
    """The control plane's kubeconfig with its CA, certificate and key inline, as
    `kubectl config view --flatten --raw` writes it."""
    text = kube.kubectl("config", "view", "--flatten", "--raw").stdout
    users = yaml.safe_load(text)["users"]
    assert all(u["user"].get("client-key-data") for u in users), "no inline key to test"
    path = tmp_path / "flat-kubeconfig"
    path.write_text(text)
    return path


@pytest.fixture
def empty_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tmp = tmp_path / "TMPDIR"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # Python caches the directory
    return tmp


async def create_and_read_a_secret(kube: KubeClient, namespace: str) -> None:
    try:
        body = {"metadata": {"name": "auth-check"}, "stringData": {"k": "v"}}
        await kube.create_secret(namespace, body)
        got = await kube.get_secret(namespace, "auth-check")
        assert got is not None and base64.b64decode(got["data"]["k"]) == b"v"
    finally:
        await kube.close()


@pytest.mark.parametrize("in_memory", [True, False], ids=["memfd", "private-dir"])
def test_inline_client_key_leaves_no_file(
    flat_kubeconfig: Path,
    empty_tmpdir: Path,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    in_memory: bool,
) -> None:
    if in_memory and not auth.IN_MEMORY_FILES:
        pytest.skip("no memfd on this platform")  # the private-dir case still runs
    monkeypatch.setattr(auth, "IN_MEMORY_FILES", in_memory)
    kube = KubeClient(loader.load_auth(str(flat_kubeconfig)))
    asyncio.run(create_and_read_a_secret(kube, namespace))
    assert list(empty_tmpdir.iterdir()) == []


def test_kubectl_lark_with_inline_key_leaves_no_file(
    cli: Cli, kube: Kube, flat_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    kube.create_larkapp(namespace, "auth-app", {"appId": "cli_auth", "appSecretRef": {"name": "s"}})
    tmp = tmp_path / "cli-TMPDIR"
    tmp.mkdir()
    proc = cli.kubectl(
        "lark", "status", "-n", namespace, KUBECONFIG=str(flat_kubeconfig), TMPDIR=str(tmp)
    )
    assert proc.returncode == 0, stdout(proc)
    assert "auth-app" in proc.stdout
    assert list(tmp.iterdir()) == []


# --- tokens that change under a running client ------------------------------------------------
class Cluster:
    """Service accounts and their tokens in the test's namespace."""

    def __init__(self, kube: Kube, namespace: str, flat_kubeconfig: Path, tmp_path: Path):
        self.kube, self.ns, self.tmp = kube, namespace, tmp_path
        doc = yaml.safe_load(flat_kubeconfig.read_text())
        cluster = doc["clusters"][0]["cluster"]
        self.server = cluster["server"]
        self.ca = base64.b64decode(cluster["certificate-authority-data"])

    def token(self, account: str) -> str:
        """A token of `account` bound to a Secret of the same name: deleting that Secret
        revokes it."""
        self.kube.kubectl("create", "serviceaccount", account, "-n", self.ns, check=False)
        self.kube.put_secret(self.ns, account, {"bound": "yes"})
        return self.kube.kubectl(
            *("create", "token", account, "-n", self.ns, "--duration", "1h"),
            *("--bound-object-kind", "Secret", "--bound-object-name", account),
        ).stdout.strip()

    def user(self, account: str) -> str:
        return f"system:serviceaccount:{self.ns}:{account}"

    def revoke(self, account: str, token: str) -> None:
        """Delete the Secret the token is bound to; wait until the apiserver refuses it
        (it caches accepted tokens for a few seconds)."""
        self.kube.delete_secret(self.ns, account)
        path = self.tmp / f"kubeconfig-{account}"
        path.write_text(
            yaml.safe_dump(
                {
                    "clusters": [{"name": "c", "cluster": {"server": self.server}}],
                    "users": [{"name": "u", "user": {"token": token}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )

        def refused() -> bool:
            proc = self.kube.kubectl(
                "--kubeconfig", str(path), "--insecure-skip-tls-verify", "auth", "whoami",
                check=False,
            )  # fmt: skip
            return proc.returncode != 0 and "Unauthorized" in proc.stderr

        eventually(refused, 30, what=f"the apiserver to refuse {account}'s revoked token")


@pytest.fixture
def cluster(kube: Kube, namespace: str, flat_kubeconfig: Path, tmp_path: Path) -> Cluster:
    return Cluster(kube, namespace, flat_kubeconfig, tmp_path)


async def whoami(kube: KubeClient) -> str:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer: dict[str, Any] = await kube.request(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", review
    )
    return str(answer["status"]["userInfo"]["username"])


async def test_in_cluster_token_rotation(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(cluster.token("first"))
    (sa / "ca.crt").write_bytes(cluster.ca)
    (sa / "namespace").write_text(cluster.ns)
    url = urlsplit(cluster.server)
    monkeypatch.setattr(loader, "SERVICE_ACCOUNT_DIR", sa)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(url.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(url.port))
    clock = Clock(dt.datetime.now(dt.UTC).timestamp())
    pod = loader.in_cluster(clock=clock)
    assert pod is not None and pod.namespace == cluster.ns
    kube = KubeClient(pod)
    try:
        assert await whoami(kube) == cluster.user("first")
        (sa / "token").write_text(cluster.token("second"))  # kubelet rotates the file
        assert await whoami(kube) == cluster.user("first")  # read once a minute
        clock.now += auth.TOKEN_FILE_REREAD_SECONDS
        assert await whoami(kube) == cluster.user("second")
    finally:
        await kube.close()


PLUGIN = """#!/bin/sh
# Prints the token in ./token, expiring at the time in ./expires.
dir=$(dirname "$0")
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
printf '"status":{"token":"%s","expirationTimestamp":"%s"}}' "$(cat "$dir/token")" \\
    "$(cat "$dir/expires")"
"""


async def test_exec_plugin_run_again_at_expiry_and_after_revocation(
    cluster: Cluster, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "get-token").write_text(PLUGIN)
    (plugin / "get-token").chmod(0o755)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    (plugin / "expires").write_text((now + dt.timedelta(minutes=30)).isoformat())
    (plugin / "token").write_text(cluster.token("alpha"))
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": cluster.server,
                            "certificate-authority-data": base64.b64encode(cluster.ca).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"exec": {"command": "plugin/get-token"}}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    clock = Clock(now.timestamp())
    kube = KubeClient(loader.load_auth(str(config), clock=clock))
    try:
        assert await whoami(kube) == cluster.user("alpha")
        beta = cluster.token("beta")
        (plugin / "token").write_text(beta)
        assert await whoami(kube) == cluster.user("alpha")  # not expired: not run again
        clock.now += 30 * 60
        assert await whoami(kube) == cluster.user("beta")  # expired: the plugin ran again
        # Revoked before its expiry: the 401 runs the plugin again, and the request succeeds.
        (plugin / "token").write_text(cluster.token("gamma"))
        cluster.revoke("beta", beta)
        assert await whoami(kube) == cluster.user("gamma")
        # A static token that is revoked stays refused (nothing to renew).
        static = KubeClient(Auth(cluster.server, Tls(cluster.ca), Credential(beta)))
        try:
            with pytest.raises(KubeError, match="401"):
                await whoami(static)
        finally:
            await static.close()
    finally:
        await kube.close()
