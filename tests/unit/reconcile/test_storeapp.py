"""A store app's refresh (reconcile/storeapp.py) with a scripted platform: resend only when
no ticket is held and at most once per interval, 10012 drops the ticket, each tenant in its
own window, a failing tenant backs off alone while the others get their tokens, tenants
no longer wanted leave."""

from __future__ import annotations

from typing import Any

import pytest

from lark_operator.models import Refresh, StoreSpec
from lark_operator.openplatform import OpenPlatformError, Token
from lark_operator.reconcile import storeapp
from lark_operator.reconcile.refresh import Failed, Issued
from lark_operator.reconcile.storeprogress import StoreProgress
from lark_operator.reconcile.tickets import TicketBook
from lark_operator.settings import Settings
from lark_operator.tokens.secret import HeldTokens
from lark_operator.tokens.ticketsecret import secret_name
from lark_operator.vocabulary.reasons import Reason
from tests.helpers.clock import Clock
from tests.unit.fakes import FakeKube

APP = "cli_shop1"


class Platform:
    """Scripted store endpoints: tokens live `ttl` seconds; `fail` maps a tenant to a code."""

    def __init__(self, clock: Clock, ttl: float = 7200) -> None:
        self.clock, self.ttl = clock, ttl
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, int] = {}
        self.ticket_code = 0
        self.n = 0

    def _token(self, kind: str) -> Token:
        self.n += 1
        now = self.clock()
        return Token(f"{kind}-{self.n}", kind, now + self.ttl, now)

    async def store_app_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        app_ticket: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token:
        self.calls.append(("app", app_ticket))
        if self.ticket_code:
            raise OpenPlatformError.from_answer(
                endpoint="/open-apis/auth/v3/app_access_token",
                code=self.ticket_code,
                http_status=200,
                msg="get app access token fail",
            )
        return self._token("app")

    async def store_tenant_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        app_token: str,
        tenant_key: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token:
        tenant = tenant_key
        self.calls.append(("tenant", tenant))
        if tenant in self.fail:
            raise OpenPlatformError.from_answer(
                endpoint="/open-apis/auth/v3/tenant_access_token",
                code=self.fail[tenant],
                http_status=200,
                msg="get tenant access token fail",
            )
        return self._token("tenant")

    def invalidate_store(self, base_url: str, app_id: str, app_secret: str) -> None:
        self.calls.append(("invalidate", app_id))

    async def resend_ticket(
        self, base_url: str, app_id: str, app_secret: str, *, request_id: str | None = None
    ) -> None:
        self.calls.append(("resend", app_id))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def store(tenants: dict[str, Any]) -> StoreSpec:
    return StoreSpec.model_validate(
        {"encryptKeyRef": {"name": "k"}, "verificationTokenRef": {"name": "k"}, "tenants": tenants}
    )


async def run(
    platform: Platform,
    book: TicketBook,
    spec: StoreSpec,
    clock: Clock,
    held: HeldTokens | None = None,
    progress: StoreProgress | None = None,
    force: bool = False,
) -> Any:
    call = storeapp.StoreCall(
        APP,
        spec,
        Refresh.model_validate({"renewBefore": "10m", "jitter": 0}),
        "https://open.example",
        "app-secret",
    )
    return await storeapp.obtain(
        call,
        client=platform,
        book=book,
        held=held,
        lifetime=7200,
        progress=progress or StoreProgress(),
        settings=Settings(),
        force=force,
        now=clock(),
    )


async def test_no_ticket_one_resend_then_tokens_once_it_arrives(clock: Clock) -> None:
    kube, platform = FakeKube(), Platform(clock)
    book = TicketBook(kube, "lark-system", resend_interval=60, clock=clock)
    spec = store({"keys": ["t1", "t2"]})
    first = await run(platform, book, spec, clock)
    assert isinstance(first, Failed) and first.error.reason == Reason.TICKET_MISSING
    assert "event URL" in first.error.message
    again = await run(platform, book, spec, clock)
    assert isinstance(again, Failed)
    assert platform.calls == [("resend", APP)], "one resend per interval"
    await book.ticket(APP, "tk-1")
    assert kube.secrets[("lark-system", secret_name(APP))]["data"]["app_ticket"]
    out = await run(platform, book, spec, clock)
    assert isinstance(out, Issued)
    assert set(out.tokens.values) == {"app", "tenant:t1", "tenant:t2"}
    assert platform.calls[1:] == [("app", "tk-1"), ("tenant", "t1"), ("tenant", "t2")]


async def test_a_failing_tenant_backs_off_alone(clock: Clock) -> None:
    kube, platform = FakeKube(), Platform(clock)
    book = TicketBook(kube, "ns", clock=clock)
    await book.ticket(APP, "tk-1")
    spec, progress = store({"keys": ["good1", "bad", "good2"]}), StoreProgress()
    platform.fail["bad"] = 10013
    out = await run(platform, book, spec, clock, progress=progress)
    assert isinstance(out, Issued)
    assert set(out.tokens.values) == {"app", "tenant:good1", "tenant:good2"}
    retry = progress.failing["bad"].next_try_at
    assert clock() < retry and out.next_refresh_at == retry  # the next wake is its retry
    # Before its retry nothing is called again: the good tenants are not due either.
    platform.calls.clear()
    clock.now += 1
    same = await run(platform, book, spec, clock, held=out.tokens, progress=progress)
    assert isinstance(same, Issued) and platform.calls == []
    # At its retry only the failing tenant is asked; fixed, it joins the others.
    del platform.fail["bad"]
    clock.now = retry
    fixed = await run(platform, book, spec, clock, held=out.tokens, progress=progress)
    assert platform.calls == [("tenant", "bad")] and not progress.failing
    assert set(fixed.tokens.values) == {"app", "tenant:good1", "tenant:good2", "tenant:bad"}


async def test_each_tenant_renews_in_its_own_window(clock: Clock) -> None:
    kube, platform = FakeKube(), Platform(clock)
    book = TicketBook(kube, "ns", clock=clock)
    await book.ticket(APP, "tk-1")
    now = clock()
    held = HeldTokens(
        {"app": "a-0", "tenant:early": "t-e", "tenant:late": "t-l"},
        {"app": now + 7000, "tenant:early": now + 300, "tenant:late": now + 5000},
    )
    out = await run(platform, book, store({"keys": ["early", "late"]}), clock, held=held)
    assert platform.calls == [("tenant", "early")]
    assert out.tokens.values["tenant:late"] == "t-l" and out.tokens.values["app"] == "a-0"
    assert out.next_refresh_at == pytest.approx(now + 5000 - 600)


async def test_10012_drops_the_ticket_and_asks_a_resend(clock: Clock) -> None:
    kube, platform = FakeKube(), Platform(clock)
    book = TicketBook(kube, "ns", clock=clock)
    await book.ticket(APP, "tk-old")
    platform.ticket_code = 10012
    out = await run(platform, book, store({"keys": ["t1"]}), clock)
    assert isinstance(out, Failed) and out.error.reason == Reason.TICKET_MISSING
    assert "10012" in out.error.message
    assert (await book.record(APP)).ticket is None
    assert ("resend", APP) in platform.calls


async def test_tenants_all_follow_the_learned_set(clock: Clock) -> None:
    kube, platform = FakeKube(), Platform(clock)
    book = TicketBook(kube, "ns", clock=clock)
    await book.ticket(APP, "tk-1")
    spec, progress = store({"all": True}), StoreProgress()
    await book.tenant(APP, "app_open", "t1")
    await book.tenant(APP, "app_open", "t2")
    out = await run(platform, book, spec, clock, progress=progress)
    assert set(out.tokens.values) == {"app", "tenant:t1", "tenant:t2"}
    await book.tenant(APP, "app_uninstalled", "t2")
    out = await run(platform, book, spec, clock, held=out.tokens, progress=progress)
    assert set(out.tokens.values) == {"app", "tenant:t1"}
    # Persisted: a new book (a restart) reads the same tenants and ticket.
    fresh = TicketBook(kube, "ns", clock=clock)
    record = await fresh.record(APP)
    assert record.tenants == {"t1"} and record.ticket == "tk-1"


async def test_a_stale_ticket_asks_a_resend_and_status_says_ticket_missing(clock: Clock) -> None:
    from lark_operator.models import LarkAppSpec
    from lark_operator.reconcile.publish import Publisher
    from lark_operator.reconcile.state import App
    from lark_operator.status.facts import Credentials

    kube, platform = FakeKube(), Platform(clock)
    book = TicketBook(kube, "ns", clock=clock)
    await book.ticket(APP, "tk-1")
    progress = StoreProgress()
    clock.now += Settings().ticket_stale_after + 1  # no push for over 2 hours
    out = await run(platform, book, store({"keys": ["t1"]}), clock, progress=progress)
    assert isinstance(out, Issued)  # the last ticket still works...
    assert progress.ticket_stale and ("resend", APP) in platform.calls  # ...but ask again

    app = App(
        "ns",
        "shop",
        spec=LarkAppSpec.parse(
            {
                "appId": APP,
                "appSecretRef": {"name": "s"},
                "appType": "Store",
                "store": {
                    "encryptKeyRef": {"name": "k"},
                    "verificationTokenRef": {"name": "k"},
                    "tenants": {"keys": ["t1"]},
                },
            }
        ),
    )
    app.store = progress
    app.token.held = out.tokens
    app.token.credentials = Credentials(Reason.VALID, "ok")
    observed = Publisher(kube, clock, 300).observed(app)
    assert observed.credentials is not None
    assert observed.credentials.reason == Reason.TICKET_MISSING
    assert "event URL" in observed.credentials.message
    assert observed.store is not None and observed.store.tenants == 1
