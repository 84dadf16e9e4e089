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

from collections.abc import Sequence

from lark_operator.status.model import Condition
from lark_operator.vocabulary.hints import HINTS
from lark_operator.vocabulary.reasons import STALLED_BY, ConditionType, Reason

C, R = ConditionType, Reason


def _condition(ctype: ConditionType, status: bool, reason: str, message: str, g: int) -> Condition:
    return Condition(
        type=ctype,
        status="True" if status else "False",
        reason=reason,
        message=message,
        observedGeneration=g,
    )


def stalled_by(conditions: Sequence[Condition], generation: int) -> Condition | None:
    """The first current condition that says a person must act, or None."""
    by_type = {c.type: c for c in conditions}
    for ctype, reasons in STALLED_BY.items():
        c = by_type.get(ctype)
        if (
            c is not None
            and c.status == "False"
            and c.reason in reasons
            and c.observedGeneration == generation
        ):
            return c
    return None


def gitops_conditions(conditions: Sequence[Condition], generation: int) -> list[Condition]:
    """[Reconciling, Stalled] for a status whose other conditions are `conditions` (Ready
    among them), computed for metadata.generation `generation`. Never both True."""

    def pair(reconciling: tuple[bool, str, str], stalled: tuple[bool, str, str]) -> list[Condition]:
        return [
            _condition(C.RECONCILING, *reconciling, generation),
            _condition(C.STALLED, *stalled, generation),
        ]

    ready = next((c for c in conditions if c.type == C.READY), None)
    if ready is None or ready.observedGeneration != generation:
        seen = "none" if ready is None else ready.observedGeneration
        message = f"Generation {generation} not reconciled yet (conditions are for {seen})."
        not_yet = (True, R.LATEST_GENERATION_NOT_OBSERVED, message)
        return pair(not_yet, (False, R.RECONCILING, message))
    if ready.status == "True":
        return pair(
            (False, R.READY, f"Ready for generation {generation}."),
            (False, R.READY, "Ready: nothing waits for a person."),
        )
    if ready.reason == R.SUSPENDED:
        message = "Suspended (spec.suspend): nothing is reconciled until it is set to false."
        return pair((False, R.SUSPENDED, message), (False, R.SUSPENDED, message))
    cause = stalled_by(conditions, generation)
    if cause is not None:
        hint = HINTS.get(Reason(cause.reason))
        message = f"{cause.message}{f' Hint: {hint}' if hint else ''}".strip()
        return pair(
            (False, R.STALLED, f"Stopped: a person must act ({cause.reason}); see Stalled."),
            (True, cause.reason, message),
        )
    message = ready.message or "Working toward Ready."
    return pair(
        (True, ready.reason or R.PENDING, message),
        (False, R.RECONCILING, "Not stalled: still working toward Ready (see Reconciling)."),
    )
