"""The token Secret builder and its inverse."""

from __future__ import annotations

import base64
from typing import Any

from lark_operator.models import LarkAppSpec
from lark_operator.tokens.secret import (
    HeldTokens,
    build_token_secret,
    drift,
    label_value,
    read_token_secret,
)

SPEC = LarkAppSpec.parse(
    {
        "appId": "cli_x1",
        "appSecretRef": {"name": "s"},
        "tokens": {"tenant": True, "app": True},
        "target": {"labels": {"team": "a"}, "annotations": {"note": "n"}},
    }
)
HELD = HeldTokens({"tenant": "t-1", "app": "a-1"}, {"tenant": 2000.0, "app": 1900.0})


def _build(uid: str | None = "uid-1", spec: LarkAppSpec = SPEC) -> dict[str, Any]:
    return build_token_secret(
        namespace="ns", larkapp_name="app", larkapp_uid=uid, spec=spec, tokens=HELD
    )


def test_keys_labels_owner() -> None:
    s = _build()
    data = {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
    assert data == {
        "tenant_access_token": "t-1",
        "app_access_token": "a-1",
        "expires_at": "1970-01-01T00:31:40Z",
        "app_id": "cli_x1",
    }
    labels = s["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "lark-operator"
    assert labels["larkservice.io/larkapp"] == "app" and labels["team"] == "a"
    assert s["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert s["metadata"]["name"] == "app-lark-token"


def test_orphan_policy_has_no_owner() -> None:
    spec = LarkAppSpec.parse(
        {"appId": "cli_x1", "appSecretRef": {"name": "s"}, "target": {"creationPolicy": "Orphan"}}
    )
    held = HeldTokens({"tenant": "t"}, {"tenant": 1.0})
    s = build_token_secret(namespace="n", larkapp_name="a", larkapp_uid="u", spec=spec, tokens=held)
    assert "ownerReferences" not in s["metadata"]


def test_round_trip_and_drift() -> None:
    s = _build()
    back = read_token_secret(s)
    assert back is not None and back.fingerprint() == HELD.fingerprint()
    assert drift(s, s) == []
    tampered = {**s, "data": {**s["data"], "tenant_access_token": "eA=="}}
    assert drift(tampered, s) == ["data"]
    assert drift(None, s) == ["missing"]


def test_repr_never_shows_token_values() -> None:
    assert "t-1" not in repr(HELD) and "a-1" not in repr(HELD)


def test_long_names_make_valid_label_values() -> None:
    v = label_value("x" * 200)
    assert len(v) <= 63 and v != label_value("x" * 199)
