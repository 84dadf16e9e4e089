"""What Flux and kpt read: the real kstatus library (hack/kstatus) on LarkApps.

First every state of tests/helpers/gitops_cases as the status code writes it; then the real
operator with three LarkApps read from the apiserver with `kubectl get -o json`: Ready reads
Current, a wrong App Secret Failed (Flux fails fast), one the Open Platform is slow to answer
InProgress; and each moves on once the cause is gone.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.gitops_cases import CASES, larkapp
from tests.helpers.wait import eventually
from tests.integration.gitops.conftest import Kstatus

pytestmark = pytest.mark.integration

SECRET = "s3cret-gitops-ok"


def test_every_state_the_operator_writes(kstatus: Kstatus) -> None:
    results = kstatus({"apiVersion": "v1", "kind": "List", "items": [larkapp(c) for c in CASES]})
    got = {r["name"]: r["status"] for r in results}
    assert got == {c.name: c.kstatus for c in CASES}
    for case, result in zip(CASES, results, strict=True):
        conds = {c["type"]: c for c in larkapp(case)["status"]["conditions"]}
        if result["status"] == "Failed":  # the cause and hint, as `kpt live status` shows
            assert result["message"] == conds["Stalled"]["message"]
        elif case.reconciling:
            assert result["message"] == conds["Reconciling"]["message"]


def _get(env: Any, name: str) -> dict[str, Any]:
    out = env.kube.kubectl("get", "larkapp", name, "-n", env.ns, "-o", "json").stdout
    return dict(json.loads(out))


def _conds(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def test_kstatus_on_the_real_operator(env_factory: Any, kstatus: Kstatus) -> None:
    apps = {"cli_gitopsready": SECRET, "cli_gitopsstall": SECRET, "cli_gitopsslow": SECRET}
    env = env_factory(apps, start=False)
    env.app_secret("good", SECRET)
    env.app_secret("wrong", "not-the-app-secret")
    env.emu.fault(app_id="cli_gitopsslow", latency_ms=60_000)  # answers after the client gives up
    env.larkapp("ready", "cli_gitopsready", secret_name="good")
    env.larkapp("stalled", "cli_gitopsstall", secret_name="wrong")
    env.larkapp("working", "cli_gitopsslow", secret_name="good")

    # Applied, and no operator has looked yet: not Current (the CRD's status default).
    [unseen] = kstatus(_get(env, "ready"))
    assert unseen["status"] == "InProgress", unseen
    assert "latest observed generation is 0" in unseen["message"]

    env.start_operator()

    def status_of(name: str, want: str) -> dict[str, Any] | None:
        obj = _get(env, name)
        [res] = kstatus(obj)
        return {"obj": obj, **res} if res["status"] == want else None

    ready = eventually(lambda: status_of("ready", "Current"), 60, what="ready -> Current")
    assert _conds(ready["obj"])["Ready"]["status"] == "True"

    stalled = eventually(lambda: status_of("stalled", "Failed"), 60, what="stalled -> Failed")
    conds = _conds(stalled["obj"])
    assert conds["Stalled"]["reason"] == "InvalidCredentials"
    assert stalled["message"] == conds["Stalled"]["message"]
    assert "Hint:" in stalled["message"]

    # Working: the operator has written status for this generation and says it is at work
    # (kstatus then reports Reconciling's message, not a generation it has not seen).
    def reconciling() -> dict[str, Any] | None:
        res = status_of("working", "InProgress")
        if res is None:
            return None
        rec = _conds(res["obj"]).get("Reconciling")
        return res if rec and rec["status"] == "True" else None

    working = eventually(reconciling, 60, what="working -> InProgress, Reconciling=True")
    rec = _conds(working["obj"])["Reconciling"]
    assert working["message"] == rec["message"]
    assert (
        working["obj"]["status"]["observedGeneration"] == working["obj"]["metadata"]["generation"]
    )
    assert _conds(working["obj"])["Stalled"]["status"] == "False"

    # `kubectl wait` works on the same conditions.
    for name, condition in (("ready", "Ready"), ("stalled", "Stalled")):
        env.kube.kubectl(
            "wait", f"--for=condition={condition}", f"larkapp/{name}", "-n", env.ns, "--timeout=30s"
        )

    # Neither Failed nor InProgress is final: fix the cause and each becomes Current.
    env.emu.clear_faults()
    env.app_secret("wrong", SECRET)
    for name in ("working", "stalled"):
        eventually(lambda n=name: status_of(n, "Current"), 90, what=f"{name} -> Current")
