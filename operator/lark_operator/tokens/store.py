"""Writing and releasing the token Secret that workloads mount — only ever a Secret that
is the operator's own (the trust boundary, docs/security.md).

After a refresh the write goes straight out on top of the copy last written, with its
resourceVersion: one request, no read; the resourceVersion is also the guarantee that the
Secret is still the one we wrote (a Secret replaced or relabelled meanwhile answers 409).
A conflict or a missing copy falls back to read-compare-write, which is also how a Secret
edited or deleted by hand is repaired, and where ownership is decided (`claim`): a Secret
the operator did not create for this LarkApp is refused unless its owner consented with
the adopt annotation, or it held the token of a LarkApp that is gone.
Deleting (deletionPolicy Delete, a changed target) and cutting the owner reference
(Retain) happen only on a Secret that is ours, with a precondition on its version.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lark_operator.kube import KubeAPI, KubeError
from lark_operator.models import LarkAppSpec
from lark_operator.tokens.secret import Claim, claim, claimed_by, drift, merge_secret, refusal

log = logging.getLogger("lark_operator.tokens")


class SecretNotOwned(Exception):
    """The target Secret is not this LarkApp's to write (reason SecretNotOwned)."""


class TokenSecretStore:
    def __init__(self, kube: KubeAPI):
        self.kube = kube

    async def write(
        self,
        desired: dict[str, Any],
        uid: str | None,
        *,
        blind: bool = False,
        last_written: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Make the Secret hold `desired`; returns it as the apiserver now has it (None if
        three conflicts in a row left it unwritten). `blind` (after a refresh): write on top
        of `last_written` (this LarkApp's last write), or create it when there is none.
        Raises SecretNotOwned, and KubeError for anything the apiserver refuses."""
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if blind and last_written and last_written.get("type", "Opaque") != desired["type"]:
            blind = False  # a Secret's type cannot change in place (below)
        if blind:
            try:
                if last_written is None:
                    return dict(await self.kube.create_secret(ns, desired))
                merged = merge_secret(last_written, desired, uid)
                return dict(await self.kube.replace_secret(ns, name, merged))
            except KubeError as e:
                if e.status not in (404, 409):
                    raise
        me = str(claimed_by(desired))
        for _ in range(3):
            actual = await self.kube.get_secret(ns, name)
            await self.check_ours(desired, actual)
            diff = drift(actual, desired)
            if not diff:
                return actual
            try:
                if actual is not None and "type" in diff and claim(actual, me)[0] is Claim.OURS:
                    # target.template.type changed: the apiserver keeps a Secret's type for
                    # life, so ours is replaced by a new one (only the version just read).
                    await self.kube.delete_secret(ns, name, **_version(actual))
                    actual = None
                if actual is None:
                    written = await self.kube.create_secret(ns, desired)
                else:
                    merged = merge_secret(actual, desired, uid)
                    written = await self.kube.replace_secret(ns, name, merged)
            except KubeError as e:
                if e.status == 409:
                    continue  # raced with someone; read again
                raise
            log.info("restored token Secret %s (%s)", name, ", ".join(diff))
            return dict(written)
        return None

    async def check_ours(
        self, desired: Mapping[str, Any], actual: Mapping[str, Any] | None
    ) -> None:
        """Raise SecretNotOwned unless this LarkApp may write `actual`."""
        meta = desired["metadata"]
        me = str(claimed_by(desired))
        kind, why = claim(actual, me)
        if kind in (Claim.ABSENT, Claim.OURS, Claim.ADOPTABLE):
            return
        if kind is Claim.OTHER_LARKAPP and not await self._holder_alive(
            meta["namespace"], meta["name"], str(claimed_by(actual))
        ):
            return  # its LarkApp is gone or writes elsewhere now: the Secret passes on
        raise SecretNotOwned(refusal(meta["name"], kind, why))

    async def _holder_alive(self, namespace: str, secret_name: str, holder: str) -> bool:
        body = await self.kube.get_larkapp(namespace, holder)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return False
        try:
            return LarkAppSpec.parse(body.get("spec")).token_secret_name(holder) == secret_name
        except ValidationError:
            return True

    async def release(
        self, namespace: str, name: str, larkapp_name: str, uid: str | None, *, delete: bool
    ) -> str:
        """Let go of a token Secret this LarkApp no longer uses (deleted, or retargeted):
        delete it (`delete`), or cut this LarkApp's owner reference so the garbage
        collector does not take it. Only a Secret that is ours is touched, and only in the
        version we read (a precondition). Returns what was done, for the log."""
        for _ in range(3):
            secret = await self.kube.get_secret(namespace, name)
            kind, why = claim(secret, larkapp_name)
            if kind is not Claim.OURS or secret is None:
                return f"left alone: {why}"
            meta = secret["metadata"]
            try:
                if delete:
                    await self.kube.delete_secret(namespace, name, **_version(secret))
                    return "deleted"
                owners = meta.get("ownerReferences") or []
                kept = [o for o in owners if uid is None or o.get("uid") != uid]
                if len(kept) == len(owners):
                    return "kept (no owner reference of this LarkApp)"
                patch = {"ownerReferences": kept or None, **_precondition(meta)}
                await self.kube.patch_secret(namespace, name, {"metadata": patch})
                return "kept, owner reference removed"
            except KubeError as e:
                if e.status == 404:
                    return "already gone"
                if e.status != 409:
                    raise
        return "left alone: it kept changing"


def _version(secret: Mapping[str, Any]) -> dict[str, Any]:
    """Delete preconditions: this very Secret, in the version read."""
    meta = secret.get("metadata") or {}
    return {"uid": meta.get("uid"), "resource_version": meta.get("resourceVersion")}


def _precondition(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch carrying it applies only to this very version of the object."""
    return {"resourceVersion": meta.get("resourceVersion")}
