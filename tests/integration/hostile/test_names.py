"""LarkApps with the longest names the schema allows: 253 characters (which needs
spec.target.secretName, as the CRD says) and 242 characters (whose default token Secret
name, '<name>-lark-token', is exactly 253). The token Secret is written, its labels stay
valid label values (at most 63 characters: a long name is shortened with a hash, the full
name is in an annotation), Events are posted and the finalizer lets go on delete."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lark_operator.tokens.secret import label_value
from tests.helpers.wait import eventually

pytestmark = pytest.mark.integration

APP, SECRET = "cli_longname01", "long-name-secret-value"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def long_name(length: int, tag: str) -> str:
    """A valid DNS subdomain of `length` characters, with a "." right where a naive
    63-character cut would leave them at the end of a label value."""
    head = f"{tag}-" + "a" * 60
    head = head[:51] + "." + head[52:]
    body = (head + ".b-c" * 80)[: length - 1]
    return body + "z"


def test_longest_names(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    n253, n242 = long_name(253, "x253"), long_name(242, "x242")
    assert (len(n253), len(n242), len(n242 + "-lark-token")) == (253, 242, 253)

    # 253 characters without a secretName: the schema refuses it and says why.
    refused = env.kube.apply(
        {
            "apiVersion": "larkservice.io/v1alpha1",
            "kind": "LarkApp",
            "metadata": {"name": n253, "namespace": env.ns},
            "spec": {"appId": APP, "appSecretRef": {"name": "lark-secret"}},
        },
        check=False,
    )
    assert refused.returncode != 0 and "needs spec.target.secretName" in refused.stderr

    env.larkapp(n253, APP, target={"secretName": "x253-token"})
    env.larkapp(n242, APP)
    for name, secret_name in ((n253, "x253-token"), (n242, n242 + "-lark-token")):
        eventually(lambda name=name: env.ready(name), 40, what=f"{len(name)}-char name Ready")
        obj = env.kube.larkapp(env.ns, name)
        assert obj["status"]["token"]["secretName"] == secret_name
        secret = env.kube.secret_obj(env.ns, secret_name)
        env.secrets.add((env.kube.secret(env.ns, secret_name) or {})["tenant_access_token"])
        labels = secret.metadata.labels
        for key, value in labels.items():
            assert len(value) <= 63 and LABEL_VALUE.match(value), (key, value)
        assert labels["larkservice.io/larkapp"] == label_value(name)
        assert secret.metadata.annotations["larkservice.io/larkapp-name"] == name
        (owner,) = secret.metadata.owner_references
        assert (owner.name, owner.uid) == (name, obj["metadata"]["uid"])
        # Found by the label selector a user would write from `kubectl get secret -l`.
        found = env.kube.core.list_namespaced_secret(
            env.ns, label_selector=f"larkservice.io/larkapp={label_value(name)}"
        ).items
        assert [s.metadata.name for s in found] == [secret_name]
        eventually(lambda name=name: "TokenRefreshed" in env.kube.event_reasons(env.ns, name), 10)

    assert label_value(n253) != label_value(long_name(253, "x253")[:-1] + "y")
    env.kube.delete_larkapp(env.ns, n253)
    eventually(lambda: env.kube.larkapp_gone(env.ns, n253), 20, what="finalizer released")
    eventually(lambda: env.kube.secret_obj(env.ns, "x253-token") is None, 10)
    assert env.ready(n242)
