"""What the operator keeps per LarkApp, split by concern: identity and spec, the token it
holds, the work pending, the token Secret as last written, and what was last published."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lark_operator.models import LarkAppSpec
from lark_operator.reconcile.storeprogress import StoreProgress
from lark_operator.status.facts import AvailabilityFacts, Credentials, ErrorFacts
from lark_operator.tokens.secret import HeldTokens

Key = tuple[str, str]  # (namespace, name)


class Work(StrEnum):
    """Why a LarkApp needs a reconcile besides its schedule."""

    REFRESH = "refresh"  # a new app/secret/domain/token set, or `kubectl lark refresh`
    CREDENTIALS = "credentials"  # its app Secret changed: retry at once if the value did
    TOKEN_SECRET = "token-secret"  # its token Secret changed (or its name): check, repair
    PROBES = "probes"  # its probe config or a probe's Secret changed
    STORE = "store"  # a store app's ticket or tenants changed: get what is due or missing


@dataclass(slots=True)
class TokenState:
    """The tokens held and how getting them went."""

    held: HeldTokens | None = None
    lifetime: float | None = None  # of the last token obtained (`expire` as returned)
    refreshed_at: float | None = None
    renewed: bool = False  # replaced at least once: TokenReady says Refreshed, not Issued
    next_refresh_at: float | None = None
    credentials: Credentials | None = None
    last_error: ErrorFacts | None = None
    failures: int = 0
    secret_digest: str | None = None  # sha256 of the app secret the last refresh read
    # When the capacity plan projects the next refresh to start, if that is after expiry
    # (reconcile/capacity.py): status says so until the token is renewed.
    at_risk: float | None = None


@dataclass(slots=True)
class TokenSecretCopy:
    """What a refresh needs to write on top of the token Secret, with no read: the
    resourceVersion last written or verified (the write's precondition) and what others
    added to it (tokens/secret.py foreign_part: usually nothing). Not the Secret itself:
    its own content is built again from the spec and the tokens."""

    rv: str | None = None
    foreign: dict[str, Any] | None = None
    # Expiry of each token it serves (what the expiry alerts must see, even while the
    # operator holds no token of its own for this LarkApp, e.g. after appId changed).
    serving: dict[str, float] = field(default_factory=dict)
    # Names this LarkApp wrote under an earlier spec.target.secretName: released (per
    # deletionPolicy, only if still ours) once the new target holds the token.
    old_names: set[str] = field(default_factory=set)


WorkloadKey = tuple[str, str]  # (kind, name) in the LarkApp's namespace


@dataclass(slots=True)
class RolloutState:
    """target.rolloutRestart for the token the Secret holds: when each workload is due to
    be checked and rolled (reconcile/rollout.py), and what went wrong with which."""

    fingerprint: str | None = None  # of the token the plan is for
    workloads: frozenset[WorkloadKey] = frozenset()
    due: dict[WorkloadKey, float] = field(default_factory=dict)  # not yet seen carrying it
    failed: dict[WorkloadKey, tuple[str, str]] = field(default_factory=dict)  # reason, message


@dataclass(slots=True)
class Published:
    """What was last written to the status subresource, and exported as metrics."""

    status: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # status.probes entries
    probes_written_at: dict[str, float] = field(default_factory=dict)
    phase: str | None = None  # the phase this LarkApp is counted under in metrics
    availability: AvailabilityFacts | None = None  # what the status last built said
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(slots=True)
class App:
    namespace: str
    name: str
    uid: str | None = None
    generation: int = 0
    spec: LarkAppSpec | None = None
    spec_digest: str = ""  # of the spec as last seen, to spot changes (not a copy of it)
    token: TokenState = field(default_factory=TokenState)
    secret: TokenSecretCopy = field(default_factory=TokenSecretCopy)
    published: Published = field(default_factory=Published)
    rollout: RolloutState = field(default_factory=RolloutState)
    pending: set[Work] = field(default_factory=lambda: {Work.PROBES})
    refresh_request: str | None = None  # the refresh annotation value being handled
    refresh_request_done: str | None = None
    resumed: bool = False  # the token Secret was looked at after a (re)start
    removed: bool = False  # the LarkApp is gone: write nothing more for it
    write_failed: bool = False  # the last reconcile could not write what it should
    store: StoreProgress = field(default_factory=StoreProgress)  # store apps only
    availability: AvailabilityFacts | None = None  # bot/v3/info, once per refresh cycle

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    def body_ref(self) -> dict[str, Any]:
        return {"metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid}}
