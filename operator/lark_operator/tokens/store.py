"""Writing the token Secret that workloads mount.

After a refresh the write goes straight out on top of the copy last written, with its
resourceVersion: one request, no read. A conflict or a missing copy falls back to
read-compare-write, which is also how a Secret edited or deleted by hand is repaired. A
Secret that holds another live LarkApp's token (or another controller's data) is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lark_operator.kube import KubeClient, KubeError
from lark_operator.models import LarkAppSpec
from lark_operator.tokens.secret import claimed_by, drift, foreign_controller, merge_secret

log = logging.getLogger("lark_operator.tokens")


class SecretClaimed(Exception):
    """The token Secret holds another LarkApp's token (or another controller's data)."""


class TokenSecretStore:
    def __init__(self, kube: KubeClient):
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
        of `last_written` (this LarkApp's last write), or create it when there is none."""
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if blind:
            try:
                if last_written is None:
                    return dict(await self.kube.create_secret(ns, desired))
                merged = merge_secret(last_written, desired, uid)
                return dict(await self.kube.replace_secret(ns, name, merged))
            except KubeError as e:
                if e.status not in (404, 409):
                    raise
        for _ in range(3):
            actual = await self.kube.get_secret(ns, name)
            holder = await self.held_elsewhere(desired, actual)
            if holder is not None:
                raise SecretClaimed(
                    f"it holds the token of {holder}, and two LarkApps cannot share one "
                    "token Secret: give this one its own spec.target.secretName"
                )
            diff = drift(actual, desired)
            if not diff:
                return actual
            try:
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

    async def held_elsewhere(
        self, desired: Mapping[str, Any], actual: Mapping[str, Any] | None
    ) -> str | None:
        """Who else holds the token Secret (None: nobody, or a LarkApp that is gone, being
        deleted or now writing elsewhere: the Secret is free to take over)."""
        foreign = foreign_controller(actual)
        if foreign is not None:
            return foreign
        meta = desired["metadata"]
        other = claimed_by(actual)
        if other is None or other == claimed_by(desired):
            return None
        body = await self.kube.get_larkapp(meta["namespace"], other)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        try:
            if LarkAppSpec.parse(body.get("spec")).token_secret_name(other) != meta["name"]:
                return None
        except ValidationError:
            pass
        return f"LarkApp {other!r}"
