"""target.template: the token Secret in the shape a workload asks for (keys and type), and a
template that does not render is TemplateError naming the key, with the last good Secret
left exactly as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lark_operator.vocabulary.names import REFRESH_ANNOTATION, REFRESH_HANDLED_ANNOTATION
from tests.helpers.wait import eventually

pytestmark = pytest.mark.integration

APP, SECRET = "cli_template01", "s3cret-template-value"
TEMPLATE = {
    "type": "example.com/lark-token",
    "data": {
        "lark.env": "LARK_TENANT_ACCESS_TOKEN={{ tenant_access_token }}\n"
        "LARK_TOKEN_EXPIRES_AT={{ expires_at }}\n",
        "config.json": '{"appId": {{ app_id|tojson }}, "token": {{ tenant_access_token|tojson }}}',
        "authorization": "Bearer {{ tenant_access_token }}",
    },
}


def _reason(env: Any, ctype: str) -> tuple[str, str] | None:
    c = env.kube.condition(env.ns, "app", ctype)
    return (c["status"], c["reason"]) if c else None


def test_template_renders_keys_and_type_and_a_broken_one_keeps_the_secret(
    env_factory: Any,
) -> None:
    env = env_factory({APP: SECRET}, token_ttl=100, reissue_window=95)
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP, target={"template": TEMPLATE})
    eventually(lambda: env.ready("app"), 30, what="Ready")

    token = env.emu.tokens(APP)["tokens"][0]["token"]
    env.secrets.add(token)
    obj = env.kube.secret_obj(env.ns, "app-lark-token")
    assert obj.type == "example.com/lark-token"
    data = env.kube.secret(env.ns, "app-lark-token")
    assert set(data) == {"lark.env", "config.json", "authorization"}  # exactly the template's
    expires = env.kube.larkapp(env.ns, "app")["status"]["token"]["expiresAt"]
    assert (
        data["lark.env"] == f"LARK_TENANT_ACCESS_TOKEN={token}\nLARK_TOKEN_EXPIRES_AT={expires}\n"
    )
    assert json.loads(data["config.json"]) == {"appId": APP, "token": token}
    assert data["authorization"] == f"Bearer {token}"

    # Broken: an unknown filter in one key. Nothing is written, whatever comes next.
    broken = {**TEMPLATE["data"], "authorization": "Bearer {{ tenant_access_token|nosuchfilter }}"}
    env.kube.patch_larkapp(env.ns, "app", {"spec": {"target": {"template": {"data": broken}}}})
    eventually(lambda: _reason(env, "TokenReady") == ("False", "TemplateError"), 15)
    message = env.kube.condition(env.ns, "app", "TokenReady")["message"]
    assert "authorization" in message and "nosuchfilter" in message
    assert _reason(env, "Stalled") == ("True", "TemplateError")
    eventually(  # posted right after the status write read above
        lambda: "TemplateError" in env.kube.event_reasons(env.ns, "app"), 10, what="Event"
    )
    before = env.kube.secret_obj(env.ns, "app-lark-token")
    calls = env.emu.token_calls(APP)
    # A new token from the platform now (`kubectl lark refresh`): it cannot be written.
    asked = {REFRESH_ANNOTATION: "while-broken"}
    env.kube.patch_larkapp(env.ns, "app", {"metadata": {"annotations": asked}})
    eventually(lambda: env.emu.token_calls(APP) > calls, 30, what="a refresh while broken")
    eventually(
        lambda: (
            env.kube.larkapp(env.ns, "app")["metadata"]["annotations"].get(
                REFRESH_HANDLED_ANNOTATION
            )
            == "while-broken"
        ),
        15,
    )
    after = env.kube.secret_obj(env.ns, "app-lark-token")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert env.kube.secret(env.ns, "app-lark-token") == data

    # Fixed, and the type changed: a new Secret of the new type with the current token.
    data_now = {k: None for k in broken} | {"token": "{{ tenant_access_token }}"}  # merge patch
    fixed = {"type": "Opaque", "data": data_now}
    env.kube.patch_larkapp(env.ns, "app", {"spec": {"target": {"template": fixed}}})
    eventually(lambda: env.ready("app"), 30, what="Ready after the fix")
    current = env.emu.tokens(APP)["tokens"][-1]["token"]
    env.secrets.add(current)
    eventually(lambda: env.kube.secret(env.ns, "app-lark-token") == {"token": current}, 15)
    assert env.kube.secret_obj(env.ns, "app-lark-token").type == "Opaque"


def test_template_refuses_what_could_stall_the_operator(env_factory: Any) -> None:
    """A template runs inside the operator, which serves every namespace: loops, calls and
    attribute access are refused by name, before anything runs."""
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    hostile = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    env.larkapp("app", APP, target={"template": {"data": {"boom": hostile}}})
    eventually(lambda: _reason(env, "TokenReady") == ("False", "TemplateError"), 30)
    assert "for is not allowed" in env.kube.condition(env.ns, "app", "TokenReady")["message"]
    assert env.kube.secret(env.ns, "app-lark-token") is None
    # The operator is not stuck: another LarkApp gets its token at once.
    env.larkapp("other", APP, target={"template": {"data": {"t": "{{ tenant_access_token }}"}}})
    eventually(lambda: env.ready("other"), 15, what="the other LarkApp Ready")
    for attack in ("{{ tenant_access_token.__class__ }}", "{{ lipsum.__globals__ }}"):
        env.kube.patch_larkapp(
            env.ns, "other", {"spec": {"target": {"template": {"data": {"t": attack}}}}}
        )
        eventually(lambda: _reason(env, "Stalled") == ("True", "TemplateError"), 15)
        msg = env.kube.condition(env.ns, "app", "TokenReady")["message"]
        assert "not allowed" in msg
