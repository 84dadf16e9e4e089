"""App Secrets whose value is not what it should be.

Decisions:
- Leading/trailing whitespace (a newline from `echo secret | kubectl create secret
  --from-file`, CR LF from a Windows editor, stray tabs) is stripped: an App Secret never
  contains whitespace, and a stray newline is the most common way to get one wrong.
- A key that exists but is empty, or holds only whitespace: SecretKeyMissing, and nothing
  is sent upstream; fixing the Secret is picked up within seconds.
- A value that is not UTF-8 text (a DER file under the key): InvalidCredentials saying so
  (it used to read "has no non-empty key", which sends people looking for a missing key).
- A value of ~1 MiB (just under the API server's Secret size limit) is refused by the
  client before sending (InvalidCredentials, "N characters long", an App Secret has 32):
  the platform would answer 10003 at best, the emulator 413; the message must say what is
  wrong with the Secret rather than blame the network. Not a byte of it in logs, Events
  or status.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest
from kubernetes import client

from tests.helpers.wait import eventually
from tests.integration.hostile.conftest import last_error, reason

pytestmark = pytest.mark.integration

# app id -> (the App Secret the platform knows, what the Kubernetes Secret holds)
PADDED = {
    "cli_trailnl": ("trail-newline-secret", "trail-newline-secret\n"),
    "cli_crlf": ("crlf-secret-value", "crlf-secret-value\r\n"),
    "cli_padded": ("padded-secret-value", " \t padded-secret-value \t\n"),
}
EMPTY = {"cli_empty": ("empty-key-secret", ""), "cli_blank": ("blank-key-secret", " \n\t ")}
HUGE_SIZE = (1 << 20) - 4096  # the API server's limit is 1 MiB for all of a Secret's data


def test_hostile_app_secret_values(env_factory: Any) -> None:
    huge = "Sk3t" + secrets.token_urlsafe(HUGE_SIZE)[: HUGE_SIZE - 4]
    apps = {app_id: real for app_id, (real, _) in {**PADDED, **EMPTY}.items()}
    apps["cli_huge"] = "huge-app-real-secret"
    env = env_factory(apps)
    for app_id, (_, stored) in {**PADDED, **EMPTY}.items():
        # (blank values are not registered for the leak scan: "" is in every text)
        env.kube.put_secret(env.ns, f"s-{app_id[4:]}", {"appSecret": stored})
        env.larkapp(app_id[4:], app_id, secret_name=f"s-{app_id[4:]}")
    env.app_secret("s-huge", huge)
    # A file stored under the key instead of the secret: bytes that are not UTF-8 text.
    binary = b"\x30\x82\x01\x0a\xff\xfe" + b"Sk3t-binary-secret-part"
    env.secrets.add("Sk3t-binary-secret-part")
    env.kube.core.create_namespaced_secret(
        env.ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s-binary"),
            data={"appSecret": base64.b64encode(binary).decode()},
        ),
    )
    env.larkapp("binary", "cli_huge", secret_name="s-binary")
    # Any slice of it must not show up either (a truncated echo is still a leak).
    env.secrets.update({huge[:40], huge[HUGE_SIZE // 2 : HUGE_SIZE // 2 + 40], huge[-40:]})
    env.larkapp("huge", "cli_huge", secret_name="s-huge")

    # Whitespace around the secret: stripped, the token is issued with the real secret.
    for app_id in PADDED:
        name = app_id[4:]
        eventually(lambda name=name: env.ready(name), 40, what=f"{name} Ready")
        assert env.token(name) in {t["token"] for t in env.emu.tokens(app_id)["tokens"]}
        assert env.emu.token_calls(app_id) == 1

    # Empty or blank: SecretKeyMissing, nothing sent upstream.
    for app_id in EMPTY:
        name = app_id[4:]
        eventually(
            lambda name=name: reason(env, name, "CredentialsValid") == "SecretKeyMissing",
            30,
            what=f"{name} SecretKeyMissing",
        )
        cond = env.kube.condition(env.ns, name, "CredentialsValid")
        assert cond and cond["status"] == "False"
        assert f"s-{name}" in cond["message"] and "'appSecret'" in cond["message"]
        assert env.kube.larkapp(env.ns, name)["status"]["phase"] == "Failed"
        assert env.emu.token_calls(app_id) == 0

    # ~1 MiB: refused before sending, with a message about the Secret.
    eventually(
        lambda: reason(env, "huge", "CredentialsValid") == "InvalidCredentials",
        30,
        what="huge secret refused",
    )
    err = last_error(env, "huge")
    assert f"{len(huge)} characters long" in err["message"], err
    assert "not sent" in err["message"] and len(err["message"]) < 400
    assert env.emu.token_calls("cli_huge") == 0  # neither the huge nor the binary one sent
    cond = env.kube.condition(env.ns, "huge", "CredentialsValid")
    assert cond and cond["status"] == "False"
    assert "Warning" in {e.type for e in env.kube.events(env.ns, "huge")}
    eventually(
        lambda: "not UTF-8 text" in last_error(env, "binary").get("message", ""),
        30,
        what="binary value refused as not text",
    )
    assert reason(env, "binary", "CredentialsValid") == "InvalidCredentials"
    assert f"holds {len(binary)} bytes" in last_error(env, "binary")["message"]
    assert env.op.alive()

    # Fixing the Secrets is picked up within seconds (the Secret watch), no restart.
    for app_id, (real, _) in EMPTY.items():
        env.app_secret(f"s-{app_id[4:]}", real)
    env.app_secret("s-huge", "huge-app-real-secret\n")
    for name in ("empty", "blank", "huge"):
        eventually(lambda name=name: env.ready(name), 20, what=f"{name} Ready after the fix")
