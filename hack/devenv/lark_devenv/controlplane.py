"""etcd + kube-apiserver on loopback, the way controller-runtime's envtest runs them.

Used by `lark-operator dev up|down|status`, by the demo and by the test harness. The
processes run in their own sessions so they outlive the command that started them; their
PIDs and ports are kept in DIR/state.json so a second `up` finds them. `down` stops them
but keeps DIR (etcd data, certificates, kubeconfig), so the next `up` brings the same
cluster back at the same address (when its port is still free).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from lark_devenv import binaries
from lark_devenv.pki import make_pki, pki_paths, reusable_pki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class State:
    etcd_pid: int
    apiserver_pid: int
    etcd_port: int
    apiserver_port: int
    server: str
    kubeconfig: str
    peer_port: int = 0  # absent in state files of older versions


class ControlPlaneError(RuntimeError):
    pass


class ControlPlane:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        crds_dir: Path | None = None,
        nodes: bool = False,
    ):
        """nodes: serve real kubelets too (the end-to-end test's node): pods get
        ServiceAccount tokens (the admission plugin is on), and the apiserver reaches a
        kubelet at its InternalIP with the admin client certificate (for logs and exec).
        Off, the apiserver is envtest's: no pod ever runs."""
        self.dir = Path(directory).resolve()
        self.crds_dir = crds_dir
        self.nodes = nodes
        self.state_file = self.dir / "state.json"
        self.kubeconfig = self.dir / "kubeconfig"
        self.log_dir = self.dir / "logs"

    # --- state --------------------------------------------------------------------------
    def state(self) -> State | None:
        try:
            return State(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def running(self) -> State | None:
        st = self.state()
        if st and _alive(st.etcd_pid) and _alive(st.apiserver_pid):
            return st
        return None

    # --- up -----------------------------------------------------------------------------
    def up(self, *, timeout: float = 60.0) -> tuple[State, bool]:
        """Start (or find) the control plane; returns (state, started_now)."""
        existing = self.running()
        if existing:
            return existing, False
        self.down()  # clear leftovers of a half-dead previous run
        for name in ("etcd", "kube-apiserver"):
            binaries.find(name)  # fail before making anything
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        # Back at the address and with the certificates of the last run in DIR (`down` keeps
        # them), so clients holding them (a running operator, DIR/kubeconfig) reconnect.
        pki = reusable_pki(self.dir / "pki") or make_pki(self.dir / "pki")
        api_port = self._recorded_port() or free_port()
        etcd_port, peer_port = _free_port_but(api_port), _free_port_but(api_port)
        state = self._spawn_all(etcd_port, peer_port, api_port, pki)
        self.state_file.write_text(json.dumps(asdict(state)))
        self._write_kubeconfig(state.server, pki)
        try:
            self._wait_ready(state, timeout)
            if self.crds_dir:
                self.install_crds(self.crds_dir)
        except Exception:
            self.down()
            raise
        return state, True

    def recorded_server(self) -> str | None:
        """The apiserver URL in DIR/kubeconfig (kept by `down`), if any."""
        try:
            cfg = yaml.safe_load(self.kubeconfig.read_text())
            return str(cfg["clusters"][0]["cluster"]["server"])
        except (OSError, yaml.YAMLError, LookupError, TypeError):
            return None

    def _recorded_port(self) -> int | None:
        """The recorded apiserver port if it is free to listen on again, else None."""
        port = urllib.parse.urlsplit(self.recorded_server() or "").port
        return port if port and _can_listen(port) else None

    def _spawn_all(
        self, etcd_port: int, peer_port: int, api_port: int, pki: dict[str, Path]
    ) -> State:
        etcd_bin, apiserver_bin = binaries.find("etcd"), binaries.find("kube-apiserver")
        etcd = self._spawn(
            "etcd",
            [
                str(etcd_bin),
                "--name=lark-dev",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=lark-dev=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        server = f"https://127.0.0.1:{api_port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(apiserver_bin),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--cert-dir={self.dir / 'pki'}",
                f"--tls-cert-file={pki['serving_cert']}",
                f"--tls-private-key-file={pki['serving_key']}",
                f"--client-ca-file={pki['ca']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--secure-port={api_port}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={pki['sa_pub']}",
                f"--service-account-signing-key-file={pki['sa_key']}",
                f"--service-account-issuer={server}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=0",
                *self._node_args(pki),
            ],
        )
        return State(
            etcd_pid=etcd.pid,
            apiserver_pid=apiserver.pid,
            etcd_port=etcd_port,
            apiserver_port=api_port,
            server=server,
            kubeconfig=str(self.kubeconfig),
            peer_port=peer_port,
        )

    def _node_args(self, pki: dict[str, Path]) -> list[str]:
        if not self.nodes:
            # No controller-manager creates the ServiceAccounts the plugin would require.
            return ["--disable-admission-plugins=ServiceAccount"]
        return [
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki['admin_cert']}",
            f"--kubelet-client-key={pki['admin_key']}",
        ]

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            return subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    def _write_kubeconfig(self, server: str, pki: dict[str, Path]) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "lark-dev",
                    "cluster": {"server": server, "certificate-authority": str(pki["ca"])},
                }
            ],
            "users": [
                {
                    "name": "lark-dev-admin",
                    "user": {
                        "client-certificate": str(pki["admin_cert"]),
                        "client-key": str(pki["admin_key"]),
                    },
                }
            ],
            "contexts": [
                {"name": "lark-dev", "context": {"cluster": "lark-dev", "user": "lark-dev-admin"}}
            ],
            "current-context": "lark-dev",
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg))
        self.kubeconfig.chmod(0o600)

    # --- talking to the apiserver (stdlib only: no kubectl needed for `dev up`) ----------
    def _ssl(self) -> ssl.SSLContext:
        pki = self.dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        st = self.state()
        if not st:
            raise ControlPlaneError("control plane is not running")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            st.server + path,
            data=data,
            method=method,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=10) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def _wait_ready(self, state: State, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for pid, name in ((state.etcd_pid, "etcd"), (state.apiserver_pid, "kube-apiserver")):
                if not _alive(pid):
                    tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-1500:]
                    raise ControlPlaneError(f"{name} exited during start-up:\n{tail}")
            try:
                status, body = self.request("GET", "/readyz")
                if status == 200:
                    return
                last = f"/readyz {status}: {str(body)[:200]}"
            except (OSError, ssl.SSLError) as e:
                last = str(e)
            time.sleep(0.25)
        raise ControlPlaneError(f"kube-apiserver not ready after {timeout:.0f}s ({last})")

    def version(self) -> dict[str, Any]:
        status, body = self.request("GET", "/version")
        if status != 200:
            raise ControlPlaneError(f"/version answered {status}")
        return dict(body)

    def install_crds(
        self,
        crds_dir: Path,
        *,
        timeout: float = 30.0,
        helm_release: tuple[str, str] | None = None,
    ) -> list[str]:
        """Apply every CRD in crds_dir and wait until served. helm_release=(name, namespace)
        marks them as that Helm release's, so that its `helm install` adopts them."""
        names = []
        for path in sorted(crds_dir.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                if helm_release:
                    _mark_helm_owned(doc, *helm_release)
                name = doc["metadata"]["name"]
                names.append(name)
                status, body = self._apply(name, doc)
                if status >= 300:
                    raise ControlPlaneError(f"installing CRD {name} failed ({status}): {body}")
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                _, body = self.request(
                    "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
                )
                conds = ((body or {}).get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                    break
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} not established after {timeout:.0f}s")
                time.sleep(0.2)
        return names

    def _apply(self, name: str, doc: dict[str, Any]) -> tuple[int, Any]:
        # Server-side apply: idempotent, and a schema error comes back verbatim.
        return self.request(
            "PATCH",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            "?fieldManager=lark-dev&force=true",
            doc,
            content_type="application/apply-patch+yaml",
        )

    # --- an outage: stop and start again on the same ports, certificates and data --------
    def stop(self, *, timeout: float = 15.0) -> State:
        """Stop etcd and the apiserver but keep everything else, so that `start` brings the
        same cluster back at the same address (clients keep their kubeconfig)."""
        st = self.state()
        if not st:
            raise ControlPlaneError("control plane is not running")
        for pid in (st.apiserver_pid, st.etcd_pid):
            _terminate(pid, timeout)
        return st

    def start(self, *, timeout: float = 60.0) -> State:
        """Start a `stop`ped control plane again; returns once the apiserver is ready."""
        old = self.state()
        if not old:
            raise ControlPlaneError("no control plane to start: run `up` first")
        if self.running():
            return old
        state = self._spawn_all(
            old.etcd_port,
            old.peer_port or free_port(),
            old.apiserver_port,
            pki_paths(self.dir / "pki"),
        )
        self.state_file.write_text(json.dumps(asdict(state)))
        self._wait_ready(state, timeout)
        return state

    # --- down ---------------------------------------------------------------------------
    def down(self, *, timeout: float = 15.0) -> bool:
        """Stop both processes (apiserver first); True if anything was running."""
        st = self.state()
        if not st:
            return False
        stopped = False
        for pid in (st.apiserver_pid, st.etcd_pid):
            stopped |= _terminate(pid, timeout)
        self.state_file.unlink(missing_ok=True)
        return stopped


def _mark_helm_owned(doc: dict[str, Any], release: str, namespace: str) -> None:
    # The ownership metadata Helm checks before it takes over an existing object (it refuses
    # one without it: "invalid ownership metadata").
    meta = doc.setdefault("metadata", {})
    meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
    annotations = meta.setdefault("annotations", {})
    annotations["meta.helm.sh/release-name"] = release
    annotations["meta.helm.sh/release-namespace"] = namespace


def _can_listen(port: int) -> bool:
    # SO_REUSEADDR as kube-apiserver (Go) sets it: the just-stopped server's TIME_WAIT
    # connections do not make its port busy.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port_but(taken: int) -> int:
    while (port := free_port()) == taken:
        pass
    return port


def _terminate(pid: int, timeout: float) -> bool:
    if not _alive(pid):
        _reap(pid)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not _alive(pid):
                return True
            time.sleep(0.1)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
