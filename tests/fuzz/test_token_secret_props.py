"""Properties of the token Secret, for any name, metadata and owner references the API
would let a LarkApp or a bystander put there (pure code: the builder, its inverse, the
claim helpers and the controller's merge)."""

from __future__ import annotations

import base64
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lark_operator.credentials import binary_size as _binary_size
from lark_operator.credentials import decode_value as _decode
from lark_operator.models import LarkAppSpec
from lark_operator.tokens.secret import (
    FULL_NAME_ANNOTATION,
    HeldTokens,
    build_token_secret,
    claimed_by,
    drift,
    foreign_controller,
    label_value,
    merge_secret,
    read_token_secret,
)
from lark_operator.vocabulary.names import KIND
from tests.fuzz.conftest import fuzz

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?", fullmatch=True)
names = st.lists(DNS_LABEL, min_size=1, max_size=12).map(".".join).filter(lambda n: len(n) <= 253)
reserved = ["app.kubernetes.io/managed-by", "larkservice.io/larkapp", FULL_NAME_ANNOTATION]
metadata = st.dictionaries(
    st.one_of(st.sampled_from(reserved), st.text(max_size=20)), st.text(max_size=30), max_size=5
)


@st.composite
def owner_refs(draw: st.DrawFn) -> list[dict[str, Any]]:
    refs = []
    mine = draw(st.integers(-1, 3))  # which one (if any) is this LarkApp's own
    for i in range(draw(st.integers(0, 4))):
        refs.append(
            {
                "apiVersion": "larkservice.io/v1alpha1",
                "kind": draw(st.sampled_from([KIND, "ConfigMap", "ExternalSecret"])),
                "name": draw(names),
                "uid": "uid-me" if i == mine else f"uid-{i}",
                "controller": draw(st.booleans()),
            }
        )
    return refs


def _spec(labels: dict[str, str], annotations: dict[str, str], policy: str) -> LarkAppSpec:
    return LarkAppSpec.parse(
        {
            "appId": "cli_props",
            "appSecretRef": {"name": "s"},
            "tokens": {"tenant": True, "app": True},
            "target": {"labels": labels, "annotations": annotations, "creationPolicy": policy},
        }
    )


@fuzz(300)
@given(name=names)
def test_label_value_is_a_valid_label_for_every_larkapp_name(name: str) -> None:
    value = label_value(name)
    assert len(value) <= 63 and LABEL_VALUE.match(value), value
    if len(name) <= 63:
        assert value == name
    else:
        assert re.fullmatch(r".*-[0-9a-f]{10}", value) and name.startswith(value[:-11])


@fuzz(300)
@given(
    name=names,
    labels=metadata,
    annotations=metadata,
    policy=st.sampled_from(["Owner", "Orphan"]),
    expiry=st.integers(1_700_000_000, 1_800_000_000),
    actual_refs=owner_refs(),
    extra_data=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_built_secret_is_claimed_by_its_larkapp_and_merges_cleanly(
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    policy: str,
    expiry: int,
    actual_refs: list[dict[str, Any]],
    extra_data: dict[str, str],
) -> None:
    held = HeldTokens({"tenant": "t-tenant", "app": "a-app"}, {"tenant": expiry, "app": expiry})
    desired = build_token_secret(
        namespace="ns",
        larkapp_name=name,
        larkapp_uid="uid-me",
        spec=_spec(labels, annotations, policy),
        tokens=held,
    )
    meta = desired["metadata"]
    # Our labels and annotations win over what spec.target asks for.
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "lark-operator"
    assert meta["labels"]["larkservice.io/larkapp"] == label_value(name)
    assert claimed_by(desired) == name and foreign_controller(desired) is None
    assert read_token_secret(desired) == held

    # Merged on top of whatever a bystander left there: no drift, at most one controller,
    # no other LarkApp's reference (it would be stale), other owners kept, data kept.
    actual = {
        "metadata": {"name": meta["name"], "ownerReferences": actual_refs, "labels": labels},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in extra_data.items()},
    }
    merged = merge_secret(actual, desired, "uid-me")
    assert drift(merged, desired) == []
    refs = merged["metadata"].get("ownerReferences") or []
    mine = [r for r in refs if r["uid"] == "uid-me"]
    assert len(mine) <= 1 if policy == "Orphan" else len(mine) == 1
    assert all(r["uid"] == "uid-me" for r in refs if r["kind"] == KIND)
    if foreign_controller(actual) is None:  # else the controller refuses to write at all
        assert sum(bool(r.get("controller")) for r in refs) <= 1
    kept = [r for r in actual_refs if r["kind"] != KIND and r["uid"] != "uid-me"]
    assert all(r in refs for r in kept)
    assert read_token_secret(merged) == held


@fuzz(300)
@given(
    raw=st.one_of(
        st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
        st.text(max_size=20),
        st.none(),
    )
)
def test_decoding_an_app_secret_never_raises(raw: Any) -> None:
    value, size = _decode(raw), _binary_size(raw)
    assert value is None or (value and value == value.strip())
    assert size is None or (value is None and size > 0)
