"""LarkApp states and what each GitOps tool must read from them.

Each case is a status built by the real `build_status` from facts, with the answer expected
from our `Reconciling`/`Stalled`, from kstatus (the real library, hack/kstatus) and from the
Argo CD health check (docs/gitops/argocd-health.lua, run by a real Lua 5.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lark_operator.status.build import build_status
from lark_operator.status.facts import Credentials, ErrorFacts, Observed, TokenFacts
from lark_operator.vocabulary.dependencies import Dependency
from lark_operator.vocabulary.reasons import Reason as R

NOW = 1_800_000_000.0
GEN = 3
TOKEN = TokenFacts("app-lark-token", NOW + 3600, NOW - 100, NOW + 3000, "sha256:abc", False)
VALID = Credentials(R.VALID, "App cli_a authenticated.")


@dataclass(frozen=True)
class Case:
    name: str
    obs: Observed
    reconciling: bool  # expected Reconciling status
    stalled: str | None  # expected Stalled reason when Stalled=True, else None
    kstatus: str  # Current | Failed | InProgress
    argocd: str  # Healthy | Degraded | Progressing | Suspended
    spec: dict[str, Any] = field(default_factory=dict)
    generation: int = GEN  # metadata.generation of the object (status is for GEN)


def _bad(reason: str, message: str, code: int | None = None, token: bool = False) -> Observed:
    """Credentials refused for `reason`; with `token`, after a token was issued."""
    return Observed(
        GEN,
        NOW,
        credentials=Credentials(R(reason), message),
        token=TOKEN if token else None,
        last_error=ErrorFacts(R(reason), message, code, NOW),
        consecutive_failures=1,
    )


def _probe(reason: str | None, healthy: bool = False) -> Observed:
    probes = {}
    if reason is not None:
        message = "answered in 2 ms" if healthy else "connection refused (postgres:5432)"
        probes["postgres"] = {"healthy": healthy, "reason": reason, "message": message}
    return Observed(
        GEN,
        NOW,
        credentials=VALID,
        token=TOKEN,
        configured_probes=(Dependency.POSTGRES,),
        probes=probes,
    )


def _transient(reason: str, token: bool) -> Observed:
    return Observed(
        GEN,
        NOW,
        credentials=VALID if token else Credentials(R(reason), "HTTP 503 from the Open Platform"),
        token=TOKEN if token else None,
        last_error=ErrorFacts(R(reason), "HTTP 503 from the Open Platform", None, NOW),
        consecutive_failures=2,
    )


STALLED_CREDENTIALS = {
    "InvalidCredentials": "code 10014: app secret invalid",
    "SecretNotFound": "Secret lark-secret not found in namespace ns.",
    "SecretKeyMissing": "Secret lark-secret has no key appSecret.",
    "DomainNotAllowed": "spec.domain https://evil.example is not allowed.",
    "IPDenied": "code 99991401: ip denied",
    "AppDisabled": "code 99991662: app disabled",
    "ScopeMissing": "code 99991672: scope missing",
    "QuotaExceeded": "code 99991403: quota exceeded",
}

CASES: list[Case] = [
    Case(
        "ready",
        Observed(GEN, NOW, credentials=VALID, token=TOKEN),
        False,
        None,
        "Current",
        "Healthy",
    ),
    Case("ready-with-probe", _probe("Healthy", healthy=True), False, None, "Current", "Healthy"),
    Case("first-token", Observed(GEN, NOW), True, None, "InProgress", "Progressing"),
    Case("first-probe", _probe(None), True, None, "InProgress", "Progressing"),
    *[
        Case(f"stalled-{reason}", _bad(reason, msg), False, reason, "Failed", "Degraded")
        for reason, msg in STALLED_CREDENTIALS.items()
    ],
    Case(
        "stalled-after-token",
        _bad("InvalidCredentials", "code 10014: app secret invalid", 10014, token=True),
        False,
        "InvalidCredentials",
        "Failed",
        "Degraded",
    ),
    Case(
        "secret-not-owned",
        Observed(
            GEN,
            NOW,
            last_error=ErrorFacts(R.SECRET_NOT_OWNED, "Secret db-password is not ours.", None, NOW),
        ),
        False,
        "SecretNotOwned",
        "Failed",
        "Degraded",
    ),
    Case(
        "upstream-down",
        _transient("UpstreamUnavailable", False),
        True,
        None,
        "InProgress",
        "Progressing",
    ),
    Case("rate-limited", _transient("RateLimited", False), True, None, "InProgress", "Progressing"),
    Case(
        "refresh-failing",
        _transient("UpstreamUnavailable", True),
        True,
        None,
        "InProgress",
        "Progressing",
    ),
    Case(
        "expired",
        Observed(
            GEN,
            TOKEN.expires_at + 1,
            credentials=VALID,
            token=TOKEN,
            last_error=ErrorFacts(R.UPSTREAM_UNAVAILABLE, "HTTP 503", None, NOW),
        ),
        True,
        None,
        "InProgress",
        "Progressing",
    ),
    Case("probe-unreachable", _probe("Unreachable"), True, None, "InProgress", "Progressing"),
    Case("probe-auth-failed", _probe("AuthFailed"), True, None, "InProgress", "Progressing"),
    Case(
        "suspended",
        Observed(GEN, NOW, suspended=True, credentials=VALID, token=TOKEN),
        False,
        None,
        "InProgress",
        "Suspended",
        spec={"suspend": True},
    ),
    Case(
        "new-generation",
        Observed(GEN, NOW, credentials=VALID, token=TOKEN),
        False,
        None,
        "InProgress",
        "Progressing",
        generation=GEN + 1,
    ),
]


def larkapp(case: Case) -> dict[str, Any]:
    """The LarkApp as `kubectl get -o json` would show it."""
    return {
        "apiVersion": "larkservice.io/v1alpha1",
        "kind": "LarkApp",
        "metadata": {"name": case.name, "namespace": "team-a", "generation": case.generation},
        "spec": {"appId": "cli_a", "appSecretRef": {"name": "lark-secret"}, **case.spec},
        "status": build_status(case.obs, None).to_dict(),
    }
