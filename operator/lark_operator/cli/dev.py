"""`lark-operator dev up|down|status`: the local control plane for development and the demo.

The control plane itself is dev tooling (hack/devenv, package `lark_devenv`), which `make
venv` installs beside a source checkout and which the wheel and the image leave out; this
command imports it only when it runs, and says so in one line where it is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lark_devenv.controlplane import ControlPlane

CRDS_DIR = Path(__file__).resolve().parent.parent / "crds"
DEV_PACKAGE = "lark_devenv"
# The release README's `helm install` names: `dev up` marks the CRD it installs as that
# release's, so that the install adopts it rather than failing on its ownership metadata.
HELM_RELEASE = ("lark-operator", "lark-system")


def register(sub: Any) -> None:
    p = sub.add_parser("dev", help="Local control plane (etcd + kube-apiserver) for development")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--dir", default=".lark-dev", help="Data directory [.lark-dev]")
    p.add_argument("--timeout", type=float, default=60.0, help="Seconds to wait for readiness")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from lark_devenv.controlplane import ControlPlane
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != DEV_PACKAGE:
            raise  # the dev package is there but lacks a dependency: show that
        print(
            "lark-operator dev needs a source checkout: run `make dev-up` there (the local "
            "control plane is dev tooling in hack/devenv, not part of the installed package)",
            file=sys.stderr,
        )
        return 2
    cp = ControlPlane(args.dir)
    if args.action == "up":
        return _up(cp, args.timeout)
    if args.action == "down":
        stopped = cp.down()
        print("control plane stopped" if stopped else f"no control plane running in {cp.dir}")
        return 0
    st = cp.running()
    if not st:
        print(f"not running (dir {cp.dir})")
        return 1
    version = cp.version().get("gitVersion", "?")
    print(
        f"running: kube-apiserver {version} at {st.server} (etcd pid {st.etcd_pid}, "
        f"apiserver pid {st.apiserver_pid})"
    )
    print(f"export KUBECONFIG={st.kubeconfig}")
    return 0


def _up(cp: ControlPlane, timeout: float) -> int:
    from lark_devenv.binaries import MissingBinary
    from lark_devenv.controlplane import ControlPlaneError

    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        print("USE_EXISTING_CLUSTER=true: using the current kubeconfig; nothing to start.")
        print("Install the CRDs there with: kubectl apply -f crds/")
        return 0
    start = time.monotonic()
    before = cp.recorded_server()
    try:
        st, started = cp.up(timeout=timeout)
    except (MissingBinary, ControlPlaneError) as e:
        print(f"dev up failed: {e}", file=sys.stderr)
        return 1
    try:
        # Also on a running control plane: it may be the demo's, or hold an older CRD.
        cp.install_crds(CRDS_DIR, helm_release=HELM_RELEASE)
    except (OSError, ControlPlaneError) as e:
        print(f"dev up failed installing the CRDs: {e}", file=sys.stderr)
        if started:
            cp.down()
        return 1
    if not started:
        print(f"already running at {st.server} (dir {cp.dir}); not starting another")
    else:
        took = time.monotonic() - start
        print(f"control plane ready at {st.server} in {took:.1f}s; CRDs installed")
        if before and before != st.server:
            print(
                f"note: {before}, its previous address, is in use; restart clients "
                "that were connected to it (e.g. a running operator)",
                file=sys.stderr,
            )
    print(f"export KUBECONFIG={st.kubeconfig}")
    return 0
