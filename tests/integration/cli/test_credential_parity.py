"""The operator and the CLI never disagree on the same LarkApp's app Secret: both read it
through credentials.py. A value with a trailing newline or surrounding spaces is valid for
both (the emulator knows the stripped secret); a value that is not UTF-8 text, and an empty
one, are refused by both with the same reason, and neither sends anything upstream."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kubernetes import client

from tests.helpers.env import Env
from tests.helpers.wait import eventually
from tests.integration.cli.conftest import Cli, assert_nothing_leaked, stdout

pytestmark = pytest.mark.integration

# LarkApp name -> (app id, what its Secret holds); the platform knows the stripped value.
PADDED = {
    "newline": ("cli_paritynl", "parity-newline-secret\n"),
    "spaces": ("cli_paritysp", "  parity-spaces-secret  "),
}
REFUSED_APP, REFUSED_REAL = "cli_parityno", "parity-refused-secret"
BINARY = b"\x30\x82\x01\x0a\xff\xfe" + b"parity-binary-part"
REFUSED = {"binary": "InvalidCredentials", "empty": "SecretKeyMissing"}


def condition_reason(env: Env, name: str) -> str | None:
    cond = env.kube.condition(env.ns, name, "CredentialsValid")
    return cond.get("reason") if cond else None


def test_operator_and_cli_agree_on_app_secret_values(env_factory: Any, cli: Cli) -> None:
    known = {app: stored.strip() for app, stored in PADDED.values()}
    env: Env = env_factory({**known, REFUSED_APP: REFUSED_REAL})
    cli.allow(env.emu.url)
    for name, (app, stored) in PADDED.items():
        env.kube.put_secret(env.ns, f"s-{name}", {"appSecret": stored})
        env.larkapp(name, app, secret_name=f"s-{name}")
    env.secrets.add("parity-binary-part")
    env.kube.core.create_namespaced_secret(
        env.ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s-binary"),
            data={"appSecret": base64.b64encode(BINARY).decode(), "other": "eA=="},
        ),
    )
    env.kube.put_secret(env.ns, "s-empty", {"appSecret": "", "other": "x"})
    for name in REFUSED:
        env.larkapp(name, REFUSED_APP, secret_name=f"s-{name}")

    # The operator: the padded ones Ready, the others refused with their reason.
    for name in PADDED:
        eventually(lambda name=name: env.ready(name), 40, what=f"{name} Ready")
    for name, reason in REFUSED.items():
        eventually(
            lambda name=name, reason=reason: condition_reason(env, name) == reason,
            30,
            what=f"{name} {reason}",
        )

    # The CLI, both ways in, on the same LarkApps.
    for name, (app, _) in PADDED.items():
        calls = env.emu.token_calls(app)
        ok = cli.lark_operator("validate", "--larkapp", f"{env.ns}/{name}")
        assert ok.returncode == 0, stdout(ok)
        valid = cli.kubectl("lark", "validate", name, "-n", env.ns)
        assert valid.returncode == 0, stdout(valid)
        assert valid.stdout.startswith(f"VALID: LarkApp {env.ns}/{name} ({app})")
        assert env.emu.token_calls(app) == calls + 2  # both accepted by the platform
    said: dict[str, str] = {}
    for name, reason in REFUSED.items():
        via_larkapp = cli.lark_operator("validate", "--larkapp", f"{env.ns}/{name}")
        via_kubectl = cli.kubectl("lark", "validate", name, "-n", env.ns)
        for proc in (via_larkapp, via_kubectl):
            assert proc.returncode == 2, stdout(proc)
            assert f"{reason}: Secret s-{name} (spec.appSecretRef)" in proc.stderr
            # The operator says the same thing about the same Secret.
            cond = env.kube.condition(env.ns, name, "CredentialsValid") or {}
            assert f"{reason}: {cond['message']}" in proc.stderr, (cond, proc.stderr)
        said[name] = via_larkapp.stderr
    assert f"holds {len(BINARY)} bytes that are not UTF-8 text" in said["binary"]
    assert "(keys present: appSecret, other)" in said["empty"]
    assert env.emu.token_calls(REFUSED_APP) == 0
    assert_nothing_leaked(cli, env.secrets)
