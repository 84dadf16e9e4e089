"""A store app's keys in the token Secret and its ticket Secret, pure: built, read back,
stale tenants dropped on the next write, nothing unreadable taken for a token."""

from __future__ import annotations

import base64

from lark_operator.models import LarkAppSpec
from lark_operator.tokens import ticketsecret
from lark_operator.tokens.secret import (
    build_token_secret,
    drift,
    foreign_part,
    merge_secret,
    read_token_secret,
)
from lark_operator.tokens.storetokens import by_type
from lark_operator.tokens.ticketsecret import StoreRecord

SPEC = LarkAppSpec.parse(
    {
        "appId": "cli_shop1",
        "appSecretRef": {"name": "s"},
        "appType": "Store",
        "store": {
            "encryptKeyRef": {"name": "k"},
            "verificationTokenRef": {"name": "k"},
            "tenants": {"keys": ["t1", "t2"]},
        },
    }
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def held(tenants: dict[str, float]):
    from lark_operator.tokens.secret import HeldTokens

    values = {"app": "a-1", **{f"tenant:{t}": f"t-{t}" for t in tenants}}
    expires = {"app": 5000.0, **{f"tenant:{t}": e for t, e in tenants.items()}}
    return HeldTokens(values, expires)


def test_keys_as_designed_and_read_back() -> None:
    tokens = held({"t1": 3000.0, "t2": 4000.0})
    secret = build_token_secret(
        namespace="ns", larkapp_name="shop", larkapp_uid="u", spec=SPEC, tokens=tokens
    )
    data = secret["data"]
    assert set(data) == {
        "app_access_token",
        "tenant_access_token.t1",
        "tenant_access_token.t2",
        "expires_at.t1",
        "expires_at.t2",
        "expires_at",
        "app_id",
    }
    assert data["tenant_access_token.t1"] == b64("t-t1")
    assert base64.b64decode(data["expires_at"]).decode() == "1970-01-01T00:50:00Z"  # earliest
    back = read_token_secret(secret)
    assert back is not None and dict(back.values) == dict(tokens.values)
    assert dict(back.expires_at) == dict(tokens.expires_at)
    assert by_type(tokens.expires_at) == {"app": 5000.0, "tenant": 3000.0}


def test_a_tenant_gone_leaves_the_secret_on_the_next_write() -> None:
    before = build_token_secret(
        namespace="ns",
        larkapp_name="shop",
        larkapp_uid="u",
        spec=SPEC,
        tokens=held({"t1": 3000.0, "t2": 4000.0}),
    )
    after = build_token_secret(
        namespace="ns", larkapp_name="shop", larkapp_uid="u", spec=SPEC, tokens=held({"t1": 3000.0})
    )
    assert drift(before, after) == ["data"]
    merged = merge_secret(before, after, "u")
    assert "tenant_access_token.t2" not in merged["data"] and "expires_at.t2" not in merged["data"]
    assert not drift(merged, after)


def test_the_compact_copy_keeps_no_token_of_a_tenant_gone() -> None:
    """What the reconciler keeps of a written Secret (foreign_part) is others' additions,
    never a token: a tenant's keys no longer wanted are the operator's, dropped on write."""
    before = build_token_secret(
        namespace="ns",
        larkapp_name="shop",
        larkapp_uid="u",
        spec=SPEC,
        tokens=held({"t1": 3000.0, "t2": 4000.0}),
    )
    before["data"]["extra"] = b64("theirs")
    after = build_token_secret(
        namespace="ns", larkapp_name="shop", larkapp_uid="u", spec=SPEC, tokens=held({"t1": 3000.0})
    )
    foreign = foreign_part(before, after)
    assert foreign is not None and foreign["data"] == {"extra": b64("theirs")}


def test_ticket_secret_round_trip_and_refusals() -> None:
    record = StoreRecord("cli_Shop1", "tk-1", 1000.0, frozenset({"t1", "t2"}))
    secret = ticketsecret.build("lark-system", record)
    name = secret["metadata"]["name"]
    assert name == ticketsecret.secret_name("cli_Shop1") != ticketsecret.secret_name("cli_shop1")
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "lark-operator"
    assert ticketsecret.read(secret, "cli_Shop1") == record
    assert "tk-1" not in repr(record)
    # Another app's, or not the operator's: an empty record.
    assert ticketsecret.read(secret, "cli_other") == StoreRecord("cli_other")
    unlabelled = {**secret, "metadata": {**secret["metadata"], "labels": {}}}
    assert ticketsecret.read(unlabelled, "cli_Shop1") == StoreRecord("cli_Shop1")
    bad = {**secret, "data": {**secret["data"], "tenants": b64('["ok", "../no", 3]')}}
    assert ticketsecret.read(bad, "cli_Shop1").tenants == {"ok"}
