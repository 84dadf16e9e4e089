"""The essence kopf compares for changes is the same with the cheaper build (app/essence.py):
otherwise an upgrade would see every LarkApp's last-handled-configuration as changed."""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import kopf

from lark_operator.app.essence import AnnotationsDiffBase

BODY: dict[str, Any] = {
    "apiVersion": "larkservice.io/v1alpha1",
    "kind": "LarkApp",
    "metadata": {
        "name": "app",
        "namespace": "ns",
        "uid": "u-1",
        "generation": 3,
        "resourceVersion": "42",
        "labels": {"team": "a"},
        "annotations": {
            "larkservice.io/refresh-requested-at": "2026-11-30T12:00:00Z",
            "larkservice.io/last-handled-configuration": '{"spec": {"appId": "cli_old"}}',
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        },
        "finalizers": ["larkservice.io/finalizer"],
        "managedFields": [{"manager": "lark-operator", "fieldsV1": {"f:status": {}}}],
    },
    "spec": {"appId": "cli_unit01", "appSecretRef": {"name": "lark"}, "probes": {}},
    "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_the_essence_is_kopfs_own_and_the_object_is_left_alone() -> None:
    ours = AnnotationsDiffBase(prefix="larkservice.io", key="last-handled-configuration")
    kopfs = kopf.AnnotationsDiffBaseStorage(
        prefix="larkservice.io", key="last-handled-configuration"
    )
    before = copy.deepcopy(BODY)
    bodies: list[dict[str, Any]] = [BODY, {k: v for k, v in BODY.items() if k != "status"}]
    for raw in [*bodies, {"spec": {}}]:
        body = kopf.Body(cast(kopf.RawBody, raw))
        essence = ours.build(body=body)
        assert json.dumps(essence, sort_keys=True) == json.dumps(
            kopfs.build(body=body), sort_keys=True
        )
    assert BODY == before
    essence = ours.build(body=kopf.Body(cast(kopf.RawBody, BODY)))
    essence["spec"]["appId"] = "changed"  # kopf keeps the essence: it must be a copy
    assert BODY["spec"]["appId"] == "cli_unit01"
    assert "status" not in essence and "managedFields" not in essence.get("metadata", {})
