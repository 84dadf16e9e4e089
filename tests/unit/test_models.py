"""The typed specs: label selectors as Kubernetes reads them, who a ClusterLarkApp allows,
and a LarkApp that names a ClusterLarkApp."""

from __future__ import annotations

import pytest

from lark_operator.models import AllowedNamespaces, ClusterLarkAppSpec, LabelSelector, LarkAppSpec


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {}, True),  # empty: everything
        ({"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
        (
            {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]},
            {"team": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]},
            {"team": "a"},
            False,
        ),
        ({"matchExpressions": [{"key": "lark", "operator": "Exists"}]}, {"lark": ""}, True),
        ({"matchExpressions": [{"key": "lark", "operator": "DoesNotExist"}]}, {"lark": "1"}, False),
        (
            {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "lark", "operator": "Exists"}],
            },
            {"env": "prod"},
            False,  # every term must hold
        ),
    ],
)
def test_label_selector(selector: dict, labels: dict, matches: bool) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is matches


def test_allowed_namespaces_by_name_or_labels_and_unknown_labels() -> None:
    allowed = AllowedNamespaces.model_validate(
        {"names": ["a"], "selector": {"matchLabels": {"lark": "yes"}}}
    )
    assert allowed.allows("a", None) is True  # a name needs no labels
    assert allowed.allows("b", {"lark": "yes"}) is True
    assert allowed.allows("b", {}) is False
    assert allowed.allows("b", None) is None  # only its labels could tell: not known yet
    names_only = AllowedNamespaces.model_validate({"names": ["a"]})
    assert names_only.allows("b", None) is False


def test_a_larkapp_naming_a_cluster_larkapp() -> None:
    spec = LarkAppSpec.parse({"appRef": {"name": "shared"}, "target": {"secretName": "t"}})
    assert spec.app_ref is not None and spec.app_ref.kind == "ClusterLarkApp"
    assert spec.credentials() is None and spec.app_id is None
    assert spec.referenced_secrets() == set()  # its App Secret is not in its namespace
    cluster = ClusterLarkAppSpec.parse(
        {
            "appId": "cli_c1",
            "appSecretRef": {"name": "app"},
            "domain": "lark",
            "tokens": {"tenant": True, "app": True},
            "refresh": {"renewBefore": "5m"},
            "allowedNamespaces": {"names": ["x"]},
        }
    )
    resolved = spec.resolved(cluster)
    assert (resolved.app_id, resolved.domain) == ("cli_c1", "lark")
    assert resolved.tokens.app and resolved.refresh.renew_before_seconds == 300
    assert resolved.target.secret_name == "t" and resolved.app_secret_ref is None
    own = LarkAppSpec.parse({"appId": "cli_o1", "appSecretRef": {"name": "s"}})
    creds = own.credentials()
    assert creds is not None and creds.app_id == "cli_o1" and creds.base_url() == own.base_url()
