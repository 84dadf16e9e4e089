"""The series the alerts read, as the reconciler sets them: through a token's life, an
operator restart (also after the token expired while it was down), suspension and
deletion. Fake apiserver and scripted Open Platform (tests/unit/fakes.py)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from lark_operator import metrics
from lark_operator.openplatform import OpenPlatformError
from lark_operator.openplatform.errors import ErrorKind
from lark_operator.reconcile.publish import Publisher
from lark_operator.reconcile.reconciler import Reconciler
from lark_operator.reconcile.refresh import Failed
from lark_operator.reconcile.state import TokenState
from lark_operator.settings import Settings
from lark_operator.status.facts import ErrorFacts
from lark_operator.vocabulary.reasons import Reason
from tests.helpers.clock import Clock
from tests.unit.fakes import FakeKube, ScriptedClient

NS = "obs"


def value(metric: str, /, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(metric, labels)


def body(name: str, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name, "uid": f"u-{name}", "generation": 1},
        "spec": {
            "appId": "cli_obsunit01",
            "appSecretRef": {"name": "lark"},
            "refresh": {"renewBefore": "10m", "jitter": 0},
            **spec,
        },
        "status": copy.deepcopy(status or {}),
    }


def controller(kube: FakeKube, client: ScriptedClient, clock: Clock) -> Reconciler:
    return Reconciler(kube, client, Settings(), clock=clock, rng=lambda: 0.5)


def reason(name: str, ctype: str) -> set[str]:
    """The reasons with a series at 1 for this LarkApp's condition type."""
    return {
        s.labels["reason"]
        for fam in metrics.REGISTRY.collect()
        if fam.name == "lark_service_condition_reason"
        for s in fam.samples
        if s.labels["namespace"] == NS and s.labels["name"] == name and s.labels["type"] == ctype
    }


async def test_series_through_restart_suspension_and_deletion() -> None:
    name = f"app-{uuid.uuid4().hex[:6]}"
    clock, kube = Clock(), FakeKube()
    client = ScriptedClient(clock)
    kube.put_app_secret(NS, "lark", {"appSecret": "the-secret"})
    ready_before = value("lark_service_larkapps", phase="Ready") or 0
    pending_before = value("lark_service_larkapps", phase="Pending") or 0

    ctl = controller(kube, client, clock)
    ctl.observe(body(name))
    assert value("lark_service_larkapps", phase="Pending") == pending_before + 1
    app = ctl.registry.apps[(NS, name)]
    await ctl.reconcile(app)
    expiry = clock.now + 7200
    labels = {"namespace": NS, "name": name}
    assert value("lark_service_token_expiry_timestamp_seconds", **labels, token="tenant") == expiry
    assert value("lark_service_consecutive_failures", **labels) == 0
    assert value("lark_service_condition", **labels, type="Ready", status="True") == 1
    assert reason(name, "TokenReady") == {"Issued"}
    assert value("lark_service_larkapps", phase="Ready") == ready_before + 1
    assert value("lark_service_larkapps", phase="Pending") == pending_before

    # The operator is down for three hours; the token in the Secret expired meanwhile and
    # the platform now refuses the app. A new process must still export what the Secret
    # serves (LarkTokenExpired) and the failures (LarkTokenRefreshFailing / Credentials).
    status = app.published.status
    metrics.forget_larkapp(NS, name)
    metrics.count_phase("Ready", None)
    clock.now += 3 * 3600
    client.error = OpenPlatformError.from_answer(
        endpoint="/open-apis/auth/v3/tenant_access_token/internal",
        code=10014,
        http_status=200,
        msg="scripted",
    )
    ctl2 = controller(kube, client, clock)
    ctl2.observe(body(name, status))
    await ctl2.reconcile(ctl2.registry.apps[(NS, name)])
    assert value("lark_service_token_expiry_timestamp_seconds", **labels, token="tenant") == expiry
    assert value("lark_service_consecutive_failures", **labels) == 1
    assert value("lark_service_condition", **labels, type="CredentialsValid", status="False") == 1
    assert reason(name, "CredentialsValid") == {"InvalidCredentials"}
    # The expired token in the Secret is adopted: status says Expired until a refresh
    # replaces it, and the gauge above is what makes LarkTokenExpired fire.
    assert reason(name, "TokenReady") == {"Expired"}

    # Suspended: the Ready reason the alerts exclude by, and no stale phase count.
    ctl2.observe(body(name, ctl2.registry.apps[(NS, name)].published.status, suspend=True))
    await ctl2.reconcile(ctl2.registry.apps[(NS, name)])
    assert reason(name, "Ready") == {"Suspended"}

    # Deleted: every per-LarkApp series is gone and it is counted nowhere.
    counted = ctl2.registry.apps[(NS, name)].published.phase
    assert counted == "Suspended"
    before = value("lark_service_larkapps", phase=counted) or 0
    await ctl2.remove(body(name, suspend=True))
    assert value("lark_service_larkapps", phase=counted) == before - 1
    assert value("lark_service_token_expiry_timestamp_seconds", **labels, token="tenant") is None
    assert value("lark_service_consecutive_failures", **labels) is None
    assert reason(name, "Ready") == set()


def test_failure_log_gives_the_delay_chosen_not_what_is_left_of_it(caplog: Any) -> None:
    """The log line says the wait the retry policy chose (>= its 1 s floor), measured from
    when it was chosen: a loop that reaches the log 0.1 s later must not print 0.9 s."""
    clock = Clock()
    pub = Publisher(FakeKube(), clock, probe_status_every=60)
    at = clock()
    after = TokenState(failures=1, next_refresh_at=at + 1.0)
    err = ErrorFacts(Reason.UPSTREAM_UNAVAILABLE, "connection refused")
    clock.advance(0.1)
    with caplog.at_level("WARNING", logger="lark_operator.reconcile"):
        pub.outcome(TokenState(), after, Failed(ErrorKind.TRANSIENT, err), at)
    assert "next try in 1.0s" in caplog.text, caplog.text
