"""What users see when things go wrong: every Open Platform error code maps to its
documented condition reason and hint; upstream faults never blank a good token; a
missing or late Secret is a condition, picked up within seconds when fixed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lark_operator.vocabulary.hints import hint_for
from tests.helpers.wait import always, eventually

pytestmark = pytest.mark.integration

# code -> (reason, CredentialsValid status, retried soon?) per shared/lark-open-api.md
CODES: dict[int, tuple[str, str, bool]] = {
    10003: ("InvalidCredentials", "False", False),
    10012: ("InvalidCredentials", "False", False),
    10013: ("InvalidCredentials", "False", False),
    10014: ("InvalidCredentials", "False", False),
    10015: ("InvalidCredentials", "False", False),
    99991543: ("InvalidCredentials", "False", False),
    99991401: ("IPDenied", "False", False),
    99991403: ("QuotaExceeded", "False", False),
    99991662: ("AppDisabled", "False", False),
    99991673: ("AppDisabled", "False", False),
    99991672: ("ScopeMissing", "False", False),
    99991400: ("RateLimited", "Unknown", True),
    99991405: ("RateLimited", "Unknown", True),
    1500: ("UpstreamUnavailable", "Unknown", True),
    5000: ("UpstreamUnavailable", "Unknown", True),
    10101: ("UpstreamUnavailable", "Unknown", True),
    99991663: ("UnknownError", "Unknown", True),
    99991664: ("UnknownError", "Unknown", True),
    99991665: ("UnknownError", "Unknown", True),
    99991661: ("UnknownError", "Unknown", False),
    4242424: ("UnknownError", "Unknown", True),
}


def test_every_error_code_ends_in_its_reason_hint_and_retry_behaviour(env_factory: Any) -> None:
    apps = {f"cli_code{code}": f"secret-{code}" for code in CODES}
    env = env_factory(apps, start=False)
    for code in CODES:
        env.emu.fault(app_id=f"cli_code{code}", code=code, ratelimit_reset=1)
        env.app_secret(f"s-{code}", f"secret-{code}")
    env.start_operator()
    t0 = time.monotonic()
    for code in CODES:
        env.larkapp(f"code-{code}", f"cli_code{code}", secret_name=f"s-{code}")

    def settled() -> bool:
        for code, (reason, _, _) in CODES.items():
            st = env.kube.larkapp(env.ns, f"code-{code}").get("status") or {}
            if (st.get("lastError") or {}).get("reason") != reason:
                return False
        return True

    eventually(settled, 60, interval=0.5, what="every LarkApp reporting its reason")

    def calls(code: int) -> int:
        return env.emu.token_calls(f"cli_code{code}")

    # Retries (or their absence) show: no configuration error is tried again in the first
    # 15 s, and every other code is retried, with backoff, within about that.
    always(
        lambda: all(calls(c) == 1 for c, (_, _, retried) in CODES.items() if not retried),
        max(0.0, 15 - (time.monotonic() - t0)),
        interval=0.5,
        what="configuration errors not retried",
    )
    eventually(
        lambda: all(calls(c) >= 2 for c, (_, _, retried) in CODES.items() if retried),
        20,
        interval=0.5,
        what="every other code retried",
    )

    for code, (reason, cred_status, retried) in CODES.items():
        name = f"code-{code}"
        st = env.kube.larkapp(env.ns, name)["status"]
        conds = {c["type"]: c for c in st["conditions"]}
        assert st["lastError"]["reason"] == reason, (code, st["lastError"])
        assert st["lastError"]["hint"] == hint_for(reason)
        assert st["lastError"]["code"] == code
        assert str(code) in st["lastError"]["message"]
        assert conds["CredentialsValid"]["status"] == cred_status, (code, conds)
        assert conds["CredentialsValid"]["reason"] == reason
        assert conds["TokenReady"]["status"] == "False"
        assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == reason
        assert hint_for(reason) in conds["Ready"]["message"]
        assert st["phase"] == "Failed"
        n = calls(code)
        if retried:
            assert 2 <= n <= 40, f"{code}: expected retries with backoff, got {n} calls"
        else:
            assert n == 1, f"{code}: configuration errors must not be retried soon ({n})"
    reasons = env.kube.event_reasons(env.ns, "code-10014")
    assert "CredentialsInvalid" in reasons


APP, SECRET = "cli_fault01", "s3cret-fault-value"
FAULTS: dict[str, dict[str, Any]] = {
    "http-500": {"http_status": 500},
    "reset": {"reset": True},
    "malformed-json": {"malformed": "json_garbage"},
    "html-page": {"malformed": "html", "http_status": 502},
    "truncated": {"malformed": "truncated"},
}


def test_faults_keep_the_last_good_token_and_recover_within_one_retry(env_factory: Any) -> None:
    """Token ttl 70 s, re-issue window 65 s, renewBefore 1m: refresh due ~10 s after issue.
    Each fault lasts past that point; the Secret keeps the good token, TokenReady stays
    True (RefreshFailed), Ready degrades; once the fault stops, a new token comes within
    the near-expiry retry cap (30 s)."""
    apps = {f"{APP}{i}": SECRET for i in range(len(FAULTS))}
    env = env_factory(apps, token_ttl=70, reissue_window=65)
    env.app_secret("lark-secret", SECRET)
    names = list(FAULTS)
    for i, _ in enumerate(names):
        env.larkapp(f"f{i}", f"{APP}{i}")
    good = {i: eventually(lambda i=i: env.token(f"f{i}"), 30) for i in range(len(names))}
    for i, kind in enumerate(names):
        env.emu.fault(app_id=f"{APP}{i}", **FAULTS[kind])

    def all_failing() -> bool:
        return all(
            (env.kube.condition(env.ns, f"f{i}", "TokenReady") or {}).get("reason")
            == "RefreshFailed"
            for i in range(len(names))
        )

    eventually(all_failing, 40, interval=0.5, what="refreshes failing")
    for i, kind in enumerate(names):
        assert env.token(f"f{i}") == good[i], f"{kind}: the good token must stay"
        tok = env.kube.condition(env.ns, f"f{i}", "TokenReady")
        assert tok and tok["status"] == "True", kind
        ready = env.kube.condition(env.ns, f"f{i}", "Ready")
        assert ready and ready["status"] == "False", kind
        assert env.kube.larkapp(env.ns, f"f{i}")["status"]["phase"] == "Degraded"

    env.emu.clear_faults()
    t0 = time.monotonic()
    eventually(
        lambda: all(env.token(f"f{i}") != good[i] for i in range(len(names))),
        35,
        interval=0.5,
        what="new tokens after the faults stop",
    )
    recovery = time.monotonic() - t0
    assert recovery <= 32, recovery
    for i in range(len(names)):
        eventually(lambda i=i: env.ready(f"f{i}"), 10)


def test_missing_secret_then_created_late_is_picked_up_within_seconds(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.larkapp("late", APP, secret_name="not-yet")
    eventually(
        lambda: (
            (env.kube.condition(env.ns, "late", "CredentialsValid") or {}).get("reason")
            == "SecretNotFound"
        ),
        20,
    )
    st = env.kube.larkapp(env.ns, "late")["status"]
    assert st["lastError"]["hint"] == hint_for("SecretNotFound")

    env.kube.put_secret(env.ns, "not-yet", {"wrongKey": SECRET})
    env.secrets.add(SECRET)
    eventually(
        lambda: (
            (env.kube.condition(env.ns, "late", "CredentialsValid") or {}).get("reason")
            == "SecretKeyMissing"
        ),
        10,
        what="SecretKeyMissing within seconds",
    )

    t0 = time.monotonic()
    env.kube.put_secret(env.ns, "not-yet", {"appSecret": SECRET})
    eventually(lambda: env.ready("late"), 10, what="Ready within seconds of the fix")
    assert time.monotonic() - t0 < 10


def test_app_secret_deleted_and_recreated_with_the_same_value_within_seconds(
    env_factory: Any,
) -> None:
    """Deleted (e.g. by a GitOps prune) and put back unchanged: the value is what the last
    successful refresh used, yet the LarkApp is failing, so it is retried at once through
    the Secret watch — not after the 30 s credentials backoff."""
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.ready("app"), 30, what="Ready")
    env.kube.delete_secret(env.ns, "lark-secret")
    eventually(
        lambda: env.kube.condition(env.ns, "app", "CredentialsValid")["reason"] == "SecretNotFound",
        10,
        what="SecretNotFound within seconds",
    )
    t0 = time.monotonic()
    env.app_secret("lark-secret", SECRET)
    eventually(
        lambda: env.kube.condition(env.ns, "app", "CredentialsValid")["reason"] == "Valid",
        10,
        what="Valid again within seconds of the Secret's return",
    )
    eventually(lambda: env.ready("app"), 10, what="Ready again")
    print(f"\nrecreated app Secret picked up in {time.monotonic() - t0:.1f}s")


def test_wrong_secret_then_rotated_to_the_right_one(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", "definitely-wrong-secret")
    env.larkapp("app", APP)
    eventually(
        lambda: (
            (env.kube.condition(env.ns, "app", "CredentialsValid") or {}).get("reason")
            == "InvalidCredentials"
        ),
        20,
    )
    calls = env.emu.token_calls(APP)
    always(lambda: env.emu.token_calls(APP) == calls, 5, what="no hot loop on invalid credentials")
    env.app_secret("lark-secret", SECRET)
    eventually(lambda: env.ready("app"), 10, what="retry as soon as the Secret changes")
    reasons = env.kube.event_reasons(env.ns, "app")
    assert "CredentialsInvalid" in reasons and "CredentialsValidated" in reasons
    assert reasons.index("CredentialsInvalid") < reasons.index("CredentialsValidated")


def test_token_secret_that_cannot_be_written_is_reported_and_retried(env_factory: Any) -> None:
    from kubernetes import client

    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.kube.core.create_namespaced_secret(
        env.ns,
        client.V1Secret(
            # The operator's (labelled, as it labels what it creates) but immutable: a write
            # the API server refuses. (A Secret without the label is not written at all:
            # SecretNotOwned, tests/integration/hostile/test_ownership.py.)
            metadata=client.V1ObjectMeta(
                name="app-lark-token", labels={"app.kubernetes.io/managed-by": "lark-operator"}
            ),
            immutable=True,
            string_data={"other": "team's data"},
        ),
    )
    env.larkapp("app", APP)
    eventually(
        lambda: (
            (env.kube.larkapp(env.ns, "app").get("status") or {}).get("lastError", {}).get("reason")
            == "SecretWriteFailed"
        ),
        30,
    )
    tok = env.kube.condition(env.ns, "app", "TokenReady")
    assert tok and tok["status"] == "False", tok  # the Secret holds no token of ours
    assert env.kube.secret(env.ns, "app-lark-token") == {"other": "team's data"}
    env.kube.delete_secret(env.ns, "app-lark-token")
    eventually(lambda: env.ready("app"), 40, what="written once the conflict is gone")
    assert env.token("app")
