"""Namespace labels, for ClusterLarkApps whose allowedNamespaces has a selector.

Fed by a metadata-only watch of namespaces (app/watch.py). Until a namespace has been
seen, a selector cannot be decided (`labels` answers None) and a LarkApp waits rather than
be refused and then admitted a second later — a flap of status and Events at every start,
and for every namespace created together with its LarkApps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class NamespaceLabels:
    def __init__(self, changed: Callable[[str | None], None]):
        """`changed(namespace)`: its labels changed (None: every namespace, after a
        listing)."""
        self._labels: dict[str, dict[str, str]] = {}
        self._changed = changed

    def labels(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels; None while they are not known: not listed yet, or a
        namespace created a moment ago whose event has not arrived (a LarkApp applied
        with its namespace, as GitOps does, must not be refused for a second first)."""
        return self._labels.get(namespace)

    def event(self, event: str, namespace: str, labels: Mapping[str, str] | None) -> None:
        """From the watch: SYNC (one per namespace listed), SYNCED (the listing is over),
        ADDED, MODIFIED, DELETED."""
        if event == "SYNCED":  # after a (re)listing: look at every LarkApp naming an app
            self._changed(None)
            return
        if event == "DELETED":
            self._labels.pop(namespace, None)
        else:
            new = dict(labels or {})
            if self._labels.get(namespace) == new:
                return
            self._labels[namespace] = new
        if event != "SYNC":
            self._changed(namespace)
