"""Unicode and oversized values in what the LarkApp asks the token Secret to carry.

What Kubernetes allows, the token Secret carries verbatim: any Unicode in annotation
values (CJK, right-to-left, emoji, zero-width), 4096 characters each; Secret key names of
up to 253 characters of [-._a-zA-Z0-9]. What it refuses but the CRD schema lets through
(annotations past the API server's 256 KiB total: the schema counts characters, not
bytes) ends in `lastError.reason SecretWriteFailed` quoting the API server, with no token
Secret written and the operator carrying on. Unicode in a label value, a label key with a
space, or Unicode in a Secret key name is refused by the CRD schema, naming the field,
before the operator sees anything.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.helpers.wait import eventually
from tests.integration.hostile.conftest import last_error

pytestmark = pytest.mark.integration

APP, SECRET = "cli_unicode01", "unicode-app-secret-value"
ANNOTATIONS = {
    "example.com/note": "日本語のメモ ✓ — émoji 🎉\u200b zero-width, tab\tand\nnewline",
    "example.com/rtl": "שלום עולם مرحبا",
    "example.com/long": "ü" * 4096,
}
ODD_KEY = ("app.Secret_KEY-v2." * 20)[:253]


def _write_failure(env: Any, name: str) -> str:
    err = last_error(env, name)
    return str(err.get("message", "")) if err.get("reason") == "SecretWriteFailed" else ""


def test_unicode_and_oversized_metadata(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.app_secret("odd-key-secret", SECRET, key=ODD_KEY)

    env.larkapp("annotated", APP, target={"annotations": ANNOTATIONS, "labels": {"team": "p-1"}})
    env.larkapp("odd-key", APP, appSecretRef={"name": "odd-key-secret", "key": ODD_KEY})
    for labels, field in (({"team": "ünïcode"}, "labels.team"), ({"bad key": "x"}, "labels")):
        with pytest.raises(ApiException) as refused:
            env.larkapp("bad-label", APP, target={"labels": labels})
        assert refused.value.status == 422 and f"spec.target.{field}" in str(refused.value.body)
    fat = {f"example.com/a{i}": "é" * 4096 for i in range(64)}  # 512 KiB of UTF-8
    env.larkapp("fat-annotations", APP, target={"annotations": fat})

    eventually(lambda: env.ready("annotated"), 40, what="annotated Ready")
    secret = env.kube.secret_obj(env.ns, "annotated-lark-token")
    env.token("annotated")
    for key, value in ANNOTATIONS.items():
        assert secret.metadata.annotations[key] == value
    assert secret.metadata.labels["team"] == "p-1"

    eventually(lambda: env.ready("odd-key"), 40, what="253-character key name Ready")

    for name, fragment in (("fat-annotations", "metadata.annotations"),):
        message = eventually(
            lambda name=name: _write_failure(env, name), 40, what=f"{name} SecretWriteFailed"
        )
        assert fragment in message, message
        assert "Invalid value" in message or "Too long" in message, message
        assert env.kube.secret_obj(env.ns, f"{name}-lark-token") is None
        assert env.kube.larkapp(env.ns, name)["status"]["phase"] == "Failed"
    assert env.op.alive()
    assert env.ready("annotated")

    # Unicode in a Secret key name: refused by the API server and by the CRD schema.
    with pytest.raises(ApiException) as refused:
        env.kube.put_secret(env.ns, "unicode-key", {"ключ": SECRET})
    assert refused.value.status == 422
    with pytest.raises(ApiException) as refused:
        env.kube.create_larkapp(
            env.ns, "unicode-key", {"appId": APP, "appSecretRef": {"name": "s", "key": "ключ"}}
        )
    assert refused.value.status == 422 and "appSecretRef.key" in str(refused.value.body)
