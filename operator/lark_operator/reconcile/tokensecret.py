"""The token Secret from the reconciler's side: write it after a refresh, repair it after a
change, let go of old targets, and take over what it held after a restart — always through
tokens/store.py, which writes or deletes only a Secret that is the operator's own."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lark_operator.kube import KubeAPI, KubeError
from lark_operator.logs import log_context
from lark_operator.models import LarkAppSpec
from lark_operator.openplatform import ErrorKind
from lark_operator.reconcile.refresh import Failed
from lark_operator.reconcile.state import App
from lark_operator.status.facts import ErrorFacts
from lark_operator.tokens.secret import (
    Claim,
    HeldTokens,
    build_token_secret,
    claim,
    foreign_part,
    issued_for,
    read_token_secret,
    served_expiry,
    written_base,
)
from lark_operator.tokens.store import SecretNotOwned, TokenSecretStore
from lark_operator.tokens.storetokens import by_type
from lark_operator.tokens.template import TemplateRenderError
from lark_operator.vocabulary.reasons import Reason

log = logging.getLogger("lark_operator.reconcile")


def target_refused(spec: LarkAppSpec, larkapp_name: str) -> str | None:
    """Why the target may not be written whatever the Secret says (None: it may)."""
    target = spec.token_secret_name(larkapp_name)
    if target in spec.referenced_secrets():
        return (
            f"Secret {target} is one this LarkApp reads (spec.appSecretRef or a probe's "
            "Secret): the token never goes into it. Give spec.target.secretName a name "
            "of its own."
        )
    return None


def write_failure(spec: LarkAppSpec, larkapp_name: str, e: Exception, now: float) -> Failed:
    if isinstance(e, SecretNotOwned):
        facts = ErrorFacts(Reason.SECRET_NOT_OWNED, str(e), None, now)
        return Failed(ErrorKind.CONFIG, facts)
    if isinstance(e, TemplateRenderError):
        return Failed(ErrorKind.CONFIG, ErrorFacts(Reason.TEMPLATE_ERROR, str(e), None, now))
    name = spec.token_secret_name(larkapp_name)
    facts = ErrorFacts(
        Reason.SECRET_WRITE_FAILED, f"Cannot write token Secret {name}: {e}", None, now
    )
    return Failed(ErrorKind.TRANSIENT, facts)


class TokenSecrets:
    def __init__(self, kube: KubeAPI):
        self.kube = kube
        self.store = TokenSecretStore(kube)

    async def write(
        self, app: App, spec: LarkAppSpec, tokens: HeldTokens, *, verify: bool, now: float
    ) -> Failed | None:
        """The target holds `tokens`: after a refresh (`verify=False`) one blind write,
        otherwise read-compare-write. Old targets are let go once it does."""
        refused = target_refused(spec, app.name)
        if refused is not None:
            return write_failure(spec, app.name, SecretNotOwned(refused), now)
        if app.removed:
            return None
        try:
            desired = build_token_secret(
                namespace=app.namespace,
                larkapp_name=app.name,
                larkapp_uid=app.uid,
                spec=spec,
                tokens=tokens,
            )
        except TemplateRenderError as e:  # nothing written: the last good Secret stays
            return write_failure(spec, app.name, e, now)
        try:
            last = app.secret
            base = written_base(last.rv, last.foreign) if last.rv is not None else None
            written = await self.store.write(desired, app.uid, blind=not verify, last_written=base)
        except (KubeError, SecretNotOwned) as e:
            return write_failure(spec, app.name, e, now)
        if written is not None:
            remember(app, written, desired)
        await self.release_old(app, spec)
        return None

    async def release_old(self, app: App, spec: LarkAppSpec) -> None:
        for name in sorted(app.secret.old_names):
            await self.release(app.namespace, app.name, name, app.uid, spec)
            app.secret.old_names.discard(name)

    async def release(
        self, namespace: str, larkapp: str, secret_name: str, uid: str | None, spec: LarkAppSpec
    ) -> None:
        delete = spec.target.deletion_policy == "Delete"
        done = await self.store.release(namespace, secret_name, larkapp, uid, delete=delete)
        with log_context(namespace=namespace, name=larkapp):
            log.info(
                "token Secret %s (deletionPolicy %s): %s",
                secret_name,
                spec.target.deletion_policy,
                done,
            )

    async def adopt(self, app: App, spec: LarkAppSpec, recorded: str) -> HeldTokens | None:
        """After a restart: the tokens in the token Secret, when it is ours, holds what
        status recorded (`recorded` fingerprint) and was issued for this spec's app."""
        secret = await self.kube.get_secret(app.namespace, spec.token_secret_name(app.name))
        held = read_token_secret(secret)
        if secret is None or held is None or recorded != held.fingerprint():
            return None
        if claim(secret, app.name)[0] is not Claim.OURS:
            return None  # relabelled or replaced while we were down: not ours to carry on
        app_id, base_url = issued_for(secret)
        if app_id != spec.app_id or base_url not in (None, spec.base_url()):
            return None  # the spec names another app now (changed while we were down)
        desired = build_token_secret(
            namespace=app.namespace,
            larkapp_name=app.name,
            larkapp_uid=app.uid,
            spec=spec,
            tokens=held,
        )
        remember(app, secret, desired)
        return held


def remember(app: App, secret: Mapping[str, Any], desired: Mapping[str, Any]) -> None:
    """Keep what the next write after a refresh needs of the Secret as written or
    verified: its resourceVersion and what others added to it (`foreign_part`), not the
    Secret (10,000 copies of it added up), and the expiry of the tokens it serves."""
    app.secret.rv = (secret.get("metadata") or {}).get("resourceVersion")
    app.secret.foreign = foreign_part(secret, desired)
    app.secret.serving = by_type(served_expiry(secret))  # a templated one: from annotations
