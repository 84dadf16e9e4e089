"""target.template: what renders, what the sandbox refuses before anything runs, and the
token Secret a template shapes (type, exactly its keys, back to the standard shape)."""

from __future__ import annotations

import base64
import json

import pytest

from lark_operator.models import LarkAppSpec, TokenTemplate
from lark_operator.tokens.secret import (
    HeldTokens,
    build_token_secret,
    drift,
    merge_secret,
    read_token_secret,
    served_expiry,
)
from lark_operator.tokens.template import MAX_VALUE_BYTES, TemplateRenderError, render

TOKEN = "t-0123456789abcdef"
VARS = {
    "tenant_access_token": TOKEN,
    "app_id": "cli_t1",
    "expires_at": "2026-01-01T02:00:00Z",
}


def _render(**data: str) -> dict[str, str]:
    return render(TokenTemplate(data=data), VARS)


def test_env_file_json_config_and_bearer_header() -> None:
    out = _render(
        env="LARK_TOKEN={{ tenant_access_token }}\nEXPIRES={{ expires_at }}\n",
        json='{"app": {{ app_id|tojson }}, "token": {{ tenant_access_token|tojson }}}',
        auth="Bearer {{ tenant_access_token }}",
        b64="{{ tenant_access_token|b64encode }}",
        maybe="{% if app_access_token is defined %}{{ app_access_token }}{% else %}-{% endif %}",
    )
    assert out["env"] == f"LARK_TOKEN={TOKEN}\nEXPIRES=2026-01-01T02:00:00Z\n"
    assert json.loads(out["json"]) == {"app": "cli_t1", "token": TOKEN}
    assert out["auth"] == f"Bearer {TOKEN}"
    assert base64.b64decode(out["b64"]).decode() == TOKEN
    assert out["maybe"] == "-"


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("{{ app_access_token }}", "'app_access_token' is undefined"),  # not kept: no ""
        ("{{ config }}", "unknown variable 'config'"),
        ("{% for i in range(9) %}x{% endfor %}", "for is not allowed"),
        ("{{ tenant_access_token.__class__ }}", "getattr is not allowed"),
        ("{{ tenant_access_token['x'] }}", "getitem is not allowed"),
        ("{{ lipsum() }}", "call is not allowed"),
        ("{{ 'a' * 100000000 }}", "mul is not allowed"),
        ("{{ tenant_access_token + 'x' }}", "add is not allowed"),
        ("{% set x = 1 %}", "assign is not allowed"),
        ("{% macro m() %}{% endmacro %}", "macro is not allowed"),
        ("{{ tenant_access_token|replace('', 'xx') }}", "filter 'replace' is not allowed"),
        ("{{ tenant_access_token|upper(1) }}", "takes no arguments"),
        ("{{ tenant_access_token|format }}", "filter 'format' is not allowed"),
        ("{{ tenant_access_token" + "|b64encode" * 9 + " }}", "at most 8 filters"),
        ("{{ tenant_access_token", "TemplateSyntaxError (line 1)"),
        ("{{ 1.5 }}", "constants"),
    ],
)
def test_refused_before_anything_runs_and_never_quoting_a_token(source: str, said: str) -> None:
    with pytest.raises(TemplateRenderError) as e:
        _render(key=source)
    assert e.value.key == "key"
    assert str(e.value).startswith("spec.target.template.data['key']: ")
    assert said in str(e.value)
    assert TOKEN not in str(e.value)


def test_a_runtime_error_names_the_key_and_keeps_the_token_out() -> None:
    with pytest.raises(TemplateRenderError) as e:
        _render(fine="{{ app_id }}", bad="{{ tenant_access_token > 5 }}")
    assert e.value.key == "bad" and TOKEN not in str(e.value)


def test_output_is_capped() -> None:
    # A template's length is capped by the schema, not its output: 400 references of a
    # 200-byte value are 80,000 bytes.
    big = "{{ tenant_access_token }}" * 400
    with pytest.raises(TemplateRenderError, match="renders to 80000 bytes"):
        render(TokenTemplate(data={"k": big}), {**VARS, "tenant_access_token": "x" * 200})
    assert len(_render(k="{{ tenant_access_token }}")["k"]) < MAX_VALUE_BYTES


HELD = HeldTokens({"tenant": TOKEN}, {"tenant": 1_800_007_200.0})


def _spec(target: dict) -> LarkAppSpec:
    return LarkAppSpec.parse({"appId": "cli_t1", "appSecretRef": {"name": "s"}, "target": target})


def _build(spec: LarkAppSpec) -> dict:
    return build_token_secret(
        namespace="ns", larkapp_name="app", larkapp_uid="u", spec=spec, tokens=HELD
    )


def test_the_secret_a_template_shapes() -> None:
    templated = _build(
        _spec(
            {
                "template": {
                    "type": "example.com/token",
                    "data": {"auth": "Bearer {{ tenant_access_token }}"},
                }
            }
        )
    )
    assert templated["type"] == "example.com/token"
    assert templated["data"] == {"auth": base64.b64encode(f"Bearer {TOKEN}".encode()).decode()}
    assert templated["metadata"]["annotations"]["larkservice.io/templated"] == "true"
    # Its keys are the template's, whatever their names: never read back as tokens, but
    # what it serves is still known from its annotations (expiry alerts).
    assert read_token_secret(templated) is None
    assert served_expiry(templated) == {"tenant": 1_800_007_200.0}

    plain = _build(_spec({}))
    assert plain["type"] == "Opaque"
    # Plain -> templated: the standard keys go, the type changes (a new Secret, store.py).
    assert drift(plain, templated) == ["type", "data", "annotations"]
    merged = merge_secret(plain, templated)
    assert set(merged["data"]) == {"auth"}
    # Templated -> plain: the template's keys and its annotation go.
    back = merge_secret(templated, plain)
    assert set(back["data"]) == {"tenant_access_token", "expires_at", "app_id"}
    assert "larkservice.io/templated" not in back["metadata"]["annotations"]
    assert "annotations" in drift(templated, plain)
    # A key added by hand to a templated Secret is drift (it is exactly the template's).
    tampered = {**templated, "data": {**templated["data"], "extra": "eA=="}}
    assert drift(tampered, templated) == ["data"]
    assert drift(templated, templated) == []


def test_a_template_that_does_not_render_builds_nothing() -> None:
    with pytest.raises(TemplateRenderError):
        _build(_spec({"template": {"data": {"a": "{{ app_id }}", "b": "{{ nope }}"}}}))
