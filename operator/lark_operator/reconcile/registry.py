"""Every LarkApp the operator knows, kept from what kopf reports, and what each change
means as pending work.

kopf reports every event, the operator's own status writes included: only a new object, a
new spec, a refresh request or a change to a Secret it uses is work.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Hashable, Mapping
from typing import Any

from pydantic import ValidationError

from lark_operator.models import LarkAppSpec
from lark_operator.reconcile import resume
from lark_operator.reconcile.index import SecretIndex
from lark_operator.reconcile.state import App, Key, TokenState, Work
from lark_operator.vocabulary.digests import sha256_hex
from lark_operator.vocabulary.reasons import WRITE_FAILURES


class Registry:
    def __init__(self, index: SecretIndex):
        self.apps: dict[Key, App] = {}
        self.index = index
        # One parsed (immutable) spec per distinct spec: LarkApps with the same spec (one
        # app in many namespaces, a fan-out) share it instead of holding a copy each.
        self._specs: weakref.WeakValueDictionary[str, LarkAppSpec] = weakref.WeakValueDictionary()

    def get(self, key: Key) -> App | None:
        return self.apps.get(key)

    def lookup(self, key: Hashable) -> App | None:
        """`get` for a key that comes back from a generic scheduler (a probe subscriber)."""
        return self.apps.get(key) if isinstance(key, tuple) else None

    def observe(self, body: Mapping[str, Any], refresh_request: str | None = None) -> App | None:
        """Take in an event's object; the App when it has work to do now, else None."""
        meta = body.get("metadata") or {}
        key = (meta["namespace"], meta["name"])
        app = self.apps.get(key)
        new = app is None
        if app is None:
            app = App(namespace=key[0], name=key[1])
            app.published.status = dict(body.get("status") or {})
            app.token = resume.token_state(app.published.status)
            self.apps[key] = app
        app.uid = meta.get("uid")
        generation = int(meta.get("generation") or 0)
        raw_spec = body.get("spec") or {}
        digest = sha256_hex(json.dumps(raw_spec, sort_keys=True, separators=(",", ":")))
        changed = new or generation != app.generation or digest != app.spec_digest
        app.generation, app.spec_digest = generation, digest
        if changed:
            old = app.spec
            app.spec = self._parse(raw_spec, digest)
            if app.spec != old:
                app.pending.add(Work.PROBES)
                if old is not None and app.spec is not None:
                    _spec_changed(app, old, app.spec)
            self._index(app)
        if refresh_request is not None and refresh_request != app.refresh_request:
            app.refresh_request = refresh_request
            app.pending.add(Work.REFRESH)
            changed = True
        return app if changed else None

    def _parse(self, raw_spec: Mapping[str, Any], digest: str) -> LarkAppSpec | None:
        spec = self._specs.get(digest)
        if spec is None:
            try:
                spec = self._specs[digest] = LarkAppSpec.parse(raw_spec)
            except ValidationError:
                return None  # the CRD schema rejects such objects; nothing to do with it
        return spec

    def pop(self, key: Key) -> App | None:
        self.index.unindex(key)
        return self.apps.pop(key, None)

    def secret_changed(self, event: str, namespace: str, name: str, rv: str | None) -> list[App]:
        """From the metadata-only Secret watch: the LarkApps it concerns, with their work."""
        ref = (namespace, name)
        self.index.changed(ref)
        concerned: list[App] = []
        for key in self.index.targeting(ref):
            app = self.apps.get(key)
            if app is not None and (event == "DELETED" or rv != app.secret.rv):
                app.pending.add(Work.TOKEN_SECRET)
                err = app.token.last_error
                if err is not None and err.reason in WRITE_FAILURES:
                    # Refused or failed to write it: the Secret changed (consent to adopt,
                    # its holder let go, it is gone), so try again now, not after backoff.
                    app.token.next_refresh_at = None
                concerned.append(app)
        for key in self.index.readers(ref):
            app = self.apps.get(key)
            if app is None or app.spec is None:
                continue
            app_secret = app.spec.app_secret_ref
            if app_secret is not None and app_secret.name == name:
                app.pending.add(Work.CREDENTIALS)
            if name in app.spec.referenced_secrets() - {app_secret.name if app_secret else ""}:
                app.pending.add(Work.PROBES)
            concerned.append(app)
        return concerned

    def _index(self, app: App) -> None:
        if app.spec is None:
            self.index.unindex(app.key)
        else:
            reads = app.spec.referenced_secrets()
            self.index.index(app.key, reads, app.spec.token_secret_name(app.name))


def _spec_changed(app: App, old: LarkAppSpec, new: LarkAppSpec) -> None:
    if (old.app_id, old.base_url(), old.app_ref) != (new.app_id, new.base_url(), new.app_ref):
        # The tokens held are the old app's: nothing about them describes the new one
        # (status shows no token until the new app's lands). The Secret keeps them, with
        # their own app_id, until then: a failure for the new app blanks nothing.
        app.token = TokenState()
    if _token_inputs(old) != _token_inputs(new):
        app.pending.add(Work.REFRESH)  # a new app/secret/domain/token set: fetch for it now
    elif old.store != new.store:
        app.pending.add(Work.STORE)  # tenants listed or keys changed: what is due or missing
    before, after = old.token_secret_name(app.name), new.token_secret_name(app.name)
    if before != after:
        # Write the held token to the new target now; the old one is let go after.
        app.secret.old_names.add(before)
        app.secret.rv, app.secret.foreign = None, None
        app.pending.add(Work.TOKEN_SECRET)
    app.secret.old_names.discard(after)
    if old.target != new.target:
        app.pending.add(Work.TOKEN_SECRET)  # a new template, labels, ...: write it so
        err = app.token.last_error
        if err is not None and err.reason in WRITE_FAILURES:
            app.token.next_refresh_at = None  # e.g. a template fixed: try at once


def _token_inputs(spec: LarkAppSpec) -> tuple[Any, ...]:
    return (spec.app_id, spec.app_secret_ref, spec.domain, spec.tokens, spec.app_ref, spec.app_type)
