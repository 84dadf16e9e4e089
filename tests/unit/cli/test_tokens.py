"""validate / token-info / refresh-token through main(), against the emulator.

main() runs its own event loop, so the emulator runs in a background thread; tests drive
it through its HTTP controls as a user would."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import types
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from lark_operator.cli.main import main
from lark_operator.emulator import running_emulator

APP, SECRET = "cli_tokens1", "tokens-secret-1"


class Emulator:
    def __init__(self) -> None:
        self.base_url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        async with running_emulator({APP: SECRET}) as handle:
            self.base_url = handle.base_url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Emulator:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=5) as answer:
            return json.load(answer)

    def current_token(self, kind: str = "tenant") -> str:
        tokens = self.control("GET", f"/_emulator/tokens/{APP}")["tokens"]
        return next(t["token"] for t in tokens if t["current"] and t["type"] == kind)

    def calls(self) -> int:
        return int(self.control("GET", "/_emulator/calls")["total"])


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture(autouse=True)
def clean(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.control("DELETE", "/_emulator/faults")
    emulator.control("DELETE", "/_emulator/calls")
    monkeypatch.setenv("LARK_APP_SECRET", SECRET)


def run(emulator: Emulator, *argv: str) -> int:
    allow = ["--allowed-base-url", emulator.base_url]
    return main([argv[0], "--app-id", APP, "--domain", emulator.base_url, *allow, *argv[1:]])


def test_validate_ok(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(emulator, "validate") == 0
    out = capsys.readouterr().out
    assert f"credentials of {APP} are valid" in out
    assert "sha256:" in out
    assert emulator.current_token() not in out
    assert emulator.calls() == 1


def test_validate_json(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(emulator, "validate", "-o", "json", "--token-type", "app") == 0
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] and body["valid"] and body["token_type"] == "app"
    assert body["app_id"] == APP and body["base_url"] == emulator.base_url
    assert "token" not in body


def test_token_info_text_never_prints_the_token(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(emulator, "token-info") == 0
    out = capsys.readouterr().out
    for field in ("fingerprint:", "expires_at:", "remaining:", "renewable:"):
        assert field in out
    assert "1h59m" in out
    assert emulator.current_token() not in out


def test_token_info_json(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(emulator, "token-info", "-o", "json") == 0
    body = json.loads(capsys.readouterr().out)
    assert 7190 <= body["expires_in_seconds"] <= 7200
    assert body["expires_at"].endswith("Z")
    assert body["fingerprint"].startswith("sha256:") and "token" not in body
    assert body["renewable"] is False


def test_refresh_token_shows_the_token_only_when_asked(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(emulator, "refresh-token") == 0
    hidden = capsys.readouterr().out
    assert "sha256:" in hidden and emulator.current_token() not in hidden
    assert "re-issues" in hidden  # explains why the same token comes back
    assert run(emulator, "refresh-token", "--show-token") == 0
    assert f"token: {emulator.current_token()}" in capsys.readouterr().out
    assert run(emulator, "refresh-token", "--show-token", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["token"] == emulator.current_token()


def test_wrong_secret_exits_1_with_reason_code_and_hint(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LARK_APP_SECRET", "the-wrong-secret")
    assert run(emulator, "validate") == 1
    captured = capsys.readouterr()
    assert "InvalidCredentials" in captured.err and "10014" in captured.err
    assert "hint:" in captured.err
    assert "the-wrong-secret" not in captured.err + captured.out
    assert emulator.calls() == 1  # not retried


def test_error_as_json(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator.control("POST", "/_emulator/faults", {"code": 99991401})
    assert run(emulator, "token-info", "-o", "json") == 1
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is False
    assert (body["error"]["reason"], body["error"]["code"]) == ("IPDenied", 99991401)
    assert "allowlist" in body["error"]["hint"]


def test_rate_limit_reports_retry_after(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.control("POST", "/_emulator/faults", {"code": 99991400, "ratelimit_reset": 90})
    assert run(emulator, "validate") == 1
    err = capsys.readouterr().err
    assert "RateLimited" in err and "retry after: 1m30s" in err


def test_missing_secret_env_exits_2(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LARK_APP_SECRET")
    assert run(emulator, "validate") == 2
    assert "LARK_APP_SECRET is not set" in capsys.readouterr().err
    assert emulator.calls() == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--app-id", APP, "--domain", "ftp://example.com"],
        ["validate", "--app-id", APP, "--domain", "example.com"],
        ["validate", "--app-id", "not-an-app-id"],
        ["validate", "--larkapp", "just-a-name"],
    ],
)
def test_config_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["validate"],  # neither --app-id nor --larkapp
        ["validate", "--app-id", APP, "--larkapp", "ns/name"],
        ["validate", "--app-id", APP, "--app-secret", SECRET],  # no such flag, on purpose
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_larkapp_without_cluster_module_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "lark_operator.cli.cluster", None)  # import fails
    assert main(["token-info", "--larkapp", "default/my-app"]) == 2
    assert "not available" in capsys.readouterr().err


def test_larkapp_resolves_through_the_cluster_module(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, str]] = []

    def resolve_larkapp(namespace: str, name: str, allowed: list[str]) -> tuple[str, str, str]:
        seen.append((namespace, name))
        assert allowed == ["http://from-flag:1"]  # the flag reaches the cluster path
        return emulator.base_url, APP, SECRET

    fake = types.ModuleType("lark_operator.cli.cluster")
    fake.resolve_larkapp = resolve_larkapp  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lark_operator.cli.cluster", fake)
    monkeypatch.delenv("LARK_APP_SECRET")  # not needed on this path
    argv = ["validate", "--larkapp", "team/my-app", "--allowed-base-url", "http://from-flag:1"]
    assert main([*argv, "-o", "json"]) == 0
    assert seen == [("team", "my-app")]
    assert json.loads(capsys.readouterr().out)["app_id"] == APP
    assert emulator.calls() == 1


def fake_cluster(monkeypatch: pytest.MonkeyPatch, read: Any) -> None:
    """A cluster module whose only way to a token is the token Secret (`read`)."""
    from lark_operator.cli.cluster import HeldToken, NoToken

    def resolve_larkapp(*args: Any, **kw: Any) -> Any:
        raise AssertionError("token-info --larkapp must not read the app secret")

    fake = types.ModuleType("lark_operator.cli.cluster")
    fake.HeldToken, fake.NoToken = HeldToken, NoToken  # type: ignore[attr-defined]
    fake.resolve_larkapp = resolve_larkapp  # type: ignore[attr-defined]
    fake.read_larkapp_token = read  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lark_operator.cli.cluster", fake)


def test_token_info_larkapp_reads_the_token_secret_not_the_platform(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib
    import time

    from lark_operator.cli.cluster import HeldToken

    held = "t-held-in-the-secret"
    expires = time.time() + 900

    async def read(namespace: str, name: str, token_type: str | None = None) -> HeldToken:
        assert (namespace, name, token_type) == ("team", "my-app", None)
        return HeldToken({}, "my-app-lark-token", APP, emulator.base_url, "tenant", held, expires)

    fake_cluster(monkeypatch, read)
    assert main(["token-info", "--larkapp", "team/my-app", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fingerprint"] == "sha256:" + hashlib.sha256(held.encode()).hexdigest()[:12]
    assert doc["secret"] == "my-app-lark-token" and doc["larkapp"] == "team/my-app"
    assert doc["renewable"] is True and 890 <= doc["expires_in_seconds"] <= 900
    assert emulator.calls() == 0
    assert main(["token-info", "--larkapp", "team/my-app"]) == 0
    text = capsys.readouterr().out
    assert "secret:      my-app-lark-token" in text and held not in text


def test_token_info_larkapp_without_a_token_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lark_operator.cli.cluster import NoToken

    async def read(namespace: str, name: str, token_type: str | None = None) -> Any:
        raise NoToken("LarkApp team/my-app has no token yet: Secret my-app-lark-token ...")

    fake_cluster(monkeypatch, read)
    assert main(["token-info", "--larkapp", "team/my-app"]) == 1
    assert "has no token yet: Secret my-app-lark-token" in capsys.readouterr().err


def test_larkapp_lookup_failure_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def resolve_larkapp(namespace: str, name: str, allowed: list[str]) -> tuple[str, str, str]:
        raise LookupError("larkapps.larkservice.io 'gone' not found")

    fake = types.ModuleType("lark_operator.cli.cluster")
    fake.resolve_larkapp = resolve_larkapp  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lark_operator.cli.cluster", fake)
    assert main(["validate", "--larkapp", "team/gone"]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["validate", "token-info", "refresh-token"])
def test_a_url_domain_not_allowed_is_refused_before_any_call(
    emulator: Emulator,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LARK_OPERATOR_ALLOWED_BASE_URLS", raising=False)
    assert main([command, "--app-id", APP, "--domain", emulator.base_url]) == 2
    err = capsys.readouterr().err
    assert f"DomainNotAllowed: --domain {emulator.base_url} is not an allowed base URL" in err
    assert f"--allowed-base-url {emulator.base_url}" in err
    assert len(err.strip().splitlines()) == 1
    assert emulator.calls() == 0
    # Allowed by the environment variable the operator reads (a trailing slash is the same).
    monkeypatch.setenv("LARK_OPERATOR_ALLOWED_BASE_URLS", f"http://other:1,{emulator.base_url}/")
    assert main([command, "--app-id", APP, "--domain", emulator.base_url]) == 0
    assert emulator.calls() == 1


def test_app_secret_from_the_environment_is_normalised_as_the_operator_does(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LARK_APP_SECRET", f"  {SECRET}\r\n")
    assert run(emulator, "validate") == 0
    monkeypatch.setenv("LARK_APP_SECRET", " \n ")
    assert run(emulator, "validate") == 2
    assert "LARK_APP_SECRET is not set" in capsys.readouterr().err
    assert emulator.calls() == 1
