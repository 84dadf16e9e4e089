"""target.rolloutRestart: after a new token lands in the token Secret, set
larkservice.io/token-fingerprint on the pod template of each workload named, so that
consumers that read the token once (environment variables) roll before the old one expires.

- Once per token: the workload itself carries what was applied, and it is read before any
  patch (the patch holds a resourceVersion precondition), so an operator restart or an HA
  failover rolls nothing twice.
- Spread: each workload's moment is a hash of (LarkApp, workload, token) over the first half
  of renewBefore after the token landed — the same on every replica — so a hundred workloads
  do not roll in the same second, and all of them roll while the old token is still valid.
- Only apps/v1 Deployments, StatefulSets and DaemonSets in the LarkApp's own namespace: the
  spec has no namespace field and the client knows no other kinds.
- A missing workload or a refused patch is the RolloutRestart condition (False), looked at
  again every RETRY seconds; never an exception out of the reconcile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from lark_operator.kube import KubeAPI, KubeError
from lark_operator.models import LarkAppSpec
from lark_operator.reconcile.state import App, RolloutState, WorkloadKey
from lark_operator.vocabulary.digests import sha256_hex
from lark_operator.vocabulary.names import TOKEN_FINGERPRINT_ANNOTATION
from lark_operator.vocabulary.reasons import Reason

log = logging.getLogger("lark_operator.reconcile")

RETRY = 60.0  # a missing workload or a refused patch is looked at again this often
ANNOTATION = TOKEN_FINGERPRINT_ANNOTATION


def slot(
    namespace: str,
    larkapp: str,
    workload: WorkloadKey,
    fingerprint: str,
    landed_at: float,
    renew_before: float,
) -> float:
    """When to roll `workload` for the token `fingerprint` that landed at `landed_at`:
    spread evenly over the first half of renewBefore, the same on every replica."""
    digest = sha256_hex(f"{namespace}/{larkapp}/{workload[0]}/{workload[1]}/{fingerprint}")
    return landed_at + int(digest[:8], 16) / 0xFFFFFFFF * renew_before / 2


class Rollouts:
    def __init__(self, kube: KubeAPI, clock: Callable[[], float] = time.time):
        self.kube, self.clock = kube, clock

    def plan(self, app: App, spec: LarkAppSpec) -> None:
        """Bring the plan in line with the token the Secret holds and the workloads named
        (no I/O). `spec` is the effective one (a ClusterLarkApp's renewBefore for appRef)."""
        wanted: frozenset[WorkloadKey] = frozenset(
            (str(w.kind), w.name) for w in spec.target.rollout_restart
        )
        held = app.token.held
        fingerprint = held.fingerprint() if held is not None else None
        old = app.rollout
        if (fingerprint, wanted) == (old.fingerprint, old.workloads):
            return
        if fingerprint is None or not wanted:
            app.rollout = RolloutState(fingerprint, wanted)
            return
        same = fingerprint == old.fingerprint
        landed = app.token.refreshed_at or self.clock()
        renew = spec.refresh.renew_before_seconds
        due = {
            w: slot(app.namespace, app.name, w, fingerprint, landed, renew)
            for w in wanted
            if not same or w not in old.workloads or w in old.due
        }
        # What went wrong stays said until that workload is looked at again (no flapping).
        failed = {w: f for w, f in old.failed.items() if w in wanted}
        app.rollout = RolloutState(fingerprint, wanted, due, failed)

    def next_due(self, app: App) -> float | None:
        return min(app.rollout.due.values(), default=None)

    async def run(self, app: App) -> None:
        """Check (and roll) every workload whose moment has come."""
        now = self.clock()
        for workload, at in sorted(app.rollout.due.items()):
            if at <= now and not app.removed:
                await self._one(app, workload, now)

    async def _one(self, app: App, workload: WorkloadKey, now: float) -> None:
        r, (kind, name) = app.rollout, workload
        fingerprint = str(r.fingerprint)
        try:
            body = await self.kube.get_workload(app.namespace, kind, name)
            if body is None:
                message = (
                    f"{kind} {name} not found in namespace {app.namespace} "
                    "(spec.target.rolloutRestart)."
                )
                r.failed[workload] = (Reason.WORKLOAD_NOT_FOUND, message)
                r.due[workload] = now + RETRY
                return
            if _applied(body) != fingerprint:
                patch = {
                    "metadata": {"resourceVersion": body["metadata"].get("resourceVersion")},
                    "spec": {"template": {"metadata": {"annotations": {ANNOTATION: fingerprint}}}},
                }
                await self.kube.patch_workload(app.namespace, kind, name, patch)
                log.info("rolled %s %s for token %s", kind, name, fingerprint)
        except KubeError as e:
            if e.status == 409:  # changed since read: read it again soon
                r.due[workload] = now + 1.0
                return
            r.failed[workload] = (Reason.ROLLOUT_FAILED, f"Rolling {kind} {name} failed: {e}")
            r.due[workload] = now + RETRY
            return
        r.due.pop(workload, None)
        r.failed.pop(workload, None)


def _applied(body: dict[str, Any]) -> str | None:
    template = (body.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)


def condition(app: App, spec: LarkAppSpec | None) -> tuple[str, str, str] | None:
    """The RolloutRestart condition as (status, reason, message); None: none configured."""
    named = spec.target.rollout_restart if spec is not None else ()
    if not named:
        return None
    failed = app.rollout.failed
    if failed:
        _, (reason, message) = sorted(failed.items())[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        return "False", reason, f"{message}{more}"
    names = ", ".join(f"{w.kind}/{w.name}" for w in named)
    message = (
        f"{names} roll within the first half of renewBefore after each new token "
        f"(pod template annotation {ANNOTATION})."
    )
    return "True", Reason.ENABLED, message
