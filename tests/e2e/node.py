"""A real Kubernetes node on this machine: containerd + runc, the kubelet,
kube-controller-manager and kube-scheduler, against a ControlPlane(nodes=True).

The node keeps off the host wherever Linux lets it:
- its processes run in a mount and PID namespace of their own (hack/e2e/node-init.sh): the
  mounts they make, and the paths they write whatever their configuration says, exist only
  in there; killing the namespace's init ends all of them, containers included;
- the kernel tunables the kubelet sets are private copies in there;
- no iptables rule anywhere: the kubelet's utility chains are off (makeIPTablesUtilChains),
  the bridge plugin neither masquerades nor turns forwarding on (isGateway off: the
  bridge's addresses are set here), and pods reach the apiserver through a relay
  (hack/e2e/tcp_relay.py) at the `kubernetes` Service's address rather than a DNAT rule.
What it must change on the host, `down` undoes (and `up` clears what a killed run left): one
bridge, which pods' veths join and leave with their network namespaces; a cgroup subtree
(CGROUP_ROOT) in each hierarchy; its work directory. No route or NAT leads anywhere but
the bridge and loopback.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from kubernetes.client.rest import ApiException

from lark_devenv.binaries import cache_dir, find
from lark_devenv.controlplane import ControlPlane
from tests.helpers.kube import Kube
from tests.helpers.wait import eventually

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack" / "e2e"
NODE_NAME = "lark-e2e"
BRIDGE = "lark-e2e0"
POD_SUBNET = "10.244.0.0/24"
NODE_IP = "10.244.0.1"  # the bridge's address: the pods' gateway and the kubelet's
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service (first address of the apiserver's range)
CGROUP_ROOT = "lark-e2e"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
PAUSE_IMAGE = "localhost/lark-e2e/pause:3.10"  # hack/e2e/images.sh
WORK_PARENT, WORK_PREFIX = "/tmp", "lark-e2e-node-"
LOCK = Path("/run/lock/lark-operator-e2e.lock")  # the machine's, whoever runs it from where
# What node-init.sh hides under tmpfs; nothing the node reads may live there.
PRIVATE_DIRS = ("/run", "/var/lib", "/var/log")
# Programs of the node; none may be left running after `down`.
PROGRAMS = (
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "kubelet",
    "kube-controller-manager",
    "kube-scheduler",
    "pause",
)


class NodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class Images:
    """What hack/e2e/images.sh wrote."""

    dir: Path

    @property
    def archives(self) -> list[Path]:
        return [self.dir / "pause.tar", self.dir / "operator.tar"]

    @property
    def pause(self) -> Path:
        return self.dir / "pause"

    @property
    def operator_id(self) -> str:
        return (self.dir / "operator.id").read_text().strip()


def run(argv: Sequence[str], timeout: float = 60, check: bool = True) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _link(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


@contextlib.contextmanager
def machine_lock(timeout: float = 1200) -> Iterator[None]:
    """One node per machine: its bridge, addresses and cgroups have fixed names."""
    with open(LOCK, "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NodeError(f"another e2e run held {LOCK} for {timeout:.0f}s") from None
                time.sleep(2)
        yield


def has_ready_condition(read: Callable[[], Any]) -> bool:
    """Whether what `read` returns (a pod, a node) has Ready=True; False while it is not
    there yet."""
    try:
        obj = read()
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    conditions = (obj.status.conditions if obj.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def pod_ready(kube: Kube, ns: str, name: str) -> bool:
    return has_ready_condition(lambda: kube.core.read_namespaced_pod(name, ns, _request_timeout=5))


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if the test process dies (even by SIGKILL), unshare gets SIGKILL,
    # and --kill-child passes it on to the namespace's init.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def cgroup_mounts() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 controllers, and v2)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            found.append(Path(left.split()[4]))
    return found


def clear_leftovers() -> None:
    """Remove what a node leaves on the host: its bridge, its cgroup subtrees and the work
    directories of runs that were killed (ours by name: the caller holds machine_lock)."""
    bridge = Path(f"/sys/class/net/{BRIDGE}")
    if bridge.exists():
        ports = [p.name for p in (bridge / "brif").iterdir()]
        run(["ip", "link", "del", BRIDGE])
        # A pod's veth goes when the kernel frees its network namespace, a moment after the
        # last process in it; one left behind goes now.
        try:
            eventually(lambda: not any(_link(p) for p in ports), 10, 0.2, "pods' veths to go")
        except AssertionError:
            for port in filter(_link, ports):
                run(["ip", "link", "del", port], check=False)
    busy: list[Path] = []
    deadline = time.monotonic() + 15
    for mount in cgroup_mounts():
        root = mount / CGROUP_ROOT
        # Deepest first; a cgroup whose last task is still exiting is busy for a moment.
        while root.exists():
            try:
                for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
                    os.rmdir(dirpath)
            except OSError:
                if time.monotonic() > deadline:
                    busy.append(root)
                    break
                time.sleep(0.2)
    if busy:
        raise NodeError(f"cgroups still in use: {busy}")
    for work in Path(WORK_PARENT).glob(f"{WORK_PREFIX}*"):
        shutil.rmtree(work)


class Node:
    # One at a time: `up` clears what is left under the node's fixed names.
    _live: ClassVar[Node | None] = None

    def __init__(self, cp: ControlPlane, kube: Kube, images: Images, log_dir: Path):
        self.cp, self.kube, self.images, self.log_dir = cp, kube, images, log_dir
        self.work: Path | None = None
        self.unshare: subprocess.Popen[bytes] | None = None
        self.init_pid = 0
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def socket(self) -> Path:
        assert self.work
        return self.work / "containerd.sock"

    # --- up -----------------------------------------------------------------------------
    def up(self, timeout: float = 120) -> None:
        """Start the node and return once it is Ready; on any failure undo everything."""
        try:
            self._up(timeout)
        except BaseException:
            self.down()
            raise

    def _up(self, timeout: float) -> None:
        state = self.cp.running()
        if not state:
            raise NodeError("the control plane is not running")
        if Node._live is not None:
            raise NodeError("another node is up in this process")
        Node._live = self
        used = (self.log_dir, self.cp.dir, self.images.dir, REPO, cache_dir(), Path(sys.executable))
        for path in used:
            if any(path.resolve().is_relative_to(d) for d in PRIVATE_DIRS):
                raise NodeError(f"{path} is under {PRIVATE_DIRS}, hidden inside the node")
        clear_leftovers()
        self.work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=WORK_PARENT))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._bridge()
        for mount in cgroup_mounts():
            (mount / CGROUP_ROOT).mkdir()
        kubelet_kubeconfig = self._kubelet_identity(state.server)
        self._write_configs()
        self._start_namespaces()

        self._start("containerd", "containerd", "--config", str(self.work / "containerd.toml"))
        eventually(lambda: self._ctr("version", check=False), 30, 0.2, "containerd")
        for archive in self.images.archives:
            self._ctr("images", "import", str(archive), timeout=180)
        self._start(
            "apiserver-relay",
            sys.executable,
            str(HACK / "tcp_relay.py"),
            f"{SERVICE_IP}:443",
            f"127.0.0.1:{state.apiserver_port}",
        )
        admin = str(self.cp.kubeconfig)
        self._start(
            "kube-controller-manager",
            str(find("kube-controller-manager")),
            f"--kubeconfig={admin}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            # publishes kube-root-ca.crt, which every pod's token volume includes
            f"--root-ca-file={self.cp.dir / 'pki' / 'ca.crt'}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        )
        self._start(
            "kube-scheduler",
            str(find("kube-scheduler")),
            f"--kubeconfig={admin}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        )
        self._start(
            "kubelet",
            str(find("kubelet")),
            f"--config={self.work / 'kubelet.yaml'}",
            f"--kubeconfig={kubelet_kubeconfig}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        )
        eventually(self._ready, timeout, 0.5, "the node Ready")

    def _bridge(self) -> None:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE])
        run(["ip", "addr", "add", f"{SERVICE_IP}/32", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])

    def _kubelet_identity(self, server: str) -> Path:
        """A kubeconfig for the kubelet. The control plane keeps no CA key to sign a
        system:node:<name> certificate with, so a ServiceAccount bound to the system:node
        ClusterRole is its identity (RBAC grants nodes that role's rules)."""
        assert self.work
        sa = f"{NODE_NAME}-node"
        self.kube.kubectl("-n", "kube-system", "create", "serviceaccount", sa)
        self.kube.kubectl(
            "create",
            "clusterrolebinding",
            sa,
            "--clusterrole=system:node",
            f"--serviceaccount=kube-system:{sa}",
        )
        token = self.kube.kubectl(
            "-n", "kube-system", "create", "token", sa, "--duration=24h"
        ).stdout.strip()
        path = self.work / "kubelet.kubeconfig"
        path.touch(mode=0o600)
        ca = self.cp.dir / "pki" / "ca.crt"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "e2e",
                            "cluster": {"server": server, "certificate-authority": str(ca)},
                        }
                    ],
                    "users": [{"name": sa, "user": {"token": token}}],
                    "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": sa}}],
                    "current-context": "e2e",
                }
            )
        )
        return path

    def _write_configs(self) -> None:
        w = self.work
        assert w
        (w / "cni").mkdir()
        # containerd 1.6 with its defaults, but nothing in /opt or /etc/cni. Its root and state
        # (/var/lib/containerd, /run/containerd) are on the namespace's tmpfs: images and
        # containers cost no disk and vanish with the node.
        (w / "containerd.toml").write_text(
            f"""version = 2
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower the sandbox's oom_score_adj (-998)
  # below its own and fails ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{w}/cni"
"""
        )
        bridge = {
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": False,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                "routes": [{"dst": "0.0.0.0/0", "gw": NODE_IP}],
            },
        }
        (w / "cni" / "10-lark-e2e.conflist").write_text(
            json.dumps({"cniVersion": "1.0.0", "name": NODE_NAME, "plugins": [bridge]})
        )
        kubelet = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,  # our machines run cgroup v1
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": NODE_IP,
            "readOnlyPort": 0,
            "healthzPort": 0,
            # The apiserver authenticates with its client certificate (logs, exec, metrics);
            # nobody else on the bridge gets in.
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.cp.dir / "pki" / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "makeIPTablesUtilChains": False,
            # Root here lacks CAP_SYS_RESOURCE: -999 (the default) is refused, every minute.
            "oomScoreAdj": 0,
            "failSwapOn": False,
            "resolvConf": "",  # no cluster DNS: pods use addresses
            "serializeImagePulls": False,
            # A shared machine's disk must not evict the test's pods or its images.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
                "imagefs.inodesFree": "1%",
            },
            "maxPods": 20,
        }
        (w / "kubelet.yaml").write_text(yaml.safe_dump(kubelet))

    def _start_namespaces(self) -> None:
        assert self.work
        log = open(self.log_dir / "node-init.log", "ab")
        self.unshare = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation=private",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--",
                "bash",
                str(HACK / "node-init.sh"),
                str(self.images.pause),
                str(self.work),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()
        children = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
        ready = self.work / "ready"

        def started() -> bool:
            if self.unshare is None or self.unshare.poll() is not None:
                raise NodeError(f"node-init exited: {self._tail('node-init')}")
            pids = children.read_text().split()
            self.init_pid = int(pids[0]) if pids else 0
            return bool(self.init_pid) and ready.exists()

        eventually(started, 15, 0.1, "the node's namespaces")

    def _start(self, name: str, *argv: str) -> None:
        """Run argv in the node's namespaces (nsenter forks it into the PID namespace)."""
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            self.procs[name] = subprocess.Popen(
                ["nsenter", f"--target={self.init_pid}", "--mount", "--pid", "--", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()

    def read_inside(self, path: str) -> str:
        """A file as the node's processes see it."""
        return run(["nsenter", f"--target={self.init_pid}", "--mount", "cat", path]).strip()

    def _ctr(self, *args: str, timeout: float = 30, check: bool = True) -> str | None:
        argv = ["ctr", f"--address={self.socket}", "--namespace=k8s.io", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0:
            return proc.stdout
        if check:
            raise NodeError(f"ctr {' '.join(args)} failed: {proc.stderr.strip()}")
        return None

    def _ready(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise NodeError(f"{name} exited ({proc.returncode}): {self._tail(name)}")
        return has_ready_condition(lambda: self.kube.core.read_node(NODE_NAME, _request_timeout=5))

    def _tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- down ---------------------------------------------------------------------------
    def down(self) -> None:
        """Stop everything and put the host back; safe to call twice and after a failed
        `up`. Every step runs even if an earlier one fails."""
        if Node._live is not self:
            return
        errors: list[str] = []
        for step in (self._stop_namespaces, clear_leftovers):
            try:
                step()
            except Exception as e:
                errors.append(f"{step.__name__}: {e}")
        if errors:
            raise NodeError("node teardown incomplete: " + "; ".join(errors))
        Node._live, self.work = None, None

    def _stop_namespaces(self) -> None:
        # SIGKILL to the init of a PID namespace kills every process in it; unshare exits
        # once all of them are gone, and with them the mount namespace and its mounts.
        if self.unshare is None:
            return
        if self.unshare.poll() is None:
            # Not found yet, the init dies with unshare (--kill-child).
            try:
                os.kill(self.init_pid or self.unshare.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.unshare.wait(60)
        for proc in self.procs.values():
            proc.wait(30)
        self.unshare, self.init_pid, self.procs = None, 0, {}
