"""`Reconciling` and `Stalled`: the two conditions GitOps tools read, from the others.

kstatus (sigs.k8s.io/cli-utils, what Flux, kpt and Config Sync decide health with) reads an
object as InProgress while status.observedGeneration lags metadata.generation, then takes the
first of `Reconciling=True` (InProgress) and `Stalled=True` (Failed), and only then looks at
`Ready` (True: Current; False or Unknown: InProgress). So:

- Ready                                   -> both False           -> Current
- stopped until a person acts (STALLED)   -> Stalled=True         -> Failed (Flux fails fast)
- anything else not Ready (first token,
  first probe, a transient upstream error,
  a dependency failing its probe)         -> Reconciling=True     -> InProgress
- suspended (spec.suspend)                -> both False           -> InProgress (Ready=False)

A dependency that fails its probe is not Stalled: it is often one the same sync is still
starting, and the operator probes it again every interval. docs/gitops/README.md says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lark_operator.hints import HINTS

# Condition reasons that stop a LarkApp until a person acts, per condition type; a condition
# counts only while its status is False. The one definition (DESIGN.md, "Stalled").
STALLED: Mapping[str, frozenset[str]] = {
    "CredentialsValid": frozenset(
        {
            "InvalidCredentials",
            "SecretNotFound",
            "SecretKeyMissing",
            "DomainNotAllowed",
            "NotAllowed",
            "IPDenied",
            "AppDisabled",
            "ScopeMissing",
            "QuotaExceeded",
        }
    ),
    "TokenReady": frozenset({"SecretNotOwned", "TemplateError"}),
    "AppAvailable": frozenset({"AppDisabled", "LicenseExpired", "PlanExpired"}),
}


def _condition(
    ctype: str, status: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def stalled_by(
    conditions: Sequence[Mapping[str, Any]], generation: int
) -> Mapping[str, Any] | None:
    """The first current condition that says a person must act, or None."""
    by_type = {c.get("type"): c for c in conditions}
    for ctype, reasons in STALLED.items():
        c = by_type.get(ctype)
        if (
            c is not None
            and c.get("status") == "False"
            and c.get("reason") in reasons
            and c.get("observedGeneration", generation) == generation
        ):
            return c
    return None


def gitops_conditions(
    conditions: Sequence[Mapping[str, Any]], generation: int
) -> list[dict[str, Any]]:
    """[Reconciling, Stalled] for a status whose other conditions are `conditions` (Ready
    among them), computed for metadata.generation `generation`. Never both True."""

    def pair(
        reconciling: tuple[bool, str, str], stalled: tuple[bool, str, str]
    ) -> list[dict[str, Any]]:
        return [
            _condition("Reconciling", *reconciling, generation),
            _condition("Stalled", *stalled, generation),
        ]

    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None or ready.get("observedGeneration", generation) != generation:
        seen = "none" if ready is None else ready.get("observedGeneration")
        message = f"Generation {generation} not reconciled yet (conditions are for {seen})."
        return pair((True, "LatestGenerationNotObserved", message), (False, "Reconciling", message))
    if ready.get("status") == "True":
        return pair(
            (False, "Ready", f"Ready for generation {generation}."),
            (False, "Ready", "Ready: nothing waits for a person."),
        )
    if ready.get("reason") == "Suspended":
        message = "Suspended (spec.suspend): nothing is reconciled until it is set to false."
        return pair((False, "Suspended", message), (False, "Suspended", message))
    cause = stalled_by(conditions, generation)
    if cause is not None:
        reason = str(cause.get("reason"))
        hint = HINTS.get(reason)
        message = f"{cause.get('message', '')}{f' Hint: {hint}' if hint else ''}".strip()
        return pair(
            (False, "Stalled", f"Stopped: a person must act ({reason}); see Stalled."),
            (True, reason, message),
        )
    reason = str(ready.get("reason") or "Pending")
    message = str(ready.get("message") or "Working toward Ready.")
    return pair(
        (True, reason, message),
        (False, "Reconciling", "Not stalled: still working toward Ready (see Reconciling)."),
    )
