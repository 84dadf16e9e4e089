"""Refresh capacity: how many refreshes per second this replica completes (measured), and
the plan that keeps a refresh wave inside it.

LarkApps created together (a GitOps sync, an install) have tokens that expire together.
Each refresh costs two apiserver writes; when the refreshes due in a window need more than
the replica completes in it, the last of the wave would renew after expiry. Nothing forces
that: the platform re-issues a token at any time in its last 30 minutes. So once a second
the plan looks at every refresh to come and, when the ones due by some time need more than
the measured capacity until then, starts the difference now — earliest expiry first, never
before the re-issue window (`Due.earliest`), and only into capacity that is idle now, so a
refresh brought forward never delays work that is due (and a replica that is simply too
small is not made busier by it). The planner starts each at a random moment of the second,
so the next cycle of the wave is spread as well. When even starting every refresh as early
as allowed cannot keep up, the plan names the LarkApps whose token would lapse, before it
does.

`plan` is pure; `Throughput` is the measurement; reconcile/planner.py runs them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# A refresh needs a moment between its start and the token Secret holding the new token.
MARGIN = 5.0
# How far past its planned time (as a share of the time then left to expiry) a refresh may
# start before the plan brings others forward: a few refreshes due in the same second are
# not a wave.
SLIP = 0.25
# Before any measurement (a replica on a laptop does far more).
PRIOR = 10.0


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Due(Generic[K]):
    """A refresh to come."""

    key: K
    due: float  # when it is planned (renewBefore ahead of expiry)
    earliest: float  # the platform re-issues a token only from here on
    expires: float  # the token it replaces
    running: bool = False  # its reconcile is in flight now


_EXPIRES, _DUE = operator.attrgetter("expires"), operator.attrgetter("due")


@dataclass
class Plan(Generic[K]):
    start_now: list[K] = field(default_factory=list)  # brought forward, by expiry
    at_risk: dict[K, float] = field(default_factory=dict)  # key -> projected start

    @property
    def shortfall(self) -> int:
        return len(self.at_risk)


def plan(
    upcoming: Iterable[Due[K]],
    *,
    now: float,
    capacity: float,
    busy: int = 0,
    tick: float = 1.0,
    margin: float = MARGIN,
    measured: bool = True,
) -> Plan[K]:
    """What to start now, and what would lapse even so.

    `capacity`: refreshes per second; `busy`: runs in flight or queued for a slot (they
    come before anything started now); `tick`: until the next plan.
    - Demand: the k-th refresh due (in due order, after what is busy) must have started
      by its due time (plus SLIP); `capacity` per second from now on starts that many; the
      excess starts now, as far as the capacity of this tick left idle by busy work and by
      refreshes due in it allows. With nothing busy, up to twice the capacity: if the
      replica completes them, the measurement learns it can do more. A capacity not
      `measured` yet (a prior, or a floor) counts for half in the demand: a wave starts
      early enough for the measurement to come in before it is late.
    - Projection: at the full capacity, in expiry order, none before its re-issue window:
      a start later than expiry - margin is a token that lapses.
    """
    items = sorted(upcoming, key=_EXPIRES)
    out: Plan[K] = Plan()
    if not items or capacity <= 0:
        return out
    pending = [d for d in items if d.due > now and not d.running]
    excess, k = float(busy), busy
    pace = capacity if measured else capacity / 2
    for d in sorted(pending, key=_DUE):
        k += 1
        latest = d.due + SLIP * max(0.0, d.expires - d.due)
        excess = max(excess, k - pace * (latest - now))
    want = math.ceil(excess - 1e-9) - busy
    soon = sum(1 for d in pending if d.due <= now + tick)
    # At least one when nothing is busy: a replica pinned below one per tick still moves.
    idle = max(math.floor((1 if busy else 2) * capacity * tick), 0 if busy else 1) - busy - soon
    if min(want, idle) > 0:
        movable = [d.key for d in pending if d.earliest <= now and d.due > now + tick]
        out.start_now = movable[: min(want, idle)]
    # Projection at full capacity: what is busy first, then every refresh not started.
    due_now = sum(1 for d in items if d.due <= now and not d.running)
    t, step = now + max(0, busy - due_now) / capacity, 1.0 / capacity
    for d in items:
        if d.running:
            continue
        start = max(t, d.earliest)
        if start + margin > d.expires:
            out.at_risk[d.key] = start
        t = start + step
    return out


class Throughput:
    """Refreshes per second this replica completes. Measured in the seconds it had more
    work than slots at both ends (saturated) and that work was mostly refreshes (a
    restart's first pass over every LarkApp is not); any other second's count is a lower
    bound. Before any measurement: `prior`. `pinned` (a setting) replaces the measurement
    altogether."""

    def __init__(self, prior: float = PRIOR, *, pinned: float | None = None, alpha: float = 0.3):
        self.rate = pinned or prior
        self.pinned, self.alpha = pinned, alpha
        self.measured = pinned is not None
        self._refreshes = self._runs = 0

    def done(self, refreshed: bool) -> None:
        """A reconcile completed (`refreshed`: it asked for a token)."""
        self._runs += 1
        self._refreshes += refreshed

    def tick(self, seconds: float, saturated: bool) -> float:
        refreshes, runs = self._refreshes, self._runs
        self._refreshes = self._runs = 0
        if self.pinned or seconds <= 0:
            return self.rate
        sample = refreshes / seconds
        if saturated and refreshes >= 0.8 * runs > 0:
            a = self.alpha if self.measured else 1.0  # the first measurement replaces the prior
            self.rate = (1 - a) * self.rate + a * sample
            self.measured = True
        elif sample > self.rate:
            self.rate = sample
        self.rate = max(self.rate, 1.0)
        return self.rate
