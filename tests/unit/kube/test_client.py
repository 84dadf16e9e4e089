"""The operator's client sends the loader's credential and keeps it fresh: a rotated token
file, an exec credential past its expiry, a 401 answered by one renewal and one retry."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from lark_operator.kube import KubeClient, KubeError
from lark_operator.kube.auth import (
    RENEWAL_RETRY_SECONDS,
    TOKEN_FILE_REREAD_SECONDS,
    Auth,
    Credential,
    Tls,
)
from lark_operator.kube.kubeconfig import Kubeconfig
from tests.helpers.clock import Clock
from tests.unit.kube.conftest import FakePlugin, write_kubeconfig

EXPIRY = dt.datetime(2027, 1, 15, 8, 0, tzinfo=dt.UTC)


class Apiserver:
    """Records the Authorization of each request; refuses the tokens in `refused`."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        self.refused: set[str] = set()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        self.seen.append(auth)
        if auth in self.refused:
            return web.json_response({"reason": "Unauthorized", "message": "no"}, status=401)
        return web.json_response({"kind": "Secret", "metadata": {"name": "s"}})


@pytest.fixture
async def apiserver() -> AsyncIterator[Apiserver]:
    server = Apiserver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def client_for(apiserver: Apiserver) -> AsyncIterator[Callable[[Auth], KubeClient]]:
    made: list[KubeClient] = []

    def make(auth: Auth) -> KubeClient:
        made.append(KubeClient(auth))
        return made[-1]

    yield make
    for kube in made:
        await kube.close()


def exec_auth(tmp_path: Path, apiserver: Apiserver, plugin: FakePlugin, clock: Clock) -> Auth:
    path = write_kubeconfig(
        tmp_path / "cfg",
        cluster={"server": apiserver.url},
        user={"exec": {"command": str(plugin.command)}},
    )
    return Kubeconfig.read([Path(path)]).auth(clock=clock)


async def test_rotated_token_file_is_sent_after_the_reread(
    tmp_path: Path, apiserver: Apiserver, client_for: Callable[[Auth], KubeClient]
) -> None:
    token, clock = tmp_path / "token", Clock()
    token.write_text("one")
    path = write_kubeconfig(
        tmp_path / "cfg", cluster={"server": apiserver.url}, user={"tokenFile": str(token)}
    )
    kube = client_for(Kubeconfig.read([Path(path)]).auth(clock=clock))
    await kube.get_secret("ns", "s")
    token.write_text("two")
    await kube.get_secret("ns", "s")
    clock.now += TOKEN_FILE_REREAD_SECONDS
    await kube.get_secret("ns", "s")
    assert apiserver.seen == ["Bearer one", "Bearer one", "Bearer two"]


async def test_exec_credential_renewed_when_it_expires(
    tmp_path: Path,
    apiserver: Apiserver,
    plugin: FakePlugin,
    client_for: Callable[[Auth], KubeClient],
) -> None:
    plugin.expire_at(EXPIRY)
    clock = Clock(EXPIRY.timestamp() - 600)
    kube = client_for(exec_auth(tmp_path, apiserver, plugin, clock))
    await kube.get_secret("ns", "s")
    await kube.get_secret("ns", "s")
    plugin.expire_at(EXPIRY + dt.timedelta(hours=1))
    clock.now = EXPIRY.timestamp()
    await kube.get_secret("ns", "s")
    await kube.get_secret("ns", "s")
    assert apiserver.seen == ["Bearer tok-1"] * 2 + ["Bearer tok-2"] * 2
    assert plugin.runs() == 2


async def test_a_401_runs_the_plugin_again_and_retries_once(
    tmp_path: Path,
    apiserver: Apiserver,
    plugin: FakePlugin,
    client_for: Callable[[Auth], KubeClient],
) -> None:
    clock = Clock()
    kube = client_for(exec_auth(tmp_path, apiserver, plugin, clock))
    apiserver.refused = {"Bearer tok-1"}  # revoked before its time
    assert await kube.get_secret("ns", "s") == {"kind": "Secret", "metadata": {"name": "s"}}
    assert apiserver.seen == ["Bearer tok-1", "Bearer tok-2"]
    # Every answer refused: one renewal and one retry, then the 401 is the caller's...
    apiserver.refused |= {"Bearer tok-2", "Bearer tok-3", "Bearer tok-4"}
    clock.now += RENEWAL_RETRY_SECONDS
    with pytest.raises(KubeError) as err:
        await kube.get_secret("ns", "s")
    assert err.value.status == 401
    assert apiserver.seen[2:] == ["Bearer tok-2", "Bearer tok-3"] and plugin.runs() == 3
    # ...and the plugin is not run for every refused request.
    with pytest.raises(KubeError):
        await kube.get_secret("ns", "s")
    assert apiserver.seen[4:] == ["Bearer tok-3"] and plugin.runs() == 3
    clock.now += RENEWAL_RETRY_SECONDS
    with pytest.raises(KubeError):
        await kube.get_secret("ns", "s")
    assert apiserver.seen[5:] == ["Bearer tok-3", "Bearer tok-4"] and plugin.runs() == 4


async def test_a_static_token_refused_is_not_retried(
    apiserver: Apiserver, client_for: Callable[[Auth], KubeClient]
) -> None:
    kube = client_for(Auth(apiserver.url, Tls(), Credential("static")))
    apiserver.refused = {"Bearer static"}
    with pytest.raises(KubeError) as err:
        await kube.get_secret("ns", "s")
    assert err.value.status == 401 and apiserver.seen == ["Bearer static"]
