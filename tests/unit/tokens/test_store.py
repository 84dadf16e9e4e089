"""Writing and releasing the token Secret: how many requests each path costs, conflicts,
and refusing a Secret that is someone else's (written, adopted or deleted only when ours).
(Against the real apiserver: tests/integration/tokens and tests/integration/hostile.)"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from lark_operator.kube import KubeError
from lark_operator.models import LarkAppSpec
from lark_operator.tokens.secret import (
    HeldTokens,
    build_token_secret,
    foreign_part,
    written_base,
)
from lark_operator.tokens.store import SecretNotOwned, TokenSecretStore
from tests.unit.fakes import FakeKube

SPEC = LarkAppSpec.parse({"appId": "cli_x1", "appSecretRef": {"name": "s"}})
NAME = "app-lark-token"


class Kube(FakeKube):
    """FakeKube with optimistic concurrency on replace, and request counting."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        self.calls.append("GET")
        return await super().get_secret(ns, name)

    async def create_secret(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("POST")
        return await super().create_secret(ns, body)

    async def replace_secret(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("PUT")
        if (body["metadata"].get("namespace"), body["metadata"].get("name")) != (ns, name):
            raise KubeError(400, "the name of the object was undeterminable", "BadRequest")
        live = self.secrets.get((ns, name))
        if live is None:
            raise KubeError(404, "not found", "NotFound")
        if body["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise KubeError(409, "conflict", "Conflict")
        return await super().replace_secret(ns, name, body)


def desired(value: str, larkapp: str = "app", uid: str = "uid-1") -> dict[str, Any]:
    return build_token_secret(
        namespace="ns",
        larkapp_name=larkapp,
        larkapp_uid=uid,
        spec=SPEC,
        tokens=HeldTokens({"tenant": value}, {"tenant": 2000.0}),
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_after_a_refresh_each_write_is_one_request() -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    first = run(store.write(desired("t-1"), "uid-1", blind=True))
    second = run(store.write(desired("t-2"), "uid-1", blind=True, last_written=first))
    assert kube.calls == ["POST", "PUT"]
    assert second["data"] == desired("t-2")["data"]


def test_a_stale_copy_falls_back_to_read_compare_write() -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    first = run(store.write(desired("t-1"), "uid-1", blind=True))
    # Someone added a label meanwhile: our copy's resourceVersion is stale.
    labels = first["metadata"]["labels"]
    run(
        kube.replace_secret(
            "ns",
            NAME,
            {**first, "metadata": {**first["metadata"], "labels": {**labels, "x": "1"}}},
        )
    )
    kube.calls.clear()
    written = run(store.write(desired("t-2"), "uid-1", blind=True, last_written=first))
    assert kube.calls == ["PUT", "GET", "PUT"]
    assert written["data"] == desired("t-2")["data"]
    assert written["metadata"]["labels"]["x"] == "1"  # theirs kept


def test_an_unchanged_secret_is_not_written() -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    run(store.write(desired("t-1"), "uid-1", blind=True))
    kube.calls.clear()
    run(store.write(desired("t-1"), "uid-1"))
    assert kube.calls == ["GET"]


def test_another_live_larkapps_secret_is_refused() -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    theirs = desired("t-other", larkapp="other", uid="uid-2")
    theirs["metadata"]["name"] = NAME  # both write the same Secret name
    run(kube.create_secret("ns", theirs))
    kube.larkapps["other"] = {
        "metadata": {"name": "other"},
        "spec": {"appId": "cli_x1", "appSecretRef": {"name": "s"}, "target": {"secretName": NAME}},
    }
    with pytest.raises(SecretNotOwned, match="LarkApp 'other'"):
        run(store.write(desired("t-1"), "uid-1", blind=True))
    assert kube.secrets[("ns", NAME)]["data"] == theirs["data"]  # untouched
    # Once that LarkApp is gone, the Secret is free to take over.
    del kube.larkapps["other"]
    written = run(store.write(desired("t-1"), "uid-1"))
    assert written["data"] == desired("t-1")["data"]
    assert [o["uid"] for o in written["metadata"]["ownerReferences"]] == ["uid-1"]


def test_a_secret_controlled_by_something_else_is_refused() -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    kube.secrets[("ns", NAME)] = {
        "metadata": {
            "name": NAME,
            "resourceVersion": "1",
            "ownerReferences": [
                {"kind": "ExternalSecret", "name": "db", "uid": "x", "controller": True}
            ],
        },
        "data": {},
    }
    with pytest.raises(SecretNotOwned, match="ExternalSecret 'db'"):
        run(store.write(desired("t-1"), "uid-1"))


def _foreign(**meta: Any) -> dict[str, Any]:
    """An existing Secret lark-operator did not create (e.g. a database password)."""
    return {
        "metadata": {"name": NAME, "namespace": "ns", "resourceVersion": "7", **meta},
        "data": {"password": "aHVudGVyMg=="},
    }


def test_an_unrelated_secret_is_neither_written_nor_taken_over() -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    kube.secrets[("ns", NAME)] = _foreign()
    before = copy.deepcopy(kube.secrets[("ns", NAME)])
    for blind in (True, False):
        with pytest.raises(SecretNotOwned, match="not created by lark-operator") as e:
            run(store.write(desired("t-1"), "uid-1", blind=blind))
        assert "larkservice.io/adopt=true" in str(e.value)
    assert kube.secrets[("ns", NAME)] == before
    assert "PUT" not in kube.calls


def test_a_secret_its_owner_marked_for_adoption_is_taken_over() -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    kube.secrets[("ns", NAME)] = _foreign(annotations={"larkservice.io/adopt": "true"})
    written = run(store.write(desired("t-1"), "uid-1", blind=True))
    assert written["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "lark-operator"
    assert written["data"]["password"] == "aHVudGVyMg=="  # their key stays
    assert written["data"]["tenant_access_token"] == desired("t-1")["data"]["tenant_access_token"]
    assert [o["uid"] for o in written["metadata"]["ownerReferences"]] == ["uid-1"]


@pytest.mark.parametrize("delete", [True, False])
def test_release_touches_only_a_secret_that_is_ours(delete: bool) -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    for meta in (
        {},  # unrelated
        {"annotations": {"larkservice.io/adopt": "true"}},  # consent to adopt is not ours yet
        {"ownerReferences": [{"kind": "LarkApp", "name": "app", "uid": "uid-1"}]},
    ):
        kube.secrets[("ns", NAME)] = _foreign(**meta)
        before = copy.deepcopy(kube.secrets[("ns", NAME)])
        done = run(store.release("ns", NAME, "app", "uid-1", delete=delete))
        assert done.startswith("left alone"), done
        assert kube.secrets[("ns", NAME)] == before
    # Another LarkApp's token Secret is not ours to release either.
    kube.secrets.clear()
    other = desired("t-2", larkapp="other", uid="uid-2")
    other["metadata"]["name"] = NAME
    run(kube.create_secret("ns", other))
    theirs = copy.deepcopy(kube.secrets[("ns", NAME)])
    assert run(store.release("ns", NAME, "app", "uid-1", delete=delete)).startswith("left")
    assert kube.secrets[("ns", NAME)] == theirs


def test_release_deletes_or_cuts_the_owner_reference_of_ours() -> None:
    kube = Kube()
    store = TokenSecretStore(kube)
    run(store.write(desired("t-1"), "uid-1", blind=True))
    assert run(store.release("ns", NAME, "app", "uid-1", delete=False)) == (
        "kept, owner reference removed"
    )
    kept = kube.secrets[("ns", NAME)]
    assert not kept["metadata"].get("ownerReferences")
    assert kept["data"] == desired("t-1")["data"]
    assert run(store.release("ns", NAME, "app", "uid-1", delete=True)) == "deleted"
    assert ("ns", NAME) not in kube.secrets


def test_a_new_template_type_replaces_our_secret_and_only_ours() -> None:
    """A Secret's type is fixed for life: ours is deleted (in the version read) and created
    anew; the first write of a templated Secret still goes out blind (one request)."""
    kube = Kube()
    deleted: list[str | None] = []
    store = TokenSecretStore(kube)
    typed = LarkAppSpec.parse(
        {
            "appId": "cli_x1",
            "appSecretRef": {"name": "s"},
            "target": {"template": {"type": "example.com/t", "data": {"t": "{{ app_id }}"}}},
        }
    )

    def build(spec: LarkAppSpec) -> dict[str, Any]:
        return build_token_secret(
            namespace="ns",
            larkapp_name="app",
            larkapp_uid="uid-1",
            spec=spec,
            tokens=HeldTokens({"tenant": "t-1"}, {"tenant": 2000.0}),
        )

    first = run(store.write(build(typed), "uid-1", blind=True))
    assert kube.calls == ["POST"] and first["type"] == "example.com/t"
    original_delete = kube.delete_secret

    async def delete(ns: str, name: str, **kw: Any) -> bool:
        deleted.append(kw.get("resource_version"))
        return await original_delete(ns, name, **kw)

    kube.delete_secret = delete  # type: ignore[method-assign]
    back = run(store.write(build(SPEC), "uid-1", blind=True, last_written=first))
    assert back["type"] == "Opaque" and set(back["data"]) == {
        "tenant_access_token",
        "expires_at",
        "app_id",
    }
    assert deleted == [first["metadata"]["resourceVersion"]]
    assert kube.calls[1:] == ["GET", "POST"]  # no blind PUT the apiserver would refuse


def test_a_blind_write_from_the_compact_copy_keeps_what_others_added() -> None:
    """The reconciler keeps only the resourceVersion and the foreign part of what it wrote
    (tokens/secret.py foreign_part), not the Secret: the next write is still one PUT, and
    keeps others' label, annotation, finalizer and data key."""
    kube = Kube()
    store = TokenSecretStore(kube)
    first = run(store.write(desired("t-1"), "uid-1", blind=True))
    assert foreign_part(first, desired("t-1")) is None  # ours alone: nothing to keep
    meta = first["metadata"]
    edited = copy.deepcopy(first)
    edited["metadata"]["labels"]["team"] = "pay"
    edited["metadata"]["annotations"]["note"] = "keep"
    edited["metadata"]["finalizers"] = ["example.com/hold"]
    edited["data"]["extra"] = "eA=="
    seen = run(kube.replace_secret("ns", NAME, edited))  # e.g. the repair read it back
    foreign = foreign_part(seen, desired("t-1"))
    assert foreign is not None
    assert desired("t-1")["data"]["tenant_access_token"] not in repr(foreign)  # no token
    kube.calls.clear()
    base = written_base(seen["metadata"]["resourceVersion"], foreign)
    written = run(store.write(desired("t-2"), "uid-1", blind=True, last_written=base))
    assert kube.calls == ["PUT"]
    assert written["data"]["tenant_access_token"] == desired("t-2")["data"]["tenant_access_token"]
    assert written["data"]["extra"] == "eA=="
    assert written["metadata"]["labels"]["team"] == "pay"
    assert written["metadata"]["annotations"]["note"] == "keep"
    assert written["metadata"]["finalizers"] == ["example.com/hold"]
    assert written["metadata"]["ownerReferences"] == meta["ownerReferences"]
