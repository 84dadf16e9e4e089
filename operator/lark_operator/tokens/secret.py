"""Pure builders for the token Secret (spec in, manifest out) and its inverse.

Keys: tenant_access_token, app_access_token (when enabled), expires_at (RFC 3339, the
earliest expiry of the tokens held), app_id — or, with target.template, exactly the keys
it renders (tokens/template.py) and the type it names. Labels tie it to its LarkApp; an
owner reference makes it garbage-collected with the LarkApp when creationPolicy is Owner.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from lark_operator.models import LarkAppSpec
from lark_operator.tokens import storetokens
from lark_operator.tokens.template import render
from lark_operator.vocabulary.digests import fingerprint, sha256_hex
from lark_operator.vocabulary.names import (
    ADOPT_ANNOTATION,
    API_VERSION,
    BASE_URL_ANNOTATION,
    EXPIRES_ANNOTATIONS,
    FULL_NAME_ANNOTATION,
    KIND,
    LARKAPP_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    TEMPLATED_ANNOTATION,
    expires_annotation,
)
from lark_operator.vocabulary.timefmt import parse_rfc3339, rfc3339

__all__ = ["fingerprint"]  # re-exported: the token Secret's fingerprint is this one

TOKEN_KEYS = {"tenant": "tenant_access_token", "app": "app_access_token"}


def label_value(name: str) -> str:
    """A LarkApp name as a label value (at most 63 characters; longer names are hashed)."""
    if len(name) <= 63:
        return name
    return f"{name[:52].rstrip('-.')}-{sha256_hex(name)[:10]}"


@dataclass(frozen=True)
class HeldTokens:
    """Token values as the operator holds them (never logged: no repr of values)."""

    values: Mapping[str, str]  # token type -> value
    expires_at: Mapping[str, float]  # token type -> epoch

    def __repr__(self) -> str:
        return f"HeldTokens(types={sorted(self.values)}, expires_at={dict(self.expires_at)})"

    @cached_property  # read for every LarkApp once a second by the capacity plan
    def earliest_expiry(self) -> float:
        return min(self.expires_at.values())

    def fingerprint(self) -> str:
        """The fingerprint of the tenant token (the app token when only that is kept): the
        same `sha256:...` that `lark-operator token-info` prints for a token."""
        primary = self.values.get("tenant") or self.values.get("app", "")
        return fingerprint(primary)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def build_token_secret(
    *,
    namespace: str,
    larkapp_name: str,
    larkapp_uid: str | None,
    spec: LarkAppSpec,
    tokens: HeldTokens,
) -> dict[str, Any]:
    """The token Secret for `tokens` (TemplateRenderError when target.template does not
    render: nothing is built, so nothing half-written can be sent)."""
    if spec.app_id is None:
        raise ValueError("the LarkApp's appRef is not resolved")  # the reconciler's bug
    expires_at = rfc3339(tokens.earliest_expiry) or ""
    template = spec.target.template
    if template is not None:
        # A template sees the app-level tokens (a store app's per-tenant keys are not its).
        variables = {TOKEN_KEYS[t]: v for t, v in tokens.values.items() if t in TOKEN_KEYS}
        variables.update(expires_at=expires_at, app_id=spec.app_id)
        data = {k: _b64(v) for k, v in render(template, variables).items()}
    else:
        data = {TOKEN_KEYS[t]: _b64(v) for t, v in sorted(tokens.values.items()) if t in TOKEN_KEYS}
        data.update(storetokens.tenant_data(tokens.values, tokens.expires_at))
        data["expires_at"] = _b64(expires_at)
        data["app_id"] = _b64(spec.app_id)
    labels = dict(spec.target.labels)
    labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
    labels[LARKAPP_LABEL] = label_value(larkapp_name)
    annotations = dict(spec.target.annotations)
    annotations[FULL_NAME_ANNOTATION] = larkapp_name
    annotations[BASE_URL_ANNOTATION] = spec.base_url()
    if template is not None:
        annotations[TEMPLATED_ANNOTATION] = "true"
    # Expiry per token type, so a restarted operator knows each one without parsing data.
    for t, exp in sorted(tokens.expires_at.items()):
        if t in TOKEN_KEYS:  # a store app's tenants: expires_at.<tenant_key> in data
            annotations[expires_annotation(t)] = rfc3339(exp) or ""
    meta: dict[str, Any] = {
        "name": spec.token_secret_name(larkapp_name),
        "namespace": namespace,
        "labels": labels,
        "annotations": annotations,
    }
    if spec.target.creation_policy == "Owner" and larkapp_uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": larkapp_name,
                "uid": larkapp_uid,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]
    kind = template.type if template is not None else "Opaque"
    return {"apiVersion": "v1", "kind": "Secret", "type": kind, "metadata": meta, "data": data}


def templated(secret: Mapping[str, Any] | None) -> bool:
    """Whether a token Secret's data is exactly what a template rendered (no extra keys)."""
    annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(TEMPLATED_ANNOTATION) == "true"


def drift(actual: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> list[str]:
    """What differs between the Secret in the cluster and what it should be (empty: none).
    Extra keys/labels someone added are left alone; ours must be exact."""
    if actual is None:
        return ["missing"]
    out = []
    if (actual.get("type") or "Opaque") != desired["type"]:
        out.append("type")
    have_data, want_data = actual.get("data") or {}, desired["data"]
    stale = set(TOKEN_KEYS.values()) - set(want_data)  # a token type no longer kept
    stale |= storetokens.stale_keys(have_data, want_data)  # a tenant no longer served
    if templated(actual) or templated(desired):
        stale = set(have_data) - set(want_data)  # a template's data is exactly its keys
    if any(have_data.get(k) != v for k, v in want_data.items()) or stale & set(have_data):
        out.append("data")
    a_meta, d_meta = actual.get("metadata") or {}, desired["metadata"]
    for field in ("labels", "annotations"):
        have = a_meta.get(field) or {}
        if any(have.get(k) != v for k, v in d_meta.get(field, {}).items()):
            out.append(field)
    if templated(actual) and not templated(desired) and "annotations" not in out:
        out.append("annotations")
    want_owner = {o["uid"] for o in d_meta.get("ownerReferences", [])}
    have_owner = {o.get("uid") for o in a_meta.get("ownerReferences") or []}
    if not want_owner <= have_owner:
        out.append("ownerReferences")
    return out


def claimed_by(secret: Mapping[str, Any] | None) -> str | None:
    """Name of the LarkApp whose token a Secret holds, as it was written (None: none)."""
    meta = (secret or {}).get("metadata") or {}
    name = (meta.get("annotations") or {}).get(FULL_NAME_ANNOTATION)
    if name:
        return str(name)
    for o in meta.get("ownerReferences") or []:
        if o.get("kind") == KIND and o.get("controller") and o.get("name"):
            return str(o["name"])
    return None


def foreign_controller(secret: Mapping[str, Any] | None) -> str | None:
    """The controller of a Secret when it is not a LarkApp (e.g. "ExternalSecret 'db'"):
    such a Secret is someone else's to write, and the API server would refuse a second
    controller reference anyway."""
    for o in ((secret or {}).get("metadata") or {}).get("ownerReferences") or []:
        if o.get("controller") and o.get("kind") != KIND:
            return f"{o.get('kind')} {o.get('name')!r}"
    return None


class Claim(StrEnum):
    """Whose a Secret is, as far as the Secret itself tells (see `claim`)."""

    ABSENT = "absent"  # no such Secret: creating it makes it ours
    OURS = "ours"  # created by the operator for this LarkApp
    ADOPTABLE = "adoptable"  # not ours, but its owner consented (ADOPT_ANNOTATION)
    OTHER_LARKAPP = "other-larkapp"  # created by the operator for another LarkApp
    NOT_OURS = "not-ours"  # anybody else's: never written, never deleted


def is_managed(secret: Mapping[str, Any] | None) -> bool:
    labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


def claim(secret: Mapping[str, Any] | None, larkapp_name: str) -> tuple[Claim, str]:
    """Whose `secret` is, seen from the LarkApp `larkapp_name`, and a phrase saying why
    (for a refusal's message). The operator writes only ABSENT, OURS and ADOPTABLE, and
    OTHER_LARKAPP once that LarkApp is gone (the caller checks); it deletes only OURS."""
    if secret is None:
        return Claim.ABSENT, "it does not exist"
    foreign = foreign_controller(secret)
    if foreign is not None:
        return Claim.NOT_OURS, f"it is controlled by {foreign}"
    meta = secret.get("metadata") or {}
    if is_managed(secret):
        holder = claimed_by(secret)
        if holder is None or holder == larkapp_name:
            return Claim.OURS, "it is this LarkApp's token Secret"
        return Claim.OTHER_LARKAPP, f"it holds the token of LarkApp {holder!r}"
    if (meta.get("annotations") or {}).get(ADOPT_ANNOTATION) == "true":
        return Claim.ADOPTABLE, f'it carries {ADOPT_ANNOTATION}: "true"'
    return Claim.NOT_OURS, (
        f"it was not created by lark-operator (no {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} label)"
    )


def refusal(secret_name: str, kind: Claim, why: str) -> str:
    """A condition message for a target Secret that is not this LarkApp's: what, why, and
    the two ways out."""
    if kind is Claim.OTHER_LARKAPP:
        return (
            f"Secret {secret_name} is not this LarkApp's to write: {why}, and two LarkApps "
            "cannot share one token Secret: give this one its own spec.target.secretName."
        )
    return (
        f"Secret {secret_name} is not this LarkApp's to write: {why}. If whoever owns it "
        f"agrees, they annotate it (kubectl annotate secret {secret_name} "
        f"{ADOPT_ANNOTATION}=true); otherwise give spec.target.secretName a name of its own."
    )


def read_token_secret(secret: Mapping[str, Any] | None) -> HeldTokens | None:
    """Tokens held in an existing token Secret, or None when absent or unreadable (or shaped
    by a template: its keys are the template's, whatever their names)."""
    if not secret or templated(secret):
        return None
    data = secret.get("data") or {}
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    values: dict[str, str] = {}
    expires: dict[str, float] = {}
    for t, key in TOKEN_KEYS.items():
        if key not in data:
            continue
        try:
            values[t] = base64.b64decode(data[key]).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        exp = parse_rfc3339(annotations.get(expires_annotation(t)))
        if exp is None:
            return None
        expires[t] = exp
    tenants = storetokens.read_tenants(data)
    if tenants is None:
        return None
    values.update(tenants[0])
    expires.update(tenants[1])
    if not values:
        return None
    return HeldTokens(values, expires)


def served_expiry(secret: Mapping[str, Any] | None) -> dict[str, float]:
    """Token type -> expiry of what a token Secret serves, from its annotations (so also
    for a templated one, whose data cannot be read back)."""
    if not templated(secret):
        held = read_token_secret(secret)
        return dict(held.expires_at) if held is not None else {}
    annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
    out = {}
    for t in TOKEN_KEYS:
        exp = parse_rfc3339(annotations.get(expires_annotation(t)))
        if exp is not None:
            out[t] = exp
    return out


def issued_for(secret: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(app_id, base URL) the tokens in a token Secret were issued for; the base URL is
    None in a Secret written before it was recorded."""
    meta = (secret or {}).get("metadata") or {}
    raw = ((secret or {}).get("data") or {}).get("app_id")
    try:
        app_id = base64.b64decode(raw).decode() if raw else None
    except (ValueError, UnicodeDecodeError):
        app_id = None
    return app_id, (meta.get("annotations") or {}).get(BASE_URL_ANNOTATION)


def merge_secret(
    actual: Mapping[str, Any], desired: Mapping[str, Any], uid: str | None = None
) -> dict[str, Any]:
    """Desired content on top of what is there: keep others' extra labels/annotations and
    the resourceVersion (optimistic concurrency). Another LarkApp's owner reference is
    dropped: a live one was refused before writing (SecretClaimed), so it is stale, and
    kept it would take the Secret with it to the garbage collector."""
    d_meta = desired["metadata"]
    meta = {**(actual.get("metadata") or {}), "name": d_meta["name"]}
    meta["namespace"] = d_meta["namespace"]
    meta["labels"] = {**(meta.get("labels") or {}), **d_meta["labels"]}
    meta["annotations"] = {**(meta.get("annotations") or {}), **d_meta["annotations"]}
    for ours in (TEMPLATED_ANNOTATION, *EXPIRES_ANNOTATIONS.values()):
        if ours not in d_meta["annotations"]:  # no longer true of what it holds
            meta["annotations"].pop(ours, None)
    mine = d_meta.get("ownerReferences") or []
    keep = [
        o
        for o in meta.get("ownerReferences") or []
        if o.get("uid") not in {m["uid"] for m in mine}
        and (o.get("kind") != KIND or o.get("uid") == uid)
    ]
    if keep or mine:
        meta["ownerReferences"] = [*keep, *mine]
    else:
        meta.pop("ownerReferences", None)
    data = {**(actual.get("data") or {}), **desired["data"]}
    for stale in ("tenant_access_token", "app_access_token"):
        if stale not in desired["data"]:
            data.pop(stale, None)
    for stale in storetokens.stale_keys(data, desired["data"]):
        data.pop(stale)
    if templated(actual) or templated(desired):
        data = dict(desired["data"])  # exactly the template's keys (or back to ours)
    return {**desired, "metadata": meta, "data": data}


# Metadata the operator sets itself, or the apiserver does, on every write.
_OWN_METADATA = frozenset(
    {
        "name",
        "namespace",
        "labels",
        "annotations",
        "ownerReferences",
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
    }
)


def foreign_part(secret: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """What of `secret` (as the apiserver holds it) the operator did not put there from
    `desired`: others' labels, annotations, owner references, finalizers, data keys, other
    fields. None when there is none, the usual case. With the resourceVersion that is all a
    blind write on top of it needs (`written_base`): the rest is built again each time."""
    meta, d_meta = secret.get("metadata") or {}, desired["metadata"]
    out_meta = {k: v for k, v in meta.items() if k not in _OWN_METADATA}
    for field in ("labels", "annotations"):
        mine = d_meta.get(field) or {}
        theirs = {k: v for k, v in (meta.get(field) or {}).items() if k not in mine}
        if theirs:
            out_meta[field] = theirs
    mine_owners = {o["uid"] for o in d_meta.get("ownerReferences") or []}
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("uid") not in mine_owners]
    if owners:
        out_meta["ownerReferences"] = owners
    out: dict[str, Any] = {
        k: v for k, v in secret.items() if k not in ("apiVersion", "kind", "metadata", "data")
    }
    if out.get("type", "Opaque") == "Opaque":
        out.pop("type", None)  # kept otherwise: a templated type decides if a PUT may go blind
    # Not a token key of ours either (a type or tenant no longer kept): merge_secret drops
    # those, and the copy holds no token.
    ours = set(desired["data"]) | set(TOKEN_KEYS.values())
    data = {
        k: v
        for k, v in (secret.get("data") or {}).items()
        if k not in ours and not storetokens.is_store_key(k)
    }
    if data:
        out["data"] = data
    if out_meta:
        out["metadata"] = out_meta
    return out or None


def written_base(rv: str, foreign: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Secret `merge_secret` writes over after a refresh: what others added to it as of
    the last write (`foreign_part`), at that write's resourceVersion."""
    base = dict(foreign or {})
    base["metadata"] = {**(base.get("metadata") or {}), "resourceVersion": rv}
    return base
